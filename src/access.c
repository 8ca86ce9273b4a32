/* access — who may fetch what.
 *
 * Viewer tokens. A room with `viewer-token` (a paid event) serves /ws/listen and its
 * HLS only to requests carrying ?token=: the WebSocket because /ws/listen takes all
 * its parameters from the URL and the listener sends nothing after the upgrade (a
 * first-message token would change the protocol for every client); HLS because a
 * player fetches URLs it reads in playlists and sends no headers we choose: so the
 * playlists of a token room carry the token on every URI in them, and the segments
 * are checked like the playlists. An edge cache keyed on the whole URL (nginx's
 * default proxy_cache_key) keeps working: all viewers share the one URL with the
 * token, a wrong token is another URL that misses and is refused here. Compared in
 * constant time (auth.c), never logged, and a wrong token counts against the
 * address like a wrong booth or admin token: 10 in a minute and it is not even
 * compared any more.
 *
 * CORS. Same-origin by default (no header at all); `[server] cors-origins` lists
 * the origins (scheme://host[:port]) whose pages may fetch the public GET endpoints
 * (/hls, /hls-seg, /api/v1/rooms), or `*` for a public stream embedded anywhere.
 * Never the booth or control sockets: those are WebSockets, outside CORS, and hold
 * their own tokens. */
#include "access.h"

#include <libwebsockets.h>
#include <string.h>

DragomanAccess
dragoman_access_check_viewer (DragomanServer *server, const DragomanRoomConfig *room, const char *given,
                              const char *address)
{
  if (!room->viewer_token)
    return DRAGOMAN_ACCESS_OK;
  if (!given || !*given)
    return DRAGOMAN_ACCESS_MISSING;
  if (!dragoman_auth_allowed (server->viewer_auth, address))
    return DRAGOMAN_ACCESS_THROTTLED;
  if (dragoman_auth_token_equal (room->viewer_token, given))
    return DRAGOMAN_ACCESS_OK;
  dragoman_auth_failed (server->viewer_auth, address);
  return DRAGOMAN_ACCESS_WRONG;
}

const char *
dragoman_access_token_arg (struct lws *wsi, char *out, gsize size)
{
  /* lws copies "name=value" into `out` and returns a pointer to the value */
  return lws_get_urlarg_by_name (wsi, "token=", out, (int)size);
}

char *
dragoman_access_playlist_with_token (const char *playlist, const char *token)
{
  GString *s = g_string_sized_new (strlen (playlist) + 64);
  g_auto (GStrv) lines = g_strsplit (playlist, "\n", -1);
  for (guint i = 0; lines[i]; i++) {
    const char *line = lines[i];
    if (i > 0)
      g_string_append_c (s, '\n');
    if (!*line)
      continue;
    if (*line != '#') { /* a URI line: a media playlist or a segment */
      g_string_append_printf (s, "%s?token=%s", line, token);
      continue;
    }
    /* a tag with URI="..." (EXT-X-MEDIA renditions): the token before the closing quote */
    const char *uri = strstr (line, "URI=\"");
    const char *close = uri ? strchr (uri + 5, '"') : NULL;
    if (close) {
      g_string_append_len (s, line, close - line);
      g_string_append_printf (s, "?token=%s%s", token, close);
    } else {
      g_string_append (s, line);
    }
  }
  return g_string_free (s, FALSE);
}

/* the value of Access-Control-Allow-Origin for this request, or NULL */
static const char *
allowed_origin (DragomanServer *server, struct lws *wsi, char *origin, gsize size)
{
  char **allow = server->config->cors_origins;
  if (!allow || !allow[0])
    return NULL;
  if (g_str_equal (allow[0], "*"))
    return "*";
  if (lws_hdr_copy (wsi, origin, (int)size, WSI_TOKEN_ORIGIN) <= 0)
    return NULL;
  /* origins are case-insensitive in scheme and host; the list is lower case */
  g_autofree char *lower = g_ascii_strdown (origin, -1);
  return g_strv_contains ((const char *const *)allow, lower) ? origin : NULL;
}

static gboolean
vary (DragomanServer *server)
{
  /* the answer differs by Origin only for a list; "*" is the same for everyone */
  char **allow = server->config->cors_origins;
  return allow && allow[0] && !g_str_equal (allow[0], "*");
}

int
dragoman_access_add_cors (DragomanServer *server, struct lws *wsi, unsigned char **p, unsigned char *end)
{
  char origin[256];
  const char *acao = allowed_origin (server, wsi, origin, sizeof origin);
  if (acao && lws_add_http_header_by_name (wsi, (const unsigned char *)"access-control-allow-origin:",
                                           (const unsigned char *)acao, (int)strlen (acao), p, end))
    return 1;
  if (vary (server) &&
      lws_add_http_header_by_name (wsi, (const unsigned char *)"vary:", (const unsigned char *)"Origin", 6, p, end))
    return 1;
  return 0;
}

char *
dragoman_access_cors_text (DragomanServer *server, struct lws *wsi)
{
  char origin[256];
  const char *acao = allowed_origin (server, wsi, origin, sizeof origin);
  return g_strdup_printf ("%s%s%s%s", acao ? "access-control-allow-origin: " : "", acao ? acao : "", acao ? "\r\n" : "",
                          vary (server) ? "vary: Origin\r\n" : "");
}

int
dragoman_access_preflight (DragomanServer *server, struct lws *wsi)
{
  guint8 buf[LWS_PRE + 1024], *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf - 1;
  char origin[256];
  const char *acao = allowed_origin (server, wsi, origin, sizeof origin);
  unsigned status = acao ? HTTP_STATUS_NO_CONTENT : HTTP_STATUS_FORBIDDEN;
  static const char methods[] = "GET, HEAD, OPTIONS";
  /* what hls.js and fetch () may add to a GET; anything else is not allowed */
  static const char headers[] = "Range, If-None-Match, If-Modified-Since, Cache-Control";
  if (lws_add_http_common_headers (wsi, status, "text/plain", 0, &p, end) ||
      dragoman_access_add_cors (server, wsi, &p, end))
    return 1;
  if (acao && (lws_add_http_header_by_name (wsi, (const unsigned char *)"access-control-allow-methods:",
                                            (const unsigned char *)methods, (int)strlen (methods), &p, end) ||
               lws_add_http_header_by_name (wsi, (const unsigned char *)"access-control-allow-headers:",
                                            (const unsigned char *)headers, (int)strlen (headers), &p, end) ||
               /* browsers cap it (Chromium: 2 h); 10 minutes spares a preflight per playlist poll */
               lws_add_http_header_by_name (
                   wsi, (const unsigned char *)"access-control-max-age:", (const unsigned char *)"600", 3, &p, end)))
    return 1;
  if (lws_finalize_write_http_header (wsi, start, &p, end))
    return 1;
  return lws_http_transaction_completed (wsi) ? -1 : 0;
}
