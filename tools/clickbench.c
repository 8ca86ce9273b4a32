/* clickbench — mouth-to-socket latency through a booth.
 *
 * Sends a click track as Opus/RTP into a hardware-booth input (what a booth
 * console's encoder would send) and listens to that booth's channel on
 * /ws/listen, decoding it with libopus and timing every click.
 *
 *   latency = (t_recv + o_recv) - (t_send + o_send)
 *
 * t_send: wall time the RTP packet carrying the click onset left us; o_send:
 * the onset's offset inside that packet. t_recv: wall time the WebSocket
 * message carrying the onset arrived; o_recv: its offset inside that packet.
 * A server that forwarded packets untouched would score 0: what remains is the
 * server's own cost (jitter buffer, decode, mix, the channel encoder's frame and
 * look-ahead, fan-out, the socket). Both clocks are this host's CLOCK_REALTIME.
 *
 * The click period (501.3 ms by default) divides neither 10 nor 20 ms, so the
 * onset walks through every position inside a frame. The first second is
 * skipped (the booth goes on air and ramps in).
 *
 * Usage: clickbench --url ws://127.0.0.1:8090/ws/listen?room=main&lang=hy
 *                   --rtp 127.0.0.1:15102 [--clicks 200] [--period-ms 501.3]
 *                   [--frame-ms 20] [--json]
 *        clickbench --url ... --listen-only N
 *   no sender (the clicks come from a WebRTC booth or the stage): listens N
 *   seconds and prints one JSON object: each click's arrival (arrivals_us),
 *   the header's ingress time of the message that carried it (ingress_us),
 *   and a histogram of the messages' inter-arrival times (interarrival_ms).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <glib.h>
#include <math.h>
#include <netdb.h>
#include <opus.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RATE 48000
#define CLICK_SAMPLES 96 /* 2 ms burst of 3 kHz */
#define THRESHOLD 0.15f  /* the burst peaks at 0.6; Opus pre-echo stays far below */
#define QUIET_MS 100     /* re-arm only after this much quiet */

typedef struct {
  char *host, *port, *path, *rtp_host;
  int rtp_port, clicks, frame_ms, listen_seconds;
  double period_ms;
  gboolean json;
  /* sender → receiver, under lock */
  GMutex lock;
  GArray *sent_us;   /* double: t_send + o_send of click i, µs since epoch */
  gboolean sending_done;
} Bench;

static gint64
wall_us (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_REALTIME, &ts);
  return (gint64) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- sender: a real-time Opus/RTP click track ---------------------------- */

static gpointer
sender_main (gpointer data)
{
  Bench *b = data;
  int err, frame = RATE * b->frame_ms / 1000;
  OpusEncoder *enc = opus_encoder_create (RATE, 1, OPUS_APPLICATION_AUDIO, &err);
  opus_encoder_ctl (enc, OPUS_SET_BITRATE (32000));
  int fd = socket (AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons (b->rtp_port) };
  inet_pton (AF_INET, b->rtp_host, &to.sin_addr);

  float *pcm = g_new0 (float, frame);
  guint8 pkt[12 + 1500];
  guint32 ssrc = g_random_int ();
  double skip = RATE * 1.0, period = RATE * b->period_ms / 1000.0;
  guint64 total = (guint64) (skip + period * b->clicks + RATE);
  struct timespec next;
  clock_gettime (CLOCK_MONOTONIC, &next);
  for (guint64 k = 0; k * frame < total; k++) {
    guint64 first = k * frame;
    int onset = -1;
    for (int i = 0; i < frame; i++) {
      double n = (double) (first + i) - skip;
      double pos = n >= 0 ? fmod (n, period) : -1;
      if (pos >= 0 && pos < CLICK_SAMPLES && n / period < b->clicks) {
        if (pos < 1)
          onset = i;
        pcm[i] = (float) (0.6 * sin (2 * G_PI * 3000 * pos / RATE) * sin (G_PI * pos / CLICK_SAMPLES));
      } else {
        pcm[i] = 0;
      }
    }
    int len = opus_encode_float (enc, pcm, frame, pkt + 12, sizeof pkt - 12);
    /* a console sends a frame as soon as it is complete: wait for its end */
    next.tv_nsec += b->frame_ms * 1000000L;
    while (next.tv_nsec >= 1000000000L) {
      next.tv_nsec -= 1000000000L;
      next.tv_sec++;
    }
    clock_nanosleep (CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
    pkt[0] = 0x80;
    pkt[1] = 96 | (k == 0 ? 0x80 : 0);
    guint16 seq = htons ((guint16) k);
    guint32 ts = htonl ((guint32) first), ss = htonl (ssrc);
    memcpy (pkt + 2, &seq, 2);
    memcpy (pkt + 4, &ts, 4);
    memcpy (pkt + 8, &ss, 4);
    gint64 t = wall_us ();
    sendto (fd, pkt, 12 + len, 0, (struct sockaddr *) &to, sizeof to);
    if (onset >= 0) {
      double at = t + onset * 1e6 / RATE;
      g_mutex_lock (&b->lock);
      g_array_append_val (b->sent_us, at);
      g_mutex_unlock (&b->lock);
    }
  }
  g_mutex_lock (&b->lock);
  b->sending_done = TRUE;
  g_mutex_unlock (&b->lock);
  close (fd);
  g_free (pcm);
  opus_encoder_destroy (enc);
  return NULL;
}

/* ---- receiver: a minimal RFC 6455 client (server frames are unmasked) ---- */

static int
ws_connect (Bench *b)
{
  struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
  if (getaddrinfo (b->host, b->port, &hints, &ai) != 0)
    return -1;
  int fd = socket (ai->ai_family, SOCK_STREAM, 0);
  if (connect (fd, ai->ai_addr, ai->ai_addrlen) < 0) {
    freeaddrinfo (ai);
    return -1;
  }
  freeaddrinfo (ai);
  g_autofree char *req = g_strdup_printf ("GET %s HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\n"
                                          "Connection: Upgrade\r\nSec-WebSocket-Key: ZHJhZ29tYW4tY2xpY2tz\r\n"
                                          "Sec-WebSocket-Version: 13\r\n\r\n",
                                          b->path, b->host, b->port);
  if (send (fd, req, strlen (req), 0) < 0)
    return -1;
  /* read the response headers byte by byte: the frames right behind them stay in the socket */
  char c, last4[4] = { 0 };
  GString *h = g_string_new (NULL);
  while (recv (fd, &c, 1, 0) == 1) {
    g_string_append_c (h, c);
    memmove (last4, last4 + 1, 3);
    last4[3] = c;
    if (!memcmp (last4, "\r\n\r\n", 4))
      break;
  }
  gboolean ok = g_str_has_prefix (h->str, "HTTP/1.1 101");
  g_string_free (h, TRUE);
  return ok ? fd : -1;
}

static gboolean
read_exact (int fd, guint8 *buf, gsize len)
{
  while (len) {
    ssize_t n = recv (fd, buf, len, 0);
    if (n <= 0)
      return FALSE;
    buf += n;
    len -= n;
  }
  return TRUE;
}

/* one whole message (no fragmentation from our server); returns opcode or -1 */
static int
read_message (int fd, guint8 *buf, gsize cap, gsize *len)
{
  guint8 h[2];
  if (!read_exact (fd, h, 2))
    return -1;
  guint64 n = h[1] & 0x7f;
  if (n == 126) {
    guint8 e[2];
    if (!read_exact (fd, e, 2))
      return -1;
    n = (e[0] << 8) | e[1];
  } else if (n == 127) {
    return -1;
  }
  if (n > cap || !read_exact (fd, buf, n))
    return -1;
  *len = n;
  return h[0] & 0x0f;
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

static double
pct (GArray *a, double q)
{
  if (!a->len)
    return NAN;
  guint i = (guint) ceil (q * a->len) - 1;
  return g_array_index (a, double, MIN (i, a->len - 1));
}

int
main (int argc, char **argv)
{
  Bench b = { .clicks = 200, .period_ms = 501.3, .frame_ms = 20 };
  g_autofree char *url = NULL, *rtp = NULL;
  GOptionEntry entries[] = {
    { "url", 0, 0, G_OPTION_ARG_STRING, &url, "ws://HOST:PORT/ws/listen?room=R&lang=L", "URL" },
    { "rtp", 0, 0, G_OPTION_ARG_STRING, &rtp, "booth input HOST:PORT (Opus/RTP)", "ADDR" },
    { "clicks", 0, 0, G_OPTION_ARG_INT, &b.clicks, "clicks to time (200)", "N" },
    { "period-ms", 0, 0, G_OPTION_ARG_DOUBLE, &b.period_ms, "click period (501.3)", "MS" },
    { "frame-ms", 0, 0, G_OPTION_ARG_INT, &b.frame_ms, "sender's Opus frame (20)", "MS" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &b.json, "print one JSON object", NULL },
    { "listen-only", 0, 0, G_OPTION_ARG_INT, &b.listen_seconds,
      "no sender: listen N seconds and print every click's arrival (for a WebRTC booth's clicks)", "N" },
    { NULL },
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- mouth-to-socket latency through a booth");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_autoptr (GError) err = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &err) || !url || (!rtp && !b.listen_seconds) ||
      !g_str_has_prefix (url, "ws://")) {
    g_printerr ("clickbench: %s\n", err ? err->message : "--url ws://... and --rtp HOST:PORT (or --listen-only N) are required");
    return 2;
  }
  const char *hp = url + 5, *slash = strchr (hp, '/'), *colon = strchr (hp, ':');
  if (!slash || !colon || colon > slash) {
    g_printerr ("clickbench: --url needs ws://HOST:PORT/PATH\n");
    return 2;
  }
  b.host = g_strndup (hp, colon - hp);
  b.port = g_strndup (colon + 1, slash - colon - 1);
  b.path = g_strdup (slash);
  char *rc = rtp ? strrchr (rtp, ':') : NULL;
  if (rtp && !rc) {
    g_printerr ("clickbench: --rtp needs HOST:PORT\n");
    return 2;
  }
  if (rtp) {
    b.rtp_host = g_strndup (rtp, rc - rtp);
    b.rtp_port = atoi (rc + 1);
  }
  g_mutex_init (&b.lock);
  b.sent_us = g_array_new (FALSE, FALSE, sizeof (double));

  int fd = ws_connect (&b);
  if (fd < 0) {
    g_printerr ("clickbench: cannot connect to %s\n", url);
    return 1;
  }
  GThread *sender = NULL;
  gint64 listen_until = 0;
  if (b.listen_seconds)
    listen_until = g_get_monotonic_time () + (gint64) b.listen_seconds * G_USEC_PER_SEC;
  else
    sender = g_thread_new ("sender", sender_main, &b);

  int derr;
  OpusDecoder *dec = opus_decoder_create (RATE, 1, &derr);
  float pcm[RATE / 10];
  guint8 msg[4096];
  gsize len;
  GArray *recv_us = g_array_new (FALSE, FALSE, sizeof (double));
  GArray *ingress_us = g_array_new (FALSE, FALSE, sizeof (double)); /* header's ingress time of each click's message */
  /* message inter-arrival times (listen-only): a steady channel is one per frame */
  static const double gap_edges_ms[] = { 2, 5, 15, 25, 45, 85 };
  guint gap_hist[G_N_ELEMENTS (gap_edges_ms) + 1] = { 0 };
  gint64 last_msg_us = 0;
  double max_gap_ms = 0;
  guint quiet = 0, frame_ms = 0;
  gboolean armed = FALSE;
  guint64 packets = 0, gaps = 0;
  guint32 next_seq = 0;
  gint64 done_at = 0;
  struct timeval tv = { .tv_sec = 0, .tv_usec = 200000 };
  setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  for (;;) {
    g_mutex_lock (&b.lock);
    gboolean done = b.sending_done || (listen_until && g_get_monotonic_time () > listen_until);
    g_mutex_unlock (&b.lock);
    if (done && !done_at)
      done_at = g_get_monotonic_time ();
    if (done_at && g_get_monotonic_time () - done_at > 1000000)
      break;
    int op = read_message (fd, msg, sizeof msg, &len);
    if (op < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        continue;
      g_printerr ("clickbench: the server closed the connection\n");
      break;
    }
    gint64 t = wall_us ();
    if (op != 2 || len < 16)
      continue;
    guint32 seq = ((guint32) msg[4] << 24) | (msg[5] << 16) | (msg[6] << 8) | msg[7];
    guint64 ingress = 0;
    for (int i = 8; i < 16; i++)
      ingress = ingress << 8 | msg[i];
    if (last_msg_us) {
      double g = (t - last_msg_us) / 1000.0;
      guint bin = 0;
      while (bin < G_N_ELEMENTS (gap_edges_ms) && g >= gap_edges_ms[bin])
        bin++;
      gap_hist[bin]++;
      max_gap_ms = MAX (max_gap_ms, g);
    }
    last_msg_us = t;
    if (packets++ && seq != next_seq)
      gaps++;
    next_seq = seq + 1;
    int n = opus_decode_float (dec, msg + 16, (int) len - 16, pcm, G_N_ELEMENTS (pcm), 0);
    frame_ms = n * 1000 / RATE;
    for (int i = 0; i < n; i++) {
      float a = fabsf (pcm[i]);
      if (armed && a > THRESHOLD) {
        double at = t + i * 1e6 / RATE, ing = (double) ingress;
        g_array_append_val (recv_us, at);
        g_array_append_val (ingress_us, ing);
        armed = FALSE;
        quiet = 0;
      } else if (a < THRESHOLD / 4) {
        if (++quiet >= RATE * QUIET_MS / 1000)
          armed = TRUE;
      } else {
        quiet = 0;
      }
    }
  }
  if (sender)
    g_thread_join (sender);
  if (b.listen_seconds) {
    /* the clicks' arrival times (µs since the epoch): bench.py matches them to
     * the sender's own record */
    GString *o = g_string_new ("{\"arrivals_us\":[");
    for (guint j = 0; j < recv_us->len; j++)
      g_string_append_printf (o, "%s%.0f", j ? "," : "", g_array_index (recv_us, double, j));
    /* the header's ingress time of the message that carried each click: when the
     * newest audio in it existed on the server's clock (docs/protocol.md) */
    g_string_append (o, "],\"ingress_us\":[");
    for (guint j = 0; j < ingress_us->len; j++)
      g_string_append_printf (o, "%s%.0f", j ? "," : "", g_array_index (ingress_us, double, j));
    g_string_append (o, "],\"interarrival_ms\":{");
    for (guint j = 0; j <= G_N_ELEMENTS (gap_edges_ms); j++) {
      if (j < G_N_ELEMENTS (gap_edges_ms))
        g_string_append_printf (o, "%s\"<%g\":%u", j ? "," : "", gap_edges_ms[j], gap_hist[j]);
      else
        g_string_append_printf (o, ",\">=%g\":%u", gap_edges_ms[j - 1], gap_hist[j]);
    }
    g_string_append_printf (o, ",\"max\":%.1f}", max_gap_ms);
    g_string_append_printf (o, ",\"packets\":%" G_GUINT64_FORMAT ",\"gaps\":%" G_GUINT64_FORMAT "}", packets, gaps);
    g_print ("%s\n", o->str);
    g_string_free (o, TRUE);
    return 0;
  }

  /* match each detection to the latest click sent before it (within one period) */
  GArray *lat = g_array_new (FALSE, FALSE, sizeof (double));
  guint unmatched = 0;
  for (guint j = 0, i = 0; j < recv_us->len; j++) {
    double r = g_array_index (recv_us, double, j);
    while (i + 1 < b.sent_us->len && g_array_index (b.sent_us, double, i + 1) <= r)
      i++;
    double s = i < b.sent_us->len ? g_array_index (b.sent_us, double, i) : 0;
    if (s && r >= s && r - s < b.period_ms * 1000 * 0.8) {
      double ms = (r - s) / 1000.0;
      g_array_append_val (lat, ms);
    } else {
      unmatched++;
    }
  }
  g_array_sort (lat, cmp_double);
  double p50 = pct (lat, 0.5), p95 = pct (lat, 0.95), p99 = pct (lat, 0.99), max = pct (lat, 1.0);
  if (b.json)
    g_print ("{\"clicks_sent\":%u,\"clicks_timed\":%u,\"unmatched\":%u,\"packets\":%" G_GUINT64_FORMAT
             ",\"gaps\":%" G_GUINT64_FORMAT ",\"listener_frame_ms\":%u,\"sender_frame_ms\":%d,"
             "\"latency_ms\":{\"p50\":%.2f,\"p95\":%.2f,\"p99\":%.2f,\"max\":%.2f}}\n",
             b.sent_us->len, lat->len, unmatched, packets, gaps, frame_ms, b.frame_ms, p50, p95, p99, max);
  else
    g_print ("clicks sent %u, timed %u, unmatched %u; packets %" G_GUINT64_FORMAT " (gaps %" G_GUINT64_FORMAT
             "); mouth-to-socket p50 %.1f ms, p95 %.1f, p99 %.1f, max %.1f\n",
             b.sent_us->len, lat->len, unmatched, packets, gaps, p50, p95, p99, max);
  opus_decoder_destroy (dec);
  close (fd);
  return lat->len >= b.sent_us->len * 9 / 10 ? 0 : 1;
}
