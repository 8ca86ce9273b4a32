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
send_from_booth (gpointer session, const char *json)
{
  DragomanBoothSession *s = session;
  dragoman_outbox_push (&s->out, json);
}

static void
close_from_booth (gpointer session, guint16 code, const char *reason)
{
  DragomanBoothSession *s = session;
  dragoman_outbox_close (&s->out, code, reason);
}

static void
refuse (DragomanBoothSession *s, guint16 code, const char *error, const char *message)
{
  dragoman_outbox_refuse (&s->out, code, error, message);
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
  dragoman_outbox_init (&s->out, wsi, MAX_QUEUED);
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
  s->interpreter = dragoman_booth_join (s->booth, name, send_from_booth, close_from_booth, s, &err);
  if (!s->interpreter)
    refuse (s, err->code == DRAGOMAN_BOOTH_ERROR_FULL ? 4409 : 4404,
            err->code == DRAGOMAN_BOOTH_ERROR_FULL ? "booth-full" : "unknown-booth", err->message);
}

int
dragoman_ws_booth_receive (DragomanBoothSession *s, const void *in, size_t len, gboolean binary, gboolean final)
{
  if (s->out.close_code)
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
      dragoman_outbox_push (&s->out, "{\"type\":\"error\",\"code\":\"bad-message\",\"message\":\"not a JSON object\"}");
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
  return dragoman_outbox_write (&s->out);
}

void
dragoman_ws_booth_close (DragomanBoothSession *s)
{
  if (s->interpreter && !s->server->stopping)
    dragoman_booth_leave (s->booth, s->interpreter);
  s->interpreter = NULL;
  dragoman_outbox_clear (&s->out);
  if (s->in)
    g_string_free (s->in, TRUE);
  s->in = NULL;
}
