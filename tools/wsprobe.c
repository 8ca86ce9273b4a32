/* wsprobe — a /ws/listen client that checks the v1 wire contract.
 *
 * It is deliberately an independent peer: plain POSIX sockets and a
 * hand-written RFC 6455 client, no libwebsockets, so a bug shared by the
 * server's WebSocket stack and ours cannot hide itself.  It reads one
 * channel for N seconds and checks:
 *   - the hello text message (room/lang from the URL, opus 48000/1/20 ms;
 *     --no-hello: an Nchan edge sends none);
 *   - every binary message: kind 1, reserved 0, sequence +1 (a gap is only
 *     legal on a packet flagged discontinuity), ingress time within ±5 s of
 *     our wall clock, Opus packet duration == frame_ms;
 *   - the audio itself: decoded with libopus, then Goertzel per 100 ms
 *     window at the demo's ident tones (orig 8000, en 8500, hy 9000,
 *     az 9500, ru 10000, tr 10500 Hz).  A window is "dominated" by an ident
 *     only if its bin is > 10 dB above the mean of reference bins placed
 *     half-way between idents, so broadband noise never counts as a tone.
 * Delivery delay = receipt time − ingress time, both on CLOCK_REALTIME of
 * the same host, so it includes encoder framing, fan-out and the socket.
 *
 * Exit: 0 ok, 1 contract/protocol error (or, with --expect-close=CODE, a
 * different close), 2 bad usage.  One JSON object on stdout with --json.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <glib.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <netdb.h>
#include <opus.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define RATE 48000
#define WIN (RATE / 10)   /* 100 ms Goertzel window: 10 Hz bins */
#define MAX_MSG (1 << 20) /* an Opus packet is < 1.3 kB; 1 MiB means garbage */
#define MAX_ERRORS 20     /* keep the report readable; the count stays exact */
#define N_IDENT 6
#define N_REF 7

static const double ident_hz[N_IDENT] = {8000, 8500, 9000, 9500, 10000, 10500};
static const char *ident_name[N_IDENT] = {"orig", "en", "hy", "az", "ru", "tr"};
static const char ident_char[N_IDENT] = {'o', 'e', 'h', 'a', 'r', 't'};
/* Half-way between idents, plus one on each side: where no ident leaks. */
static const double ref_hz[N_REF] = {7750, 8250, 8750, 9250, 9750, 10250, 10750};

typedef struct {
  /* options */
  char *host, *port, *path, *room, *lang;
  int seconds, frame_ms, expect_close; /* expect_close: -1 off, 0 any */
  gboolean json, send_binary, levels, no_hello;
  /* connection */
  int fd;
  GByteArray *in;  /* bytes received, not yet parsed into frames */
  GByteArray *msg; /* fragmented message being assembled */
  int msg_opcode;  /* 0 = no message in progress */
  /* results */
  JsonNode *hello;
  GPtrArray *errors, *texts;
  guint n_errors, n_texts, n_state, n_error_msgs;
  guint64 packets, payload_bytes, gaps, lost, discont;
  guint32 next_seq;
  GArray *delays;    /* double ms, one per packet */
  gint64 last_rx;    /* monotonic µs of the previous packet */
  double max_iat;    /* longest silence between packets, ms: stalls */
  gint64 first_rx;   /* monotonic µs of the first packet */
  gint64 first_rx_wall; /* the same instant, real-time µs (to align the timeline with other clocks) */
  double max_iat_at; /* when that silence ended, s after the first packet */
  int close_code;    /* -1 = none received */
  char *close_reason;
  gboolean closed, server_closed_first;
  /* audio */
  OpusDecoder *dec;
  float pcm[WIN];
  guint pcm_fill;
  double window[WIN], sumsq;
  guint64 nsamples;
  guint tones[N_IDENT + 1];
  GString *timeline;
  GArray *level;    /* float dB, N_IDENT per window: ramps, ducking depth */
  GArray *text_win; /* int, window index at which each text arrived */
  /* When each window's last packet and each text arrived, ms after the first packet: the
   * timeline counts audio, and audio the server skipped (a catch-up, a resync) or a server
   * that falls behind real time (the sanitized build) moves it off the wall clock. */
  GArray *window_rx, *text_rx; /* int */
  gint64 rx_wall;             /* real-time µs of the packet being decoded */
} Probe;

static void G_GNUC_PRINTF (2, 3) fail (Probe *p, const char *fmt, ...)
{
  va_list ap;
  p->n_errors++;
  if (p->errors->len >= MAX_ERRORS)
    return;
  va_start (ap, fmt);
  g_ptr_array_add (p->errors, g_strdup_vprintf (fmt, ap));
  va_end (ap);
}

/* ---- socket helpers ---------------------------------------------------- */

static gboolean
send_all (int fd, const guint8 *buf, gsize len)
{
  while (len > 0) {
    ssize_t n = send (fd, buf, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return FALSE;
    buf += n, len -= (gsize)n;
  }
  return TRUE;
}

/* Reads whatever is available into p->in, waiting at most until
 * deadline_us (monotonic).  Returns 1 data, 0 timeout, -1 EOF/error. */
static int
fill (Probe *p, gint64 deadline_us)
{
  gint64 left = deadline_us - g_get_monotonic_time ();
  struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
  guint8 buf[65536];
  if (left <= 0)
    return 0;
  int r = poll (&pfd, 1, (int)((left + 999) / 1000));
  if (r < 0)
    return errno == EINTR ? 0 : -1;
  if (r == 0)
    return 0;
  ssize_t n = recv (p->fd, buf, sizeof buf, 0);
  if (n < 0 && (errno == EINTR || errno == EAGAIN))
    return 0;
  if (n <= 0)
    return -1;
  g_byte_array_append (p->in, buf, (guint)n);
  return 1;
}

/* Client frames must be masked (RFC 6455 §5.3); a fresh random key each. */
static gboolean
send_frame (Probe *p, int opcode, const guint8 *data, gsize len)
{
  guint8 hdr[14];
  gsize h = 0;
  guint32 key = g_random_int ();
  hdr[h++] = 0x80 | (guint8)opcode;
  if (len < 126) {
    hdr[h++] = 0x80 | (guint8)len;
  } else if (len < 65536) {
    hdr[h++] = 0x80 | 126, hdr[h++] = (guint8)(len >> 8), hdr[h++] = (guint8)len;
  } else {
    hdr[h++] = 0x80 | 127;
    for (int i = 7; i >= 0; i--)
      hdr[h++] = (guint8)((guint64)len >> (8 * i));
  }
  memcpy (hdr + h, &key, 4);
  h += 4;
  g_autofree guint8 *body = g_malloc (len + h);
  memcpy (body, hdr, h);
  for (gsize i = 0; i < len; i++)
    body[h + i] = data[i] ^ hdr[h - 4 + (i & 3)];
  return send_all (p->fd, body, len + h);
}

static void
send_close (Probe *p, int code)
{
  guint8 b[2] = {(guint8)(code >> 8), (guint8)code};
  send_frame (p, 0x8, b, 2);
}

/* ---- connect + handshake ----------------------------------------------- */

/* The server may pipeline the first frames right behind the headers, so
 * read into p->in and leave whatever follows the blank line there. */
static char *
read_headers (Probe *p)
{
  gint64 deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;
  char *end;
  while (p->in->len == 0 || !(end = g_strstr_len ((char *)p->in->data, p->in->len, "\r\n\r\n")))
    if (p->in->len > 16384 || fill (p, deadline) <= 0)
      return NULL;
  gsize hlen = (gsize)(end - (char *)p->in->data) + 4;
  char *head = g_strndup ((char *)p->in->data, hlen);
  g_byte_array_remove_range (p->in, 0, (guint)hlen);
  return head;
}

static gboolean
ws_connect (Probe *p, GError **err)
{
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
  int r = getaddrinfo (p->host, p->port, &hints, &ai);
  if (r != 0) {
    g_set_error (err, G_IO_ERROR, G_IO_ERROR_FAILED, "resolve %s: %s", p->host, gai_strerror (r));
    return FALSE;
  }
  p->fd = -1;
  for (struct addrinfo *a = ai; a && p->fd < 0; a = a->ai_next) {
    p->fd = socket (a->ai_family, a->ai_socktype, a->ai_protocol);
    if (p->fd >= 0 && connect (p->fd, a->ai_addr, a->ai_addrlen) < 0)
      close (p->fd), p->fd = -1;
  }
  freeaddrinfo (ai);
  if (p->fd < 0) {
    g_set_error (err, G_IO_ERROR, G_IO_ERROR_FAILED, "connect %s:%s: %s", p->host, p->port, g_strerror (errno));
    return FALSE;
  }

  guint8 nonce[16];
  for (int i = 0; i < 16; i++)
    nonce[i] = (guint8)g_random_int ();
  g_autofree char *key = g_base64_encode (nonce, sizeof nonce);
  g_autofree char *req = g_strdup_printf ("GET %s HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\n"
                                          "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                                          "Sec-WebSocket-Version: 13\r\nUser-Agent: dragoman-wsprobe\r\n\r\n",
                                          p->path, p->host, p->port, key);
  g_autofree char *head = send_all (p->fd, (const guint8 *)req, strlen (req)) ? read_headers (p) : NULL;
  if (!head) {
    g_set_error (err, G_IO_ERROR, G_IO_ERROR_FAILED,
                 "handshake: connection closed"
                 " or timed out before the response headers");
    return FALSE;
  }
  g_auto (GStrv) lines = g_strsplit (head, "\r\n", -1);
  if (!g_str_has_prefix (lines[0], "HTTP/1.1 101")) {
    g_set_error (err, G_IO_ERROR, G_IO_ERROR_FAILED, "handshake refused: %s", lines[0]);
    return FALSE;
  }
  g_autofree char *kg = g_strconcat (key, WS_GUID, NULL);
  g_autoptr (GChecksum) sha = g_checksum_new (G_CHECKSUM_SHA1);
  guint8 digest[20];
  gsize dlen = sizeof digest;
  g_checksum_update (sha, (const guchar *)kg, -1);
  g_checksum_get_digest (sha, digest, &dlen);
  g_autofree char *want = g_base64_encode (digest, dlen);
  for (char **l = lines + 1; *l; l++) {
    if (g_ascii_strncasecmp (*l, "Sec-WebSocket-Accept:", 21) == 0 && strcmp (g_strstrip (*l + 21), want) == 0)
      return TRUE;
  }
  g_set_error (err, G_IO_ERROR, G_IO_ERROR_FAILED, "missing or wrong Sec-WebSocket-Accept (want %s)", want);
  return FALSE;
}

/* ---- audio analysis ---------------------------------------------------- */

static double
goertzel (const double *x, double hz)
{
  double c = 2 * cos (2 * G_PI * hz / RATE), s1 = 0, s2 = 0;
  for (int i = 0; i < WIN; i++) {
    double s0 = x[i] + c * s1 - s2;
    s2 = s1, s1 = s0;
  }
  return s1 * s1 + s2 * s2 - c * s1 * s2;
}

static void
analyse_window (Probe *p)
{
  double x[WIN], best = 0, ref = 0;
  int bi = -1;
  /* Hann: sidelobes 250 Hz (25 bins) away are ~ -100 dB, so a loud ident
   * cannot leak into the reference bins and mask itself. */
  for (int i = 0; i < WIN; i++)
    x[i] = p->pcm[i] * p->window[i];
  for (int k = 0; k < N_REF; k++)
    ref += goertzel (x, ref_hz[k]) / N_REF;
  for (int k = 0; k < N_IDENT; k++) {
    double e = goertzel (x, ident_hz[k]);
    /* Hann's coherent gain is 1/2, so a sine of amplitude A gives
     * |X| = A·WIN/4: the level below is the ident's amplitude in dBFS. */
    float db = (float)(10 * log10 (e + 1e-20) - 20 * log10 (WIN / 4.0));
    g_array_append_val (p->level, db);
    if (e > best)
      best = e, bi = k;
  }
  /* The 1e-9 floor keeps digital silence (all bins 0) from "winning". */
  if (bi < 0 || best < 1e-9 || best <= 10.0 * ref)
    bi = N_IDENT;
  p->tones[bi]++;
  g_string_append_c (p->timeline, bi == N_IDENT ? '.' : ident_char[bi]);
  int rx_ms = p->first_rx_wall ? (int)((p->rx_wall - p->first_rx_wall) / 1000) : 0;
  g_array_append_val (p->window_rx, rx_ms);
}

static void
decode (Probe *p, const guint8 *pkt, gsize len)
{
  float pcm[5760]; /* 120 ms, Opus' longest packet */
  int n = opus_decode_float (p->dec, pkt, (opus_int32)len, pcm, 5760, 0);
  if (n < 0) {
    fail (p, "packet %" G_GUINT64_FORMAT ": opus_decode: %s", p->packets, opus_strerror (n));
    return;
  }
  for (int i = 0; i < n; i++) {
    p->sumsq += (double)pcm[i] * pcm[i];
    p->pcm[p->pcm_fill++] = pcm[i];
    if (p->pcm_fill == WIN)
      analyse_window (p), p->pcm_fill = 0;
  }
  p->nsamples += (guint64)n;
}

/* ---- message handling -------------------------------------------------- */

static const char *
jstr (JsonObject *o, const char *k)
{
  JsonNode *n = json_object_get_member (o, k);
  return n && JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_STRING ? json_node_get_string (n)
                                                                                         : NULL;
}

static gint64
jint (JsonObject *o, const char *k)
{
  JsonNode *n = json_object_get_member (o, k);
  return n && JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_INT64 ? json_node_get_int (n) : -1;
}

static void
on_text (Probe *p, const char *txt, gsize len)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonObject *o;
  if (!json_parser_load_from_data (parser, txt, (gssize)len, NULL) ||
      !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser))) {
    fail (p, "text message is not a JSON object: %.80s", txt);
    return;
  }
  o = json_node_get_object (json_parser_get_root (parser));
  const char *type = jstr (o, "type");
  if (!p->hello && !p->no_hello) {
    if (g_strcmp0 (type, "hello") == 0) {
      p->hello = json_node_copy (json_parser_get_root (parser));
      if (g_strcmp0 (jstr (o, "room"), p->room) || g_strcmp0 (jstr (o, "lang"), p->lang) ||
          g_strcmp0 (jstr (o, "codec"), "opus") || jint (o, "rate") != RATE || jint (o, "channels") != 1 ||
          jint (o, "frame_ms") != p->frame_ms)
        fail (p, "hello does not match room=%s lang=%s opus/48000/1/%d ms: %.200s", p->room, p->lang, p->frame_ms, txt);
      if (p->send_binary) {
        /* A listener must not send media: the server should close 1003. */
        static const guint8 junk[4] = {1, 0, 0, 0};
        send_frame (p, 0x2, junk, sizeof junk);
      }
      return;
    }
    /* Negative cases: an error instead of hello is the expected answer. */
    if (p->expect_close < 0)
      fail (p, "first message is not hello: %.200s", txt);
  }
  p->n_texts++;
  int at = (int)p->timeline->len;
  g_array_append_val (p->text_win, at);
  int rx_ms = p->first_rx_wall ? (int)((g_get_real_time () - p->first_rx_wall) / 1000) : 0;
  g_array_append_val (p->text_rx, rx_ms);
  if (g_strcmp0 (type, "state") == 0)
    p->n_state++;
  if (g_strcmp0 (type, "error") == 0) {
    p->n_error_msgs++;
    if (p->expect_close < 0)
      fail (p, "server error message: %.200s", txt);
  }
  if (p->texts->len < 50)
    g_ptr_array_add (p->texts, g_strndup (txt, len));
  if (!p->json)
    printf ("text: %.*s\n", (int)len, txt);
}

static void
on_binary (Probe *p, const guint8 *b, gsize len)
{
  gint64 now = g_get_real_time (), mono = g_get_monotonic_time ();
  if (!p->hello && !p->no_hello)
    fail (p, "binary message before hello");
  if (len < 17) {
    fail (p, "binary message of %" G_GSIZE_FORMAT " bytes: header is 16 + packet", len);
    return;
  }
  guint32 seq = (guint32)b[4] << 24 | (guint32)b[5] << 16 | (guint32)b[6] << 8 | b[7];
  guint64 ingress = 0;
  for (int i = 8; i < 16; i++)
    ingress = ingress << 8 | b[i];
  gboolean disc = b[1] & 1;
  if (b[0] != 1)
    fail (p, "seq %u: kind %u, want 1 (Opus)", seq, b[0]);
  if ((b[1] & ~1) || b[2] || b[3])
    fail (p, "seq %u: reserved bits set", seq);
  p->discont += disc;
  if (p->packets > 0 && seq != p->next_seq) {
    p->gaps++;
    p->lost += (guint32)(seq - p->next_seq); /* mod 2^32: wrap is legal */
    if (!disc)
      fail (p, "seq %u after %u without discontinuity flag", seq, p->next_seq - 1);
  }
  p->next_seq = seq + 1;
  if (!p->first_rx) {
    p->first_rx = mono;
    p->first_rx_wall = now;
  }
  if (p->last_rx && (mono - p->last_rx) / 1000.0 > p->max_iat) {
    p->max_iat = (mono - p->last_rx) / 1000.0;
    p->max_iat_at = (mono - p->first_rx) / 1e6;
  }
  p->last_rx = mono;
  p->packets++;
  p->payload_bytes += len - 16;

  double delay_ms = ((double)now - (double)ingress) / 1000.0;
  if (fabs (delay_ms) > 5000)
    fail (p, "seq %u: ingress time %" G_GUINT64_FORMAT " is %.0f ms off our clock", seq, ingress, delay_ms);
  else
    g_array_append_val (p->delays, delay_ms);

  int ns = opus_packet_get_nb_samples (b + 16, (opus_int32)(len - 16), RATE);
  if (ns != RATE / 1000 * p->frame_ms)
    fail (p, "seq %u: Opus packet holds %d samples, want %d", seq, ns, RATE / 1000 * p->frame_ms);
  p->rx_wall = now;
  decode (p, b + 16, len - 16);
}

/* Parses one complete frame from p->in if there is one.  Returns 1 parsed,
 * 0 need more bytes, -1 protocol error (already reported). */
static int
parse_frame (Probe *p)
{
  const guint8 *d = p->in->data;
  gsize have = p->in->len, h = 2;
  if (have < 2)
    return 0;
  int fin = d[0] & 0x80, op = d[0] & 0x0f;
  guint64 len = d[1] & 0x7f;
  if (d[0] & 0x70)
    return fail (p, "RSV bits set without an extension"), -1;
  if (d[1] & 0x80)
    return fail (p, "server frame is masked (RFC 6455 5.1)"), -1;
  if (len == 126) {
    if (have < 4)
      return 0;
    len = (guint64)d[2] << 8 | d[3], h = 4;
  } else if (len == 127) {
    if (have < 10)
      return 0;
    len = 0;
    for (int i = 2; i < 10; i++)
      len = len << 8 | d[i];
    h = 10;
  }
  if (len > MAX_MSG)
    return fail (p, "frame of %" G_GUINT64_FORMAT " bytes", len), -1;
  if (have < h + len)
    return 0;
  const guint8 *pl = d + h;

  if (op >= 0x8) { /* control: may arrive between fragments */
    if (!fin || len > 125)
      return fail (p, "bad control frame op %d", op), -1;
    if (op == 0x9)
      send_frame (p, 0xA, pl, len); /* ping: echo as pong */
    if (op == 0x8) {
      p->close_code = len >= 2 ? pl[0] << 8 | pl[1] : 1005;
      if (len == 1)
        fail (p, "close frame with a 1-byte payload");
      g_free (p->close_reason);
      p->close_reason = len > 2 ? g_strndup ((const char *)pl + 2, len - 2) : g_strdup ("");
      if (!p->closed)
        p->server_closed_first = TRUE, send_close (p, p->close_code == 1005 ? 1000 : p->close_code);
      p->closed = TRUE;
    } else if (op != 0x9 && op != 0xA) {
      return fail (p, "unknown control opcode %d", op), -1;
    }
  } else {
    if (op == 0 && !p->msg_opcode)
      return fail (p, "continuation without a message"), -1;
    if (op != 0 && p->msg_opcode)
      return fail (p, "new message inside a fragmented one"), -1;
    if (op != 0 && op != 1 && op != 2)
      return fail (p, "unknown opcode %d", op), -1;
    if (op)
      p->msg_opcode = op;
    if (p->msg->len + len > MAX_MSG)
      return fail (p, "message over 1 MiB"), -1;
    g_byte_array_append (p->msg, pl, (guint)len);
    if (fin) {
      if (p->msg_opcode == 1) {
        gsize n = p->msg->len;
        g_byte_array_append (p->msg, (const guint8 *)"", 1); /* printable as %s */
        if (!g_utf8_validate ((const char *)p->msg->data, (gssize)n, NULL))
          fail (p, "text message is not UTF-8");
        else
          on_text (p, (const char *)p->msg->data, n);
      } else {
        on_binary (p, p->msg->data, p->msg->len);
      }
      g_byte_array_set_size (p->msg, 0);
      p->msg_opcode = 0;
    }
  }
  g_byte_array_remove_range (p->in, 0, (guint)(h + len));
  return 1;
}

/* Reads until the deadline or the close handshake; then closes ourselves
 * and gives the server 2 s to echo the close (a clean shutdown). */
static void
run (Probe *p)
{
  gint64 deadline = g_get_monotonic_time () + (gint64)p->seconds * G_USEC_PER_SEC;
  gboolean eof = FALSE;
  while (!p->closed) {
    int r;
    while ((r = parse_frame (p)) == 1 && !p->closed) {
    }
    if (r < 0) {
      send_close (p, 1002);
      return;
    }
    if (p->closed)
      break;
    r = fill (p, deadline);
    if (r < 0) {
      eof = TRUE;
      break;
    }
    if (r == 0 && g_get_monotonic_time () >= deadline)
      break;
  }
  if (!p->closed && !eof) {
    send_close (p, 1000);
    p->closed = TRUE;
    gint64 grace = g_get_monotonic_time () + 2 * G_USEC_PER_SEC;
    int r = 1;
    while (p->close_code < 0 && r > 0) {
      while ((r = parse_frame (p)) == 1 && p->close_code < 0) {
      }
      if (r == 0)
        r = fill (p, grace);
    }
  } else if (eof) {
    fail (p, "TCP connection ended without a close frame");
  }
  if (p->server_closed_first && p->expect_close < 0)
    fail (p, "server closed the connection: %d %s", p->close_code, p->close_reason);
  if (p->expect_close >= 0 && !p->server_closed_first)
    fail (p, "expected the server to close, it did not");
  else if (p->expect_close > 0 && p->close_code != p->expect_close)
    fail (p, "close code %d, expected %d", p->close_code, p->expect_close);
  if (p->expect_close < 0 && !p->hello && !p->no_hello)
    fail (p, "no hello received");
  else if (p->expect_close < 0 && p->packets == 0)
    fail (p, "no audio packets");
}

/* ---- report ------------------------------------------------------------ */

static double
pct (GArray *a, double q)
{
  if (a->len == 0)
    return NAN;
  guint i = (guint)ceil (q * a->len);
  return g_array_index (a, double, i ? i - 1 : 0); /* nearest rank */
}

static int
cmp_double (gconstpointer a, gconstpointer b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* JSON string literal; json-glib's generator would do it too, but writing
 * the report by hand lets numbers keep a sane precision (27.14, not
 * 27.140000000000001). */
static void
put_str (GString *o, const char *s)
{
  g_string_append_c (o, '"');
  for (; *s; s++) {
    if (*s == '"' || *s == '\\')
      g_string_append_printf (o, "\\%c", *s);
    else if ((guchar)*s < 0x20)
      g_string_append_printf (o, "\\u%04x", *s);
    else
      g_string_append_c (o, *s);
  }
  g_string_append_c (o, '"');
}

static void
put_ms (GString *o, const char *k, double v)
{
  g_string_append_printf (o, isnan (v) ? "\"%s\":null," : "\"%s\":%.2f,", k, v);
}

static void
report (Probe *p)
{
  g_array_sort (p->delays, cmp_double);
  double rms = p->nsamples ? 10 * log10 (p->sumsq / p->nsamples + 1e-20) : -200;
  double q[4] = {pct (p->delays, .5), pct (p->delays, .95), pct (p->delays, .99), pct (p->delays, 1)};
  if (!p->json) {
    printf ("%s room=%s lang=%s packets=%" G_GUINT64_FORMAT " gaps=%" G_GUINT64_FORMAT " discont=%" G_GUINT64_FORMAT
            " texts=%u close=%d %s\n",
            p->n_errors ? "FAIL" : "OK", p->room, p->lang, p->packets, p->gaps, p->discont, p->n_texts, p->close_code,
            p->close_reason ? p->close_reason : "");
    printf ("delay ms p50=%.1f p95=%.1f p99=%.1f max=%.1f  max interarrival=%.1f ms at %.1f s"
            "  rms=%.1f dBFS\ntones:",
            q[0], q[1], q[2], q[3], p->max_iat, p->max_iat_at, rms);
    for (int k = 0; k <= N_IDENT; k++)
      printf (" %s=%u", k < N_IDENT ? ident_name[k] : "none", p->tones[k]);
    printf ("\ntimeline: %s\n", p->timeline->str);
    for (guint i = 0; i < p->errors->len; i++)
      printf ("error: %s\n", (char *)g_ptr_array_index (p->errors, i));
    if (p->n_errors > p->errors->len)
      printf ("error: ... %u more\n", p->n_errors - p->errors->len);
    return;
  }
  g_autoptr (GString) o = g_string_new ("{\"room\":");
  g_autofree char *hello = p->hello ? json_to_string (p->hello, FALSE) : g_strdup ("null");
  put_str (o, p->room);
  g_string_append (o, ",\"lang\":"), put_str (o, p->lang);
  g_string_append_printf (o, ",\"ok\":%s,\"hello\":%s", p->n_errors ? "false" : "true", hello);
  g_string_append_printf (o,
                          ",\"packets\":%" G_GUINT64_FORMAT ",\"payload_bytes\":%" G_GUINT64_FORMAT
                          ",\"gaps\":%" G_GUINT64_FORMAT ",\"lost_packets\":%" G_GUINT64_FORMAT
                          ",\"discontinuities\":%" G_GUINT64_FORMAT,
                          p->packets, p->payload_bytes, p->gaps, p->lost, p->discont);
  g_string_append_printf (o,
                          ",\"text_messages\":%u,\"state_messages\":%u,"
                          "\"error_messages\":%u,\"error_count\":%u,\"errors\":[",
                          p->n_texts, p->n_state, p->n_error_msgs, p->n_errors);
  for (guint i = 0; i < p->errors->len; i++)
    g_string_append (o, i ? "," : ""), put_str (o, g_ptr_array_index (p->errors, i));
  g_string_append (o, "],\"texts\":[");
  for (guint i = 0; i < p->texts->len; i++)
    g_string_append (o, i ? "," : ""), put_str (o, g_ptr_array_index (p->texts, i));
  if (p->close_code >= 0)
    g_string_append_printf (o, "],\"close_code\":%d", p->close_code);
  else
    g_string_append (o, "],\"close_code\":null");
  g_string_append (o, ",\"close_reason\":");
  put_str (o, p->close_reason ? p->close_reason : "");
  g_string_append_printf (o, ",\"closed_by\":\"%s\",\"delay_ms\":{", p->server_closed_first ? "server" : "client");
  put_ms (o, "p50", q[0]), put_ms (o, "p95", q[1]), put_ms (o, "p99", q[2]);
  put_ms (o, "max", q[3]);
  g_string_truncate (o, o->len - 1);
  g_string_append_printf (o,
                          "},\"max_interarrival_ms\":%.2f,\"max_interarrival_at_s\":%.2f,"
                          "\"first_packet_wall_us\":%" G_GINT64_FORMAT ",\"rms_dbfs\":%.1f,\"tones\":{",
                          p->max_iat, p->max_iat_at, p->first_rx_wall, rms);
  for (int k = 0; k <= N_IDENT; k++)
    g_string_append_printf (o, "%s\"%s\":%u", k ? "," : "", k < N_IDENT ? ident_name[k] : "none", p->tones[k]);
  g_string_append_printf (o, "},\"timeline\":\"%s\",\"text_windows\":[", p->timeline->str);
  for (guint i = 0; i < p->text_win->len; i++)
    g_string_append_printf (o, "%s%d", i ? "," : "", g_array_index (p->text_win, int, i));
  g_string_append (o, "],\"text_rx_ms\":[");
  for (guint i = 0; i < p->text_rx->len; i++)
    g_string_append_printf (o, "%s%d", i ? "," : "", g_array_index (p->text_rx, int, i));
  g_string_append (o, "],\"window_rx_ms\":[");
  for (guint i = 0; i < p->window_rx->len; i++)
    g_string_append_printf (o, "%s%d", i ? "," : "", g_array_index (p->window_rx, int, i));
  g_string_append_c (o, ']');
  if (p->levels) {
    g_string_append (o, ",\"levels_db\":{");
    for (int k = 0; k < N_IDENT; k++) {
      g_string_append_printf (o, "%s\"%s\":[", k ? "," : "", ident_name[k]);
      for (guint w = 0; w * N_IDENT < p->level->len; w++)
        g_string_append_printf (o, "%s%.1f", w ? "," : "", g_array_index (p->level, float, w *N_IDENT + k));
      g_string_append_c (o, ']');
    }
    g_string_append_c (o, '}');
  }
  g_string_append_c (o, '}');
  puts (o->str);
}

/* ---- main -------------------------------------------------------------- */

static int opt_expect_close = -1; /* GOption callbacks get no Probe */

static gboolean
on_expect_close (const char *name, const char *value, gpointer data, GError **err)
{
  char *end = NULL;
  (void)name, (void)data;
  opt_expect_close = value ? (int)strtol (value, &end, 10) : 0;
  if (value && (!*value || *end || opt_expect_close < 1000 || opt_expect_close > 4999)) {
    g_set_error (err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                 "--expect-close=CODE wants a close code 1000..4999, got '%s'", value);
    return FALSE;
  }
  return TRUE;
}

static gboolean
parse_url (Probe *p, const char *url)
{
  if (!g_str_has_prefix (url, "ws://"))
    return FALSE; /* no TLS in a probe */
  const char *hp = url + 5, *slash = strchr (hp, '/');
  g_autofree char *authority = slash ? g_strndup (hp, slash - hp) : g_strdup (hp);
  p->path = g_strdup (slash ? slash : "/");
  char *colon = strrchr (authority, ':');
  p->host = colon ? g_strndup (authority, colon - authority) : g_strdup (authority);
  p->port = g_strdup (colon ? colon + 1 : "80");
  const char *q = strchr (p->path, '?');
  g_auto (GStrv) kv = g_strsplit (q ? q + 1 : "", "&", -1);
  for (char **k = kv; *k; k++) {
    if (g_str_has_prefix (*k, "room="))
      g_free (p->room), p->room = g_uri_unescape_string (*k + 5, NULL);
    if (g_str_has_prefix (*k, "lang="))
      g_free (p->lang), p->lang = g_uri_unescape_string (*k + 5, NULL);
  }
  return *p->host != '\0';
}

int
main (int argc, char **argv)
{
  Probe p = {.seconds = 10, .frame_ms = 20, .expect_close = -1, .close_code = -1, .fd = -1};
  g_autofree char *url = NULL;
  GOptionEntry entries[] = {
      {"url", 'u', 0, G_OPTION_ARG_STRING, &url, "ws://HOST:PORT/ws/listen?room=R&lang=L", "URL"},
      {"seconds", 's', 0, G_OPTION_ARG_INT, &p.seconds, "How long to listen (default 10)", "N"},
      {"json", 'j', 0, G_OPTION_ARG_NONE, &p.json, "One JSON object on stdout", NULL},
      {"frame-ms", 0, 0, G_OPTION_ARG_INT, &p.frame_ms, "Expected frame_ms (default 20)", "MS"},
      {"expect-close", 0, G_OPTION_FLAG_OPTIONAL_ARG, G_OPTION_ARG_CALLBACK, on_expect_close,
       "Negative test: the server must close (with CODE if given)", "CODE"},
      {"levels", 0, 0, G_OPTION_ARG_NONE, &p.levels, "With --json: each ident's level (dBFS) per 100 ms window", NULL},
      {"no-hello", 0, 0, G_OPTION_ARG_NONE, &p.no_hello, "Expect no hello (an Nchan edge, configs/nginx-nchan.conf)",
       NULL},
      {"send-binary", 0, 0, G_OPTION_ARG_NONE, &p.send_binary,
       "Send a binary message after hello (server must close 1003)", NULL},
      {NULL}};
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- check a dragoman /ws/listen stream");
  g_autoptr (GError) err = NULL;
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &err) || !url || argc > 1 || p.seconds < 1 ||
      (p.frame_ms != 10 && p.frame_ms != 20) || !parse_url (&p, url)) {
    fprintf (stderr, "wsprobe: %s\n%s",
             err ? err->message
                 : "need --url ws://HOST:PORT/PATH"
                   " (and --seconds >= 1, --frame-ms 10|20)",
             g_option_context_get_help (ctx, TRUE, NULL));
    return 2;
  }
  p.expect_close = opt_expect_close;
  if (!p.room)
    p.room = g_strdup ("");
  if (!p.lang)
    p.lang = g_strdup ("");
  p.in = g_byte_array_new (), p.msg = g_byte_array_new ();
  p.errors = g_ptr_array_new_with_free_func (g_free);
  p.texts = g_ptr_array_new_with_free_func (g_free);
  p.delays = g_array_new (FALSE, FALSE, sizeof (double));
  p.timeline = g_string_new (NULL);
  p.level = g_array_new (FALSE, FALSE, sizeof (float));
  p.text_win = g_array_new (FALSE, FALSE, sizeof (int));
  p.window_rx = g_array_new (FALSE, FALSE, sizeof (int));
  p.text_rx = g_array_new (FALSE, FALSE, sizeof (int));
  for (int i = 0; i < WIN; i++)
    p.window[i] = 0.5 - 0.5 * cos (2 * G_PI * i / WIN);
  int oerr;
  p.dec = opus_decoder_create (RATE, 1, &oerr);
  g_assert (p.dec); /* only fails on bad arguments */

  if (!ws_connect (&p, &err))
    fail (&p, "%s", err->message);
  else
    run (&p);
  report (&p);
  int rc = p.n_errors ? 1 : 0;
  /* Freed so that a sanitizer build (make asan) reports only real leaks. */
  if (p.fd >= 0)
    close (p.fd);
  opus_decoder_destroy (p.dec);
  g_free (p.host), g_free (p.port), g_free (p.path), g_free (p.room), g_free (p.lang);
  g_free (p.close_reason);
  g_byte_array_unref (p.in), g_byte_array_unref (p.msg);
  g_ptr_array_unref (p.errors), g_ptr_array_unref (p.texts);
  g_array_unref (p.delays), g_string_free (p.timeline, TRUE);
  g_array_unref (p.level), g_array_unref (p.text_win);
  g_array_unref (p.window_rx), g_array_unref (p.text_rx);
  if (p.hello)
    json_node_unref (p.hello);
  return rc;
}
