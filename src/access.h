/* access — who may fetch what: a room's viewer token (paid events) and the CORS
 * allow-list for the public GET endpoints. ONLY used from the lws service thread. */
#pragma once
#include "server.h"

struct lws;

typedef enum {
  DRAGOMAN_ACCESS_OK,        /* an open room, or the right token */
  DRAGOMAN_ACCESS_MISSING,   /* the room has a viewer token and none was given */
  DRAGOMAN_ACCESS_WRONG,     /* a token was given and it is not the room's (counted against the address) */
  DRAGOMAN_ACCESS_THROTTLED, /* this address failed too often in the last minute: not even compared */
} DragomanAccess;

/* `given`: the request's ?token= (NULL or "" when absent); `address` the client's */
DragomanAccess dragoman_access_check_viewer (DragomanServer *server, const DragomanRoomConfig *room, const char *given,
                                             const char *address);
/* the request's ?token= into `out` (NULL when absent) */
const char *dragoman_access_token_arg (struct lws *wsi, char *out, gsize size);
/* A token room's playlist with "?token=" on every URI in it (media playlists,
 * renditions, segments), so that hls.js, Safari and an HTTP cache keyed on the full
 * URL carry it without knowing about it. */
char *dragoman_access_playlist_with_token (const char *playlist, const char *token);

/* CORS for the public GET endpoints (/hls, /hls-seg, /api/v1/rooms): adds
 * Access-Control-Allow-Origin for an allowed Origin and Vary: Origin whenever the
 * answer depends on it. Nonzero: no room left in the header buffer. */
int dragoman_access_add_cors (DragomanServer *server, struct lws *wsi, unsigned char **p, unsigned char *end);
/* the same headers as text ("name: value\r\n"...) for lws_serve_http_file () */
char *dragoman_access_cors_text (DragomanServer *server, struct lws *wsi);
/* an OPTIONS preflight: 204 with the allow headers for an allowed origin, 403 otherwise */
int dragoman_access_preflight (DragomanServer *server, struct lws *wsi);
