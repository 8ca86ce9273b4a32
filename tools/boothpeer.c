/* boothpeer — an interpreter's console without a browser.
 *
 * The test peer for /ws/booth (docs/protocol.md) and for `make bench`: it
 * signs in like the booth page does, offers one sendrecv Opus transceiver
 * over webrtcbin (its "microphone" out, the return feed in), trickles ICE
 * both ways, then plays a console script and analyses what comes back.
 *
 *   microphone   audiotestsrc is-live (sine F Hz, or a click track) ->
 *                opusenc 20 ms, in-band FEC -> rtpopuspay pt=96 -> webrtcbin
 *   return feed  webrtcbin src pad -> rtpopusdepay -> opusdec -> appsink:
 *                RMS and Goertzel per 100 ms window at the demo's ident
 *                tones (8000 floor, 8500 en, 9000 hy, 9500 az, 10000 ru,
 *                10500 tr), same method and threshold as tools/wsprobe.c
 *
 * The WebSocket is a hand-written RFC 6455 client on plain sockets (masked
 * client frames, fragmented messages, ping/pong, close handshake), read on
 * the GLib main loop.  webrtcbin calls us from its own threads: those only
 * send (under send_lock) and record (under lock).
 *
 * Click track (--click-period-ms P): 2 ms bursts of 3 kHz (peak 0.6) every
 * P ms, written into the live source's buffers.  Each click's "mouth" time
 * is the wall-clock time its onset sample was captured: pipeline clock
 * base_time + buffer PTS + onset offset, mapped to CLOCK_REALTIME.  A
 * listener that timestamps the click's arrival gets mouth-to-socket latency.
 *
 * Clicks in the return feed (--return-clicks): the same detector as
 * tools/clickbench.c (|x| > 0.15 after 100 ms below 0.0375) on the decoded
 * return feed; each onset's time is the wall-clock time its decoded buffer
 * reached the appsink plus the onset's offset in it (clickbench's t_recv +
 * o_recv). The feed has been through webrtcbin's jitter buffer (--latency).
 * For floor-to-booth latency: clicks sent into the stage, heard here.
 *
 * Console script (--actions "T:ACTION[=VALUE],..."): T is seconds after
 * `joined` (or after ICE connected, with --actions-from-ice: steadier on a
 * loaded machine, where DTLS set-up can take seconds).  Protocol actions:
 * on-air, cough, listen, output, chat, request-handover, take-over,
 * slow-down.  Local ones: freq=HZ and mute=true|false (the microphone),
 * quit (close 1000, report), drop (report, then exit without a close: an
 * interpreter's laptop dying).  Every server message is printed with a
 * timestamp.
 *
 * Times in the output are seconds since the program started (t=0 is
 * wall_start_us, so other tools can be put on the same axis).
 * --expect-error CODE: a negative test; the server must answer with that
 * error and close with its code (bad-token 4401, unknown-booth 4404,
 * booth-full 4409, bad-message 4400, too-many-attempts 4429).
 *
 * Exit: 0 ok; 1 protocol error, an unexpected server error or close, ICE
 * not connected within --ice-timeout s, or --expect-error not met; 2 usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <glib-unix.h>
#include <glib.h>
#include <gst/gst.h>
#include <gst/sdp/sdp.h>
#define GST_USE_UNSTABLE_API
#include <gst/webrtc/webrtc.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define RATE 48000
#define WIN (RATE / 10)   /* 100 ms analysis window: 10 Hz bins */
#define MAX_MSG (1 << 20) /* an SDP is a few kB */
#define MAX_ERRORS 20
#define MAX_MESSAGES 500
#define N_IDENT 6
#define N_REF 7
#define CLICK_SAMPLES 96      /* 2 ms burst of 3 kHz, like tools/clickbench.c */
#define CLICK_THRESHOLD 0.15f /* the return-feed click detector: as tools/clickbench.c */
#define CLICK_QUIET_MS 100

static const double ident_hz[N_IDENT] = {8000, 8500, 9000, 9500, 10000, 10500};
static const char *ident_name[N_IDENT] = {"orig", "en", "hy", "az", "ru", "tr"};
static const char ident_char[N_IDENT] = {'o', 'e', 'h', 'a', 'r', 't'};
static const double ref_hz[N_REF] = {7750, 8250, 8750, 9250, 9750, 10250, 10750};

typedef struct {
  double at; /* seconds after joined */
  char *what, *value;
} Action;

typedef struct {
  /* options */
  char *host, *port, *path, *room, *booth, *token, *name, *actions_spec, *expect_error, *first_message, *ice_ip;
  double freq, volume, click_period_ms, seconds;
  int latency_ms, ice_timeout, expect_close;
  gboolean json, no_media, actions_from_ice, return_clicks;
  GArray *actions; /* Action */
  /* main loop */
  GMainLoop *loop;
  gint64 t0_mono, wall_start_us;
  int fd;
  GMutex send_lock;     /* serialises frames on fd: webrtcbin threads send too */
  GByteArray *in, *msg; /* main loop only */
  int msg_opcode;
  guint fd_watch;
  gboolean close_sent, quitting;
  int exit_code; /* forced at quit (drop) */
  /* media: created on `joined`; the pointers are set once, on the main loop */
  GstElement *pipe, *webrtc, *src;
  GstClockTime base_time;
  /* results: protected by lock */
  GMutex lock;
  gboolean joined;
  double joined_at, ice_at, dropped_at, actions_at;
  char *id, *ice_state, *conn_state, *last_state;
  GPtrArray *errors, *messages, *sent; /* JSON fragments / strings */
  guint n_errors, n_server_errors, n_candidates_out, n_candidates_in;
  gboolean expected_error_seen, remote_set;
  int close_code;
  char *close_reason;
  gboolean server_closed_first;
  guint64 packets_sent, clicks_sent_total;
  GArray *click_us;     /* double: wall µs of each click onset */
  guint64 sample_count; /* microphone samples written (click phase) */
  /* return feed analysis (appsink thread, results under lock) */
  float pcm[WIN];
  guint pcm_fill;
  double window[WIN], sumsq, win_sumsq;
  guint64 nsamples;
  guint tones[N_IDENT + 1];
  GString *timeline;
  GArray *win_rms, *win_end; /* float dBFS, double s */
  double first_audio_at;
  gboolean rc_armed; /* return-feed click detector (appsink thread) */
  guint rc_quiet;
  GArray *ret_click_us; /* double: wall µs of each click onset heard in the return feed (under lock) */
  /* webrtcbin stats at the end */
  gint64 st_sent, st_recv, st_lost;
  double st_jitter, st_rtt;
} Peer;

static double
now_s (Peer *p)
{
  return (g_get_monotonic_time () - p->t0_mono) / 1e6;
}

static void G_GNUC_PRINTF (2, 3) fail (Peer *p, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  char *m = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_mutex_lock (&p->lock);
  p->n_errors++;
  if (p->errors->len < MAX_ERRORS)
    g_ptr_array_add (p->errors, g_strdup (m));
  g_mutex_unlock (&p->lock);
  fprintf (stderr, "[%7.3f] error: %s\n", now_s (p), m);
  g_free (m);
}

/* Log lines go to stdout, or to stderr with --json so stdout stays one object. */
static void G_GNUC_PRINTF (2, 3) say (Peer *p, const char *fmt, ...)
{
  va_list ap;
  FILE *f = p->json ? stderr : stdout;
  va_start (ap, fmt);
  fprintf (f, "[%7.3f] ", now_s (p));
  vfprintf (f, fmt, ap);
  fputc ('\n', f);
  fflush (f);
  va_end (ap);
}

static void report (Peer *p);
static gboolean ok_so_far (Peer *p);
static gboolean schedule_actions (gpointer data);

/* ---- WebSocket client ----------------------------------------------------- */

static gboolean
send_all (int fd, const guint8 *buf, gsize len)
{
  while (len > 0) {
    ssize_t n = send (fd, buf, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && errno == EAGAIN) {
      struct pollfd pfd = {.fd = fd, .events = POLLOUT};
      poll (&pfd, 1, 1000);
      continue;
    }
    if (n <= 0)
      return FALSE;
    buf += n, len -= (gsize)n;
  }
  return TRUE;
}

/* Client frames are masked with a fresh key each (RFC 6455 §5.3). Any thread. */
static gboolean
send_frame (Peer *p, int opcode, const guint8 *data, gsize len)
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
  g_mutex_lock (&p->send_lock);
  gboolean ok = p->fd >= 0 && !p->close_sent && send_all (p->fd, body, len + h);
  if (opcode == 0x8)
    p->close_sent = TRUE;
  g_mutex_unlock (&p->send_lock);
  return ok;
}

static void
send_close (Peer *p, int code)
{
  guint8 b[2] = {(guint8)(code >> 8), (guint8)code};
  send_frame (p, 0x8, b, 2);
}

/* Sends a JSON object and keeps a copy for the report. Any thread. */
static void
send_json (Peer *p, JsonBuilder *b)
{
  g_autoptr (JsonNode) root = json_builder_get_root (b);
  g_autofree char *txt = json_to_string (root, FALSE);
  if (!send_frame (p, 0x1, (const guint8 *)txt, strlen (txt)))
    fail (p, "send failed: %s", g_strerror (errno));
  const char *type = json_object_get_string_member (json_node_get_object (root), "type");
  if (g_strcmp0 (type, "ice") && g_strcmp0 (type, "offer")) /* those are counted, not logged */
    say (p, "-> %s", txt);
  else if (!g_strcmp0 (type, "offer"))
    say (p, "-> offer (%zu bytes of SDP)", strlen (txt));
  if (g_strcmp0 (type, "join") == 0) /* never put the token in a report */
    return;
  g_mutex_lock (&p->lock);
  if (g_strcmp0 (type, "ice") && p->sent->len < MAX_MESSAGES)
    g_ptr_array_add (p->sent, g_strdup_printf ("{\"t\":%.3f,\"msg\":%s}", now_s (p), txt));
  g_mutex_unlock (&p->lock);
}

static int
fill (Peer *p, gint64 deadline_us)
{
  gint64 left = deadline_us - g_get_monotonic_time ();
  struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
  guint8 buf[16384];
  if (left <= 0)
    return 0;
  int r = poll (&pfd, 1, (int)((left + 999) / 1000));
  if (r <= 0)
    return r < 0 && errno != EINTR ? -1 : 0;
  ssize_t n = recv (p->fd, buf, sizeof buf, 0);
  if (n < 0 && (errno == EINTR || errno == EAGAIN))
    return 0;
  if (n <= 0)
    return -1;
  g_byte_array_append (p->in, buf, (guint)n);
  return 1;
}

static gboolean
closed_early (GError **err)
{
  g_set_error (err, G_IO_ERROR, G_IO_ERROR_FAILED, "handshake: connection closed or timed out before the headers");
  return FALSE;
}

static gboolean
ws_connect (Peer *p, GError **err)
{
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
  int r = getaddrinfo (p->host, p->port, &hints, &ai);
  if (r != 0) {
    g_set_error (err, G_IO_ERROR, G_IO_ERROR_FAILED, "resolve %s: %s", p->host, gai_strerror (r));
    return FALSE;
  }
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
                                          "Sec-WebSocket-Version: 13\r\nUser-Agent: dragoman-boothpeer\r\n\r\n",
                                          p->path, p->host, p->port, key);
  if (!send_all (p->fd, (const guint8 *)req, strlen (req)))
    return closed_early (err);
  /* The server may pipeline frames right behind the headers: keep them in p->in. */
  gint64 deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;
  char *end;
  while (p->in->len == 0 || !(end = g_strstr_len ((char *)p->in->data, p->in->len, "\r\n\r\n")))
    if (p->in->len > 16384 || fill (p, deadline) <= 0)
      return closed_early (err);
  gsize hlen = (gsize)(end - (char *)p->in->data) + 4;
  g_autofree char *head = g_strndup ((char *)p->in->data, hlen);
  g_byte_array_remove_range (p->in, 0, (guint)hlen);
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
  for (char **l = lines + 1; *l; l++)
    if (g_ascii_strncasecmp (*l, "Sec-WebSocket-Accept:", 21) == 0 && strcmp (g_strstrip (*l + 21), want) == 0)
      return TRUE;
  g_set_error (err, G_IO_ERROR, G_IO_ERROR_FAILED, "missing or wrong Sec-WebSocket-Accept (want %s)", want);
  return FALSE;
}

/* ---- return feed analysis (appsink streaming thread) ---------------------- */

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

/* A window is "dominated" by an ident only if its bin is > 10 dB above the
 * mean of reference bins half-way between idents (as tools/wsprobe.c). */
static void
analyse_window (Peer *p)
{
  double x[WIN], best = 0, ref = 0;
  int bi = -1;
  for (int i = 0; i < WIN; i++)
    x[i] = p->pcm[i] * p->window[i];
  for (int k = 0; k < N_REF; k++)
    ref += goertzel (x, ref_hz[k]) / N_REF;
  for (int k = 0; k < N_IDENT; k++) {
    double e = goertzel (x, ident_hz[k]);
    if (e > best)
      best = e, bi = k;
  }
  if (bi < 0 || best < 1e-9 || best <= 10.0 * ref)
    bi = N_IDENT;
  float rms = (float)(10 * log10 (p->win_sumsq / WIN + 1e-20));
  double t = now_s (p);
  g_mutex_lock (&p->lock);
  p->tones[bi]++;
  g_string_append_c (p->timeline, bi == N_IDENT ? '.' : ident_char[bi]);
  g_array_append_val (p->win_rms, rms);
  g_array_append_val (p->win_end, t);
  guint n = p->timeline->len;
  g_mutex_unlock (&p->lock);
  p->win_sumsq = 0;
  if (n % 10 == 0) /* one line per second of return feed */
    say (p, "return feed %3u s: rms %.1f dBFS, idents %.10s", n / 10, rms, p->timeline->str + n - 10);
}

/* appsink's "new-sample" signal, so that only the build line's libraries are needed. */
static GstFlowReturn
on_return_sample (GstElement *sink, gpointer data)
{
  Peer *p = data;
  g_autoptr (GstSample) s = NULL;
  g_signal_emit_by_name (sink, "pull-sample", &s);
  GstBuffer *buf = s ? gst_sample_get_buffer (s) : NULL;
  GstMapInfo m;
  if (!buf || !gst_buffer_map (buf, &m, GST_MAP_READ))
    return GST_FLOW_OK;
  const float *f = (const float *)m.data;
  gsize n = m.size / sizeof (float);
  gint64 arrived_us = g_get_real_time ();
  if (p->return_clicks) {
    for (gsize i = 0; i < n; i++) {
      float a = fabsf (f[i]);
      if (p->rc_armed && a > CLICK_THRESHOLD) {
        double at = (double)arrived_us + i * 1e6 / RATE;
        g_mutex_lock (&p->lock);
        g_array_append_val (p->ret_click_us, at);
        g_mutex_unlock (&p->lock);
        p->rc_armed = FALSE, p->rc_quiet = 0;
      } else if (a < CLICK_THRESHOLD / 4) {
        if (++p->rc_quiet >= RATE * CLICK_QUIET_MS / 1000)
          p->rc_armed = TRUE;
      } else {
        p->rc_quiet = 0;
      }
    }
  }
  if (p->nsamples == 0) {
    g_mutex_lock (&p->lock);
    p->first_audio_at = now_s (p);
    g_mutex_unlock (&p->lock);
    say (p, "return feed: first audio");
  }
  for (gsize i = 0; i < n; i++) {
    double v = f[i];
    p->sumsq += v * v, p->win_sumsq += v * v;
    p->pcm[p->pcm_fill++] = f[i];
    if (p->pcm_fill == WIN)
      analyse_window (p), p->pcm_fill = 0;
  }
  p->nsamples += n;
  gst_buffer_unmap (buf, &m);
  return GST_FLOW_OK;
}

static void
on_pad_added (GstElement *webrtc, GstPad *pad, gpointer data)
{
  Peer *p = data;
  if (GST_PAD_DIRECTION (pad) != GST_PAD_SRC)
    return;
  g_autoptr (GstCaps) caps = gst_pad_get_current_caps (pad);
  if (!caps)
    caps = gst_pad_query_caps (pad, NULL);
  g_autofree char *cs = caps ? gst_caps_to_string (caps) : g_strdup ("(none)");
  GstStructure *st = caps ? gst_caps_get_structure (caps, 0) : NULL;
  const char *media = st ? gst_structure_get_string (st, "media") : NULL;
  const char *enc = st ? gst_structure_get_string (st, "encoding-name") : NULL;
  g_autoptr (GError) err = NULL;
  GstElement *bin;
  say (p, "webrtcbin pad %s: %s", GST_PAD_NAME (pad), cs);
  if (g_strcmp0 (media, "audio") || g_ascii_strcasecmp (enc ? enc : "", "OPUS")) {
    bin = gst_parse_bin_from_description ("fakesink sync=false async=false", TRUE, &err);
  } else {
    bin = gst_parse_bin_from_description (
        "rtpopusdepay ! opusdec plc=true use-inband-fec=true ! audioconvert ! "
        "audioresample ! audio/x-raw,format=F32LE,rate=48000,channels=1 ! "
        "appsink name=ret emit-signals=true sync=false async=false max-buffers=50 drop=false",
        TRUE, &err);
    if (bin) {
      GstElement *sink = gst_bin_get_by_name (GST_BIN (bin), "ret");
      g_signal_connect (sink, "new-sample", G_CALLBACK (on_return_sample), p);
      gst_object_unref (sink);
    }
  }
  if (!bin) {
    fail (p, "return feed bin: %s", err->message);
    return;
  }
  gst_bin_add (GST_BIN (GST_ELEMENT_PARENT (webrtc)), bin);
  gst_element_sync_state_with_parent (bin);
  g_autoptr (GstPad) sinkpad = gst_element_get_static_pad (bin, "sink");
  if (gst_pad_link (pad, sinkpad) != GST_PAD_LINK_OK)
    fail (p, "cannot link webrtcbin pad %s (%s)", GST_PAD_NAME (pad), cs);
}

/* ---- microphone: click track and packet count (streaming threads) --------- */

static GstPadProbeReturn
on_mic_buffer (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  Peer *p = data;
  (void)pad;
  GstBuffer *buf = gst_buffer_make_writable (GST_PAD_PROBE_INFO_BUFFER (info));
  GST_PAD_PROBE_INFO_DATA (info) = buf;
  /* audiotestsrc flags its silence as GAP, and the encoder then ignores the
   * contents: the clicks written below would never be heard */
  GST_BUFFER_FLAG_UNSET (buf, GST_BUFFER_FLAG_GAP);
  GstMapInfo m;
  if (!gst_buffer_map (buf, &m, GST_MAP_READWRITE))
    return GST_PAD_PROBE_OK;
  float *f = (float *)m.data;
  gsize n = m.size / sizeof (float);
  double period = RATE * p->click_period_ms / 1000.0;
  GstClock *clock = gst_element_get_clock (p->pipe);
  gint64 wall_minus_clock = 0;
  if (clock) {
    /* Both clocks read back to back: the offset is good to a few µs. */
    GstClockTime c = gst_clock_get_time (clock);
    wall_minus_clock = g_get_real_time () - (gint64)(c / 1000);
    gst_object_unref (clock);
  }
  for (gsize i = 0; i < n; i++) {
    double pos = fmod ((double)(p->sample_count + i), period);
    if (pos < CLICK_SAMPLES) {
      if (pos < 1 && GST_BUFFER_PTS_IS_VALID (buf)) {
        double at = (double)(p->base_time + GST_BUFFER_PTS (buf)) / 1000.0 + i * 1e6 / RATE + wall_minus_clock;
        g_mutex_lock (&p->lock);
        g_array_append_val (p->click_us, at);
        p->clicks_sent_total++;
        g_mutex_unlock (&p->lock);
      }
      f[i] = (float)(0.6 * sin (2 * G_PI * 3000 * pos / RATE) * sin (G_PI * pos / CLICK_SAMPLES));
    } else {
      f[i] = 0;
    }
  }
  p->sample_count += n;
  gst_buffer_unmap (buf, &m);
  return GST_PAD_PROBE_OK;
}

static GstPadProbeReturn
on_rtp_out (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  Peer *p = data;
  (void)pad, (void)info;
  g_mutex_lock (&p->lock);
  p->packets_sent++;
  g_mutex_unlock (&p->lock);
  return GST_PAD_PROBE_OK;
}

/* ---- signalling (webrtcbin threads) --------------------------------------- */

static void
on_offer_created (GstPromise *promise, gpointer data)
{
  Peer *p = data;
  GstWebRTCSessionDescription *offer = NULL;
  const GstStructure *reply = gst_promise_get_reply (promise);
  if (reply)
    gst_structure_get (reply, "offer", GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &offer, NULL);
  gst_promise_unref (promise);
  if (!offer) {
    fail (p, "create-offer gave no offer");
    return;
  }
  g_signal_emit_by_name (p->webrtc, "set-local-description", offer, NULL);
  g_autofree char *sdp = gst_sdp_message_as_text (offer->sdp);
  gst_webrtc_session_description_free (offer);
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "type"), json_builder_add_string_value (b, "offer");
  json_builder_set_member_name (b, "sdp"), json_builder_add_string_value (b, sdp);
  json_builder_end_object (b);
  send_json (p, b);
}

static void
on_negotiation_needed (GstElement *webrtc, gpointer data)
{
  Peer *p = data;
  say (p, "negotiation needed: creating the offer");
  GstPromise *promise = gst_promise_new_with_change_func (on_offer_created, p, NULL);
  g_signal_emit_by_name (webrtc, "create-offer", NULL, promise);
}

static void
on_ice_candidate (GstElement *webrtc, guint mline, const char *cand, gpointer data)
{
  Peer *p = data;
  (void)webrtc;
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "type"), json_builder_add_string_value (b, "ice");
  json_builder_set_member_name (b, "candidate"), json_builder_add_string_value (b, cand ? cand : "");
  json_builder_set_member_name (b, "sdpMLineIndex"), json_builder_add_int_value (b, mline);
  json_builder_end_object (b);
  g_mutex_lock (&p->lock);
  p->n_candidates_out++;
  g_mutex_unlock (&p->lock);
  send_json (p, b);
}

static char *
enum_nick (GObject *o, const char *prop)
{
  GParamSpec *ps = g_object_class_find_property (G_OBJECT_GET_CLASS (o), prop);
  GValue v = G_VALUE_INIT;
  g_value_init (&v, ps->value_type);
  g_object_get_property (o, prop, &v);
  GEnumValue *ev = g_enum_get_value (g_type_class_peek (ps->value_type), g_value_get_enum (&v));
  char *s = g_strdup (ev ? ev->value_nick : "?");
  g_value_unset (&v);
  return s;
}

static void
on_state_notify (GObject *webrtc, GParamSpec *pspec, gpointer data)
{
  Peer *p = data;
  char *nick = enum_nick (webrtc, pspec->name);
  say (p, "%s: %s", pspec->name, nick);
  g_mutex_lock (&p->lock);
  if (!strcmp (pspec->name, "ice-connection-state")) {
    if ((!strcmp (nick, "connected") || !strcmp (nick, "completed")) && p->ice_at < 0) {
      p->ice_at = now_s (p);
      if (p->actions_from_ice) /* the script starts now, on the main loop */
        g_idle_add (schedule_actions, p);
    }
    g_free (p->ice_state), p->ice_state = g_strdup (nick);
  } else if (!strcmp (pspec->name, "connection-state")) {
    g_free (p->conn_state), p->conn_state = g_strdup (nick);
  }
  g_mutex_unlock (&p->lock);
  /* webrtcbin 1.22 signals no end of candidates: send the protocol's empty one. */
  if (!strcmp (pspec->name, "ice-gathering-state") && !strcmp (nick, "complete"))
    on_ice_candidate (GST_ELEMENT (webrtc), 0, "", p);
  if (!strcmp (pspec->name, "ice-connection-state") && !strcmp (nick, "failed"))
    fail (p, "ICE failed");
  g_free (nick);
}

static void
on_remote_set (GstPromise *promise, gpointer data)
{
  Peer *p = data;
  const GstStructure *reply = gst_promise_get_reply (promise);
  GError *err = NULL;
  if (reply && gst_structure_has_field (reply, "error"))
    gst_structure_get (reply, "error", G_TYPE_ERROR, &err, NULL);
  if (err) {
    fail (p, "set-remote-description(answer): %s", err->message);
    g_error_free (err);
  } else {
    g_mutex_lock (&p->lock);
    p->remote_set = TRUE;
    g_mutex_unlock (&p->lock);
  }
  gst_promise_unref (promise);
}

static gboolean
on_bus (GstBus *bus, GstMessage *msg, gpointer data)
{
  Peer *p = data;
  (void)bus;
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    g_autoptr (GError) err = NULL;
    g_autofree char *dbg = NULL;
    gst_message_parse_error (msg, &err, &dbg);
    fail (p, "pipeline: %s: %s (%s)", GST_OBJECT_NAME (msg->src), err->message, dbg ? dbg : "");
    g_main_loop_quit (p->loop);
  } else if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_WARNING) {
    g_autoptr (GError) err = NULL;
    gst_message_parse_warning (msg, &err, NULL);
    say (p, "pipeline warning: %s: %s", GST_OBJECT_NAME (msg->src), err->message);
  }
  return G_SOURCE_CONTINUE;
}

static gboolean
start_media (Peer *p, GError **err)
{
  g_autofree char *desc = g_strdup_printf (
      "audiotestsrc name=mic is-live=true samplesperbuffer=480 wave=%s freq=%g volume=%g ! "
      "audio/x-raw,format=F32LE,rate=48000,channels=1 ! audioconvert ! audioresample ! "
      "opusenc frame-size=20 inband-fec=true packet-loss-percentage=5 bitrate=32000 ! "
      "rtpopuspay name=pay pt=96 ! "
      "application/x-rtp,media=audio,encoding-name=OPUS,payload=96,clock-rate=48000,useinbandfec=(string)1 ! webrtc. "
      "webrtcbin name=webrtc bundle-policy=max-bundle latency=%d",
      p->click_period_ms > 0 ? "silence" : "sine", p->freq, p->click_period_ms > 0 ? 1.0 : p->volume, p->latency_ms);
  p->pipe = gst_parse_launch (desc, err);
  if (!p->pipe)
    return FALSE;
  p->webrtc = gst_bin_get_by_name (GST_BIN (p->pipe), "webrtc");
  p->src = gst_bin_get_by_name (GST_BIN (p->pipe), "mic");
  g_signal_connect (p->webrtc, "on-negotiation-needed", G_CALLBACK (on_negotiation_needed), p);
  g_signal_connect (p->webrtc, "on-ice-candidate", G_CALLBACK (on_ice_candidate), p);
  g_signal_connect (p->webrtc, "pad-added", G_CALLBACK (on_pad_added), p);
  g_signal_connect (p->webrtc, "notify::ice-connection-state", G_CALLBACK (on_state_notify), p);
  g_signal_connect (p->webrtc, "notify::ice-gathering-state", G_CALLBACK (on_state_notify), p);
  g_signal_connect (p->webrtc, "notify::connection-state", G_CALLBACK (on_state_notify), p);

  /* Tests stay on loopback: the nice agent then gathers only this address. */
  if (p->ice_ip && *p->ice_ip) {
    GstWebRTCICE *ice = NULL;
    gboolean ok = FALSE;
    g_object_get (p->webrtc, "ice-agent", &ice, NULL);
    if (ice)
      g_signal_emit_by_name (ice, "add-local-ip-address", p->ice_ip, &ok), gst_object_unref (ice);
    if (!ok)
      say (p, "warning: could not restrict ICE to %s", p->ice_ip);
  }

  /* The sink pad's transceiver: sendrecv, so the server can send the return feed. */
  GArray *trans = NULL;
  g_signal_emit_by_name (p->webrtc, "get-transceivers", &trans);
  for (guint i = 0; trans && i < trans->len; i++)
    g_object_set (g_array_index (trans, GstWebRTCRTPTransceiver *, i), "direction",
                  GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_SENDRECV, NULL);
  if (!trans || trans->len != 1)
    say (p, "warning: %u transceivers, expected 1", trans ? trans->len : 0);
  if (trans)
    g_array_unref (trans);

  GstElement *pay = gst_bin_get_by_name (GST_BIN (p->pipe), "pay");
  GstPad *pp = gst_element_get_static_pad (pay, "src");
  gst_pad_add_probe (pp, GST_PAD_PROBE_TYPE_BUFFER, on_rtp_out, p, NULL);
  gst_object_unref (pp), gst_object_unref (pay);
  if (p->click_period_ms > 0) {
    GstPad *mp = gst_element_get_static_pad (p->src, "src");
    gst_pad_add_probe (mp, GST_PAD_PROBE_TYPE_BUFFER, on_mic_buffer, p, NULL);
    gst_object_unref (mp);
  }
  GstBus *bus = gst_element_get_bus (p->pipe);
  gst_bus_add_watch (bus, on_bus, p);
  gst_object_unref (bus);
  if (gst_element_set_state (p->pipe, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    g_set_error (err, GST_CORE_ERROR, GST_CORE_ERROR_STATE_CHANGE, "pipeline refused to play");
    return FALSE;
  }
  p->base_time = gst_element_get_base_time (p->pipe);
  return TRUE;
}

/* Reads webrtcbin's stats once, at the end: what actually crossed the wire. */
static gboolean
stats_field (GQuark field, const GValue *value, gpointer data)
{
  Peer *p = data;
  (void)field;
  if (!GST_VALUE_HOLDS_STRUCTURE (value))
    return TRUE;
  const GstStructure *s = gst_value_get_structure (value);
  GstWebRTCStatsType type;
  if (!gst_structure_get (s, "type", GST_TYPE_WEBRTC_STATS_TYPE, &type, NULL))
    return TRUE;
  guint64 u = 0;
  gint64 i64 = 0;
  double d = 0;
  if (type == GST_WEBRTC_STATS_OUTBOUND_RTP && gst_structure_get_uint64 (s, "packets-sent", &u))
    p->st_sent = (gint64)u;
  if (type == GST_WEBRTC_STATS_INBOUND_RTP) {
    if (gst_structure_get_uint64 (s, "packets-received", &u))
      p->st_recv = (gint64)u;
    if (gst_structure_get_int64 (s, "packets-lost", &i64))
      p->st_lost = i64;
    if (gst_structure_get_double (s, "jitter", &d))
      p->st_jitter = d * 1000;
  }
  if (type == GST_WEBRTC_STATS_REMOTE_INBOUND_RTP && gst_structure_get_double (s, "round-trip-time", &d))
    p->st_rtt = d * 1000;
  return TRUE;
}

static void
collect_stats (Peer *p)
{
  if (!p->webrtc)
    return;
  GstPromise *promise = gst_promise_new ();
  g_signal_emit_by_name (p->webrtc, "get-stats", NULL, promise);
  if (gst_promise_wait (promise) == GST_PROMISE_RESULT_REPLIED) {
    const GstStructure *s = gst_promise_get_reply (promise);
    if (s)
      gst_structure_foreach (s, stats_field, p);
  }
  gst_promise_unref (promise);
}

/* ---- console script (main loop) ------------------------------------------- */

static gboolean
quit_loop (gpointer data)
{
  g_main_loop_quit (((Peer *)data)->loop);
  return G_SOURCE_REMOVE;
}

static void
quit (Peer *p, int close_code)
{
  if (p->quitting)
    return;
  p->quitting = TRUE;
  if (p->fd >= 0 && !p->close_sent) {
    send_close (p, close_code);
    /* Give the server 2 s to echo the close; the reader quits on the echo. */
    g_timeout_add_seconds (2, quit_loop, p);
  } else {
    g_main_loop_quit (p->loop);
  }
}

static gboolean
run_action (gpointer data)
{
  Peer *p = ((gpointer *)data)[0];
  Action *a = ((gpointer *)data)[1];
  g_autoptr (JsonBuilder) b = json_builder_new ();
  const char *w = a->what, *v = a->value;
  if (!strcmp (w, "quit")) {
    say (p, "action: quit");
    quit (p, 1000);
    return G_SOURCE_REMOVE;
  }
  if (!strcmp (w, "drop")) {
    /* An interpreter's laptop dies: no close frame, no BYE, media stops. */
    g_mutex_lock (&p->lock);
    p->dropped_at = now_s (p);
    g_mutex_unlock (&p->lock);
    say (p, "action: drop (exit without closing)");
    collect_stats (p);
    report (p);
    fflush (NULL);
    _exit (ok_so_far (p) ? 0 : 1);
  }
  if (!strcmp (w, "freq") || !strcmp (w, "mute")) {
    if (p->src && !strcmp (w, "freq"))
      g_object_set (p->src, "freq", g_ascii_strtod (v, NULL), NULL);
    else if (p->src)
      g_object_set (p->src, "volume", !strcmp (v, "true") ? 0.0 : p->volume, NULL);
    say (p, "action: microphone %s=%s", w, v);
    return G_SOURCE_REMOVE;
  }
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "type"), json_builder_add_string_value (b, w);
  if (!strcmp (w, "on-air") || !strcmp (w, "cough")) {
    json_builder_set_member_name (b, "value"), json_builder_add_boolean_value (b, !strcmp (v, "true"));
  } else if (!strcmp (w, "listen")) {
    json_builder_set_member_name (b, "source"), json_builder_add_string_value (b, v);
  } else if (!strcmp (w, "output")) {
    json_builder_set_member_name (b, "lang"), json_builder_add_string_value (b, v);
  } else if (!strcmp (w, "chat")) {
    json_builder_set_member_name (b, "text"), json_builder_add_string_value (b, v);
  }
  json_builder_end_object (b);
  send_json (p, b);
  return G_SOURCE_REMOVE;
}

static gboolean
parse_actions (Peer *p, const char *spec, GError **err)
{
  static const char *known[] = {"on-air",    "cough",     "listen", "output", "chat", "request-handover",
                                "take-over", "slow-down", "freq",   "mute",   "quit", "drop",
                                NULL};
  static const char *need_value[] = {"on-air", "cough", "listen", "output", "chat", "freq", "mute", NULL};
  g_auto (GStrv) items = g_strsplit (spec, ",", -1);
  for (char **it = items; *it; it++) {
    char *s = g_strstrip (*it), *colon = strchr (s, ':'), *end = NULL;
    if (!*s)
      continue;
    Action a = {.at = colon ? g_ascii_strtod (s, &end) : -1};
    if (!colon || end != colon || a.at < 0)
      goto bad;
    char *eq = strchr (colon + 1, '=');
    a.what = eq ? g_strndup (colon + 1, eq - colon - 1) : g_strdup (colon + 1);
    a.value = eq ? g_strdup (eq + 1) : NULL;
    gboolean ok = g_strv_contains (known, a.what) && (!a.value == !g_strv_contains (need_value, a.what));
    if (ok && (!strcmp (a.what, "on-air") || !strcmp (a.what, "cough") || !strcmp (a.what, "mute")))
      ok = !strcmp (a.value, "true") || !strcmp (a.value, "false");
    if (!ok) {
      g_free (a.what), g_free (a.value);
      goto bad;
    }
    g_array_append_val (p->actions, a);
    continue;
  bad:
    g_set_error (err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                 "--actions: bad item '%s' (want SECONDS:ACTION[=VALUE]; actions: on-air=true|false, "
                 "cough=true|false, listen=SRC, output=LANG, chat=TEXT, request-handover, take-over, "
                 "slow-down, freq=HZ, mute=true|false, quit, drop)",
                 s);
    return FALSE;
  }
  return TRUE;
}

static gboolean
on_ice_timeout (gpointer data)
{
  Peer *p = data;
  g_mutex_lock (&p->lock);
  gboolean ok = p->ice_at >= 0;
  char *st = g_strdup (p->ice_state ? p->ice_state : "new");
  g_mutex_unlock (&p->lock);
  if (!ok) {
    fail (p, "ICE not connected %d s after joined (state %s)", p->ice_timeout, st);
    quit (p, 1000);
  }
  g_free (st);
  return G_SOURCE_REMOVE;
}

static gboolean
on_duration (gpointer data)
{
  Peer *p = data;
  say (p, "--seconds elapsed");
  quit (p, 1000);
  return G_SOURCE_REMOVE;
}

/* ---- server messages (main loop) ----------------------------------------- */

static const char *
jstr (JsonObject *o, const char *k)
{
  JsonNode *n = json_object_get_member (o, k);
  return n && JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_STRING ? json_node_get_string (n)
                                                                                         : NULL;
}

static const char *
close_for (const char *code)
{
  static const char *map[][2] = {{"bad-token", "4401"},
                                 {"unknown-booth", "4404"},
                                 {"booth-full", "4409"},
                                 {"bad-message", "4400"},
                                 {"too-many-attempts", "4429"}};
  for (guint i = 0; i < G_N_ELEMENTS (map); i++)
    if (!g_strcmp0 (code, map[i][0]))
      return map[i][1];
  return NULL;
}

static gboolean
schedule_actions (gpointer data)
{
  Peer *p = data;
  g_mutex_lock (&p->lock);
  p->actions_at = now_s (p);
  g_mutex_unlock (&p->lock);
  for (guint i = 0; i < p->actions->len; i++) {
    gpointer *pair = g_new (gpointer, 2);
    pair[0] = p, pair[1] = &g_array_index (p->actions, Action, i);
    g_timeout_add_full (G_PRIORITY_DEFAULT, (guint)(g_array_index (p->actions, Action, i).at * 1000), run_action, pair,
                        g_free);
  }
  return G_SOURCE_REMOVE;
}

static void
on_joined (Peer *p)
{
  g_autoptr (GError) err = NULL;
  if (p->expect_error) {
    fail (p, "joined, but expected error %s", p->expect_error);
    quit (p, 1000);
    return;
  }
  if (!p->no_media) {
    if (!start_media (p, &err)) {
      fail (p, "media pipeline: %s", err->message);
      quit (p, 1011);
      return;
    }
    g_timeout_add_seconds ((guint)p->ice_timeout, on_ice_timeout, p);
  }
  if (!p->actions_from_ice || p->no_media)
    schedule_actions (p);
  if (p->seconds > 0)
    g_timeout_add ((guint)(p->seconds * 1000), on_duration, p);
}

static void
on_text (Peer *p, const char *txt, gsize len)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  double t = now_s (p);
  if (!json_parser_load_from_data (parser, txt, (gssize)len, NULL) ||
      !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser))) {
    fail (p, "server text is not a JSON object: %.120s", txt);
    return;
  }
  JsonObject *o = json_node_get_object (json_parser_get_root (parser));
  const char *type = jstr (o, "type");
  gboolean quiet = !g_strcmp0 (type, "ice") || !g_strcmp0 (type, "answer");
  if (quiet)
    say (p, "<- %s%s", type, !g_strcmp0 (type, "answer") ? " (SDP)" : "");
  else
    say (p, "<- %.*s", (int)len, txt);
  g_mutex_lock (&p->lock);
  if (!g_strcmp0 (type, "ice"))
    p->n_candidates_in++;
  else if (p->messages->len < MAX_MESSAGES)
    g_ptr_array_add (p->messages, g_strdup_printf ("{\"t\":%.3f,\"msg\":%.*s}", t, (int)len, txt));
  if (!g_strcmp0 (type, "state"))
    g_free (p->last_state), p->last_state = g_strndup (txt, len);
  g_mutex_unlock (&p->lock);

  if (!g_strcmp0 (type, "joined")) {
    g_mutex_lock (&p->lock);
    gboolean again = p->joined;
    p->joined = TRUE, p->joined_at = t;
    g_free (p->id), p->id = g_strdup (jstr (o, "id"));
    g_mutex_unlock (&p->lock);
    if (again)
      fail (p, "second joined message");
    else
      on_joined (p);
  } else if (!g_strcmp0 (type, "answer")) {
    const char *sdp = jstr (o, "sdp");
    GstSDPMessage *msg = NULL;
    if (!p->webrtc) {
      fail (p, "answer without an offer");
    } else if (!sdp || gst_sdp_message_new_from_text (sdp, &msg) != GST_SDP_OK) {
      fail (p, "answer without a parsable sdp");
    } else {
      GstWebRTCSessionDescription *d = gst_webrtc_session_description_new (GST_WEBRTC_SDP_TYPE_ANSWER, msg);
      GstPromise *promise = gst_promise_new_with_change_func (on_remote_set, p, NULL);
      g_signal_emit_by_name (p->webrtc, "set-remote-description", d, promise);
      gst_webrtc_session_description_free (d);
    }
  } else if (!g_strcmp0 (type, "ice")) {
    const char *cand = jstr (o, "candidate");
    JsonNode *m = json_object_get_member (o, "sdpMLineIndex");
    if (!cand || !m || !JSON_NODE_HOLDS_VALUE (m))
      fail (p, "ice message without candidate/sdpMLineIndex: %.120s", txt);
    else if (*cand && p->webrtc) /* an empty candidate ends the trickle */
      g_signal_emit_by_name (p->webrtc, "add-ice-candidate", (guint)json_node_get_int (m), cand);
  } else if (!g_strcmp0 (type, "error")) {
    const char *code = jstr (o, "code");
    g_mutex_lock (&p->lock);
    p->n_server_errors++;
    gboolean expected = p->expect_error && !g_strcmp0 (code, p->expect_error);
    if (expected)
      p->expected_error_seen = TRUE;
    g_mutex_unlock (&p->lock);
    if (!expected)
      fail (p, "server error: %.200s", txt);
  } else if (!type) {
    fail (p, "server message without a type: %.120s", txt);
  }
}

/* Parses one frame from p->in. Returns 1 parsed, 0 need more, -1 protocol error. */
static int
parse_frame (Peer *p)
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
  if (op >= 0x8) { /* control frames may arrive between fragments */
    if (!fin || len > 125)
      return fail (p, "bad control frame op %d", op), -1;
    if (op == 0x9) {
      send_frame (p, 0xA, pl, len);
    } else if (op == 0x8) {
      g_mutex_lock (&p->lock);
      p->close_code = len >= 2 ? pl[0] << 8 | pl[1] : 1005;
      g_free (p->close_reason);
      p->close_reason = len > 2 ? g_strndup ((const char *)pl + 2, len - 2) : g_strdup ("");
      p->server_closed_first = !p->close_sent;
      g_mutex_unlock (&p->lock);
      say (p, "<- close %d %s", p->close_code, p->close_reason);
      if (!p->close_sent)
        send_close (p, p->close_code == 1005 ? 1000 : p->close_code);
    } else if (op != 0xA) {
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
      gsize n = p->msg->len;
      if (p->msg_opcode == 2) {
        fail (p, "binary message of %" G_GSIZE_FORMAT " bytes on /ws/booth", n);
      } else {
        g_byte_array_append (p->msg, (const guint8 *)"", 1);
        if (!g_utf8_validate ((const char *)p->msg->data, (gssize)n, NULL))
          fail (p, "text message is not UTF-8");
        else
          on_text (p, (const char *)p->msg->data, n);
      }
      g_byte_array_set_size (p->msg, 0);
      p->msg_opcode = 0;
    }
  }
  g_byte_array_remove_range (p->in, 0, (guint)(h + len));
  return 1;
}

/* Parses what is buffered; FALSE once the connection is over. */
static gboolean
process_input (Peer *p, gboolean eof)
{
  int r = 0;
  while (p->close_code < 0 && (r = parse_frame (p)) == 1) {
  }
  if (p->close_code < 0 && r < 0) {
    send_close (p, 1002);
    quit (p, 1002);
  }
  if (p->close_code >= 0 || eof) {
    if (p->close_code < 0)
      fail (p, "TCP connection ended without a close frame");
    g_main_loop_quit (p->loop);
    return FALSE;
  }
  return TRUE;
}

static gboolean
on_readable (gint fd, GIOCondition cond, gpointer data)
{
  Peer *p = data;
  guint8 buf[16384];
  (void)cond;
  ssize_t n = recv (fd, buf, sizeof buf, MSG_DONTWAIT);
  if (n < 0 && (errno == EINTR || errno == EAGAIN))
    return G_SOURCE_CONTINUE;
  if (n > 0)
    g_byte_array_append (p->in, buf, (guint)n);
  if (process_input (p, n <= 0))
    return G_SOURCE_CONTINUE;
  p->fd_watch = 0;
  return G_SOURCE_REMOVE;
}

/* Frames the server sent right behind its handshake response. */
static gboolean
on_pending_input (gpointer data)
{
  Peer *p = data;
  if (!process_input (p, FALSE) && p->fd_watch)
    g_source_remove (p->fd_watch), p->fd_watch = 0;
  return G_SOURCE_REMOVE;
}

static gboolean
on_signal (gpointer data)
{
  Peer *p = data;
  say (p, "signal: closing");
  quit (p, 1001);
  return G_SOURCE_CONTINUE;
}

/* ---- report --------------------------------------------------------------- */

static void
put_str (GString *o, const char *s)
{
  g_string_append_c (o, '"');
  for (; s && *s; s++) {
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
put_opt (GString *o, const char *key, double v)
{
  g_string_append_printf (o, v < 0 ? ",\"%s\":null" : ",\"%s\":%.3f", key, v);
}

static void
put_int (GString *o, const char *key, gint64 v)
{
  g_string_append_printf (o, v < 0 ? ",\"%s\":null" : ",\"%s\":%" G_GINT64_FORMAT, key, v);
}

static void
put_list (GString *o, const char *key, GPtrArray *a, gboolean raw)
{
  g_string_append_printf (o, ",\"%s\":[", key);
  for (guint i = 0; i < a->len; i++) {
    g_string_append (o, i ? "," : "");
    if (raw)
      g_string_append (o, g_ptr_array_index (a, i));
    else
      put_str (o, g_ptr_array_index (a, i));
  }
  g_string_append_c (o, ']');
}

static gboolean
ok_so_far (Peer *p)
{
  if (p->expect_error)
    return p->n_errors == 0 && p->expected_error_seen && !p->joined;
  return p->n_errors == 0 && p->joined && (p->no_media || p->ice_at >= 0);
}

static void
report (Peer *p)
{
  /* Final checks: recorded as errors so they show in both outputs. */
  if (p->expect_error && !p->expected_error_seen)
    fail (p, "expected error %s not received", p->expect_error);
  if (p->expect_close > 0 && p->close_code != p->expect_close)
    fail (p, "close code %d, expected %d", p->close_code, p->expect_close);
  if (!p->expect_error && !p->joined)
    fail (p, "never joined");
  if (!p->expect_error && p->close_code >= 0 && p->server_closed_first)
    fail (p, "server closed the connection: %d %s", p->close_code, p->close_reason);

  g_mutex_lock (&p->lock);
  gboolean ok = ok_so_far (p);
  double rms = p->nsamples ? 10 * log10 (p->sumsq / p->nsamples + 1e-20) : -200;
  if (!p->json) {
    printf ("%s booth=%s/%s joined=%s id=%s ice=%s (at %.2f s) packets_sent=%" G_GUINT64_FORMAT
            " close=%d %s\nreturn feed: %u windows, rms %.1f dBFS, tones:",
            ok ? "OK" : "FAIL", p->room, p->booth, p->joined ? "yes" : "no", p->id ? p->id : "-",
            p->ice_state ? p->ice_state : "-", p->ice_at, p->packets_sent, p->close_code,
            p->close_reason ? p->close_reason : "", (guint)p->timeline->len, rms);
    for (int k = 0; k <= N_IDENT; k++)
      printf (" %s=%u", k < N_IDENT ? ident_name[k] : "none", p->tones[k]);
    printf ("\ntimeline: %s\n", p->timeline->str);
    if (p->click_period_ms > 0)
      printf ("clicks sent: %" G_GUINT64_FORMAT "\n", p->clicks_sent_total);
    for (guint i = 0; i < p->errors->len; i++)
      printf ("error: %s\n", (char *)g_ptr_array_index (p->errors, i));
    g_mutex_unlock (&p->lock);
    return;
  }
  g_autoptr (GString) o = g_string_new ("{\"ok\":");
  g_string_append (o, ok ? "true" : "false");
  g_string_append (o, ",\"room\":"), put_str (o, p->room);
  g_string_append (o, ",\"booth\":"), put_str (o, p->booth);
  g_string_append (o, ",\"name\":"), put_str (o, p->name);
  g_string_append_printf (o, ",\"wall_start_us\":%" G_GINT64_FORMAT ",\"joined\":%s", p->wall_start_us,
                          p->joined ? "true" : "false");
  g_string_append (o, ",\"id\":");
  p->id ? put_str (o, p->id) : (void)g_string_append (o, "null");
  put_opt (o, "joined_at_s", p->joined ? p->joined_at : -1);
  g_string_append (o, ",\"ice_state\":"), put_str (o, p->ice_state ? p->ice_state : "");
  g_string_append (o, ",\"connection_state\":"), put_str (o, p->conn_state ? p->conn_state : "");
  g_string_append_printf (o, ",\"ice_connected\":%s", p->ice_at >= 0 ? "true" : "false");
  put_opt (o, "ice_connected_at_s", p->ice_at);
  g_string_append_printf (o, ",\"remote_description_set\":%s,\"candidates_sent\":%u,\"candidates_received\":%u",
                          p->remote_set ? "true" : "false", p->n_candidates_out, p->n_candidates_in);
  g_string_append_printf (o, ",\"packets_sent\":%" G_GUINT64_FORMAT, p->packets_sent);
  g_string_append (o, ",\"webrtc_stats\":{");
  gsize open_at = o->len;
  put_int (o, "packets_sent", p->st_sent), put_int (o, "packets_received", p->st_recv);
  put_int (o, "packets_lost", p->st_lost), put_opt (o, "jitter_ms", p->st_jitter);
  put_opt (o, "rtt_ms", p->st_rtt);
  g_string_erase (o, (gssize)open_at, 1); /* put_opt's leading comma */
  g_string_append_c (o, '}');
  g_string_append_printf (o, ",\"return\":{\"windows\":%u", (guint)p->timeline->len);
  put_opt (o, "first_audio_at_s", p->first_audio_at);
  g_string_append_printf (o, ",\"rms_dbfs\":%.1f,\"tones\":{", rms);
  for (int k = 0; k <= N_IDENT; k++)
    g_string_append_printf (o, "%s\"%s\":%u", k ? "," : "", k < N_IDENT ? ident_name[k] : "none", p->tones[k]);
  g_string_append_printf (o, "},\"timeline\":\"%s\",\"window_rms_dbfs\":[", p->timeline->str);
  for (guint i = 0; i < p->win_rms->len; i++)
    g_string_append_printf (o, "%s%.1f", i ? "," : "", g_array_index (p->win_rms, float, i));
  g_string_append (o, "],\"window_end_s\":[");
  for (guint i = 0; i < p->win_end->len; i++)
    g_string_append_printf (o, "%s%.3f", i ? "," : "", g_array_index (p->win_end, double, i));
  g_string_append (o, "]}");
  if (p->click_period_ms > 0) {
    g_string_append_printf (o, ",\"clicks\":{\"period_ms\":%.3f,\"sent\":%" G_GUINT64_FORMAT ",\"mouth_us\":[",
                            p->click_period_ms, p->clicks_sent_total);
    for (guint i = 0; i < p->click_us->len; i++)
      g_string_append_printf (o, "%s%.0f", i ? "," : "", g_array_index (p->click_us, double, i));
    g_string_append (o, "]}");
  }
  if (p->return_clicks) {
    g_string_append (o, ",\"return_clicks\":{\"arrivals_us\":[");
    for (guint i = 0; i < p->ret_click_us->len; i++)
      g_string_append_printf (o, "%s%.0f", i ? "," : "", g_array_index (p->ret_click_us, double, i));
    g_string_append_printf (o, "],\"jitterbuffer_ms\":%d}", p->latency_ms);
  }
  put_list (o, "messages", p->messages, TRUE);
  put_list (o, "sent", p->sent, TRUE);
  g_string_append (o, ",\"last_state\":");
  g_string_append (o, p->last_state ? p->last_state : "null");
  put_opt (o, "actions_from_s", p->actions_at);
  put_opt (o, "dropped_at_s", p->dropped_at);
  g_string_append (o, ",\"close_code\":");
  p->close_code >= 0 ? (void)g_string_append_printf (o, "%d", p->close_code) : (void)g_string_append (o, "null");
  g_string_append (o, ",\"close_reason\":"), put_str (o, p->close_reason ? p->close_reason : "");
  g_string_append_printf (o, ",\"closed_by\":\"%s\"",
                          p->close_code < 0        ? ""
                          : p->server_closed_first ? "server"
                                                   : "client");
  g_string_append (o, ",\"expect_error\":");
  p->expect_error ? put_str (o, p->expect_error) : (void)g_string_append (o, "null");
  g_string_append_printf (o, ",\"server_errors\":%u,\"error_count\":%u", p->n_server_errors, p->n_errors);
  put_list (o, "errors", p->errors, FALSE);
  g_string_append_c (o, '}');
  g_mutex_unlock (&p->lock);
  puts (o->str);
  fflush (stdout);
}

/* ---- main ----------------------------------------------------------------- */

static gboolean
parse_url (Peer *p, const char *url)
{
  if (!g_str_has_prefix (url, "ws://"))
    return FALSE;
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
    if (g_str_has_prefix (*k, "booth="))
      g_free (p->booth), p->booth = g_uri_unescape_string (*k + 6, NULL);
  }
  return *p->host != '\0';
}

int
main (int argc, char **argv)
{
  Peer p = {.freq = 9000,
            .volume = 0.3,
            .latency_ms = 50,
            .ice_timeout = 10,
            .fd = -1,
            .close_code = -1,
            .ice_at = -1,
            .joined_at = -1,
            .actions_at = -1,
            .dropped_at = -1,
            .first_audio_at = -1,
            .expect_close = -1,
            .st_sent = -1,
            .st_recv = -1,
            .st_lost = -1,
            .st_jitter = -1,
            .st_rtt = -1};
  g_autofree char *url = NULL;
  gboolean ice_any = FALSE;
  GOptionEntry entries[] = {
      {"url", 'u', 0, G_OPTION_ARG_STRING, &url, "ws://HOST:PORT/ws/booth?room=R&booth=L", "URL"},
      {"token", 't', 0, G_OPTION_ARG_STRING, &p.token, "Booth token (sent in the join message)", "T"},
      {"name", 'n', 0, G_OPTION_ARG_STRING, &p.name, "Interpreter's name (default boothpeer)", "NAME"},
      {"freq", 'f', 0, G_OPTION_ARG_DOUBLE, &p.freq, "Microphone sine tone, Hz (default 9000)", "HZ"},
      {"volume", 0, 0, G_OPTION_ARG_DOUBLE, &p.volume, "Sine amplitude (default 0.3)", "A"},
      {"click-period-ms", 0, 0, G_OPTION_ARG_DOUBLE, &p.click_period_ms,
       "Send a click track (2 ms 3 kHz bursts) every P ms instead of the sine; records each click's mouth time", "P"},
      {"actions", 'a', 0, G_OPTION_ARG_STRING, &p.actions_spec,
       "Console script, seconds after joined: \"2:on-air=true,5:cough=true,8:listen=hy,12:quit\"", "LIST"},
      {"actions-from-ice", 0, 0, G_OPTION_ARG_NONE, &p.actions_from_ice,
       "Count --actions times from ICE connected instead of joined (robust on a loaded machine)", NULL},
      {"seconds", 's', 0, G_OPTION_ARG_DOUBLE, &p.seconds, "Quit this long after joined (default: on quit/drop)", "S"},
      {"latency", 0, 0, G_OPTION_ARG_INT, &p.latency_ms, "webrtcbin jitterbuffer latency, ms (default 50)", "MS"},
      {"return-clicks", 0, 0, G_OPTION_ARG_NONE, &p.return_clicks,
       "Detect clicks in the return feed; --json lists their arrival times (return_clicks.arrivals_us)", NULL},
      {"ice-timeout", 0, 0, G_OPTION_ARG_INT, &p.ice_timeout,
       "Fail if ICE is not connected this long after joined (10)", "S"},
      {"ice-ip", 0, 0, G_OPTION_ARG_STRING, &p.ice_ip, "Gather ICE candidates on this address only (127.0.0.1)",
       "ADDR"},
      {"ice-any", 0, 0, G_OPTION_ARG_NONE, &ice_any, "Gather on every interface (no --ice-ip)", NULL},
      {"no-media", 0, 0, G_OPTION_ARG_NONE, &p.no_media, "Signalling only: join and run the script, no WebRTC", NULL},
      {"expect-error", 0, 0, G_OPTION_ARG_STRING, &p.expect_error,
       "Negative test: the server must send this error code (and close with its code)", "CODE"},
      {"expect-close", 0, 0, G_OPTION_ARG_INT, &p.expect_close, "With --expect-error: close code to expect", "CODE"},
      {"first-message", 0, 0, G_OPTION_ARG_STRING, &p.first_message, "Send this text instead of the join", "TEXT"},
      {"json", 'j', 0, G_OPTION_ARG_NONE, &p.json, "One JSON summary on stdout (the log goes to stderr)", NULL},
      {NULL}};
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- a /ws/booth interpreter console over WebRTC");
  g_autoptr (GError) err = NULL;
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, gst_init_get_option_group ());
  p.actions = g_array_new (FALSE, TRUE, sizeof (Action));
  if (!g_option_context_parse (ctx, &argc, &argv, &err) || !url || argc > 1 || !parse_url (&p, url) ||
      (p.actions_spec && !parse_actions (&p, p.actions_spec, &err)) || p.ice_timeout < 1) {
    fprintf (stderr, "boothpeer: %s\n%s", err ? err->message : "need --url ws://HOST:PORT/ws/booth?room=R&booth=L",
             g_option_context_get_help (ctx, TRUE, NULL));
    return 2;
  }
  if (p.expect_error && p.expect_close < 0) {
    const char *c = close_for (p.expect_error);
    p.expect_close = c ? atoi (c) : 0;
  }
  if (!p.ice_ip && !ice_any)
    p.ice_ip = g_strdup ("127.0.0.1");
  if (ice_any)
    g_clear_pointer (&p.ice_ip, g_free);
  if (!p.name)
    p.name = g_strdup ("boothpeer");
  if (!p.room)
    p.room = g_strdup ("");
  if (!p.booth)
    p.booth = g_strdup ("");
  g_mutex_init (&p.lock), g_mutex_init (&p.send_lock);
  p.in = g_byte_array_new (), p.msg = g_byte_array_new ();
  p.errors = g_ptr_array_new_with_free_func (g_free);
  p.messages = g_ptr_array_new_with_free_func (g_free);
  p.sent = g_ptr_array_new_with_free_func (g_free);
  p.timeline = g_string_new (NULL);
  p.win_rms = g_array_new (FALSE, FALSE, sizeof (float));
  p.win_end = g_array_new (FALSE, FALSE, sizeof (double));
  p.click_us = g_array_new (FALSE, FALSE, sizeof (double));
  p.ret_click_us = g_array_new (FALSE, FALSE, sizeof (double));
  for (int i = 0; i < WIN; i++)
    p.window[i] = 0.5 - 0.5 * cos (2 * G_PI * i / WIN);
  p.t0_mono = g_get_monotonic_time (), p.wall_start_us = g_get_real_time ();
  p.loop = g_main_loop_new (NULL, FALSE);

  if (!ws_connect (&p, &err)) {
    fail (&p, "%s", err->message);
    report (&p);
    return 1;
  }
  say (&p, "connected to %s", url);
  if (p.first_message) {
    send_frame (&p, 0x1, (const guint8 *)p.first_message, strlen (p.first_message));
    say (&p, "-> %s", p.first_message);
  } else {
    g_autoptr (JsonBuilder) b = json_builder_new ();
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "type"), json_builder_add_string_value (b, "join");
    json_builder_set_member_name (b, "token"), json_builder_add_string_value (b, p.token ? p.token : "");
    json_builder_set_member_name (b, "name"), json_builder_add_string_value (b, p.name);
    json_builder_end_object (b);
    send_json (&p, b);
  }
  p.fd_watch = g_unix_fd_add (p.fd, G_IO_IN | G_IO_HUP | G_IO_ERR, on_readable, &p);
  if (p.in->len) /* frames that came with the handshake */
    g_idle_add (on_pending_input, &p);
  g_unix_signal_add (SIGINT, on_signal, &p);
  g_unix_signal_add (SIGTERM, on_signal, &p);
  g_main_loop_run (p.loop);

  collect_stats (&p);
  if (p.pipe)
    gst_element_set_state (p.pipe, GST_STATE_NULL);
  report (&p);
  int rc = ok_so_far (&p) ? 0 : 1;
  if (p.fd >= 0)
    close (p.fd);
  return rc;
}
