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

int dragoman_ws_booth_open (DragomanBoothSession *s, struct lws *wsi, DragomanServer *server);
int dragoman_ws_booth_receive (DragomanBoothSession *s, const void *in, size_t len, gboolean binary, gboolean final);
int dragoman_ws_booth_writable (DragomanBoothSession *s);
void dragoman_ws_booth_close (DragomanBoothSession *s);
