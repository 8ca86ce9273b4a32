/* booth — see the header for the kinds. The browser booth's rules:
 *  - the first interpreter to join is live; exactly one is live while anyone is in;
 *  - only the live interpreter puts the booth on air or coughs; a handover keeps
 *    the booth's on-air state and moves the microphone (the selector's active pad),
 *    as on a hardware console where partners share one output;
 *  - the live interpreter leaving (or their network dying) takes the booth off air
 *    at once: the channel fades back to the floor and the AV crew is alerted (log). */
#include "booth.h"

#include "room.h"
#include "webrtc_peer.h"

#include <string.h>

GST_DEBUG_CATEGORY_STATIC (booth_debug);
#define GST_CAT_DEFAULT booth_debug

#define CHAT_MAX 500 /* characters: a booth chat line, not a document */

struct _DragomanInterpreter {
  DragomanBooth *booth;
  char *id, *name;
  DragomanWebrtcPeer *peer;
  DragomanFanout *ret_fanout; /* the return feed's channel */
  DragomanListener *ret_listener;
  char *listen; /* "floor" or a channel's language */
  GstPad *voice_pad;
  gint *gate; /* 1 while live: owned by voice_pad's probe (freed with the pad) */
  DragomanBoothSendFunc send;
  DragomanBoothCloseFunc close;
  gpointer session;
};

struct _DragomanBooth {
  const DragomanBoothConfig *config;
  DragomanChannel *channel; /* borrowed from the room: the booth's own (output A) */
  DragomanChannel *out;     /* where its voice goes: its own, or another (retour, output B) */
  char *out_lang;
  DragomanRoom *room;
  GstElement *selector; /* browser booths: the live interpreter's pad is active */
  gboolean on_air, cough;
  gboolean crew_mute; /* the AV crew muted this booth */
  DragomanBoothEventFunc event_func;
  gpointer event_data;
  guint timer, state_timer;
  GPtrArray *interpreters; /* DragomanInterpreter* */
  DragomanInterpreter *live;
  guint next_id;
  guint last_listeners; /* last audience count told to the booth */
};

static void broadcast_state (DragomanBooth *b);
static gboolean activate_live_pad (gpointer data);

DragomanBooth *
dragoman_booth_new (const DragomanBoothConfig *config, DragomanChannel *channel, DragomanRoom *room)
{
  if (!booth_debug)
    GST_DEBUG_CATEGORY_INIT (booth_debug, "dragoman-booth", 0, "dragoman booths");
  DragomanBooth *b = g_new0 (DragomanBooth, 1);
  b->config = config;
  b->channel = channel;
  b->out = channel;
  b->out_lang = g_strdup (config->lang);
  b->room = room;
  b->interpreters = g_ptr_array_new ();
  return b;
}

static void
interpreter_free (DragomanInterpreter *i)
{
  if (i->ret_listener)
    dragoman_fanout_remove (i->ret_fanout, i->ret_listener);
  dragoman_webrtc_peer_free (i->peer);
  g_clear_object (&i->voice_pad);
  g_free (i->id);
  g_free (i->name);
  g_free (i->listen);
  g_free (i);
}

void
dragoman_booth_free (DragomanBooth *b)
{
  if (!b)
    return;
  if (b->timer)
    g_source_remove (b->timer);
  if (b->state_timer)
    g_source_remove (b->state_timer);
  for (guint k = 0; k < b->interpreters->len; k++)
    interpreter_free (b->interpreters->pdata[k]);
  g_ptr_array_unref (b->interpreters);
  g_free (b->out_lang);
  g_free (b);
}

void
dragoman_booth_set_source (DragomanBooth *b, GstElement *bin)
{
  if (GST_IS_BIN (bin))
    b->selector = gst_bin_get_by_name (GST_BIN (bin), "interpreters");
  if (b->selector)
    gst_object_unref (b->selector); /* the pipeline keeps it alive as long as we do */
}

/* the booth's state onto the channel it outputs to, if that channel carries it
 * (a booth whose channel is taken by another booth's retour drives nothing) */
static void
apply (DragomanBooth *b)
{
  DragomanBooth *owner = dragoman_room_get_voice_owner (b->room, b->out_lang);
  if (owner && owner != b)
    return;
  dragoman_channel_set_input (b->out, b->on_air, b->cough || b->crew_mute, GST_CLOCK_TIME_NONE);
}

static void broadcast_state (DragomanBooth *b);

/* Outgoing channel A/B (retour). Interlock, as on a hardware console: a channel
 * that another booth is on air on cannot be taken. The channel left behind goes
 * back to its own booth (or to the floor). */
static gboolean
set_output (DragomanBooth *b, const char *lang, GError **error)
{
  if (g_str_equal (lang, b->out_lang))
    return TRUE;
  if (!dragoman_room_can_route (b->room, lang) || !dragoman_room_can_route (b->room, b->config->lang)) {
    g_set_error (error, DRAGOMAN_BOOTH_ERROR, DRAGOMAN_BOOTH_ERROR_UNKNOWN,
                 "no retour to '%s' here: only to the channel of another booth of this room", lang);
    return FALSE;
  }
  DragomanBooth *owner = dragoman_room_get_voice_owner (b->room, lang);
  if (owner && owner != b && owner->on_air) {
    g_set_error (error, DRAGOMAN_BOOTH_ERROR, DRAGOMAN_BOOTH_ERROR_BUSY, "the %s channel is in use: the %s booth is on air",
                 lang, owner->config->lang);
    return FALSE;
  }
  /* the channel we leave: back to the floor, and to its own booth */
  const char *old = b->out_lang;
  dragoman_channel_set_input (b->out, FALSE, FALSE, GST_CLOCK_TIME_NONE);
  DragomanBooth *home = dragoman_room_find_booth (b->room, old);
  if (home && home != b)
    dragoman_room_set_voice_owner (b->room, old, home); /* routed when it goes on air */
  g_free (b->out_lang);
  b->out_lang = g_strdup (lang);
  b->out = dragoman_room_find_channel (b->room, lang);
  dragoman_room_route_voice (b->room, lang, b);
  apply (b);
  if (home && home != b) {
    apply (home);
    broadcast_state (home);
  }
  if (owner && owner != b)
    broadcast_state (owner); /* its channel is taken: its console says so */
  GST_INFO ("booth %s/%s now outputs to %s", b->config->room_id, b->config->lang, lang);
  return TRUE;
}

static void
event (DragomanBooth *b, const char *kind, const char *who, const char *text)
{
  if (b->event_func)
    b->event_func (b, kind, who, text, b->event_data);
}

void
dragoman_booth_set_event_func (DragomanBooth *b, DragomanBoothEventFunc func, gpointer data)
{
  b->event_func = func;
  b->event_data = data;
}

void
dragoman_booth_set_on_air (DragomanBooth *b, gboolean on_air)
{
  if (b->on_air == on_air)
    return;
  if (on_air)
    activate_live_pad (b);
  /* a channel given back after a retour takes this booth's voice now, before the
   * ramp up: its buffers from before the ramp are at gain 0 */
  if (on_air && dragoman_room_get_voice_owner (b->room, b->out_lang) == b)
    dragoman_room_route_voice (b->room, b->out_lang, b);
  b->on_air = on_air;
  if (!on_air)
    b->cough = FALSE;
  GST_INFO ("booth %s/%s: %s", b->config->room_id, b->config->lang, on_air ? "on air" : "off air");
  apply (b);
}

static gboolean
on_schedule (gpointer data)
{
  DragomanBooth *b = data;
  dragoman_booth_set_on_air (b, !b->on_air);
  double next = b->on_air ? b->config->on_air_seconds : b->config->off_air_seconds;
  b->timer = g_timeout_add ((guint) (next * 1000), on_schedule, b);
  return G_SOURCE_REMOVE;
}

static void
on_signal (DragomanChannel *channel, gboolean present, gpointer data)
{
  DragomanBooth *b = data;
  GST_INFO ("booth %s/%s: input %s", b->config->room_id, b->config->lang, present ? "has signal" : "lost its signal");
  if (g_str_equal (b->config->on_air, "signal"))
    dragoman_booth_set_on_air (b, present);
}

/* the audience indicator: tell the booth when its channel's listener count moves */
static gboolean
on_state_timer (gpointer data)
{
  DragomanBooth *b = data;
  DragomanFanoutStats st;
  dragoman_fanout_get_stats (dragoman_channel_get_fanout (b->out), &st);
  if (st.listeners != b->last_listeners)
    broadcast_state (b);
  return G_SOURCE_CONTINUE;
}

void
dragoman_booth_start (DragomanBooth *b)
{
  const char *mode = b->config->on_air;
  dragoman_channel_set_voice_signal_func (b->channel, on_signal, b);
  if (g_str_equal (mode, "always"))
    dragoman_booth_set_on_air (b, TRUE);
  else if (g_str_equal (mode, "schedule"))
    /* off air until the offset, so staggered booths cover every state early on */
    b->timer = g_timeout_add ((guint) (b->config->schedule_offset * 1000), on_schedule, b);
  if (b->selector)
    b->state_timer = g_timeout_add_seconds (1, on_state_timer, b);
}

gboolean
dragoman_booth_is_on_air (DragomanBooth *b)
{
  return b->on_air;
}

const char *
dragoman_booth_get_lang (DragomanBooth *b)
{
  return b->config->lang;
}

const DragomanBoothConfig *
dragoman_booth_get_config (DragomanBooth *b)
{
  return b->config;
}

guint
dragoman_booth_n_interpreters (DragomanBooth *b)
{
  return b->interpreters->len;
}

/* ---- browser booths ------------------------------------------------------- */

static void
send_to (DragomanInterpreter *i, JsonBuilder *builder)
{
  g_autoptr (JsonNode) root = json_builder_get_root (builder);
  g_autofree char *json = json_to_string (root, FALSE);
  i->send (i->session, json);
}

static void
send_all (DragomanBooth *b, JsonBuilder *builder)
{
  g_autoptr (JsonNode) root = json_builder_get_root (builder);
  g_autofree char *json = json_to_string (root, FALSE);
  for (guint k = 0; k < b->interpreters->len; k++) {
    DragomanInterpreter *i = b->interpreters->pdata[k];
    i->send (i->session, json);
  }
}

static void
add_str (JsonBuilder *j, const char *key, const char *value)
{
  json_builder_set_member_name (j, key);
  json_builder_add_string_value (j, value);
}

static void
send_error (DragomanInterpreter *i, const char *code, const char *message)
{
  g_autoptr (JsonBuilder) j = json_builder_new ();
  json_builder_begin_object (j);
  add_str (j, "type", "error");
  add_str (j, "code", code);
  add_str (j, "message", message);
  json_builder_end_object (j);
  send_to (i, j);
}

static void
broadcast_state (DragomanBooth *b)
{
  DragomanFanoutStats st;
  dragoman_fanout_get_stats (dragoman_channel_get_fanout (b->out), &st);
  b->last_listeners = st.listeners;
  DragomanBooth *owner = dragoman_room_get_voice_owner (b->room, b->out_lang);
  for (guint k = 0; k < b->interpreters->len; k++) {
    DragomanInterpreter *me = b->interpreters->pdata[k];
    g_autoptr (JsonBuilder) j = json_builder_new ();
    json_builder_begin_object (j);
    add_str (j, "type", "state");
    json_builder_set_member_name (j, "live");
    if (b->live)
      json_builder_add_string_value (j, b->live->id);
    else
      json_builder_add_null_value (j);
    json_builder_set_member_name (j, "on_air");
    json_builder_add_boolean_value (j, b->on_air);
    json_builder_set_member_name (j, "cough");
    json_builder_add_boolean_value (j, b->cough);
    add_str (j, "listen", me->listen);
    add_str (j, "output", b->out_lang);
    /* another booth's retour holds our channel: we cannot go on air on it */
    json_builder_set_member_name (j, "output_taken_by");
    if (owner && owner != b)
      json_builder_add_string_value (j, owner->config->lang);
    else
      json_builder_add_null_value (j);
    add_str (j, "channel_state", dragoman_channel_mode_name (dragoman_channel_get_mode (b->out)));
    /* the page says why its picture is black */
    json_builder_set_member_name (j, "stage_live");
    json_builder_add_boolean_value (j, dragoman_stage_is_live (dragoman_room_get_stage (b->room)));
    json_builder_set_member_name (j, "listeners");
    json_builder_add_int_value (j, st.listeners);
    json_builder_set_member_name (j, "interpreters");
    json_builder_begin_array (j);
    for (guint n = 0; n < b->interpreters->len; n++) {
      DragomanInterpreter *i = b->interpreters->pdata[n];
      json_builder_begin_object (j);
      add_str (j, "id", i->id);
      add_str (j, "name", i->name);
      json_builder_set_member_name (j, "live");
      json_builder_add_boolean_value (j, i == b->live);
      json_builder_set_member_name (j, "connected");
      json_builder_add_boolean_value (j, i->voice_pad != NULL);
      json_builder_end_object (j);
    }
    json_builder_end_array (j);
    json_builder_end_object (j);
    send_to (me, j);
  }
}

/* Only the live interpreter's buffers may reach the selector's output.
 * input-selector picks another sink pad by itself when the active one is
 * released (the live interpreter's connection died): without this gate the
 * partner's microphone was on air for ~100 ms before the voice ramp closed
 * (seen in booth.sh, 4 runs in 5).  So a pad is armed (gate open, active)
 * only by set_live() or going on air, never by the selector itself. */
static void
arm (DragomanBooth *b, DragomanInterpreter *armed)
{
  for (guint k = 0; k < b->interpreters->len; k++) {
    DragomanInterpreter *i = b->interpreters->pdata[k];
    if (i->gate)
      g_atomic_int_set (i->gate, i == armed);
  }
  if (armed && armed->voice_pad && b->selector)
    g_object_set (b->selector, "active-pad", armed->voice_pad, NULL);
}

static GstPadProbeReturn
gate_probe (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  (void) pad;
  (void) info;
  return g_atomic_int_get ((gint *) data) ? GST_PAD_PROBE_OK : GST_PAD_PROBE_DROP;
}

/* make `i` live: its microphone becomes the booth's voice */
static void
set_live (DragomanBooth *b, DragomanInterpreter *i)
{
  b->live = i;
  b->cough = FALSE;
  arm (b, i);
  apply (b);
  GST_INFO ("booth %s/%s: %s is live", b->config->room_id, b->config->lang, i ? i->name : "nobody");
}

static gboolean
activate_live_pad (gpointer data)
{
  DragomanBooth *b = data;
  if (b->live)
    arm (b, b->live);
  return G_SOURCE_REMOVE;
}

static void
on_peer_json (gpointer owner, const char *json)
{
  DragomanInterpreter *i = owner;
  i->send (i->session, json);
}

static void
on_peer_media (gpointer owner, GstPad *pad)
{
  DragomanInterpreter *i = owner;
  DragomanBooth *b = i->booth;
  g_set_object (&i->voice_pad, pad);
  i->gate = g_new0 (gint, 1); /* closed until set_live() arms it */
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST, gate_probe, i->gate, g_free);
  if (b->live == i)
    set_live (b, i);
  broadcast_state (b);
}

static void
on_peer_ice (gpointer owner, const char *state)
{
  DragomanInterpreter *i = owner;
  GST_INFO ("booth %s/%s: %s's connection is %s", i->booth->config->room_id, i->booth->config->lang, i->name,
            state);
  if ((g_str_equal (state, "failed") || g_str_equal (state, "disconnected")) && i->booth->live == i &&
      i->booth->on_air) {
    /* their network died: the floor must come back now, not after ICE gives up */
    GST_WARNING ("ALERT booth %s/%s: live interpreter %s lost their connection: back to the floor",
                 i->booth->config->room_id, i->booth->config->lang, i->name);
    dragoman_booth_set_on_air (i->booth, FALSE);
    broadcast_state (i->booth);
  }
}

static const DragomanWebrtcPeerCallbacks peer_callbacks = { on_peer_json, on_peer_media, on_peer_ice };

static gboolean
set_listen (DragomanInterpreter *i, const char *source)
{
  DragomanChannel *ch = dragoman_room_find_channel (i->booth->room, g_str_equal (source, "floor") ? "orig" : source);
  if (!ch)
    return FALSE;
  if (i->ret_listener)
    dragoman_fanout_remove (i->ret_fanout, i->ret_listener);
  i->ret_fanout = dragoman_channel_get_fanout (ch);
  /* the same packets the audience gets: encoded once, not counted as audience */
  i->ret_listener = dragoman_fanout_add_full (i->ret_fanout, dragoman_webrtc_peer_return_funcs (), i->peer, FALSE);
  g_free (i->listen);
  i->listen = g_strdup (source);
  return TRUE;
}

DragomanInterpreter *
dragoman_booth_join (DragomanBooth *b, const char *name, DragomanBoothSendFunc send, DragomanBoothCloseFunc close,
                     gpointer session, GError **error)
{
  if (!b->selector) {
    g_set_error (error, DRAGOMAN_BOOTH_ERROR, DRAGOMAN_BOOTH_ERROR_NOT_BROWSER,
                 "booth %s/%s takes no browser interpreters (source = %s)", b->config->room_id, b->config->lang,
                 b->config->source);
    return NULL;
  }
  if (b->interpreters->len >= (guint) b->config->max_interpreters) {
    g_set_error (error, DRAGOMAN_BOOTH_ERROR, DRAGOMAN_BOOTH_ERROR_FULL, "booth %s/%s already has %d interpreters",
                 b->config->room_id, b->config->lang, b->config->max_interpreters);
    return NULL;
  }
  DragomanInterpreter *i = g_new0 (DragomanInterpreter, 1);
  i->booth = b;
  i->id = g_strdup_printf ("i%u", ++b->next_id);
  i->name = g_strdup (name);
  i->send = send;
  i->close = close;
  i->session = session;
  g_autofree char *peer_name = g_strdup_printf ("peer-%s-%s", b->config->lang, i->id);
  i->peer = dragoman_webrtc_peer_new (dragoman_room_get_pipeline (b->room), peer_name, b->selector,
                                      dragoman_room_get_server_config (b->room), b->config->jitter_ms,
                                      dragoman_room_get_booth_video (b->room), &peer_callbacks, i);
  set_listen (i, "floor");
  g_ptr_array_add (b->interpreters, i);
  GST_INFO ("booth %s/%s: %s joined (%u in the booth)", b->config->room_id, b->config->lang, name,
            b->interpreters->len);
  if (!b->live)
    set_live (b, i);

  g_autoptr (JsonBuilder) j = json_builder_new ();
  json_builder_begin_object (j);
  add_str (j, "type", "joined");
  add_str (j, "id", i->id);
  add_str (j, "room", b->config->room_id);
  add_str (j, "booth", b->config->lang);
  add_str (j, "name", i->name);
  /* outgoing channel B: the other booths' channels of this room */
  json_builder_set_member_name (j, "retour");
  json_builder_add_boolean_value (j, dragoman_room_can_route (b->room, b->config->lang));
  json_builder_set_member_name (j, "channels");
  json_builder_begin_array (j);
  for (guint c = 0; c < dragoman_room_n_channels (b->room); c++) {
    const char *lang = dragoman_channel_get_lang (dragoman_room_get_channel (b->room, c));
    json_builder_begin_object (j);
    add_str (j, "lang", lang);
    add_str (j, "native_name", dragoman_language_lookup (lang)->native_name);
    json_builder_end_object (j);
  }
  json_builder_end_array (j);
  /* the stage's picture: the page offers a video m-line for it only if there is one */
  const DragomanRoomConfig *rc = dragoman_room_get_config (b->room);
  if (dragoman_room_get_booth_video (b->room)) {
    json_builder_set_member_name (j, "video");
    json_builder_begin_object (j);
    json_builder_set_member_name (j, "width");
    json_builder_add_int_value (j, rc->booth_video_width);
    json_builder_set_member_name (j, "height");
    json_builder_add_int_value (j, rc->booth_video_height);
    json_builder_end_object (j);
  }
  json_builder_set_member_name (j, "ice_servers");
  json_builder_begin_array (j);
  const DragomanConfig *sc = dragoman_room_get_server_config (b->room);
  if (sc->stun_server) {
    /* webrtcbin's stun://host:port is the browser's stun:host:port */
    g_autofree char *url = g_strdup_printf ("stun:%s", sc->stun_server + (g_str_has_prefix (sc->stun_server,
                                                                                            "stun://") ? 7 : 0));
    json_builder_begin_object (j);
    add_str (j, "urls", url);
    json_builder_end_object (j);
  }
  json_builder_end_array (j);
  json_builder_end_object (j);
  send_to (i, j);
  broadcast_state (b);
  event (b, "interpreter-joined", i->name, NULL);
  return i;
}

void
dragoman_booth_leave (DragomanBooth *b, DragomanInterpreter *i)
{
  g_ptr_array_remove (b->interpreters, i);
  GST_INFO ("booth %s/%s: %s left", b->config->room_id, b->config->lang, i->name);
  gboolean was_on_air = b->live == i && b->on_air;
  if (b->live == i) {
    if (b->on_air)
      GST_WARNING ("ALERT booth %s/%s: live interpreter %s disconnected: back to the floor", b->config->room_id,
                   b->config->lang, i->name);
    /* voice down now; switching the selector to the partner at once let a window of
     * their microphone through the ramp (seen in a test) */
    b->on_air = FALSE;
    b->cough = FALSE;
    apply (b);
    /* the partner's pad becomes active when they go on air (their buffers carry
     * older timestamps than the gain ramp's start, so even 50 ms later they leaked) */
    b->live = b->interpreters->len ? b->interpreters->pdata[0] : NULL;
    arm (b, NULL);
  }
  if (b->interpreters->len == 0 && !g_str_equal (b->out_lang, b->config->lang))
    set_output (b, b->config->lang, NULL); /* an empty booth gives the retour channel back */
  event (b, "interpreter-left", i->name, was_on_air ? "live" : NULL);
  interpreter_free (i);
  broadcast_state (b);
}

static DragomanInterpreter *
partner_of (DragomanBooth *b, DragomanInterpreter *i)
{
  for (guint k = 0; k < b->interpreters->len; k++)
    if (b->interpreters->pdata[k] != i)
      return b->interpreters->pdata[k];
  return NULL;
}

void
dragoman_booth_handle (DragomanBooth *b, DragomanInterpreter *i, JsonObject *msg)
{
  const char *type = json_object_get_string_member_with_default (msg, "type", "");
  gboolean value = json_object_get_boolean_member_with_default (msg, "value", FALSE);

  if (g_str_equal (type, "offer")) {
    g_autoptr (GError) err = NULL;
    if (!dragoman_webrtc_peer_offer (i->peer, json_object_get_string_member_with_default (msg, "sdp", ""), &err))
      send_error (i, "bad-sdp", err->message);
  } else if (g_str_equal (type, "ice")) {
    gint64 mline = json_object_get_int_member_with_default (msg, "sdpMLineIndex", 0);
    const char *cand = json_object_get_string_member_with_default (msg, "candidate", "");
    if (mline < 0 || mline > 16 || strlen (cand) > 1024 || (*cand && !g_str_has_prefix (cand, "candidate:")))
      send_error (i, "bad-candidate", "an ICE candidate is \"candidate:...\" with a small sdpMLineIndex");
    else
      dragoman_webrtc_peer_add_ice (i->peer, (guint) mline, cand);
  } else if (g_str_equal (type, "on-air") || g_str_equal (type, "cough")) {
    if (b->live != i) {
      send_error (i, "not-live", "only the live interpreter can do that: take over first");
      return;
    }
    DragomanBooth *owner = dragoman_room_get_voice_owner (b->room, b->out_lang);
    if (g_str_equal (type, "on-air") && value && owner && owner != b) {
      g_autofree char *why = g_strdup_printf ("the %s channel carries the %s booth's retour: wait, or choose another "
                                              "output", b->out_lang, owner->config->lang);
      send_error (i, "channel-busy", why);
      broadcast_state (b);
      return;
    }
    if (g_str_equal (type, "on-air"))
      dragoman_booth_set_on_air (b, value);
    else {
      b->cough = value && b->on_air;
      apply (b);
    }
    broadcast_state (b);
  } else if (g_str_equal (type, "take-over")) {
    if (b->live != i)
      set_live (b, i);
    broadcast_state (b);
  } else if (g_str_equal (type, "hand-over")) {
    DragomanInterpreter *p = partner_of (b, i);
    if (b->live == i && p)
      set_live (b, p);
    broadcast_state (b);
  } else if (g_str_equal (type, "request-handover")) {
    if (b->live && b->live != i) {
      g_autoptr (JsonBuilder) j = json_builder_new ();
      json_builder_begin_object (j);
      add_str (j, "type", "handover-request");
      add_str (j, "from", i->id);
      add_str (j, "name", i->name);
      json_builder_end_object (j);
      send_to (b->live, j);
    }
  } else if (g_str_equal (type, "listen")) {
    const char *source = json_object_get_string_member_with_default (msg, "source", "");
    if (!set_listen (i, source))
      send_error (i, "unknown-channel", "listen to \"floor\" or one of this room's channels");
    broadcast_state (b);
  } else if (g_str_equal (type, "output")) {
    const char *lang = json_object_get_string_member_with_default (msg, "lang", "");
    g_autoptr (GError) err = NULL;
    if (!dragoman_config_valid_id (lang) || !set_output (b, lang, &err))
      send_error (i, err && err->code == DRAGOMAN_BOOTH_ERROR_BUSY ? "channel-busy" : "bad-output",
                  err ? err->message : "output needs a language");
    else
      event (b, "output", i->name, lang);
    broadcast_state (b);
  } else if (g_str_equal (type, "slow-down") || g_str_equal (type, "chat")) {
    const char *text = json_object_get_string_member_with_default (msg, "text", "");
    g_autofree char *clipped = g_utf8_substring (text, 0, MIN (g_utf8_strlen (text, -1), CHAT_MAX));
    if (g_str_equal (type, "slow-down"))
      GST_WARNING ("ALERT booth %s/%s: %s asks the speaker to slow down", b->config->room_id, b->config->lang,
                   i->name);
    g_autoptr (JsonBuilder) j = json_builder_new ();
    json_builder_begin_object (j);
    add_str (j, "type", type);
    add_str (j, "from", i->name);
    if (g_str_equal (type, "chat"))
      add_str (j, "text", clipped);
    json_builder_set_member_name (j, "at");
    json_builder_add_int_value (j, g_get_real_time () / 1000);
    json_builder_end_object (j);
    send_all (b, j);
    event (b, type, i->name, g_str_equal (type, "chat") ? clipped : NULL);
  } else {
    send_error (i, "bad-message", "unknown message type");
  }
}

/* ---- the AV crew's side ----------------------------------------------------- */

void
dragoman_booth_stage_changed (DragomanBooth *b)
{
  if (b->interpreters->len)
    broadcast_state (b);
}

void
dragoman_booth_set_crew_mute (DragomanBooth *b, gboolean mute)
{
  b->crew_mute = mute;
  apply (b);
  broadcast_state (b);
}

gboolean
dragoman_booth_kick (DragomanBooth *b, const char *id, const char *by)
{
  for (guint k = 0; k < b->interpreters->len; k++) {
    DragomanInterpreter *i = b->interpreters->pdata[k];
    if (g_strcmp0 (i->id, id) == 0) {
      GST_WARNING ("booth %s/%s: %s disconnected by %s", b->config->room_id, b->config->lang, i->name, by);
      send_error (i, "kicked", "the AV crew disconnected you from this booth");
      i->close (i->session, 4403, "kicked");
      return TRUE;
    }
  }
  return FALSE;
}

void
dragoman_booth_message (DragomanBooth *b, const char *text)
{
  g_autoptr (JsonBuilder) j = json_builder_new ();
  json_builder_begin_object (j);
  add_str (j, "type", "message");
  add_str (j, "text", text);
  json_builder_end_object (j);
  send_all (b, j);
}

void
dragoman_booth_describe (DragomanBooth *b, JsonBuilder *j)
{
  add_str (j, "lang", b->config->lang);
  add_str (j, "output", b->out_lang);
  add_str (j, "source", b->config->source);
  add_str (j, "on_air_mode", b->config->on_air);
  json_builder_set_member_name (j, "on_air");
  json_builder_add_boolean_value (j, b->on_air);
  json_builder_set_member_name (j, "cough");
  json_builder_add_boolean_value (j, b->cough);
  json_builder_set_member_name (j, "muted");
  json_builder_add_boolean_value (j, b->crew_mute);
  json_builder_set_member_name (j, "signal");
  json_builder_add_boolean_value (j, dragoman_channel_has_voice_signal (b->channel));
  json_builder_set_member_name (j, "interpreters");
  json_builder_begin_array (j);
  for (guint k = 0; k < b->interpreters->len; k++) {
    DragomanInterpreter *i = b->interpreters->pdata[k];
    json_builder_begin_object (j);
    add_str (j, "id", i->id);
    add_str (j, "name", i->name);
    add_str (j, "listen", i->listen);
    json_builder_set_member_name (j, "live");
    json_builder_add_boolean_value (j, i == b->live);
    json_builder_set_member_name (j, "connected");
    json_builder_add_boolean_value (j, i->voice_pad != NULL);
    double rtt, jitter, loss;
    dragoman_webrtc_peer_get_health (i->peer, &rtt, &jitter, &loss);
    /* whole milliseconds and tenths of a percent (-1: not known yet) */
    json_builder_set_member_name (j, "rtt_ms");
    json_builder_add_int_value (j, rtt < 0 ? -1 : (gint64) (rtt + 0.5));
    json_builder_set_member_name (j, "jitter_ms");
    json_builder_add_int_value (j, jitter < 0 ? -1 : (gint64) (jitter + 0.5));
    json_builder_set_member_name (j, "loss_permille");
    json_builder_add_int_value (j, loss < 0 ? -1 : (gint64) (loss * 10 + 0.5));
    json_builder_end_object (j);
  }
  json_builder_end_array (j);
}
