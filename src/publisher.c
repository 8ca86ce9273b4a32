#include "publisher.h"

#include "channel.h"
#include "fanout.h"

#include <gst/gst.h>
#include <libwebsockets.h>
#include <string.h>

GST_DEBUG_CATEGORY_STATIC (publish_debug);
#define GST_CAT_DEFAULT publish_debug

/* Reconnect after 0.1 s, doubling to 5 s: an `nginx -s reload` (a certificate
 * renewal) drops the publisher and nginx is back within milliseconds, so the
 * first retry should be quick; an edge that is down for good costs one attempt
 * every 5 s per channel. */
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 5000

/* Nchan has no per-connection hello: a listener that joins an edge gets the last
 * 3 messages (nchan_subscriber_first_message -3) and the channel's state only
 * when it changes. Repeating the state every 2 s (one text message per 100
 * packets at 20 ms) lets a late joiner's page learn it within 2 s. */
#define STATE_REPEAT_US (2 * G_USEC_PER_SEC)

typedef struct {
  DragomanPublisher *pub;
  DragomanChannel *channel;
  DragomanFanout *fanout;
  char *room, *lang;
  const DragomanRoomConfig *rc;
  char *path; /* "/pubws?room=R&lang=L[&token=T]": made at each connect */
  char *token; /* the viewer token `path` was made with (NULL: an open room) */
  struct lws *wsi;
  DragomanListener *listener;
  guint8 *buf; /* LWS_PRE + one message: lws masks a client's payload in place */
  gsize buf_size;
  guint backoff_ms;
  guint retry_source;
  gint64 state_sent_us;
  gboolean connected;
  guint attempts; /* failed attempts since the link was last up, for the log */
  char error[400];
  guint32 last_seq; /* of the last packet sent; a jump gets the discontinuity flag */
  gboolean sent_any;
  DragomanPublishLinkStats stats;
} Link;

struct _DragomanPublisher {
  DragomanServer *server;
  char *url;
  char *address; /* the parts of url */
  char *host;    /* Host header: address[:port] */
  char *base_path;
  int port;
  gboolean tls;
  GPtrArray *links; /* Link* */
};

static void link_connect (Link *l);

static gboolean
retry_cb (gpointer data)
{
  Link *l = data;
  l->retry_source = 0;
  link_connect (l);
  return G_SOURCE_REMOVE;
}

static void
link_down (Link *l, const char *why)
{
  if (l->listener) {
    dragoman_fanout_remove (l->fanout, l->listener);
    l->listener = NULL;
  }
  l->wsi = NULL;
  l->stats.failures++;
  g_strlcpy (l->error, why, sizeof l->error);
  l->stats.error = l->error;
  if (l->connected || l->attempts == 0) {
    /* once per outage, not once per attempt: an edge that is down for an hour
     * would otherwise log 720 lines per channel */
    g_printerr ("dragoman: publish %s/%s to %s: %s; retrying every %.1f..%.0f s\n", l->room, l->lang,
                l->pub->url, why, BACKOFF_FIRST_MS / 1000.0, BACKOFF_MAX_MS / 1000.0);
    l->stats.down_since_us = g_get_monotonic_time ();
  }
  l->connected = FALSE;
  l->stats.connected = FALSE;
  l->attempts++;
  if (!l->retry_source)
    l->retry_source = g_timeout_add (l->backoff_ms, retry_cb, l);
  l->backoff_ms = MIN (l->backoff_ms * 2, BACKOFF_MAX_MS);
}

static void
link_connect (Link *l)
{
  DragomanPublisher *p = l->pub;
  struct lws_client_connect_info ci = { 0 };
  ci.context = p->server->lws;
  ci.address = p->address;
  ci.port = p->port;
  /* A paid room's channel id at the edge includes its viewer token
   * (configs/nginx-nchan.conf: "$arg_room/$arg_lang/$arg_token"), so a listener
   * who does not send the right ?token= asks for a channel that does not exist
   * and Nchan refuses it (403): the edge checks the token without calling us. */
  g_free (l->token);
  l->token = g_strdup (l->rc->viewer_token);
  g_free (l->path);
  l->path = l->token ? g_strdup_printf ("%s?room=%s&lang=%s&token=%s", p->base_path, l->room, l->lang, l->token)
                     : g_strdup_printf ("%s?room=%s&lang=%s", p->base_path, l->room, l->lang);
  ci.path = l->path;
  ci.host = p->host;
  ci.origin = p->host;
  ci.local_protocol_name = DRAGOMAN_PUBLISHER_PROTOCOL;
  ci.userdata = l;
  ci.pwsi = &l->wsi;
  if (p->tls)
    ci.ssl_connection = LCCSCF_USE_SSL | (p->server->config->publish->tls_insecure
                                              ? LCCSCF_ALLOW_SELFSIGNED | LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK
                                              : 0);
  /* a connection error may already have called back (link_down) inside this call */
  if (!lws_client_connect_via_info (&ci) && !l->retry_source)
    link_down (l, "cannot start a connection");
}

/* fanout → the edge. The fanout's bytes are shared by every listener and lws
 * masks a client's payload in place (RFC 6455 5.3), so the publisher writes from
 * its own copy: one memcpy of ~100 bytes per packet per channel. */
static DragomanWriteResult
write_message (Link *l, const guint8 *data, gsize len, enum lws_write_protocol kind, guint8 add_flags)
{
  if (LWS_PRE + len > l->buf_size) {
    l->buf_size = LWS_PRE + len;
    l->buf = g_realloc (l->buf, l->buf_size);
  }
  memcpy (l->buf + LWS_PRE, data, len);
  l->buf[LWS_PRE + 1] |= add_flags;
  if (lws_write (l->wsi, l->buf + LWS_PRE, len, kind) < (int) len)
    return DRAGOMAN_WRITE_FAILED;
  l->stats.frames++;
  l->stats.bytes += len;
  return lws_partial_buffered (l->wsi) ? DRAGOMAN_WRITE_CHOKED : DRAGOMAN_WRITE_OK;
}

static DragomanWriteResult
sink_write_text (gpointer sink, guint8 *data, gsize len)
{
  Link *l = sink;
  l->state_sent_us = g_get_monotonic_time ();
  return write_message (l, data, len, LWS_WRITE_TEXT, 0);
}

static DragomanWriteResult
sink_write (gpointer sink, guint8 *data, gsize len)
{
  Link *l = sink;
  guint32 seq;
  memcpy (&seq, data + 4, sizeof seq);
  seq = GUINT32_FROM_BE (seq);
  /* packets made while the link was down never reached the edge: its listeners
   * must see the jump flagged, as on a direct socket (docs/protocol.md); on our
   * copy only, the fanout's bytes are shared */
  gboolean jump = l->sent_any && seq != l->last_seq + 1;
  l->last_seq = seq;
  l->sent_any = TRUE;
  DragomanWriteResult r = write_message (l, data, len, LWS_WRITE_BINARY, jump ? DRAGOMAN_FLAG_DISCONT : 0);
  /* the state goes after a packet the socket took whole: lws refuses a write
   * while part of the previous one is still buffered */
  if (r == DRAGOMAN_WRITE_OK && g_get_monotonic_time () - l->state_sent_us >= STATE_REPEAT_US) {
    g_autofree char *json =
      g_strdup_printf ("{\"type\":\"state\",\"room\":\"%s\",\"lang\":\"%s\",\"state\":\"%s\"}", l->room, l->lang,
                       dragoman_channel_mode_name (dragoman_channel_get_mode (l->channel)));
    r = sink_write_text (l, (guint8 *) json, strlen (json));
  }
  return r;
}

static void
sink_request_writable (gpointer sink)
{
  Link *l = sink;
  lws_callback_on_writable (l->wsi);
}

static void
sink_close (gpointer sink, guint16 code, const char *reason)
{
  Link *l = sink;
  g_printerr ("dragoman: publish %s/%s: the edge took nothing for too long (%s): reconnecting\n", l->room, l->lang,
              reason);
  lws_close_reason (l->wsi, code, (unsigned char *) reason, strlen (reason));
  lws_set_timeout (l->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

static const DragomanSinkFuncs sink_funcs = { sink_write, sink_write_text, sink_request_writable, sink_close };

int
dragoman_publisher_callback (struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
  Link *l = user;
  if (!l) /* the publisher is gone (shutdown): lws is closing what is left */
    return reason == LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER ? -1 : 0;

  switch (reason) {
  case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
    const char *token = l->pub->server->config->publish->token;
    if (token) {
      unsigned char **p = in, *end = *p + len;
      g_autofree char *value = g_strdup_printf ("Bearer %s", token);
      if (lws_add_http_header_by_token (wsi, WSI_TOKEN_HTTP_AUTHORIZATION, (unsigned char *) value,
                                        (int) strlen (value), p, end))
        return -1;
    }
    return 0;
  }

  case LWS_CALLBACK_CLIENT_ESTABLISHED:
    l->wsi = wsi;
    l->connected = TRUE;
    l->stats.connected = TRUE;
    l->stats.connects++;
    if (l->attempts)
      g_print ("dragoman: publish %s/%s to %s: up (after %u failed attempt%s, %.1f s)\n", l->room, l->lang,
               l->pub->url, l->attempts, l->attempts == 1 ? "" : "s",
               (g_get_monotonic_time () - l->stats.down_since_us) / 1e6);
    l->attempts = 0;
    l->stats.down_since_us = 0;
    l->stats.error = NULL;
    l->backoff_ms = BACKOFF_FIRST_MS;
    l->state_sent_us = 0; /* the state goes out with the first packet */
    /* the join burst (60 ms) holds packets made while the link was down, which
     * the edge never had; its listeners see the outage as a sequence gap */
    l->listener = dragoman_fanout_add_full (l->fanout, &sink_funcs, l, FALSE);
    return 0;

  case LWS_CALLBACK_CLIENT_WRITEABLE:
    if (l->listener)
      dragoman_fanout_writable (l->fanout, l->listener);
    return 0;

  case LWS_CALLBACK_CLIENT_RECEIVE:
    /* a /pubws location that is also a subscriber of a dummy channel says
     * nothing; a plain publisher answers each message with a status text */
    return 0;

  case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
    g_autofree char *lws_why = g_strndup (in ? (const char *) in : "?", in ? MIN (len ? len : strlen (in), 200) : 1);
    /* lws says only "connect SSL err 1" when the edge's certificate is refused */
    gboolean tls = g_str_has_prefix (l->pub->url, "wss:") && (strstr (lws_why, "SSL") || strstr (lws_why, "ssl"));
    g_autofree char *why = g_strdup_printf (
        "cannot connect (%s)%s", lws_why,
        tls ? ": the edge's TLS certificate was not accepted (untrusted, expired or for another host name); "
              "give the edge a trusted one, or set [publish nchan] tls-insecure = true for a self-signed one on a LAN"
            : "");
    link_down (l, why);
    return 0;
  }

  case LWS_CALLBACK_CLIENT_CLOSED:
    link_down (l, "connection closed by the edge");
    return 0;

  default:
    break;
  }
  return 0;
}

DragomanPublisher *
dragoman_publisher_new (DragomanServer *server)
{
  const DragomanPublishConfig *pc = server->config->publish;
  if (!pc)
    return NULL;
  if (!publish_debug)
    GST_DEBUG_CATEGORY_INIT (publish_debug, "dragoman-publish", 0, "dragoman Nchan publisher");

  DragomanPublisher *p = g_new0 (DragomanPublisher, 1);
  p->server = server;
  p->url = g_strdup (pc->url);
  /* lws_parse_uri cuts its argument up in place */
  g_autofree char *copy = g_strdup (pc->url);
  const char *prot = NULL, *ads = NULL, *path = NULL;
  int port = 0;
  if (lws_parse_uri (copy, &prot, &ads, &port, &path))
    g_warn_if_reached (); /* config.c checked the scheme */
  p->tls = g_str_equal (prot, "wss");
  p->address = g_strdup (ads);
  p->port = port;
  p->host = (port == (p->tls ? 443 : 80)) ? g_strdup (ads) : g_strdup_printf ("%s:%d", ads, port);
  p->base_path = g_strdup_printf ("/%s", path);
  p->links = g_ptr_array_new ();
  for (guint r = 0; r < server->rooms->len; r++) {
    DragomanRoom *room = server->rooms->pdata[r];
    for (guint c = 0; c < dragoman_room_n_channels (room); c++) {
      Link *l = g_new0 (Link, 1);
      l->pub = p;
      l->channel = dragoman_room_get_channel (room, c);
      l->fanout = dragoman_channel_get_fanout (l->channel);
      l->rc = dragoman_room_get_config (room);
      l->room = g_strdup (l->rc->id);
      l->lang = g_strdup (dragoman_channel_get_lang (l->channel));
      l->stats.room = l->room;
      l->stats.lang = l->lang;
      /* ids are [A-Za-z0-9_-], viewer tokens URL-safe (config.c): nothing to escape */
      l->backoff_ms = BACKOFF_FIRST_MS;
      l->stats.down_since_us = g_get_monotonic_time ();
      l->stats.error = "connecting";
      g_ptr_array_add (p->links, l);
    }
  }
  g_print ("dragoman: publishing %u channel(s) to %s%s\n", p->links->len, p->url, pc->token ? " (with a token)" : "");
  for (guint i = 0; i < p->links->len; i++)
    link_connect (p->links->pdata[i]);
  return p;
}

void
dragoman_publisher_free (DragomanPublisher *p)
{
  if (!p)
    return;
  for (guint i = 0; i < p->links->len; i++) {
    Link *l = p->links->pdata[i];
    if (l->retry_source)
      g_source_remove (l->retry_source);
    if (l->listener)
      dragoman_fanout_remove (l->fanout, l->listener);
    if (l->wsi) {
      /* lws closes the socket when the context goes (after us): it must not
       * call back into a freed link */
      lws_set_wsi_user (l->wsi, NULL);
      lws_set_timeout (l->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
    g_free (l->room);
    g_free (l->lang);
    g_free (l->path);
    g_free (l->token);
    g_free (l->buf);
    g_free (l);
  }
  g_ptr_array_unref (p->links);
  g_free (p->url);
  g_free (p->address);
  g_free (p->host);
  g_free (p->base_path);
  g_free (p);
}

void
dragoman_publisher_tokens_changed (DragomanPublisher *p)
{
  for (guint i = 0; p && i < p->links->len; i++) {
    Link *l = p->links->pdata[i];
    if (l->wsi && g_strcmp0 (l->token, l->rc->viewer_token) != 0) {
      /* the edge's channel id changes with the token: publish under the new one
       * (listeners with the old token lose the channel, as on dragoman itself) */
      lws_close_reason (l->wsi, LWS_CLOSE_STATUS_GOINGAWAY, (unsigned char *) "token rotated", 13);
      lws_set_timeout (l->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
  }
}

const char *
dragoman_publisher_get_url (DragomanPublisher *p)
{
  return p->url;
}

guint
dragoman_publisher_n_links (DragomanPublisher *p)
{
  return p ? p->links->len : 0;
}

void
dragoman_publisher_get_link_stats (DragomanPublisher *p, guint index, DragomanPublishLinkStats *stats)
{
  *stats = ((Link *) p->links->pdata[index])->stats;
}
