/* ws_booth — /ws/booth?room=R&booth=L: an interpreter's console and WebRTC
 * signalling (docs/protocol.md). The token comes in the first message; a wrong
 * one is refused (4401), counted per address and rate-limited. */
#pragma once
#include "booth.h"
#include "outbox.h"
#include "server.h"

struct lws;

typedef struct {
  struct lws *wsi;
  DragomanServer *server;
  DragomanBooth *booth;
  DragomanInterpreter *interpreter; /* NULL until joined */
  DragomanOutbox out;
  GString *in; /* a message being reassembled from fragments */
  char address[64];
} DragomanBoothSession;

#define DRAGOMAN_WS_ERROR (g_quark_from_static_string ("dragoman-ws"))

/* ---- the pure part, fuzzed (tests/fuzz/fuzz_booth.c, fuzz_control.c) ---------- */

/* A member the protocol defines and the GType its value must have: G_TYPE_STRING,
 * G_TYPE_BOOLEAN, G_TYPE_INT64, or G_TYPE_DOUBLE (any number). null is allowed
 * (json-glib reads it as absent); an object or array is not. */
typedef struct {
  const char *name;
  GType type;
} DragomanWsMember;

/* RFC 8259 JSON text, nothing more, nested at most max_depth deep: NULL, or why not.
 * json-glib's parser recurses once per level (a 64 KiB "[[[[..." used about 7.5 of the
 * main thread's 8 MB of stack; 72 000 levels overflowed it) and also takes comments
 * and 'strings', in which a depth count that does not know them loses its place: so
 * the check is the grammar, with the limits skip_string () describes. */
const char *dragoman_ws_json_check (const char *data, gsize len, guint max_depth);
/* One whole text message → a JSON object (a new reference) whose members named in
 * `members` (NULL-terminated) have their types: handlers then never read a member of
 * the wrong type (json-glib answers NULL for a number read as a string, and a NULL
 * type, name, text or candidate crashed the server). Else NULL and a GError for the
 * peer. Shared by the booth and control sessions. */
JsonObject *dragoman_ws_parse_object (const char *data, gsize len, const DragomanWsMember *members, GError **error);
/* a console message: before the join it must be {"type":"join",...} */
JsonObject *dragoman_ws_booth_parse (const char *data, gsize len, gboolean joined, GError **error);

int dragoman_ws_booth_open (DragomanBoothSession *s, struct lws *wsi, DragomanServer *server);
int dragoman_ws_booth_receive (DragomanBoothSession *s, const void *in, size_t len, gboolean binary, gboolean final);
int dragoman_ws_booth_writable (DragomanBoothSession *s);
void dragoman_ws_booth_close (DragomanBoothSession *s);
