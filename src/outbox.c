#include "outbox.h"

#include <json-glib/json-glib.h>
#include <libwebsockets.h>
#include <string.h>

void
dragoman_outbox_init (DragomanOutbox *box, struct lws *wsi, guint max)
{
  box->wsi = wsi;
  g_queue_init (&box->queue);
  box->max = max;
}

void
dragoman_outbox_clear (DragomanOutbox *box)
{
  g_queue_clear_full (&box->queue, g_free);
  g_clear_pointer (&box->close_reason, g_free);
}

void
dragoman_outbox_close (DragomanOutbox *box, guint16 code, const char *reason)
{
  if (!box->close_code) {
    box->close_code = code;
    box->close_reason = g_strdup (reason);
  }
  lws_callback_on_writable (box->wsi);
}

void
dragoman_outbox_push (DragomanOutbox *box, const char *json)
{
  if (box->close_code)
    return;
  if (g_queue_get_length (&box->queue) >= box->max) {
    dragoman_outbox_close (box, 1008, "not reading");
    return;
  }
  g_queue_push_tail (&box->queue, g_strdup (json));
  lws_callback_on_writable (box->wsi);
}

guint
dragoman_outbox_length (DragomanOutbox *box)
{
  return g_queue_get_length (&box->queue);
}

void
dragoman_outbox_refuse (DragomanOutbox *box, guint16 code, const char *error, const char *message)
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
  dragoman_outbox_push (box, json);
  dragoman_outbox_close (box, code, error);
}

int
dragoman_outbox_write (DragomanOutbox *box)
{
  char *json = g_queue_pop_head (&box->queue);
  if (json) {
    size_t len = strlen (json);
    g_autofree guint8 *buf = g_malloc (LWS_PRE + len);
    memcpy (buf + LWS_PRE, json, len);
    g_free (json);
    if (lws_write (box->wsi, buf + LWS_PRE, len, LWS_WRITE_TEXT) < (int) len)
      return -1;
  }
  if (!g_queue_is_empty (&box->queue)) {
    lws_callback_on_writable (box->wsi);
    return 0;
  }
  if (box->close_code) {
    lws_close_reason (box->wsi, box->close_code, (unsigned char *) box->close_reason, strlen (box->close_reason));
    return -1;
  }
  return 0;
}
