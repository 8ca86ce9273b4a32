#include "ws_listen.h"

#include "access.h"

#include <libwebsockets.h>
#include <string.h>
#include <sys/socket.h>

GST_DEBUG_CATEGORY_STATIC (listen_debug);
#define GST_CAT_DEFAULT listen_debug

/* fanout → socket. The shared bytes have LWS_PRE headroom: lws writes the frame
 * header there (identical for every listener of a given length) without a copy. */
static DragomanWriteResult
sink_write (gpointer sink, guint8 *data, gsize len)
{
  struct lws *wsi = sink;
  if (lws_write (wsi, data, len, LWS_WRITE_BINARY) < (int) len)
    return DRAGOMAN_WRITE_FAILED;
  return lws_partial_buffered (wsi) ? DRAGOMAN_WRITE_CHOKED : DRAGOMAN_WRITE_OK;
}

static DragomanWriteResult
sink_write_text (gpointer sink, guint8 *data, gsize len)
{
  struct lws *wsi = sink;
  if (lws_write (wsi, data, len, LWS_WRITE_TEXT) < (int) len)
    return DRAGOMAN_WRITE_FAILED;
  return lws_partial_buffered (wsi) ? DRAGOMAN_WRITE_CHOKED : DRAGOMAN_WRITE_OK;
}

/* Several binary messages in one send(): framed here as lws_write would frame each
 * (RFC 6455 5.2, server to client: unmasked, FIN + binary opcode, a 7-bit or
 * 16-bit length) and written raw (LWS_WRITE_RAW skips lws's framing: ops-ws.c
 * goes straight to lws_issue_raw). One copy of the pending bytes into a buffer
 * reused for every listener (service thread only), instead of n sends: a copy
 * of ~100 bytes costs nanoseconds, a send() microseconds. The protocol's
 * tx_packet_size (http.c) lets the whole batch go in one send. */
#define WS_HEADER_MAX 4 /* messages are < 64 KiB */
/* a batch of two or more holds at most DRAGOMAN_FANOUT_BATCH_BYTES (fanout.c) */
static guint8 batch_buf[LWS_PRE + DRAGOMAN_FANOUT_BATCH_BYTES + DRAGOMAN_FANOUT_BATCH_FRAMES * WS_HEADER_MAX];

static DragomanWriteResult
sink_write_batch (gpointer sink, const DragomanFrame *frames, guint n)
{
  struct lws *wsi = sink;
  guint8 *start = batch_buf + LWS_PRE, *p = start;
  for (guint i = 0; i < n; i++) {
    gsize len = frames[i].len;
    *p++ = 0x82; /* FIN, binary */
    if (len < 126) {
      *p++ = (guint8) len;
    } else {
      *p++ = 126;
      *p++ = (guint8) (len >> 8);
      *p++ = (guint8) len;
    }
    memcpy (p, frames[i].data, len);
    p += len;
  }
  int total = (int) (p - start);
  if (lws_write (wsi, start, (size_t) total, LWS_WRITE_RAW) < total)
    return DRAGOMAN_WRITE_FAILED;
  return lws_partial_buffered (wsi) ? DRAGOMAN_WRITE_CHOKED : DRAGOMAN_WRITE_OK;
}

static void
sink_request_writable (gpointer sink)
{
  lws_callback_on_writable (sink);
}

static void
sink_close (gpointer sink, guint16 code, const char *reason)
{
  struct lws *wsi = sink;
  lws_close_reason (wsi, code, (unsigned char *) reason, strlen (reason));
  /* we are not in this wsi's callback: let lws close it on its next service pass */
  lws_set_timeout (wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

static const DragomanSinkFuncs sink_funcs = { sink_write, sink_write_text, sink_request_writable, sink_close,
                                              sink_write_batch };

static void
refuse (DragomanListenSession *s, guint16 code, const char *error_code, char *message)
{
  s->close_code = code;
  s->error_code = error_code;
  s->error_message = message;
}

static void
parse_id (const char *value, char *out, gsize size)
{
  g_strlcpy (out, value && dragoman_config_valid_id (value) ? value : "(invalid)", size);
}

void
dragoman_ws_listen_parse_target (const char *room, const char *name, DragomanWsTarget *target)
{
  G_STATIC_ASSERT (sizeof target->room > 32 && sizeof target->name > 32); /* a valid id fits whole */
  parse_id (room, target->room, sizeof target->room);
  parse_id (name, target->name, sizeof target->name);
}

int
dragoman_ws_listen_open (DragomanListenSession *s, struct lws *wsi, DragomanServer *server)
{
  if (!listen_debug)
    GST_DEBUG_CATEGORY_INIT (listen_debug, "dragoman-listen", 0, "dragoman WebSocket listeners");
  /* lws copies "name=value" into each buffer and returns a pointer to the value */
  char room_arg[80], lang_arg[80];
  DragomanWsTarget target;
  dragoman_ws_listen_parse_target (lws_get_urlarg_by_name (wsi, "room=", room_arg, sizeof room_arg),
                                   lws_get_urlarg_by_name (wsi, "lang=", lang_arg, sizeof lang_arg), &target);
  const char *room_id = target.room, *lang = target.name;
  s->wsi = wsi;
  s->server = server;

  s->room = dragoman_server_find_room (server, room_id);
  s->channel = s->room ? dragoman_room_find_channel (s->room, lang) : NULL;
  DragomanAccess access = DRAGOMAN_ACCESS_OK;
  char address[64] = "";
  if (s->room) {
    /* a paid room: ?token= (access.c; the query because a listener sends nothing) */
    char token_arg[160];
    lws_get_peer_simple (wsi, address, sizeof address);
    access = dragoman_access_check_viewer (server, dragoman_room_get_config (s->room),
                                           dragoman_access_token_arg (wsi, token_arg, sizeof token_arg), address);
  }
  if (!s->room) {
    server->counters.refused_unknown++;
    refuse (s, 4404, "unknown-room", g_strdup_printf ("no room '%s' on this server", room_id));
  } else if (access != DRAGOMAN_ACCESS_OK) {
    server->counters.refused_token++;
    if (access == DRAGOMAN_ACCESS_MISSING)
      refuse (s, 4401, "token-required", g_strdup_printf ("room '%s' needs a viewer token", room_id));
    else if (access == DRAGOMAN_ACCESS_WRONG)
      refuse (s, 4401, "bad-token", g_strdup_printf ("wrong viewer token for room '%s'", room_id));
    else
      refuse (s, 4429, "too-many-attempts", g_strdup ("too many wrong tokens from this address: wait a minute"));
    /* never the token itself */
    GST_WARNING ("listener for room %s from %s refused: %s", room_id, address, s->error_code);
  } else if (!s->channel) {
    server->counters.refused_unknown++;
    refuse (s, 4404, "unknown-language", g_strdup_printf ("room '%s' has no channel '%s'", room_id, lang));
  } else if (server->listeners >= (guint) server->config->max_listeners) {
    server->counters.refused_full++;
    refuse (s, 4503, "server-full",
            g_strdup_printf ("the server is at its limit of %d listeners", server->config->max_listeners));
  } else {
    server->listeners++;
    /* Bound the kernel's share of the backlog. Left alone, Linux grows a stalled
     * socket's send buffer to ~4 MB: 13 minutes of a 32 kbit/s channel that
     * send() keeps accepting, so our soft/hard limits never fire (seen here:
     * stalled listeners 20 s behind, never resynced). 8 KiB (the kernel doubles
     * it; each ~100-byte frame costs ~1 KiB of truesize) holds ~300 ms: beyond
     * that the socket reports full and the fanout's limits take over. */
    int fd = lws_get_socket_fd (wsi), sndbuf = 8192;
    if (fd >= 0)
      setsockopt (fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  }
  if (s->error_code)
    GST_INFO ("listener %p refused: %s", wsi, s->error_message);
  /* the hello (or the error) goes out in the first WRITEABLE */
  lws_callback_on_writable (wsi);
  return 0;
}

static int
write_text (struct lws *wsi, const char *text)
{
  size_t len = strlen (text);
  g_autofree guint8 *buf = g_malloc (LWS_PRE + len);
  memcpy (buf + LWS_PRE, text, len);
  return lws_write (wsi, buf + LWS_PRE, len, LWS_WRITE_TEXT) < (int) len ? -1 : 0;
}

int
dragoman_ws_listen_writable (DragomanListenSession *s)
{
  if (s->listener) {
    dragoman_fanout_writable (dragoman_channel_get_fanout (s->channel), s->listener);
    return 0;
  }
  if (s->error_sent)
    return -1; /* lws may call us again while the close handshake runs */
  if (s->error_code) {
    s->error_sent = TRUE;
    g_autofree char *msg = g_strdup_printf ("{\"type\":\"error\",\"code\":\"%s\",\"message\":\"%s\"}", s->error_code,
                                            s->error_message);
    write_text (s->wsi, msg);
    lws_close_reason (s->wsi, s->close_code, (unsigned char *) s->error_code, strlen (s->error_code));
    return -1;
  }
  const DragomanRoomConfig *rc = dragoman_room_get_config (s->room);
  g_autofree char *hello = g_strdup_printf (
      "{\"type\":\"hello\",\"room\":\"%s\",\"lang\":\"%s\",\"codec\":\"opus\",\"rate\":48000,\"channels\":1,"
      "\"frame_ms\":%d}",
      rc->id, dragoman_channel_get_lang (s->channel), rc->opus_frame_ms);
  if (write_text (s->wsi, hello) < 0)
    return -1;
  GST_INFO ("listener %p joined %s/%s", s->wsi, rc->id, dragoman_channel_get_lang (s->channel));
  /* from now on the fanout writes to this socket directly: the channel's state
   * message, the burst, then every packet */
  s->listener = dragoman_fanout_add (dragoman_channel_get_fanout (s->channel), &sink_funcs, s->wsi);
  return 0;
}

int
dragoman_ws_listen_receive (DragomanListenSession *s, const void *in, size_t len, gboolean binary)
{
  if (!binary)
    return 0; /* unknown text messages are ignored (contract) */
  s->server->counters.protocol_errors++;
  GST_INFO ("listener %p sent a binary message: closing 1003", s->wsi);
  lws_close_reason (s->wsi, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE, (unsigned char *) "listeners send no binary",
                    24);
  return -1;
}

void
dragoman_ws_listen_close (DragomanListenSession *s)
{
  if (s->listener && !s->server->stopping)
    dragoman_fanout_remove (dragoman_channel_get_fanout (s->channel), s->listener);
  if (s->room && s->channel && !s->error_code)
    s->server->listeners--;
  s->listener = NULL;
  g_clear_pointer (&s->error_message, g_free);
}
