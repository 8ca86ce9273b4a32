/* program — see the header. */
#include "program.h"

GST_DEBUG_CATEGORY_STATIC (program_debug);
#define GST_CAT_DEFAULT program_debug

struct _DragomanProgram {
  const DragomanRoomConfig *room;
  GstElement *pipeline, *select, *video_tee;
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

static GstPadProbeReturn
keyframe_gate (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  DragomanProgram *p = data;
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);
  if (!buf || !GST_BUFFER_PTS_IS_VALID (buf))
    return GST_PAD_PROBE_OK;
  /* running time, not PTS: x264enc, for one, starts its segment at 1000 hours */
  g_autoptr (GstEvent) ev = gst_pad_get_sticky_event (pad, GST_EVENT_SEGMENT, 0);
  const GstSegment *seg = NULL;
  if (!ev)
    return GST_PAD_PROBE_OK;
  gst_event_parse_segment (ev, &seg);
  GstClockTime rt = gst_segment_to_running_time (seg, GST_FORMAT_TIME, GST_BUFFER_PTS (buf));
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
  g_autoptr (GstEvent) ev = gst_pad_get_sticky_event (pad, GST_EVENT_SEGMENT, 0);
  const GstSegment *seg = NULL;
  if (!buf || !ev)
    return GST_PAD_PROBE_OK;
  gst_event_parse_segment (ev, &seg);
  if (!GST_BUFFER_PTS_IS_VALID (buf) ||
      !GST_CLOCK_TIME_IS_VALID (gst_segment_to_running_time (seg, GST_FORMAT_TIME, GST_BUFFER_PTS (buf))))
    return GST_PAD_PROBE_DROP;
  return GST_PAD_PROBE_OK;
}

DragomanProgram *
dragoman_program_new (GstElement *pipeline, const DragomanRoomConfig *room)
{
  if (!program_debug)
    GST_DEBUG_CATEGORY_INIT (program_debug, "dragoman-program", 0, "dragoman program (video + AAC)");
  DragomanProgram *p = g_new0 (DragomanProgram, 1);
  p->room = room;
  p->pipeline = pipeline;
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
  p->stage_pad = gst_element_request_pad_simple (p->select, "sink_%u");
  gst_pad_link (h264, p->stage_pad);
}

void
dragoman_program_link_audio (DragomanProgram *p, const char *lang, GstPad *pcm)
{
  GstElement *q = add (p->pipeline, "queue", NULL);
  /* AAC is not on the low-latency path: a roomy queue keeps it off the Opus thread,
   * and a leaky one never blocks it: if an output stalls (a muxer waiting for
   * video), the channel's tee must not, or every listener of the channel would
   * stall with it (seen: orig silent while its HLS sat at segment 1) */
  g_object_set (q, "max-size-time", (guint64) GST_SECOND, "max-size-buffers", 0, "max-size-bytes", 0, "leaky",
                2 /* downstream: drop the oldest */, NULL);
  GstElement *conv = add (p->pipeline, "audioconvert", NULL);
  GstElement *enc = add (p->pipeline, "avenc_aac", NULL);
  g_object_set (enc, "bitrate", DRAGOMAN_AAC_BITRATE, NULL);
  GstElement *parse = add (p->pipeline, "aacparse", NULL);
  g_autofree char *tname = g_strdup_printf ("program-aac-%s", lang);
  GstElement *tee = add (p->pipeline, "tee", tname);
  g_object_set (tee, "allow-not-linked", TRUE, NULL);
  gst_element_link_many (q, conv, enc, parse, tee, NULL);
  g_autoptr (GstPad) qsink = gst_element_get_static_pad (q, "sink");
  gst_pad_link (pcm, qsink);
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

void
dragoman_program_free (DragomanProgram *p)
{
  if (!p)
    return;
  g_clear_object (&p->stage_pad);
  g_clear_object (&p->slate_pad);
  g_hash_table_unref (p->audio_tees);
  g_mutex_clear (&p->lock);
  g_free (p);
}
