/* heaptrim — the allocator's side of the server: gives the heap's free pages back to the
 * kernel every 30 s on a thread of its own, and reads the allocator's statistics.
 *
 * glibc keeps memory a thread freed in that thread's arena. Big buffers that come and go
 * with the stage (each SRT reconnect, each new encoder) leave large free chunks in the
 * middle of an arena that glibc never returns by itself: in a soak with the stage dropping
 * every 20-180 s, RSS rose ~1 MiB a minute while the heap in use stayed flat, and one
 * malloc_trim(0) on that server took RSS from 151.6 to 115.5 MiB (docs/reliability.md).
 * Trims every 30 s still left the 30-minute soak 6.2-6.9 % up, so the server links jemalloc
 * (Makefile MALLOC), whose pages go back by themselves within ~10 s; the trim then purges
 * every arena at a known time. glibc's malloc_trim locks one arena at a time while it
 * madvises its free pages: the main loop (every listener's socket) never calls it, and a
 * streaming thread waits at most for one arena's pass. Owner: main. */
#pragma once
#include <glib.h>

#define DRAGOMAN_HEAPTRIM_INTERVAL_S 30

typedef struct _DragomanHeapTrim DragomanHeapTrim;

typedef struct {
  guint64 runs;
  guint64 released_bytes; /* RSS before minus after, summed over the runs that lowered it */
  guint last_us;          /* how long the last trim took */
  guint max_us;
} DragomanHeapTrimStats;

DragomanHeapTrim *dragoman_heaptrim_start (guint interval_s);
void dragoman_heaptrim_stop (DragomanHeapTrim *trim);
/* any thread: the process's resident memory (VmRSS), 0 if /proc cannot say */
guint64 dragoman_process_rss_bytes (void);
/* The allocator's own view, to tell a leak (in use grows) from fragmentation (RSS grows,
 * the free bytes it keeps grow with it). glibc: in_use = small blocks (uordblks), free =
 * free but kept (fordblks), mapped = the big blocks it mmaps one by one. jemalloc:
 * in_use = every live block (stats.allocated), free = resident pages not in use
 * (free pages not yet given back, and its metadata), mapped = all its mappings. */
typedef struct {
  guint64 in_use;
  guint64 free;
  guint64 mapped;
} DragomanHeapUsage;

extern const char *const dragoman_heap_allocator; /* "glibc" or "jemalloc" (the build's choice) */
/* any thread */
void dragoman_heap_get_usage (DragomanHeapUsage *usage);
/* any thread */
void dragoman_heaptrim_get_stats (DragomanHeapTrim *trim, DragomanHeapTrimStats *stats);
