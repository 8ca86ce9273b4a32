/* server — the process: configuration, rooms and the one socket owner.
 *
 * Everything here is ONLY read or written from the main thread, which runs the
 * GLib main loop and, on it, libwebsockets' service. */
#pragma once
#include "auth.h"
#include "heaptrim.h"
#include "config.h"
#include "room.h"

#define DRAGOMAN_VERSION "0.1.0"

struct lws_context;
typedef struct _DragomanControl DragomanControl;
typedef struct _DragomanPublisher DragomanPublisher;
typedef struct _DragomanConnCap DragomanConnCap;

typedef struct {
  guint64 refused_full;     /* listeners refused at max-listeners */
  guint64 refused_unknown;  /* unknown room or language */
  guint64 protocol_errors;  /* binary/oversized messages from listeners */
  guint64 refused_token;    /* listeners refused: a token room without the right viewer token */
} DragomanServerCounters;

typedef struct {
  DragomanConfig *config;
  GPtrArray *rooms; /* DragomanRoom* */
  struct lws_context *lws;
  GMainLoop *loop;
  gint64 started_us; /* g_get_monotonic_time () at start */
  guint listeners;   /* WebSocket listeners, all rooms */
  DragomanAuthLimiter *auth;        /* booth and control tokens */
  DragomanAuthLimiter *viewer_auth; /* viewer tokens: its own budget (auth.h) */
  DragomanControl *control;
  DragomanPublisher *publisher; /* NULL: no [publish nchan] */
  DragomanHeapTrim *heaptrim;
  gboolean stopping; /* rooms are being torn down: sessions must not touch them */
  char *hlsjs_dir;   /* web-root/node_modules/hls.js/dist, mounted at /vendor/hls */
  DragomanServerCounters counters;
  GSource *wake; /* the fan-out's wake-up (http.c): made ready from streaming threads */
  DragomanConnCap *conncap; /* open sockets by client address (http.c) */
} DragomanServer;

DragomanRoom *dragoman_server_find_room (DragomanServer *server, const char *id);
