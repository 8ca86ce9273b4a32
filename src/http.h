/* http — the libwebsockets context on the GLib main loop: static pages, the JSON
 * and metrics endpoints, and the WebSocket endpoints dispatched by path. */
#pragma once
#include "server.h"

gboolean dragoman_http_start (DragomanServer *server, GError **error);
void dragoman_http_stop (DragomanServer *server);
/* bytes every fanout slot reserves in front of a message for the frame header */
guint dragoman_http_headroom (void);
