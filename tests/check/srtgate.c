/* srtgate: a real srtsrc listening on loopback behind the gate, real srtsink callers.
 * The first caller connects and its data flows; a second one, while the first sends,
 * is refused at the handshake (its srtsink fails to start) and counted; once the
 * first has stopped sending for longer than the gate's 1 s, a new caller is let in. */
#include <gio/gio.h>
#include <gst/check/gstcheck.h>

#include "srtgate.h"

static guint
udp_port (void)
{
  g_autoptr (GSocket) s = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM, 0, NULL);
  g_autoptr (GInetAddress) lo = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress) any = g_inet_socket_address_new (lo, 0);
  fail_unless (g_socket_bind (s, any, FALSE, NULL));
  g_autoptr (GSocketAddress) bound = g_socket_get_local_address (s, NULL);
  return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
}

static GstElement *
caller (guint port)
{
  g_autofree char *desc = g_strdup_printf ("audiotestsrc is-live=true ! audio/x-raw,rate=8000,channels=1 ! "
                                           "srtsink uri=srt://127.0.0.1:%u?mode=caller latency=20 wait-for-connection=false auto-reconnect=false",
                                           port);
  GstElement *p = gst_parse_launch (desc, NULL);
  fail_unless (p != NULL);
  return p;
}

/* PLAYING, and no error on the bus within 1.5 s: the handshake is a few loopback round trips */
static gboolean
connects (GstElement *p)
{
  if (gst_element_set_state (p, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
    return FALSE;
  g_autoptr (GstBus) bus = gst_element_get_bus (p);
  g_autoptr (GstMessage) err = gst_bus_timed_pop_filtered (bus, 3 * GST_SECOND / 2, GST_MESSAGE_ERROR);
  return err == NULL;
}

static guint64 bytes_in;

static GstPadProbeReturn
count (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  GstBuffer *b = GST_PAD_PROBE_INFO_BUFFER (info);
  if (b)
    __atomic_add_fetch (&bytes_in, gst_buffer_get_size (b), __ATOMIC_RELAXED);
  return GST_PAD_PROBE_OK;
}

GST_START_TEST (test_one_sender_at_a_time)
{
  guint port = udp_port ();
  g_autofree char *desc = g_strdup_printf ("srtsrc name=src uri=srt://:%u?mode=listener latency=20 keep-listening=true "
                                           "poll-timeout=100 ! fakesink name=sink sync=false async=false",
                                           port);
  GstElement *listener = gst_parse_launch (desc, NULL);
  fail_unless (listener != NULL);
  dragoman_srt_gate_attach (GST_BIN (listener), "check");
  g_autoptr (GstElement) sink = gst_bin_get_by_name (GST_BIN (listener), "sink");
  g_autoptr (GstPad) sinkpad = gst_element_get_static_pad (sink, "sink");
  gst_pad_add_probe (sinkpad, GST_PAD_PROBE_TYPE_BUFFER, count, NULL, NULL);
  gst_element_set_state (listener, GST_STATE_PLAYING);

  GstElement *first = caller (port);
  fail_unless (connects (first), "the first sender was refused");
  for (int i = 0; i < 30 && __atomic_load_n (&bytes_in, __ATOMIC_RELAXED) == 0; i++)
    g_usleep (100000);
  fail_unless (__atomic_load_n (&bytes_in, __ATOMIC_RELAXED) > 0, "no data from the first sender");
  guint64 before = dragoman_srt_gate_refused_total ();

  GstElement *second = caller (port);
  fail_if (connects (second), "a second sender got in while the first was sending");
  fail_unless_equals_uint64 (dragoman_srt_gate_refused_total (), before + 1);
  gst_element_set_state (second, GST_STATE_NULL);
  gst_object_unref (second);

  /* the first goes quiet (its connection is still open): after 1 s a new caller is let in */
  gst_element_set_state (first, GST_STATE_PAUSED);
  g_usleep (1500000);
  GstElement *third = caller (port);
  fail_unless (connects (third), "a caller was refused although the sender on air had been quiet for 1.5 s");
  fail_unless_equals_uint64 (dragoman_srt_gate_refused_total (), before + 1);

  gst_element_set_state (third, GST_STATE_NULL);
  gst_element_set_state (first, GST_STATE_NULL);
  gst_element_set_state (listener, GST_STATE_NULL);
  gst_object_unref (third);
  gst_object_unref (first);
  gst_object_unref (listener);
}
GST_END_TEST;

static Suite *
srtgate_suite (void)
{
  Suite *s = suite_create ("srtgate");
  TCase *tc = tcase_create ("general");
  tcase_set_timeout (tc, 30);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_one_sender_at_a_time);
  return s;
}

GST_CHECK_MAIN (srtgate);
