/* booth_video — unit tests for src/booth_video.c with real elements: a live
 * H.264 test stage (videotestsrc + x264enc, as pipelines/stage-test.pipeline)
 * feeds the booth video; two consumers stand for two booths' peers: a fast one
 * (appsrc → fakesink) and a stalled one (its sink pad blocked, as a peer whose
 * webrtcbin holds its data). Checks: every consumer starts on a keyframe, the
 * stalled one never holds up the fast one and its losses are counted, the
 * stage-lost input (black) keeps frames coming, and nothing is encoded once the
 * last consumer is gone. */
#include <gst/check/gstcheck.h>

#include "booth_video.h"

typedef struct {
  gint buffers;     /* atomic */
  gint first_delta; /* atomic: 1 if the first buffer was not a keyframe */
} Seen;

static GstPadProbeReturn
count_probe (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  Seen *s = data;
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);
  if (g_atomic_int_add (&s->buffers, 1) == 0 && GST_BUFFER_FLAG_IS_SET (buf, GST_BUFFER_FLAG_DELTA_UNIT))
    g_atomic_int_set (&s->first_delta, 1);
  return GST_PAD_PROBE_OK;
}

static GstPadProbeReturn
hold_probe (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  return GST_PAD_PROBE_OK; /* a blocking probe: the thread waits until it is removed */
}

/* appsrc → fakesink in `pipeline`, counted at the sink; registered with `v`
 * before it starts, as webrtc_peer.c does */
static GstElement *
consumer (DragomanBoothVideo *v, GstElement *pipeline, const char *name, Seen *seen, GstPad **sinkpad,
          gulong *hold)
{
  GstElement *src = gst_element_factory_make ("appsrc", name);
  GstElement *sink = gst_element_factory_make ("fakesink", NULL);
  g_object_set (sink, "sync", FALSE, "async", FALSE, NULL);
  gst_bin_add_many (GST_BIN (pipeline), src, sink, NULL);
  fail_unless (gst_element_link (src, sink));
  *sinkpad = gst_element_get_static_pad (sink, "sink");
  gst_pad_add_probe (*sinkpad, GST_PAD_PROBE_TYPE_BUFFER, count_probe, seen, NULL);
  if (hold)
    *hold = gst_pad_add_probe (*sinkpad, GST_PAD_PROBE_TYPE_BLOCK | GST_PAD_PROBE_TYPE_BUFFER, hold_probe, NULL, NULL);
  dragoman_booth_video_add (v, src);
  gst_element_sync_state_with_parent (sink);
  gst_element_sync_state_with_parent (src);
  return src;
}

GST_START_TEST (test_fan_out)
{
  DragomanRoomConfig rc = { .id = "test", .booth_video_width = 320, .booth_video_height = 180,
                            .booth_video_kbps = 200 };
  GstElement *pipeline = gst_pipeline_new (NULL);
  GError *err = NULL;
  GstElement *stage = gst_parse_bin_from_description (
      "videotestsrc is-live=true pattern=ball ! capsfilter caps=video/x-raw,width=640,height=360,framerate=25/1 ! "
      "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=50 bitrate=500 ! h264parse config-interval=-1 ! "
      "capsfilter caps=video/x-h264,stream-format=byte-stream,alignment=au",
      TRUE, &err);
  fail_unless (stage != NULL, "%s", err ? err->message : "");
  gst_bin_add (GST_BIN (pipeline), stage);
  GstPad *h264 = gst_element_get_static_pad (stage, "src");
  DragomanBoothVideo *v = dragoman_booth_video_new (pipeline, &rc, h264);
  gst_object_unref (h264);
  fail_unless (gst_element_set_state (pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  dragoman_booth_video_set_stage_live (v, TRUE);

  /* nobody watching: nothing encoded */
  g_usleep (1000 * 1000);
  DragomanBoothVideoStats st;
  dragoman_booth_video_get_stats (v, &st);
  fail_unless_equals_int (st.frames, 0);

  Seen fast = { 0 }, slow = { 0 };
  GstPad *fast_pad, *slow_pad;
  gulong hold;
  GstElement *fast_src = consumer (v, pipeline, "fast", &fast, &fast_pad, NULL);
  GstElement *slow_src = consumer (v, pipeline, "slow", &slow, &slow_pad, &hold);
  /* 4 s: up to 2 s for the stage's next keyframe (the decoder starts on one) */
  g_usleep (4 * 1000 * 1000);
  dragoman_booth_video_get_stats (v, &st);
  gint got = g_atomic_int_get (&fast.buffers);
  GST_INFO ("after 4 s: fast %d, slow %d, encoded %" G_GUINT64_FORMAT ", dropped %" G_GUINT64_FORMAT, got,
            g_atomic_int_get (&slow.buffers), st.frames, st.dropped);
  /* frames reached the fast consumer (2 s of 15 fps after the stage's keyframe,
   * less on a loaded machine), from a keyframe on */
  fail_unless (got >= 10, "fast consumer got %d frames", got);
  fail_unless (!g_atomic_int_get (&fast.first_delta), "the fast consumer did not start on a keyframe");
  fail_unless (g_atomic_int_get (&slow.buffers) <= 1, "the blocked consumer got %d", g_atomic_int_get (&slow.buffers));
  fail_unless (st.dropped > 0, "the blocked consumer's losses are not counted");
  fail_unless (st.consumers == 2);

  /* the stalled one recovers: its first frame is still a keyframe, then it flows */
  gst_pad_remove_probe (slow_pad, hold);
  g_usleep (3 * 1000 * 1000);
  fail_unless (!g_atomic_int_get (&slow.first_delta));
  fail_unless (g_atomic_int_get (&slow.buffers) >= 10, "the unblocked consumer got %d", g_atomic_int_get (&slow.buffers));

  /* the stage lost: black frames keep coming */
  dragoman_booth_video_set_stage_live (v, FALSE);
  g_usleep (300 * 1000);
  gint before = g_atomic_int_get (&fast.buffers);
  g_usleep (1000 * 1000);
  fail_unless (g_atomic_int_get (&fast.buffers) - before >= 8, "%d frames in 1 s of black",
               g_atomic_int_get (&fast.buffers) - before);

  /* everyone gone: the encoder stops */
  dragoman_booth_video_remove (v, fast_src);
  dragoman_booth_video_remove (v, slow_src);
  g_usleep (300 * 1000);
  dragoman_booth_video_get_stats (v, &st);
  guint64 frames = st.frames;
  g_usleep (1000 * 1000);
  dragoman_booth_video_get_stats (v, &st);
  fail_unless_equals_int (st.consumers, 0);
  fail_unless (st.frames == frames, "still encoding without consumers: %" G_GUINT64_FORMAT " -> %" G_GUINT64_FORMAT,
               frames, st.frames);

  /* a booth joins again, long after: the decoder restarts on a keyframe and the
   * rate is still 15 fps on the stage's own clock (not frames restamped behind it,
   * which the encoder's gate would refuse) */
  dragoman_booth_video_set_stage_live (v, TRUE);
  Seen again = { 0 };
  GstPad *again_pad;
  consumer (v, pipeline, "again", &again, &again_pad, NULL);
  g_usleep (3 * 1000 * 1000); /* the stage's next keyframe */
  dragoman_booth_video_get_stats (v, &st);
  frames = st.frames;
  gint seen0 = g_atomic_int_get (&again.buffers);
  g_usleep (2 * 1000 * 1000);
  dragoman_booth_video_get_stats (v, &st);
  GST_INFO ("rejoined: %" G_GUINT64_FORMAT " frames in 2 s, %d delivered", st.frames - frames,
            g_atomic_int_get (&again.buffers) - seen0);
  fail_unless (st.frames - frames >= 20 && st.frames - frames <= 32, "%" G_GUINT64_FORMAT " frames in 2 s (15 fps)",
               st.frames - frames);
  fail_unless (g_atomic_int_get (&again.buffers) - seen0 >= 20);
  fail_unless (!g_atomic_int_get (&again.first_delta));
  gst_object_unref (again_pad);

  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (fast_pad);
  gst_object_unref (slow_pad);
  gst_object_unref (pipeline);
  dragoman_booth_video_free (v);
}
GST_END_TEST;

static Suite *
booth_video_suite (void)
{
  Suite *s = suite_create ("booth_video");
  TCase *tc = tcase_create ("general");
  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 120); /* valgrind */
  tcase_add_test (tc, test_fan_out);
  return s;
}

GST_CHECK_MAIN (booth_video);
