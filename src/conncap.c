/* conncap — the cap on open connections, in total and per client address.
 *
 * Why: every socket costs a descriptor and ~3 KiB (more with TLS); one host opening
 * sockets in a loop would otherwise take the descriptors that listeners need, and
 * lws, at its fd limit, stops accepting for everyone. So sockets are counted from
 * accept to close and refused at accept beyond either cap: the refused socket is
 * closed at once, before it is read from or its TLS handshake is paid for, and
 * listeners already connected never notice.
 *
 * Policy (defaults in config.c, the reasons in configs/conference.ini):
 *   max-connections               max-listeners + 1,000 (pages, HLS, booths, crew)
 *   max-connections-per-address   4,000: a hall of 2,000 phones behind one NAT
 *                                 address holds ~2 sockets each (the listen
 *                                 WebSocket and a keep-alive page/HLS socket)
 * Refusals are counted per reason (/metrics) and logged at most once per 10 s per
 * reason with the number refused since the last line, so a flood cannot flood the
 * log too.
 *
 * Cost: one hash lookup per accept and per close; the table holds one entry per
 * address with an open socket, so it is bounded by max-connections. */
#include "conncap.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#define LOG_INTERVAL_US (10 * G_USEC_PER_SEC)

struct _DragomanConnCapEntry {
  char *address;
  guint open; /* sockets of this address now */
};

typedef struct {
  const char *what;
  gint64 last_log_us;
  guint64 unlogged; /* refused since the last log line */
} RefusalLog;

struct _DragomanConnCap {
  guint max_total, max_per_address;
  GHashTable *by_address; /* address → DragomanConnCapEntry*; freed when its last socket closes */
  DragomanConnCapStats stats;
  RefusalLog log_total, log_per_address;
};

static void
entry_free (gpointer data)
{
  DragomanConnCapEntry *e = data;
  g_free (e->address);
  g_free (e);
}

DragomanConnCap *
dragoman_conncap_new (guint max_total, guint max_per_address)
{
  DragomanConnCap *cap = g_new0 (DragomanConnCap, 1);
  cap->max_total = max_total;
  cap->max_per_address = max_per_address;
  cap->by_address = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, entry_free);
  cap->log_total.what = "max-connections";
  cap->log_per_address.what = "max-connections-per-address";
  return cap;
}

void
dragoman_conncap_free (DragomanConnCap *cap)
{
  if (!cap)
    return;
  g_hash_table_unref (cap->by_address);
  g_free (cap);
}

gboolean
dragoman_conncap_peer_of_fd (int fd, char *out, gsize size)
{
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (fd < 0 || getpeername (fd, (struct sockaddr *)&ss, &len) != 0)
    return FALSE;
  if (ss.ss_family == AF_INET)
    return inet_ntop (AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, out, size) != NULL;
  if (ss.ss_family == AF_INET6) {
    const struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
    /* a dual-stack socket sees IPv4 clients as ::ffff:a.b.c.d: one address, one count */
    if (IN6_IS_ADDR_V4MAPPED (a))
      return inet_ntop (AF_INET, &a->s6_addr[12], out, size) != NULL;
    return inet_ntop (AF_INET6, a, out, size) != NULL;
  }
  return FALSE;
}

static void
refused (RefusalLog *log, guint64 *counter, guint limit, const char *address)
{
  (*counter)++;
  log->unlogged++;
  gint64 now = g_get_monotonic_time ();
  if (log->last_log_us && now - log->last_log_us < LOG_INTERVAL_US)
    return;
  g_printerr ("connections: refused %" G_GUINT64_FORMAT " connection(s)%s at %s = %u (the latest from %s)\n",
              log->unlogged, log->last_log_us ? " in the last 10 s or more" : "", log->what, limit, address);
  log->last_log_us = now;
  log->unlogged = 0;
}

gboolean
dragoman_conncap_admit (DragomanConnCap *cap, const char *address)
{
  if (cap->stats.open >= cap->max_total) {
    refused (&cap->log_total, &cap->stats.refused_total, cap->max_total, address);
    return FALSE;
  }
  DragomanConnCapEntry *e = cap->max_per_address ? g_hash_table_lookup (cap->by_address, address) : NULL;
  if (e && e->open >= cap->max_per_address) {
    refused (&cap->log_per_address, &cap->stats.refused_per_address, cap->max_per_address, address);
    return FALSE;
  }
  return TRUE;
}

DragomanConnCapEntry *
dragoman_conncap_open (DragomanConnCap *cap, const char *address)
{
  DragomanConnCapEntry *e = g_hash_table_lookup (cap->by_address, address);
  if (!e) {
    e = g_new0 (DragomanConnCapEntry, 1);
    e->address = g_strdup (address);
    g_hash_table_insert (cap->by_address, e->address, e);
  }
  e->open++;
  cap->stats.open++;
  return e;
}

void
dragoman_conncap_close (DragomanConnCap *cap, DragomanConnCapEntry *e)
{
  g_return_if_fail (e && e->open > 0 && cap->stats.open > 0);
  cap->stats.open--;
  if (--e->open == 0)
    g_hash_table_remove (cap->by_address, e->address);
}

void
dragoman_conncap_get_stats (DragomanConnCap *cap, DragomanConnCapStats *stats)
{
  *stats = cap->stats;
  stats->addresses = g_hash_table_size (cap->by_address);
}
