#include "ws_control.h"

#include "auth.h"
#include "ws_booth.h"

#include <libwebsockets.h>

GST_DEBUG_CATEGORY_STATIC (wscontrol_debug);
#define GST_CAT_DEFAULT wscontrol_debug

#define MAX_MESSAGE (16 * 1024) /* actions are small */
#define MAX_QUEUED 64           /* meters are skipped past 8; 64 means the page is gone */

/* every member sign_in () and dragoman_control_handle () read; "id" is echoed as it came */
static const DragomanWsMember control_members[] = {
  { "type", G_TYPE_STRING },
  { "token", G_TYPE_STRING },
  { "name", G_TYPE_STRING },
  { "room", G_TYPE_STRING },
  { "lang", G_TYPE_STRING },
  { "booth", G_TYPE_STRING },
  { "interpreter", G_TYPE_STRING },
  { "text", G_TYPE_STRING },
  { "value", G_TYPE_BOOLEAN },
  { "db", G_TYPE_DOUBLE },
  { NULL, 0 },
};

JsonObject *
dragoman_ws_control_parse (const char *data, gsize len, gboolean signed_in, GError **error)
{
  JsonObject *msg = dragoman_ws_parse_object (data, len, control_members, error);
  if (msg && !signed_in && g_strcmp0 (json_object_get_string_member_with_default (msg, "type", ""), "auth") != 0) {
    json_object_unref (msg);
    g_set_error_literal (error, DRAGOMAN_WS_ERROR, 0, "the first message must be {\"type\":\"auth\",...}");
    return NULL;
  }
  return msg;
}

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
  g_autoptr (GError) err = NULL;
  g_autoptr (JsonObject) msg = dragoman_ws_control_parse (s->in->str, s->in->len, s->signed_in, &err);
  g_string_truncate (s->in, 0);
  if (!msg)
    goto bad_message;
  if (!s->signed_in)
    sign_in (s, msg);
  else
    dragoman_control_handle (s->server->control, &s->member, msg);
  return 0;

  /* ERRORS */
bad_message:
  GST_INFO ("control from %s: bad message: %s", s->address, err->message);
  if (!s->signed_in) {
    dragoman_outbox_refuse (out, 4400, "bad-message", err->message);
  } else {
    g_autoptr (JsonBuilder) j = json_builder_new ();
    json_builder_begin_object (j);
    json_builder_set_member_name (j, "type");
    json_builder_add_string_value (j, "result");
    json_builder_set_member_name (j, "id");
    json_builder_add_null_value (j);
    json_builder_set_member_name (j, "ok");
    json_builder_add_boolean_value (j, FALSE);
    json_builder_set_member_name (j, "error");
    json_builder_add_string_value (j, err->message);
    json_builder_end_object (j);
    g_autoptr (JsonNode) root = json_builder_get_root (j);
    g_autofree char *json = json_to_string (root, FALSE);
    dragoman_outbox_push (out, json);
  }
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
