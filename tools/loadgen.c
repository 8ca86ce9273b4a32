/* loadgen — many /ws/listen clients in one thread, for `make bench`.
 *
 * It runs on the same 2-core machine as the server, so everything it does is
 * CPU the server cannot use: one thread, level-triggered epoll, non-blocking
 * sockets, one large recv() per readiness event into a shared buffer, and no
 * allocation per message (each connection only keeps the tail of a frame that
 * straddles two reads).  Per message it parses the 16-byte header and adds
 * delivery delay = receipt CLOCK_REALTIME − ingress time to a histogram of
 * 0.1 ms buckets up to 10 s (100,000 buckets: exact enough for p99, O(1) add).
 *
 * Connection kinds, reported separately so misbehaving readers never pollute
 * the healthy numbers:
 *  - healthy: read everything as soon as it arrives;
 *  - slow (--slow K): read at most --slow-rate bytes/s (token bucket, 50 ms
 *    ticks) with a tiny SO_RCVBUF, so the server sees a choked socket soon;
 *  - stalled (--stall K): never read after the handshake (tiny SO_RCVBUF too).
 *    Only EPOLLRDHUP/HUP is watched, to time when the server gives up on them;
 *    after the window we drain them for up to 1 s to learn the close code.
 *
 * --bare forks a "bare server": the physical floor of one send() per listener
 * per frame, same frame size and interval, measured by the same client code
 * (no handshake, no hello), so bench compares dragoman against it in one run.
 *
 * Timeline: connect all (at most MAX_PENDING handshakes in flight, or
 * --ramp-per-sec), then --warmup seconds unmeasured (bursts-on-connect and
 * connection set-up settle), then the --seconds measurement window, in which
 * /proc of the server (or bare child) and our own rusage are sampled at both
 * ends.  Exit: 0 ran, 1 nothing connected, 2 bad usage. */
#define _GNU_SOURCE
#include <errno.h>
#include <glib.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define CARRY 1024            /* a frame tail kept between reads; larger frames are skipped */
#define RBUF (256 * 1024)     /* one recv() takes a whole burst of small frames */
#define NBUCKET 100000        /* 0.1 ms buckets up to 10 s */
#define MAX_PENDING 256       /* connects in flight: well under the listen backlog */
#define HS_TIMEOUT_US 10000000
#define TICK_US 50000         /* slow readers' token refill and timeout checks */
#define MAX_CODES 8

enum { K_HEALTHY, K_SLOW, K_STALL, N_KIND };
enum { S_IDLE, S_CONNECTING, S_HANDSHAKE, S_OPEN, S_DONE };
static const char *kind_name[N_KIND] = {"healthy", "slow", "stalled"};

typedef struct {
  int fd;
  guint8 kind, state, lang, got_hello, have_seq;
  guint16 carry_len;
  guint32 next_seq, skip; /* skip: bytes of an oversized frame still to discard */
  gint64 t0;              /* monotonic: connect start, then open time */
  double tokens;          /* slow: bytes we may read now */
  char key[25];
  guint8 carry[CARRY];
} Conn;

typedef struct {
  guint conns, opened, connect_failed, refused, hs_timeout;
  guint64 msgs, bytes, gaps, lost, discont, bad_kind, neg_delay, texts, states;
  guint hello_ok, hello_bad, closes, eof, resets, fragments, open_at_end;
  guint code[MAX_CODES], code_n[MAX_CODES], n_codes;
  double close_s_min, close_s_max; /* open → server close seen, seconds */
  guint close_timed;
  gint64 max_us;
  guint32 hist[NBUCKET];
} Group;

typedef struct { /* shared with the bare child through a MAP_SHARED page */
  guint64 ticks, sends, eagain, partial, errors, accepted;
} BareStats;

static struct {
  /* options */
  char *url, *langs_opt;
  int clients, seconds, slow, slow_rate, stall, rcvbuf, server_pid, frame_bytes, interval_ms;
  double ramp, warmup, idle;
  gboolean json, bare;
  /* run */
  char **langs, *host, *port, *path;
  guint n_langs;
  struct sockaddr_storage addr;
  socklen_t addr_len;
  int ep, total;
  Conn *conns;
  guint8 *rbuf;
  gboolean measuring, draining; /* draining: after the window, stalled ones only */
  int pending;
  Group g[N_KIND];
  pid_t child;
  BareStats *bare_st;
} L;

static gint64 mono_us (void) { return g_get_monotonic_time (); }

static gint64 real_us (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_REALTIME, &ts);
  return (gint64) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* utime+stime in clock ticks (fields 14, 15 after the "(comm)") and VmRSS in KiB. */
static gboolean proc_sample (int pid, guint64 *ticks, guint64 *rss_kib)
{
  char path[64], buf[2048];
  g_snprintf (path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen (path, "r");
  if (!f) return FALSE;
  size_t n = fread (buf, 1, sizeof buf - 1, f);
  fclose (f);
  buf[n] = 0;
  char *p = strrchr (buf, ')');
  unsigned long ut = 0, st = 0;
  if (!p || sscanf (p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
    return FALSE;
  *ticks = ut + st;
  *rss_kib = 0;
  g_snprintf (path, sizeof path, "/proc/%d/status", pid);
  if (!(f = fopen (path, "r"))) return FALSE;
  while (fgets (buf, sizeof buf, f))
    if (sscanf (buf, "VmRSS: %" G_GUINT64_FORMAT, rss_kib) == 1) break;
  fclose (f);
  return TRUE;
}

static double self_cpu_s (void)
{
  struct rusage ru;
  getrusage (RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* Client frames are masked (RFC 6455 §5.3); only tiny control frames are sent. */
static void ws_send (int fd, int op, const guint8 *p, gsize len)
{
  guint8 b[6 + 125];
  guint32 key = g_random_int ();
  len = MIN (len, 125);
  b[0] = 0x80 | op, b[1] = 0x80 | (guint8) len;
  memcpy (b + 2, &key, 4);
  for (gsize i = 0; i < len; i++) b[6 + i] = p[i] ^ b[2 + (i & 3)];
  if (send (fd, b, 6 + len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) { /* best effort: it is leaving */ }
}

static void conn_end (Conn *c)
{
  if (c->state == S_CONNECTING || c->state == S_HANDSHAKE) L.pending--;
  if (c->fd >= 0) close (c->fd); /* also removes it from the epoll set */
  c->fd = -1, c->state = S_DONE;
}

static void connect_failed (Conn *c, guint *counter)
{
  L.g[c->kind].connect_failed++;
  if (counter) (*counter)++;
  conn_end (c);
}

static void record_close (Conn *c, int code)
{
  Group *g = &L.g[c->kind];
  guint i;
  g->closes++;
  for (i = 0; i < g->n_codes && g->code[i] != (guint) code; i++) {}
  if (i == g->n_codes && i < MAX_CODES) g->code[g->n_codes++] = (guint) code;
  if (i < MAX_CODES) g->code_n[i]++;
}

static void on_binary (Conn *c, const guint8 *p, gsize avail, gsize len, gint64 now)
{
  Group *g = &L.g[c->kind];
  if (avail < 16) { g->bad_kind++; return; }
  guint32 seq = (guint32) p[4] << 24 | (guint32) p[5] << 16 | (guint32) p[6] << 8 | p[7];
  guint64 ingress = 0;
  for (int i = 8; i < 16; i++) ingress = ingress << 8 | p[i];
  guint32 expect = c->next_seq;
  gboolean gap = c->have_seq && seq != expect;
  c->next_seq = seq + 1, c->have_seq = 1;
  if (!L.measuring && !(L.draining && c->kind == K_STALL)) return;
  g->msgs++, g->bytes += len;
  g->bad_kind += p[0] != 1;
  g->discont += p[1] & 1;
  if (gap) g->gaps++, g->lost += (guint32) (seq - expect); /* mod 2^32 */
  gint64 d = now - (gint64) ingress;
  if (d < 0) g->neg_delay++, d = 0;
  g->max_us = MAX (g->max_us, d);
  g->hist[MIN (d / 100, NBUCKET - 1)]++;
}

/* One WebSocket frame (or, for an oversized one, its first `avail` bytes). */
static void on_frame (Conn *c, guint8 b0, const guint8 *p, gsize avail, gsize len, gint64 now)
{
  Group *g = &L.g[c->kind];
  int op = b0 & 0x0f;
  if (op == 0x8) {
    int code = len >= 2 ? p[0] << 8 | p[1] : 1005;
    record_close (c, code);
    if (c->kind != K_HEALTHY && c->t0) {
      double s = (mono_us () - c->t0) / 1e6;
      g->close_s_min = g->close_timed ? MIN (g->close_s_min, s) : s;
      g->close_s_max = MAX (g->close_s_max, s), g->close_timed++;
    }
    ws_send (c->fd, 0x8, p, MIN (avail, 2)); /* echo the code: clean close */
    conn_end (c);
    return;
  }
  if (op == 0x9) { ws_send (c->fd, 0xA, p, avail); return; }
  if (op == 0xA) return;
  if (!(b0 & 0x80) || op == 0) g->fragments++; /* the server never fragments today */
  if (op == 0x1) {
    /* First text is the hello; later ones are state messages (or errors). */
    if (!c->got_hello) {
      c->got_hello = 1;
      if (memmem (p, avail, "\"type\":\"hello\"", 14)) g->hello_ok++;
      else g->hello_bad++;
    } else if (L.measuring) {
      g->texts++;
      g->states += memmem (p, avail, "\"type\":\"state\"", 14) != NULL;
    }
  } else if (op == 0x2) {
    on_binary (c, p, avail, len, now);
  }
}

/* Parses frames from d[0..n); returns bytes consumed.  What is left is always
 * < CARRY: a frame that would not fit is handled from its first 64 payload
 * bytes (all a header or a hello needs) and the rest skipped as it arrives. */
static gsize parse (Conn *c, const guint8 *d, gsize n, gint64 now)
{
  gsize off = MIN ((gsize) c->skip, n);
  c->skip -= (guint32) off;
  while (off + 2 <= n && c->state == S_OPEN) {
    const guint8 *f = d + off;
    gsize have = n - off, h = 2;
    guint64 len = f[1] & 0x7f;
    if (len == 126) {
      if (have < 4) break;
      len = (guint64) f[2] << 8 | f[3], h = 4;
    } else if (len == 127) {
      if (have < 10) break;
      len = 0, h = 10;
      for (int i = 2; i < 10; i++) len = len << 8 | f[i];
    }
    if (f[1] & 0x80 || len > (1u << 30)) { /* masked or absurd: not a server we can read */
      L.g[c->kind].bad_kind++;
      conn_end (c);
      return n;
    }
    if (have < h + len) {
      if (h + len <= CARRY || have < h + MIN (len, 64)) break;
      on_frame (c, f[0], f + h, have - h, len, now);
      c->skip = (guint32) (h + len - have);
      return n;
    }
    on_frame (c, f[0], f + h, len, len, now);
    off += h + len;
  }
  return off;
}

static gboolean handshake_done (Conn *c, const char *head)
{
  if (!g_str_has_prefix (head, "HTTP/1.1 101")) return FALSE;
  g_autofree char *kg = g_strconcat (c->key, WS_GUID, NULL);
  guint8 dig[20];
  gsize dl = sizeof dig;
  g_autoptr (GChecksum) sha = g_checksum_new (G_CHECKSUM_SHA1);
  g_checksum_update (sha, (const guchar *) kg, -1);
  g_checksum_get_digest (sha, dig, &dl);
  g_autofree char *want = g_base64_encode (dig, dl);
  const char *a = strcasestr (head, "\r\nSec-WebSocket-Accept:");
  if (!a) return FALSE;
  for (a += 23; *a == ' '; a++) {}
  return strncmp (a, want, strlen (want)) == 0;
}

static void watch (Conn *c, guint32 events, int op)
{
  struct epoll_event ev = {.events = events, .data.u32 = (guint32) (c - L.conns)};
  epoll_ctl (L.ep, op, c->fd, &ev);
}

static void opened (Conn *c)
{
  L.pending--;
  c->state = S_OPEN, c->t0 = mono_us ();
  L.g[c->kind].opened++;
  /* slow readers are read on the tick, stalled ones never: only hear of a hang-up */
  watch (c, c->kind == K_HEALTHY ? EPOLLIN : EPOLLRDHUP, EPOLL_CTL_MOD);
}

/* Reads at most max bytes (after the carried tail) and parses them.
 * Returns bytes read, 0 for nothing now, -1 if the connection ended. */
static ssize_t conn_read (Conn *c, gsize max)
{
  memcpy (L.rbuf, c->carry, c->carry_len);
  ssize_t r = recv (c->fd, L.rbuf + c->carry_len, MIN (max, RBUF - CARRY), 0);
  gint64 now = real_us ();
  Group *g = &L.g[c->kind];
  if (r < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
  if (r <= 0) {
    if (c->state == S_HANDSHAKE) connect_failed (c, NULL);
    else if (r == 0) g->eof++, conn_end (c);
    else g->resets++, conn_end (c);
    return -1;
  }
  gsize n = c->carry_len + (gsize) r, used = 0;
  if (c->state == S_HANDSHAKE) {
    guint8 *end = memmem (L.rbuf, n, "\r\n\r\n", 4);
    if (!end) {
      if (n >= CARRY) connect_failed (c, &g->refused);
      else memcpy (c->carry, L.rbuf, n), c->carry_len = (guint16) n;
      return c->state == S_DONE ? -1 : r;
    }
    *end = 0;
    if (!handshake_done (c, (char *) L.rbuf)) {
      if (!L.json) fprintf (stderr, "loadgen: refused: %.80s\n", (char *) L.rbuf);
      connect_failed (c, &g->refused);
      return -1;
    }
    opened (c);
    used = (gsize) (end - L.rbuf) + 4; /* frames may follow the headers in the same read */
  }
  used += parse (c, L.rbuf + used, n - used, now);
  if (c->state != S_OPEN) return -1;
  c->carry_len = (guint16) (n - used);
  memmove (c->carry, L.rbuf + used, c->carry_len);
  return r;
}

static void start_connect (Conn *c)
{
  Group *g = &L.g[c->kind];
  c->fd = socket (L.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (c->fd < 0) { g->connect_failed++, c->state = S_DONE; return; }
  if (c->kind != K_HEALTHY) /* before connect, so the window we advertise is small from the start */
    setsockopt (c->fd, SOL_SOCKET, SO_RCVBUF, &L.rcvbuf, sizeof L.rcvbuf);
  L.pending++;
  c->state = S_CONNECTING, c->t0 = mono_us ();
  if (connect (c->fd, (struct sockaddr *) &L.addr, L.addr_len) < 0 && errno != EINPROGRESS) {
    connect_failed (c, NULL);
    return;
  }
  watch (c, EPOLLOUT, EPOLL_CTL_ADD);
}

static void on_connected (Conn *c)
{
  int err = 0;
  socklen_t el = sizeof err;
  getsockopt (c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
  if (err) { connect_failed (c, NULL); return; }
  if (L.bare) { opened (c); return; }
  guint8 nonce[16];
  for (int i = 0; i < 16; i++) nonce[i] = (guint8) g_random_int ();
  g_autofree char *key = g_base64_encode (nonce, sizeof nonce);
  g_strlcpy (c->key, key, sizeof c->key);
  char req[1024];
  int n = g_snprintf (req, sizeof req,
                      "GET %s%slang=%s HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                      "Sec-WebSocket-Version: 13\r\nUser-Agent: dragoman-loadgen\r\n\r\n",
                      L.path, strchr (L.path, '?') ? "&" : "?", L.langs[c->lang], L.host, L.port, key);
  if (n >= (int) sizeof req || send (c->fd, req, (size_t) n, MSG_NOSIGNAL) != n) {
    connect_failed (c, NULL);
    return;
  }
  c->state = S_HANDSHAKE;
  watch (c, EPOLLIN, EPOLL_CTL_MOD);
}

/* Stalled/slow: the server hung up (FIN or RST) while we were not reading. */
static void on_hangup (Conn *c)
{
  Group *g = &L.g[c->kind];
  double s = (mono_us () - c->t0) / 1e6;
  g->close_s_min = g->close_timed ? MIN (g->close_s_min, s) : s;
  g->close_s_max = MAX (g->close_s_max, s), g->close_timed++;
  c->t0 = 0; /* timed here, not again at the close frame */
  while (c->state == S_OPEN && conn_read (c, RBUF) > 0) {} /* find the close frame */
}

static void on_event (Conn *c, guint32 ev)
{
  if (c->state == S_CONNECTING) on_connected (c);
  else if (c->state == S_HANDSHAKE || (c->state == S_OPEN && c->kind == K_HEALTHY)) conn_read (c, RBUF);
  else if (c->state == S_OPEN && ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) on_hangup (c);
}

static void tick (gint64 now)
{
  for (int i = 0; i < L.total; i++) {
    Conn *c = &L.conns[i];
    if ((c->state == S_CONNECTING || c->state == S_HANDSHAKE) && now - c->t0 > HS_TIMEOUT_US)
      connect_failed (c, &L.g[c->kind].hs_timeout);
    if (c->kind == K_SLOW && c->state == S_OPEN) {
      c->tokens = MIN (c->tokens + L.slow_rate * (TICK_US / 1e6), (double) L.slow_rate);
      ssize_t r = c->tokens >= 1 ? conn_read (c, (gsize) c->tokens) : 0;
      if (r > 0) c->tokens -= (double) r;
    }
  }
}

/* ---- bare server: the physical floor ----------------------------------- */

static void G_GNUC_NORETURN bare_server (int lfd)
{
  int *fds = g_new0 (int, L.total), n = 0;
  gsize fb = (gsize) L.frame_bytes;
  guint8 frame[128] = {0x82, (guint8) (fb - 2), 1};
  for (gsize i = 18; i < fb; i++) frame[i] = (guint8) i; /* stands in for the Opus packet */
  struct timespec next;
  clock_gettime (CLOCK_MONOTONIC, &next);
  for (guint32 seq = 0;; seq++) {
    int fd, one = 1;
    while (n < L.total && (fd = accept4 (lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
      setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      fds[n++] = fd, L.bare_st->accepted++;
    }
    guint64 t = (guint64) real_us ();
    for (int i = 0; i < 4; i++) frame[6 + i] = (guint8) (seq >> (24 - 8 * i));
    for (int i = 0; i < 8; i++) frame[10 + i] = (guint8) (t >> (56 - 8 * i));
    for (int i = 0; i < n; i++) {
      if (fds[i] < 0) continue;
      ssize_t r = send (fds[i], frame, fb, MSG_NOSIGNAL);
      if (r == (ssize_t) fb) L.bare_st->sends++;
      else if (r < 0 && errno == EAGAIN) L.bare_st->eagain++; /* skipped: nothing written */
      else { /* a partial frame would corrupt the stream: drop the connection */
        L.bare_st->partial += r >= 0, L.bare_st->errors += r < 0;
        close (fds[i]), fds[i] = -1;
      }
    }
    L.bare_st->ticks++;
    next.tv_nsec += (long) L.interval_ms * 1000000;
    if (next.tv_nsec >= 1000000000) next.tv_sec++, next.tv_nsec -= 1000000000;
    while (clock_nanosleep (CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR) {}
  }
}

static gboolean bare_start (void)
{
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  int lfd = socket (AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (lfd < 0 || bind (lfd, (struct sockaddr *) &a, al) < 0 || listen (lfd, L.total + 16) < 0 ||
      getsockname (lfd, (struct sockaddr *) &a, &al) < 0)
    return FALSE;
  L.bare_st = mmap (NULL, sizeof (BareStats), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (L.bare_st == MAP_FAILED || (L.child = fork ()) < 0) return FALSE;
  if (L.child == 0) bare_server (lfd);
  close (lfd);
  memcpy (&L.addr, &a, al), L.addr_len = al;
  L.server_pid = L.child;
  return TRUE;
}

/* ---- report ------------------------------------------------------------ */

static double hist_q (const Group *g, guint64 total, double q)
{
  guint64 want = (guint64) (q * total), seen = 0;
  if (!total) return -1;
  for (int b = 0; b < NBUCKET; b++)
    if ((seen += g->hist[b]) > want) return (b + 1) / 10.0; /* bucket's upper edge */
  return NBUCKET / 10.0;
}

static void put_group (GString *o, const Group *g, const char *name, double secs)
{
  double q[3] = {hist_q (g, g->msgs, 0.5), hist_q (g, g->msgs, 0.95), hist_q (g, g->msgs, 0.99)};
  /* refused (4404/4503 after the upgrade) or dropped ones are not expected to deliver */
  double expect = (g->opened - g->closes - g->eof - g->resets) * secs * 1000.0 / L.interval_ms;
  g_string_append_printf (o, "\"%s\":{\"connections\":%u,\"opened\":%u,\"connect_failed\":%u,"
      "\"refused\":%u,\"handshake_timeouts\":%u,\"open_at_end\":%u,\"messages\":%" G_GUINT64_FORMAT
      ",\"bytes\":%" G_GUINT64_FORMAT ",\"delivered_ratio\":%.4f,\"gaps\":%" G_GUINT64_FORMAT
      ",\"lost\":%" G_GUINT64_FORMAT ",\"discontinuities\":%" G_GUINT64_FORMAT ",\"bad_frames\":%"
      G_GUINT64_FORMAT ",\"negative_delays\":%" G_GUINT64_FORMAT ",\"hello_ok\":%u,\"hello_bad\":%u,"
      "\"text_messages\":%" G_GUINT64_FORMAT ",\"state_messages\":%" G_GUINT64_FORMAT
      ",\"fragments\":%u,\"delays_over_10s\":%u,\"delay_ms\":{\"p50\":%.1f,\"p95\":%.1f,"
      "\"p99\":%.1f,\"max\":%.1f},\"closes\":%u,\"close_codes\":{", name, g->conns, g->opened, g->connect_failed, g->refused,
      g->hs_timeout, g->open_at_end, g->msgs, g->bytes, expect > 0 ? g->msgs / expect : 0.0, g->gaps,
      g->lost, g->discont, g->bad_kind, g->neg_delay, g->hello_ok, g->hello_bad, g->texts, g->states,
      g->fragments, g->hist[NBUCKET - 1], q[0], q[1], q[2], g->max_us / 1000.0, g->closes);
  for (guint i = 0; i < g->n_codes; i++)
    g_string_append_printf (o, "%s\"%u\":%u", i ? "," : "", g->code[i], g->code_n[i]);
  g_string_append_printf (o, "},\"eof_without_close\":%u,\"resets\":%u", g->eof, g->resets);
  if (g->close_timed)
    g_string_append_printf (o, ",\"server_close_after_s\":{\"n\":%u,\"min\":%.2f,\"max\":%.2f}",
                            g->close_timed, g->close_s_min, g->close_s_max);
  g_string_append (o, "}");
}

static void print_group (const Group *g, const char *name, double secs)
{
  if (!g->conns) return;
  double expect = (g->opened - g->closes - g->eof - g->resets) * secs * 1000.0 / L.interval_ms;
  printf ("%-8s %u conns, %u opened, %u failed (%u refused, %u timed out), %u open at end\n", name,
          g->conns, g->opened, g->connect_failed, g->refused, g->hs_timeout, g->open_at_end);
  printf ("         %" G_GUINT64_FORMAT " msgs (%.2f%% of expected), %" G_GUINT64_FORMAT " bytes, %"
          G_GUINT64_FORMAT " gaps (%" G_GUINT64_FORMAT " lost), %" G_GUINT64_FORMAT " discont, %"
          G_GUINT64_FORMAT " state msgs, hello %u ok/%u bad\n", g->msgs,
          expect > 0 ? 100.0 * g->msgs / expect : 0.0, g->bytes, g->gaps, g->lost, g->discont,
          g->states, g->hello_ok, g->hello_bad);
  printf ("         delay ms p50 %.1f  p95 %.1f  p99 %.1f  max %.1f (10000 = 10 s or more: %u)%s\n",
          hist_q (g, g->msgs, 0.5), hist_q (g, g->msgs, 0.95), hist_q (g, g->msgs, 0.99),
          g->max_us / 1000.0, g->hist[NBUCKET - 1], g->neg_delay ? "  (some negative: clock?)" : "");
  printf ("         closes %u:", g->closes);
  for (guint i = 0; i < g->n_codes; i++) printf (" %u×%u", g->code_n[i], g->code[i]);
  printf ("; eof without close %u, resets %u", g->eof, g->resets);
  if (g->close_timed)
    printf ("; server hung up %.2f–%.2f s after open (%u)", g->close_s_min, g->close_s_max, g->close_timed);
  printf ("\n");
}

/* ---- main -------------------------------------------------------------- */

static gboolean parse_url (void)
{
  if (!L.url || !g_str_has_prefix (L.url, "ws://")) return FALSE;
  const char *hp = L.url + 5, *slash = strchr (hp, '/');
  g_autofree char *auth = slash ? g_strndup (hp, (gsize) (slash - hp)) : g_strdup (hp);
  char *colon = strrchr (auth, ':');
  L.path = g_strdup (slash ? slash : "/");
  L.host = colon ? g_strndup (auth, (gsize) (colon - auth)) : g_strdup (auth);
  L.port = g_strdup (colon ? colon + 1 : "80");
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
  if (getaddrinfo (L.host, L.port, &hints, &ai) != 0) return FALSE;
  memcpy (&L.addr, ai->ai_addr, ai->ai_addrlen), L.addr_len = ai->ai_addrlen;
  freeaddrinfo (ai);
  return TRUE;
}

int main (int argc, char **argv)
{
  L.clients = 100, L.seconds = 10, L.slow_rate = 200, L.rcvbuf = 4096, L.frame_bytes = 82;
  L.interval_ms = 20, L.warmup = 2.0;
  GOptionEntry entries[] = {
      {"url", 'u', 0, G_OPTION_ARG_STRING, &L.url, "ws://HOST:PORT/ws/listen?room=R", "URL"},
      {"langs", 'l', 0, G_OPTION_ARG_STRING, &L.langs_opt, "Channels, round-robin (default orig)", "A,B"},
      {"clients", 'n', 0, G_OPTION_ARG_INT, &L.clients, "Healthy connections (default 100)", "N"},
      {"seconds", 's', 0, G_OPTION_ARG_INT, &L.seconds, "Measurement window (default 10)", "S"},
      {"warmup", 0, 0, G_OPTION_ARG_DOUBLE, &L.warmup, "Unmeasured seconds after connecting (2)", "S"},
      {"ramp-per-sec", 0, 0, G_OPTION_ARG_DOUBLE, &L.ramp, "Connects per second (default: fast)", "R"},
      {"slow", 0, 0, G_OPTION_ARG_INT, &L.slow, "Extra connections that read slowly", "K"},
      {"slow-rate", 0, 0, G_OPTION_ARG_INT, &L.slow_rate, "Their read rate (default 200)", "BYTES/S"},
      {"stall", 0, 0, G_OPTION_ARG_INT, &L.stall, "Extra connections that never read", "K"},
      {"rcvbuf", 0, 0, G_OPTION_ARG_INT, &L.rcvbuf, "SO_RCVBUF of slow/stalled (4096)", "BYTES"},
      {"server-pid", 'p', 0, G_OPTION_ARG_INT, &L.server_pid, "Sample this server's CPU and RSS", "PID"},
      {"idle-seconds", 0, 0, G_OPTION_ARG_DOUBLE, &L.idle, "Sample its idle CPU first (0)", "S"},
      {"json", 'j', 0, G_OPTION_ARG_NONE, &L.json, "One JSON object on stdout", NULL},
      {"bare", 0, 0, G_OPTION_ARG_NONE, &L.bare, "Fork a bare send() loop server: the floor", NULL},
      {"frame-bytes", 0, 0, G_OPTION_ARG_INT, &L.frame_bytes, "Bare: WS frame size (82)", "B"},
      {"interval-ms", 0, 0, G_OPTION_ARG_INT, &L.interval_ms, "Frame interval (20)", "MS"},
      {NULL}};
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- /ws/listen fan-out load generator");
  g_autoptr (GError) err = NULL;
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &err) || argc > 1 || L.clients < 1 ||
      L.seconds < 1 || L.slow < 0 || L.stall < 0 || L.slow_rate < 1 || L.interval_ms < 1 ||
      L.frame_bytes < 18 || L.frame_bytes > 127 || L.warmup < 0 || (!L.bare && !parse_url ())) {
    fprintf (stderr, "loadgen: %s\n%s", err ? err->message : "need --url ws://HOST:PORT/PATH"
             " (or --bare), --clients >= 1, --seconds >= 1, --frame-bytes 18..127",
             g_option_context_get_help (ctx, TRUE, NULL));
    return 2;
  }
  L.langs = g_strsplit (L.langs_opt ? L.langs_opt : "orig", ",", -1);
  L.n_langs = g_strv_length (L.langs);
  L.total = L.clients + L.slow + L.stall;
  /* one fd per connection, plus the epoll fd, stdio and /proc files */
  struct rlimit rl;
  getrlimit (RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < (rlim_t) L.total + 64) {
    rl.rlim_cur = MIN ((rlim_t) L.total + 64, rl.rlim_max);
    if (setrlimit (RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < (rlim_t) L.total + 64)
      fprintf (stderr, "loadgen: RLIMIT_NOFILE is %lu, want %d\n", (unsigned long) rl.rlim_cur, L.total + 64);
  }
  if (L.bare && !bare_start ()) { perror ("loadgen: bare server"); return 1; }

  L.conns = g_new0 (Conn, L.total);
  L.rbuf = g_malloc (RBUF);
  L.ep = epoll_create1 (EPOLL_CLOEXEC);
  for (int i = 0; i < L.total; i++) {
    Conn *c = &L.conns[i];
    c->fd = -1;
    c->kind = i < L.clients ? K_HEALTHY : i < L.clients + L.slow ? K_SLOW : K_STALL;
    c->lang = (guint8) (i % L.n_langs);
    L.g[c->kind].conns++;
  }
  guint64 base_rss = 0, t_a = 0, t_b = 0, rss_a = 0, rss_b = 0, dummy;
  gboolean have_proc = L.server_pid > 0 && proc_sample (L.server_pid, &dummy, &base_rss);
  double idle_cpu = -1; /* the server's own pipelines cost CPU with nobody listening */
  if (have_proc && L.idle > 0) {
    guint64 i0 = dummy, i1;
    g_usleep ((gulong) (L.idle * 1e6));
    proc_sample (L.server_pid, &i1, &base_rss);
    idle_cpu = 100.0 * (double) (i1 - i0) / sysconf (_SC_CLK_TCK) / L.idle;
  }
  gint64 t_connect = mono_us (), t_conn_done = 0, t_win = 0, t_end = 0, next_tick = t_connect;
  double self_a = 0, self_b = 0;
  BareStats bs = {0};
  int started = 0;
  struct epoll_event evs[512];

  for (;;) {
    gint64 now = mono_us ();
    while (started < L.total && L.pending < MAX_PENDING &&
           (L.ramp <= 0 || now >= t_connect + (gint64) (started * 1e6 / L.ramp)))
      start_connect (&L.conns[started++]);
    if (!t_conn_done && started == L.total && L.pending == 0) {
      t_conn_done = now, t_win = now + (gint64) (L.warmup * 1e6);
      t_end = t_win + (gint64) L.seconds * 1000000;
    }
    if (t_win && !L.measuring && now >= t_win && now < t_end) {
      L.measuring = TRUE, t_win = now, self_a = self_cpu_s ();
      if (have_proc) proc_sample (L.server_pid, &t_a, &rss_a);
    }
    if (L.measuring && now >= t_end) {
      if (have_proc) proc_sample (L.server_pid, &t_b, &rss_b);
      if (L.bare) bs = *L.bare_st; /* before our closes turn into send errors */
      self_b = self_cpu_s ();
      L.measuring = FALSE, t_end = now;
      break;
    }
    if (now >= next_tick) tick (now), next_tick = now + TICK_US;
    int timeout = (int) ((next_tick - now) / 1000) + 1;
    int n = epoll_wait (L.ep, evs, G_N_ELEMENTS (evs), started < L.total ? 1 : timeout);
    for (int i = 0; i < n; i++) on_event (&L.conns[evs[i].data.u32], evs[i].events);
  }
  double secs = (t_end - t_win) / 1e6;

  /* Drain slow/stalled for up to 1 s: did the server close them, and how?  What
   * we learn now says nothing about when, so it is not timed (t0 = 0). */
  for (int i = L.clients; i < L.total; i++) L.conns[i].t0 = 0;
  L.draining = TRUE; /* a stalled reader's backlog: how old is what it finally gets? */
  for (gint64 until = mono_us () + 1000000; mono_us () < until;) {
    gboolean any = FALSE;
    for (int i = L.clients; i < L.total; i++)
      if (L.conns[i].state == S_OPEN) {
        any = TRUE;
        while (L.conns[i].state == S_OPEN && conn_read (&L.conns[i], RBUF) > 0) {}
      }
    if (!any) break;
    g_usleep (20000);
  }
  for (int i = 0; i < L.total; i++) {
    Conn *c = &L.conns[i];
    if (c->state != S_OPEN) continue;
    L.g[c->kind].open_at_end++;
    ws_send (c->fd, 0x8, (const guint8 *) "\x03\xe8", 2); /* 1000: we are done */
    conn_end (c);
  }
  if (L.bare) kill (L.child, SIGTERM), waitpid (L.child, NULL, 0);

  long hz = sysconf (_SC_CLK_TCK);
  double srv_cpu = have_proc ? 100.0 * (double) (t_b - t_a) / hz / secs : -1;
  guint opened = L.g[K_HEALTHY].opened + L.g[K_SLOW].opened + L.g[K_STALL].opened;
  double per_conn = have_proc && opened ? ((double) rss_b - (double) base_rss) / opened : -1;
  double self_cpu = 100.0 * (self_b - self_a) / secs;
  double conn_s = (t_conn_done - t_connect) / 1e6;
  if (L.json) {
    g_autoptr (GString) o = g_string_new (NULL);
    g_string_append_printf (o, "{\"mode\":\"%s\",\"clients\":%d,\"slow\":%d,\"stall\":%d,"
        "\"window_s\":%.3f,\"warmup_s\":%.1f,\"connect_s\":%.3f,\"interval_ms\":%d,",
        L.bare ? "bare" : "client", L.clients, L.slow, L.stall, secs, L.warmup, conn_s, L.interval_ms);
    for (int k = 0; k < N_KIND; k++) put_group (o, &L.g[k], kind_name[k], secs), g_string_append_c (o, ',');
    if (have_proc)
      g_string_append_printf (o, "\"server\":{\"pid\":%d,\"cpu_pct\":%.1f,\"rss_kib_base\":%"
          G_GUINT64_FORMAT ",\"rss_kib_start\":%" G_GUINT64_FORMAT ",\"rss_kib_end\":%" G_GUINT64_FORMAT
          ",\"rss_kib_per_conn\":%.2f,\"cpu_pct_idle\":%.1f},", L.server_pid, srv_cpu, base_rss, rss_a,
          rss_b, per_conn, idle_cpu);
    if (L.bare)
      g_string_append_printf (o, "\"bare\":{\"frame_bytes\":%d,\"ticks\":%" G_GUINT64_FORMAT
          ",\"sends\":%" G_GUINT64_FORMAT ",\"eagain\":%" G_GUINT64_FORMAT ",\"partial\":%"
          G_GUINT64_FORMAT ",\"errors\":%" G_GUINT64_FORMAT ",\"accepted\":%" G_GUINT64_FORMAT "},",
          L.frame_bytes, bs.ticks, bs.sends, bs.eagain, bs.partial, bs.errors, bs.accepted);
    g_string_append_printf (o, "\"loadgen\":{\"cpu_pct\":%.1f}}", self_cpu);
    puts (o->str);
  } else {
    printf ("%s: %d+%d slow+%d stalled connections in %.2f s; window %.2f s after %.1f s warm-up\n",
            L.bare ? "bare floor" : L.url, L.clients, L.slow, L.stall, conn_s, secs, L.warmup);
    for (int k = 0; k < N_KIND; k++) print_group (&L.g[k], kind_name[k], secs);
    if (have_proc)
      printf ("server   pid %d: %.1f%% of a core; RSS %" G_GUINT64_FORMAT " KiB (base %" G_GUINT64_FORMAT
              " KiB, %.2f KiB per connection); idle %.1f%%\n", L.server_pid, srv_cpu, rss_b, base_rss,
              per_conn, idle_cpu);
    if (L.bare)
      printf ("bare     %" G_GUINT64_FORMAT " sends, %" G_GUINT64_FORMAT " EAGAIN, %" G_GUINT64_FORMAT
              " partial, %" G_GUINT64_FORMAT " errors\n", bs.sends, bs.eagain, bs.partial, bs.errors);
    printf ("loadgen  %.1f%% of a core\n", self_cpu);
  }
  return opened ? 0 : 1;
}
