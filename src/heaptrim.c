#include "heaptrim.h"

#include <gst/gst.h>
#include <string.h>
#ifdef DRAGOMAN_JEMALLOC
#include <jemalloc/jemalloc.h>
#else
#include <malloc.h>
#endif

GST_DEBUG_CATEGORY_STATIC (heaptrim_debug);
#define GST_CAT_DEFAULT heaptrim_debug

struct _DragomanHeapTrim {
  GThread *thread;
  guint interval_s;
  GMutex lock;
  GCond wake;
  gboolean stop;              /* protected by lock */
  DragomanHeapTrimStats stats; /* protected by lock */
};

#ifdef DRAGOMAN_JEMALLOC
/* Read by jemalloc at its first allocation (MALLOC_CONF in the environment still wins).
 * Its default, 4 arenas per core, is for programs whose threads all allocate hard; here
 * ~80 threads allocate a little each, behind their thread caches. 2-minute soaks of the
 * stage and churn (2026-11-30): RSS after the warm-up 114.4, 114.4, 115.2 and 115.8 MiB
 * with 1, 2, 4 and 8 arenas, glibc 106.2; one arena per core is what can run at once.
 * Freed pages go back to the kernel within ~10 s by themselves (dirty_decay_ms); the trim
 * thread makes it happen at a known time, and then for every arena. */
const char *malloc_conf = "narenas:2";

const char *const dragoman_heap_allocator = "jemalloc";

static void
give_back (void)
{
  mallctl ("arena." G_STRINGIFY (MALLCTL_ARENAS_ALL) ".purge", NULL, NULL, NULL, 0);
}

void
dragoman_heap_get_usage (DragomanHeapUsage *u)
{
  memset (u, 0, sizeof *u);
  uint64_t epoch = 1; /* jemalloc's statistics are a snapshot, taken anew at each epoch */
  size_t len = sizeof epoch;
  mallctl ("epoch", &epoch, &len, &epoch, len);
  size_t allocated = 0, resident = 0, mapped = 0;
  len = sizeof (size_t);
  mallctl ("stats.allocated", &allocated, &len, NULL, 0);
  mallctl ("stats.resident", &resident, &len, NULL, 0);
  mallctl ("stats.mapped", &mapped, &len, NULL, 0);
  u->in_use = allocated;
  u->free = resident > allocated ? resident - allocated : 0; /* free pages not yet given back, and metadata */
  u->mapped = mapped;
}
#else
const char *const dragoman_heap_allocator = "glibc";

static void
give_back (void)
{
  malloc_trim (0);
}

/* mallinfo2 walks every arena under its lock: a few microseconds with GStreamer's ~30
 * streaming threads, fine at a scrape every few seconds */
void
dragoman_heap_get_usage (DragomanHeapUsage *u)
{
  struct mallinfo2 mi = mallinfo2 ();
  u->in_use = mi.uordblks; /* the small blocks; the big ones malloc mmaps on their own are `mapped` */
  u->free = mi.fordblks;
  u->mapped = mi.hblkhd;
}
#endif

guint64
dragoman_process_rss_bytes (void)
{
  g_autofree char *status = NULL;
  if (!g_file_get_contents ("/proc/self/status", &status, NULL, NULL))
    return 0;
  const char *p = strstr (status, "VmRSS:");
  return p ? g_ascii_strtoull (p + 6, NULL, 10) * 1024 : 0;
}

static gpointer
run (gpointer data)
{
  DragomanHeapTrim *t = data;
  g_mutex_lock (&t->lock);
  while (!t->stop) {
    gint64 until = g_get_monotonic_time () + (gint64) t->interval_s * G_USEC_PER_SEC;
    while (!t->stop && g_cond_wait_until (&t->wake, &t->lock, until))
      ;
    if (t->stop)
      break;
    g_mutex_unlock (&t->lock);
    guint64 before = dragoman_process_rss_bytes ();
    gint64 t0 = g_get_monotonic_time ();
    give_back ();
    guint took = (guint) (g_get_monotonic_time () - t0);
    guint64 after = dragoman_process_rss_bytes ();
    GST_INFO ("%s trim: %u us, RSS %" G_GUINT64_FORMAT " -> %" G_GUINT64_FORMAT " KiB", dragoman_heap_allocator, took,
              before / 1024,
              after / 1024);
    g_mutex_lock (&t->lock);
    t->stats.runs++;
    if (before > after)
      t->stats.released_bytes += before - after;
    t->stats.last_us = took;
    t->stats.max_us = MAX (t->stats.max_us, took);
  }
  g_mutex_unlock (&t->lock);
  return NULL;
}

DragomanHeapTrim *
dragoman_heaptrim_start (guint interval_s)
{
  if (!heaptrim_debug)
    GST_DEBUG_CATEGORY_INIT (heaptrim_debug, "dragoman-heaptrim", 0, "dragoman heap trimming");
  DragomanHeapTrim *t = g_new0 (DragomanHeapTrim, 1);
  t->interval_s = MAX (interval_s, 1);
  g_mutex_init (&t->lock);
  g_cond_init (&t->wake);
  t->thread = g_thread_new ("heap-trim", run, t);
  return t;
}

void
dragoman_heaptrim_stop (DragomanHeapTrim *t)
{
  if (!t)
    return;
  g_mutex_lock (&t->lock);
  t->stop = TRUE;
  g_cond_signal (&t->wake);
  g_mutex_unlock (&t->lock);
  g_thread_join (t->thread);
  g_mutex_clear (&t->lock);
  g_cond_clear (&t->wake);
  g_free (t);
}

void
dragoman_heaptrim_get_stats (DragomanHeapTrim *t, DragomanHeapTrimStats *stats)
{
  g_mutex_lock (&t->lock);
  *stats = t->stats;
  g_mutex_unlock (&t->lock);
}
