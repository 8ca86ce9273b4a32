/* heaptrim — gives the heap's free pages back to the kernel, every 30 s, on a
 * thread of its own.
 *
 * glibc keeps memory a thread freed in that thread's arena. Big buffers that come
 * and go with the stage (each SRT reconnect, each new encoder) leave large free
 * chunks in the middle of an arena that glibc never returns by itself: in a soak
 * with the stage dropping every 20-180 s, RSS rose ~1 MiB a minute while the heap
 * in use stayed flat, and one malloc_trim(0) on that server took RSS from 151.6 to
 * 115.5 MiB (docs/reliability.md). malloc_trim locks one arena at a time while it
 * madvises its free pages: the main loop (every listener's socket) never calls it,
 * and a streaming thread waits at most for one arena's pass. Owner: main. */
#pragma once
#include <glib.h>

#define DRAGOMAN_HEAPTRIM_INTERVAL_S 30

typedef struct _DragomanHeapTrim DragomanHeapTrim;

typedef struct {
  guint64 runs;
  guint64 released_bytes; /* RSS before minus after, summed over the runs that lowered it */
  guint last_us;          /* how long the last malloc_trim took */
  guint max_us;
} DragomanHeapTrimStats;

DragomanHeapTrim *dragoman_heaptrim_start (guint interval_s);
void dragoman_heaptrim_stop (DragomanHeapTrim *trim);
/* any thread: the process's resident memory (VmRSS), 0 if /proc cannot say */
guint64 dragoman_process_rss_bytes (void);
/* any thread */
void dragoman_heaptrim_get_stats (DragomanHeapTrim *trim, DragomanHeapTrimStats *stats);
