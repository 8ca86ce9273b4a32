/* ws_listen — /ws/listen?room=R&lang=L: one listener of one channel.
 *
 * Protocol (docs/protocol.md): a text hello, then one binary message per Opus
 * packet straight from the channel's fanout. Unknown room or language: a text
 * {"type":"error"} then close 4404. A binary message from the listener: close 1003.
 * Server full: close 4503. */
#pragma once
#include "fanout.h"
#include "server.h"

struct lws;

typedef struct {
  struct lws *wsi;
  DragomanServer *server;
  DragomanRoom *room;
  DragomanChannel *channel;
  DragomanListener *listener; /* NULL until the hello is out */
  const char *error_code;     /* static string: refuse with this */
  char *error_message;
  guint16 close_code;
  gboolean error_sent;
} DragomanListenSession;

/* The pure part of the open, shared with /ws/booth and fuzzed (tests/fuzz/fuzz_query.c):
 * two URL argument values as lws decoded them (NULL: absent) → each value itself when it
 * is a plain id (dragoman_config_valid_id), else "(invalid)": names go back into JSON and
 * logs. Never truncated: a 20-character language is not looked up as its first 15. */
typedef struct {
  char room[33];
  char name[33]; /* the language (listen) or the booth */
} DragomanWsTarget;
void dragoman_ws_listen_parse_target (const char *room, const char *name, DragomanWsTarget *target);

/* each returns the lws callback's return value (non-zero closes) */
int dragoman_ws_listen_open (DragomanListenSession *s, struct lws *wsi, DragomanServer *server);
int dragoman_ws_listen_writable (DragomanListenSession *s);
int dragoman_ws_listen_receive (DragomanListenSession *s, const void *in, size_t len, gboolean binary);
void dragoman_ws_listen_close (DragomanListenSession *s);
