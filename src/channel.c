/* channel — mixer, gains and the one Opus encoder of a channel.
 *
 *   floor ─ volume(floor gain) ─┐
 *                               ├─ audiomixer (S16: saturating add) ─ opusenc ─ appsink → fanout
 *   voice ─ volume(voice gain) ─┘
 *
 * Gains are driven by GstController linear ramps, evaluated per sample by the
 * volume element, so transitions never click. Mixing in S16 saturates instead of
 * wrapping (audiomixer uses saturating adds for integer formats). */
#include "channel.h"

#include <gst/app/gstappsink.h>
#include <gst/controller/gstdirectcontrolbinding.h>
#include <gst/controller/gstinterpolationcontrolsource.h>
#include <math.h>

GST_DEBUG_CATEGORY_STATIC (channel_debug);
#define GST_CAT_DEFAULT channel_debug

#define PCM_CAPS "audio/x-raw,format=S16LE,rate=48000,channels=1,layout=interleaved"

struct _DragomanChannel {
  char *room;
  char *lang;
  GstElement *bin;
  GstControlSource *floor_gain; /* on the floor volume element */
  GstControlSource *voice_gain; /* NULL without a voice */
  DragomanFanout *fanout;       /* borrowed; owned by the room */
  /* main thread only */
  double duck;                  /* linear */
  gboolean on_air, cough, force_floor;
  DragomanChannelMode published; /* last state sent to listeners */
};

static GstControlSource *
add_gain (GstElement *volume, double initial)
{
  GstControlSource *cs = gst_interpolation_control_source_new ();
  g_object_set (cs, "mode", GST_INTERPOLATION_MODE_LINEAR, NULL);
  gst_timed_value_control_source_set (GST_TIMED_VALUE_CONTROL_SOURCE (cs), 0, initial);
  gst_object_add_control_binding (GST_OBJECT (volume),
                                  gst_direct_control_binding_new_absolute (GST_OBJECT (volume), "volume", cs));
  return cs;
}

/* Start a linear ramp at `at` from the current value to `target` over `ms`. Points
 * after `at` are replaced; points older than a second are pruned (no unbounded growth). */
static void
ramp (GstControlSource *cs, GstClockTime at, guint ms, double target)
{
  GstTimedValueControlSource *tv = GST_TIMED_VALUE_CONTROL_SOURCE (cs);
  double current = target;
  gst_control_source_get_value (cs, at, &current);
  GList *points = gst_timed_value_control_source_get_all (tv);
  for (GList *p = points; p; p = p->next) {
    GstClockTime ts = ((GstTimedValue *) p->data)->timestamp;
    if (ts >= at || ts + GST_SECOND < at)
      gst_timed_value_control_source_unset (tv, ts);
  }
  g_list_free (points);
  gst_timed_value_control_source_set (tv, at, current);
  gst_timed_value_control_source_set (tv, at + ms * GST_MSECOND, target);
}

static GstClockTime
running_time_now (DragomanChannel *ch)
{
  g_autoptr (GstClock) clock = gst_element_get_clock (ch->bin);
  if (!clock)
    return 0;
  GstClockTime now = gst_clock_get_time (clock), base = gst_element_get_base_time (ch->bin);
  return now > base ? now - base : 0;
}

/* tell the listeners (fanout text message) when the mode changes */
static void
publish_state (DragomanChannel *ch)
{
  DragomanChannelMode mode = dragoman_channel_get_mode (ch);
  if (!ch->fanout || mode == ch->published)
    return;
  ch->published = mode;
  g_autofree char *json = g_strdup_printf ("{\"type\":\"state\",\"room\":\"%s\",\"lang\":\"%s\",\"state\":\"%s\"}",
                                           ch->room, ch->lang, dragoman_channel_mode_name (mode));
  dragoman_fanout_set_state (ch->fanout, json);
}

static void
apply (DragomanChannel *ch, GstClockTime at, gboolean was_ducked)
{
  if (!ch->voice_gain)
    return;
  if (at == GST_CLOCK_TIME_NONE)
    at = running_time_now (ch);
  gboolean live = ch->on_air && !ch->force_floor;
  /* cough mutes the voice but keeps the floor down: the interpreter resumes in a second */
  ramp (ch->voice_gain, at, DRAGOMAN_RAMP_VOICE_MS, live && !ch->cough ? 1.0 : 0.0);
  ramp (ch->floor_gain, at, live ? DRAGOMAN_RAMP_DUCK_MS : DRAGOMAN_RAMP_UNDUCK_MS, live ? ch->duck : 1.0);
  if (live != was_ducked)
    GST_INFO ("%s/%s: %s", ch->room, ch->lang, dragoman_channel_mode_name (dragoman_channel_get_mode (ch)));
  publish_state (ch);
}

void
dragoman_channel_set_input (DragomanChannel *ch, gboolean on_air, gboolean cough, gboolean force_floor,
                            GstClockTime at)
{
  gboolean was = ch->on_air && !ch->force_floor;
  ch->on_air = on_air;
  ch->cough = cough;
  ch->force_floor = force_floor;
  apply (ch, at, was);
}

void
dragoman_channel_set_duck_db (DragomanChannel *ch, double duck_db, GstClockTime at)
{
  ch->duck = pow (10.0, duck_db / 20.0);
  apply (ch, at, ch->on_air && !ch->force_floor);
}

DragomanChannelMode
dragoman_channel_get_mode (DragomanChannel *ch)
{
  if (ch->force_floor)
    return DRAGOMAN_CHANNEL_FORCED_FLOOR;
  return ch->on_air ? DRAGOMAN_CHANNEL_INTERPRETATION : DRAGOMAN_CHANNEL_FLOOR;
}

const char *
dragoman_channel_mode_name (DragomanChannelMode mode)
{
  switch (mode) {
  case DRAGOMAN_CHANNEL_INTERPRETATION:
    return "interpretation";
  case DRAGOMAN_CHANNEL_FORCED_FLOOR:
    return "forced-floor";
  default:
    return "floor";
  }
}

/* Streaming thread: one encoded packet. The ingress time is when the newest input
 * sample of the packet existed: its end on the pipeline clock, mapped to wall time. */
static GstFlowReturn
on_packet (GstAppSink *sink, gpointer data)
{
  DragomanChannel *ch = data;
  g_autoptr (GstSample) sample = gst_app_sink_pull_sample (sink);
  if (!sample)
    return GST_FLOW_EOS;
  GstBuffer *buf = gst_sample_get_buffer (sample);
  gint64 now_us = g_get_real_time ();
  gint64 ingress_us = now_us;
  GstClockTime pts = GST_BUFFER_PTS (buf);
  g_autoptr (GstClock) clock = gst_element_get_clock (GST_ELEMENT (sink));
  if (clock && GST_CLOCK_TIME_IS_VALID (pts)) {
    const GstSegment *seg = gst_sample_get_segment (sample);
    GstClockTime end = pts + (GST_BUFFER_DURATION_IS_VALID (buf) ? GST_BUFFER_DURATION (buf) : 0);
    GstClockTime rt = gst_segment_to_running_time (seg, GST_FORMAT_TIME, end);
    GstClockTime clock_now = gst_clock_get_time (clock);
    GstClockTime at = gst_element_get_base_time (GST_ELEMENT (sink)) + rt;
    if (GST_CLOCK_TIME_IS_VALID (rt) && at < clock_now)
      ingress_us = now_us - (gint64) ((clock_now - at) / GST_USECOND);
  }
  GstMapInfo map;
  if (gst_buffer_map (buf, &map, GST_MAP_READ)) {
    if (!dragoman_fanout_push (ch->fanout, map.data, map.size, ingress_us))
      GST_WARNING ("%s/%s: dropped an oversized packet (%zu bytes)", ch->room, ch->lang, map.size);
    gst_buffer_unmap (buf, &map);
  }
  return GST_FLOW_OK;
}

static GstElement *
make (GstBin *bin, const char *factory, const char *name)
{
  GstElement *e = gst_element_factory_make (factory, name);
  if (!e)
    g_error ("missing GStreamer element '%s': run `make deps`", factory);
  gst_bin_add (bin, e);
  return e;
}

static void
ghost (GstElement *bin, GstElement *el, const char *pad, const char *name)
{
  g_autoptr (GstPad) p = gst_element_get_static_pad (el, pad);
  gst_element_add_pad (bin, gst_ghost_pad_new (name, p));
}

DragomanChannel *
dragoman_channel_new (const char *room, const char *lang, gboolean has_voice, int frame_ms, int bitrate,
                      double duck_db, DragomanFanout *fanout)
{
  if (!channel_debug)
    GST_DEBUG_CATEGORY_INIT (channel_debug, "dragoman-channel", 0, "dragoman channels");

  DragomanChannel *ch = g_new0 (DragomanChannel, 1);
  ch->room = g_strdup (room);
  ch->lang = g_strdup (lang);
  ch->fanout = fanout;
  ch->duck = pow (10.0, duck_db / 20.0);
  g_autofree char *name = g_strdup_printf ("channel-%s", lang);
  ch->bin = gst_object_ref_sink (gst_bin_new (name));
  GstBin *bin = GST_BIN (ch->bin);

  GstElement *floor_vol = make (bin, "volume", "floor-gain");
  ch->floor_gain = add_gain (floor_vol, 1.0);
  ghost (ch->bin, floor_vol, "sink", "floor");
  GstElement *out = floor_vol;

  if (has_voice) {
    GstElement *voice_vol = make (bin, "volume", "voice-gain");
    ch->voice_gain = add_gain (voice_vol, 0.0);
    ghost (ch->bin, voice_vol, "sink", "voice");
    GstElement *mix = make (bin, "audiomixer", "mix");
    GstElement *caps = make (bin, "capsfilter", "mix-caps");
    g_autoptr (GstCaps) c = gst_caps_from_string (PCM_CAPS);
    g_object_set (caps, "caps", c, NULL);
    /* 10 ms mixer blocks: the encoder's smallest frame; bigger would add latency */
    g_object_set (mix, "output-buffer-duration", (guint64) 10 * GST_MSECOND, NULL);
    gst_element_link_many (floor_vol, mix, caps, NULL);
    gst_element_link (voice_vol, mix);
    out = caps;
  }

  ch->published = (DragomanChannelMode) -1;
  publish_state (ch);
  if (!fanout) {
    ghost (ch->bin, out, "src", "src");
    return ch;
  }
  GstElement *enc = make (bin, "opusenc", "opus");
  GstElement *sink = make (bin, "appsink", "packets");
  /* Opus frame-size enum values are the frame length in ms for 10 and 20 */
  g_object_set (enc, "frame-size", frame_ms, "bitrate", bitrate, NULL);
  /* sync=false: hand each packet over the moment it exists; the source clocks pace us */
  g_object_set (sink, "sync", FALSE, "max-buffers", 8, "drop", TRUE, "enable-last-sample", FALSE, NULL);
  GstAppSinkCallbacks cb = { .new_sample = on_packet };
  gst_app_sink_set_callbacks (GST_APP_SINK (sink), &cb, ch, NULL);
  gst_element_link_many (out, enc, sink, NULL);
  return ch;
}

void
dragoman_channel_free (DragomanChannel *ch)
{
  if (!ch)
    return;
  gst_object_unref (ch->bin);
  g_clear_object (&ch->floor_gain);
  g_clear_object (&ch->voice_gain);
  g_free (ch->room);
  g_free (ch->lang);
  g_free (ch);
}

GstElement *
dragoman_channel_get_bin (DragomanChannel *ch)
{
  return ch->bin;
}

const char *
dragoman_channel_get_lang (DragomanChannel *ch)
{
  return ch->lang;
}

DragomanFanout *
dragoman_channel_get_fanout (DragomanChannel *ch)
{
  return ch->fanout;
}
