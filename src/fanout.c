/* fanout — ring of shared packets, listeners as positions.
 *
 * Threads: push() runs on a GStreamer streaming thread and only touches the inbox
 * (under `lock`); everything else is ONLY read or written from the service thread
 * that owns the sockets.
 *
 * Write policy, measured on this machine (docs/performance.md): one small send()
 * on loopback costs ~6 µs; libwebsockets' "ask for WRITEABLE, write once per
 * callback" pattern costs 2.2x that, because every frame toggles POLLOUT on every
 * socket. So a listener whose socket is not full is written to straight away from
 * dispatch(); only a choked socket (kernel buffer full) waits for WRITEABLE.
 * Whatever a listener has pending goes out coalesced: up to 16 messages / 4 KiB
 * in one write (write_batch), so a dispatch that finds 3 packets (the service
 * thread was late), a join burst or a socket that drained costs one send per
 * listener, not one per message. In steady state that is one message per write.
 *
 * Slow listeners (Redis-style soft and hard limits, in time):
 *  - backlog > soft limit (400 ms): skip to the live edge minus the burst; the first
 *    frame sent carries the discontinuity flag (a private copy of that one frame,
 *    since the shared bytes must not change); counted in resyncs/frames_skipped.
 *  - backlog > hard limit (4 s) while the socket takes nothing: close 1008,
 *    counted in slow_disconnects and logged.
 * The ring holds hard limit + burst + margin packets, so a listener's position is
 * always valid: nobody ever reads a slot that is being reused. */
#include "fanout.h"

#include <gst/gst.h>
#include <string.h>

GST_DEBUG_CATEGORY_STATIC (fanout_debug);
#define GST_CAT_DEFAULT fanout_debug

/* The inbox holds 1 s of packets (50 at 20 ms frames) before it drops (counted).
 * The main loop never stalls that long in a healthy server, but the mixer does
 * burst: when the stage is lost it waits for the floor until the switch to
 * silence (~0.7 s with an SRT stage, measured) and then hands over everything at
 * once. At 32 slots (640 ms) that burst overflowed the inbox at every stage loss
 * and raised "server stalled" on the control page; the channel's catch-up in
 * dragoman_fanout_dispatch() is what skips it now. */
#define INBOX_MS 1000

typedef struct {
  gint64 ingress_us;
  guint32 seq;
  guint16 len; /* header + Opus */
  guint8 *data; /* headroom bytes, then the message */
} Slot;

struct _DragomanListener {
  const DragomanSinkFuncs *funcs;
  gpointer sink;
  guint64 next; /* absolute sequence number of the next packet to send */
  gboolean choked;
  gboolean discont; /* the next frame sent must carry the discontinuity flag */
  gboolean closed;
  guint state_sent; /* generation of the state text this listener has */
  gboolean counted;
};

struct _DragomanFanout {
  char *name;
  guint frame_ms, headroom, burst, soft, hard; /* limits in packets */

  GMutex lock;
  Slot *inbox;             /* protected by lock: inbox_slots of them */
  guint inbox_slots;
  guint inbox_len;         /* protected by lock */
  guint32 next_seq;        /* protected by lock: numbered at push, so drops show as gaps */
  guint64 inbox_drops;     /* protected by lock */
  gint64 inbox_since_us;   /* protected by lock: when the oldest packet in the inbox came */
  void (*wakeup) (gpointer);
  gpointer wakeup_data;

  /* service thread only */
  guint32 last_seq; /* of the newest packet published */
  Slot *ring;
  guint capacity;
  guint64 head; /* sequence number of the next packet to publish */
  GPtrArray *listeners;
  guint8 *scratch; /* one private frame for a discontinuity */
  guint8 *state;   /* headroom + latest state JSON */
  gsize state_len;
  guint state_gen;
  DragomanFanoutStats stats;
};

static guint8 *
slot_alloc (guint headroom)
{
  return g_malloc0 (headroom + DRAGOMAN_HEADER_BYTES + DRAGOMAN_OPUS_MAX_BYTES);
}

DragomanFanout *
dragoman_fanout_new (const char *name, guint frame_ms, guint headroom, guint burst_ms, guint soft_limit_ms,
                     guint hard_limit_ms)
{
  g_return_val_if_fail (frame_ms > 0 && soft_limit_ms < hard_limit_ms, NULL);
  if (!fanout_debug)
    GST_DEBUG_CATEGORY_INIT (fanout_debug, "dragoman-fanout", 0, "dragoman fan-out");

  DragomanFanout *f = g_new0 (DragomanFanout, 1);
  f->name = g_strdup (name);
  f->frame_ms = frame_ms;
  f->headroom = headroom;
  f->burst = burst_ms / frame_ms;
  f->soft = MAX (soft_limit_ms / frame_ms, f->burst + 1);
  f->hard = MAX (hard_limit_ms / frame_ms, f->soft + 1);
  f->inbox_slots = MAX (INBOX_MS / frame_ms, 2);
  f->capacity = f->hard + f->burst + f->inbox_slots + 4;
  g_mutex_init (&f->lock);
  f->inbox = g_new0 (Slot, f->inbox_slots);
  for (guint i = 0; i < f->inbox_slots; i++)
    f->inbox[i].data = slot_alloc (headroom);
  f->ring = g_new0 (Slot, f->capacity);
  for (guint i = 0; i < f->capacity; i++)
    f->ring[i].data = slot_alloc (headroom);
  f->scratch = slot_alloc (headroom);
  f->listeners = g_ptr_array_new ();
  return f;
}

void
dragoman_fanout_free (DragomanFanout *f)
{
  if (!f)
    return;
  for (guint i = 0; i < f->inbox_slots; i++)
    g_free (f->inbox[i].data);
  g_free (f->inbox);
  for (guint i = 0; i < f->capacity; i++)
    g_free (f->ring[i].data);
  g_free (f->ring);
  g_free (f->scratch);
  g_free (f->state);
  for (guint i = 0; i < f->listeners->len; i++)
    g_free (f->listeners->pdata[i]);
  g_ptr_array_unref (f->listeners);
  g_mutex_clear (&f->lock);
  g_free (f->name);
  g_free (f);
}

void
dragoman_fanout_set_wakeup (DragomanFanout *f, void (*wakeup) (gpointer), gpointer data)
{
  f->wakeup = wakeup;
  f->wakeup_data = data;
}

gboolean
dragoman_fanout_push (DragomanFanout *f, const guint8 *opus, gsize len, gint64 ingress_us)
{
  if (len > DRAGOMAN_OPUS_MAX_BYTES)
    return FALSE;
  g_mutex_lock (&f->lock);
  if (f->inbox_len == f->inbox_slots) {
    /* the service thread is stalled: keep the newest audio, drop the oldest */
    guint8 *recycled = f->inbox[0].data;
    memmove (&f->inbox[0], &f->inbox[1], sizeof (Slot) * (f->inbox_slots - 1));
    f->inbox[f->inbox_slots - 1].data = recycled;
    f->inbox_len--;
    f->inbox_drops++;
  }
  if (f->inbox_len == 0)
    f->inbox_since_us = g_get_monotonic_time ();
  Slot *s = &f->inbox[f->inbox_len++];
  s->seq = f->next_seq++;
  s->ingress_us = ingress_us;
  s->len = (guint16) (DRAGOMAN_HEADER_BYTES + len);
  memcpy (s->data + f->headroom + DRAGOMAN_HEADER_BYTES, opus, len);
  g_mutex_unlock (&f->lock);
  if (f->wakeup)
    f->wakeup (f->wakeup_data);
  return TRUE;
}

static void
write_header (guint8 *h, guint8 flags, guint32 seq, gint64 ingress_us)
{
  h[0] = DRAGOMAN_KIND_OPUS;
  h[1] = flags;
  h[2] = h[3] = 0;
  guint32 s = GUINT32_TO_BE (seq);
  guint64 t = GUINT64_TO_BE ((guint64) ingress_us);
  memcpy (h + 4, &s, 4);
  memcpy (h + 8, &t, 8);
}

static void
close_listener (DragomanFanout *f, DragomanListener *l, guint16 code, const char *why)
{
  if (l->closed)
    return;
  l->closed = TRUE;
  if (code == 1011) { /* every drop counted: a failed write closes without a close frame */
    f->stats.write_failures++;
    GST_INFO ("%s: listener %p: a write failed: closing", f->name, l->sink);
  }
  l->funcs->close (l->sink, code, why);
}

/* Write what the listener has pending, until it is up to date or its socket fills. */
static void
feed (DragomanFanout *f, DragomanListener *l)
{
  if (l->closed || l->choked)
    return;
  if (G_UNLIKELY (l->state_sent != f->state_gen)) {
    l->state_sent = f->state_gen;
    DragomanWriteResult r = l->funcs->write_text (l->sink, f->state + f->headroom, f->state_len);
    if (r != DRAGOMAN_WRITE_OK) {
      if (r == DRAGOMAN_WRITE_FAILED)
        close_listener (f, l, 1011, "write failed");
      else {
        l->choked = TRUE;
        l->funcs->request_writable (l->sink);
      }
      return;
    }
  }
  guint64 lag = f->head - l->next;
  if (lag > f->soft) {
    guint64 skip = lag - f->burst;
    f->stats.resyncs++;
    f->stats.frames_skipped += skip;
    l->next += skip;
    l->discont = TRUE;
    GST_INFO ("%s: listener %p fell %" G_GUINT64_FORMAT " ms behind: skipped to the live edge", f->name, l->sink,
              lag * f->frame_ms);
  }
  /* One write per pending run of up to DRAGOMAN_FANOUT_BATCH_FRAMES messages: in
   * steady state that is one message (one send per listener per packet, the
   * floor); a listener with several pending gets them in one send, not one each. */
  guint max = l->funcs->write_batch ? DRAGOMAN_FANOUT_BATCH_FRAMES : 1;
  while (l->next < f->head) {
    DragomanFrame batch[DRAGOMAN_FANOUT_BATCH_FRAMES];
    guint n = 0;
    gsize bytes = 0;
    for (guint64 k = l->next; k < f->head && n < max; k++) {
      Slot *s = &f->ring[k % f->capacity];
      if (n > 0 && bytes + s->len > DRAGOMAN_FANOUT_BATCH_BYTES)
        break;
      guint8 *data = s->data + f->headroom;
      if (G_UNLIKELY (n == 0 && l->discont)) {
        /* the shared bytes must not change: send a private copy with the flag set */
        memcpy (f->scratch, s->data, f->headroom + s->len);
        data = f->scratch + f->headroom;
        data[1] |= DRAGOMAN_FLAG_DISCONT;
      }
      batch[n++] = (DragomanFrame) { data, s->len };
      bytes += s->len;
    }
    DragomanWriteResult r =
        n == 1 ? l->funcs->write (l->sink, batch[0].data, batch[0].len) : l->funcs->write_batch (l->sink, batch, n);
    if (r == DRAGOMAN_WRITE_FAILED) {
      close_listener (f, l, 1011, "write failed");
      return;
    }
    l->discont = FALSE;
    l->next += n;
    f->stats.frames_sent += n;
    f->stats.bytes_sent += bytes;
    f->stats.writes++;
    if (r == DRAGOMAN_WRITE_CHOKED) {
      l->choked = TRUE;
      l->funcs->request_writable (l->sink);
      return;
    }
  }
}

guint
dragoman_fanout_dispatch (DragomanFanout *f)
{
  g_mutex_lock (&f->lock);
  guint n = f->inbox_len;
  for (guint i = 0; i < n; i++) {
    Slot *in = &f->inbox[i];
    Slot *out = &f->ring[f->head % f->capacity];
    out->seq = in->seq;
    out->ingress_us = in->ingress_us;
    out->len = in->len;
    memcpy (out->data + f->headroom + DRAGOMAN_HEADER_BYTES, in->data + f->headroom + DRAGOMAN_HEADER_BYTES,
            in->len - DRAGOMAN_HEADER_BYTES);
    /* everyone missed the packets the inbox dropped: flag it in the shared bytes */
    gboolean gap = f->head > 0 && out->seq != f->last_seq + 1;
    write_header (out->data + f->headroom, gap ? DRAGOMAN_FLAG_DISCONT : 0, out->seq, out->ingress_us);
    f->last_seq = out->seq;
    f->head++;
  }
  f->inbox_len = 0;
  f->stats.inbox_drops = f->inbox_drops;
  gint64 since = f->inbox_since_us;
  g_mutex_unlock (&f->lock);
  if (n == 0)
    return 0;
  /* how long the main loop kept this channel waiting: a stall here is a gap in every
   * listener's ear, whatever blocked the loop (logged with its length, to find it) */
  guint waited_ms = (guint) ((g_get_monotonic_time () - since) / 1000);
  if (waited_ms > f->stats.wait_max_ms)
    f->stats.wait_max_ms = waited_ms;
  if (waited_ms >= DRAGOMAN_FANOUT_LATE_MS) {
    f->stats.late_dispatches += n;
    GST_WARNING ("%s: %u packet(s) waited %u ms for the main loop", f->name, n, waited_ms);
  }
  f->stats.packets_in += n;

  /* More than the soft limit at once is the channel's own catch-up (the mixer
   * waited for a lost stage's floor, ~0.7 s, then handed it all over), not a slow
   * listener: everyone skips to the live edge minus the burst, once, counted for the
   * channel. Left to the per-listener resync it read as a listener drop on every
   * socket ("slow networks" on the control page) at each stage loss. A choked
   * listener is left to the usual policy. */
  if (n > f->soft) {
    f->stats.catchups++;
    for (guint i = 0; i < f->listeners->len; i++) {
      DragomanListener *l = f->listeners->pdata[i];
      if (l->closed || l->choked || f->head - l->next <= f->burst)
        continue;
      l->next = f->head - f->burst;
      l->discont = TRUE;
    }
    GST_INFO ("%s: %u packets at once (%u ms): every listener skips to the live edge", f->name, n, n * f->frame_ms);
  }

  /* O(listeners): one send per listener per packet, the physical floor */
  for (guint i = 0; i < f->listeners->len; i++) {
    DragomanListener *l = f->listeners->pdata[i];
    if (l->closed) /* closing asynchronously: already counted */
      continue;
    if (l->choked && f->head - l->next > f->hard) {
      f->stats.slow_disconnects++;
      GST_WARNING ("%s: listener %p took nothing for %" G_GUINT64_FORMAT " ms: disconnecting", f->name, l->sink,
                   (f->head - l->next) * f->frame_ms);
      close_listener (f, l, 1008, "too slow");
      continue;
    }
    feed (f, l);
  }
  return n;
}

DragomanListener *
dragoman_fanout_add_full (DragomanFanout *f, const DragomanSinkFuncs *funcs, gpointer sink, gboolean counted)
{
  DragomanListener *l = g_new0 (DragomanListener, 1);
  l->funcs = funcs;
  l->sink = sink;
  l->counted = counted;
  /* start one burst behind the live edge so the page's jitter buffer fills at once */
  l->next = f->head > f->burst ? f->head - f->burst : 0;
  g_ptr_array_add (f->listeners, l);
  if (counted)
    f->stats.listeners++;
  feed (f, l);
  return l;
}

DragomanListener *
dragoman_fanout_add (DragomanFanout *f, const DragomanSinkFuncs *funcs, gpointer sink)
{
  return dragoman_fanout_add_full (f, funcs, sink, TRUE);
}

void
dragoman_fanout_set_state (DragomanFanout *f, const char *json)
{
  gsize len = strlen (json);
  g_free (f->state);
  f->state = g_malloc (f->headroom + len);
  memcpy (f->state + f->headroom, json, len);
  f->state_len = len;
  f->state_gen++;
  for (guint i = 0; i < f->listeners->len; i++)
    feed (f, f->listeners->pdata[i]);
}

void
dragoman_fanout_remove (DragomanFanout *f, DragomanListener *l)
{
  /* O(listeners) but only on disconnect; order does not matter */
  if (g_ptr_array_remove_fast (f->listeners, l)) {
    if (l->counted)
      f->stats.listeners--;
    g_free (l);
  }
}

void
dragoman_fanout_writable (DragomanFanout *f, DragomanListener *l)
{
  l->choked = FALSE;
  feed (f, l);
}

void
dragoman_fanout_get_stats (DragomanFanout *f, DragomanFanoutStats *stats)
{
  *stats = f->stats;
}

guint64
dragoman_fanout_head (DragomanFanout *f)
{
  return f->head;
}
