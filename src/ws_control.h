/* ws_control — /ws/control: a crew member's control page (docs/protocol.md).
 * Nothing is sent before the admin token arrives in the first message. */
#pragma once
#include "control.h"

struct lws;

typedef struct {
  DragomanCrewMember member;
  DragomanServer *server;
  GString *in;
  gboolean signed_in;
  char address[64];
} DragomanControlSession;

/* The pure part of a crew message, fuzzed (tests/fuzz/fuzz_control.c): one whole text
 * message → its JSON object (a new reference) with every member dragoman_control_handle ()
 * reads of the protocol's type (dragoman_ws_parse_object), the first one an
 * {"type":"auth",...}; else NULL and why. */
JsonObject *dragoman_ws_control_parse (const char *data, gsize len, gboolean signed_in, GError **error);

int dragoman_ws_control_open (DragomanControlSession *s, struct lws *wsi, DragomanServer *server);
int dragoman_ws_control_receive (DragomanControlSession *s, const void *in, size_t len, gboolean binary,
                                 gboolean final);
int dragoman_ws_control_writable (DragomanControlSession *s);
void dragoman_ws_control_close (DragomanControlSession *s);
