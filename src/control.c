#include "control.h"
#include "publisher.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

GST_DEBUG_CATEGORY_STATIC (control_debug);
#define GST_CAT_DEFAULT control_debug

#define METER_BACKLOG 8
#define SILENT_DB -50.0     /* below this RMS a booth on air is "silent" */
#define SILENT_SECONDS 10   /* ...for this long before the crew is alerted */
#define CLIP_DB -0.5        /* a peak at or above this is clipping */
#define CLIP_HOLD_S 2
#define DROPS_HOLD_S 10
#define LEFT_HOLD_S 60
#define SLOW_DOWN_HOLD_S 30
#define RESTREAM_GRACE_S 10 /* an RTMP handshake takes < 1 s; 10 s of "connecting" is down */
#define PUBLISH_GRACE_S 2  /* an Nchan link connects in ms; a reload costs ~0.1 s */

typedef struct {
  char *id, *kind, *room, *lang, *message;
  JsonNode *params;  /* the message's names and numbers (alert_params) */
  gint64 since;      /* wall seconds */
  gint64 expires_us; /* monotonic; 0: until cleared */
} Alert;

struct _DragomanControl {
  DragomanServer *server;
  GPtrArray *members; /* DragomanCrewMember*, signed in */
  GPtrArray *alerts;  /* Alert* */
  GHashTable *silent_since; /* "room/lang" → gint64* monotonic µs */
  GHashTable *drops_seen;   /* "room/lang" → guint64* resyncs + disconnects */
  guint meter_timer, state_timer;
  guint64 cpu_ticks;
  gint64 cpu_at_us;
  double cpu_pct;
};

static void
alert_free (gpointer data)
{
  Alert *a = data;
  g_free (a->id);
  g_free (a->kind);
  g_free (a->room);
  g_free (a->lang);
  g_free (a->message);
  json_node_unref (a->params);
  g_free (a);
}

static void
broadcast (DragomanControl *c, JsonBuilder *j)
{
  g_autoptr (JsonNode) root = json_builder_get_root (j);
  g_autofree char *json = json_to_string (root, FALSE);
  for (guint i = 0; i < c->members->len; i++)
    dragoman_outbox_push (&((DragomanCrewMember *) c->members->pdata[i])->out, json);
}

static void
add_str (JsonBuilder *j, const char *key, const char *value)
{
  json_builder_set_member_name (j, key);
  if (value)
    json_builder_add_string_value (j, value);
  else
    json_builder_add_null_value (j);
}

static void
add_int (JsonBuilder *j, const char *key, gint64 value)
{
  json_builder_set_member_name (j, key);
  json_builder_add_int_value (j, value);
}

static void
describe_alert (JsonBuilder *j, Alert *a)
{
  json_builder_begin_object (j);
  add_str (j, "id", a->id);
  add_str (j, "kind", a->kind);
  add_str (j, "room", a->room);
  add_str (j, "lang", a->lang);
  add_str (j, "message", a->message);
  json_builder_set_member_name (j, "params");
  json_builder_add_value (j, json_node_copy (a->params));
  add_int (j, "since", a->since);
  json_builder_end_object (j);
}

static Alert *
find_alert (DragomanControl *c, const char *id)
{
  for (guint i = 0; i < c->alerts->len; i++)
    if (g_str_equal (((Alert *) c->alerts->pdata[i])->id, id))
      return c->alerts->pdata[i];
  return NULL;
}

/* The names and numbers in an alert's message, so that the control page says it
 * in the crew's language (web/i18n: control.alertMsg.KIND with {name} slots) while
 * `message` stays the English text for the log, older pages and unknown kinds.
 * Triples ended by NULL: name, type ('s' string or NULL, 'i' gint64, 'd' double), value. */
static JsonNode *
alert_params (const char *name, ...)
{
  g_autoptr (JsonBuilder) j = json_builder_new ();
  va_list ap;
  va_start (ap, name);
  json_builder_begin_object (j);
  for (; name; name = va_arg (ap, const char *)) {
    int type = va_arg (ap, int);
    if (type == 'i') {
      add_int (j, name, va_arg (ap, gint64));
    } else if (type == 'd') {
      json_builder_set_member_name (j, name);
      json_builder_add_double_value (j, va_arg (ap, double));
    } else {
      add_str (j, name, va_arg (ap, const char *));
    }
  }
  va_end (ap);
  json_builder_end_object (j);
  return json_builder_get_root (j);
}

/* raise (or refresh) an alert; hold_s > 0: it clears itself that long after the last
 * raise. Takes `params` (alert_params). */
static void raise_alert (DragomanControl *c, const char *kind, const char *room, const char *lang, int hold_s,
                         JsonNode *params, const char *fmt, ...) G_GNUC_PRINTF (7, 8);

static void
raise_alert (DragomanControl *c, const char *kind, const char *room, const char *lang, int hold_s, JsonNode *params,
             const char *fmt, ...)
{
  g_autofree char *id = g_strdup_printf ("%s:%s/%s", kind, room, lang ? lang : "");
  Alert *a = find_alert (c, id);
  gint64 expires = hold_s > 0 ? g_get_monotonic_time () + hold_s * G_USEC_PER_SEC : 0;
  if (a) {
    a->expires_us = expires;
    json_node_unref (params);
    return;
  }
  va_list ap;
  va_start (ap, fmt);
  a = g_new0 (Alert, 1);
  a->message = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  a->params = params;
  a->id = g_steal_pointer (&id);
  a->kind = g_strdup (kind);
  a->room = g_strdup (room);
  a->lang = g_strdup (lang);
  a->since = g_get_real_time () / G_USEC_PER_SEC;
  a->expires_us = expires;
  g_ptr_array_add (c->alerts, a);
  /* on stderr too, once per alert (a raised one is only extended above): the
   * operator's terminal and journal get the reason, not just the control page */
  g_printerr ("alert %s: %s\n", a->id, a->message);
  g_autoptr (JsonBuilder) j = json_builder_new ();
  json_builder_begin_object (j);
  add_str (j, "type", "alert");
  json_builder_set_member_name (j, "alert");
  describe_alert (j, a);
  json_builder_end_object (j);
  broadcast (c, j);
}

static void
clear_alert (DragomanControl *c, const char *kind, const char *room, const char *lang)
{
  g_autofree char *id = g_strdup_printf ("%s:%s/%s", kind, room, lang ? lang : "");
  Alert *a = find_alert (c, id);
  if (a)
    g_ptr_array_remove (c->alerts, a);
}

/* ---- booth events ----------------------------------------------------------- */

static void
on_booth_event (DragomanBooth *booth, const char *kind, const char *who, const char *text, gpointer data)
{
  DragomanControl *c = data;
  const DragomanBoothConfig *bc = dragoman_booth_get_config (booth);
  if (g_str_equal (kind, "interpreter-left") && text)
    raise_alert (c, "interpreter-disconnected", bc->room_id, bc->lang, LEFT_HOLD_S,
                 alert_params ("who", 's', who, NULL), "%s disconnected while on air: the channel is back on the floor",
                 who);
  else if (g_str_equal (kind, "slow-down"))
    raise_alert (c, "slow-down", bc->room_id, bc->lang, SLOW_DOWN_HOLD_S, alert_params ("who", 's', who, NULL),
                 "%s asks the speaker to slow down", who);
  if (g_str_equal (kind, "chat") || g_str_equal (kind, "slow-down")) {
    g_autoptr (JsonBuilder) j = json_builder_new ();
    json_builder_begin_object (j);
    add_str (j, "type", "chat");
    add_str (j, "kind", kind);
    add_str (j, "room", bc->room_id);
    add_str (j, "booth", bc->lang);
    add_str (j, "from", who);
    add_str (j, "text", text ? text : "(asks the speaker to slow down)");
    add_int (j, "at", g_get_real_time () / 1000);
    json_builder_end_object (j);
    broadcast (c, j);
  }
}

/* ---- meters (12.5 Hz) ----------------------------------------------------- */

/* Meters are written by hand: json-glib prints doubles with 17 digits, which made
 * each meters message 793 bytes instead of 449 (x 12.5 a second, per crew member). */
static void
add_level (GString *o, const char *member, const DragomanLevel *l)
{
  /* a meter not heard from for 0.5 s shows silence */
  gboolean fresh = l && g_get_monotonic_time () - l->at_us < 500000;
  g_string_append_printf (o, "\"%s\":[%.1f,%.1f]", member, fresh ? l->peak_db : -100.0, fresh ? l->rms_db : -100.0);
}

static gboolean
on_meter_timer (gpointer data)
{
  DragomanControl *c = data;
  if (c->members->len == 0)
    return G_SOURCE_CONTINUE;
  GString *o = g_string_sized_new (512);
  g_string_append_printf (o, "{\"type\":\"meters\",\"t\":%" G_GINT64_FORMAT ",\"rooms\":{", g_get_real_time () / 1000);
  for (guint r = 0; r < c->server->rooms->len; r++) {
    DragomanRoom *room = c->server->rooms->pdata[r];
    const DragomanRoomConfig *rc = dragoman_room_get_config (room);
    /* room ids and language codes are [A-Za-z0-9_-]: nothing to escape */
    g_string_append_printf (o, "%s\"%s\":{", r ? "," : "", rc->id);
    add_level (o, "floor", dragoman_room_get_level (room, "floor"));
    g_string_append (o, ",\"channels\":{");
    for (guint k = 0; k < dragoman_room_n_channels (room); k++) {
      const char *lang = dragoman_channel_get_lang (dragoman_room_get_channel (room, k));
      g_autofree char *m = g_strdup_printf ("channel:%s", lang);
      if (k)
        g_string_append_c (o, ',');
      add_level (o, lang, dragoman_room_get_level (room, m));
    }
    g_string_append (o, "},\"booths\":{");
    gboolean first = TRUE;
    for (guint k = 0; rc->langs[k]; k++) {
      if (!dragoman_room_find_booth (room, rc->langs[k]))
        continue;
      g_autofree char *m = g_strdup_printf ("booth:%s", rc->langs[k]);
      if (!first)
        g_string_append_c (o, ',');
      first = FALSE;
      add_level (o, rc->langs[k], dragoman_room_get_level (room, m));
    }
    g_string_append (o, "}}");
  }
  g_string_append (o, "}}");
  for (guint i = 0; i < c->members->len; i++) {
    DragomanCrewMember *m = c->members->pdata[i];
    if (dragoman_outbox_length (&m->out) < METER_BACKLOG)
      dragoman_outbox_push (&m->out, o->str);
  }
  g_string_free (o, TRUE);
  return G_SOURCE_CONTINUE;
}

/* ---- state (1 Hz) and the alert rules ------------------------------------ */

static void
sample_process (DragomanControl *c, guint64 *rss_kib)
{
  /* utime + stime from /proc/self/stat (fields 14 and 15) */
  guint64 ticks = 0;
  g_autofree char *stat = NULL;
  if (g_file_get_contents ("/proc/self/stat", &stat, NULL, NULL)) {
    const char *p = strrchr (stat, ')');
    unsigned long ut = 0, st = 0;
    if (p && sscanf (p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
      ticks = ut + st;
  }
  gint64 now = g_get_monotonic_time ();
  if (c->cpu_at_us && now > c->cpu_at_us)
    c->cpu_pct = 100.0 * (ticks - c->cpu_ticks) / sysconf (_SC_CLK_TCK) / ((now - c->cpu_at_us) / 1e6);
  c->cpu_ticks = ticks;
  c->cpu_at_us = now;
  *rss_kib = dragoman_process_rss_bytes () / 1024;
}

/* The stage's reason as a word for the pages (web/i18n control.stageReason.*):
 * stage.c has three reasons, told apart by its state and loss count. */
static const char *
stage_reason_code (DragomanStage *stage)
{
  if (dragoman_stage_is_live (stage))
    return "receiving";
  return dragoman_stage_get_losses (stage) ? "no-data" : "waiting";
}

static void
evaluate_alerts (DragomanControl *c)
{
  gint64 now = g_get_monotonic_time ();
  for (guint i = c->alerts->len; i-- > 0;) {
    Alert *a = c->alerts->pdata[i];
    if (a->expires_us && a->expires_us < now)
      g_ptr_array_remove_index (c->alerts, i);
  }
  /* the Nchan edge: a link connects in milliseconds, so 2 s down is an outage
   * (an nginx reload costs ~0.1 s) */
  for (guint i = 0; i < dragoman_publisher_n_links (c->server->publisher); i++) {
    DragomanPublishLinkStats ps;
    dragoman_publisher_get_link_stats (c->server->publisher, i, &ps);
    if (!ps.connected && now - ps.down_since_us > PUBLISH_GRACE_S * G_USEC_PER_SEC)
      raise_alert (c, "publish-down", ps.room, ps.lang, 0,
                   alert_params ("room", 's', ps.room, "lang", 's', ps.lang, "error", 's', ps.error, NULL),
                   "edge publishing of %s/%s is down: %s", ps.room, ps.lang, ps.error ? ps.error : "?");
    else
      clear_alert (c, "publish-down", ps.room, ps.lang);
  }
  for (guint r = 0; r < c->server->rooms->len; r++) {
    DragomanRoom *room = c->server->rooms->pdata[r];
    const DragomanRoomConfig *rc = dragoman_room_get_config (room);
    if (!dragoman_room_is_playing (room))
      raise_alert (c, "room-down", rc->id, NULL, 3, alert_params ("room", 's', rc->id, NULL), "room %s is not playing",
                   rc->id);
    DragomanStage *stage = dragoman_room_get_stage (room);
    if (!dragoman_stage_is_live (stage))
      raise_alert (c, "stage-lost", rc->id, NULL, 0, alert_params ("reason", 's', stage_reason_code (stage), NULL),
                   "stage lost: %s", dragoman_stage_get_reason (stage));
    else
      clear_alert (c, "stage-lost", rc->id, NULL);
    GPtrArray *outputs = dragoman_room_get_outputs (room);
    for (guint k = 0; k < outputs->len; k++) {
      DragomanOutput *o = outputs->pdata[k];
      DragomanOutputStats os;
      dragoman_output_get_stats (o, &os);
      const char *name = dragoman_output_get_name (o);
      if (g_str_equal (dragoman_output_get_kind (o), "recording")) {
        if (os.state == DRAGOMAN_OUTPUT_FAILED)
          raise_alert (c, "recording-failed", rc->id, NULL, 0,
                       alert_params ("room", 's', rc->id, "error", 's', os.error, NULL), "recording of %s failed: %s",
                       rc->id, os.error ? os.error : "?");
        else
          clear_alert (c, "recording-failed", rc->id, NULL);
        continue;
      }
      /* a restream the crew wants that is not on the platform: retrying, or still
       * connecting after RESTREAM_GRACE_S */
      gboolean down = dragoman_output_is_wanted (o) &&
                      (os.state == DRAGOMAN_OUTPUT_RETRYING || os.state == DRAGOMAN_OUTPUT_FAILED ||
                       (os.state == DRAGOMAN_OUTPUT_STARTING &&
                        g_get_real_time () - os.since_us > RESTREAM_GRACE_S * G_USEC_PER_SEC));
      if (down)
        raise_alert (c, "restream-down", rc->id, name, 0,
                     alert_params ("name", 's', name, "error", 's', os.error, NULL), "restream %s is down: %s", name,
                     os.error ? os.error : "not connected yet");
      else
        clear_alert (c, "restream-down", rc->id, name);
    }
    for (guint k = 0; k < dragoman_room_n_channels (room); k++) {
      DragomanChannel *ch = dragoman_room_get_channel (room, k);
      const char *lang = dragoman_channel_get_lang (ch);
      g_autofree char *key = g_strdup_printf ("%s/%s", rc->id, lang);
      g_autofree char *meter = g_strdup_printf ("channel:%s", lang);
      const DragomanLevel *l = dragoman_room_get_level (room, meter);
      if (l && l->peak_db >= CLIP_DB && now - l->at_us < 1000000)
        raise_alert (c, "channel-clipping", rc->id, lang, CLIP_HOLD_S,
                     alert_params ("channel", 's', key, "peak_db", 'd', round (l->peak_db * 10) / 10, NULL),
                     "channel %s is clipping (peak %.1f dBFS)", key, l->peak_db);
      DragomanFanoutStats st;
      dragoman_fanout_get_stats (dragoman_channel_get_fanout (ch), &st);
      guint64 drops = st.resyncs + st.slow_disconnects;
      guint64 *seen = g_hash_table_lookup (c->drops_seen, key);
      if (!seen) {
        seen = g_new0 (guint64, 1);
        g_hash_table_insert (c->drops_seen, g_strdup (key), seen);
      } else if (drops > *seen) {
        raise_alert (c, "listeners-dropped", rc->id, lang, DROPS_HOLD_S,
                     alert_params ("n", 'i', (gint64) (drops - *seen), "channel", 's', key, NULL),
                     "%" G_GUINT64_FORMAT " listener drops on %s in the last second (slow networks)", drops - *seen,
                     key);
      }
      *seen = drops;
      g_autofree char *stall_key = g_strdup_printf ("stall:%s", key);
      guint64 *stalls = g_hash_table_lookup (c->drops_seen, stall_key);
      if (!stalls) {
        stalls = g_new0 (guint64, 1);
        *stalls = st.inbox_drops;
        g_hash_table_insert (c->drops_seen, g_strdup (stall_key), stalls);
      } else if (st.inbox_drops > *stalls) {
        raise_alert (c, "server-stalled", rc->id, lang, DROPS_HOLD_S,
                     alert_params ("n", 'i', (gint64) (st.inbox_drops - *stalls), "channel", 's', key, NULL),
                     "%" G_GUINT64_FORMAT " packets of %s lost: the server's socket thread stalled (CPU starved?)",
                     st.inbox_drops - *stalls, key);
      }
      *stalls = st.inbox_drops;

      DragomanBooth *booth = k > 0 ? dragoman_room_find_booth (room, lang) : NULL;
      if (!booth)
        continue;
      g_autofree char *bmeter = g_strdup_printf ("booth:%s", lang);
      const DragomanLevel *bl = dragoman_room_get_level (room, bmeter);
      gboolean quiet = !bl || now - bl->at_us > 1000000 || bl->rms_db < SILENT_DB;
      gint64 *since = g_hash_table_lookup (c->silent_since, key);
      if (dragoman_booth_is_on_air (booth) && quiet) {
        if (!since) {
          since = g_new (gint64, 1);
          *since = now;
          g_hash_table_insert (c->silent_since, g_strdup (key), since);
        } else if (now - *since >= SILENT_SECONDS * G_USEC_PER_SEC) {
          int s = (int) ((now - *since) / G_USEC_PER_SEC);
          raise_alert (c, "booth-silent", rc->id, lang, 0, alert_params ("booth", 's', key, "s", 'i', (gint64) s, NULL),
                       "booth %s is on air but silent for %d s", key, s);
        }
      } else {
        g_hash_table_remove (c->silent_since, key);
        clear_alert (c, "booth-silent", rc->id, lang);
      }
    }
  }
}

static void
build_state (DragomanControl *c, JsonBuilder *j)
{
  guint64 rss = 0;
  sample_process (c, &rss);
  json_builder_begin_object (j);
  add_str (j, "type", "state");
  json_builder_set_member_name (j, "server");
  json_builder_begin_object (j);
  add_str (j, "version", DRAGOMAN_VERSION);
  add_int (j, "uptime_s", (g_get_monotonic_time () - c->server->started_us) / G_USEC_PER_SEC);
  add_int (j, "cpu_pct", (gint64) (c->cpu_pct + 0.5));
  add_int (j, "rss_kib", (gint64) rss);
  add_int (j, "listeners", c->server->listeners);
  add_int (j, "crew", c->members->len);
  json_builder_end_object (j);
  json_builder_set_member_name (j, "rooms");
  json_builder_begin_array (j);
  for (guint r = 0; r < c->server->rooms->len; r++) {
    DragomanRoom *room = c->server->rooms->pdata[r];
    const DragomanRoomConfig *rc = dragoman_room_get_config (room);
    json_builder_begin_object (j);
    add_str (j, "id", rc->id);
    add_str (j, "title", rc->title);
    json_builder_set_member_name (j, "stage");
    json_builder_begin_object (j);
    DragomanStage *stage = dragoman_room_get_stage (room);
    add_str (j, "source", rc->stage);
    add_str (j, "state", !dragoman_room_is_playing (room) ? "down" : dragoman_stage_is_live (stage) ? "live" : "lost");
    add_str (j, "reason", dragoman_stage_get_reason (stage));
    add_str (j, "reason_code", stage_reason_code (stage));
    add_int (j, "since", dragoman_stage_get_since (stage));
    add_str (j, "video", dragoman_stage_get_video_info (stage));
    add_int (j, "bitrate", (gint64) dragoman_stage_get_bitrate (stage));
    add_int (j, "losses", dragoman_stage_get_losses (stage));
    json_builder_end_object (j);
    json_builder_set_member_name (j, "channels");
    json_builder_begin_array (j);
    for (guint k = 0; k < dragoman_room_n_channels (room); k++) {
      DragomanChannel *ch = dragoman_room_get_channel (room, k);
      DragomanFanoutStats st;
      dragoman_fanout_get_stats (dragoman_channel_get_fanout (ch), &st);
      json_builder_begin_object (j);
      add_str (j, "lang", dragoman_channel_get_lang (ch));
      add_str (j, "native_name", dragoman_language_lookup (dragoman_channel_get_lang (ch))->native_name);
      add_str (j, "mode", dragoman_channel_mode_name (dragoman_channel_get_mode (ch)));
      add_int (j, "duck_db", (gint64) (dragoman_channel_get_duck_db (ch) - 0.5));
      add_int (j, "listeners", st.listeners);
      add_int (j, "resyncs", (gint64) st.resyncs);
      add_int (j, "disconnects", (gint64) st.slow_disconnects);
      add_int (j, "inbox_drops", (gint64) st.inbox_drops);
      add_int (j, "packets", (gint64) st.packets_in);
      json_builder_end_object (j);
    }
    json_builder_end_array (j);
    json_builder_set_member_name (j, "booths");
    json_builder_begin_array (j);
    for (guint k = 0; rc->langs[k]; k++) {
      DragomanBooth *b = dragoman_room_find_booth (room, rc->langs[k]);
      if (!b)
        continue;
      json_builder_begin_object (j);
      dragoman_booth_describe (b, j);
      json_builder_end_object (j);
    }
    json_builder_end_array (j);
    json_builder_set_member_name (j, "outputs");
    json_builder_begin_array (j);
    GPtrArray *outputs = dragoman_room_get_outputs (room);
    for (guint k = 0; k < outputs->len; k++)
      dragoman_output_add_json (outputs->pdata[k], j);
    json_builder_end_array (j);
    json_builder_end_object (j);
  }
  json_builder_end_array (j);
  json_builder_set_member_name (j, "alerts");
  json_builder_begin_array (j);
  for (guint i = 0; i < c->alerts->len; i++)
    describe_alert (j, c->alerts->pdata[i]);
  json_builder_end_array (j);
  json_builder_end_object (j);
}

static void
broadcast_state (DragomanControl *c)
{
  if (c->members->len == 0)
    return;
  g_autoptr (JsonBuilder) j = json_builder_new ();
  build_state (c, j);
  broadcast (c, j);
}

static gboolean
on_state_timer (gpointer data)
{
  DragomanControl *c = data;
  evaluate_alerts (c);
  broadcast_state (c);
  return G_SOURCE_CONTINUE;
}

/* the crew hears of a lost stage at once (≈ 0.5 s after the last packet), not at
 * the next 1 s tick: with the tick, the alert took up to 1.7 s (helper's test) */
static void
on_stage_change (DragomanRoom *room, gboolean live, gpointer data)
{
  DragomanControl *c = data;
  evaluate_alerts (c);
  broadcast_state (c);
}

static void
on_output_change (DragomanOutput *o, gpointer data)
{
  DragomanControl *c = data;
  evaluate_alerts (c);
  broadcast_state (c);
}

/* ---- public ------------------------------------------------------------- */

DragomanControl *
dragoman_control_new (DragomanServer *server)
{
  if (!control_debug)
    GST_DEBUG_CATEGORY_INIT (control_debug, "dragoman-control", 0, "dragoman control page");
  DragomanControl *c = g_new0 (DragomanControl, 1);
  c->server = server;
  c->members = g_ptr_array_new ();
  c->alerts = g_ptr_array_new_with_free_func (alert_free);
  c->silent_since = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  c->drops_seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  for (guint r = 0; r < server->rooms->len; r++) {
    DragomanRoom *room = server->rooms->pdata[r];
    const DragomanRoomConfig *rc = dragoman_room_get_config (room);
    GPtrArray *outputs = dragoman_room_get_outputs (room);
    for (guint k = 0; k < outputs->len; k++)
      dragoman_output_set_change_func (outputs->pdata[k], on_output_change, c);
    dragoman_room_set_stage_func (room, on_stage_change, c);
    for (guint k = 0; rc->langs[k]; k++) {
      DragomanBooth *b = dragoman_room_find_booth (room, rc->langs[k]);
      if (b)
        dragoman_booth_set_event_func (b, on_booth_event, c);
    }
  }
  c->meter_timer = g_timeout_add (DRAGOMAN_LEVEL_INTERVAL_MS, on_meter_timer, c);
  c->state_timer = g_timeout_add_seconds (1, on_state_timer, c);
  return c;
}

void
dragoman_control_free (DragomanControl *c)
{
  if (!c)
    return;
  g_source_remove (c->meter_timer);
  g_source_remove (c->state_timer);
  g_ptr_array_unref (c->members);
  g_ptr_array_unref (c->alerts);
  g_hash_table_unref (c->silent_since);
  g_hash_table_unref (c->drops_seen);
  g_free (c);
}

void
dragoman_control_add (DragomanControl *c, DragomanCrewMember *m)
{
  g_ptr_array_add (c->members, m);
}

void
dragoman_control_remove (DragomanControl *c, DragomanCrewMember *m)
{
  g_ptr_array_remove (c->members, m);
}

void
dragoman_control_welcome (DragomanControl *c, DragomanCrewMember *m)
{
  g_autoptr (JsonBuilder) j = json_builder_new ();
  json_builder_begin_object (j);
  add_str (j, "type", "welcome");
  add_str (j, "name", m->name);
  add_str (j, "version", DRAGOMAN_VERSION);
  json_builder_end_object (j);
  g_autoptr (JsonNode) root = json_builder_get_root (j);
  g_autofree char *json = json_to_string (root, FALSE);
  dragoman_outbox_push (&m->out, json);
  g_autoptr (JsonBuilder) s = json_builder_new ();
  build_state (c, s);
  g_autoptr (JsonNode) sroot = json_builder_get_root (s);
  g_autofree char *sjson = json_to_string (sroot, FALSE);
  dragoman_outbox_push (&m->out, sjson);
}

static void
result (DragomanCrewMember *m, JsonObject *msg, const char *code, const char *error)
{
  g_autoptr (JsonBuilder) j = json_builder_new ();
  json_builder_begin_object (j);
  add_str (j, "type", "result");
  json_builder_set_member_name (j, "id");
  if (json_object_has_member (msg, "id"))
    json_builder_add_value (j, json_node_copy (json_object_get_member (msg, "id")));
  else
    json_builder_add_null_value (j);
  json_builder_set_member_name (j, "ok");
  json_builder_add_boolean_value (j, error == NULL);
  if (error) {
    add_str (j, "code", code); /* the page says it in the crew's language; error stays English */
    add_str (j, "error", error);
  }
  json_builder_end_object (j);
  g_autoptr (JsonNode) root = json_builder_get_root (j);
  g_autofree char *json = json_to_string (root, FALSE);
  dragoman_outbox_push (&m->out, json);
}

void
dragoman_control_handle (DragomanControl *c, DragomanCrewMember *m, JsonObject *msg)
{
  const char *type = json_object_get_string_member_with_default (msg, "type", "");
  const char *room_id = json_object_get_string_member_with_default (msg, "room", "");
  const char *lang = json_object_get_string_member_with_default (msg, "lang", "");
  const char *booth_lang = json_object_get_string_member_with_default (msg, "booth", "");
  gboolean value = json_object_get_boolean_member_with_default (msg, "value", FALSE);
  DragomanRoom *room = dragoman_config_valid_id (room_id) ? dragoman_server_find_room (c->server, room_id) : NULL;
  DragomanChannel *ch = room && dragoman_config_valid_id (lang) ? dragoman_room_find_channel (room, lang) : NULL;
  DragomanBooth *booth =
      room && dragoman_config_valid_id (booth_lang) ? dragoman_room_find_booth (room, booth_lang) : NULL;
  const char *error = NULL, *code = NULL;
#define REFUSE(c, text) (code = (c), error = (text))

  if (!room)
    REFUSE ("unknown-room", "unknown room");
  else if (g_str_equal (type, "force-floor")) {
    if (!ch || g_str_equal (lang, "orig"))
      REFUSE ("unknown-channel", "unknown language channel");
    else {
      dragoman_channel_set_force_floor (ch, value, GST_CLOCK_TIME_NONE);
      GST_WARNING ("control: %s %s floor on %s/%s", m->name, value ? "forced the" : "released the", room_id, lang);
    }
  } else if (g_str_equal (type, "duck")) {
    double db = json_object_get_double_member_with_default (msg, "db", 1);
    if (!ch || g_str_equal (lang, "orig") || db < -60 || db > 0)
      REFUSE ("bad-duck", "duck needs a language channel and db in [-60, 0]");
    else {
      dragoman_channel_set_duck_db (ch, db, GST_CLOCK_TIME_NONE);
      GST_WARNING ("control: %s set the floor under %s/%s to %.1f dB", m->name, room_id, lang, db);
    }
  } else if (g_str_equal (type, "on-air") || g_str_equal (type, "mute")) {
    if (!booth)
      REFUSE ("unknown-booth", "unknown booth");
    else if (g_str_equal (type, "on-air"))
      dragoman_booth_set_on_air (booth, value);
    else
      dragoman_booth_set_crew_mute (booth, value);
    if (booth)
      GST_WARNING ("control: %s set %s %s on %s/%s", m->name, type, value ? "on" : "off", room_id, booth_lang);
  } else if (g_str_equal (type, "kick")) {
    const char *who = json_object_get_string_member_with_default (msg, "interpreter", "");
    if (!booth)
      REFUSE ("unknown-booth", "unknown booth");
    else if (!dragoman_booth_kick (booth, who, m->name))
      REFUSE ("unknown-interpreter", "no such interpreter in that booth");
  } else if (g_str_equal (type, "record") || g_str_equal (type, "restream")) {
    gboolean rec = g_str_equal (type, "record");
    const char *name = rec ? "record" : json_object_get_string_member_with_default (msg, "name", "");
    DragomanOutput *o = dragoman_config_valid_id (name) ? dragoman_room_find_output (room, name) : NULL;
    g_autoptr (GError) err = NULL;
    if (!o || rec != g_str_equal (dragoman_output_get_kind (o), "recording"))
      REFUSE (rec ? "no-recording" : "unknown-restream",
              rec ? "this room has no [record] group" : "no such restream in this room");
    else if (value && !dragoman_output_start (o, &err))
      REFUSE ("output-failed", err->message); /* result() copies it before err goes */
    else if (!value)
      dragoman_output_stop (o);
    if (!error)
      GST_WARNING ("control: %s %s %s %s in room %s", m->name, value ? "started" : "stopped",
                   dragoman_output_get_kind (o), name, room_id);
    if (error) {
      GST_INFO ("control: %s's %s refused: %s", m->name, type, error);
      result (m, msg, code, error);
      broadcast_state (c);
      return;
    }
  } else if (g_str_equal (type, "message")) {
    const char *text = json_object_get_string_member_with_default (msg, "text", "");
    if (!booth || !*text || g_utf8_strlen (text, -1) > 500)
      REFUSE ("bad-message", "message needs a booth and 1-500 characters of text");
    else {
      dragoman_booth_message (booth, text);
      GST_INFO ("control: %s sent a message to %s/%s", m->name, room_id, booth_lang);
    }
  } else {
    REFUSE ("unknown-action", "unknown action");
  }
#undef REFUSE
  if (error && room)
    GST_INFO ("control: %s's %s refused: %s", m->name, type, error);
  result (m, msg, code, error);
  broadcast_state (c);
}

void
dragoman_control_append_metrics (DragomanControl *c, GString *s)
{
  g_string_append (s, "# HELP dragoman_alert 1 while an alert is active (see the control page)\n"
                      "# TYPE dragoman_alert gauge\n");
  for (guint i = 0; i < c->alerts->len; i++) {
    Alert *a = c->alerts->pdata[i];
    g_string_append_printf (s, "dragoman_alert{kind=\"%s\",room=\"%s\",lang=\"%s\"} 1\n", a->kind, a->room,
                            a->lang ? a->lang : "");
  }
}
