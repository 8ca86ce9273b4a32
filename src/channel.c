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

  /* voice input watchdog, see voice_watchdog () */
  GstElement *mix, *voice_vol, *pcm_tee;
  GstPad *voice_mix_pad; /* main thread; NULL while the voice is detached */
  gulong block_probe;    /* main thread; blocks the voice while detached */
  gint64 last_voice_us;  /* atomic: streaming thread writes, main thread reads */
  gint reattach_pending; /* atomic */
  gint64 watch_since_us; /* when the voice was linked */
  gboolean voice_present;
  guint watchdog;
  DragomanVoiceSignalFunc signal_func;
  gpointer signal_data;
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
dragoman_channel_set_input (DragomanChannel *ch, gboolean on_air, gboolean cough, GstClockTime at)
{
  gboolean was = ch->on_air && !ch->force_floor;
  ch->on_air = on_air;
  ch->cough = cough;
  apply (ch, at, was);
}

void
dragoman_channel_set_force_floor (DragomanChannel *ch, gboolean force_floor, GstClockTime at)
{
  gboolean was = ch->on_air && !ch->force_floor;
  ch->force_floor = force_floor;
  apply (ch, at, was);
}

void
dragoman_channel_set_duck_db (DragomanChannel *ch, double duck_db, GstClockTime at)
{
  ch->duck = pow (10.0, duck_db / 20.0);
  apply (ch, at, ch->on_air && !ch->force_floor);
}

double
dragoman_channel_get_duck_db (DragomanChannel *ch)
{
  return 20.0 * log10 (ch->duck);
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

/* A stopped input stalls audiomixer: once a pad runs dry, every output buffer
 * waits upstream latency + latency for it (DESIGN.md, measured). An interpreter
 * whose network dies must not delay the channel, so when the voice has been silent
 * for DRAGOMAN_VOICE_TIMEOUT_MS its mixer pad is released (the channel carries the
 * floor with no wait), and a blocking probe holds the voice branch; the first
 * buffer that arrives re-attaches it from the main thread. 200 ms: longer than
 * any jitter buffer we configure and than Opus PLC runs on after the last packet,
 * short enough that the floor is back well within the 500 ms we promise. */
#define DRAGOMAN_VOICE_TIMEOUT_MS 200

static GstPadProbeReturn
on_voice_buffer (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  DragomanChannel *ch = data;
  __atomic_store_n (&ch->last_voice_us, g_get_monotonic_time (), __ATOMIC_RELAXED);
  return GST_PAD_PROBE_OK;
}

static gboolean
reattach (gpointer data)
{
  dragoman_channel_attach_voice (data);
  return G_SOURCE_REMOVE;
}

void
dragoman_channel_attach_voice (DragomanChannel *ch)
{
  if (ch->voice_mix_pad || !ch->mix)
    return;
  g_autoptr (GstPad) src = gst_element_get_static_pad (ch->voice_vol, "src");
  ch->voice_mix_pad = gst_element_request_pad_simple (ch->mix, "sink_%u");
  if (gst_pad_link (src, ch->voice_mix_pad) != GST_PAD_LINK_OK)
    GST_ERROR ("%s/%s: cannot re-attach the voice", ch->room, ch->lang);
  gst_pad_remove_probe (src, ch->block_probe);
  ch->block_probe = 0;
  ch->watch_since_us = g_get_monotonic_time ();
  g_atomic_int_set (&ch->reattach_pending, 0);
  GST_INFO ("%s/%s: voice input is back: re-attached to the mixer", ch->room, ch->lang);
}

static GstPadProbeReturn
on_voice_blocked (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  DragomanChannel *ch = data;
  /* streaming thread: hold the data here until the main thread has linked us */
  /* not g_main_context_invoke: before the main loop runs, that would run reattach
   * right here, in the streaming thread we are blocking, holding the main context */
  if (g_atomic_int_compare_and_exchange (&ch->reattach_pending, 0, 1))
    g_idle_add_full (G_PRIORITY_HIGH, reattach, ch, NULL);
  return GST_PAD_PROBE_OK;
}

/* streaming thread (or the main thread when idle): the voice is not pushing */
static GstPadProbeReturn
unlink_when_idle (GstPad *src, GstPadProbeInfo *info, gpointer data)
{
  GstPad *mix_pad = data;
  GstElement *mix = gst_pad_get_parent_element (mix_pad);
  gst_pad_unlink (src, mix_pad);
  gst_element_release_request_pad (mix, mix_pad);
  gst_object_unref (mix);
  return GST_PAD_PROBE_REMOVE;
}

static void
detach_voice (DragomanChannel *ch)
{
  g_autoptr (GstPad) src = gst_element_get_static_pad (ch->voice_vol, "src");
  /* first catch the next buffer (it re-attaches us), then unlink once no buffer
   * is on its way into the mixer: unlinking under a push made the voice branch
   * fail with not-linked and die for good (seen once under load) */
  ch->block_probe = gst_pad_add_probe (src, GST_PAD_PROBE_TYPE_BLOCK_DOWNSTREAM, on_voice_blocked, ch, NULL);
  gst_pad_add_probe (src, GST_PAD_PROBE_TYPE_IDLE, unlink_when_idle, g_steal_pointer (&ch->voice_mix_pad),
                     gst_object_unref);
  GST_INFO ("%s/%s: no voice input for %d ms: detached from the mixer", ch->room, ch->lang,
            DRAGOMAN_VOICE_TIMEOUT_MS);
}

static gboolean
voice_watchdog (gpointer data)
{
  DragomanChannel *ch = data;
  gint64 last = __atomic_load_n (&ch->last_voice_us, __ATOMIC_RELAXED);
  gint64 now = g_get_monotonic_time ();
  gboolean present = last && now - last < DRAGOMAN_VOICE_TIMEOUT_MS * 1000;
  /* a pad that never got data stalls a live audiomixer completely: detach it too */
  if (!present && ch->voice_mix_pad && now - MAX (last, ch->watch_since_us) >= DRAGOMAN_VOICE_TIMEOUT_MS * 1000)
    detach_voice (ch);
  if (present != ch->voice_present) {
    ch->voice_present = present;
    if (ch->signal_func)
      ch->signal_func (ch, present, ch->signal_data);
  }
  return G_SOURCE_CONTINUE;
}

void
dragoman_channel_set_voice_signal_func (DragomanChannel *ch, DragomanVoiceSignalFunc func, gpointer data)
{
  ch->signal_func = func;
  ch->signal_data = data;
}

gboolean
dragoman_channel_has_voice_signal (DragomanChannel *ch)
{
  return ch->voice_present;
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

  /* Every channel has a mixer, orig too (floor only): it hands the encoders 10 ms
   * blocks on a clean, gapless timeline; orig's AAC rendition failed its muxing
   * ("Queued GOP time is negative") on the floor's raw timestamps without one. */
  GstElement *mix = make (bin, "audiomixer", "mix");
  GstElement *caps = make (bin, "capsfilter", "mix-caps");
  g_autoptr (GstCaps) c = gst_caps_from_string (PCM_CAPS);
  g_object_set (caps, "caps", c, NULL);
  /* 10 ms mixer blocks: the encoder's smallest frame; bigger would add latency */
  g_object_set (mix, "output-buffer-duration", (guint64) 10 * GST_MSECOND, NULL);
  gst_element_link_many (floor_vol, mix, caps, NULL);
  out = caps;

  if (has_voice) {
    GstElement *voice_vol = make (bin, "volume", "voice-gain");
    ch->voice_gain = add_gain (voice_vol, 0.0);
    ghost (ch->bin, voice_vol, "sink", "voice");
    ch->mix = mix;
    ch->voice_vol = voice_vol;
    g_autoptr (GstPad) vsrc = gst_element_get_static_pad (voice_vol, "src");
    g_autoptr (GstPad) vsink = gst_element_get_static_pad (voice_vol, "sink");
    /* Linked from the start: adding a mixer pad while the room prerolls stalled it
     * (seen here). A voice that never sends is detached by the watchdog instead. */
    ch->voice_mix_pad = gst_element_request_pad_simple (mix, "sink_%u");
    gst_pad_link (vsrc, ch->voice_mix_pad);
    ch->watch_since_us = g_get_monotonic_time ();
    gst_pad_add_probe (vsink, GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST, on_voice_buffer, ch, NULL);
    /* 50 ms: the detach happens within 250 ms of the last buffer */
    ch->watchdog = g_timeout_add (50, voice_watchdog, ch);
  }

  ch->published = (DragomanChannelMode) -1;
  publish_state (ch);
  if (!fanout) {
    ghost (ch->bin, out, "src", "src");
    return ch;
  }
  /* what listeners hear, for the crew's meters (~12 Hz) */
  g_autofree char *lname = g_strdup_printf ("level:channel:%s", lang);
  GstElement *level = make (bin, "level", lname);
  g_object_set (level, "interval", (guint64) DRAGOMAN_LEVEL_INTERVAL_MS * GST_MSECOND, "post-messages", TRUE, NULL);
  gst_element_link (out, level);
  /* the same PCM for HLS/recordings (dragoman_channel_get_pcm_pad); the Opus branch
   * is requested first, so the tee feeds the low-latency path before any other */
  ch->pcm_tee = make (bin, "tee", "pcm");
  g_object_set (ch->pcm_tee, "allow-not-linked", TRUE, NULL);
  gst_element_link (level, ch->pcm_tee);
  out = ch->pcm_tee;
  GstElement *enc = make (bin, "opusenc", "opus");
  GstElement *sink = make (bin, "appsink", "packets");
  /* Opus frame-size enum values are the frame length in ms for 10 and 20 */
  g_object_set (enc, "frame-size", frame_ms, "bitrate", bitrate, NULL);
  /* sync=false: hand each packet over the moment it exists; the source clocks pace us.
   * async=false: a live room must not wait for its sinks to preroll. With async
   * sinks, a channel's appsink held its mixer's thread in preroll while the floor
   * tee's serialized query waited on that mixer: the room stuck in PAUSED in about
   * half of the starts (seen here; gdb: stagemix:src in a query, mix:src in
   * gst_base_sink_wait_preroll). */
  g_object_set (sink, "sync", FALSE, "async", FALSE, "max-buffers", 8, "drop", TRUE, "enable-last-sample", FALSE,
                NULL);
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
  if (ch->watchdog)
    g_source_remove (ch->watchdog);
  g_clear_object (&ch->voice_mix_pad);
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

GstPad *
dragoman_channel_get_pcm_pad (DragomanChannel *ch)
{
  if (!ch->pcm_tee)
    return NULL;
  g_autoptr (GstPad) tee_src = gst_element_request_pad_simple (ch->pcm_tee, "src_%u");
  GstPad *ghost = gst_ghost_pad_new (NULL, tee_src);
  gst_pad_set_active (ghost, TRUE);
  gst_element_add_pad (ch->bin, ghost); /* the bin takes the floating ref */
  return gst_object_ref (ghost);
}
