/* room — the pipeline of one room:
 *
 *   stage bin ─audio─ convert/resample S16 48k mono ─ tee "floor" ─┬─ queue ─ channel orig ─ opus → fanout
 *            └video─ program (H.264 + AAC per channel) → HLS,     ├─ queue ─ channel en ─┐
 *                    recordings, restreams                        │                       │
 *   booth bin en ─ convert/resample ───────────────────────────────┼───────────────────────┘ (voice)
 *   ...                                                            └─ ... one per language
 *
 * Each channel runs behind its own queue, so its mixer and encoder get their own
 * streaming thread: six encoders use both cores, and a slow one delays no other. */
#include "room.h"

#include "booth_video.h"
#include "hls.h"
#include "output.h"
#include "program.h"
#include "source.h"
#include "stage.h"

GST_DEBUG_CATEGORY_STATIC (room_debug);
#define GST_CAT_DEFAULT room_debug

#define PCM_CAPS "audio/x-raw,format=S16LE,rate=48000,channels=1,layout=interleaved"

struct _DragomanRoom {
  const DragomanConfig *server_config;
  const DragomanRoomConfig *config;
  GstElement *pipeline;
  GstElement *floor_tee;
  GPtrArray *channels; /* DragomanChannel* */
  GPtrArray *fanouts;  /* DragomanFanout*, same order */
  GPtrArray *booths;   /* DragomanBooth* */
  guint bus_watch;
  gboolean playing;
  GHashTable *levels; /* "floor", "channel:hy", "booth:hy" → DragomanLevel; main thread */
  DragomanStage *stage;
  DragomanProgram *program;        /* NULL: no output needs video or AAC */
  DragomanHls *hls;                /* NULL: HLS off */
  DragomanBoothVideo *booth_video; /* NULL: no browser booth, no stage video, or off */
  GPtrArray *outputs;              /* DragomanOutput*: the recording (if any) first, then restreams */
  DragomanRoomStageFunc stage_func;
  gpointer stage_data;
  GHashTable *voice_select; /* lang → input-selector (rooms with retour) */
  GHashTable *voice_owner;  /* lang → the DragomanBooth whose voice the channel carries */
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

/* audio pad → S16LE 48 kHz mono; returns the element whose src pad carries it */
static GstElement *
normalise (GstElement *pipeline, GstPad *src, const char *prefix)
{
  g_autofree char *n1 = g_strdup_printf ("%s-convert", prefix);
  g_autofree char *n2 = g_strdup_printf ("%s-resample", prefix);
  g_autofree char *n3 = g_strdup_printf ("%s-caps", prefix);
  GstElement *conv = add (pipeline, "audioconvert", n1);
  GstElement *res = add (pipeline, "audioresample", n2);
  GstElement *caps = add (pipeline, "capsfilter", n3);
  g_autoptr (GstCaps) c = gst_caps_from_string (PCM_CAPS);
  g_object_set (caps, "caps", c, NULL);
  g_autoptr (GstPad) sink = gst_element_get_static_pad (conv, "sink");
  gst_pad_link (src, sink);
  gst_element_link_many (conv, res, caps, NULL);
  return caps;
}

/* a level meter after `el`; returns the element to link on from */
static GstElement *
add_level (DragomanRoom *room, GstElement *el, const char *name)
{
  GstElement *level = add (room->pipeline, "level", name);
  g_object_set (level, "interval", (guint64) DRAGOMAN_LEVEL_INTERVAL_MS * GST_MSECOND, "post-messages", TRUE, NULL);
  gst_element_link (el, level);
  return level;
}

static GHashTable *
vars_for (const DragomanConfig *config, const DragomanRoomConfig *rc, GHashTable *group, const char *lang)
{
  GHashTable *vars = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  GHashTableIter it;
  gpointer k, v;
  g_hash_table_iter_init (&it, group);
  while (g_hash_table_iter_next (&it, &k, &v))
    g_hash_table_insert (vars, g_strdup (k), g_strdup (v));
  g_hash_table_insert (vars, g_strdup ("media"), g_strdup (config->media_dir));
  g_hash_table_insert (vars, g_strdup ("room"), g_strdup (rc->id));
  if (lang)
    g_hash_table_insert (vars, g_strdup ("lang"), g_strdup (lang));
  const char *pass = g_hash_table_lookup (group, "passphrase");
  if (pass && *pass) {
    /* srt://...&passphrase=..: escaped, and kept out of the logs by source.c */
    g_autofree char *esc = g_uri_escape_string (pass, NULL, FALSE);
    g_hash_table_insert (vars, g_strdup ("passphrase-param"), g_strdup_printf ("&passphrase=%s", esc));
  }
  return vars;
}

static void
link_floor (DragomanRoom *room, GstElement *channel_bin, const char *lang)
{
  g_autofree char *qname = g_strdup_printf ("floor-queue-%s", lang);
  GstElement *q = add (room->pipeline, "queue", qname);
  /* bounded: 200 ms of floor; it fills only if this channel stalls, and then drops
   * (leaky) rather than block the floor's tee: one stuck channel must not starve
   * every other channel of its floor */
  g_object_set (q, "max-size-buffers", 0, "max-size-bytes", 0, "max-size-time", (guint64) 200 * GST_MSECOND, "leaky",
                2, NULL);
  gst_element_link (room->floor_tee, q);
  gst_element_link_pads (q, "src", channel_bin, "floor");
}

/* level messages: keep the newest [peak, rms] per meter, in dBFS */
static void
on_level (DragomanRoom *room, GstMessage *msg)
{
  const GstStructure *st = gst_message_get_structure (msg);
  if (!st || !gst_structure_has_name (st, "level") || !g_str_has_prefix (GST_OBJECT_NAME (msg->src), "level:"))
    return;
  const GValue *peak = gst_structure_get_value (st, "peak"), *rms = gst_structure_get_value (st, "rms");
  if (!peak || !rms)
    return;
  G_GNUC_BEGIN_IGNORE_DEPRECATIONS /* level's fields are GValueArrays */
  GValueArray *pa = g_value_get_boxed (peak), *ra = g_value_get_boxed (rms);
  if (!pa || !ra || pa->n_values == 0 || ra->n_values == 0)
    return;
  DragomanLevel l = { g_value_get_double (g_value_array_get_nth (pa, 0)),
                      g_value_get_double (g_value_array_get_nth (ra, 0)), g_get_monotonic_time () };
  G_GNUC_END_IGNORE_DEPRECATIONS
  /* -inf for digital silence: clamp so JSON stays numbers */
  l.peak_db = MAX (l.peak_db, -100.0);
  l.rms_db = MAX (l.rms_db, -100.0);
  DragomanLevel *slot = g_hash_table_lookup (room->levels, GST_OBJECT_NAME (msg->src) + 6);
  if (!slot) {
    slot = g_new (DragomanLevel, 1);
    g_hash_table_insert (room->levels, g_strdup (GST_OBJECT_NAME (msg->src) + 6), slot);
  }
  *slot = l;
}

static void
on_stage_change (gpointer data, gboolean live)
{
  DragomanRoom *room = data;
  dragoman_program_set_stage_live (room->program, live);
  dragoman_hls_set_stage_live (room->hls, live);
  dragoman_booth_video_set_stage_live (room->booth_video, live);
  for (guint i = 0; i < room->booths->len; i++)
    dragoman_booth_stage_changed (room->booths->pdata[i]);
  if (room->stage_func)
    room->stage_func (room, live, room->stage_data);
}

void
dragoman_room_set_stage_func (DragomanRoom *room, DragomanRoomStageFunc func, gpointer data)
{
  room->stage_func = func;
  room->stage_data = data;
}

/* Booth voices to channels. A room with a browser booth and another booth can
 * route any booth to any booth's channel (retour: the hy booth interprets an
 * Armenian speaker into English, on the en channel): each booth's voice goes to a
 * tee, each channel takes its voice from an input-selector with a pad per booth,
 * its own booth's active until a retour. Elsewhere each booth is linked straight
 * to its channel, as before (nothing between an RTP console and its mixer). */
static gboolean
room_has_retour (DragomanRoom *room)
{
  gboolean browser = FALSE;
  for (guint i = 0; i < room->config->booths->len; i++)
    browser |= g_str_equal (((DragomanBoothConfig *) room->config->booths->pdata[i])->source, "browser");
  return browser && room->config->booths->len >= 2;
}

static void
link_voices (DragomanRoom *room, GHashTable *voices)
{
  room->voice_select = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  room->voice_owner = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  gboolean retour = room_has_retour (room);
  GHashTable *tees = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  for (guint b = 0; b < room->booths->len; b++) {
    const char *lang = dragoman_booth_get_lang (room->booths->pdata[b]);
    GstElement *voice = g_hash_table_lookup (voices, lang);
    g_hash_table_insert (room->voice_owner, g_strdup (lang), room->booths->pdata[b]);
    if (!retour) {
      gst_element_link_pads (voice, "src", dragoman_channel_get_bin (dragoman_room_find_channel (room, lang)),
                             "voice");
      continue;
    }
    g_autofree char *tname = g_strdup_printf ("booth-out-%s", lang);
    GstElement *tee = add (room->pipeline, "tee", tname);
    g_object_set (tee, "allow-not-linked", TRUE, NULL);
    gst_element_link (voice, tee);
    g_hash_table_insert (tees, g_strdup (lang), tee);
  }
  for (guint c = 0; retour && c < room->booths->len; c++) {
    const char *lang = dragoman_booth_get_lang (room->booths->pdata[c]);
    g_autofree char *sname = g_strdup_printf ("voice-select-%s", lang);
    GstElement *sel = add (room->pipeline, "input-selector", sname);
    g_object_set (sel, "sync-streams", FALSE, NULL);
    for (guint b = 0; b < room->booths->len; b++) {
      const char *from = dragoman_booth_get_lang (room->booths->pdata[b]);
      g_autofree char *pname = g_strdup_printf ("from-%s", from);
      GstPad *sink = gst_element_request_pad_simple (sel, "sink_%u");
      g_object_set_data_full (G_OBJECT (sel), pname, sink, gst_object_unref);
      g_autoptr (GstPad) tsrc = gst_element_request_pad_simple (g_hash_table_lookup (tees, from), "src_%u");
      gst_pad_link (tsrc, sink);
      if (g_str_equal (from, lang))
        g_object_set (sel, "active-pad", sink, NULL);
    }
    gst_element_link_pads (sel, "src", dragoman_channel_get_bin (dragoman_room_find_channel (room, lang)), "voice");
    g_hash_table_insert (room->voice_select, g_strdup (lang), sel);
  }
  g_hash_table_unref (tees);
}

gboolean
dragoman_room_can_route (DragomanRoom *room, const char *lang)
{
  return room->voice_select && g_hash_table_contains (room->voice_select, lang);
}

DragomanBooth *
dragoman_room_get_voice_owner (DragomanRoom *room, const char *lang)
{
  return room->voice_owner ? g_hash_table_lookup (room->voice_owner, lang) : NULL;
}

void
dragoman_room_set_voice_owner (DragomanRoom *room, const char *lang, DragomanBooth *booth)
{
  if (room->voice_owner)
    g_hash_table_insert (room->voice_owner, g_strdup (lang), booth);
}

void
dragoman_room_route_voice (DragomanRoom *room, const char *lang, DragomanBooth *booth)
{
  GstElement *sel = room->voice_select ? g_hash_table_lookup (room->voice_select, lang) : NULL;
  if (!sel)
    return;
  g_autofree char *pname = g_strdup_printf ("from-%s", dragoman_booth_get_lang (booth));
  GstPad *pad = g_object_get_data (G_OBJECT (sel), pname);
  g_object_set (sel, "active-pad", pad, NULL);
  g_hash_table_insert (room->voice_owner, g_strdup (lang), booth);
  GST_INFO ("room %s: channel %s takes booth %s's voice", room->config->id, lang, dragoman_booth_get_lang (booth));
}

static void
on_program_message (GstMessage *msg, gpointer data)
{
  DragomanRoom *room = data;
  dragoman_hls_handle_message (room->hls, msg);
}

static gboolean
on_bus (GstBus *bus, GstMessage *msg, gpointer data)
{
  DragomanRoom *room = data;
  g_autoptr (GError) err = NULL;
  g_autofree char *dbg = NULL;
  switch (GST_MESSAGE_TYPE (msg)) {
  case GST_MESSAGE_ERROR:
    gst_message_parse_error (msg, &err, &dbg);
    GST_ERROR ("room %s: %s: %s (%s)", room->config->id, GST_OBJECT_NAME (msg->src), err->message, dbg);
    g_printerr ("room %s: error from %s: %s\n", room->config->id, GST_OBJECT_NAME (msg->src), err->message);
    room->playing = FALSE;
    break;
  case GST_MESSAGE_WARNING:
    gst_message_parse_warning (msg, &err, &dbg);
    GST_WARNING ("room %s: %s: %s (%s)", room->config->id, GST_OBJECT_NAME (msg->src), err->message, dbg);
    break;
  case GST_MESSAGE_STATE_CHANGED:
    if (msg->src == GST_OBJECT (room->pipeline)) {
      GstState old, state;
      gst_message_parse_state_changed (msg, &old, &state, NULL);
      room->playing = state == GST_STATE_PLAYING;
      GST_INFO ("room %s: %s", room->config->id, gst_element_state_get_name (state));
    }
    break;
  case GST_MESSAGE_LATENCY:
    gst_bin_recalculate_latency (GST_BIN (room->pipeline));
    break;
  case GST_MESSAGE_ELEMENT:
    on_level (room, msg);
    break;
  default:
    break;
  }
  return G_SOURCE_CONTINUE;
}

DragomanRoom *
dragoman_room_new (const DragomanConfig *config, const DragomanRoomConfig *rc, guint headroom, GError **error)
{
  if (!room_debug)
    GST_DEBUG_CATEGORY_INIT (room_debug, "dragoman-room", 0, "dragoman rooms");

  DragomanRoom *room = g_new0 (DragomanRoom, 1);
  room->config = rc;
  room->server_config = config;
  room->levels = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  room->channels = g_ptr_array_new_with_free_func ((GDestroyNotify) dragoman_channel_free);
  room->fanouts = g_ptr_array_new_with_free_func ((GDestroyNotify) dragoman_fanout_free);
  room->booths = g_ptr_array_new_with_free_func ((GDestroyNotify) dragoman_booth_free);
  room->outputs = g_ptr_array_new_with_free_func ((GDestroyNotify) dragoman_output_free);
  g_autofree char *pname = g_strdup_printf ("room-%s", rc->id);
  room->pipeline = gst_object_ref_sink (gst_pipeline_new (pname));

  /* stage: its floor never stops (silence when the feed is lost) */
  g_autoptr (GHashTable) svars = vars_for (config, rc, rc->stage_vars, NULL);
  room->stage = dragoman_stage_new (room->pipeline, config, rc, svars, error);
  if (!room->stage) {
    dragoman_room_free (room);
    return NULL;
  }
  dragoman_stage_set_change_func (room->stage, on_stage_change, room);
  GstElement *floor = add_level (room, dragoman_stage_get_floor (room->stage), "level:floor");
  room->floor_tee = add (room->pipeline, "tee", "floor");
  g_object_set (room->floor_tee, "allow-not-linked", TRUE, NULL);
  gst_element_link (floor, room->floor_tee);
  GstPad *stage_video = dragoman_stage_get_video (room->stage);
  gboolean restreamed = FALSE;
  for (guint i = 0; i < config->restreams->len; i++)
    restreamed |= g_str_equal (((DragomanRestreamConfig *) config->restreams->pdata[i])->room_id, rc->id);
  gboolean browser_booth = FALSE;
  for (guint i = 0; i < rc->booths->len; i++)
    browser_booth |= g_str_equal (((DragomanBoothConfig *) rc->booths->pdata[i])->source, "browser");
  GstPad *program_video = stage_video; /* or the tee's pad for it */
  g_autoptr (GstPad) tprogram = NULL;
  if (stage_video && browser_booth && rc->booth_video_width > 0) {
    /* the stage's H.264 to the program and to the booths' own small encode; each
     * branch starts with a leaky queue, so neither can hold the other up */
    GstElement *vtee = add (room->pipeline, "tee", "stage-video");
    g_object_set (vtee, "allow-not-linked", TRUE, NULL);
    g_autoptr (GstPad) tsink = gst_element_get_static_pad (vtee, "sink");
    gst_pad_link (stage_video, tsink);
    g_autoptr (GstPad) tbooths = gst_element_request_pad_simple (vtee, "src_%u");
    room->booth_video = dragoman_booth_video_new (room->pipeline, rc, tbooths);
    program_video = tprogram = gst_element_request_pad_simple (vtee, "src_%u");
  }
  if (rc->hls || rc->record || restreamed) {
    room->program = dragoman_program_new (room->pipeline, rc);
    dragoman_program_link_video (room->program, program_video);
  } else if (program_video) {
    GstElement *vsink = add (room->pipeline, "fakesink", "video-sink");
    g_object_set (vsink, "sync", FALSE, "async", FALSE, NULL);
    g_autoptr (GstPad) vpad = gst_element_get_static_pad (vsink, "sink");
    gst_pad_link (program_video, vpad);
  }

  /* channels: orig, then one per language with its booth */
  g_autoptr (GHashTable) voices = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  for (int i = -1; i < (int) g_strv_length (rc->langs); i++) {
    const char *lang = i < 0 ? "orig" : rc->langs[i];
    const DragomanBoothConfig *bc = NULL;
    for (guint j = 0; i >= 0 && j < rc->booths->len; j++)
      if (g_str_equal (((DragomanBoothConfig *) rc->booths->pdata[j])->lang, lang))
        bc = rc->booths->pdata[j];
    g_autofree char *fname = g_strdup_printf ("%s/%s", rc->id, lang);
    DragomanFanout *fanout = dragoman_fanout_new (fname, rc->opus_frame_ms, headroom, config->listen_burst_ms,
                                                  config->listen_soft_limit_ms, config->listen_hard_limit_ms);
    g_ptr_array_add (room->fanouts, fanout);
    DragomanChannel *ch =
        dragoman_channel_new (rc->id, lang, bc != NULL, rc->opus_frame_ms, rc->opus_bitrate, rc->duck_db, fanout);
    g_ptr_array_add (room->channels, ch);
    GstElement *cbin = dragoman_channel_get_bin (ch);
    gst_bin_add (GST_BIN (room->pipeline), cbin);
    link_floor (room, cbin, lang);
    if (room->program) {
      g_autoptr (GstPad) pcm = dragoman_channel_get_pcm_pad (ch);
      dragoman_program_link_audio (room->program, lang, pcm);
    }
    if (!bc)
      continue;

    g_autofree char *booth_pipeline = g_strdup_printf ("booth-%s", bc->source);
    g_autofree char *booth_name = g_strdup_printf ("booth-%s", lang);
    g_autoptr (GHashTable) bvars = vars_for (config, rc, bc->vars, lang);
    GstElement *bbin = dragoman_source_new (config->pipeline_dir, booth_pipeline, booth_name, bvars, error);
    if (!bbin) {
      dragoman_room_free (room);
      return NULL;
    }
    gst_bin_add (GST_BIN (room->pipeline), bbin);
    g_autoptr (GstPad) baudio = gst_element_get_static_pad (bbin, "audio");
    g_autofree char *level_name = g_strdup_printf ("level:booth:%s", lang);
    GstElement *voice = add_level (room, normalise (room->pipeline, baudio, booth_name), level_name);
    g_hash_table_insert (voices, g_strdup (lang), voice);
    DragomanBooth *booth = dragoman_booth_new (bc, ch, room);
    dragoman_booth_set_source (booth, bbin);
    g_ptr_array_add (room->booths, booth);
  }

  link_voices (room, voices);

  GstElement *program_pipeline = room->program ? dragoman_program_get_pipeline (room->program) : NULL;
  if (rc->record)
    g_ptr_array_add (room->outputs, dragoman_output_new_recording (program_pipeline, room->program, rc));
  for (guint i = 0; i < config->restreams->len; i++) {
    const DragomanRestreamConfig *rs = config->restreams->pdata[i];
    if (g_str_equal (rs->room_id, rc->id))
      g_ptr_array_add (room->outputs, dragoman_output_new_restream (program_pipeline, room->program, rc, rs));
  }
  if (rc->hls) {
    room->hls = dragoman_hls_new (program_pipeline, room->program, config, rc, error);
    if (!room->hls) {
      dragoman_room_free (room);
      return NULL;
    }
    for (guint i = 0; i < room->channels->len; i++)
      dragoman_hls_link_audio (room->hls, dragoman_channel_get_lang (room->channels->pdata[i]));
    dragoman_program_set_message_func (room->program, on_program_message, room);
  }

  g_autoptr (GstBus) bus = gst_pipeline_get_bus (GST_PIPELINE (room->pipeline));
  room->bus_watch = gst_bus_add_watch (bus, on_bus, room);
  return room;
}

gboolean
dragoman_room_start (DragomanRoom *room, GError **error)
{
  if (gst_element_set_state (room->pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_STATE_CHANGE, "room %s: the pipeline failed to start",
                 room->config->id);
    return FALSE;
  }
  if (room->program && !dragoman_program_start (room->program))
    g_printerr ("room %s: the program (HLS, recordings, restreams) did not start; listeners and booths go on\n",
                room->config->id);
  for (guint i = 0; i < room->booths->len; i++)
    dragoman_booth_start (room->booths->pdata[i]);
  for (guint i = 0; i < room->outputs->len; i++) {
    DragomanOutput *o = room->outputs->pdata[i];
    g_autoptr (GError) err = NULL;
    if (dragoman_output_get_autostart (o) && !dragoman_output_start (o, &err))
      g_printerr ("room %s: %s %s did not start: %s\n", room->config->id, dragoman_output_get_kind (o),
                  dragoman_output_get_name (o), err->message);
  }
  return TRUE;
}

void
dragoman_room_free (DragomanRoom *room)
{
  if (!room)
    return;
  if (room->bus_watch)
    g_source_remove (room->bus_watch);
  /* outputs finish their files while the room still plays; they are freed after
   * it stopped, since their bridges run on its streaming threads */
  for (guint i = 0; i < room->outputs->len; i++)
    dragoman_output_finish (room->outputs->pdata[i]);
  dragoman_program_stop (room->program);
  gst_element_set_state (room->pipeline, GST_STATE_NULL);
  g_ptr_array_unref (room->outputs);
  g_ptr_array_unref (room->booths); /* before the booth video: their peers leave it */
  dragoman_booth_video_free (room->booth_video);
  dragoman_stage_free (room->stage);
  dragoman_hls_free (room->hls);
  dragoman_program_free (room->program);
  gst_object_unref (room->pipeline);
  g_ptr_array_unref (room->channels);
  g_ptr_array_unref (room->fanouts);
  g_hash_table_unref (room->levels);
  g_clear_pointer (&room->voice_select, g_hash_table_unref);
  g_clear_pointer (&room->voice_owner, g_hash_table_unref);
  g_free (room);
}

const DragomanRoomConfig *
dragoman_room_get_config (DragomanRoom *room)
{
  return room->config;
}

gboolean
dragoman_room_is_playing (DragomanRoom *room)
{
  return room->playing;
}

guint
dragoman_room_n_channels (DragomanRoom *room)
{
  return room->channels->len;
}

DragomanChannel *
dragoman_room_get_channel (DragomanRoom *room, guint index)
{
  return index < room->channels->len ? room->channels->pdata[index] : NULL;
}

DragomanChannel *
dragoman_room_find_channel (DragomanRoom *room, const char *lang)
{
  for (guint i = 0; i < room->channels->len; i++)
    if (g_strcmp0 (dragoman_channel_get_lang (room->channels->pdata[i]), lang) == 0)
      return room->channels->pdata[i];
  return NULL;
}

DragomanBooth *
dragoman_room_find_booth (DragomanRoom *room, const char *lang)
{
  for (guint i = 0; i < room->booths->len; i++)
    if (g_strcmp0 (dragoman_booth_get_lang (room->booths->pdata[i]), lang) == 0)
      return room->booths->pdata[i];
  return NULL;
}

GstElement *
dragoman_room_get_pipeline (DragomanRoom *room)
{
  return room->pipeline;
}

const DragomanConfig *
dragoman_room_get_server_config (DragomanRoom *room)
{
  return room->server_config;
}

const DragomanLevel *
dragoman_room_get_level (DragomanRoom *room, const char *meter)
{
  return g_hash_table_lookup (room->levels, meter);
}

DragomanStage *
dragoman_room_get_stage (DragomanRoom *room)
{
  return room->stage;
}

GPtrArray *
dragoman_room_get_outputs (DragomanRoom *room)
{
  return room->outputs;
}

DragomanOutput *
dragoman_room_find_output (DragomanRoom *room, const char *name)
{
  for (guint i = 0; i < room->outputs->len; i++)
    if (g_str_equal (dragoman_output_get_name (room->outputs->pdata[i]), name))
      return room->outputs->pdata[i];
  return NULL;
}

DragomanBoothVideo *
dragoman_room_get_booth_video (DragomanRoom *room)
{
  return room->booth_video;
}

DragomanHls *
dragoman_room_get_hls (DragomanRoom *room)
{
  return room->hls;
}
