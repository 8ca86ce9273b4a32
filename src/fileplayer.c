/* fileplayer — see the header. */
#include "fileplayer.h"

#include "config.h"

#include <gst/app/app.h>
#include <string.h>
#include <unistd.h>

GST_DEBUG_CATEGORY_STATIC (fileplayer_debug);
#define GST_CAT_DEFAULT fileplayer_debug

/* The player's buffers reach the room this far ahead of their time: its thread
 * (and the loop's seek on the main loop) may be late on a busy machine, and late
 * audio is dropped by the channels' mixers (seen: 4 silent windows in 140 while
 * two other builds ran). An encoder's feed has the same slack in SRT's latency. */
#define LEAD (200 * GST_MSECOND)

typedef struct {
  gint ref;
  char *path;
  GstElement *pipeline;
  GstElement *video_src, *audio_src; /* the stage's appsrcs (not owned) */
  guint bus_watch;
  gint started;  /* atomic */
  GstElement *video_in, *audio_in; /* the chains' heads until a stream is linked */
  gboolean looping;
  guint loops;
} Player;

static void
player_unref (gpointer data)
{
  Player *p = data;
  if (!g_atomic_int_dec_and_test (&p->ref))
    return;
  if (p->bus_watch)
    g_source_remove (p->bus_watch);
  gst_element_set_state (p->pipeline, GST_STATE_NULL);
  gst_object_unref (p->pipeline);
  g_free (p->path);
  g_free (p);
}

/* private appsink → the stage's appsrc, the buffer's instant carried across */
static GstFlowReturn
on_sample (GstAppSink *sink, gpointer data)
{
  Player *p = data;
  GstElement *dst = g_object_get_data (G_OBJECT (sink), "dst");
  g_autoptr (GstSample) sample = gst_app_sink_pull_sample (sink);
  GstBuffer *buf = sample ? gst_sample_get_buffer (sample) : NULL;
  const GstSegment *seg = sample ? gst_sample_get_segment (sample) : NULL;
  GstCaps *caps = sample ? gst_sample_get_caps (sample) : NULL;
  if (!buf || !seg || !caps || !dst || !GST_BUFFER_PTS_IS_VALID (buf))
    return GST_FLOW_OK;
  GstClockTime rt = gst_segment_to_running_time (seg, GST_FORMAT_TIME, GST_BUFFER_PTS (buf));
  GstClockTime base = gst_element_get_base_time (p->pipeline), room_base = gst_element_get_base_time (dst);
  if (!GST_CLOCK_TIME_IS_VALID (rt) || room_base == 0 || rt + base < room_base)
    return GST_FLOW_OK;
  GstCaps *have = gst_app_src_get_caps (GST_APP_SRC (dst));
  if (!have || !gst_caps_is_equal (have, caps))
    gst_app_src_set_caps (GST_APP_SRC (dst), caps);
  if (have)
    gst_caps_unref (have);
  GstBuffer *copy = gst_buffer_copy (buf);
  GST_BUFFER_PTS (copy) = rt + base - room_base + LEAD;
  GstClockTime dts = GST_BUFFER_DTS_IS_VALID (buf) ? gst_segment_to_running_time (seg, GST_FORMAT_TIME,
                                                                                  GST_BUFFER_DTS (buf))
                                                   : GST_CLOCK_TIME_NONE;
  GST_BUFFER_DTS (copy) = GST_CLOCK_TIME_IS_VALID (dts) && dts + base >= room_base ? dts + base - room_base + LEAD
                                                                                   : GST_CLOCK_TIME_NONE;
  gst_app_src_push_buffer (GST_APP_SRC (dst), copy);
  return GST_FLOW_OK;
}

static GstElement *
add (GstElement *bin, const char *factory)
{
  GstElement *e = gst_element_factory_make (factory, NULL);
  if (!e)
    g_error ("missing GStreamer element '%s': run `make deps`", factory);
  gst_bin_add (GST_BIN (bin), e);
  return e;
}

static GstElement *
add_appsink (Player *p, GstElement *dst)
{
  GstElement *sink = add (p->pipeline, "appsink");
  /* sync: the clock paces the file at real time, as an encoder would send it */
  g_object_set (sink, "sync", TRUE, "async", TRUE, "max-buffers", 4, "enable-last-sample", FALSE, NULL);
  g_object_set_data (G_OBJECT (sink), "dst", dst);
  GstAppSinkCallbacks cb = { .new_sample = on_sample };
  gst_app_sink_set_callbacks (GST_APP_SINK (sink), &cb, p, NULL);
  return sink;
}

/* the chains exist before the pipeline starts: with no sink yet, PAUSED completed
 * at once (before parsebin exposed a pad) and ASYNC_DONE never came */
static void
build_chains (Player *p)
{
  if (p->video_src) {
    GstElement *parse = add (p->pipeline, "h264parse");
    g_object_set (parse, "config-interval", -1, NULL);
    GstElement *caps = add (p->pipeline, "capsfilter");
    g_autoptr (GstCaps) bs = gst_caps_from_string ("video/x-h264,stream-format=byte-stream,alignment=au");
    g_object_set (caps, "caps", bs, NULL);
    gst_element_link_many (parse, caps, add_appsink (p, p->video_src), NULL);
    p->video_in = parse;
  }
  if (p->audio_src) {
    GstElement *conv = add (p->pipeline, "audioconvert");
    gst_element_link (conv, add_appsink (p, p->audio_src));
    p->audio_in = conv;
  }
}

/* decodebin's streams: the first H.264 to the video chain, the first audio to the
 * audio chain, anything else (subtitles, a second video) discarded */
static void
on_pad_added (GstElement *parsebin, GstPad *pad, gpointer data)
{
  Player *p = data;
  g_autoptr (GstCaps) caps = gst_pad_query_caps (pad, NULL);
  const char *name = gst_structure_get_name (gst_caps_get_structure (caps, 0));
  GST_INFO ("%s: a %s stream", p->path, name);
  GstElement *to = NULL;
  if (g_str_equal (name, "video/x-h264") && p->video_in) {
    to = p->video_in;
    p->video_in = NULL;
  } else if (g_str_equal (name, "audio/x-raw") && p->audio_in) {
    to = p->audio_in;
    p->audio_in = NULL;
  } else {
    to = add (p->pipeline, "fakesink");
    g_object_set (to, "sync", FALSE, "async", FALSE, NULL);
    gst_element_sync_state_with_parent (to);
  }
  g_autoptr (GstPad) sink = gst_element_get_static_pad (to, "sink");
  GstPadLinkReturn r = gst_pad_link (pad, sink);
  if (r != GST_PAD_LINK_OK)
    GST_WARNING ("%s: cannot link its %s stream: %s", p->path, name, gst_pad_link_get_name (r));
}

static void
seek_to_start (Player *p, gboolean flush)
{
  /* a segment seek posts SEGMENT_DONE at the end instead of EOS; the seek back
   * without FLUSH keeps the running time going: a gapless loop */
  GstSeekFlags flags = GST_SEEK_FLAG_SEGMENT | (flush ? GST_SEEK_FLAG_FLUSH : 0);
  if (!gst_element_seek (p->pipeline, 1.0, GST_FORMAT_TIME, flags, GST_SEEK_TYPE_SET, 0, GST_SEEK_TYPE_NONE, 0))
    GST_WARNING ("%s: seek to the start refused", p->path);
}

static gboolean start_loop (gpointer data);

static gboolean
on_bus (GstBus *bus, GstMessage *msg, gpointer data)
{
  Player *p = data;
  GST_LOG ("%s: %s", p->path, GST_MESSAGE_TYPE_NAME (msg));
  switch (GST_MESSAGE_TYPE (msg)) {
  case GST_MESSAGE_ASYNC_DONE:
    start_loop (p);
    break;
  case GST_MESSAGE_SEGMENT_DONE:
    p->loops++;
    GST_INFO ("%s: loop %u", p->path, p->loops);
    seek_to_start (p, FALSE);
    break;
  case GST_MESSAGE_ERROR: {
    g_autoptr (GError) err = NULL;
    gst_message_parse_error (msg, &err, NULL);
    g_printerr ("stage file %s: %s (the stage is lost until the server restarts)\n", p->path, err->message);
    gst_element_set_state (p->pipeline, GST_STATE_NULL);
    break;
  }
  default:
    break;
  }
  return G_SOURCE_CONTINUE;
}

/* prerolled: the first segment seek, then play */
static gboolean
start_loop (gpointer data)
{
  Player *p = data;
  GST_INFO ("%s: every stream linked: play", p->path);
  if (!p->looping) {
    p->looping = TRUE;
    seek_to_start (p, TRUE);
    gst_element_set_state (p->pipeline, GST_STATE_PLAYING);
  }
  return G_SOURCE_REMOVE;
}

static gboolean
start_player (gpointer data)
{
  Player *p = data;
  GST_INFO ("%s: starting", p->path);
  build_chains (p);
  gst_element_set_state (p->pipeline, GST_STATE_PAUSED); /* preroll, then seek, then play (on_bus) */
  return G_SOURCE_REMOVE;
}

static void
on_need_data (GstAppSrc *src, guint length, gpointer data)
{
  Player *p = data;
  /* the room plays: start the file (on the main thread) */
  GST_DEBUG ("%s: need-data", p->path);
  if (g_atomic_int_compare_and_exchange (&p->started, 0, 1))
    g_idle_add_full (G_PRIORITY_DEFAULT, start_player, p, NULL);
}

static Player *
player_new (const char *path)
{
  Player *p = g_new0 (Player, 1);
  p->ref = 1;
  p->path = g_strdup (path);
  g_autofree char *name = g_path_get_basename (path);
  p->pipeline = gst_object_ref_sink (gst_pipeline_new (name));
  g_autoptr (GstClock) clock = gst_system_clock_obtain ();
  gst_pipeline_use_clock (GST_PIPELINE (p->pipeline), clock);
  GstElement *src = add (p->pipeline, "filesrc");
  g_object_set (src, "location", path, NULL);
  /* decodebin stops at H.264 (passed through) and decodes the audio: a parsebin
   * exposed its pads but its demuxer never pushed (preroll hung) */
  GstElement *parse = add (p->pipeline, "decodebin");
  g_autoptr (GstCaps) stop = gst_caps_from_string ("video/x-h264;audio/x-raw");
  g_object_set (parse, "caps", stop, NULL);
  gst_element_link (src, parse);
  g_signal_connect (parse, "pad-added", G_CALLBACK (on_pad_added), p);
  g_autoptr (GstBus) bus = gst_pipeline_get_bus (GST_PIPELINE (p->pipeline));
  p->bus_watch = gst_bus_add_watch (bus, on_bus, p);
  return p;
}

gboolean
dragoman_fileplayer_setup (GstBin *bin, GError **error)
{
  if (!fileplayer_debug)
    GST_DEBUG_CATEGORY_INIT (fileplayer_debug, "dragoman-fileplayer", 0, "dragoman file stage");
  g_autoptr (GHashTable) players = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr (GstIterator) it = gst_bin_iterate_recurse (bin);
  GValue v = G_VALUE_INIT;
  gboolean ok = TRUE;
  while (ok && gst_iterator_next (it, &v) == GST_ITERATOR_OK) {
    GstElement *el = g_value_get_object (&v);
    const char *name = GST_OBJECT_NAME (el);
    gboolean video = g_str_has_prefix (name, "play-video:"), audio = g_str_has_prefix (name, "play-audio:");
    if (GST_IS_APP_SRC (el) && (video || audio)) {
      const char *path = name + 11;
      if (!g_file_test (path, G_FILE_TEST_IS_REGULAR) || access (path, R_OK) != 0) {
        g_set_error (error, DRAGOMAN_CONFIG_ERROR, 1, "the stage file '%s' is missing or unreadable", path);
        ok = FALSE;
      } else {
        Player *p = g_hash_table_lookup (players, path);
        if (!p) {
          p = player_new (path);
          g_hash_table_insert (players, p->path, p);
        } else {
          g_atomic_int_inc (&p->ref);
        }
        if (video)
          p->video_src = el;
        else
          p->audio_src = el;
        GstAppSrcCallbacks cb = { .need_data = on_need_data };
        gst_app_src_set_callbacks (GST_APP_SRC (el), &cb, p, player_unref);
        /* live, as an encoder's feed; stamped by the player */
        g_object_set (el, "is-live", TRUE, "format", GST_FORMAT_TIME, "do-timestamp", FALSE, "min-latency",
                      (gint64) 0, "max-latency", (gint64) 200 * GST_MSECOND, NULL);
      }
    }
    g_value_reset (&v);
  }
  g_value_unset (&v);
  return ok;
}
