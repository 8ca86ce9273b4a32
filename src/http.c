/* http — libwebsockets on the GLib main loop.
 *
 * One lws context, one vhost, the event loop shared with GStreamer's bus watches
 * and our timers: a single thread owns every socket. GStreamer threads hand
 * packets to the fanouts and wake the main loop through a GSource of our own
 * (no fd; see wake_dispatch), whose dispatch serves every fanout.
 *
 * Why not lws_cancel_service(): GLib polls every socket on every main-loop pass
 * (poll() over all fds, then each lws GSource's check: O(listeners)), and with
 * lws 4.1's glib event lib one cancel costs ~4 passes, because the dispatch of
 * its pipe arms lws's idle source, whose callback destroys and re-creates lws's
 * timer source, and each of those signals the context's own wakeup again
 * (perf trace: 6 channels' packets, 8 polls). At 1,000 listeners and 6 channels
 * that was 238 polls/s over 1,000 fds, 11 % of the server's fan-out CPU
 * (docs/performance.md). Our source costs one pass, and a wake already on its
 * way is not sent again (the source is already ready), so packets from several
 * channels that land together share a pass.
 *
 * Routing: static files from web-root at "/", the dynamic endpoints as callback
 * mounts, and every WebSocket on one protocol that dispatches on the path, so
 * browsers need no Sec-WebSocket-Protocol. */
#include "http.h"

#include "access.h"
#include "conncap.h"
#include "metrics.h"
#include "publisher.h"
#include "ws_booth.h"
#include "ws_control.h"
#include "ws_listen.h"

#include <libwebsockets.h>
#include <string.h>

GST_DEBUG_CATEGORY_STATIC (http_debug);
#define GST_CAT_DEFAULT http_debug

typedef enum { WS_NONE, WS_LISTEN, WS_BOOTH, WS_CONTROL } WsKind;

typedef struct {
  WsKind kind;
  union {
    DragomanListenSession listen;
    DragomanBoothSession booth;
    DragomanControlSession control;
  };
} WsSession;

typedef struct {
  guint8 *buf; /* LWS_PRE headroom + body */
  size_t len;
  gboolean head; /* HEAD: headers only */
  gboolean cors; /* a public GET endpoint: CORS headers (access.c) */
} HttpSession;

static DragomanServer *
server_of (struct lws *wsi)
{
  return lws_context_user (lws_get_context (wsi));
}

guint
dragoman_http_headroom (void)
{
  return LWS_PRE;
}

static void
dispatch_all (DragomanServer *server)
{
  for (guint r = 0; r < server->rooms->len; r++) {
    DragomanRoom *room = server->rooms->pdata[r];
    for (guint c = 0; c < dragoman_room_n_channels (room); c++)
      dragoman_fanout_dispatch (dragoman_channel_get_fanout (dragoman_room_get_channel (room, c)));
  }
}

static int
callback_ws (struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
  WsSession *s = user;
  DragomanServer *server;

  switch (reason) {
  /* the connection cap (conncap.c): asked right after accept (wsi is the listening
   * socket, `in` the new descriptor); nonzero makes lws close it unread */
  case LWS_CALLBACK_FILTER_NETWORK_CONNECTION: {
    char address[64];
    if (!dragoman_conncap_peer_of_fd ((int) (lws_intptr_t) in, address, sizeof address))
      return 0;
    return dragoman_conncap_admit (server_of (wsi)->conncap, address) ? 0 : -1;
  }
  case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED: {
    char address[64];
    if (dragoman_conncap_peer_of_fd (lws_get_socket_fd (wsi), address, sizeof address))
      lws_set_opaque_user_data (wsi, dragoman_conncap_open (server_of (wsi)->conncap, address));
    return 0;
  }
  case LWS_CALLBACK_WSI_DESTROY: {
    DragomanConnCapEntry *entry = lws_get_opaque_user_data (wsi);
    if (entry) {
      lws_set_opaque_user_data (wsi, NULL);
      dragoman_conncap_close (server_of (wsi)->conncap, entry);
    }
    return 0;
  }

  case LWS_CALLBACK_ESTABLISHED: {
    char uri[128] = "";
    server = server_of (wsi);
    lws_hdr_copy (wsi, uri, sizeof uri, WSI_TOKEN_GET_URI);
    if (g_str_equal (uri, "/ws/listen")) {
      s->kind = WS_LISTEN;
      return dragoman_ws_listen_open (&s->listen, wsi, server);
    }
    if (g_str_equal (uri, "/ws/booth")) {
      s->kind = WS_BOOTH;
      return dragoman_ws_booth_open (&s->booth, wsi, server);
    }
    if (g_str_equal (uri, "/ws/control")) {
      s->kind = WS_CONTROL;
      return dragoman_ws_control_open (&s->control, wsi, server);
    }
    GST_INFO ("WebSocket to unknown path '%s': closing 4404", uri);
    lws_close_reason (wsi, 4404, (unsigned char *) "no such endpoint", 16);
    return -1;
  }

  case LWS_CALLBACK_SERVER_WRITEABLE:
    if (s->kind == WS_LISTEN)
      return dragoman_ws_listen_writable (&s->listen);
    if (s->kind == WS_BOOTH)
      return dragoman_ws_booth_writable (&s->booth);
    if (s->kind == WS_CONTROL)
      return dragoman_ws_control_writable (&s->control);
    return 0;

  case LWS_CALLBACK_RECEIVE:
    if (s->kind == WS_LISTEN)
      return dragoman_ws_listen_receive (&s->listen, in, len, lws_frame_is_binary (wsi));
    if (s->kind == WS_BOOTH)
      return dragoman_ws_booth_receive (&s->booth, in, len, lws_frame_is_binary (wsi), lws_is_final_fragment (wsi));
    if (s->kind == WS_CONTROL)
      return dragoman_ws_control_receive (&s->control, in, len, lws_frame_is_binary (wsi),
                                          lws_is_final_fragment (wsi));
    return 0;

  case LWS_CALLBACK_CLOSED:
    if (s->kind == WS_LISTEN)
      dragoman_ws_listen_close (&s->listen);
    else if (s->kind == WS_BOOTH)
      dragoman_ws_booth_close (&s->booth);
    else if (s->kind == WS_CONTROL)
      dragoman_ws_control_close (&s->control);
    s->kind = WS_NONE;
    return 0;

  default:
    break;
  }
  /* protocols[0] also serves the static files: without the dummy handler a file
   * response never completes its transaction, and the next request on that
   * keep-alive connection hung for 10 s (seen: style.css after index.html) */
  return lws_callback_http_dummy (wsi, reason, user, in, len);
}

static int
respond_cached (struct lws *wsi, HttpSession *hs, unsigned status, const char *type, char *body,
                const char *cache_control);

static int
respond (struct lws *wsi, HttpSession *hs, unsigned status, const char *type, char *body)
{
  return respond_cached (wsi, hs, status, type, body, "no-store");
}

static int
respond_cached (struct lws *wsi, HttpSession *hs, unsigned status, const char *type, char *body,
                const char *cache_control)
{
  /* the security headers (~450 bytes of CSP and friends) come first */
  guint8 hdr[LWS_PRE + 1536], *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof hdr - 1;
  /* what a cache may keep gets an ETag: a CDN (or nginx's proxy_cache) revalidating
   * a playlist that has not changed gets 304 and no body */
  char etag[16] = "";
  if (status == HTTP_STATUS_OK && !g_str_equal (cache_control, "no-store")) {
    g_snprintf (etag, sizeof etag, "\"%08x\"", g_str_hash (body));
    char inm[64] = "";
    if (lws_hdr_copy (wsi, inm, sizeof inm, WSI_TOKEN_HTTP_IF_NONE_MATCH) > 0 && g_str_equal (inm, etag)) {
      status = HTTP_STATUS_NOT_MODIFIED;
      hs->head = TRUE; /* headers only */
    }
  }
  hs->len = strlen (body);
  hs->buf = g_malloc (LWS_PRE + hs->len);
  memcpy (hs->buf + LWS_PRE, body, hs->len);
  g_free (body);
  if (lws_add_http_common_headers (wsi, status, type, status == HTTP_STATUS_NOT_MODIFIED ? 0 : hs->len, &p, end) ||
      lws_add_http_header_by_name (wsi, (const unsigned char *) "cache-control:", (const unsigned char *) cache_control,
                                   (int) strlen (cache_control), &p, end) ||
      (*etag && lws_add_http_header_by_name (wsi, (const unsigned char *) "etag:", (const unsigned char *) etag,
                                              (int) strlen (etag), &p, end)) ||
      (hs->cors && dragoman_access_add_cors (server_of (wsi), wsi, &p, end)) ||
      lws_finalize_write_http_header (wsi, start, &p, end))
    return 1;
  lws_callback_on_writable (wsi);
  return 0;
}

/* A token room's HLS request: NULL when it may have it, else the refusal's text
 * (never with the token; a wrong one counts against the address, access.c) */
static char *
check_viewer (DragomanServer *server, struct lws *wsi, const DragomanRoomConfig *rc, const char *what)
{
  char arg[160], address[64] = "";
  lws_get_peer_simple (wsi, address, sizeof address);
  switch (dragoman_access_check_viewer (server, rc, dragoman_access_token_arg (wsi, arg, sizeof arg), address)) {
  case DRAGOMAN_ACCESS_OK:
    return NULL;
  case DRAGOMAN_ACCESS_MISSING:
    GST_INFO ("%s request for room %s from %s refused: no viewer token", what, rc->id, address);
    return g_strdup_printf ("token-required: room '%s' needs a viewer token (?token=...)\n", rc->id);
  case DRAGOMAN_ACCESS_WRONG:
    GST_WARNING ("%s request for room %s from %s refused: wrong viewer token", what, rc->id, address);
    return g_strdup_printf ("bad-token: wrong viewer token for room '%s'\n", rc->id);
  case DRAGOMAN_ACCESS_THROTTLED:
  default:
    GST_WARNING ("%s request for room %s from %s refused: too many wrong tokens", what, rc->id, address);
    return g_strdup ("too-many-attempts: too many wrong tokens from this address: wait a minute\n");
  }
}

/* /hls-seg/ROOM/NAME-NNNNN.ts: by callback, not a file mount, so that a token room's
 * segments are checked like its playlists. Segments never change once written: any
 * cache may keep them a year (an edge keys on the whole URL, token included). */
static int
serve_segment (struct lws *wsi, HttpSession *hs, DragomanServer *server, const char *rest)
{
  g_auto (GStrv) parts = g_strsplit (rest, "/", 3);
  DragomanRoom *room = parts[0] && dragoman_config_valid_id (parts[0]) ? dragoman_server_find_room (server, parts[0])
                                                                       : NULL;
  DragomanHls *hls = room ? dragoman_room_get_hls (room) : NULL;
  const char *file = hls && parts[1] && !parts[2] ? parts[1] : NULL;
  /* our names only: letters, digits, '-', '_' and one ".ts": no way out of the directory */
  gsize stem = file ? strspn (file, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") : 0;
  if (!file || stem == 0 || !g_str_equal (file + stem, ".ts"))
    return respond (wsi, hs, HTTP_STATUS_NOT_FOUND, "text/plain", g_strdup ("no such segment\n"));
  const DragomanRoomConfig *rc = dragoman_room_get_config (room);
  char *refusal = rc->viewer_token ? check_viewer (server, wsi, rc, "HLS segment") : NULL;
  if (refusal)
    return respond (wsi, hs, HTTP_STATUS_FORBIDDEN, "text/plain", refusal);
  g_autofree char *path = g_build_filename (dragoman_hls_get_dir (hls), file, NULL);
  if (!g_file_test (path, G_FILE_TEST_IS_REGULAR)) /* expired from the window */
    return respond (wsi, hs, HTTP_STATUS_NOT_FOUND, "text/plain", g_strdup ("no such segment\n"));
  g_autofree char *cors = hs->cors ? dragoman_access_cors_text (server, wsi) : g_strdup ("");
  g_autofree char *headers = g_strdup_printf ("cache-control: public, max-age=31536000\r\n%s", cors);
  int n = lws_serve_http_file (wsi, path, "video/mp2t", headers, (int) strlen (headers));
  return n < 0 || (n > 0 && lws_http_transaction_completed (wsi)) ? -1 : 0;
}

static int
callback_http (struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
  HttpSession *hs = user;
  switch (reason) {
  case LWS_CALLBACK_HTTP: {
    DragomanServer *server = server_of (wsi);
    char uri[128] = "";
    if (lws_hdr_copy (wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0 &&
        lws_hdr_copy (wsi, uri, sizeof uri, WSI_TOKEN_HEAD_URI) <= 0) /* load balancers check with HEAD */
      lws_hdr_copy (wsi, uri, sizeof uri, WSI_TOKEN_OPTIONS_URI);     /* CORS preflights */
    hs->head = lws_hdr_total_length (wsi, WSI_TOKEN_HEAD_URI) > 0;
    /* the GET endpoints other sites' pages may use (never the booth or control APIs) */
    hs->cors = g_str_has_prefix (uri, "/hls/") || g_str_has_prefix (uri, "/hls-seg/") ||
               g_str_equal (uri, "/api/v1/rooms");
    if (lws_hdr_total_length (wsi, WSI_TOKEN_OPTIONS_URI) > 0) {
      if (hs->cors)
        return dragoman_access_preflight (server, wsi);
      return respond (wsi, hs, HTTP_STATUS_NOT_FOUND, "text/plain", g_strdup ("not found\n"));
    }
    if (g_str_equal (uri, "/healthz")) {
      gboolean ok = dragoman_metrics_healthy (server);
      return respond (wsi, hs, ok ? HTTP_STATUS_OK : HTTP_STATUS_SERVICE_UNAVAILABLE, "text/plain",
                      g_strdup (ok ? "ok\n" : "starting or failed\n"));
    }
    if (g_str_equal (uri, "/metrics"))
      return respond (wsi, hs, HTTP_STATUS_OK, "text/plain; version=0.0.4", dragoman_metrics_prometheus (server));
    if (g_str_equal (uri, "/api/v1/rooms"))
      return respond (wsi, hs, HTTP_STATUS_OK, "application/json", dragoman_metrics_rooms_json (server));
    if (g_str_has_prefix (uri, "/hls/")) {
      /* /hls/ROOM/NAME.m3u8: playlists from memory; a second of cache lets a CDN
       * collapse requests while players still see every new segment */
      g_auto (GStrv) parts = g_strsplit (uri + 5, "/", 3);
      DragomanRoom *room = parts[0] && dragoman_config_valid_id (parts[0]) ? dragoman_server_find_room (server, parts[0])
                                                                           : NULL;
      DragomanHls *hls = room ? dragoman_room_get_hls (room) : NULL;
      const char *pl = hls && parts[1] && !parts[2] ? dragoman_hls_get_playlist (hls, parts[1]) : NULL;
      if (!pl)
        return respond (wsi, hs, HTTP_STATUS_NOT_FOUND, "text/plain", g_strdup ("no such playlist\n"));
      const DragomanRoomConfig *rc = dragoman_room_get_config (room);
      if (rc->viewer_token) {
        char *refusal = check_viewer (server, wsi, rc, "HLS");
        if (refusal)
          return respond (wsi, hs, HTTP_STATUS_FORBIDDEN, "text/plain", refusal);
        return respond_cached (wsi, hs, HTTP_STATUS_OK, "application/vnd.apple.mpegurl",
                               dragoman_access_playlist_with_token (pl, rc->viewer_token), "max-age=1");
      }
      return respond_cached (wsi, hs, HTTP_STATUS_OK, "application/vnd.apple.mpegurl", g_strdup (pl), "max-age=1");
    }
    if (g_str_has_prefix (uri, "/hls-seg/"))
      return serve_segment (wsi, hs, server, uri + 9);
    if (g_str_equal (uri, "/booth") || g_str_equal (uri, "/control")) {
      /* served here, not by a file mount, so that /booth?room=..&booth=.. keeps its
       * query (a mount redirects to /booth/ and drops it); assets load from / */
      g_autofree char *path = g_strdup_printf ("%s%s.html", server->config->web_root, uri);
      int n = lws_serve_http_file (wsi, path, "text/html", NULL, 0);
      return n < 0 || (n > 0 && lws_http_transaction_completed (wsi)) ? -1 : 0;
    }
    return respond (wsi, hs, HTTP_STATUS_NOT_FOUND, "text/plain", g_strdup ("not found\n"));
  }
  case LWS_CALLBACK_HTTP_WRITEABLE:
    if (!hs->buf)
      break;
    if (!hs->head && lws_write (wsi, hs->buf + LWS_PRE, hs->len, LWS_WRITE_HTTP_FINAL) < (int) hs->len)
      return 1;
    g_clear_pointer (&hs->buf, g_free);
    return lws_http_transaction_completed (wsi) ? -1 : 0;
  case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
  case LWS_CALLBACK_CLOSED_HTTP:
    if (hs)
      g_clear_pointer (&hs->buf, g_free);
    break;
  default:
    break;
  }
  return lws_callback_http_dummy (wsi, reason, user, in, len);
}

/* Listeners send nothing but a close: a small rx buffer keeps each connection
 * light (DESIGN.md: 2.8 KiB per listener with 256 bytes vs 5.6 KiB with 4096).
 * tx_packet_size: without it lws cuts every send() at rx_buffer_size + LWS_PRE + 4
 * (276 bytes) and buffers the rest (an allocation, and another send on the next
 * WRITEABLE): a coalesced batch (ws_listen.c) or a booth's state message would go
 * out in pieces. 8 KiB holds the largest batch; it is a limit, nothing is
 * allocated for it. */
static const struct lws_protocols protocols[] = {
  { "dragoman-ws", callback_ws, sizeof (WsSession), 256, 0, NULL, 8192 },
  { "dragoman-http", callback_http, sizeof (HttpSession), 0, 0, NULL, 0 },
  /* client connections to an Nchan edge (publisher.c): each wsi's user data is its link */
  { DRAGOMAN_PUBLISHER_PROTOCOL, dragoman_publisher_callback, 0, 512, 0, NULL, 0 },
  { NULL, NULL, 0, 0, 0, NULL, 0 },
};

static const struct lws_protocol_vhost_options header_referrer = { NULL, NULL, "referrer-policy:", "no-referrer" };
static const struct lws_protocol_vhost_options header_frame = { &header_referrer, NULL, "x-frame-options:", "DENY" };
static const struct lws_protocol_vhost_options header_sniff = { &header_frame, NULL, "x-content-type-options:",
                                                                "nosniff" };
/* no inline script or style anywhere; media from blob: is hls.js's MediaSource */
static const struct lws_protocol_vhost_options header_csp = {
  &header_sniff, NULL, "content-security-policy:",
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
  "connect-src 'self' ws: wss:; media-src 'self' blob:; worker-src 'self' blob:; frame-ancestors 'none'; "
  "base-uri 'none'; form-action 'self'"
};

static const struct lws_protocol_vhost_options mime_ts = { NULL, NULL, ".ts", "video/mp2t" };
static const struct lws_protocol_vhost_options mime_mjs = { &mime_ts, NULL, ".mjs", "text/javascript" };
static const struct lws_protocol_vhost_options mime_json = { &mime_mjs, NULL, ".json", "application/json" };
static const struct lws_protocol_vhost_options mime_wasm = { &mime_json, NULL, ".wasm", "application/wasm" };

#define CALLBACK_MOUNT(next, point)                                                                                    \
  { .mount_next = next, .mountpoint = point, .origin = "dragoman-http", .origin_protocol = LWSMPRO_CALLBACK,          \
    .mountpoint_len = sizeof (point) - 1 }

static struct lws_http_mount mount_web = { .mountpoint = "/", .def = "index.html", .origin_protocol = LWSMPRO_FILE,
                                           .mountpoint_len = 1, .extra_mimetypes = &mime_wasm };
/* HLS segments (serve_segment) and playlists by callback: a token room checks both */
static const struct lws_http_mount mount_segments = CALLBACK_MOUNT (&mount_web, "/hls-seg");
/* third-party browser code, installed by npm (web/package.json), never copied in:
 * /vendor/hls/hls.min.js is node_modules/hls.js/dist/hls.min.js */
static struct lws_http_mount mount_hlsjs = { .mount_next = &mount_segments, .mountpoint = "/vendor/hls",
                                             .origin_protocol = LWSMPRO_FILE, .mountpoint_len = 11,
                                             .extra_mimetypes = &mime_wasm, .cache_max_age = 3600,
                                             .cache_reusable = 1 };
static const struct lws_http_mount mount_ws = { .mount_next = &mount_hlsjs, .mountpoint = "/ws", .origin = "dragoman-ws",
                                                .origin_protocol = LWSMPRO_CALLBACK, .mountpoint_len = 3 };
static const struct lws_http_mount mount_metrics = CALLBACK_MOUNT (&mount_ws, "/metrics");
static const struct lws_http_mount mount_health = CALLBACK_MOUNT (&mount_metrics, "/healthz");
static const struct lws_http_mount mount_booth = CALLBACK_MOUNT (&mount_health, "/booth");
static const struct lws_http_mount mount_control = CALLBACK_MOUNT (&mount_booth, "/control");
static const struct lws_http_mount mount_hls = CALLBACK_MOUNT (&mount_control, "/hls");
static const struct lws_http_mount mount_api = CALLBACK_MOUNT (&mount_hls, "/api");
/* web-root holds the npm install too: none of it is served, but for what a page
 * needs, mounted by name (none yet) */
static const struct lws_http_mount mount_no_modules = CALLBACK_MOUNT (&mount_api, "/node_modules");
static const struct lws_http_mount mount_no_package = CALLBACK_MOUNT (&mount_no_modules, "/package.json");
static const struct lws_http_mount mount_no_lock = CALLBACK_MOUNT (&mount_no_package, "/package-lock.json");

/* The fan-out's wake-up: a GSource without file descriptors, made ready from any
 * thread with g_source_set_ready_time (0), which takes the context's lock and
 * signals its wakeup only if the source was not ready already: packets of
 * several channels that land before the main thread runs share one pass. The
 * dispatch re-arms it (-1) before reading the inboxes, so a packet pushed during
 * a pass wakes another one; none waits for the next channel's packet. No fd on
 * purpose: GLib 2.74 takes a dispatched source's fds out of the poll set and puts
 * them back (block_source), and each of those signals the context's wakeup, so
 * an fd source (an eventfd watch, lws's cancel pipe) costs a second, empty pass. */
static gboolean
wake_dispatch (GSource *source, GSourceFunc callback, gpointer data)
{
  (void) callback;
  g_source_set_ready_time (source, -1); /* the source is blocked while dispatched: no wakeup */
  dispatch_all (data);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs wake_funcs = { .dispatch = wake_dispatch };

/* any thread: the packet is in the fanout's inbox */
static void
wake (gpointer data)
{
  g_source_set_ready_time (data, 0);
}

gboolean
dragoman_http_start (DragomanServer *server, GError **error)
{
  if (!http_debug)
    GST_DEBUG_CATEGORY_INIT (http_debug, "dragoman-http", 0, "dragoman HTTP and WebSocket");
  lws_set_log_level (LLL_ERR | LLL_WARN, NULL);

  mount_web.origin = server->config->web_root;
  g_free (server->hlsjs_dir);
  server->hlsjs_dir = g_build_filename (server->config->web_root, "node_modules", "hls.js", "dist", NULL);
  mount_hlsjs.origin = server->hlsjs_dir;
  void *loops[] = { server->loop, NULL };
  struct lws_context_creation_info info = { 0 };
  info.options = LWS_SERVER_OPTION_GLIB | LWS_SERVER_OPTION_VALIDATE_UTF8;
  /* our own security headers on every response, not lws's fixed best-practice set:
   * that one has no media-src, so its default-src 'none' blocked hls.js's blob:
   * MediaSource (Watch mode) and Safari's own HLS player */
  info.headers = &header_csp;
  info.foreign_loops = loops;
  info.port = server->config->port;
  info.iface = server->config->address;
  info.protocols = protocols;
  info.mounts = &mount_no_lock;
  info.user = server;
  info.vhost_name = "dragoman";
  info.server_string = "dragoman";
  /* the connection cap refuses (counted, logged) before lws's own descriptor limit
   * would silently stop accepting; 256 more for pipelines, files and the listening socket */
  server->conncap = dragoman_conncap_new ((guint) server->config->max_connections,
                                          (guint) server->config->max_connections_per_address);
  info.fd_limit_per_thread = 1 + (unsigned) server->config->max_connections + 256;
  info.timeout_secs = 10;
  if (server->config->tls_cert) {
    info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.ssl_cert_filepath = server->config->tls_cert;
    info.ssl_private_key_filepath = server->config->tls_key;
    /* HTTP/1.1 only: over h2 a browser multiplexes every WebSocket of a page onto one
     * TCP socket, and the fan-out's per-listener SO_SNDBUF and slow-listener limits
     * (fanout.c) work per socket; lws 4.1's h2 also cut HEAD answers short (curl) */
    info.alpn = "http/1.1";
    /* someone typing http://host:port gets a redirect to https://host:port/, not a TLS
     * alert they cannot read (lws redirects to the front page, without the path) */
    if (server->config->redirect_http)
      info.options |= LWS_SERVER_OPTION_ALLOW_NON_SSL_ON_SSL_PORT | LWS_SERVER_OPTION_REDIRECT_HTTP_TO_HTTPS;
  }
  /* a wss:// publisher needs OpenSSL set up even when we serve plain HTTP */
  if (server->config->publish && g_str_has_prefix (server->config->publish->url, "wss://"))
    info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
  server->lws = lws_create_context (&info);
  if (!server->lws) {
    g_set_error (error, DRAGOMAN_CONFIG_ERROR, 3, "cannot listen on %s:%d (%s; see the lines above)",
                 server->config->address, server->config->port,
                 server->config->tls_cert ? "port in use, or the TLS certificate and key do not load or match"
                                          : "port in use?");
    return FALSE;
  }
  /* the default priority, as lws's sockets: a higher one would put sockets ready in
   * the same pass off to a pass of their own, O(listeners) again */
  server->wake = g_source_new (&wake_funcs, sizeof (GSource));
  g_source_set_callback (server->wake, NULL, server, NULL); /* the data wake_dispatch gets */
  g_source_set_name (server->wake, "dragoman fan-out");
  g_source_attach (server->wake, g_main_loop_get_context (server->loop));
  for (guint r = 0; r < server->rooms->len; r++) {
    DragomanRoom *room = server->rooms->pdata[r];
    for (guint c = 0; c < dragoman_room_n_channels (room); c++)
      dragoman_fanout_set_wakeup (dragoman_channel_get_fanout (dragoman_room_get_channel (room, c)), wake,
                                  server->wake);
  }
  return TRUE;
}

void
dragoman_http_stop (DragomanServer *server)
{
  for (guint r = 0; r < server->rooms->len; r++) {
    DragomanRoom *room = server->rooms->pdata[r];
    for (guint c = 0; c < dragoman_room_n_channels (room); c++)
      dragoman_fanout_set_wakeup (dragoman_channel_get_fanout (dragoman_room_get_channel (room, c)), NULL, NULL);
  }
  g_clear_pointer (&server->lws, lws_context_destroy);
  if (server->wake)
    g_source_destroy (server->wake);
  g_clear_pointer (&server->wake, g_source_unref);
  g_clear_pointer (&server->conncap, dragoman_conncap_free); /* after: closing sockets uncount themselves */
  g_clear_pointer (&server->hlsjs_dir, g_free);
}
