/* program — see the header. */
#include "program.h"

#include <gst/app/app.h>

GST_DEBUG_CATEGORY_STATIC (program_debug);
#define GST_CAT_DEFAULT program_debug

/* A bridge from the room's pipeline into the program's: an appsink there, an
 * appsrc here. Buffers keep their instant: room running time → clock time →
 * program running time (both pipelines run on the system clock). */
typedef struct {
  DragomanProgram *p;
  GstElement *appsrc;
  GstCaps *caps; /* streaming thread of the room's appsink only */
} Bridge;

struct _DragomanProgram {
  const DragomanRoomConfig *room;
  GstElement *room_pipeline;
  GstElement *pipeline, *select, *video_tee;
  guint bus_watch;
  DragomanProgramMessageFunc message_func;
  gpointer message_data;
  GPtrArray *bridges; /* Bridge* */
  gint64 dropped;     /* atomic: buffers the bridges dropped (the program fell behind) */
  char *error;        /* the program pipeline's last error, main thread */
  GstPad *stage_pad, *slate_pad;
  GHashTable *audio_tees; /* lang -> tee (owned by the pipeline) */
  /* the keyframe gate: video streaming thread, under lock */
  GMutex lock;
  GstClockTime last_out_rt;
  gboolean need_keyframe;
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

GstClockTime
dragoman_pad_running_time (GstPad *pad, GstBuffer *buf)
{
  g_autoptr (GstEvent) ev = gst_pad_get_sticky_event (pad, GST_EVENT_SEGMENT, 0);
  const GstSegment *seg = NULL;
  if (!ev || !GST_BUFFER_PTS_IS_VALID (buf))
    return GST_CLOCK_TIME_NONE;
  gst_event_parse_segment (ev, &seg);
  return gst_segment_to_running_time (seg, GST_FORMAT_TIME, GST_BUFFER_PTS (buf));
}

static GstPadProbeReturn
keyframe_gate (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  DragomanProgram *p = data;
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);
  if (!buf || !GST_BUFFER_PTS_IS_VALID (buf))
    return GST_PAD_PROBE_OK;
  GstClockTime rt = dragoman_pad_running_time (pad, buf);
  if (!GST_CLOCK_TIME_IS_VALID (rt))
    return GST_PAD_PROBE_DROP;
  gboolean key = !GST_BUFFER_FLAG_IS_SET (buf, GST_BUFFER_FLAG_DELTA_UNIT);
  g_mutex_lock (&p->lock);
  /* After a switch (slate <-> stage) the new source's frames may be stamped before
   * the last one sent (its encoder runs later: seen ~1 s), and it starts mid-GOP:
   * a muxer fails on a step back, a player on a GOP without its keyframe. */
  gboolean pass = !(GST_CLOCK_TIME_IS_VALID (p->last_out_rt) && rt <= p->last_out_rt) && !(p->need_keyframe && !key);
  if (pass) {
    p->need_keyframe = FALSE;
    p->last_out_rt = rt;
  }
  g_mutex_unlock (&p->lock);
  return pass ? GST_PAD_PROBE_OK : GST_PAD_PROBE_DROP;
}

/* An encoder's priming can stamp the very first AAC frame before the segment's
 * start (running time < 0): splitmuxsink then fails the whole rendition with
 * "Timestamping error" (seen on orig, whose floor starts at running time ~0).
 * Such a frame is useless to a player anyway. */
static GstPadProbeReturn
drop_before_start (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);
  if (!buf)
    return GST_PAD_PROBE_OK;
  return GST_CLOCK_TIME_IS_VALID (dragoman_pad_running_time (pad, buf)) ? GST_PAD_PROBE_OK : GST_PAD_PROBE_DROP;
}

/* A bridge holds at most this much: the program (AAC encoders, the slate's x264,
 * HLS writers) may stall for a second without losing anything; beyond that it
 * loses its oldest data, counted, and the room never waits for it. */
#define BRIDGE_MAX_TIME (1 * GST_SECOND)

static GstFlowReturn
on_bridge_sample (GstAppSink *sink, gpointer data)
{
  Bridge *b = data;
  DragomanProgram *p = b->p;
  g_autoptr (GstSample) sample = gst_app_sink_pull_sample (sink);
  GstBuffer *buf = sample ? gst_sample_get_buffer (sample) : NULL;
  const GstSegment *seg = sample ? gst_sample_get_segment (sample) : NULL;
  GstCaps *caps = sample ? gst_sample_get_caps (sample) : NULL;
  if (!buf || !seg || !caps || !GST_BUFFER_PTS_IS_VALID (buf))
    return GST_FLOW_OK;
  GstClockTime rt = gst_segment_to_running_time (seg, GST_FORMAT_TIME, GST_BUFFER_PTS (buf));
  GstClockTime room_base = gst_element_get_base_time (p->room_pipeline);
  GstClockTime base = gst_element_get_base_time (p->pipeline);
  /* base 0: the program is not playing yet (its GST_STATE stays PAUSED until its
   * sinks have data, so that is no test) */
  if (!GST_CLOCK_TIME_IS_VALID (rt) || base == 0 || rt + room_base < base)
    return GST_FLOW_OK;
  if (gst_app_src_get_current_level_time (GST_APP_SRC (b->appsrc)) > BRIDGE_MAX_TIME) {
    g_atomic_pointer_add (&p->dropped, 1);
    return GST_FLOW_OK;
  }
  if (!b->caps || !gst_caps_is_equal (b->caps, caps)) {
    gst_app_src_set_caps (GST_APP_SRC (b->appsrc), caps);
    gst_caps_replace (&b->caps, caps);
  }
  GstBuffer *copy = gst_buffer_copy (buf); /* metadata only: the memory is shared */
  GST_BUFFER_PTS (copy) = rt + room_base - base;
  GstClockTime dts = GST_BUFFER_DTS_IS_VALID (buf) ? gst_segment_to_running_time (seg, GST_FORMAT_TIME,
                                                                                  GST_BUFFER_DTS (buf))
                                                   : GST_CLOCK_TIME_NONE;
  GST_BUFFER_DTS (copy) =
      GST_CLOCK_TIME_IS_VALID (dts) && dts + room_base >= base ? dts + room_base - base : GST_BUFFER_PTS (copy);
  /* the result is the program's business: the room never sees a program error */
  gst_app_src_push_buffer (GST_APP_SRC (b->appsrc), copy);
  return GST_FLOW_OK;
}

/* src (room pipeline) → leaky queue → appsink ⇒ appsrc (program pipeline); returns the appsrc */
static GstElement *
bridge (DragomanProgram *p, GstPad *src, const char *name)
{
  Bridge *b = g_new0 (Bridge, 1);
  b->p = p;
  GstElement *q = add (p->room_pipeline, "queue", NULL);
  g_object_set (q, "max-size-time", (guint64) GST_SECOND, "max-size-buffers", 0, "max-size-bytes", 0, "leaky", 2,
                NULL);
  g_autofree char *sname = g_strdup_printf ("program-bridge-%s", name);
  GstElement *sink = add (p->room_pipeline, "appsink", sname);
  g_object_set (sink, "sync", FALSE, "async", FALSE, "enable-last-sample", FALSE, NULL);
  GstAppSinkCallbacks cb = { .new_sample = on_bridge_sample };
  gst_app_sink_set_callbacks (GST_APP_SINK (sink), &cb, b, NULL);
  g_autoptr (GstPad) qsink = gst_element_get_static_pad (q, "sink");
  gst_pad_link (src, qsink);
  gst_element_link (q, sink);
  b->appsrc = add (p->pipeline, "appsrc", name);
  g_object_set (b->appsrc, "format", GST_FORMAT_TIME, "is-live", TRUE, "do-timestamp", FALSE, "max-bytes",
                (guint64) 0, NULL);
  g_ptr_array_add (p->bridges, b);
  return b->appsrc;
}

static void
bridge_free (gpointer data)
{
  Bridge *b = data;
  gst_clear_caps (&b->caps);
  g_free (b);
}

static gboolean
on_bus (GstBus *bus, GstMessage *msg, gpointer data)
{
  DragomanProgram *p = data;
  switch (GST_MESSAGE_TYPE (msg)) {
  case GST_MESSAGE_ERROR: {
    g_autoptr (GError) err = NULL;
    g_autofree char *dbg = NULL;
    gst_message_parse_error (msg, &err, &dbg);
    GST_WARNING ("ALERT room %s: program (HLS, outputs): %s: %s (%s)", p->room->id, GST_OBJECT_NAME (msg->src),
                 err->message, dbg);
    /* listeners and booths run in the room's pipeline and go on */
    if (!p->error)
      g_printerr ("room %s: the program (HLS, recordings, restreams) failed: %s: %s; listeners and booths go on\n",
                  p->room->id, GST_OBJECT_NAME (msg->src), err->message);
    g_free (p->error);
    p->error = g_strdup_printf ("%s: %s", GST_OBJECT_NAME (msg->src), err->message);
    break;
  }
  case GST_MESSAGE_LATENCY:
    gst_bin_recalculate_latency (GST_BIN (p->pipeline));
    break;
  case GST_MESSAGE_ELEMENT:
    if (p->message_func)
      p->message_func (msg, p->message_data);
    break;
  default:
    break;
  }
  return G_SOURCE_CONTINUE;
}

DragomanProgram *
dragoman_program_new (GstElement *room_pipeline, const DragomanRoomConfig *room)
{
  if (!program_debug)
    GST_DEBUG_CATEGORY_INIT (program_debug, "dragoman-program", 0, "dragoman program (video + AAC)");
  DragomanProgram *p = g_new0 (DragomanProgram, 1);
  p->room = room;
  p->room_pipeline = room_pipeline;
  g_autofree char *pname = g_strdup_printf ("program-%s", room->id);
  GstElement *pipeline = p->pipeline = gst_object_ref_sink (gst_pipeline_new (pname));
  /* the room's clock: a buffer's instant is the same in both pipelines */
  g_autoptr (GstClock) clock = gst_system_clock_obtain ();
  gst_pipeline_use_clock (GST_PIPELINE (room_pipeline), clock);
  gst_pipeline_use_clock (GST_PIPELINE (pipeline), clock);
  p->bridges = g_ptr_array_new_with_free_func (bridge_free);
  g_autoptr (GstBus) bus = gst_pipeline_get_bus (GST_PIPELINE (pipeline));
  p->bus_watch = gst_bus_add_watch (bus, on_bus, p);
  p->audio_tees = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  p->last_out_rt = GST_CLOCK_TIME_NONE;
  g_mutex_init (&p->lock);

  /* the slate: what viewers see while the stage is lost. 5 fps at 640x360 costs
   * next to nothing to encode, keyframes every second for quick joins */
  GstElement *slate = add (pipeline, "videotestsrc", "program-slate");
  g_object_set (slate, "is-live", TRUE, "pattern", 2 /* black */, NULL);
  GstElement *scaps = add (pipeline, "capsfilter", NULL);
  g_autoptr (GstCaps) sc = gst_caps_from_string ("video/x-raw,width=640,height=360,framerate=5/1");
  g_object_set (scaps, "caps", sc, NULL);
  GstElement *text = add (pipeline, "textoverlay", NULL);
  g_object_set (text, "text", "The stream will resume shortly", "valignment", 4 /* center */, "halignment", 1,
                "font-desc", "Sans 24", NULL);
  GstElement *conv = add (pipeline, "videoconvert", NULL);
  GstElement *i420 = add (pipeline, "capsfilter", NULL);
  /* 4:2:0 8-bit: what every browser decodes (x264 picks 4:4:4 when left alone) */
  g_autoptr (GstCaps) ic = gst_caps_from_string ("video/x-raw,format=I420");
  g_object_set (i420, "caps", ic, NULL);
  GstElement *enc = add (pipeline, "x264enc", NULL);
  gst_util_set_object_arg (G_OBJECT (enc), "tune", "zerolatency");
  gst_util_set_object_arg (G_OBJECT (enc), "speed-preset", "ultrafast");
  g_object_set (enc, "key-int-max", 5, "bitrate", 200, NULL);
  GstElement *parse = add (pipeline, "h264parse", NULL);
  g_object_set (parse, "config-interval", -1, NULL);
  GstElement *pcaps = add (pipeline, "capsfilter", NULL);
  g_autoptr (GstCaps) hc = gst_caps_from_string ("video/x-h264,stream-format=byte-stream,alignment=au");
  g_object_set (pcaps, "caps", hc, NULL);
  gst_element_link_many (slate, scaps, text, conv, i420, enc, parse, pcaps, NULL);

  p->select = add (pipeline, "input-selector", "program-video-select");
  g_object_set (p->select, "sync-streams", FALSE, NULL);
  p->slate_pad = gst_element_request_pad_simple (p->select, "sink_%u");
  g_autoptr (GstPad) psrc = gst_element_get_static_pad (pcaps, "src");
  gst_pad_link (psrc, p->slate_pad);
  g_object_set (p->select, "active-pad", p->slate_pad, NULL);
  p->video_tee = add (pipeline, "tee", "program-video");
  g_object_set (p->video_tee, "allow-not-linked", TRUE, NULL);
  gst_element_link (p->select, p->video_tee);
  g_autoptr (GstPad) sel_src = gst_element_get_static_pad (p->select, "src");
  gst_pad_add_probe (sel_src, GST_PAD_PROBE_TYPE_BUFFER, keyframe_gate, p, NULL);
  return p;
}

void
dragoman_program_link_video (DragomanProgram *p, GstPad *h264)
{
  if (!h264)
    return;
  GstElement *src = bridge (p, h264, "stage-video");
  p->stage_pad = gst_element_request_pad_simple (p->select, "sink_%u");
  g_autoptr (GstPad) ssrc = gst_element_get_static_pad (src, "src");
  gst_pad_link (ssrc, p->stage_pad);
}

void
dragoman_program_link_audio (DragomanProgram *p, const char *lang, GstPad *pcm)
{
  /* AAC is not on the low-latency path: the bridge's leaky queue keeps it off the
   * Opus thread and never blocks it (seen before bridges: orig silent while its HLS
   * sat at segment 1), and its appsink never returns an output's error to the
   * channel's tee (a tee passes a branch's error upstream: one full HLS disk
   * would have stopped the channel) */
  g_autofree char *bname = g_strdup_printf ("pcm-%s", lang);
  GstElement *q = bridge (p, pcm, bname);
  GstElement *conv = add (p->pipeline, "audioconvert", NULL);
  GstElement *enc = add (p->pipeline, "avenc_aac", NULL);
  g_object_set (enc, "bitrate", DRAGOMAN_AAC_BITRATE, NULL);
  GstElement *parse = add (p->pipeline, "aacparse", NULL);
  g_autofree char *tname = g_strdup_printf ("program-aac-%s", lang);
  GstElement *tee = add (p->pipeline, "tee", tname);
  g_object_set (tee, "allow-not-linked", TRUE, NULL);
  gst_element_link_many (q, conv, enc, parse, tee, NULL);
  g_autoptr (GstPad) psrc = gst_element_get_static_pad (parse, "src");
  gst_pad_add_probe (psrc, GST_PAD_PROBE_TYPE_BUFFER, drop_before_start, NULL, NULL);
  g_hash_table_insert (p->audio_tees, g_strdup (lang), tee);
}

void
dragoman_program_set_stage_live (DragomanProgram *p, gboolean live)
{
  if (!p || !p->stage_pad)
    return;
  g_mutex_lock (&p->lock);
  p->need_keyframe = TRUE;
  g_mutex_unlock (&p->lock);
  g_object_set (p->select, "active-pad", live ? p->stage_pad : p->slate_pad, NULL);
  GST_INFO ("room %s: program video now %s", p->room->id, live ? "the stage" : "the slate");
}

GstElement *
dragoman_program_get_video_tee (DragomanProgram *p)
{
  return p->video_tee;
}

GstElement *
dragoman_program_get_audio_tee (DragomanProgram *p, const char *lang)
{
  return g_hash_table_lookup (p->audio_tees, lang);
}

gboolean
dragoman_program_start (DragomanProgram *p)
{
  return gst_element_set_state (p->pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE;
}

void
dragoman_program_stop (DragomanProgram *p)
{
  if (p)
    gst_element_set_state (p->pipeline, GST_STATE_NULL);
}

GstElement *
dragoman_program_get_pipeline (DragomanProgram *p)
{
  return p->pipeline;
}

void
dragoman_program_set_message_func (DragomanProgram *p, DragomanProgramMessageFunc func, gpointer data)
{
  p->message_func = func;
  p->message_data = data;
}

const char *
dragoman_program_get_error (DragomanProgram *p)
{
  return p ? p->error : NULL;
}

guint64
dragoman_program_get_dropped (DragomanProgram *p)
{
  return p ? (guint64) g_atomic_pointer_get (&p->dropped) : 0;
}

void
dragoman_program_free (DragomanProgram *p)
{
  if (!p)
    return;
  g_source_remove (p->bus_watch);
  gst_element_set_state (p->pipeline, GST_STATE_NULL);
  gst_object_unref (p->pipeline);
  g_ptr_array_unref (p->bridges);
  g_free (p->error);
  g_clear_object (&p->stage_pad);
  g_clear_object (&p->slate_pad);
  g_hash_table_unref (p->audio_tees);
  g_mutex_clear (&p->lock);
  g_free (p);
}
