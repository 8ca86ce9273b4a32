/* fanout — unit tests for src/fanout.c: shared ring, burst, slow-listener limits,
 * inbox, and a push thread racing the service thread.
 *
 * The test writer (TestSink) records every write: the pointer it was given, the
 * length and a copy of the bytes, and can be told to answer CHOKED or FAILED. It
 * scribbles over the `headroom` bytes before each message, as lws_write does with
 * LWS_PRE, so valgrind or ASan catch a headroom that is not really there.
 *
 * Every packet pushed here carries its push index in its first 4 bytes and a
 * pattern derived from it, so a frame can be checked against what was pushed.
*/
#include <gst/check/gstcheck.h>
#include <string.h>

#include "fanout.h"

typedef struct {
  guint8 *ptr; /* as given to write(): shared ring bytes; valid while the fanout lives */
  gsize len;
  guint8 *bytes; /* copy taken at write time */
} Write;

typedef struct {
  guint headroom;
  DragomanWriteResult result; /* what every write answers */
  GPtrArray *writes;          /* Write* */
  guint writable_requests;
  guint closes;
  guint16 close_code;
  guint writes_after_close;
  GArray *calls; /* guint: messages per write call (1 for write(), n for write_batch()) */
} TestSink;

static void
write_free (gpointer data)
{
  Write *w = data;
  g_free (w->bytes);
  g_free (w);
}

static void
sink_init (TestSink *s, guint headroom)
{
  memset (s, 0, sizeof *s);
  s->headroom = headroom;
  s->result = DRAGOMAN_WRITE_OK;
  s->writes = g_ptr_array_new_with_free_func (write_free);
  s->calls = g_array_new (FALSE, FALSE, sizeof (guint));
}

static void
sink_clear (TestSink *s)
{
  g_ptr_array_unref (s->writes);
  g_array_unref (s->calls);
}

static DragomanWriteResult
sink_write (gpointer sink, guint8 *data, gsize len)
{
  TestSink *s = sink;
  if (s->closes)
    s->writes_after_close++;
  /* what a WebSocket writer does with the headroom: put its frame header there */
  memset (data - s->headroom, 0xEE, s->headroom);
  Write *w = g_new0 (Write, 1);
  w->ptr = data;
  w->len = len;
  w->bytes = g_memdup2 (data, len);
  g_ptr_array_add (s->writes, w);
  guint one = 1;
  g_array_append_val (s->calls, one);
  return s->result;
}

/* a coalescing writer: records each message of the batch as a Write of its own,
 * and the batch as one call; it must not touch the (shared) bytes */
static DragomanWriteResult
sink_write_batch (gpointer sink, const DragomanFrame *frames, guint n)
{
  TestSink *s = sink;
  fail_unless (n >= 2 && n <= DRAGOMAN_FANOUT_BATCH_FRAMES, "batch of %u", n);
  gsize bytes = 0;
  for (guint i = 0; i < n; i++) {
    Write *w = g_new0 (Write, 1);
    w->ptr = frames[i].data;
    w->len = frames[i].len;
    w->bytes = g_memdup2 (frames[i].data, frames[i].len);
    g_ptr_array_add (s->writes, w);
    bytes += frames[i].len;
  }
  fail_unless (bytes <= DRAGOMAN_FANOUT_BATCH_BYTES, "batch of %" G_GSIZE_FORMAT " bytes", bytes);
  g_array_append_val (s->calls, n);
  return s->result;
}

static void
sink_request_writable (gpointer sink)
{
  ((TestSink *) sink)->writable_requests++;
}

static void
sink_close (gpointer sink, guint16 code, const char *reason)
{
  TestSink *s = sink;
  s->closes++;
  s->close_code = code;
  fail_unless (reason != NULL && *reason, "close without a reason");
}

static const DragomanSinkFuncs sink_funcs = {
  .write = sink_write,
  .request_writable = sink_request_writable,
  .close = sink_close,
};

static const DragomanSinkFuncs batch_funcs = {
  .write = sink_write,
  .request_writable = sink_request_writable,
  .close = sink_close,
  .write_batch = sink_write_batch,
};

#define NWRITES(s) ((s)->writes->len)
#define NCALLS(s) ((s)->calls->len)
#define CALL(s, i) g_array_index ((s)->calls, guint, i)
#define WRITE(s, i) ((const Write *) (s)->writes->pdata[i])

/* ---- packets ---- */

static gsize
make_payload (guint idx, guint8 *buf)
{
  gsize len = 8 + idx % 64;
  guint32 be = GUINT32_TO_BE (idx);
  memcpy (buf, &be, 4);
  for (gsize j = 4; j < len; j++)
    buf[j] = (guint8) (idx * 7 + j);
  return len;
}

static gint64
ingress_of (guint idx)
{
  return G_GINT64_CONSTANT (0x0102030405060708) + (gint64) idx * 20000;
}

static gboolean
push_idx (DragomanFanout *f, guint idx)
{
  guint8 buf[DRAGOMAN_OPUS_MAX_BYTES];
  gsize len = make_payload (idx, buf);
  return dragoman_fanout_push (f, buf, len, ingress_of (idx));
}

/* push packets [from, to) and dispatch each one as it comes */
static void
push_dispatch (DragomanFanout *f, guint from, guint to)
{
  for (guint i = from; i < to; i++) {
    fail_unless (push_idx (f, i));
    fail_unless_equals_int (dragoman_fanout_dispatch (f), 1);
  }
}

static guint32
rd32 (const guint8 *p)
{
  guint32 v;
  memcpy (&v, p, 4);
  return GUINT32_FROM_BE (v);
}

static guint64
rd64 (const guint8 *p)
{
  guint64 v;
  memcpy (&v, p, 8);
  return GUINT64_FROM_BE (v);
}

static guint32
msg_seq (const Write *w)
{
  return rd32 (w->bytes + 4);
}

static guint
msg_idx (const Write *w)
{
  return rd32 (w->bytes + DRAGOMAN_HEADER_BYTES);
}

/* the message is packet `idx` of the pushes, published as `seq`, with `flags` */
static void
check_msg (const Write *w, guint idx, guint32 seq, guint8 flags)
{
  guint8 payload[DRAGOMAN_OPUS_MAX_BYTES];
  gsize plen = make_payload (idx, payload);
  fail_unless_equals_int (w->len, DRAGOMAN_HEADER_BYTES + plen);
  fail_unless_equals_int (w->bytes[0], DRAGOMAN_KIND_OPUS);
  fail_unless_equals_int (w->bytes[1], flags);
  fail_unless_equals_int (w->bytes[2], 0);
  fail_unless_equals_int (w->bytes[3], 0);
  fail_unless_equals_int (rd32 (w->bytes + 4), seq);
  fail_unless (rd64 (w->bytes + 8) == (guint64) ingress_of (idx), "ingress of packet %u is wrong", idx);
  fail_unless (memcmp (w->bytes + DRAGOMAN_HEADER_BYTES, payload, plen) == 0, "payload of packet %u differs", idx);
}

/* the sink got exactly packets [from, to) in order (idx == seq), no flags */
static void
check_all (const TestSink *s, guint from, guint to)
{
  fail_unless_equals_int (NWRITES (s), to - from);
  for (guint i = from; i < to; i++)
    check_msg (WRITE (s, i - from), i, i, 0);
}

/* frame 20 ms; burst 3, soft 10, hard 50 packets: small enough to walk through */
#define SMALL(headroom) dragoman_fanout_new ("test", 20, (headroom), 60, 200, 1000)
/* soft limit 50 packets, above the inbox (32): a whole inbox in one dispatch is
 * not a resync (see test_stall_resyncs) */
#define ROOMY(headroom) dragoman_fanout_new ("test", 20, (headroom), 60, 1000, 4000)

/* ---- tests ---- */

GST_START_TEST (test_shared_buffers)
{
  DragomanFanout *f = dragoman_fanout_new ("test", 20, 16, 60, 400, 4000);
  TestSink s[3];
  for (guint i = 0; i < 3; i++) {
    sink_init (&s[i], 16);
    fail_unless (dragoman_fanout_add (f, &sink_funcs, &s[i]) != NULL);
    fail_unless_equals_int (NWRITES (&s[i]), 0); /* nothing to burst yet */
  }
  fail_unless (push_idx (f, 0));
  fail_unless_equals_int (NWRITES (&s[0]), 0); /* push alone writes nothing */
  fail_unless_equals_int (dragoman_fanout_dispatch (f), 1);
  fail_unless_equals_int (dragoman_fanout_dispatch (f), 0);
  push_dispatch (f, 1, 5);

  guint64 bytes = 0;
  for (guint i = 0; i < 3; i++)
    check_all (&s[i], 0, 5);
  for (guint p = 0; p < 5; p++) {
    /* the very same bytes for every listener: no copy per listener */
    fail_unless (WRITE (&s[0], p)->ptr == WRITE (&s[1], p)->ptr);
    fail_unless (WRITE (&s[0], p)->ptr == WRITE (&s[2], p)->ptr);
    if (p > 0)
      fail_unless (WRITE (&s[0], p)->ptr != WRITE (&s[0], p - 1)->ptr);
    bytes += 3 * WRITE (&s[0], p)->len;
  }
  DragomanFanoutStats st;
  dragoman_fanout_get_stats (f, &st);
  fail_unless_equals_uint64 (st.listeners, 3);
  fail_unless_equals_uint64 (st.packets_in, 5);
  fail_unless_equals_uint64 (st.frames_sent, 15);
  fail_unless_equals_uint64 (st.bytes_sent, bytes);
  fail_unless_equals_uint64 (st.inbox_drops, 0);
  fail_unless_equals_uint64 (st.resyncs, 0);
  fail_unless_equals_int (dragoman_fanout_head (f), 5);

  dragoman_fanout_free (f);
  for (guint i = 0; i < 3; i++)
    sink_clear (&s[i]);
}
GST_END_TEST;

GST_START_TEST (test_header_bytes)
{
  DragomanFanout *f = dragoman_fanout_new ("test", 20, 0, 0, 400, 4000);
  TestSink s;
  sink_init (&s, 0);
  dragoman_fanout_add (f, &sink_funcs, &s);
  push_dispatch (f, 0, 300);
  /* packet 299: seq 0x0000012b, ingress 0x0102030405060708 + 299 * 20000 */
  const Write *w = WRITE (&s, 299);
  const guint8 want[DRAGOMAN_HEADER_BYTES] = { 1, 0, 0, 0, 0x00, 0x00, 0x01, 0x2b,
                                               0x01, 0x02, 0x03, 0x04, 0x05, 0x61, 0x46, 0x68 };
  fail_unless_equals_int64 (G_GINT64_CONSTANT (0x0102030405060708) + 299 * 20000,
                          G_GINT64_CONSTANT (0x0102030405614668));
  fail_unless (memcmp (w->bytes, want, DRAGOMAN_HEADER_BYTES) == 0);
  fail_unless_equals_int (w->len, DRAGOMAN_HEADER_BYTES + 8 + 299 % 64);
  fail_unless_equals_int (w->bytes[DRAGOMAN_HEADER_BYTES + 3], 0x2b); /* payload: push index 299 */
  check_all (&s, 0, 300);
  dragoman_fanout_free (f);
  sink_clear (&s);
}
GST_END_TEST;

GST_START_TEST (test_sequence)
{
  DragomanFanout *f = ROOMY (16);
  TestSink s;
  sink_init (&s, 16);
  dragoman_fanout_add (f, &sink_funcs, &s);
  /* one at a time, then in batches of various sizes: +1 per packet either way */
  push_dispatch (f, 0, 10);
  guint idx = 10;
  for (guint batch = 1; batch <= 32; batch++) {
    for (guint i = 0; i < batch; i++)
      fail_unless (push_idx (f, idx++));
    fail_unless_equals_int (dragoman_fanout_dispatch (f), batch);
  }
  fail_unless_equals_int (dragoman_fanout_head (f), idx);
  check_all (&s, 0, idx); /* idx > ring capacity: slots were reused along the way */
  dragoman_fanout_free (f);
  sink_clear (&s);
}
GST_END_TEST;

GST_START_TEST (test_burst_on_add)
{
  struct {
    guint frame_ms, burst_ms, burst;
  } cases[] = { { 20, 60, 3 }, { 10, 60, 6 }, { 20, 100, 5 }, { 20, 0, 0 }, { 20, 30, 1 } };
  for (guint c = 0; c < G_N_ELEMENTS (cases); c++) {
    DragomanFanout *f = dragoman_fanout_new ("test", cases[c].frame_ms, 16, cases[c].burst_ms, 400, 4000);
    TestSink early, late, young;
    sink_init (&early, 16);
    sink_init (&late, 16);
    sink_init (&young, 16);
    dragoman_fanout_add (f, &sink_funcs, &early);
    push_dispatch (f, 0, 2);
    /* fewer packets than a burst so far: gets what there is */
    dragoman_fanout_add (f, &sink_funcs, &young);
    fail_unless_equals_int (NWRITES (&young), MIN (2, cases[c].burst));
    push_dispatch (f, 2, 25);

    guint n = 25;
    dragoman_fanout_add (f, &sink_funcs, &late);
    guint burst = cases[c].burst;
    /* written from add() itself, before any further dispatch */
    fail_unless_equals_int (NWRITES (&late), burst);
    for (guint i = 0; i < burst; i++) {
      check_msg (WRITE (&late, i), n - burst + i, n - burst + i, 0);
      /* still the shared bytes */
      fail_unless (WRITE (&late, i)->ptr == WRITE (&early, n - burst + i)->ptr);
    }
    push_dispatch (f, n, n + 1);
    fail_unless_equals_int (NWRITES (&late), burst + 1);
    check_msg (WRITE (&late, burst), n, n, 0);
    check_all (&early, 0, n + 1);

    dragoman_fanout_free (f);
    sink_clear (&early);
    sink_clear (&late);
    sink_clear (&young);
  }
}
GST_END_TEST;

GST_START_TEST (test_headroom)
{
  /* odd sizes on purpose; the sink scribbles over all of it on every write */
  const guint headrooms[] = { 0, 1, 13, 16, 64 };
  for (guint h = 0; h < G_N_ELEMENTS (headrooms); h++) {
    guint hr = headrooms[h];
    DragomanFanout *f = SMALL (hr);
    TestSink a, b;
    sink_init (&a, hr);
    sink_init (&b, hr);
    dragoman_fanout_add (f, &sink_funcs, &a);
    DragomanListener *lb = dragoman_fanout_add (f, &sink_funcs, &b);
    push_dispatch (f, 0, 120); /* more than the ring: every slot is used */
    /* b was written after a scribbled the headroom: its message is intact */
    check_all (&a, 0, 120);
    check_all (&b, 0, 120);
    /* the headroom also precedes a private discontinuity frame (scratch) */
    b.result = DRAGOMAN_WRITE_CHOKED;
    push_dispatch (f, 120, 121);
    b.result = DRAGOMAN_WRITE_OK;
    push_dispatch (f, 121, 150);
    dragoman_fanout_writable (f, lb);
    fail_unless_equals_int (NWRITES (&b), 124);
    check_msg (WRITE (&b, 121), 147, 147, DRAGOMAN_FLAG_DISCONT);
    check_msg (WRITE (&b, 123), 149, 149, 0);
    check_all (&a, 0, 150);
    dragoman_fanout_free (f);
    sink_clear (&a);
    sink_clear (&b);
  }
}
GST_END_TEST;

GST_START_TEST (test_resync)
{
  DragomanFanout *f = SMALL (16); /* burst 3, soft 10 packets */
  TestSink a, b;
  sink_init (&a, 16);
  sink_init (&b, 16);
  dragoman_fanout_add (f, &sink_funcs, &a);
  DragomanListener *lb = dragoman_fanout_add (f, &sink_funcs, &b);

  b.result = DRAGOMAN_WRITE_CHOKED; /* takes this one, then the socket is full */
  push_dispatch (f, 0, 1);
  fail_unless_equals_int (NWRITES (&b), 1);
  fail_unless_equals_int (b.writable_requests, 1);
  b.result = DRAGOMAN_WRITE_OK;

  push_dispatch (f, 1, 16); /* b is 15 behind, soft limit is 10 */
  fail_unless_equals_int (NWRITES (&b), 1); /* waits for writable */
  check_all (&a, 0, 16);

  dragoman_fanout_writable (f, lb);
  /* skipped to the live edge minus the burst: 13, 14, 15 */
  fail_unless_equals_int (NWRITES (&b), 4);
  check_msg (WRITE (&b, 0), 0, 0, 0);
  check_msg (WRITE (&b, 1), 13, 13, DRAGOMAN_FLAG_DISCONT);
  check_msg (WRITE (&b, 2), 14, 14, 0);
  check_msg (WRITE (&b, 3), 15, 15, 0);
  /* the flagged frame is a private copy; the shared bytes keep flags 0 */
  fail_unless (WRITE (&b, 1)->ptr != WRITE (&a, 13)->ptr);
  fail_unless_equals_int (WRITE (&a, 13)->ptr[1], 0);
  fail_unless (memcmp (WRITE (&a, 13)->ptr, WRITE (&a, 13)->bytes, WRITE (&a, 13)->len) == 0);
  fail_unless (WRITE (&b, 2)->ptr == WRITE (&a, 14)->ptr);
  fail_unless (WRITE (&b, 3)->ptr == WRITE (&a, 15)->ptr);

  DragomanFanoutStats st;
  dragoman_fanout_get_stats (f, &st);
  fail_unless_equals_uint64 (st.resyncs, 1);
  fail_unless_equals_uint64 (st.frames_skipped, 12); /* 1..12 */
  fail_unless_equals_uint64 (st.slow_disconnects, 0);

  /* back to normal afterwards, for both; a listener added later gets no flag */
  TestSink c;
  sink_init (&c, 16);
  dragoman_fanout_add (f, &sink_funcs, &c);
  push_dispatch (f, 16, 20);
  fail_unless_equals_int (NWRITES (&b), 8);
  for (guint i = 16; i < 20; i++) {
    check_msg (WRITE (&b, i - 12), i, i, 0);
    fail_unless (WRITE (&b, i - 12)->ptr == WRITE (&a, i)->ptr);
  }
  check_all (&a, 0, 20);
  for (guint i = 0; i < NWRITES (&c); i++)
    fail_unless_equals_int (WRITE (&c, i)->bytes[1], 0);
  fail_unless_equals_int (b.closes, 0);

  dragoman_fanout_free (f);
  sink_clear (&a);
  sink_clear (&b);
  sink_clear (&c);
}
GST_END_TEST;

GST_START_TEST (test_no_resync_at_soft_limit)
{
  DragomanFanout *f = SMALL (16); /* soft 10 packets */
  TestSink b;
  sink_init (&b, 16);
  DragomanListener *lb = dragoman_fanout_add (f, &sink_funcs, &b);
  b.result = DRAGOMAN_WRITE_CHOKED;
  push_dispatch (f, 0, 1);
  b.result = DRAGOMAN_WRITE_OK;
  push_dispatch (f, 1, 11); /* exactly 10 behind: catch up, skip nothing */
  dragoman_fanout_writable (f, lb);
  check_all (&b, 0, 11);
  DragomanFanoutStats st;
  dragoman_fanout_get_stats (f, &st);
  fail_unless_equals_uint64 (st.resyncs, 0);
  fail_unless_equals_uint64 (st.frames_skipped, 0);

  /* a socket that fills again mid catch-up stops there and resumes in order */
  b.result = DRAGOMAN_WRITE_CHOKED;
  push_dispatch (f, 11, 12);
  push_dispatch (f, 12, 16);
  fail_unless_equals_int (NWRITES (&b), 12);
  dragoman_fanout_writable (f, lb); /* still CHOKED: one more frame only */
  fail_unless_equals_int (NWRITES (&b), 13);
  b.result = DRAGOMAN_WRITE_OK;
  dragoman_fanout_writable (f, lb);
  check_all (&b, 0, 16);
  fail_unless_equals_int (b.writable_requests, 3);
  dragoman_fanout_free (f);
  sink_clear (&b);
}
GST_END_TEST;

/* A service-thread stall longer than the soft limit (but short enough for the
 * inbox to hold it) resyncs every listener, even one whose socket is fine: its
 * position is more than the soft limit behind the live edge once the inbox is
 * published. Documents the current policy. */
GST_START_TEST (test_stall_resyncs)
{
  DragomanFanout *f = SMALL (16); /* burst 3, soft 10 */
  TestSink s;
  sink_init (&s, 16);
  dragoman_fanout_add (f, &sink_funcs, &s);
  for (guint i = 0; i < 10; i++)
    fail_unless (push_idx (f, i));
  fail_unless_equals_int (dragoman_fanout_dispatch (f), 10);
  check_all (&s, 0, 10); /* 10 = soft limit: all delivered */
  for (guint i = 10; i < 25; i++)
    fail_unless (push_idx (f, i));
  fail_unless_equals_int (dragoman_fanout_dispatch (f), 15);
  fail_unless_equals_int (NWRITES (&s), 13);
  check_msg (WRITE (&s, 10), 22, 22, DRAGOMAN_FLAG_DISCONT);
  check_msg (WRITE (&s, 12), 24, 24, 0);
  /* a stall of the service thread, seen as 15 packets at once: the channel's
   * catch-up (test_channel_catchup), not the listener's resync */
  DragomanFanoutStats st;
  dragoman_fanout_get_stats (f, &st);
  fail_unless_equals_uint64 (st.catchups, 1);
  fail_unless_equals_uint64 (st.resyncs, 0);
  fail_unless_equals_uint64 (st.frames_skipped, 0);
  dragoman_fanout_free (f);
  sink_clear (&s);
}
GST_END_TEST;

GST_START_TEST (test_hard_limit)
{
  DragomanFanout *f = SMALL (16); /* hard 50 packets */
  TestSink a, b, c;
  sink_init (&a, 16);
  sink_init (&b, 16);
  sink_init (&c, 16);
  dragoman_fanout_add (f, &sink_funcs, &a);
  DragomanListener *lb = dragoman_fanout_add (f, &sink_funcs, &b);
  dragoman_fanout_add (f, &sink_funcs, &c);

  b.result = DRAGOMAN_WRITE_CHOKED; /* and it stays full */
  push_dispatch (f, 0, 1);          /* b took packet 0: its next is 1 */
  /* up to 50 packets behind: kept, and not written to */
  push_dispatch (f, 1, 51);
  fail_unless_equals_int (b.closes, 0);
  fail_unless_equals_int (NWRITES (&b), 1);
  /* 51 behind: closed */
  push_dispatch (f, 51, 52);
  fail_unless_equals_int (b.closes, 1);
  fail_unless_equals_int (b.close_code, 1008);
  DragomanFanoutStats st;
  dragoman_fanout_get_stats (f, &st);
  fail_unless_equals_uint64 (st.slow_disconnects, 1);

  /* the server removes the listener once the socket is closed */
  dragoman_fanout_remove (f, lb);
  push_dispatch (f, 52, 200);
  fail_unless_equals_int (b.closes, 1);
  fail_unless_equals_int (b.writes_after_close, 0);
  dragoman_fanout_get_stats (f, &st);
  fail_unless_equals_uint64 (st.slow_disconnects, 1);
  fail_unless_equals_uint64 (st.listeners, 2);
  /* the others never noticed */
  check_all (&a, 0, 200);
  check_all (&c, 0, 200);
  fail_unless_equals_int (a.closes + c.closes, 0);

  dragoman_fanout_free (f);
  sink_clear (&a);
  sink_clear (&b);
  sink_clear (&c);
}
GST_END_TEST;

/* ws_listen's close is asynchronous ("let lws close it on its next service
 * pass"), so a closed listener stays in the fanout for a while: it must be
 * counted in slow_disconnects once, not once per packet until removed. */
GST_START_TEST (test_hard_limit_counted_once)
{
  DragomanFanout *f = SMALL (16);
  TestSink b;
  sink_init (&b, 16);
  dragoman_fanout_add (f, &sink_funcs, &b);
  b.result = DRAGOMAN_WRITE_CHOKED;
  push_dispatch (f, 0, 60);
  fail_unless_equals_int (b.closes, 1);
  push_dispatch (f, 60, 70); /* not removed yet */
  fail_unless_equals_int (b.closes, 1);
  DragomanFanoutStats st;
  dragoman_fanout_get_stats (f, &st);
  fail_unless_equals_uint64 (st.slow_disconnects, 1);
  dragoman_fanout_free (f);
  sink_clear (&b);
}
GST_END_TEST;

GST_START_TEST (test_write_failed)
{
  DragomanFanout *f = SMALL (16);
  TestSink a, b, late;
  sink_init (&a, 16);
  sink_init (&b, 16);
  sink_init (&late, 16);
  dragoman_fanout_add (f, &sink_funcs, &a);
  dragoman_fanout_add (f, &sink_funcs, &b);
  push_dispatch (f, 0, 5);
  b.result = DRAGOMAN_WRITE_FAILED;
  push_dispatch (f, 5, 6);
  fail_unless_equals_int (b.closes, 1);
  fail_unless_equals_int (b.close_code, 1011);
  fail_unless_equals_int (NWRITES (&b), 6);
  push_dispatch (f, 6, 30);
  fail_unless_equals_int (b.closes, 1);
  fail_unless_equals_int (b.writes_after_close, 0);
  check_all (&a, 0, 30);
  DragomanFanoutStats st;
  dragoman_fanout_get_stats (f, &st);
  fail_unless_equals_uint64 (st.frames_sent, 30 + 5); /* the failed write is not counted */
  fail_unless_equals_uint64 (st.slow_disconnects, 0);

  /* failing on the burst, straight from add() */
  late.result = DRAGOMAN_WRITE_FAILED;
  dragoman_fanout_add (f, &sink_funcs, &late);
  fail_unless_equals_int (late.closes, 1);
  fail_unless_equals_int (late.close_code, 1011);
  fail_unless_equals_int (NWRITES (&late), 1);
  push_dispatch (f, 30, 31);
  fail_unless_equals_int (late.writes_after_close, 0);

  dragoman_fanout_free (f);
  sink_clear (&a);
  sink_clear (&b);
  sink_clear (&late);
}
GST_END_TEST;

static void
count_wakeup (gpointer data)
{
  g_atomic_int_inc ((gint *) data);
}

GST_START_TEST (test_inbox_overflow)
{
  DragomanFanout *f = ROOMY (16);
  gint wakeups = 0;
  dragoman_fanout_set_wakeup (f, count_wakeup, &wakeups);
  TestSink s;
  sink_init (&s, 16);
  dragoman_fanout_add (f, &sink_funcs, &s);

  const guint n = 100; /* a stalled service thread: no dispatch in between */
  for (guint i = 0; i < n; i++)
    fail_unless (push_idx (f, i));
  fail_unless_equals_int (wakeups, n);
  guint kept = dragoman_fanout_dispatch (f);
  fail_unless (kept > 0 && kept < n, "inbox kept %u of %u", kept, n);
  DragomanFanoutStats st;
  dragoman_fanout_get_stats (f, &st);
  fail_unless_equals_uint64 (st.inbox_drops, n - kept);
  fail_unless_equals_uint64 (st.packets_in, kept);
  /* the newest packets, in order, keeping their push numbers: the drop is a gap
   * (the first packet is not flagged: nothing was sent before it) */
  fail_unless_equals_int (NWRITES (&s), kept);
  for (guint i = 0; i < kept; i++)
    check_msg (WRITE (&s, i), n - kept + i, n - kept + i, 0);

  /* and it works normally afterwards */
  push_dispatch (f, n, n + 3);
  fail_unless_equals_int (NWRITES (&s), kept + 3);
  check_msg (WRITE (&s, kept + 2), n + 2, n + 2, 0);
  dragoman_fanout_get_stats (f, &st);
  fail_unless_equals_uint64 (st.inbox_drops, n - kept);

  /* exactly full is not a drop */
  for (guint i = 0; i < kept; i++)
    fail_unless (push_idx (f, i));
  fail_unless_equals_int (dragoman_fanout_dispatch (f), kept);
  dragoman_fanout_get_stats (f, &st);
  fail_unless_equals_uint64 (st.inbox_drops, n - kept);

  dragoman_fanout_free (f);
  sink_clear (&s);
}
GST_END_TEST;

/* a packet kept waiting by a stalled main loop is counted from its push, not its
 * ingress: the three pushed during the 150 ms stall are late, a prompt one is not */
GST_START_TEST (test_late_dispatch)
{
  DragomanFanout *f = ROOMY (16);
  TestSink s;
  sink_init (&s, 16);
  dragoman_fanout_add (f, &sink_funcs, &s);
  push_dispatch (f, 0, 1);
  DragomanFanoutStats st;
  dragoman_fanout_get_stats (f, &st);
  fail_unless_equals_uint64 (st.late_dispatches, 0);

  for (guint i = 1; i < 4; i++)
    fail_unless (push_idx (f, i));
  g_usleep ((DRAGOMAN_FANOUT_LATE_MS + 50) * 1000);
  fail_unless_equals_int (dragoman_fanout_dispatch (f), 3);
  dragoman_fanout_get_stats (f, &st);
  fail_unless_equals_uint64 (st.late_dispatches, 3);
  fail_unless (st.wait_max_ms >= DRAGOMAN_FANOUT_LATE_MS + 50, "waited %u ms", st.wait_max_ms);

  push_dispatch (f, 4, 5); /* the clock restarts with the next packet */
  dragoman_fanout_get_stats (f, &st);
  fail_unless_equals_uint64 (st.late_dispatches, 3);
  fail_unless_equals_int (NWRITES (&s), 5);
  dragoman_fanout_free (f);
  sink_clear (&s);
}
GST_END_TEST;

/* a burst longer than the soft limit in one dispatch is the channel catching up
 * (a lost stage's floor): every listener skips to the live edge minus the burst at
 * once, flagged, counted for the channel, not as a listener resync */
GST_START_TEST (test_channel_catchup)
{
  DragomanFanout *f = SMALL (16); /* burst 3, soft 10 packets */
  TestSink a;
  sink_init (&a, 16);
  dragoman_fanout_add (f, &sink_funcs, &a);
  push_dispatch (f, 0, 2);
  for (guint i = 2; i < 17; i++) /* 15 packets at once */
    fail_unless (push_idx (f, i));
  fail_unless_equals_int (dragoman_fanout_dispatch (f), 15);
  fail_unless_equals_int (NWRITES (&a), 5);
  check_msg (WRITE (&a, 2), 14, 14, DRAGOMAN_FLAG_DISCONT);
  check_msg (WRITE (&a, 4), 16, 16, 0);
  DragomanFanoutStats st;
  dragoman_fanout_get_stats (f, &st);
  fail_unless_equals_uint64 (st.catchups, 1);
  fail_unless_equals_uint64 (st.resyncs, 0);

  for (guint i = 17; i < 25; i++) /* 8 at once: within the soft limit, all sent */
    fail_unless (push_idx (f, i));
  dragoman_fanout_dispatch (f);
  fail_unless_equals_int (NWRITES (&a), 13);
  check_msg (WRITE (&a, 5), 17, 17, 0);
  dragoman_fanout_get_stats (f, &st);
  fail_unless_equals_uint64 (st.catchups, 1);
  dragoman_fanout_free (f);
  sink_clear (&a);
}
GST_END_TEST;

GST_START_TEST (test_oversized)
{
  DragomanFanout *f = SMALL (16);
  TestSink s;
  sink_init (&s, 16);
  dragoman_fanout_add (f, &sink_funcs, &s);
  guint8 *big = g_malloc0 (DRAGOMAN_OPUS_MAX_BYTES + 1);
  memset (big, 0x5a, DRAGOMAN_OPUS_MAX_BYTES + 1);
  fail_if (dragoman_fanout_push (f, big, DRAGOMAN_OPUS_MAX_BYTES + 1, 0));
  fail_if (dragoman_fanout_push (f, big, 65536, 0));
  fail_unless_equals_int (dragoman_fanout_dispatch (f), 0);
  fail_unless_equals_int (NWRITES (&s), 0);
  /* the largest legal packet goes through whole */
  fail_unless (dragoman_fanout_push (f, big, DRAGOMAN_OPUS_MAX_BYTES, 42));
  fail_unless_equals_int (dragoman_fanout_dispatch (f), 1);
  fail_unless_equals_int (NWRITES (&s), 1);
  fail_unless_equals_int (WRITE (&s, 0)->len, DRAGOMAN_HEADER_BYTES + DRAGOMAN_OPUS_MAX_BYTES);
  fail_unless (memcmp (WRITE (&s, 0)->bytes + DRAGOMAN_HEADER_BYTES, big, DRAGOMAN_OPUS_MAX_BYTES) == 0);
  fail_unless_equals_uint64 (rd64 (WRITE (&s, 0)->bytes + 8), 42);
  DragomanFanoutStats st;
  dragoman_fanout_get_stats (f, &st);
  fail_unless_equals_uint64 (st.packets_in, 1);
  fail_unless_equals_uint64 (st.inbox_drops, 0);
  g_free (big);
  dragoman_fanout_free (f);
  sink_clear (&s);
}
GST_END_TEST;

GST_START_TEST (test_remove)
{
  DragomanFanout *f = SMALL (16);
  TestSink a, b;
  sink_init (&a, 16);
  sink_init (&b, 16);
  DragomanListener *la = dragoman_fanout_add (f, &sink_funcs, &a);
  DragomanListener *lb = dragoman_fanout_add (f, &sink_funcs, &b);
  DragomanFanoutStats st;
  dragoman_fanout_get_stats (f, &st);
  fail_unless_equals_uint64 (st.listeners, 2);
  push_dispatch (f, 0, 5);

  dragoman_fanout_remove (f, lb);
  dragoman_fanout_get_stats (f, &st);
  fail_unless_equals_uint64 (st.listeners, 1);
  push_dispatch (f, 5, 10);
  check_all (&b, 0, 5);
  check_all (&a, 0, 10);
  fail_unless_equals_int (b.closes, 0); /* remove is not a close */

  dragoman_fanout_remove (f, la);
  dragoman_fanout_get_stats (f, &st);
  fail_unless_equals_uint64 (st.listeners, 0);
  push_dispatch (f, 10, 15); /* nobody listening: still published */
  fail_unless_equals_int (NWRITES (&a), 10);
  dragoman_fanout_get_stats (f, &st);
  fail_unless_equals_uint64 (st.packets_in, 15);
  fail_unless_equals_uint64 (st.frames_sent, 15);

  /* a choked listener removed before the hard limit is never closed nor counted */
  TestSink c;
  sink_init (&c, 16);
  DragomanListener *lc = dragoman_fanout_add (f, &sink_funcs, &c);
  c.result = DRAGOMAN_WRITE_CHOKED;
  push_dispatch (f, 15, 20);
  dragoman_fanout_remove (f, lc);
  push_dispatch (f, 20, 100);
  fail_unless_equals_int (c.closes, 0);
  dragoman_fanout_get_stats (f, &st);
  fail_unless_equals_uint64 (st.slow_disconnects, 0);
  fail_unless_equals_uint64 (st.listeners, 0);

  dragoman_fanout_free (f);
  sink_clear (&a);
  sink_clear (&b);
  sink_clear (&c);
}
GST_END_TEST;

/* ---- a push thread against the service thread ---- */

#define THREAD_PACKETS 10000

typedef struct {
  DragomanFanout *f;
  gboolean throttle; /* wait for the service thread, so nothing is dropped */
  gint seen;         /* packets the service thread has delivered (atomic) */
  gint pushed;       /* atomic */
  gint failed_pushes;
} Pusher;

static gpointer
pusher_main (gpointer data)
{
  Pusher *p = data;
  for (guint i = 0; i < THREAD_PACKETS; i++) {
    /* the inbox holds 32; staying 16 ahead at most is "dispatch keeps up" */
    while (p->throttle && (gint) i - g_atomic_int_get (&p->seen) >= 16)
      g_thread_yield ();
    if (!push_idx (p->f, i))
      g_atomic_int_inc (&p->failed_pushes);
    g_atomic_int_inc (&p->pushed);
  }
  return NULL;
}

static void
run_threaded (gboolean throttle)
{
  Pusher p = { .f = ROOMY (16), .throttle = throttle };
  gint wakeups = 0;
  dragoman_fanout_set_wakeup (p.f, count_wakeup, &wakeups);
  TestSink a, b;
  sink_init (&a, 16);
  sink_init (&b, 16);
  dragoman_fanout_add (p.f, &sink_funcs, &a);
  dragoman_fanout_add (p.f, &sink_funcs, &b);

  GThread *t = g_thread_new ("pusher", pusher_main, &p);
  gint64 deadline = g_get_monotonic_time () + 60 * G_USEC_PER_SEC;
  guint dispatched = 0;
  for (;;) {
    /* read `pushed` before dispatching: once it is complete, this dispatch empties the inbox */
    gboolean done = g_atomic_int_get (&p.pushed) == THREAD_PACKETS;
    guint n = dragoman_fanout_dispatch (p.f);
    dispatched += n;
    g_atomic_int_set (&p.seen, NWRITES (&a));
    if (done)
      break;
    if (n == 0)
      g_thread_yield ();
    fail_unless (g_get_monotonic_time () < deadline, "stuck: %u dispatched", dispatched);
  }
  g_thread_join (t);
  fail_unless_equals_int (dragoman_fanout_dispatch (p.f), 0);

  DragomanFanoutStats st;
  dragoman_fanout_get_stats (p.f, &st);
  fail_unless_equals_int (p.failed_pushes, 0);
  fail_unless_equals_int (g_atomic_int_get (&wakeups), THREAD_PACKETS);
  fail_unless_equals_uint64 (st.packets_in, dispatched);
  fail_unless_equals_uint64 (st.packets_in + st.inbox_drops, THREAD_PACKETS);
  fail_unless_equals_int (NWRITES (&a), dispatched);
  fail_unless_equals_int (NWRITES (&b), dispatched);
  if (throttle) {
    fail_unless_equals_uint64 (st.inbox_drops, 0);
    check_all (&a, 0, THREAD_PACKETS);
  }
  /* with or without drops: numbered at push (seq == push index, so a drop is a
   * gap), in push order, intact, shared; the packet after a gap is flagged */
  guint last = 0;
  for (guint i = 0; i < NWRITES (&a); i++) {
    const Write *w = WRITE (&a, i);
    guint idx = msg_idx (w);
    fail_unless_equals_int (msg_seq (w), idx);
    fail_unless (i == 0 || idx > last, "packet %u came after %u", idx, last);
    gboolean gap = i > 0 && idx != last + 1;
    last = idx;
    check_msg (w, idx, idx, gap ? DRAGOMAN_FLAG_DISCONT : 0);
    fail_unless (WRITE (&b, i)->ptr == w->ptr);
  }
  GST_INFO ("throttle %d: %u dispatched, %" G_GUINT64_FORMAT " dropped", throttle, dispatched, st.inbox_drops);

  dragoman_fanout_free (p.f);
  sink_clear (&a);
  sink_clear (&b);
}

GST_START_TEST (test_threaded_push)
{
  run_threaded (TRUE);
}
GST_END_TEST;

GST_START_TEST (test_threaded_push_flood)
{
  run_threaded (FALSE);
}
GST_END_TEST;

/* ---- coalescing (write_batch) ---- */

/* a listener that joins gets its burst in one write; afterwards one per packet */
GST_START_TEST (test_coalesce_burst)
{
  DragomanFanout *f = SMALL (16); /* burst 3 */
  TestSink early, late;
  sink_init (&early, 16);
  sink_init (&late, 16);
  dragoman_fanout_add (f, &batch_funcs, &early);
  push_dispatch (f, 0, 10);
  fail_unless_equals_int (NCALLS (&early), 10); /* one packet per dispatch: nothing to coalesce */
  dragoman_fanout_add (f, &batch_funcs, &late);
  fail_unless_equals_int (NCALLS (&late), 1);
  fail_unless_equals_int (CALL (&late, 0), 3);
  for (guint i = 0; i < 3; i++) {
    check_msg (WRITE (&late, i), 7 + i, 7 + i, 0);
    fail_unless (WRITE (&late, i)->ptr == WRITE (&early, 7 + i)->ptr); /* shared, not copied */
  }
  push_dispatch (f, 10, 12);
  fail_unless_equals_int (NCALLS (&late), 3);
  fail_unless_equals_int (CALL (&late, 2), 1);
  check_all (&early, 0, 12);
  DragomanFanoutStats st;
  dragoman_fanout_get_stats (f, &st);
  fail_unless_equals_uint64 (st.frames_sent, 12 + 5);
  fail_unless_equals_uint64 (st.writes, 12 + 3);
  dragoman_fanout_free (f);
  sink_clear (&early);
  sink_clear (&late);
}
GST_END_TEST;

/* several packets in one dispatch: one write per listener, the same shared bytes
 * for all; at most DRAGOMAN_FANOUT_BATCH_FRAMES per write */
GST_START_TEST (test_coalesce_dispatch)
{
  DragomanFanout *f = ROOMY (16);
  TestSink a, b, single;
  sink_init (&a, 16);
  sink_init (&b, 16);
  sink_init (&single, 16);
  dragoman_fanout_add (f, &batch_funcs, &a);
  dragoman_fanout_add (f, &batch_funcs, &b);
  dragoman_fanout_add (f, &sink_funcs, &single); /* no write_batch: one write each */
  for (guint i = 0; i < 5; i++)
    fail_unless (push_idx (f, i));
  fail_unless_equals_int (dragoman_fanout_dispatch (f), 5);
  fail_unless_equals_int (NCALLS (&a), 1);
  fail_unless_equals_int (CALL (&a, 0), 5);
  fail_unless_equals_int (NCALLS (&single), 5);
  for (guint i = 0; i < 5; i++)
    fail_unless (WRITE (&a, i)->ptr == WRITE (&b, i)->ptr && WRITE (&a, i)->ptr == WRITE (&single, i)->ptr);

  /* 16 + 16 + 1: the frame cap */
  for (guint i = 5; i < 37; i++) /* 32: a full inbox */
    fail_unless (push_idx (f, i));
  fail_unless_equals_int (dragoman_fanout_dispatch (f), 32);
  fail_unless (push_idx (f, 37));
  dragoman_fanout_dispatch (f);
  fail_unless_equals_int (NCALLS (&a), 4);
  fail_unless_equals_int (CALL (&a, 1), 16);
  fail_unless_equals_int (CALL (&a, 2), 16);
  fail_unless_equals_int (CALL (&a, 3), 1);
  check_all (&a, 0, 38);
  check_all (&b, 0, 38);
  check_all (&single, 0, 38);
  dragoman_fanout_free (f);
  sink_clear (&a);
  sink_clear (&b);
  sink_clear (&single);
}
GST_END_TEST;

/* the byte cap: 1,000-byte packets (1,016 with the header) go 4 to a write
 * (4,064 <= 4,096; a fifth would pass it) */
GST_START_TEST (test_coalesce_bytes)
{
  DragomanFanout *f = ROOMY (16);
  TestSink a;
  sink_init (&a, 16);
  dragoman_fanout_add (f, &batch_funcs, &a);
  guint8 big[1000];
  for (guint i = 0; i < 9; i++) {
    memset (big, (int) i, sizeof big);
    fail_unless (dragoman_fanout_push (f, big, sizeof big, ingress_of (i)));
  }
  fail_unless_equals_int (dragoman_fanout_dispatch (f), 9);
  fail_unless_equals_int (NCALLS (&a), 3);
  fail_unless_equals_int (CALL (&a, 0), 4);
  fail_unless_equals_int (CALL (&a, 1), 4);
  fail_unless_equals_int (CALL (&a, 2), 1); /* the last one alone: write(), with its headroom */
  for (guint i = 0; i < 9; i++) {
    fail_unless_equals_int (WRITE (&a, i)->len, DRAGOMAN_HEADER_BYTES + 1000);
    fail_unless_equals_int (msg_seq (WRITE (&a, i)), i);
    fail_unless_equals_int (WRITE (&a, i)->bytes[DRAGOMAN_HEADER_BYTES + 999], i);
  }
  dragoman_fanout_free (f);
  sink_clear (&a);
}
GST_END_TEST;

/* a choked socket that drains gets what is pending coalesced; a resync's flag is on
 * the first frame only (a private copy), the rest of the batch is shared */
GST_START_TEST (test_coalesce_writable_resync)
{
  DragomanFanout *f = SMALL (16); /* burst 3, soft 10 */
  TestSink a, b;
  sink_init (&a, 16);
  sink_init (&b, 16);
  dragoman_fanout_add (f, &batch_funcs, &a);
  DragomanListener *lb = dragoman_fanout_add (f, &batch_funcs, &b);

  b.result = DRAGOMAN_WRITE_CHOKED;
  push_dispatch (f, 0, 1);
  b.result = DRAGOMAN_WRITE_OK;
  push_dispatch (f, 1, 6); /* 5 behind: under the soft limit */
  fail_unless_equals_int (NWRITES (&b), 1);
  dragoman_fanout_writable (f, lb);
  fail_unless_equals_int (NCALLS (&b), 2);
  fail_unless_equals_int (CALL (&b, 1), 5);
  check_all (&b, 0, 6);

  /* choked inside a batch: the whole batch was taken, then it waits */
  b.result = DRAGOMAN_WRITE_CHOKED;
  for (guint i = 6; i < 9; i++)
    fail_unless (push_idx (f, i));
  dragoman_fanout_dispatch (f);
  fail_unless_equals_int (CALL (&b, 2), 3);
  fail_unless_equals_int (b.writable_requests, 2);
  b.result = DRAGOMAN_WRITE_OK;
  push_dispatch (f, 9, 25); /* 16 behind: over the soft limit */
  fail_unless_equals_int (NWRITES (&b), 9);
  dragoman_fanout_writable (f, lb);
  fail_unless_equals_int (NCALLS (&b), 4);
  fail_unless_equals_int (CALL (&b, 3), 3); /* 22, 23, 24 in one write */
  check_msg (WRITE (&b, 9), 22, 22, DRAGOMAN_FLAG_DISCONT);
  check_msg (WRITE (&b, 10), 23, 23, 0);
  check_msg (WRITE (&b, 11), 24, 24, 0);
  fail_unless (WRITE (&b, 9)->ptr != WRITE (&a, 22)->ptr); /* the flagged one is private */
  fail_unless_equals_int (WRITE (&a, 22)->ptr[1], 0);      /* the shared bytes kept flags 0 */
  fail_unless (WRITE (&b, 10)->ptr == WRITE (&a, 23)->ptr);
  fail_unless (WRITE (&b, 11)->ptr == WRITE (&a, 24)->ptr);
  push_dispatch (f, 25, 26);
  check_msg (WRITE (&b, 12), 25, 25, 0); /* the flag does not stick */
  check_all (&a, 0, 26);
  DragomanFanoutStats st;
  dragoman_fanout_get_stats (f, &st);
  fail_unless_equals_uint64 (st.resyncs, 1);
  fail_unless_equals_uint64 (st.frames_skipped, 13); /* 9..21 */
  dragoman_fanout_free (f);
  sink_clear (&a);
  sink_clear (&b);
}
GST_END_TEST;

static Suite *
fanout_suite (void)
{
  Suite *s = suite_create ("fanout");
  TCase *tc = tcase_create ("general");
  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 120); /* valgrind */
  tcase_add_test (tc, test_shared_buffers);
  tcase_add_test (tc, test_header_bytes);
  tcase_add_test (tc, test_sequence);
  tcase_add_test (tc, test_burst_on_add);
  tcase_add_test (tc, test_headroom);
  tcase_add_test (tc, test_resync);
  tcase_add_test (tc, test_no_resync_at_soft_limit);
  tcase_add_test (tc, test_stall_resyncs);
  tcase_add_test (tc, test_hard_limit);
  tcase_add_test (tc, test_write_failed);
  tcase_add_test (tc, test_inbox_overflow);
  tcase_add_test (tc, test_late_dispatch);
  tcase_add_test (tc, test_channel_catchup);
  tcase_add_test (tc, test_oversized);
  tcase_add_test (tc, test_remove);
  tcase_add_test (tc, test_threaded_push);
  tcase_add_test (tc, test_threaded_push_flood);
  tcase_add_test (tc, test_hard_limit_counted_once);
  tcase_add_test (tc, test_coalesce_burst);
  tcase_add_test (tc, test_coalesce_dispatch);
  tcase_add_test (tc, test_coalesce_bytes);
  tcase_add_test (tc, test_coalesce_writable_resync);
  return s;
}

GST_CHECK_MAIN (fanout);
