/* heaptrim: a thread frees 64 MiB of small blocks it touched, behind one block it
 * keeps (so glibc cannot give them back by shrinking the heap's top), and stays alive
 * (jemalloc gives a thread's free pages back when it exits): RSS keeps them until the
 * trim thread runs, then drops. Real malloc (the build's: glibc or jemalloc), real /proc. */
#include <gst/check/gstcheck.h>
#include <string.h>

#include "heaptrim.h"

#define BLOCKS 16384
#define BLOCK 4096

static guint64
rss (void)
{
  g_autofree char *status = NULL;
  fail_unless (g_file_get_contents ("/proc/self/status", &status, NULL, NULL));
  const char *p = strstr (status, "VmRSS:");
  fail_unless (p != NULL);
  return g_ascii_strtoull (p + 6, NULL, 10) * 1024;
}

static gint trimmed; /* atomic: the churn thread may exit */

static gpointer
churn (gpointer data)
{
  gpointer *blocks = g_new (gpointer, BLOCKS);
  for (guint i = 0; i < BLOCKS; i++) {
    blocks[i] = g_malloc (BLOCK);
    memset (blocks[i], 0x5a, BLOCK);
  }
  gpointer pin = g_malloc (64); /* above them all: the heap's top stays in use */
  for (guint i = 0; i < BLOCKS; i++)
    g_free (blocks[i]);
  g_free (blocks);
  g_atomic_pointer_set ((gpointer *) data, pin);
  while (!g_atomic_int_get (&trimmed))
    g_usleep (10000);
  return pin;
}

GST_START_TEST (test_trim_gives_back)
{
#if defined(__SANITIZE_ADDRESS__)
  /* ASan's allocator keeps freed blocks in its quarantine: glibc's trim has nothing to do */
  g_print ("heaptrim: skipped under AddressSanitizer (its own allocator)\n");
  return;
#endif
  gpointer freed = NULL;
  GThread *t = g_thread_new ("churn", churn, &freed);
  while (!g_atomic_pointer_get (&freed))
    g_usleep (10000);
  guint64 kept = rss ();

  DragomanHeapTrim *trim = dragoman_heaptrim_start (1);
  DragomanHeapTrimStats st = { 0 };
  for (int i = 0; i < 50 && st.runs == 0; i++) {
    g_usleep (100000);
    dragoman_heaptrim_get_stats (trim, &st);
  }
  fail_unless (st.runs >= 1, "the trim thread never ran");
  guint64 after = rss ();
  g_atomic_int_set (&trimmed, 1);
  gpointer pin = g_thread_join (t);
  fail_unless (after + 32 * 1024 * 1024 < kept, "%s: RSS %" G_GUINT64_FORMAT " -> %" G_GUINT64_FORMAT " KiB", dragoman_heap_allocator, kept / 1024,
               after / 1024);
  fail_unless (st.released_bytes >= 32 * 1024 * 1024, "released %" G_GUINT64_FORMAT, st.released_bytes);
  dragoman_heaptrim_stop (trim); /* joins at once, without waiting out the interval */
  g_free (pin);
}
GST_END_TEST;

/* the metrics' heap figures follow what the program holds: 32 MiB allocated show in
 * in_use, and leave it when freed */
GST_START_TEST (test_usage_follows_allocations)
{
#if defined(__SANITIZE_ADDRESS__)
  g_print ("heap usage: skipped under AddressSanitizer (its own allocator)\n");
  return;
#endif
  DragomanHeapUsage before, full, after;
  dragoman_heap_get_usage (&before);
  gpointer *blocks = g_new (gpointer, BLOCKS / 2);
  for (guint i = 0; i < BLOCKS / 2; i++)
    blocks[i] = g_malloc (BLOCK);
  dragoman_heap_get_usage (&full);
  for (guint i = 0; i < BLOCKS / 2; i++)
    g_free (blocks[i]);
  g_free (blocks);
  dragoman_heap_get_usage (&after);
  guint64 mib = 1024 * 1024;
  fail_unless (full.in_use >= before.in_use + 30 * mib, "%s: in use %" G_GUINT64_FORMAT " -> %" G_GUINT64_FORMAT " KiB",
               dragoman_heap_allocator, before.in_use / 1024, full.in_use / 1024);
  fail_unless (after.in_use + 30 * mib <= full.in_use, "%s: in use %" G_GUINT64_FORMAT " -> %" G_GUINT64_FORMAT " KiB",
               dragoman_heap_allocator, full.in_use / 1024, after.in_use / 1024);
  fail_unless (after.free + after.in_use > 0);
}
GST_END_TEST;

static Suite *
heaptrim_suite (void)
{
  Suite *s = suite_create ("heaptrim");
  TCase *tc = tcase_create ("general");
  tcase_set_timeout (tc, 20);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_trim_gives_back);
  tcase_add_test (tc, test_usage_follows_allocations);
  return s;
}

GST_CHECK_MAIN (heaptrim);
