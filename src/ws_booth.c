#include "ws_booth.h"

#include "auth.h"

#include <libwebsockets.h>
#include <string.h>

GST_DEBUG_CATEGORY_STATIC (wsbooth_debug);
#define GST_CAT_DEFAULT wsbooth_debug

/* An SDP offer with a few candidates is 3-6 KB; 64 KiB is generous and bounded. */
#define MAX_MESSAGE (64 * 1024)
/* Messages to one console waiting for its socket: state updates are small and
 * the page reads them at once; 256 means the page is gone, not slow. */
#define MAX_QUEUED 256

static void
queue_json (DragomanBoothSession *s, const char *json)
{
  if (g_queue_get_length (s->out) >= MAX_QUEUED) {
    GST_WARNING ("booth console %p is not reading: closing it", s->wsi);
    if (!s->close_code) {
      s->close_code = 1008;
      s->close_reason = g_strdup ("not reading");
    }
  } else {
    g_queue_push_tail (s->out, g_strdup (json));
  }
  lws_callback_on_writable (s->wsi);
}

static void
send_from_booth (gpointer session, const char *json)
{
  queue_json (session, json);
}

static void
refuse (DragomanBoothSession *s, guint16 code, const char *error, const char *message)
{
  g_autoptr (JsonBuilder) j = json_builder_new ();
  json_builder_begin_object (j);
  json_builder_set_member_name (j, "type");
  json_builder_add_string_value (j, "error");
  json_builder_set_member_name (j, "code");
  json_builder_add_string_value (j, error);
  json_builder_set_member_name (j, "message");
  json_builder_add_string_value (j, message);
  json_builder_end_object (j);
  g_autoptr (JsonNode) root = json_builder_get_root (j);
  g_autofree char *json = json_to_string (root, FALSE);
  queue_json (s, json);
  s->close_code = code;
  g_free (s->close_reason);
  s->close_reason = g_strdup (error);
}

int
dragoman_ws_booth_open (DragomanBoothSession *s, struct lws *wsi, DragomanServer *server)
{
  if (!wsbooth_debug)
    GST_DEBUG_CATEGORY_INIT (wsbooth_debug, "dragoman-wsbooth", 0, "dragoman booth consoles");
  char arg[80], room_id[64] = "", lang[16] = "";
  const char *v;
  s->wsi = wsi;
  s->server = server;
  s->out = g_queue_new ();
  s->in = g_string_new (NULL);
  lws_get_peer_simple (wsi, s->address, sizeof s->address);
  if ((v = lws_get_urlarg_by_name (wsi, "room=", arg, sizeof arg)))
    g_strlcpy (room_id, v, sizeof room_id);
  if ((v = lws_get_urlarg_by_name (wsi, "booth=", arg, sizeof arg)))
    g_strlcpy (lang, v, sizeof lang);
  DragomanRoom *room = dragoman_config_valid_id (room_id) ? dragoman_server_find_room (server, room_id) : NULL;
  s->booth = room && dragoman_config_valid_id (lang) ? dragoman_room_find_booth (room, lang) : NULL;
  if (!s->booth || !g_str_equal (dragoman_booth_get_config (s->booth)->source, "browser"))
    refuse (s, 4404, "unknown-booth", "no browser booth by that name in that room");
  return 0;
}

static void
join (DragomanBoothSession *s, JsonObject *msg)
{
  const char *token = json_object_get_string_member_with_default (msg, "token", "");
  const char *name = json_object_get_string_member_with_default (msg, "name", "");
  if (!dragoman_auth_allowed (s->server->auth, s->address)) {
    GST_WARNING ("booth sign-in from %s refused: too many failures", s->address);
    refuse (s, 4429, "too-many-attempts", "too many failed sign-ins from this address: wait a minute");
    return;
  }
  /* never log the token, not even the wrong one */
  if (!dragoman_auth_token_equal (dragoman_booth_get_config (s->booth)->token, token)) {
    dragoman_auth_failed (s->server->auth, s->address);
    GST_WARNING ("booth %s sign-in from %s refused: wrong token", dragoman_booth_get_lang (s->booth), s->address);
    refuse (s, 4401, "bad-token", "wrong or missing booth token");
    return;
  }
  if (!*name || g_utf8_strlen (name, -1) > 64 || !g_utf8_validate (name, -1, NULL)) {
    refuse (s, 4400, "bad-message", "join needs a display name of 1 to 64 characters");
    return;
  }
  g_autoptr (GError) err = NULL;
  s->interpreter = dragoman_booth_join (s->booth, name, send_from_booth, s, &err);
  if (!s->interpreter)
    refuse (s, err->code == DRAGOMAN_BOOTH_ERROR_FULL ? 4409 : 4404,
            err->code == DRAGOMAN_BOOTH_ERROR_FULL ? "booth-full" : "unknown-booth", err->message);
}

int
dragoman_ws_booth_receive (DragomanBoothSession *s, const void *in, size_t len, gboolean binary, gboolean final)
{
  if (s->close_code)
    return 0; /* closing: ignore the rest */
  if (binary) {
    refuse (s, 1003, "bad-message", "the booth protocol is JSON text");
    return 0;
  }
  if (s->in->len + len > MAX_MESSAGE) {
    refuse (s, 1009, "too-big", "message too big");
    return 0;
  }
  g_string_append_len (s->in, in, len);
  if (!final)
    return 0;

  g_autoptr (JsonParser) parser = json_parser_new ();
  gboolean ok = json_parser_load_from_data (parser, s->in->str, s->in->len, NULL);
  g_string_truncate (s->in, 0);
  JsonNode *root = ok ? json_parser_get_root (parser) : NULL;
  if (!root || !JSON_NODE_HOLDS_OBJECT (root)) {
    if (!s->interpreter)
      refuse (s, 4400, "bad-message", "the first message must be {\"type\":\"join\",...}");
    else
      send_from_booth (s, "{\"type\":\"error\",\"code\":\"bad-message\",\"message\":\"not a JSON object\"}");
    return 0;
  }
  JsonObject *msg = json_node_get_object (root);
  if (!s->interpreter) {
    if (g_strcmp0 (json_object_get_string_member_with_default (msg, "type", ""), "join") != 0)
      refuse (s, 4400, "bad-message", "the first message must be {\"type\":\"join\",...}");
    else
      join (s, msg);
    return 0;
  }
  dragoman_booth_handle (s->booth, s->interpreter, msg);
  return 0;
}

int
dragoman_ws_booth_writable (DragomanBoothSession *s)
{
  char *json = g_queue_pop_head (s->out);
  if (json) {
    size_t len = strlen (json);
    g_autofree guint8 *buf = g_malloc (LWS_PRE + len);
    memcpy (buf + LWS_PRE, json, len);
    g_free (json);
    if (lws_write (s->wsi, buf + LWS_PRE, len, LWS_WRITE_TEXT) < (int) len)
      return -1;
  }
  if (!g_queue_is_empty (s->out)) {
    lws_callback_on_writable (s->wsi);
    return 0;
  }
  if (s->close_code) {
    lws_close_reason (s->wsi, s->close_code, (unsigned char *) s->close_reason, strlen (s->close_reason));
    return -1;
  }
  return 0;
}

void
dragoman_ws_booth_close (DragomanBoothSession *s)
{
  if (s->interpreter && !s->server->stopping)
    dragoman_booth_leave (s->booth, s->interpreter);
  s->interpreter = NULL;
  if (s->out)
    g_queue_free_full (s->out, g_free);
  s->out = NULL;
  if (s->in)
    g_string_free (s->in, TRUE);
  s->in = NULL;
  g_clear_pointer (&s->close_reason, g_free);
}
