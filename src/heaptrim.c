#include "heaptrim.h"

#include <gst/gst.h>
#include <malloc.h>
#include <string.h>

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
    malloc_trim (0);
    guint took = (guint) (g_get_monotonic_time () - t0);
    guint64 after = dragoman_process_rss_bytes ();
    GST_INFO ("malloc_trim: %u us, RSS %" G_GUINT64_FORMAT " -> %" G_GUINT64_FORMAT " KiB", took, before / 1024,
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
