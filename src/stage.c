#include "stage.h"

#include "source.h"

GST_DEBUG_CATEGORY_STATIC (stage_debug);
#define GST_CAT_DEFAULT stage_debug

#define PCM_CAPS "audio/x-raw,format=S16LE,rate=48000,channels=1,layout=interleaved"

struct _DragomanStage {
  const DragomanRoomConfig *room;
  GstElement *pipeline, *bin, *select, *convert_out;
  GstPad *stage_pad, *silence_pad; /* input-selector sink pads */
  GstPad *video;
  GstElement *rate;
  GstElement *srt;   /* an srtsrc in the stage bin, or NULL */
  gboolean reset_done; /* the srtsrc was reset during this loss */
  gint resetting;       /* atomic: a reset thread runs (it uses s: freeing waits) */
  gboolean live;
  gint64 since;
  char *reason;
  char *video_info;
  guint losses;
  guint timer;
  /* written by streaming threads (atomics), read here */
  gint64 last_audio_us; /* audio or video: the sender is alive */
  guint64 video_bytes;
  /* main thread */
  guint64 bytes_seen;
  gint64 bytes_at_us;
  guint64 bitrate;
  void (*change_func) (gpointer, gboolean);
  gpointer change_data;
};

static GstPadProbeReturn
on_stage_audio (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  DragomanStage *s = data;
  __atomic_store_n (&s->last_audio_us, g_get_monotonic_time (), __ATOMIC_RELAXED);
  return GST_PAD_PROBE_OK;
}

static GstPadProbeReturn
on_stage_video (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  DragomanStage *s = data;
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);
  if (buf)
    __atomic_fetch_add (&s->video_bytes, gst_buffer_get_size (buf), __ATOMIC_RELAXED);
  /* a sender's muxer may hold audio back for up to 0.7 s (ffmpeg's default
   * max_delay): video frames every 33-40 ms say the sender is alive meanwhile */
  __atomic_store_n (&s->last_audio_us, g_get_monotonic_time (), __ATOMIC_RELAXED);
  return GST_PAD_PROBE_OK;
}

static void
set_state (DragomanStage *s, gboolean live, const char *reason)
{
  s->live = live;
  s->since = g_get_real_time () / G_USEC_PER_SEC;
  g_free (s->reason);
  s->reason = g_strdup (reason);
  if (s->select)
    g_object_set (s->select, "active-pad", live ? s->stage_pad : s->silence_pad, NULL);
  /* on stderr too: the operator's terminal is where a lost feed must show */
  if (live)
    g_printerr ("room %s: stage is live (%s)\n", s->room->id, reason);
  else {
    s->losses++;
    g_printerr ("room %s: stage lost (%s): floor on silence, interpreters continue\n", s->room->id, reason);
  }
  if (s->change_func)
    s->change_func (s->change_data, live);
}

static gpointer
reset_srt (gpointer data)
{
  DragomanStage *s = data;
  gint64 t0 = g_get_monotonic_time ();
  gst_element_set_state (s->srt, GST_STATE_READY);
  gst_element_sync_state_with_parent (s->srt);
  GST_INFO ("room %s: srtsrc reset in %" G_GINT64_FORMAT " ms", s->room->id, (g_get_monotonic_time () - t0) / 1000);
  g_atomic_int_set (&s->resetting, 0);
  return NULL;
}

static gboolean
watchdog (gpointer data)
{
  DragomanStage *s = data;
  gint64 now = g_get_monotonic_time ();
  gint64 last = __atomic_load_n (&s->last_audio_us, __ATOMIC_RELAXED);
  gboolean flowing = last && now - last < DRAGOMAN_STAGE_LOST_MS * 1000;
  if (s->live && !flowing) {
    set_state (s, FALSE, "nothing from the stage for 0.5 s (sender stopped, or network lost)");
    s->reset_done = FALSE;
  } else if (!s->live && flowing) {
    set_state (s, TRUE, "receiving");
  }
  /* srtsrc keeps a dead sender's connection until SRT's peer idle timeout (5 s),
   * and then re-creates its listening socket, dropping any new caller waiting in
   * it: an encoder restarted soon after a crash was never taken (seen: ffmpeg
   * restarted 0.7, 1.7 and 3 s after a kill, never live). So 1 s after the last
   * packet (loss + DRAGOMAN_STAGE_RESET_MS) we reset srtsrc ourselves and a new
   * sender from then on is taken at once. The price: a caller that connects in
   * the 0.5 s before the reset is cut and must retry (OBS's default reconnect
   * delay is 2 s), and a sender that stalled for a whole second is cut too
   * (encoders reconnect by themselves; it had lost that second anyway). */
  if (s->srt && !s->live && !s->reset_done && last &&
      now - last >= (DRAGOMAN_STAGE_LOST_MS + DRAGOMAN_STAGE_RESET_MS) * 1000) {
    s->reset_done = TRUE;
    /* in a thread: srtsrc's stop waits for its poll to time out (seen: the main
     * loop, and with it every socket, stalled when done here) */
    if (!g_atomic_int_get (&s->resetting)) {
      g_atomic_int_set (&s->resetting, 1);
      GST_INFO ("room %s: resetting srtsrc to take a new sender", s->room->id);
      g_thread_unref (g_thread_new ("srt-reset", reset_srt, s));
    }
  }

  guint64 bytes = __atomic_load_n (&s->video_bytes, __ATOMIC_RELAXED);
  if (now - s->bytes_at_us >= G_USEC_PER_SEC) {
    s->bitrate = s->bytes_at_us ? (bytes - s->bytes_seen) * 8 * G_USEC_PER_SEC / (now - s->bytes_at_us) : 0;
    s->bytes_seen = bytes;
    s->bytes_at_us = now;
  }
  if (s->video) {
    g_autoptr (GstCaps) caps = gst_pad_get_current_caps (s->video);
    GstStructure *st = caps ? gst_caps_get_structure (caps, 0) : NULL;
    int w = 0, h = 0, fn = 0, fd = 1;
    if (st && gst_structure_get_int (st, "width", &w) && gst_structure_get_int (st, "height", &h)) {
      gst_structure_get_fraction (st, "framerate", &fn, &fd);
      g_free (s->video_info);
      s->video_info = g_strdup_printf ("H.264 %dx%d %d/%d fps", w, h, fn, fd);
    }
  }
  return G_SOURCE_CONTINUE;
}

static GstElement *
add (GstBin *bin, const char *factory, const char *name)
{
  GstElement *e = gst_element_factory_make (factory, name);
  if (!e)
    g_error ("missing GStreamer element '%s': run `make deps`", factory);
  gst_bin_add (bin, e);
  return e;
}

static GstElement *
find_by_factory (GstBin *bin, const char *factory)
{
  g_autoptr (GstIterator) it = gst_bin_iterate_recurse (bin);
  GValue v = G_VALUE_INIT;
  GstElement *found = NULL;
  while (!found && gst_iterator_next (it, &v) == GST_ITERATOR_OK) {
    GstElement *e = g_value_get_object (&v);
    GstElementFactory *f = gst_element_get_factory (e);
    if (f && g_str_equal (GST_OBJECT_NAME (f), factory))
      found = e;
    g_value_reset (&v);
  }
  g_value_unset (&v);
  return found; /* the bin holds it */
}

/* a source that can stop delivering: the feed comes from the network */
static gboolean
has_network_source (GstBin *bin)
{
  static const char *const net[] = { "srtsrc", "udpsrc", "tcpserversrc", "tcpclientsrc", "rtmp2src", "rtmpsrc",
                                     "souphttpsrc", "rtspsrc", "ristsrc", NULL };
  g_autoptr (GstIterator) it = gst_bin_iterate_recurse (bin);
  GValue v = G_VALUE_INIT;
  gboolean found = FALSE;
  while (!found && gst_iterator_next (it, &v) == GST_ITERATOR_OK) {
    GstElementFactory *f = gst_element_get_factory (g_value_get_object (&v));
    found = f && g_strv_contains (net, GST_OBJECT_NAME (f));
    g_value_reset (&v);
  }
  g_value_unset (&v);
  return found;
}

DragomanStage *
dragoman_stage_new (GstElement *pipeline, const DragomanConfig *config, const DragomanRoomConfig *room,
                    GHashTable *vars, GError **error)
{
  if (!stage_debug)
    GST_DEBUG_CATEGORY_INIT (stage_debug, "dragoman-stage", 0, "dragoman stage inputs");
  g_autofree char *name = g_strdup_printf ("stage-%s", room->stage);
  GstElement *bin = dragoman_source_new (config->pipeline_dir, name, "stage", vars, error);
  if (!bin)
    return NULL;
  DragomanStage *s = g_new0 (DragomanStage, 1);
  s->room = room;
  s->pipeline = pipeline;
  s->bin = bin;
  s->reason = g_strdup ("waiting for the stage feed");
  s->since = g_get_real_time () / G_USEC_PER_SEC;
  GstBin *pb = GST_BIN (pipeline);
  gst_bin_add (pb, bin);

  /* stage audio → S16 48 kHz mono → selector (active); live silence → selector */
  GstElement *conv = add (pb, "audioconvert", "stage-convert");
  GstElement *res = add (pb, "audioresample", "stage-resample");
  GstElement *caps = add (pb, "capsfilter", "stage-caps");
  g_autoptr (GstCaps) pcm = gst_caps_from_string (PCM_CAPS);
  g_object_set (caps, "caps", pcm, NULL);
  g_autoptr (GstPad) audio = gst_element_get_static_pad (bin, "audio");
  g_autoptr (GstPad) conv_sink = gst_element_get_static_pad (conv, "sink");
  gst_pad_link (audio, conv_sink);
  gst_element_link_many (conv, res, caps, NULL);
  gst_pad_add_probe (audio, GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST, on_stage_audio, s, NULL);
  s->video = gst_element_get_static_pad (bin, "video");
  if (s->video)
    gst_pad_add_probe (s->video, GST_PAD_PROBE_TYPE_BUFFER, on_stage_video, s, NULL);
  s->timer = g_timeout_add (100, watchdog, s);

  if (!has_network_source (GST_BIN (bin))) {
    /* A local source (the demo's test stage) cannot be lost: no failover. With the
     * silence failover in front of it the floor carried nothing at all in about 1
     * start in 20 (not yet understood; 0 in 24 without it), so it is only used
     * where a feed really can drop. */
    s->rate = caps;
    return s;
  }
  s->srt = find_by_factory (GST_BIN (bin), "srtsrc");
  GstElement *silence = add (pb, "audiotestsrc", "stage-silence");
  /* 10 ms blocks like every other live input: the mixers' pace */
  g_object_set (silence, "is-live", TRUE, "wave", 4 /* silence */, "samplesperbuffer", 480, NULL);
  GstElement *scaps = add (pb, "capsfilter", "stage-silence-caps");
  g_object_set (scaps, "caps", pcm, NULL);
  s->select = add (pb, "input-selector", "stage-select");
  /* sync-streams=false: the active input passes straight through, the other is dropped */
  g_object_set (s->select, "sync-streams", FALSE, NULL);

  gst_element_link (silence, scaps);
  s->stage_pad = gst_element_request_pad_simple (s->select, "sink_%u");
  s->silence_pad = gst_element_request_pad_simple (s->select, "sink_%u");
  g_autoptr (GstPad) csrc = gst_element_get_static_pad (caps, "src");
  g_autoptr (GstPad) ssrc = gst_element_get_static_pad (scaps, "src");
  gst_pad_link (csrc, s->stage_pad);
  gst_pad_link (ssrc, s->silence_pad);
  g_object_set (s->select, "active-pad", s->silence_pad, NULL);
  /* switching inputs can step the timeline back (overlap) or forward (gap):
   * audiorate trims overlaps and fills gaps, so the floor's timestamps only ever
   * move on (AAC muxing fails on a step back; mixers wait on a gap) */
  s->rate = add (pb, "audiorate", "stage-rate");
  gst_element_link (s->select, s->rate);
  return s;
}

void
dragoman_stage_free (DragomanStage *s)
{
  if (!s)
    return;
  g_source_remove (s->timer);
  while (g_atomic_int_get (&s->resetting))
    g_usleep (10000);
  g_clear_object (&s->stage_pad);
  g_clear_object (&s->silence_pad);
  g_clear_object (&s->video);
  g_free (s->reason);
  g_free (s->video_info);
  g_free (s);
}

GstElement *
dragoman_stage_get_floor (DragomanStage *s)
{
  return s->rate;
}

GstPad *
dragoman_stage_get_video (DragomanStage *s)
{
  return s->video;
}

gboolean
dragoman_stage_is_live (DragomanStage *s)
{
  return s->live;
}

const char *
dragoman_stage_get_reason (DragomanStage *s)
{
  return s->reason;
}

gint64
dragoman_stage_get_since (DragomanStage *s)
{
  return s->since;
}

const char *
dragoman_stage_get_video_info (DragomanStage *s)
{
  return s->video_info;
}

guint64
dragoman_stage_get_bitrate (DragomanStage *s)
{
  return s->bitrate;
}

guint
dragoman_stage_get_losses (DragomanStage *s)
{
  return s->losses;
}

void
dragoman_stage_set_change_func (DragomanStage *s, void (*func) (gpointer, gboolean), gpointer data)
{
  s->change_func = func;
  s->change_data = data;
}
