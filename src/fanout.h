/* fanout — one channel's encoded packets, shared by every listener of it.
 *
 * A GStreamer streaming thread pushes each Opus packet (dragoman_fanout_push, any
 * thread); the socket-owning service thread publishes it into a ring and writes
 * the very same bytes to every listener (dragoman_fanout_dispatch). A listener is
 * only a position in the ring, as in Icecast: never a copy per listener. */
#pragma once
#include <glib.h>

#define DRAGOMAN_HEADER_BYTES 16
#define DRAGOMAN_OPUS_MAX_BYTES 1276 /* RFC 6716 3.4: the largest legal Opus packet */
#define DRAGOMAN_FLAG_DISCONT 0x01
#define DRAGOMAN_KIND_OPUS 1

/* Coalescing: a listener with several messages pending (its join burst, a dispatch
 * that found several packets, a socket that was full) gets up to this many in one
 * socket write, of at most this many message bytes (plus the sink's framing). */
#define DRAGOMAN_FANOUT_BATCH_FRAMES 16
#define DRAGOMAN_FANOUT_BATCH_BYTES 4096

typedef struct _DragomanFanout DragomanFanout;
typedef struct _DragomanListener DragomanListener;

typedef enum {
  DRAGOMAN_WRITE_OK,     /* taken whole by the socket */
  DRAGOMAN_WRITE_CHOKED, /* taken, but the socket is now full: wait for writable */
  DRAGOMAN_WRITE_FAILED, /* the connection is dead */
} DragomanWriteResult;

/* one message of a batch, as `data`/`len` of write() below */
typedef struct {
  guint8 *data;
  gsize len;
} DragomanFrame;

/* How the fanout reaches a listener's socket. `data` is one whole binary message
 * (header + Opus) with `headroom` writable bytes before it (for the WebSocket frame
 * header, LWS_PRE); the bytes are shared: a writer must not keep the pointer. */
typedef struct {
  DragomanWriteResult (*write) (gpointer sink, guint8 *data, gsize len);
  /* the same, for a text message (channel state) */
  DragomanWriteResult (*write_text) (gpointer sink, guint8 *data, gsize len);
  void (*request_writable) (gpointer sink);
  void (*close) (gpointer sink, guint16 code, const char *reason);
  /* Optional: 2..DRAGOMAN_FANOUT_BATCH_FRAMES binary messages in one socket write,
   * in order, as if write() had been called for each (same results). NULL: one
   * write() per message. The bytes are shared and read-only here: no headroom. */
  DragomanWriteResult (*write_batch) (gpointer sink, const DragomanFrame *frames, guint n);
} DragomanSinkFuncs;

typedef struct {
  guint64 packets_in;      /* packets published */
  guint64 inbox_drops;     /* packets lost because the service thread stalled */
  guint64 frames_sent;     /* messages handed to sockets */
  guint64 writes;          /* socket writes that carried them: fewer when coalesced */
  guint64 bytes_sent;
  guint64 resyncs;         /* listeners skipped to the live edge (soft limit) */
  guint64 frames_skipped;  /* frames those resyncs dropped */
  guint64 slow_disconnects;/* listeners closed at the hard limit */
  guint64 write_failures;  /* listeners closed because a write to their socket failed (1011) */
  guint64 late_dispatches; /* packets that waited >= DRAGOMAN_FANOUT_LATE_MS for the service thread */
  guint64 catchups;        /* bursts over the soft limit from the encoder: every listener skipped */
  guint listeners;          /* audience only: not the booths' return feeds */
  guint wait_max_ms;        /* the longest a packet waited for the service thread */
} DragomanFanoutStats;

/* A packet that waits this long in the inbox for the service thread (the main loop)
 * is late: five 20 ms frames, past any listener's jitter buffer (starts at 40 ms). */
#define DRAGOMAN_FANOUT_LATE_MS 100

DragomanFanout *dragoman_fanout_new (const char *name, guint frame_ms, guint headroom, guint burst_ms,
                                     guint soft_limit_ms, guint hard_limit_ms);
void dragoman_fanout_free (DragomanFanout *fanout);
/* called (from any thread) after a push, to wake the service thread */
void dragoman_fanout_set_wakeup (DragomanFanout *fanout, void (*wakeup) (gpointer), gpointer data);

/* Any thread. Copies the packet into the bounded inbox; FALSE if too big. */
gboolean dragoman_fanout_push (DragomanFanout *fanout, const guint8 *opus, gsize len, gint64 ingress_us);

/* Service thread only, from here down. */
/* A text message (JSON) every listener gets before its next frame: the channel's
 * state. Only the latest matters, so a choked listener gets just the newest one. */
void dragoman_fanout_set_state (DragomanFanout *fanout, const char *json);
guint dragoman_fanout_dispatch (DragomanFanout *fanout);
DragomanListener *dragoman_fanout_add (DragomanFanout *fanout, const DragomanSinkFuncs *funcs, gpointer sink);
/* counted FALSE: an internal listener (a booth's return feed), not in stats.listeners */
DragomanListener *dragoman_fanout_add_full (DragomanFanout *fanout, const DragomanSinkFuncs *funcs, gpointer sink,
                                            gboolean counted);
void dragoman_fanout_remove (DragomanFanout *fanout, DragomanListener *listener);
/* the listener's socket can take more */
void dragoman_fanout_writable (DragomanFanout *fanout, DragomanListener *listener);
void dragoman_fanout_get_stats (DragomanFanout *fanout, DragomanFanoutStats *stats);
guint64 dragoman_fanout_head (DragomanFanout *fanout);
