/* publisher — every channel's /ws/listen stream pushed into an nginx + Nchan edge tier.
 *
 * [publish nchan] url = ws://edge:8090/pubws: one WebSocket client connection per
 * room/language to that Nchan publisher location (…?room=R&lang=L), carrying exactly
 * the frames a direct listener gets (binary packets, text state), so Nchan's
 * subscribers on any edge (sharing Redis) see the same stream (docs/deploy.md,
 * configs/nginx-nchan.conf). Each connection is one more, uncounted, listener of its
 * channel's fanout: the fanout's slow-consumer policy covers a stuck edge, and a
 * lost edge costs the channel nothing. Reconnects with backoff (0.1 s doubling to
 * 5 s: `nginx -s reload`, which a certificate renewal does, drops the publisher).
 *
 * Owner: the server (main thread, the socket owner), from after the socket context
 * exists until before the rooms are freed. */
#pragma once
#include "server.h"

struct lws;
enum lws_callback_reasons;

typedef struct _DragomanPublisher DragomanPublisher;

typedef struct {
  const char *room;
  const char *lang;
  gboolean connected;
  guint64 frames;      /* messages handed to the socket */
  guint64 bytes;
  guint64 connects;    /* successful handshakes */
  guint64 failures;    /* connections refused or lost */
  gint64 down_since_us; /* monotonic; 0 while connected */
  const char *error;    /* why it is down (valid until the next call into the publisher) */
} DragomanPublishLinkStats;

/* NULL when the config has no [publish nchan] */
DragomanPublisher *dragoman_publisher_new (DragomanServer *server);
void dragoman_publisher_free (DragomanPublisher *publisher);
/* SIGHUP rotated viewer tokens: a paid room's links reconnect under the new channel id */
void dragoman_publisher_tokens_changed (DragomanPublisher *publisher);
const char *dragoman_publisher_get_url (DragomanPublisher *publisher);
guint dragoman_publisher_n_links (DragomanPublisher *publisher);
void dragoman_publisher_get_link_stats (DragomanPublisher *publisher, guint index, DragomanPublishLinkStats *stats);

/* the lws protocol callback of the publisher's client connections (http.c lists it) */
#define DRAGOMAN_PUBLISHER_PROTOCOL "dragoman-publish"
int dragoman_publisher_callback (struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len);
