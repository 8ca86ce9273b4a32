/* conncap — the cap on open connections, in total and per client address.
 *
 * Enforced at accept (lws's FILTER_NETWORK_CONNECTION), before a byte is read or
 * a TLS handshake is paid for. ONLY used from the lws service thread. */
#pragma once
#include <glib.h>

typedef struct _DragomanConnCap DragomanConnCap;
typedef struct _DragomanConnCapEntry DragomanConnCapEntry;

typedef struct {
  guint open;                  /* sockets counted now */
  guint addresses;             /* distinct client addresses among them */
  guint64 refused_total;       /* refused at max-connections */
  guint64 refused_per_address; /* refused at max-connections-per-address */
} DragomanConnCapStats;

/* max_per_address 0: no per-address cap */
DragomanConnCap *dragoman_conncap_new (guint max_total, guint max_per_address);
void dragoman_conncap_free (DragomanConnCap *cap);
/* the peer of a connected socket as text ("10.0.0.7", "2001:db8::1"; an IPv4-mapped
 * IPv6 address as its IPv4 form); FALSE when it has none (a UNIX socket) */
gboolean dragoman_conncap_peer_of_fd (int fd, char *out, gsize size);
/* at accept: TRUE if a socket from `address` may open now; FALSE counts and logs
 * (at most once per 10 s per reason) the refusal */
gboolean dragoman_conncap_admit (DragomanConnCap *cap, const char *address);
/* the accepted socket exists: count it until dragoman_conncap_close () */
DragomanConnCapEntry *dragoman_conncap_open (DragomanConnCap *cap, const char *address);
void dragoman_conncap_close (DragomanConnCap *cap, DragomanConnCapEntry *entry);
void dragoman_conncap_get_stats (DragomanConnCap *cap, DragomanConnCapStats *stats);
