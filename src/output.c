/* output — see the header. */
#include "output.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <gst/app/app.h>
#include <string.h>

GST_DEBUG_CATEGORY_STATIC (output_debug);
#define GST_CAT_DEFAULT output_debug

/* A bridge holds at most this much media in its appsrc: an output that falls
 * further behind (a slow disk, a slow uplink) loses its oldest data, counted,
 * and video then waits for the next keyframe. 2 s = one GOP of a conference
 * encoder: enough to ride out a hiccup, small enough to bound memory (~1 MB). */
#define BRIDGE_MAX_TIME (2 * GST_SECOND)
#define BACKOFF_MAX_S 30
/* a restream with this much media queued for its muxer has a dead peer */
#define STALL_TIME (1500 * GST_MSECOND)
/* a stop waits this long for the muxer to finish the file before tearing down */
#define STOP_TIMEOUT_MS 3000

typedef enum { KIND_RECORDING, KIND_RTMP, KIND_SRT } Kind;
static const char *const kind_names[] = { "recording", "rtmp", "srt" };

typedef struct {
  DragomanOutput *o;
  char *lang;          /* NULL: the video */
  GstElement *appsink; /* in the room's pipeline */
  /* under o->lock */
  GstElement *appsrc;  /* in the output's pipeline; NULL while not running */
  GstElement *pending; /* main thread: the appsrc of the pipeline being built */
  GstCaps *caps;       /* last caps given to appsrc */
  gboolean need_key;
} Stream;

struct _DragomanOutput {
  Kind kind;
  char *name;
  const DragomanRoomConfig *room;
  const DragomanRestreamConfig *restream; /* NULL: the recording */
  char *secret; /* the stream key, or an SRT passphrase: never logged or shown */
  GPtrArray *streams;                     /* Stream*; [0] is the video */
  DragomanOutputChangeFunc change_func;
  gpointer change_data;

  /* main thread */
  GstElement *pipeline; /* NULL while stopped or between retries */
  guint bus_watch, retry_timer, stats_timer, stop_timer;
  gboolean wanted;
  DragomanOutputState state;
  char *error;
  gint64 since_us;
  guint reconnects, backoff_s;
  guint64 last_bytes;
  gint64 last_bytes_us, live_since_us;
  double kbps;
  char *session;  /* recording: UTC start stamp in file names */
  char *file;     /* recording: the file being written */

  /* the bridges */
  GMutex lock;
  gboolean running;
  GstClockTime t0; /* room running time that maps to 0 */
  gint64 bytes;    /* atomic */
  gint64 dropped;  /* atomic */
  GHashTable *tags; /* stream-id -> GstTagList (recordings), under lock */
  gint rotating;    /* atomic: the bridge ended the file for a new video format */
};

static gboolean start_pipeline (DragomanOutput *o, GError **error);

static GstElement *
add (GstElement *bin, const char *factory, const char *name)
{
  GstElement *e = gst_element_factory_make (factory, name);
  if (!e)
    g_error ("missing GStreamer element '%s': run `make deps`", factory);
  gst_bin_add (GST_BIN (bin), e);
  return e;
}

const char *
dragoman_output_state_name (DragomanOutputState s)
{
  static const char *const names[] = { "stopped", "starting", "live", "retrying", "failed" };
  return names[s];
}

/* the key never reaches a log, a page or /metrics: its first 4 characters and "…" */
static char *
masked_key (const char *key)
{
  return g_strdup_printf ("%.4s…", key);
}

/* any text that may hold the secret (an element's error message quotes its URL) */
static char *
redact (DragomanOutput *o, const char *text)
{
  if (!text)
    return NULL;
  if (!o->secret || !*o->secret)
    return g_strdup (text);
  g_autofree char *mask = masked_key (o->secret);
  g_auto (GStrv) parts = g_strsplit (text, o->secret, -1);
  return g_strjoinv (mask, parts);
}

char *
dragoman_output_describe_target (DragomanOutput *o)
{
  if (!o->restream)
    return g_strdup (o->room->record->dir);
  if (o->restream->key) {
    g_autofree char *mask = masked_key (o->restream->key);
    return g_strdup_printf ("%s/%s", o->restream->url, mask);
  }
  return redact (o, o->restream->url);
}

static void
set_state (DragomanOutput *o, DragomanOutputState state, const char *error)
{
  if (o->state == state && g_strcmp0 (o->error, error) == 0)
    return;
  char *old = o->error; /* `error` may be o->error itself */
  o->error = redact (o, error);
  g_free (old);
  if (o->state != state) /* a new error in the same state keeps its clock */
    o->since_us = g_get_real_time ();
  o->state = state;
  if (state == DRAGOMAN_OUTPUT_LIVE)
    o->live_since_us = g_get_monotonic_time ();
  if (o->change_func)
    o->change_func (o, o->change_data);
}

/* ---- the bridges (room pipeline streaming threads) ------------------------ */

static GstFlowReturn
on_sample (GstAppSink *sink, gpointer data)
{
  Stream *st = data;
  DragomanOutput *o = st->o;
  g_autoptr (GstSample) sample = gst_app_sink_pull_sample (sink);
  if (!sample)
    return GST_FLOW_OK;
  GstBuffer *buf = gst_sample_get_buffer (sample);
  const GstSegment *seg = gst_sample_get_segment (sample);
  GstCaps *caps = gst_sample_get_caps (sample);
  if (!buf || !seg || !caps || !GST_BUFFER_PTS_IS_VALID (buf))
    return GST_FLOW_OK;
  GstClockTime rt = gst_segment_to_running_time (seg, GST_FORMAT_TIME, GST_BUFFER_PTS (buf));
  if (!GST_CLOCK_TIME_IS_VALID (rt))
    return GST_FLOW_OK;
  gboolean video = st->lang == NULL;
  gboolean key = !GST_BUFFER_FLAG_IS_SET (buf, GST_BUFFER_FLAG_DELTA_UNIT);

  g_mutex_lock (&o->lock);
  if (!o->running || !st->appsrc)
    goto out;
  if (video && st->need_key && !key)
    goto out;
  /* everything starts at the first video keyframe: a file or stream that opens on
   * a picture, with the audio of the same instant */
  if (!GST_CLOCK_TIME_IS_VALID (o->t0)) {
    if (!video || !key)
      goto out;
    o->t0 = rt;
  }
  if (rt < o->t0)
    goto out;
  if (gst_app_src_get_current_level_time (GST_APP_SRC (st->appsrc)) > BRIDGE_MAX_TIME) {
    g_atomic_pointer_add (&o->dropped, 1);
    if (video)
      st->need_key = TRUE;
    goto out;
  }
  st->need_key = FALSE;
  if (st->caps && video && o->kind == KIND_RECORDING && !gst_caps_is_equal (st->caps, caps)) {
    /* Matroska cannot change a track's format mid-file (matroskamux fails, and the
     * file was left unfinished): the stage was lost (slate) or a new encoder came.
     * Finish this file cleanly and go on in a new one (on the main thread). */
    o->running = FALSE;
    for (guint i = 0; i < o->streams->len; i++) {
      Stream *s = o->streams->pdata[i];
      if (s->appsrc)
        gst_app_src_end_of_stream (GST_APP_SRC (s->appsrc));
    }
    g_atomic_int_set (&o->rotating, 1);
    goto out;
  }
  if (!st->caps || !gst_caps_is_equal (st->caps, caps)) {
    gst_app_src_set_caps (GST_APP_SRC (st->appsrc), caps);
    gst_caps_replace (&st->caps, caps);
  }
  GstBuffer *copy = gst_buffer_copy (buf); /* metadata only: the memory is shared */
  GST_BUFFER_PTS (copy) = rt - o->t0;
  GstClockTime dts = GST_BUFFER_DTS_IS_VALID (buf) ? gst_segment_to_running_time (seg, GST_FORMAT_TIME,
                                                                                  GST_BUFFER_DTS (buf))
                                                   : GST_CLOCK_TIME_NONE;
  GST_BUFFER_DTS (copy) = GST_CLOCK_TIME_IS_VALID (dts) && dts >= o->t0 ? dts - o->t0 : GST_BUFFER_PTS (copy);
  gst_app_src_push_buffer (GST_APP_SRC (st->appsrc), copy);
out:
  g_mutex_unlock (&o->lock);
  return GST_FLOW_OK;
}

static GstPadProbeReturn
count_bytes (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  DragomanOutput *o = data;
  gsize n = 0;
  if (info->type & GST_PAD_PROBE_TYPE_BUFFER)
    n = gst_buffer_get_size (GST_PAD_PROBE_INFO_BUFFER (info));
  else if (info->type & GST_PAD_PROBE_TYPE_BUFFER_LIST)
    n = gst_buffer_list_calculate_size (GST_PAD_PROBE_INFO_BUFFER_LIST (info));
  g_atomic_pointer_add (&o->bytes, (gssize) n);
  return GST_PAD_PROBE_OK;
}

static void
add_tap (DragomanOutput *o, GstElement *room_pipeline, GstElement *tee, const char *lang)
{
  Stream *st = g_new0 (Stream, 1);
  st->o = o;
  st->lang = g_strdup (lang);
  st->need_key = TRUE;
  GstElement *q = add (room_pipeline, "queue", NULL);
  /* leaky and small: the bridge pulls at once; this only absorbs a scheduling hiccup */
  g_object_set (q, "max-size-time", (guint64) GST_SECOND, "max-size-buffers", 0, "max-size-bytes", 0, "leaky", 2,
                NULL);
  st->appsink = add (room_pipeline, "appsink", NULL);
  g_object_set (st->appsink, "sync", FALSE, "async", FALSE, "enable-last-sample", FALSE, NULL);
  GstAppSinkCallbacks cb = { .new_sample = on_sample };
  gst_app_sink_set_callbacks (GST_APP_SINK (st->appsink), &cb, st, NULL);
  g_autoptr (GstPad) tpad = gst_element_request_pad_simple (tee, "src_%u");
  g_autoptr (GstPad) qsink = gst_element_get_static_pad (q, "sink");
  gst_pad_link (tpad, qsink);
  gst_element_link (q, st->appsink);
  g_ptr_array_add (o->streams, st);
}

static void
stream_free (gpointer p)
{
  Stream *st = p;
  gst_clear_caps (&st->caps);
  g_free (st->lang);
  g_free (st);
}

static DragomanOutput *
output_new (Kind kind, const char *name, const DragomanRoomConfig *room)
{
  if (!output_debug)
    GST_DEBUG_CATEGORY_INIT (output_debug, "dragoman-output", 0, "dragoman recordings and restreams");
  DragomanOutput *o = g_new0 (DragomanOutput, 1);
  o->kind = kind;
  o->name = g_strdup (name);
  o->room = room;
  o->streams = g_ptr_array_new_with_free_func (stream_free);
  o->since_us = g_get_real_time ();
  o->t0 = GST_CLOCK_TIME_NONE;
  g_mutex_init (&o->lock);
  o->tags = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) gst_tag_list_unref);
  return o;
}

DragomanOutput *
dragoman_output_new_recording (GstElement *room_pipeline, DragomanProgram *program, const DragomanRoomConfig *room)
{
  DragomanOutput *o = output_new (KIND_RECORDING, "record", room);
  add_tap (o, room_pipeline, dragoman_program_get_video_tee (program), NULL);
  add_tap (o, room_pipeline, dragoman_program_get_audio_tee (program, "orig"), "orig");
  for (guint i = 0; room->langs[i]; i++)
    add_tap (o, room_pipeline, dragoman_program_get_audio_tee (program, room->langs[i]), room->langs[i]);
  return o;
}

DragomanOutput *
dragoman_output_new_restream (GstElement *room_pipeline, DragomanProgram *program, const DragomanRoomConfig *room,
                              const DragomanRestreamConfig *restream)
{
  DragomanOutput *o =
      output_new (g_str_has_prefix (restream->url, "srt://") ? KIND_SRT : KIND_RTMP, restream->name, room);
  o->restream = restream;
  if (restream->key) {
    o->secret = g_strdup (restream->key);
  } else {
    const char *pass = strstr (restream->url, "passphrase=");
    if (pass)
      o->secret = g_strndup (pass + 11, strcspn (pass + 11, "&"));
  }
  add_tap (o, room_pipeline, dragoman_program_get_video_tee (program), NULL);
  add_tap (o, room_pipeline, dragoman_program_get_audio_tee (program, restream->lang), restream->lang);
  return o;
}

/* ---- the output pipeline (main thread) ------------------------------------ */

/* the stream's appsrc (kept in st->pending until the pipeline runs); returns its parser */
static GstElement *
add_appsrc (DragomanOutput *o, GstElement *pipeline, Stream *st)
{
  GstElement *src = add (pipeline, "appsrc", NULL);
  st->pending = src;
  /* not live: the muxer waits for every stream (the program never stops any: the
   * slate stands in for the stage), and the sink writes as fast as data comes */
  g_object_set (src, "format", GST_FORMAT_TIME, "is-live", FALSE, "max-bytes", (guint64) 0, "block", FALSE, NULL);
  GstElement *parse = add (pipeline, st->lang ? "aacparse" : "h264parse", NULL);
  gst_element_link (src, parse);
  return parse;
}

/* Language tags. A tag event sent once is lost when splitmuxsink starts the next
 * part (the muxer is reset: parts 2+ had no languages), and taginject drops
 * titles that are not ASCII. So: remember each stream's tags by stream-id as
 * its stream-start passes the parser, and at every muxer sink pad send them
 * again before the first buffer after each stream-start or segment. */
static GstPadProbeReturn
remember_tags (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  GstEvent *ev = GST_PAD_PROBE_INFO_EVENT (info);
  if (GST_EVENT_TYPE (ev) == GST_EVENT_STREAM_START) {
    DragomanOutput *o = g_object_get_data (G_OBJECT (pad), "output");
    const char *sid = NULL;
    gst_event_parse_stream_start (ev, &sid);
    g_mutex_lock (&o->lock);
    g_hash_table_replace (o->tags, g_strdup (sid), gst_tag_list_ref (data));
    g_mutex_unlock (&o->lock);
  }
  return GST_PAD_PROBE_OK;
}

static GstPadProbeReturn
resend_tags (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  DragomanOutput *o = data;
  if (info->type & GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM) {
    GstEvent *ev = GST_PAD_PROBE_INFO_EVENT (info);
    if (GST_EVENT_TYPE (ev) == GST_EVENT_STREAM_START) {
      const char *sid = NULL;
      gst_event_parse_stream_start (ev, &sid);
      g_mutex_lock (&o->lock);
      GstTagList *t = g_hash_table_lookup (o->tags, sid);
      g_object_set_data_full (G_OBJECT (pad), "tags", t ? gst_tag_list_ref (t) : NULL,
                              (GDestroyNotify) gst_tag_list_unref);
      g_mutex_unlock (&o->lock);
    }
    if (GST_EVENT_TYPE (ev) == GST_EVENT_STREAM_START || GST_EVENT_TYPE (ev) == GST_EVENT_SEGMENT)
      g_object_set_data (G_OBJECT (pad), "tags-due", GINT_TO_POINTER (1));
  } else if (g_object_get_data (G_OBJECT (pad), "tags-due")) {
    GstTagList *t = g_object_get_data (G_OBJECT (pad), "tags");
    g_object_set_data (G_OBJECT (pad), "tags-due", NULL);
    if (t)
      gst_pad_send_event (pad, gst_event_new_tag (gst_tag_list_copy (t)));
  }
  return GST_PAD_PROBE_OK;
}

static void
on_mux_pad_added (GstElement *mux, GstPad *pad, gpointer data)
{
  if (GST_PAD_DIRECTION (pad) == GST_PAD_SINK)
    gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, resend_tags, data, NULL);
}

/* orig carries the floor's language, titled "Original"; a channel its language's
 * English name. One word each: matroskamux 1.22 writes a title with anything but
 * [A-Za-z0-9_+-/:.] backslash-escaped and quoted ("Original\ \(English\)") */
static void
tag_language (DragomanOutput *o, GstElement *parser, const char *lang)
{
  gboolean orig = g_str_equal (lang, "orig");
  const DragomanLanguage *l = dragoman_language_lookup (orig ? o->room->floor_lang : lang);
  g_autofree char *title = g_strdup (orig ? "Original" : l->name);
  GstTagList *tags = gst_tag_list_new (GST_TAG_LANGUAGE_CODE, l->code, GST_TAG_TITLE, title, NULL);
  gst_tag_list_set_scope (tags, GST_TAG_SCOPE_STREAM);
  g_autoptr (GstPad) src = gst_element_get_static_pad (parser, "src");
  g_object_set_data (G_OBJECT (src), "output", o);
  gst_pad_add_probe (src, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, remember_tags, tags,
                     (GDestroyNotify) gst_tag_list_unref);
}

static GstElement *
add_queue (GstElement *pipeline, GstElement *from)
{
  GstElement *q = add (pipeline, "queue", NULL);
  g_object_set (q, "max-size-time", (guint64) 2 * GST_SECOND, "max-size-buffers", 0, "max-size-bytes", 0, NULL);
  gst_element_link (from, q);
  return q;
}

static void
link_to_request (GstElement *from, GstElement *mux, const char *templ)
{
  g_autoptr (GstPad) src = gst_element_get_static_pad (from, "src");
  g_autoptr (GstPad) sink = gst_element_request_pad_simple (mux, templ);
  gst_pad_link (src, sink);
}

static gchar *
on_format_location (GstElement *splitmux, guint id, GstSample *first, gpointer data)
{
  DragomanOutput *o = data;
  const char *lang = g_object_get_data (G_OBJECT (splitmux), "lang");
  char *path = lang ? g_strdup_printf ("%s/%s-%s-%s-%03u.mka", o->room->record->dir, o->room->id, o->session, lang, id)
                    : g_strdup_printf ("%s/%s-%s-%03u.mkv", o->room->record->dir, o->room->id, o->session, id);
  if (!lang) {
    g_mutex_lock (&o->lock);
    g_free (o->file);
    o->file = g_strdup (path);
    g_mutex_unlock (&o->lock);
  }
  GST_INFO ("recording %s: %s", o->room->id, path);
  return path;
}

static GstElement *
add_splitmux (DragomanOutput *o, GstElement *pipeline, const char *lang)
{
  GstElement *sm = add (pipeline, "splitmuxsink", NULL);
  GstElement *mux = gst_element_factory_make ("matroskamux", NULL);
  /* clusters of at most 1 s, written as they fill: a killed server leaves a file
   * that plays up to its last second or so (the index at the end is a bonus).
   * One index entry a second: matroskamux indexes every buffer of a one-track audio
   * file by default, and keeps the index in memory until the file ends: 47 AAC
   * frames/s x 24 bytes x 6 audio-only files was 0.3 MiB a minute of heap (18 MiB
   * an hour, regrown 32 entries at a time): a stage-only soak's steady rise. */
  g_object_set (mux, "min-cluster-duration", (gint64) 500 * GST_MSECOND, "max-cluster-duration",
                (gint64) GST_SECOND, "min-index-interval", (gint64) GST_SECOND, NULL);
  g_signal_connect (mux, "pad-added", G_CALLBACK (on_mux_pad_added), o);
  GstElement *file = gst_element_factory_make ("filesink", NULL);
  g_object_set (file, "sync", FALSE, "async", FALSE, NULL);
  /* unbuffered: filesink's 64 KB buffer was what a SIGKILL lost (~0.8 s at 640 kbit/s,
   * < 0.1 s without it); matroskamux writes whole clusters, so this costs no syscalls */
  gst_util_set_object_arg (G_OBJECT (file), "buffer-mode", "unbuffered");
  g_object_set (sm, "muxer", mux, "sink", file, "max-size-time",
                (guint64) o->room->record->split_minutes * 60 * GST_SECOND, "send-keyframe-requests", FALSE, NULL);
  g_object_set_data_full (G_OBJECT (sm), "lang", g_strdup (lang), g_free);
  g_signal_connect (sm, "format-location-full", G_CALLBACK (on_format_location), o);
  return sm;
}

static void
build_recording (DragomanOutput *o, GstElement *pipeline)
{
  GstElement *sm = add_splitmux (o, pipeline, NULL);
  for (guint i = 0; i < o->streams->len; i++) {
    Stream *st = o->streams->pdata[i];
    GstElement *parsed = add_appsrc (o, pipeline, st);
    if (!st->lang) {
      GstElement *q = add_queue (pipeline, parsed);
      g_autoptr (GstPad) qsrc = gst_element_get_static_pad (q, "src");
      gst_pad_add_probe (qsrc, GST_PAD_PROBE_TYPE_BUFFER, count_bytes, o, NULL);
      link_to_request (q, sm, "video");
      continue;
    }
    tag_language (o, parsed, st->lang);
    GstElement *tee = add (pipeline, "tee", NULL);
    gst_element_link (parsed, tee);
    GstElement *q = add_queue (pipeline, tee);
    g_autoptr (GstPad) qsrc = gst_element_get_static_pad (q, "src");
    gst_pad_add_probe (qsrc, GST_PAD_PROBE_TYPE_BUFFER, count_bytes, o, NULL);
    link_to_request (q, sm, "audio_%u");
    if (o->room->record->audio_only) {
      GstElement *aq = add_queue (pipeline, tee);
      GstElement *asm_ = add_splitmux (o, pipeline, st->lang);
      link_to_request (aq, asm_, "audio_%u");
    }
  }
}

static void
build_restream (DragomanOutput *o, GstElement *pipeline)
{
  GstElement *mux, *sink;
  if (o->kind == KIND_RTMP) {
    mux = add (pipeline, "flvmux", NULL);
    g_object_set (mux, "streamable", TRUE, NULL);
    sink = add (pipeline, "rtmp2sink", NULL);
    g_autofree char *location = g_strdup_printf ("%s/%s", o->restream->url, o->restream->key);
    g_object_set (sink, "location", location, "sync", FALSE, "async", FALSE, NULL);
  } else {
    mux = add (pipeline, "mpegtsmux", NULL);
    g_object_set (mux, "alignment", 7, NULL); /* 7 TS packets = one 1316-byte SRT payload */
    sink = add (pipeline, "srtsink", NULL);
    g_object_set (sink, "uri", o->restream->url, "sync", FALSE, "async", FALSE, "wait-for-connection", FALSE, NULL);
  }
  gst_element_link (mux, sink);
  g_autoptr (GstPad) ssink = gst_element_get_static_pad (sink, "sink");
  gst_pad_add_probe (ssink, GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST, count_bytes, o, NULL);
  for (guint i = 0; i < o->streams->len; i++) {
    Stream *st = o->streams->pdata[i];
    GstElement *parsed = add_appsrc (o, pipeline, st);
    GstElement *q = add_queue (pipeline, parsed);
    link_to_request (q, mux, o->kind == KIND_RTMP ? (st->lang ? "audio" : "video") : "sink_%d");
  }
}

/* ---- life cycle (main thread) ---------------------------------------------- */

static void
teardown (DragomanOutput *o)
{
  g_mutex_lock (&o->lock);
  o->running = FALSE;
  for (guint i = 0; i < o->streams->len; i++) {
    Stream *st = o->streams->pdata[i];
    st->appsrc = NULL;
    st->pending = NULL;
    gst_clear_caps (&st->caps);
  }
  g_mutex_unlock (&o->lock);
  if (o->stop_timer)
    g_source_remove (o->stop_timer);
  o->stop_timer = 0;
  if (o->bus_watch)
    g_source_remove (o->bus_watch);
  o->bus_watch = 0;
  if (o->pipeline) {
    gint64 t0 = g_get_monotonic_time ();
    gst_element_set_state (o->pipeline, GST_STATE_NULL);
    gst_clear_object (&o->pipeline);
    GST_INFO ("%s %s: pipeline stopped in %" G_GINT64_FORMAT " ms", kind_names[o->kind], o->name,
              (g_get_monotonic_time () - t0) / 1000);
  }
}

static gboolean
on_retry (gpointer data)
{
  DragomanOutput *o = data;
  o->retry_timer = 0;
  g_autoptr (GError) err = NULL;
  if (o->wanted && !start_pipeline (o, &err)) {
    GST_WARNING ("%s %s: %s", kind_names[o->kind], o->name, err->message);
    set_state (o, DRAGOMAN_OUTPUT_FAILED, err->message);
    o->wanted = FALSE;
  }
  return G_SOURCE_REMOVE;
}

static gboolean
is_disk_error (const GError *err)
{
  return err->domain == GST_RESOURCE_ERROR &&
         (err->code == GST_RESOURCE_ERROR_NO_SPACE_LEFT || err->code == GST_RESOURCE_ERROR_OPEN_WRITE ||
          err->code == GST_RESOURCE_ERROR_OPEN_READ_WRITE || err->code == GST_RESOURCE_ERROR_WRITE);
}

static void
on_error (DragomanOutput *o, const GError *err, const char *from)
{
  g_autofree char *msg = redact (o, err->message);
  teardown (o);
  if (o->kind == KIND_RECORDING && is_disk_error (err)) {
    /* a full or read-only disk does not heal by itself: stop, and tell the crew */
    g_printerr ("room %s: recording failed: %s (from %s): stopped\n", o->room->id, msg, from);
    GST_WARNING ("ALERT room %s: recording failed: %s", o->room->id, msg);
    o->wanted = FALSE;
    set_state (o, DRAGOMAN_OUTPUT_FAILED, msg);
    return;
  }
  /* a platform that drops us, a partner not listening yet, a muxer refusing new
   * caps: try again, 1 s, 2 s, 4 s ... 30 s apart (a stream that stayed live for
   * 30 s starts again at 1 s) */
  o->reconnects++;
  if (o->live_since_us && g_get_monotonic_time () - o->live_since_us > 30 * G_USEC_PER_SEC)
    o->backoff_s = 0;
  o->backoff_s = o->backoff_s ? MIN (o->backoff_s * 2, BACKOFF_MAX_S) : 1;
  g_printerr ("%s %s: %s (from %s); retrying in %u s\n", kind_names[o->kind], o->name, msg, from, o->backoff_s);
  set_state (o, DRAGOMAN_OUTPUT_RETRYING, msg);
  o->retry_timer = g_timeout_add_seconds (o->backoff_s, on_retry, o);
}

static gboolean
on_bus (GstBus *bus, GstMessage *msg, gpointer data)
{
  DragomanOutput *o = data;
  switch (GST_MESSAGE_TYPE (msg)) {
  case GST_MESSAGE_ERROR: {
    g_autoptr (GError) err = NULL;
    g_autofree char *dbg = NULL;
    gst_message_parse_error (msg, &err, &dbg);
    g_autofree char *safe_dbg = redact (o, dbg);
    GST_WARNING ("%s %s: error from %s: %s (%s)", kind_names[o->kind], o->name, GST_OBJECT_NAME (msg->src),
                 err->message, safe_dbg);
    on_error (o, err, GST_OBJECT_NAME (msg->src));
    return G_SOURCE_REMOVE; /* teardown removed the watch */
  }
  case GST_MESSAGE_EOS:
    /* every file is finished: a stop, or a new file for a new video format */
    teardown (o);
    if (g_atomic_int_compare_and_exchange (&o->rotating, 1, 0) && o->wanted) {
      g_autoptr (GError) err = NULL;
      GST_INFO ("recording %s: the video format changed: a new file", o->room->id);
      if (!start_pipeline (o, &err)) {
        o->wanted = FALSE;
        set_state (o, DRAGOMAN_OUTPUT_FAILED, err->message);
      }
      return G_SOURCE_REMOVE;
    }
    set_state (o, DRAGOMAN_OUTPUT_STOPPED, NULL);
    return G_SOURCE_REMOVE;
  default:
    return G_SOURCE_CONTINUE;
  }
}

static gboolean
on_stats (gpointer data)
{
  DragomanOutput *o = data;
  gint64 now = g_get_monotonic_time ();
  guint64 bytes = (guint64) g_atomic_pointer_get (&o->bytes);
  if (o->last_bytes_us) {
    double dt = (double) (now - o->last_bytes_us) / G_USEC_PER_SEC;
    double k = dt > 0 ? (double) (bytes - o->last_bytes) * 8 / 1000 / dt : 0;
    o->kbps = o->kbps * 0.5 + k * 0.5; /* ~2 s of smoothing at one tick a second */
  }
  /* a platform that stops reading without closing (rtmp2sink only notices when the
   * kernel's ~4 MB send buffer is full: 12 s at 2 Mbit/s, minutes at less) shows
   * here first, as media piling up in front of the muxer: reconnect */
  if (o->pipeline && o->kind != KIND_RECORDING && o->state == DRAGOMAN_OUTPUT_LIVE) {
    GstClockTime queued = 0;
    g_mutex_lock (&o->lock);
    for (guint i = 0; i < o->streams->len; i++) {
      Stream *st = o->streams->pdata[i];
      if (st->appsrc)
        queued = MAX (queued, gst_app_src_get_current_level_time (GST_APP_SRC (st->appsrc)));
    }
    g_mutex_unlock (&o->lock);
    if (queued > STALL_TIME) {
      GError err = { GST_STREAM_ERROR, GST_STREAM_ERROR_FAILED, (char *) "the platform stopped reading" };
      on_error (o, &err, "watchdog");
      return G_SOURCE_CONTINUE;
    }
  }
  /* live once bytes reach the sink: for RTMP that is after the handshake */
  if (o->pipeline && (o->state == DRAGOMAN_OUTPUT_STARTING || o->state == DRAGOMAN_OUTPUT_RETRYING) &&
      bytes > o->last_bytes) {
    g_autofree char *target = dragoman_output_describe_target (o);
    g_printerr ("room %s: %s %s is live (%s)\n", o->room->id, kind_names[o->kind], o->name, target);
    set_state (o, DRAGOMAN_OUTPUT_LIVE, NULL);
  }
  o->last_bytes = bytes;
  o->last_bytes_us = now;
  return G_SOURCE_CONTINUE;
}

static gboolean
start_pipeline (DragomanOutput *o, GError **error)
{
  if (o->kind == KIND_RECORDING && g_mkdir_with_parents (o->room->record->dir, 0755) != 0) {
    g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errno), "cannot create %s: %s", o->room->record->dir,
                 g_strerror (errno));
    return FALSE;
  }
  g_autofree char *pname = g_strdup_printf ("%s-%s-%s", kind_names[o->kind], o->room->id, o->name);
  GstElement *pipeline = gst_object_ref_sink (gst_pipeline_new (pname));
  if (o->kind == KIND_RECORDING) {
    g_autoptr (GDateTime) now = g_date_time_new_now_utc ();
    g_free (o->session);
    o->session = g_date_time_format (now, "%Y%m%d-%H%M%SZ");
    build_recording (o, pipeline);
  } else {
    build_restream (o, pipeline);
  }
  o->pipeline = pipeline;
  g_autoptr (GstBus) bus = gst_pipeline_get_bus (GST_PIPELINE (pipeline));
  o->bus_watch = gst_bus_add_watch (bus, on_bus, o);
  g_mutex_lock (&o->lock);
  o->t0 = GST_CLOCK_TIME_NONE;
  for (guint i = 0; i < o->streams->len; i++) {
    Stream *st = o->streams->pdata[i];
    st->appsrc = st->pending;
    st->need_key = TRUE;
  }
  o->running = TRUE;
  g_mutex_unlock (&o->lock);
  /* a retry stays "retrying" (since: the first failure) until it is live again:
   * a retrying → starting → retrying flap restarted the crew's clock and their
   * alert at every attempt (helper's finding) */
  if (o->state != DRAGOMAN_OUTPUT_RETRYING)
    set_state (o, DRAGOMAN_OUTPUT_STARTING, o->error);
  if (gst_element_set_state (pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    /* the error is on the bus too; handle it there (retry or fail) */
    GST_WARNING ("%s %s: the pipeline did not start", kind_names[o->kind], o->name);
  }
  return TRUE;
}

gboolean
dragoman_output_start (DragomanOutput *o, GError **error)
{
  if (o->wanted)
    return TRUE;
  if (o->stop_timer) /* still finishing the last file: finish now */
    teardown (o);
  o->wanted = TRUE;
  o->backoff_s = 0;
  g_clear_pointer (&o->error, g_free);
  if (!o->stats_timer)
    o->stats_timer = g_timeout_add_seconds (1, on_stats, o);
  if (!start_pipeline (o, error)) {
    o->wanted = FALSE;
    set_state (o, DRAGOMAN_OUTPUT_FAILED, (*error)->message);
    return FALSE;
  }
  return TRUE;
}

static gboolean
on_stop_timeout (gpointer data)
{
  DragomanOutput *o = data;
  o->stop_timer = 0;
  GST_WARNING ("%s %s: no EOS within %d ms: torn down", kind_names[o->kind], o->name, STOP_TIMEOUT_MS);
  teardown (o);
  set_state (o, DRAGOMAN_OUTPUT_STOPPED, NULL);
  return G_SOURCE_REMOVE;
}

void
dragoman_output_stop (DragomanOutput *o)
{
  o->wanted = FALSE;
  if (o->retry_timer)
    g_source_remove (o->retry_timer);
  o->retry_timer = 0;
  if (!o->pipeline) {
    set_state (o, DRAGOMAN_OUTPUT_STOPPED, NULL);
    return;
  }
  /* end every stream: the muxer finishes the file (index, duration) and the bus
   * says EOS; a sink that cannot finish (a dead connection) is torn down after
   * STOP_TIMEOUT_MS */
  g_mutex_lock (&o->lock);
  o->running = FALSE;
  for (guint i = 0; i < o->streams->len; i++) {
    Stream *st = o->streams->pdata[i];
    if (st->appsrc)
      gst_app_src_end_of_stream (GST_APP_SRC (st->appsrc));
  }
  g_mutex_unlock (&o->lock);
  if (!o->stop_timer)
    o->stop_timer = g_timeout_add (STOP_TIMEOUT_MS, on_stop_timeout, o);
}

gboolean
dragoman_output_is_wanted (DragomanOutput *o)
{
  return o->wanted;
}

gboolean
dragoman_output_get_autostart (DragomanOutput *o)
{
  return o->restream ? o->restream->autostart : o->room->record->autostart;
}

void
dragoman_output_set_change_func (DragomanOutput *o, DragomanOutputChangeFunc func, gpointer data)
{
  o->change_func = func;
  o->change_data = data;
}

const char *
dragoman_output_get_name (DragomanOutput *o)
{
  return o->name;
}

const char *
dragoman_output_get_kind (DragomanOutput *o)
{
  return kind_names[o->kind];
}

const char *
dragoman_output_get_lang (DragomanOutput *o)
{
  return o->restream ? o->restream->lang : NULL;
}

void
dragoman_output_get_stats (DragomanOutput *o, DragomanOutputStats *s)
{
  s->state = o->state;
  s->error = o->error;
  s->since_us = o->since_us;
  s->bytes = (guint64) g_atomic_pointer_get (&o->bytes);
  s->kbps = o->pipeline ? o->kbps : 0;
  s->reconnects = o->reconnects;
  s->dropped = (guint64) g_atomic_pointer_get (&o->dropped);
}

void
dragoman_output_add_json (DragomanOutput *o, JsonBuilder *j)
{
  DragomanOutputStats s;
  dragoman_output_get_stats (o, &s);
  g_autofree char *target = dragoman_output_describe_target (o);
  json_builder_begin_object (j);
  json_builder_set_member_name (j, "name");
  json_builder_add_string_value (j, o->name);
  json_builder_set_member_name (j, "kind");
  json_builder_add_string_value (j, kind_names[o->kind]);
  json_builder_set_member_name (j, "room");
  json_builder_add_string_value (j, o->room->id);
  if (o->restream) {
    json_builder_set_member_name (j, "lang");
    json_builder_add_string_value (j, o->restream->lang);
  }
  json_builder_set_member_name (j, "target");
  json_builder_add_string_value (j, target);
  json_builder_set_member_name (j, "state");
  json_builder_add_string_value (j, dragoman_output_state_name (s.state));
  json_builder_set_member_name (j, "error");
  if (s.error)
    json_builder_add_string_value (j, s.error);
  else
    json_builder_add_null_value (j);
  json_builder_set_member_name (j, "since");
  json_builder_add_int_value (j, s.since_us / G_USEC_PER_SEC);
  json_builder_set_member_name (j, "bytes");
  json_builder_add_int_value (j, (gint64) s.bytes);
  json_builder_set_member_name (j, "kbps");
  json_builder_add_double_value (j, s.kbps);
  json_builder_set_member_name (j, "reconnects");
  json_builder_add_int_value (j, s.reconnects);
  json_builder_set_member_name (j, "dropped");
  json_builder_add_int_value (j, (gint64) s.dropped);
  if (o->kind == KIND_RECORDING) {
    g_mutex_lock (&o->lock);
    g_autofree char *file = o->pipeline ? g_strdup (o->file) : NULL;
    g_mutex_unlock (&o->lock);
    json_builder_set_member_name (j, "file");
    if (file)
      json_builder_add_string_value (j, file);
    else
      json_builder_add_null_value (j);
  }
  json_builder_end_object (j);
}

void
dragoman_output_finish (DragomanOutput *o)
{
  if (o->retry_timer)
    g_source_remove (o->retry_timer);
  o->retry_timer = 0;
  if (o->bus_watch)
    g_source_remove (o->bus_watch);
  o->bus_watch = 0;
  if (!o->pipeline)
    return;
  g_mutex_lock (&o->lock);
  o->running = FALSE;
  for (guint i = 0; i < o->streams->len; i++) {
    Stream *st = o->streams->pdata[i];
    if (st->appsrc)
      gst_app_src_end_of_stream (GST_APP_SRC (st->appsrc));
  }
  g_mutex_unlock (&o->lock);
  g_autoptr (GstBus) bus = gst_pipeline_get_bus (GST_PIPELINE (o->pipeline));
  g_autoptr (GstMessage) m =
      gst_bus_timed_pop_filtered (bus, STOP_TIMEOUT_MS * GST_MSECOND, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  if (!m || GST_MESSAGE_TYPE (m) != GST_MESSAGE_EOS)
    GST_WARNING ("%s %s: not finished cleanly at shutdown", kind_names[o->kind], o->name);
  teardown (o);
}

void
dragoman_output_free (DragomanOutput *o)
{
  if (!o)
    return;
  if (o->retry_timer)
    g_source_remove (o->retry_timer);
  if (o->stats_timer)
    g_source_remove (o->stats_timer);
  teardown (o);
  g_ptr_array_unref (o->streams);
  g_hash_table_unref (o->tags);
  g_mutex_clear (&o->lock);
  g_free (o->name);
  g_free (o->secret);
  g_free (o->error);
  g_free (o->session);
  g_free (o->file);
  g_free (o);
}
