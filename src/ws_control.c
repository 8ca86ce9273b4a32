#include "ws_control.h"

#include "auth.h"

#include <libwebsockets.h>

GST_DEBUG_CATEGORY_STATIC (wscontrol_debug);
#define GST_CAT_DEFAULT wscontrol_debug

#define MAX_MESSAGE (16 * 1024) /* actions are small */
#define MAX_QUEUED 64           /* meters are skipped past 8; 64 means the page is gone */

int
dragoman_ws_control_open (DragomanControlSession *s, struct lws *wsi, DragomanServer *server)
{
  if (!wscontrol_debug)
    GST_DEBUG_CATEGORY_INIT (wscontrol_debug, "dragoman-wscontrol", 0, "dragoman control sessions");
  s->server = server;
  s->in = g_string_new (NULL);
  dragoman_outbox_init (&s->member.out, wsi, MAX_QUEUED);
  lws_get_peer_simple (wsi, s->address, sizeof s->address);
  if (!server->config->admin_token)
    dragoman_outbox_refuse (&s->member.out, 4403, "disabled", "no admin-token configured: the control page is off");
  return 0;
}

static void
sign_in (DragomanControlSession *s, JsonObject *msg)
{
  DragomanOutbox *out = &s->member.out;
  const char *token = json_object_get_string_member_with_default (msg, "token", "");
  const char *name = json_object_get_string_member_with_default (msg, "name", "");
  if (g_strcmp0 (json_object_get_string_member_with_default (msg, "type", ""), "auth") != 0) {
    dragoman_outbox_refuse (out, 4400, "bad-message", "the first message must be {\"type\":\"auth\",...}");
    return;
  }
  if (!dragoman_auth_allowed (s->server->auth, s->address)) {
    dragoman_outbox_refuse (out, 4429, "too-many-attempts", "too many failed sign-ins from this address");
    return;
  }
  if (!dragoman_auth_token_equal (s->server->config->admin_token, token)) {
    dragoman_auth_failed (s->server->auth, s->address);
    GST_WARNING ("control sign-in from %s refused: wrong token", s->address);
    dragoman_outbox_refuse (out, 4401, "bad-token", "wrong or missing admin token");
    return;
  }
  s->member.name = g_strdup_printf ("%s (%s)", *name && g_utf8_strlen (name, -1) <= 64 ? name : "crew", s->address);
  s->signed_in = TRUE;
  GST_WARNING ("control: %s signed in", s->member.name);
  dragoman_control_add (s->server->control, &s->member);
  dragoman_control_welcome (s->server->control, &s->member);
}

int
dragoman_ws_control_receive (DragomanControlSession *s, const void *in, size_t len, gboolean binary, gboolean final)
{
  DragomanOutbox *out = &s->member.out;
  if (out->close_code)
    return 0;
  if (binary || s->in->len + len > MAX_MESSAGE) {
    dragoman_outbox_refuse (out, binary ? 1003 : 1009, "bad-message", "JSON text messages of at most 16 KiB");
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
    if (!s->signed_in)
      dragoman_outbox_refuse (out, 4400, "bad-message", "not a JSON object");
    else
      dragoman_outbox_push (out, "{\"type\":\"result\",\"id\":null,\"ok\":false,\"error\":\"not a JSON object\"}");
    return 0;
  }
  JsonObject *msg = json_node_get_object (root);
  if (!s->signed_in)
    sign_in (s, msg);
  else
    dragoman_control_handle (s->server->control, &s->member, msg);
  return 0;
}

int
dragoman_ws_control_writable (DragomanControlSession *s)
{
  return dragoman_outbox_write (&s->member.out);
}

void
dragoman_ws_control_close (DragomanControlSession *s)
{
  if (s->signed_in && !s->server->stopping)
    dragoman_control_remove (s->server->control, &s->member);
  if (s->signed_in)
    GST_INFO ("control: %s left", s->member.name);
  dragoman_outbox_clear (&s->member.out);
  g_clear_pointer (&s->member.name, g_free);
  if (s->in)
    g_string_free (s->in, TRUE);
  s->in = NULL;
}
