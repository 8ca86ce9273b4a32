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

/* First thing in main, before any thread allocates: caps malloc's arenas at one per
 * core (at least 2) unless MALLOC_ARENA_MAX is set. glibc's default is 8 per core (16
 * on 2 cores) for our ~78 threads, and every arena keeps its own freed chunks: in two
 * 30-minute soaks side by side, RSS after warm-up rose +6.6 % with 2 arenas and +10.1 %
 * with the default (docs/reliability.md). No more threads than cores run at once, so
 * the contention is small: bench parts mouth and fanout, 2 against 16 arenas, gave
 * mouth-to-socket p99 34.8 / 37.9 ms and fan-out p99 at 4,000 listeners 63.6 / 66.7 ms.
 * Returns the cap set, 0 when the environment's is kept. */
guint dragoman_heap_limit_arenas (void);
DragomanHeapTrim *dragoman_heaptrim_start (guint interval_s);
void dragoman_heaptrim_stop (DragomanHeapTrim *trim);
/* any thread: the process's resident memory (VmRSS), 0 if /proc cannot say */
guint64 dragoman_process_rss_bytes (void);
/* any thread */
void dragoman_heaptrim_get_stats (DragomanHeapTrim *trim, DragomanHeapTrimStats *stats);
