/* channel — mixing policy: duck level, floor fallback, ramps without clicks,
 * cough, saturation. GstHarness drives the real mixer bin (volume + controller
 * + audiomixer) with timestamped buffers; no encoder (fanout NULL). */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <math.h>

#include "channel.h"

#define CAPS "audio/x-raw,format=S16LE,rate=48000,channels=1,layout=interleaved"
#define BLOCK 480 /* 10 ms */

typedef struct {
  DragomanChannel *ch;
  GstHarness *floor, *voice;
  GstClockTime ts;
  gint16 last;
  int max_step; /* largest sample-to-sample change seen: a click detector for DC input */
} Fixture;

static void
setup (Fixture *f, double duck_db)
{
  f->ch = dragoman_channel_new ("main", "hy", TRUE, 20, 32000, duck_db, NULL);
  GstElement *bin = dragoman_channel_get_bin (f->ch);
  f->floor = gst_harness_new_with_element (bin, "floor", "src");
  f->voice = gst_harness_new_with_element (bin, "voice", NULL);
  gst_harness_set_src_caps_str (f->floor, CAPS);
  gst_harness_set_src_caps_str (f->voice, CAPS);
  f->ts = 0;
  f->last = G_MININT16;
  f->max_step = 0;
}

static void
teardown (Fixture *f)
{
  gst_harness_teardown (f->voice);
  gst_harness_teardown (f->floor);
  dragoman_channel_free (f->ch);
}

static GstBuffer *
dc_block (gint16 value, GstClockTime ts)
{
  GstBuffer *b = gst_buffer_new_allocate (NULL, BLOCK * 2, NULL);
  GstMapInfo m;
  gst_buffer_map (b, &m, GST_MAP_WRITE);
  for (int i = 0; i < BLOCK; i++)
    ((gint16 *) m.data)[i] = value;
  gst_buffer_unmap (b, &m);
  GST_BUFFER_PTS (b) = ts;
  GST_BUFFER_DURATION (b) = 10 * GST_MSECOND;
  return b;
}

/* push `ms` of constant floor and voice; return the last output sample */
static gint16
run (Fixture *f, int ms, gint16 floor, gint16 voice)
{
  gint16 last = 0;
  for (int t = 0; t < ms; t += 10) {
    fail_unless_equals_int (gst_harness_push (f->floor, dc_block (floor, f->ts)), GST_FLOW_OK);
    fail_unless_equals_int (gst_harness_push (f->voice, dc_block (voice, f->ts)), GST_FLOW_OK);
    f->ts += 10 * GST_MSECOND;
    GstBuffer *out = gst_harness_pull (f->floor);
    GstMapInfo m;
    gst_buffer_map (out, &m, GST_MAP_READ);
    const gint16 *s = (const gint16 *) m.data;
    for (gsize i = 0; i < m.size / 2; i++) {
      if (f->last != G_MININT16)
        f->max_step = MAX (f->max_step, abs (s[i] - f->last));
      f->last = s[i];
    }
    last = s[m.size / 2 - 1];
    gst_buffer_unmap (out, &m);
    gst_buffer_unref (out);
  }
  return last;
}

GST_START_TEST (test_off_air_is_floor)
{
  Fixture f;
  setup (&f, -15);
  /* nobody on air: the floor alone, the voice input (a silent booth) is not heard */
  fail_unless_equals_int (run (&f, 200, 10000, 20000), 10000);
  fail_unless_equals_int (dragoman_channel_get_mode (f.ch), DRAGOMAN_CHANNEL_FLOOR);
  teardown (&f);
}
GST_END_TEST;

GST_START_TEST (test_on_air_ducks_floor)
{
  Fixture f;
  setup (&f, -15);
  run (&f, 100, 10000, 20000);
  dragoman_channel_set_input (f.ch, TRUE, FALSE, f.ts);
  /* after the 300 ms duck ramp: voice + floor at -15 dB (0.1778) */
  gint16 v = run (&f, 400, 10000, 20000);
  fail_unless (abs (v - (20000 + 1778)) <= 3, "on air: got %d, want %d", v, 20000 + 1778);
  fail_unless_equals_int (dragoman_channel_get_mode (f.ch), DRAGOMAN_CHANNEL_INTERPRETATION);
  /* and it got there by ramps: no step bigger than a 10 ms voice ramp allows */
  fail_unless (f.max_step <= 20000 / 480 + 2, "click: step of %d", f.max_step);
  teardown (&f);
}
GST_END_TEST;

GST_START_TEST (test_off_air_floor_fades_back_over_a_second)
{
  Fixture f;
  setup (&f, -15);
  dragoman_channel_set_input (f.ch, TRUE, FALSE, 0);
  run (&f, 500, 10000, 0); /* voice silent: isolate the floor */
  dragoman_channel_set_input (f.ch, FALSE, FALSE, f.ts);
  f.max_step = 0;
  gint16 mid = run (&f, 500, 10000, 0);
  /* half way through the 1 s ramp from 0.178 to 1.0 */
  int want = (int) (10000 * (0.1778 + 0.5 * (1 - 0.1778)));
  fail_unless (abs (mid - want) <= 60, "mid-ramp: got %d, want ~%d", mid, want);
  gint16 end = run (&f, 600, 10000, 0);
  fail_unless_equals_int (end, 10000);
  /* no burst: the floor rises by at most ~0.2 sample units per sample */
  fail_unless (f.max_step <= 2, "floor burst in: step of %d", f.max_step);
  teardown (&f);
}
GST_END_TEST;

GST_START_TEST (test_cough_mutes_voice_keeps_floor_ducked)
{
  Fixture f;
  setup (&f, -15);
  dragoman_channel_set_input (f.ch, TRUE, FALSE, 0);
  run (&f, 400, 10000, 20000);
  dragoman_channel_set_input (f.ch, TRUE, TRUE, f.ts);
  /* within 50 ms the voice is gone and the floor is still ducked */
  gint16 v = run (&f, 50, 10000, 20000);
  fail_unless (abs (v - 1778) <= 3, "cough: got %d, want 1778", v);
  dragoman_channel_set_input (f.ch, TRUE, FALSE, f.ts);
  v = run (&f, 50, 10000, 20000);
  fail_unless (abs (v - 21778) <= 3, "after cough: got %d", v);
  teardown (&f);
}
GST_END_TEST;

GST_START_TEST (test_force_floor)
{
  Fixture f;
  setup (&f, -15);
  dragoman_channel_set_input (f.ch, TRUE, FALSE, 0);
  run (&f, 400, 10000, 20000);
  dragoman_channel_set_force_floor (f.ch, TRUE, f.ts);
  fail_unless_equals_int (dragoman_channel_get_mode (f.ch), DRAGOMAN_CHANNEL_FORCED_FLOOR);
  fail_unless_equals_int (run (&f, 1100, 10000, 20000), 10000);
  teardown (&f);
}
GST_END_TEST;

GST_START_TEST (test_duck_level_is_configurable)
{
  Fixture f;
  setup (&f, -15);
  dragoman_channel_set_input (f.ch, TRUE, FALSE, 0);
  run (&f, 400, 10000, 0);
  dragoman_channel_set_duck_db (f.ch, -6, f.ts);
  gint16 v = run (&f, 400, 10000, 0);
  fail_unless (abs (v - 5012) <= 3, "-6 dB: got %d, want 5012", v);
  teardown (&f);
}
GST_END_TEST;

GST_START_TEST (test_mix_saturates)
{
  Fixture f;
  setup (&f, 0); /* no ducking: both at full level */
  dragoman_channel_set_input (f.ch, TRUE, FALSE, 0);
  gint16 v = run (&f, 200, 30000, 30000);
  fail_unless_equals_int (v, 32767);
  v = run (&f, 100, -30000, -30000);
  fail_unless_equals_int (v, -32768);
  teardown (&f);
}
GST_END_TEST;

static Suite *
channel_suite (void)
{
  Suite *s = suite_create ("channel");
  TCase *tc = tcase_create ("mixing");
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_off_air_is_floor);
  tcase_add_test (tc, test_on_air_ducks_floor);
  tcase_add_test (tc, test_off_air_floor_fades_back_over_a_second);
  tcase_add_test (tc, test_cough_mutes_voice_keeps_floor_ducked);
  tcase_add_test (tc, test_force_floor);
  tcase_add_test (tc, test_duck_level_is_configurable);
  tcase_add_test (tc, test_mix_saturates);
  return s;
}

GST_CHECK_MAIN (channel);
