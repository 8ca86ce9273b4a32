/* metrics — the read-only views of the server: /metrics (Prometheus text),
 * /api/v1/rooms (public JSON) and /healthz. Main thread only. */
#pragma once
#include "server.h"

char *dragoman_metrics_prometheus (DragomanServer *server);
char *dragoman_metrics_rooms_json (DragomanServer *server);
gboolean dragoman_metrics_healthy (DragomanServer *server);
