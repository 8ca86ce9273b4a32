/* booth_video — see the header for the shape and the why. */
#include "booth_video.h"

#include "program.h"

#include <gst/app/app.h>
#include <gst/video/video.h>

GST_DEBUG_CATEGORY_STATIC (booth_video_debug);
#define GST_CAT_DEFAULT booth_video_debug

/* 500 ms of frames at 15 fps: the most a peer's appsrc may hold before its frames
 * are dropped up to the next keyframe. The appsrc's own bound (twice that, leaky)
 * is only a backstop. */
#define MAX_BACKLOG_FRAMES (DRAGOMAN_BOOTH_VIDEO_MAX_BACKLOG_MS * DRAGOMAN_BOOTH_VIDEO_FPS / 1000)
#define FRAME_TIME (GST_SECOND / DRAGOMAN_BOOTH_VIDEO_FPS)

typedef struct {
  GstElement *appsrc;
  gboolean need_key; /* nothing sent yet, or frames dropped: wait for a keyframe */
} Consumer;

struct _DragomanBoothVideo {
  const DragomanRoomConfig *room;
  GstElement *pipeline, *select, *enc;
  GstPad *stage_pad, *black_pad; /* the selector's sink pads */
  GstPad *enc_src;
  gint on;             /* atomic: 1 while a consumer is registered */
  gint stage_need_key; /* atomic: the stage gate waits for a keyframe */
  gint want_key;       /* atomic: a keyframe was asked for */
  GstClockTime next_slot; /* the decoder's src pad probe: the next stage frame to keep */
  /* the selector's src pad probe (one streaming thread) */
  GstSegment segment;
  GstClockTime last_rt, enc_slot; /* enc_slot: the grid again, across switches */
  gint64 last_forced_us;
  /* counters (atomics) */
  guint64 frames, keyframes, forced, dropped, stage_dropped;
  GMutex lock;
  GPtrArray *consumers; /* Consumer*, protected by lock */
};

static GstElement *
add (GstElement *pipeline, const char *factory, const char *name)
{
  GstElement *e = gst_element_factory_make (factory, name);
  if (!e)
    g_error ("missing GStreamer element '%s': run `make deps`", factory);
  gst_bin_add (GST_BIN (pipeline), e);
  return e;
}

static void
count (guint64 *counter)
{
  __atomic_fetch_add (counter, 1, __ATOMIC_RELAXED);
}

/* Before the decoder: nothing while nobody watches; after opening, nothing
 * before the stage's next keyframe. */
static GstPadProbeReturn
stage_gate (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  DragomanBoothVideo *v = data;
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);
  if (!g_atomic_int_get (&v->on)) {
    g_atomic_int_set (&v->stage_need_key, 1);
    return GST_PAD_PROBE_DROP;
  }
  if (g_atomic_int_get (&v->stage_need_key)) {
    if (GST_BUFFER_FLAG_IS_SET (buf, GST_BUFFER_FLAG_DELTA_UNIT))
      return GST_PAD_PROBE_DROP;
    g_atomic_int_set (&v->stage_need_key, 0);
  }
  return GST_PAD_PROBE_OK;
}

/* the decoder fell 60 frames behind (a 4K stage on a busy machine): the queue drops
 * the newest, so what follows must wait for a keyframe */
static void
on_stage_overrun (GstElement *queue, gpointer data)
{
  DragomanBoothVideo *v = data;
  count (&v->stage_dropped);
  g_atomic_int_set (&v->stage_need_key, 1);
}

/* The stage's frames thinned to 15 fps, by their running time, before scaling.
 * (videorate, tried first, paces on its own timeline: after the gate had been
 * closed it passed every frame, stamped seconds behind the stage.) */
static gboolean
on_grid (GstClockTime *next_slot, GstClockTime rt)
{
  /* 1 ms of slack: a 30 fps stage's every other frame lands on the slot */
  if (GST_CLOCK_TIME_IS_VALID (*next_slot) && rt + GST_MSECOND < *next_slot)
    return FALSE;
  /* keep the 15 fps grid while frames come; after a gap start a new one */
  if (GST_CLOCK_TIME_IS_VALID (*next_slot) && rt < *next_slot + FRAME_TIME)
    *next_slot += FRAME_TIME;
  else
    *next_slot = rt + FRAME_TIME;
  return TRUE;
}

static GstPadProbeReturn
decimate (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  DragomanBoothVideo *v = data;
  GstClockTime rt = dragoman_pad_running_time (pad, GST_PAD_PROBE_INFO_BUFFER (info));
  gboolean keep = GST_CLOCK_TIME_IS_VALID (rt) && on_grid (&v->next_slot, rt);
  GST_LOG ("stage frame at %" GST_TIME_FORMAT ": %s", GST_TIME_ARGS (rt), keep ? "kept" : "dropped");
  return keep ? GST_PAD_PROBE_OK : GST_PAD_PROBE_DROP;
}

/* Before the encoder: one timeline, the room's running time. The stage's and
 * the black input's segments differ, and a switch can step back in time (the
 * program saw ~1 s); the encoder gets a plain 0-based segment and frames stamped
 * with their running time, only ever moving on. Also where a keyframe request
 * becomes an event, at most one per KEY_GAP. */
static GstPadProbeReturn
encoder_gate (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  DragomanBoothVideo *v = data;
  if (info->type & GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM) {
    GstEvent *ev = GST_PAD_PROBE_INFO_EVENT (info);
    if (GST_EVENT_TYPE (ev) == GST_EVENT_CAPS) {
      /* the stage's caps carry its own rate: the encoder sees 15 fps from both
       * inputs, so a switch does not restart it */
      GstCaps *caps;
      gst_event_parse_caps (ev, &caps);
      GstCaps *fixed = gst_caps_copy (caps);
      gst_caps_set_simple (fixed, "framerate", GST_TYPE_FRACTION, DRAGOMAN_BOOTH_VIDEO_FPS, 1, NULL);
      gst_event_unref (ev);
      GST_PAD_PROBE_INFO_DATA (info) = gst_event_new_caps (fixed);
      gst_caps_unref (fixed);
      return GST_PAD_PROBE_OK;
    }
    if (GST_EVENT_TYPE (ev) != GST_EVENT_SEGMENT)
      return GST_PAD_PROBE_OK;
    const GstSegment *seg;
    gst_event_parse_segment (ev, &seg);
    gst_segment_copy_into (seg, &v->segment);
    GstSegment plain;
    gst_segment_init (&plain, GST_FORMAT_TIME);
    gst_event_unref (ev);
    GST_PAD_PROBE_INFO_DATA (info) = gst_event_new_segment (&plain);
    return GST_PAD_PROBE_OK;
  }
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);
  if (!g_atomic_int_get (&v->on) || !buf || !GST_BUFFER_PTS_IS_VALID (buf) || v->segment.format != GST_FORMAT_TIME)
    return GST_PAD_PROBE_DROP;
  GstClockTime rt = gst_segment_to_running_time (&v->segment, GST_FORMAT_TIME, GST_BUFFER_PTS (buf));
  if (!GST_CLOCK_TIME_IS_VALID (rt) || (GST_CLOCK_TIME_IS_VALID (v->last_rt) && rt <= v->last_rt) ||
      !on_grid (&v->enc_slot, rt)) {
    GST_LOG ("encoder input at %" GST_TIME_FORMAT " dropped (last %" GST_TIME_FORMAT ")", GST_TIME_ARGS (rt),
             GST_TIME_ARGS (v->last_rt));
    return GST_PAD_PROBE_DROP;
  }
  v->last_rt = rt;
  buf = gst_buffer_make_writable (buf);
  GST_BUFFER_PTS (buf) = rt;
  GST_BUFFER_DTS (buf) = GST_CLOCK_TIME_NONE;
  GST_BUFFER_DURATION (buf) = FRAME_TIME;
  GST_PAD_PROBE_INFO_DATA (info) = buf;

  gint64 now = g_get_monotonic_time ();
  if (g_atomic_int_get (&v->want_key) && now - v->last_forced_us >= DRAGOMAN_BOOTH_VIDEO_KEY_GAP_MS * 1000) {
    g_atomic_int_set (&v->want_key, 0);
    v->last_forced_us = now;
    count (&v->forced);
    gst_pad_send_event (v->enc_src, gst_video_event_new_upstream_force_key_unit (GST_CLOCK_TIME_NONE, TRUE, 0));
  }
  return GST_PAD_PROBE_OK;
}

/* The encoder's thread: every frame to every consumer, by reference. Each peer's
 * appsrc stamps it on the way out (do-timestamp), as the return feed's Opus is:
 * a live appsrc waits for a buffer's running time, and an SRT stage's frames are
 * stamped up to ~0.5 s ahead of the clock (tsdemux), which held every frame back
 * that long, tripped the backlog rule and left 4-5 fps of 15 (seen). */
static GstFlowReturn
on_frame (GstAppSink *sink, gpointer data)
{
  DragomanBoothVideo *v = data;
  g_autoptr (GstSample) sample = gst_app_sink_pull_sample (sink);
  GstBuffer *buf = sample ? gst_sample_get_buffer (sample) : NULL;
  if (!buf)
    return GST_FLOW_OK;
  gboolean key = !GST_BUFFER_FLAG_IS_SET (buf, GST_BUFFER_FLAG_DELTA_UNIT);
  GST_LOG ("encoded %s at %" GST_TIME_FORMAT ", %" G_GSIZE_FORMAT " bytes", key ? "keyframe" : "frame",
           GST_TIME_ARGS (GST_BUFFER_PTS (buf)), gst_buffer_get_size (buf));
  count (&v->frames);
  if (key)
    count (&v->keyframes);
  GstBuffer *out = gst_buffer_copy (buf); /* metadata only: the frame's memory is shared */
  GST_BUFFER_PTS (out) = GST_BUFFER_DTS (out) = GST_CLOCK_TIME_NONE;
  g_mutex_lock (&v->lock);
  for (guint i = 0; i < v->consumers->len; i++) {
    Consumer *c = v->consumers->pdata[i];
    if (c->need_key && !key) {
      GST_LOG ("%s waits for a keyframe", GST_OBJECT_NAME (c->appsrc));
      continue;
    }
    if (gst_app_src_get_current_level_buffers (GST_APP_SRC (c->appsrc)) >= MAX_BACKLOG_FRAMES) {
      if (!c->need_key)
        GST_INFO ("room %s: %s is %d frames behind: dropping up to the next keyframe", v->room->id,
                  GST_OBJECT_NAME (c->appsrc), MAX_BACKLOG_FRAMES);
      c->need_key = TRUE;
      count (&v->dropped);
      continue;
    }
    c->need_key = FALSE;
    gst_app_src_push_buffer (GST_APP_SRC (c->appsrc), gst_buffer_ref (out));
  }
  g_mutex_unlock (&v->lock);
  gst_buffer_unref (out);
  return GST_FLOW_OK;
}

DragomanBoothVideo *
dragoman_booth_video_new (GstElement *pipeline, const DragomanRoomConfig *room, GstPad *stage_h264)
{
  if (!booth_video_debug)
    GST_DEBUG_CATEGORY_INIT (booth_video_debug, "dragoman-booth-video", 0, "dragoman stage video to the booths");
  DragomanBoothVideo *v = g_new0 (DragomanBoothVideo, 1);
  v->room = room;
  v->pipeline = pipeline;
  v->last_rt = GST_CLOCK_TIME_NONE;
  v->next_slot = v->enc_slot = GST_CLOCK_TIME_NONE;
  v->stage_need_key = 1;
  gst_segment_init (&v->segment, GST_FORMAT_UNDEFINED);
  g_mutex_init (&v->lock);
  v->consumers = g_ptr_array_new ();

  /* no frame rate: the stage's own (thinned by decimate); black comes at 15 */
  g_autofree char *raw = g_strdup_printf ("video/x-raw,format=I420,width=%d,height=%d,pixel-aspect-ratio=1/1",
                                          room->booth_video_width, room->booth_video_height);
  g_autoptr (GstCaps) rawcaps = gst_caps_from_string (raw);
  g_autofree char *black_raw = g_strdup_printf ("%s,framerate=%d/1", raw, DRAGOMAN_BOOTH_VIDEO_FPS);
  g_autoptr (GstCaps) blackcaps = gst_caps_from_string (black_raw);

  /* the stage: 60 frames of H.264 at most (2 s at 30 fps), then the newest are
   * dropped (counted). Counted in frames, not time: an SRT stage's timestamps
   * jitter under load, and a time limit read the jitter as a full queue (overruns
   * seen with 0.3 s of frames in it) */
  GstElement *q = add (pipeline, "queue", "booth-video-queue");
  g_object_set (q, "max-size-time", (guint64) 0, "max-size-buffers", 60, "max-size-bytes", 0, "leaky",
                1 /* upstream */, NULL);
  g_signal_connect (q, "overrun", G_CALLBACK (on_stage_overrun), v);
  GstElement *dec = add (pipeline, "avdec_h264", "booth-video-decode");
  /* one thread: frame threads would add a frame of delay each; a broken frame is
   * dropped rather than shown smeared */
  g_object_set (dec, "max-threads", 1, "output-corrupt", FALSE, NULL);
  GstElement *scale = add (pipeline, "videoscale", "booth-video-scale");
  GstElement *conv = add (pipeline, "videoconvert", "booth-video-convert");
  GstElement *caps = add (pipeline, "capsfilter", "booth-video-caps");
  g_object_set (caps, "caps", rawcaps, NULL);
  g_autoptr (GstPad) qsink = gst_element_get_static_pad (q, "sink");
  gst_pad_add_probe (qsink, GST_PAD_PROBE_TYPE_BUFFER, stage_gate, v, NULL);
  gst_pad_link (stage_h264, qsink);
  gst_element_link_many (q, dec, scale, conv, caps, NULL);
  g_autoptr (GstPad) dsrc = gst_element_get_static_pad (dec, "src");
  gst_pad_add_probe (dsrc, GST_PAD_PROBE_TYPE_BUFFER, decimate, v, NULL);

  /* black while the stage is lost: the page says why, in the interpreter's language */
  GstElement *black = add (pipeline, "videotestsrc", "booth-video-black");
  g_object_set (black, "is-live", TRUE, "pattern", 2 /* black */, NULL);
  GstElement *bcaps = add (pipeline, "capsfilter", "booth-video-black-caps");
  g_object_set (bcaps, "caps", blackcaps, NULL);
  gst_element_link (black, bcaps);

  v->select = add (pipeline, "input-selector", "booth-video-select");
  g_object_set (v->select, "sync-streams", FALSE, NULL);
  v->stage_pad = gst_element_request_pad_simple (v->select, "sink_%u");
  v->black_pad = gst_element_request_pad_simple (v->select, "sink_%u");
  g_autoptr (GstPad) csrc = gst_element_get_static_pad (caps, "src");
  g_autoptr (GstPad) bsrc = gst_element_get_static_pad (bcaps, "src");
  gst_pad_link (csrc, v->stage_pad);
  gst_pad_link (bsrc, v->black_pad);
  g_object_set (v->select, "active-pad", v->black_pad, NULL);

  /* VP8 the way browsers' own realtime encoders run it: CBR, no lag, one thread;
   * cpu-used 8 cost about 1 % of a core at 640x360 (docs/performance.md); the
   * 1000/500/600 ms rate buffer is libwebrtc's */
  v->enc = add (pipeline, "vp8enc", "booth-video-encode");
  g_object_set (v->enc, "deadline", (gint64) 1, "cpu-used", 8, "target-bitrate", room->booth_video_kbps * 1000,
                "keyframe-max-dist", DRAGOMAN_BOOTH_VIDEO_GOP_FRAMES, "lag-in-frames", 0, "threads", 1, "buffer-size",
                1000, "buffer-initial-size", 500, "buffer-optimal-size", 600, "max-quantizer", 56, NULL);
  gst_util_set_object_arg (G_OBJECT (v->enc), "end-usage", "cbr");
  gst_util_set_object_arg (G_OBJECT (v->enc), "error-resilient", "default");
  GstElement *sink = add (pipeline, "appsink", "booth-video-sink");
  g_object_set (sink, "sync", FALSE, "async", FALSE, "enable-last-sample", FALSE, "max-buffers", 2, "drop", TRUE, NULL);
  GstAppSinkCallbacks cb = {.new_sample = on_frame};
  gst_app_sink_set_callbacks (GST_APP_SINK (sink), &cb, v, NULL);
  gst_element_link_many (v->select, v->enc, sink, NULL);
  g_autoptr (GstPad) ssrc = gst_element_get_static_pad (v->select, "src");
  gst_pad_add_probe (ssrc, GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, encoder_gate, v, NULL);
  v->enc_src = gst_element_get_static_pad (v->enc, "src");
  GST_INFO ("room %s: booth video %dx%d %d fps %d kbit/s VP8", room->id, room->booth_video_width,
            room->booth_video_height, DRAGOMAN_BOOTH_VIDEO_FPS, room->booth_video_kbps);
  return v;
}

void
dragoman_booth_video_free (DragomanBoothVideo *v)
{
  if (!v)
    return;
  for (guint i = 0; i < v->consumers->len; i++) {
    Consumer *c = v->consumers->pdata[i];
    gst_object_unref (c->appsrc);
    g_free (c);
  }
  g_ptr_array_unref (v->consumers);
  g_clear_object (&v->stage_pad);
  g_clear_object (&v->black_pad);
  g_clear_object (&v->enc_src);
  g_mutex_clear (&v->lock);
  g_free (v);
}

void
dragoman_booth_video_set_stage_live (DragomanBoothVideo *v, gboolean live)
{
  if (!v)
    return;
  g_object_set (v->select, "active-pad", live ? v->stage_pad : v->black_pad, NULL);
  dragoman_booth_video_request_keyframe (v); /* a cut: start the new picture clean */
  GST_INFO ("room %s: booth video now %s", v->room->id, live ? "the stage" : "black (stage lost)");
}

void
dragoman_booth_video_request_keyframe (DragomanBoothVideo *v)
{
  g_atomic_int_set (&v->want_key, 1);
}

void
dragoman_booth_video_add (DragomanBoothVideo *v, GstElement *appsrc)
{
  g_autoptr (GstCaps) caps = gst_caps_from_string ("video/x-vp8");
  g_object_set (appsrc, "caps", caps, "format", GST_FORMAT_TIME, "is-live", TRUE, "do-timestamp", TRUE, "max-bytes",
                (guint64)0, "max-buffers", (guint64)(2 * MAX_BACKLOG_FRAMES), "leaky-type",
                2 /* downstream: drop old */, NULL);
  Consumer *c = g_new0 (Consumer, 1);
  c->appsrc = gst_object_ref (appsrc);
  c->need_key = TRUE;
  g_mutex_lock (&v->lock);
  g_ptr_array_add (v->consumers, c);
  guint n = v->consumers->len;
  g_atomic_int_set (&v->on, 1);
  g_mutex_unlock (&v->lock);
  dragoman_booth_video_request_keyframe (v);
  GST_INFO ("room %s: %s takes the booth video (%u peers)", v->room->id, GST_OBJECT_NAME (appsrc), n);
}

void
dragoman_booth_video_remove (DragomanBoothVideo *v, GstElement *appsrc)
{
  Consumer *found = NULL;
  g_mutex_lock (&v->lock);
  for (guint i = 0; i < v->consumers->len && !found; i++)
    if (((Consumer *) v->consumers->pdata[i])->appsrc == appsrc)
      found = g_ptr_array_steal_index (v->consumers, i);
  guint n = v->consumers->len;
  if (n == 0)
    g_atomic_int_set (&v->on, 0); /* decoding and encoding stop here */
  g_mutex_unlock (&v->lock);
  if (!found)
    return;
  gst_object_unref (found->appsrc);
  g_free (found);
  GST_INFO ("room %s: a peer left the booth video (%u peers%s)", v->room->id, n, n ? "" : ": encoder idle");
}

void
dragoman_booth_video_get_stats (DragomanBoothVideo *v, DragomanBoothVideoStats *st)
{
  g_mutex_lock (&v->lock);
  st->consumers = v->consumers->len;
  g_mutex_unlock (&v->lock);
  st->frames = __atomic_load_n (&v->frames, __ATOMIC_RELAXED);
  st->keyframes = __atomic_load_n (&v->keyframes, __ATOMIC_RELAXED);
  st->forced = __atomic_load_n (&v->forced, __ATOMIC_RELAXED);
  st->dropped = __atomic_load_n (&v->dropped, __ATOMIC_RELAXED);
  st->stage_dropped = __atomic_load_n (&v->stage_dropped, __ATOMIC_RELAXED);
}
