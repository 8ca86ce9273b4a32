/* hls — see the header.
 *
 *  program video tee ─ leaky queue ─ split probe ─ splitmuxsink video (mpegtsmux) → video-N.ts
 *                                        ▼ split-at-running-time on every rendition
 *  program aac-LANG tee ─ leaky queue ─ splitmuxsink (mpegtsmux) → audio-LANG-N.ts
 *
 * Splits: at the first video keyframe at least segment-seconds after the last
 * split (the encoder's keyframe interval should equal the segment length), and at
 * the first keyframe after the video source switched (stage lost or back); the
 * segments every rendition opens at such a split carry the DISCONTINUITY. */
#include "hls.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <sys/file.h>
#include <unistd.h>
#include <gst/pbutils/pbutils.h>
#include <gst/video/video.h>
#include <string.h>

GST_DEBUG_CATEGORY_STATIC (hls_debug);
#define GST_CAT_DEFAULT hls_debug


/* splits made for a source switch remembered, for renditions whose fragment-opened
 * message comes after the next switch (a stage flapping within a second or two) */
#define DISCONT_RING 8
/* an audio rendition opens its segment at the first AAC frame at or after the split:
 * up to one frame (21 ms) late */
#define SPLIT_SLACK (50 * GST_MSECOND)

typedef struct {
  guint id;
  char *file;
  double duration;
  gint64 pdt_us; /* wall clock at the segment's start */
  gboolean discont;
} Segment;

typedef struct {
  DragomanHls *hls;
  char *name;     /* "video" or "audio-hy" */
  char *lang;     /* NULL for video */
  GstElement *sink; /* splitmuxsink */
  GQueue segments;  /* Segment* */
  GstClockTime open_rt;
  guint open_id;
  gint64 open_pdt_us;
  gboolean open_discont; /* the open segment is the first after a source switch */
  guint discont_dropped; /* segments with a discontinuity that left the window */
  char *playlist;
} Rendition;

struct _DragomanHls {
  const DragomanRoomConfig *room;
  DragomanProgram *program;
  GstElement *pipeline;
  GstPad *video_pad; /* our branch of the program's video tee */
  char *dir;
  int lock_fd;
  GPtrArray *renditions; /* Rendition*; [0] is the video */
  char *master;
  char *video_codecs;
  int width, height;
  /* split driving: written by the keyframe probe's thread, under lock */
  GMutex lock;
  GstClockTime last_split, start_rt;
  gboolean switched;
  /* running times of the last splits made for a source switch (a ring): every
   * rendition marks the segment it opens at such a split, so all mark the same one */
  GstClockTime discont_rt[DISCONT_RING];
  guint discont_next;
};

static void
segment_free (gpointer p)
{
  Segment *s = p;
  g_free (s->file);
  g_free (s);
}

static gint64
running_time_to_wall_us (GstElement *el, GstClockTime rt)
{
  g_autoptr (GstClock) clock = gst_element_get_clock (el);
  gint64 now = g_get_real_time ();
  if (!clock)
    return now;
  GstClockTime cnow = gst_clock_get_time (clock), at = gst_element_get_base_time (el) + rt;
  return now - (gint64) (GST_CLOCK_DIFF (at, cnow) / GST_USECOND);
}

static char *
iso8601 (gint64 us)
{
  g_autoptr (GDateTime) dt = g_date_time_new_from_unix_utc (us / G_USEC_PER_SEC);
  g_autofree char *base = g_date_time_format (dt, "%Y-%m-%dT%H:%M:%S");
  return g_strdup_printf ("%s.%03dZ", base, (int) (us % G_USEC_PER_SEC / 1000));
}

static void
write_playlist (Rendition *r)
{
  DragomanHls *h = r->hls;
  GString *s = g_string_new ("#EXTM3U\n#EXT-X-VERSION:6\n");
  double max = h->room->hls_segment_seconds;
  for (GList *l = r->segments.head; l; l = l->next)
    max = MAX (max, ((Segment *) l->data)->duration);
  Segment *first = g_queue_peek_head (&r->segments);
  /* RFC 8216 6.2.2: a playlist whose segments with a discontinuity have left the
   * window must say how many there were, or players number the discontinuities of
   * the renditions differently (hls.js lines audio up with video by that number).
   * The first segment's own tag is not written, so it counts here. */
  guint dseq = r->discont_dropped + (first && first->discont ? 1 : 0);
  g_string_append_printf (s,
                          "#EXT-X-TARGETDURATION:%d\n#EXT-X-MEDIA-SEQUENCE:%u\n#EXT-X-DISCONTINUITY-SEQUENCE:%u\n",
                          (int) (max + 0.999), first ? first->id : 0, dseq);
  for (GList *l = r->segments.head; l; l = l->next) {
    Segment *seg = l->data;
    g_autofree char *pdt = iso8601 (seg->pdt_us);
    if (seg->discont && l != r->segments.head)
      g_string_append (s, "#EXT-X-DISCONTINUITY\n");
    g_string_append_printf (s, "#EXT-X-PROGRAM-DATE-TIME:%s\n#EXTINF:%.3f,\n/hls-seg/%s/%s\n", pdt, seg->duration,
                            h->room->id, seg->file);
  }
  g_free (r->playlist);
  r->playlist = g_string_free (s, FALSE);
}

static void
write_master (DragomanHls *h)
{
  const DragomanLanguage *floor = dragoman_language_lookup (h->room->floor_lang);
  GString *s = g_string_new ("#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n");
  for (guint i = 1; i < h->renditions->len; i++) {
    Rendition *r = h->renditions->pdata[i];
    gboolean orig = g_str_equal (r->lang, "orig");
    const DragomanLanguage *l = dragoman_language_lookup (r->lang);
    g_autofree char *name = orig ? g_strdup_printf ("Original (%s)", floor->native_name) : g_strdup (l->native_name);
    g_string_append_printf (s,
                            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aac\",LANGUAGE=\"%s\",NAME=\"%s\",DEFAULT=%s,"
                            "AUTOSELECT=%s,CHANNELS=\"1\",URI=\"%s.m3u8\"\n",
                            orig ? h->room->floor_lang : r->lang, name, orig ? "YES" : "NO", orig ? "YES" : "NO",
                            r->name);
  }
  /* BANDWIDTH: the peak of video + one audio; the stage encoder's rate is not
   * known until it streams, so assume a 4 Mbit/s conference feed until then */
  g_string_append_printf (s, "#EXT-X-STREAM-INF:BANDWIDTH=%d,CODECS=\"%s,mp4a.40.2\"", 4000000 + DRAGOMAN_AAC_BITRATE,
                          h->video_codecs ? h->video_codecs : "avc1.64001f");
  if (h->width)
    g_string_append_printf (s, ",RESOLUTION=%dx%d", h->width, h->height);
  g_string_append (s, ",AUDIO=\"aac\"\nvideo.m3u8\n");
  g_free (h->master);
  h->master = g_string_free (s, FALSE);
}

/* CODECS and RESOLUTION follow what the video really is (another encoder may
 * have taken over): checked at each video segment, the master rewritten on change */
static void
update_video_info (DragomanHls *h)
{
  g_autoptr (GstCaps) caps = gst_pad_get_current_caps (h->video_pad);
  if (!caps)
    return;
  int w = 0, hh = 0;
  GstStructure *st = gst_caps_get_structure (caps, 0);
  /* byte-stream H.264 has no codec_data for gst_codec_utils_caps_get_mime_codec ()
   * to read: build avc1.PPCCLL from h264parse's profile and level fields */
  const char *profile = gst_structure_get_string (st, "profile");
  const char *level = gst_structure_get_string (st, "level");
  static const struct { const char *name, *hex; } profiles[] = {
    { "constrained-baseline", "42e0" }, { "baseline", "4200" }, { "main", "4d40" }, { "high", "6400" },
  };
  char *codecs = NULL;
  for (guint i = 0; profile && level && i < G_N_ELEMENTS (profiles); i++)
    if (g_str_equal (profile, profiles[i].name))
      codecs = g_strdup_printf ("avc1.%s%02x", profiles[i].hex, (int) (g_ascii_strtod (level, NULL) * 10 + 0.5));
  gst_structure_get_int (st, "width", &w);
  gst_structure_get_int (st, "height", &hh);
  if (codecs && g_str_has_prefix (codecs, "avc1.") && (g_strcmp0 (codecs, h->video_codecs) || w != h->width)) {
    g_free (h->video_codecs);
    h->video_codecs = g_steal_pointer (&codecs);
    h->width = w;
    h->height = hh;
    write_master (h);
  }
  g_free (codecs);
}

/* ---- splitmuxsink callbacks ------------------------------------------------ */

static char *
on_format_location (GstElement *sink, guint id, GstSample *first, gpointer data)
{
  Rendition *r = data;
  return g_strdup_printf ("%s/%s-%05u.ts", r->hls->dir, r->name, id);
}

/* bus (main thread): a fragment opened or closed */
static void
on_fragment (Rendition *r, const GstStructure *st, gboolean opened)
{
  DragomanHls *h = r->hls;
  GstClockTime rt = 0;
  gst_structure_get_clock_time (st, "running-time", &rt);
  const char *location = gst_structure_get_string (st, "location");
  if (!location)
    return;
  if (opened) {
    /* the first segment opened at (or just after) a split made for a source switch
     * since this rendition's previous segment opened */
    gboolean discont = FALSE;
    g_mutex_lock (&h->lock);
    for (guint i = 0; i < DISCONT_RING; i++) {
      GstClockTime d = h->discont_rt[i];
      if (GST_CLOCK_TIME_IS_VALID (d) && d <= rt + SPLIT_SLACK &&
          (!GST_CLOCK_TIME_IS_VALID (r->open_rt) || d > r->open_rt + SPLIT_SLACK))
        discont = TRUE;
    }
    g_mutex_unlock (&h->lock);
    r->open_rt = rt;
    r->open_discont = discont;
    r->open_pdt_us = running_time_to_wall_us (h->pipeline, rt);
    return;
  }
  Segment *seg = g_new0 (Segment, 1);
  seg->file = g_path_get_basename (location);
  /* the id is in the name we gave it: NAME-NNNNN.ts */
  const char *dash = strrchr (seg->file, '-');
  seg->id = dash ? (guint) g_ascii_strtoull (dash + 1, NULL, 10) : 0;
  seg->duration = GST_CLOCK_TIME_IS_VALID (r->open_rt) && rt > r->open_rt ? (double) (rt - r->open_rt) / GST_SECOND
                                                                          : h->room->hls_segment_seconds;
  seg->pdt_us = r->open_pdt_us;
  seg->discont = r->open_discont;
  g_queue_push_tail (&r->segments, seg);
  /* a sliding window; files stay two segments longer for players mid-fetch */
  while (g_queue_get_length (&r->segments) > (guint) h->room->hls_window) {
    Segment *old = g_queue_pop_head (&r->segments);
    if (old->discont)
      r->discont_dropped++;
    g_autofree char *path = g_strdup_printf ("%s/%s-%05u.ts", h->dir, r->name, old->id >= 2 ? old->id - 2 : 0);
    if (old->id >= 2)
      g_unlink (path);
    segment_free (old);
  }
  write_playlist (r);
  if (r == h->renditions->pdata[0])
    update_video_info (h);
}

gboolean
dragoman_hls_handle_message (DragomanHls *h, GstMessage *msg)
{
  const GstStructure *st = gst_message_get_structure (msg);
  if (!h || !st || GST_MESSAGE_TYPE (msg) != GST_MESSAGE_ELEMENT)
    return FALSE;
  gboolean opened = gst_structure_has_name (st, "splitmuxsink-fragment-opened");
  if (!opened && !gst_structure_has_name (st, "splitmuxsink-fragment-closed"))
    return FALSE;
  for (guint i = 0; i < h->renditions->len; i++) {
    Rendition *r = h->renditions->pdata[i];
    if (GST_MESSAGE_SRC (msg) == GST_OBJECT (r->sink)) {
      on_fragment (r, st, opened);
      return TRUE;
    }
  }
  return FALSE;
}

/* ---- the split driver (video streaming thread) ---------------------------- */

static GstPadProbeReturn
on_video (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  DragomanHls *h = data;
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);
  if (!buf || !GST_BUFFER_PTS_IS_VALID (buf))
    return GST_PAD_PROBE_OK;
  GstClockTime rt = dragoman_pad_running_time (pad, buf);
  if (!GST_CLOCK_TIME_IS_VALID (rt))
    return GST_PAD_PROBE_DROP;
  gboolean key = !GST_BUFFER_FLAG_IS_SET (buf, GST_BUFFER_FLAG_DELTA_UNIT);

  /* the program's keyframe gate has already made the video step forward only, and
   * start on a keyframe after each switch */
  g_mutex_lock (&h->lock);
  gboolean split = FALSE;
  if (key) {
    /* the first keyframe opens the first fragments by itself (a split there would lie
     * before the audio renditions' first buffers: "Queued GOP time is negative"), nor
     * in the first second while they open */
    gboolean first = !GST_CLOCK_TIME_IS_VALID (h->last_split);
    if (first)
      h->start_rt = rt;
    split = !first && rt >= h->start_rt + GST_SECOND &&
            (h->switched ||
             rt >= h->last_split + (GstClockTime) h->room->hls_segment_seconds * GST_SECOND - 50 * GST_MSECOND);
    if (split && h->switched) {
      h->discont_rt[h->discont_next] = rt;
      h->discont_next = (h->discont_next + 1) % DISCONT_RING;
    }
    if (split || first) {
      h->last_split = rt;
      h->switched = FALSE;
    }
  }
  g_mutex_unlock (&h->lock);
  if (split) {
    GST_LOG ("room %s: split at %" GST_TIME_FORMAT, h->room->id, GST_TIME_ARGS (rt));
    for (guint i = 0; i < h->renditions->len; i++)
      g_signal_emit_by_name (((Rendition *) h->renditions->pdata[i])->sink, "split-at-running-time", rt);
  }
  return GST_PAD_PROBE_OK;
}

/* ---- construction --------------------------------------------------------- */

static GstElement *
add (GstElement *pipeline, const char *factory, const char *name)
{
  GstElement *e = gst_element_factory_make (factory, name);
  if (!e)
    g_error ("missing GStreamer element '%s': run `make deps`", factory);
  gst_bin_add (GST_BIN (pipeline), e);
  return e;
}

static Rendition *
add_rendition (DragomanHls *h, const char *name, const char *lang)
{
  Rendition *r = g_new0 (Rendition, 1);
  r->hls = h;
  r->name = g_strdup (name);
  r->lang = g_strdup (lang);
  r->open_rt = GST_CLOCK_TIME_NONE;
  g_queue_init (&r->segments);
  g_autofree char *ename = g_strdup_printf ("hls-%s", name);
  r->sink = add (h->pipeline, "splitmuxsink", ename);
  GstElement *mux = gst_element_factory_make ("mpegtsmux", NULL);
  GstElement *file = gst_element_factory_make ("filesink", NULL);
  /* a live room must not wait for sinks to preroll, nor sync them to the clock */
  g_object_set (file, "async", FALSE, "sync", FALSE, NULL);
  g_object_set (r->sink, "muxer", mux, "sink", file, "max-size-time", (guint64) 0, "max-size-bytes", (guint64) 0,
                "send-keyframe-requests", FALSE, NULL);
  g_signal_connect (r->sink, "format-location-full", G_CALLBACK (on_format_location), r);
  g_ptr_array_add (h->renditions, r);
  write_playlist (r);
  return r;
}

DragomanHls *
dragoman_hls_new (GstElement *pipeline, DragomanProgram *program, const DragomanConfig *config,
                  const DragomanRoomConfig *room, GError **error)
{
  if (!hls_debug)
    GST_DEBUG_CATEGORY_INIT (hls_debug, "dragoman-hls", 0, "dragoman HLS");
  g_autofree char *dir = g_build_filename (config->hls_dir, room->id, NULL);
  if (g_mkdir_with_parents (dir, 0755) != 0) {
    g_set_error (error, DRAGOMAN_CONFIG_ERROR, 1, "[server] hls-dir: cannot create %s: %s", dir, g_strerror (errno));
    return NULL;
  }
  /* one server per directory: two would delete each other's segments (seen: a
   * playlist's segments 404 0.3 s later). The lock dies with the process. */
  g_autofree char *lock_path = g_build_filename (dir, ".lock", NULL);
  int lock_fd = open (lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0 || flock (lock_fd, LOCK_EX | LOCK_NB) != 0) {
    g_set_error (error, DRAGOMAN_CONFIG_ERROR, 1,
                 "[server] hls-dir: %s is in use by another dragoman (give each server its own hls-dir)", dir);
    if (lock_fd >= 0)
      close (lock_fd);
    return NULL;
  }
  /* segments of an earlier run would be served under new playlists: start clean */
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  for (const char *f; d && (f = g_dir_read_name (d));)
    if (g_str_has_suffix (f, ".ts")) {
      g_autofree char *path = g_build_filename (dir, f, NULL);
      g_unlink (path);
    }

  DragomanHls *h = g_new0 (DragomanHls, 1);
  h->room = room;
  h->program = program;
  h->pipeline = pipeline;
  h->dir = g_steal_pointer (&dir);
  h->lock_fd = lock_fd;
  h->renditions = g_ptr_array_new ();
  h->last_split = GST_CLOCK_TIME_NONE;
  for (guint i = 0; i < DISCONT_RING; i++)
    h->discont_rt[i] = GST_CLOCK_TIME_NONE;
  g_mutex_init (&h->lock);

  GstElement *q = add (pipeline, "queue", NULL);
  /* leaky: a stalled HLS writer drops its own oldest video, never blocks the program */
  g_object_set (q, "max-size-time", (guint64) 2 * GST_SECOND, "max-size-buffers", 0, "max-size-bytes", 0, "leaky",
                2, NULL);
  h->video_pad = gst_element_request_pad_simple (dragoman_program_get_video_tee (program), "src_%u");
  g_autoptr (GstPad) qsink = gst_element_get_static_pad (q, "sink");
  gst_pad_link (h->video_pad, qsink);
  g_autoptr (GstPad) qsrc = gst_element_get_static_pad (q, "src");
  gst_pad_add_probe (qsrc, GST_PAD_PROBE_TYPE_BUFFER, on_video, h, NULL);
  Rendition *v = add_rendition (h, "video", NULL);
  g_autoptr (GstPad) vsink = gst_element_request_pad_simple (v->sink, "video");
  gst_pad_link (qsrc, vsink);
  write_master (h);
  return h;
}

void
dragoman_hls_link_audio (DragomanHls *h, const char *lang)
{
  g_autofree char *name = g_strdup_printf ("audio-%s", lang);
  GstElement *q = add (h->pipeline, "queue", NULL);
  /* leaky: if HLS stalls (a muxer waiting for video splits) it drops its own oldest
   * audio; the program's tee, and every other output, go on */
  g_object_set (q, "max-size-time", (guint64) GST_SECOND, "max-size-buffers", 0, "max-size-bytes", 0, "leaky",
                2 /* downstream: drop the oldest */, NULL);
  g_autoptr (GstPad) tpad = gst_element_request_pad_simple (dragoman_program_get_audio_tee (h->program, lang), "src_%u");
  g_autoptr (GstPad) qsink = gst_element_get_static_pad (q, "sink");
  gst_pad_link (tpad, qsink);
  Rendition *r = add_rendition (h, name, lang);
  g_autoptr (GstPad) asink = gst_element_request_pad_simple (r->sink, "audio_%u");
  g_autoptr (GstPad) qsrc = gst_element_get_static_pad (q, "src");
  gst_pad_link (qsrc, asink);
  write_master (h);
}

void
dragoman_hls_set_stage_live (DragomanHls *h, gboolean live)
{
  if (!h)
    return;
  g_mutex_lock (&h->lock);
  h->switched = TRUE;
  g_mutex_unlock (&h->lock);
  GST_INFO ("room %s: HLS marks a discontinuity (%s)", h->room->id, live ? "the stage" : "the slate");
}

const char *
dragoman_hls_get_playlist (DragomanHls *h, const char *name)
{
  if (g_str_equal (name, "master.m3u8"))
    return h->master;
  for (guint i = 0; i < h->renditions->len; i++) {
    Rendition *r = h->renditions->pdata[i];
    if (g_str_has_prefix (name, r->name) && g_str_equal (name + strlen (r->name), ".m3u8"))
      return r->playlist;
  }
  return NULL;
}

const char *
dragoman_hls_get_dir (DragomanHls *h)
{
  return h->dir;
}

void
dragoman_hls_free (DragomanHls *h)
{
  if (!h)
    return;
  for (guint i = 0; i < h->renditions->len; i++) {
    Rendition *r = h->renditions->pdata[i];
    g_queue_clear_full (&r->segments, segment_free);
    g_free (r->name);
    g_free (r->lang);
    g_free (r->playlist);
    g_free (r);
  }
  g_ptr_array_unref (h->renditions);
  g_clear_object (&h->video_pad);
  g_mutex_clear (&h->lock);
  g_free (h->master);
  g_free (h->video_codecs);
  g_free (h->dir);
  close (h->lock_fd);
  g_free (h);
}
