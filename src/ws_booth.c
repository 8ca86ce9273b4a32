#include "ws_booth.h"

#include "auth.h"
#include "ws_listen.h"

#include <libwebsockets.h>
#include <string.h>

GST_DEBUG_CATEGORY_STATIC (wsbooth_debug);
#define GST_CAT_DEFAULT wsbooth_debug

/* An SDP offer with a few candidates is 3-6 KB; 64 KiB is generous and bounded. */
#define MAX_MESSAGE (64 * 1024)
/* Messages to one console waiting for its socket: state updates are small and
 * the page reads them at once; 256 means the page is gone, not slow. */
#define MAX_QUEUED 256

/* Our messages are flat objects: 32 levels leave room, and keep json-glib's recursion
 * (about 115 bytes of stack a level) to a few KiB. */
#define MAX_DEPTH 32

/* ---- the pure part: one message → a JSON object of the protocol's shape --------- */

static const char *
skip_space (const char *p, const char *end)
{
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
    p++;
  return p;
}

/* the code unit of the \uXXXX escape at p, or -1 */
static int
unit (const char *p, const char *end)
{
  int u = 0;
  if (end - p < 6 || p[0] != '\\' || p[1] != 'u')
    return -1;
  for (int k = 2; k < 6; k++) {
    if (!g_ascii_isxdigit (p[k]))
      return -1;
    u = u * 16 + g_ascii_xdigit_value (p[k]);
  }
  return u;
}

/* Past the string whose opening quote is at p, or NULL. Beyond the grammar: no \u0000
 * (json-glib's strings end there) and no surrogate outside a pair: json-glib 1.6 turns
 * "\ud800x" into bytes that are not UTF-8 (relayed in a chat, every page receiving them
 * would drop its socket) and leaks ~180 bytes on "\ud800\u0041". */
static const char *
skip_string (const char *p, const char *end)
{
  for (p++; p < end; p++) {
    if (*p == '"')
      return p + 1;
    if ((guchar) *p < 0x20)
      return NULL;
    if (*p != '\\')
      continue;
    int u = unit (p, end);
    if (u >= 0xd800 && u <= 0xdbff) {
      int low = unit (p + 6, end);
      if (low < 0xdc00 || low > 0xdfff)
        return NULL;
      p += 11;
    } else if (u > 0 && (u < 0xdc00 || u > 0xdfff)) {
      p += 5;
    } else if (u >= 0 || p + 1 == end || !p[1] || !strchr ("\"\\/bfnrt", p[1])) {
      return NULL;
    } else {
      p++;
    }
  }
  return NULL;
}

static const char *
skip_digits (const char *p, const char *end)
{
  if (p == end || !g_ascii_isdigit (*p))
    return NULL;
  while (p < end && g_ascii_isdigit (*p))
    p++;
  return p;
}

/* past the string, literal or number at p (p < end), or NULL */
static const char *
skip_scalar (const char *p, const char *end)
{
  static const char *const literals[] = { "true", "false", "null" };
  if (*p == '"')
    return skip_string (p, end);
  for (guint i = 0; i < G_N_ELEMENTS (literals); i++) {
    gsize n = strlen (literals[i]);
    if ((gsize) (end - p) >= n && memcmp (p, literals[i], n) == 0)
      return p + n;
  }
  if (*p == '-')
    p++;
  if (p < end && *p == '0')
    p++;
  else if (!(p = skip_digits (p, end)))
    return NULL;
  if (p < end && *p == '.' && !(p = skip_digits (p + 1, end)))
    return NULL;
  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    if (p < end && (*p == '+' || *p == '-'))
      p++;
    if (!(p = skip_digits (p, end)))
      return NULL;
  }
  return p;
}

/* past `"name" :` in an object, or NULL */
static const char *
skip_key (const char *p, const char *end)
{
  p = skip_space (p, end);
  if (p == end || *p != '"' || !(p = skip_string (p, end)))
    return NULL;
  p = skip_space (p, end);
  return p < end && *p == ':' ? p + 1 : NULL;
}

const char *
dragoman_ws_json_check (const char *data, gsize len, guint max_depth)
{
  static const char not_json[] = "not JSON (RFC 8259)";
  const char *p = data, *end = data + len;
  g_autofree char *open = g_malloc (max_depth + 1); /* the containers we are in: '{' or '[' */
  guint depth = 0;
  for (;;) {
    /* a value */
    p = skip_space (p, end);
    if (p == end)
      return not_json;
    if (*p == '{' || *p == '[') {
      if (depth == max_depth)
        return "nested too deep";
      char kind = open[depth++] = *p;
      p = skip_space (p + 1, end);
      if (p == end || *p != (kind == '{' ? '}' : ']')) {
        if (kind == '{' && !(p = skip_key (p, end)))
          return not_json;
        continue; /* its first value */
      }
      p++; /* empty */
      depth--;
    } else if (!(p = skip_scalar (p, end))) {
      return not_json;
    }
    /* a value is complete: close containers up to the next comma, or the end */
    for (;;) {
      p = skip_space (p, end);
      if (depth == 0)
        return p == end ? NULL : not_json;
      if (p == end)
        return not_json;
      if (*p == ',') {
        p++;
        if (open[depth - 1] == '{' && !(p = skip_key (p, end)))
          return not_json;
        break;
      }
      if (*p != (open[depth - 1] == '{' ? '}' : ']'))
        return not_json;
      p++;
      depth--;
    }
  }
}

static const char *
type_words (GType type)
{
  return type == G_TYPE_STRING    ? "a string"
         : type == G_TYPE_BOOLEAN ? "true or false"
         : type == G_TYPE_INT64   ? "an integer"
                                  : "a number";
}

JsonObject *
dragoman_ws_parse_object (const char *data, gsize len, const DragomanWsMember *members, GError **error)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) err = NULL;
  const char *why = dragoman_ws_json_check (data, len, MAX_DEPTH);
  if (why) {
    g_set_error_literal (error, DRAGOMAN_WS_ERROR, 0, why);
    return NULL;
  }
  if (!json_parser_load_from_data (parser, data, (gssize) len, &err)) {
    g_set_error (error, DRAGOMAN_WS_ERROR, 0, "not JSON: %s", err->message);
    return NULL;
  }
  JsonNode *root = json_parser_get_root (parser);
  if (!root || !JSON_NODE_HOLDS_OBJECT (root)) {
    g_set_error_literal (error, DRAGOMAN_WS_ERROR, 0, "not a JSON object");
    return NULL;
  }
  JsonObject *msg = json_node_get_object (root);
  for (const DragomanWsMember *m = members; m->name; m++) {
    JsonNode *node = json_object_get_member (msg, m->name);
    if (!node || JSON_NODE_HOLDS_NULL (node))
      continue;
    GType type = JSON_NODE_HOLDS_VALUE (node) ? json_node_get_value_type (node) : G_TYPE_INVALID;
    if (type != m->type && !(m->type == G_TYPE_DOUBLE && type == G_TYPE_INT64)) {
      g_set_error (error, DRAGOMAN_WS_ERROR, 0, "\"%s\" must be %s", m->name, type_words (m->type));
      return NULL;
    }
  }
  return json_object_ref (msg);
}

/* every member join () and dragoman_booth_handle () read */
static const DragomanWsMember booth_members[] = {
  { "type", G_TYPE_STRING },
  { "token", G_TYPE_STRING },
  { "name", G_TYPE_STRING },
  { "sdp", G_TYPE_STRING },
  { "candidate", G_TYPE_STRING },
  { "sdpMLineIndex", G_TYPE_INT64 },
  { "source", G_TYPE_STRING },
  { "lang", G_TYPE_STRING },
  { "text", G_TYPE_STRING },
  { "value", G_TYPE_BOOLEAN },
  { NULL, 0 },
};

JsonObject *
dragoman_ws_booth_parse (const char *data, gsize len, gboolean joined, GError **error)
{
  JsonObject *msg = dragoman_ws_parse_object (data, len, booth_members, error);
  if (msg && !joined && g_strcmp0 (json_object_get_string_member_with_default (msg, "type", ""), "join") != 0) {
    json_object_unref (msg);
    g_set_error_literal (error, DRAGOMAN_WS_ERROR, 0, "the first message must be {\"type\":\"join\",...}");
    return NULL;
  }
  return msg;
}

/* ---- the session ------------------------------------------------------------------ */

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
  char room_arg[80], booth_arg[80];
  DragomanWsTarget target;
  s->wsi = wsi;
  s->server = server;
  dragoman_outbox_init (&s->out, wsi, MAX_QUEUED);
  s->in = g_string_new (NULL);
  lws_get_peer_simple (wsi, s->address, sizeof s->address);
  dragoman_ws_listen_parse_target (lws_get_urlarg_by_name (wsi, "room=", room_arg, sizeof room_arg),
                                   lws_get_urlarg_by_name (wsi, "booth=", booth_arg, sizeof booth_arg), &target);
  DragomanRoom *room = dragoman_config_valid_id (target.room) ? dragoman_server_find_room (server, target.room) : NULL;
  s->booth = room && dragoman_config_valid_id (target.name) ? dragoman_room_find_booth (room, target.name) : NULL;
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

  g_autoptr (GError) err = NULL;
  g_autoptr (JsonObject) msg = dragoman_ws_booth_parse (s->in->str, s->in->len, s->interpreter != NULL, &err);
  g_string_truncate (s->in, 0);
  if (!msg)
    goto bad_message;
  if (!s->interpreter)
    join (s, msg);
  else
    dragoman_booth_handle (s->booth, s->interpreter, msg);
  return 0;

  /* ERRORS */
bad_message:
  GST_INFO ("booth %s from %s: bad message: %s", s->booth ? dragoman_booth_get_lang (s->booth) : "?", s->address,
            err->message);
  if (!s->interpreter) {
    refuse (s, 4400, "bad-message", err->message);
  } else {
    /* the console stays: an unknown or malformed message is answered and ignored */
    g_autoptr (JsonBuilder) j = json_builder_new ();
    json_builder_begin_object (j);
    json_builder_set_member_name (j, "type");
    json_builder_add_string_value (j, "error");
    json_builder_set_member_name (j, "code");
    json_builder_add_string_value (j, "bad-message");
    json_builder_set_member_name (j, "message");
    json_builder_add_string_value (j, err->message);
    json_builder_end_object (j);
    g_autoptr (JsonNode) root = json_builder_get_root (j);
    g_autofree char *json = json_to_string (root, FALSE);
    dragoman_outbox_push (&s->out, json);
  }
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
