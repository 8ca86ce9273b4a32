#include "srtgate.h"

#include <gio/gio.h>

GST_DEBUG_CATEGORY_STATIC (srtgate_debug);
#define GST_CAT_DEFAULT srtgate_debug

/* A sender whose data stopped this long ago no longer holds the input: a crashed
 * encoder's restart is taken (the stage's own loss detection fires at 0.5 s). */
#define QUIET_US (1 * G_USEC_PER_SEC)
/* A caller let through that has not connected by then failed its handshake. */
#define HANDSHAKE_S 2

/* enum GstSRTConnectionMode: NONE, CALLER, LISTENER, RENDEZVOUS */
#define SRT_MODE_LISTENER 2

typedef struct {
  gatomicrefcount ref;
  char *label;
  GMutex lock; /* the fields below: the SRT listener thread and the main loop */
  int connected;
  guint64 added; /* callers connected since start */
  char *sender;  /* the connected sender's address */
  gint64 last_data_us; /* atomic: the streaming thread */
} Gate;

typedef struct {
  Gate *gate;
  guint64 added_before;
  char *caller;
} Pending;

static guint64 refused_total; /* atomic */

static Gate *
gate_ref (Gate *g)
{
  g_atomic_ref_count_inc (&g->ref);
  return g;
}

static void
gate_unref (gpointer data)
{
  Gate *g = data;
  if (!g_atomic_ref_count_dec (&g->ref))
    return;
  g_mutex_clear (&g->lock);
  g_free (g->label);
  g_free (g->sender);
  g_free (g);
}

static char *
address_string (GSocketAddress *addr)
{
  if (!G_IS_INET_SOCKET_ADDRESS (addr))
    return g_strdup ("?");
  GInetSocketAddress *in = G_INET_SOCKET_ADDRESS (addr);
  g_autofree char *ip = g_inet_address_to_string (g_inet_socket_address_get_address (in));
  return g_strdup_printf ("%s:%u", ip, g_inet_socket_address_get_port (in));
}

static GstPadProbeReturn
on_data (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  Gate *g = data;
  __atomic_store_n (&g->last_data_us, g_get_monotonic_time (), __ATOMIC_RELAXED);
  return GST_PAD_PROBE_OK;
}

static void
on_caller_added (GstElement *src, gint unused, GSocketAddress *addr, gpointer data)
{
  Gate *g = data;
  g_autofree char *who = address_string (addr);
  g_mutex_lock (&g->lock);
  g->connected++;
  g->added++;
  g_free (g->sender);
  g->sender = g_strdup (who);
  g_mutex_unlock (&g->lock);
  GST_INFO ("%s: sender %s connected", g->label, who);
}

static void
on_caller_removed (GstElement *src, gint unused, GSocketAddress *addr, gpointer data)
{
  Gate *g = data;
  g_mutex_lock (&g->lock);
  if (g->connected > 0)
    g->connected--;
  g_mutex_unlock (&g->lock);
}

static gboolean
check_pending (gpointer data)
{
  Pending *p = data;
  g_mutex_lock (&p->gate->lock);
  gboolean through = p->gate->added != p->added_before;
  g_mutex_unlock (&p->gate->lock);
  if (!through)
    g_printerr ("%s: a sender from %s did not get through within %d s: a wrong or missing passphrase? "
                "(it may also have called while the previous sender's connection was being reset: encoders retry)\n",
                p->gate->label, p->caller, HANDSHAKE_S);
  return G_SOURCE_REMOVE;
}

static void
pending_free (gpointer data)
{
  Pending *p = data;
  gate_unref (p->gate);
  g_free (p->caller);
  g_free (p);
}

/* the SRT listener thread, during the caller's handshake: FALSE rejects it */
static gboolean
on_caller_connecting (GstElement *src, GSocketAddress *addr, const char *stream_id, gpointer data)
{
  Gate *g = data;
  g_autofree char *who = address_string (addr);
  gint64 quiet = g_get_monotonic_time () - __atomic_load_n (&g->last_data_us, __ATOMIC_RELAXED);
  g_mutex_lock (&g->lock);
  gboolean busy = g->connected > 0 && quiet < QUIET_US;
  g_autofree char *sender = g_strdup (g->sender);
  guint64 added = g->added;
  g_mutex_unlock (&g->lock);
  if (busy) {
    __atomic_add_fetch (&refused_total, 1, __ATOMIC_RELAXED);
    /* rate: a refused encoder retries about once a second; one line each is what the
     * crew needs to find the stray encoder, and the retries end when it is stopped */
    g_printerr ("%s: a second sender from %s refused: %s is on air (stop one of the two encoders)\n", g->label,
                who, sender ? sender : "another sender");
    return FALSE;
  }
  GST_INFO ("%s: sender %s connecting", g->label, who);
  Pending *p = g_new0 (Pending, 1);
  p->gate = gate_ref (g);
  p->added_before = added;
  p->caller = g_steal_pointer (&who);
  g_timeout_add_seconds_full (G_PRIORITY_DEFAULT, HANDSHAKE_S, check_pending, p, pending_free);
  return TRUE;
}

void
dragoman_srt_gate_attach (GstBin *bin, const char *label)
{
  if (!srtgate_debug)
    GST_DEBUG_CATEGORY_INIT (srtgate_debug, "dragoman-srtgate", 0, "one sender per SRT listener");
  g_autoptr (GstIterator) it = gst_bin_iterate_recurse (bin);
  GValue v = G_VALUE_INIT;
  while (gst_iterator_next (it, &v) == GST_ITERATOR_OK) {
    GstElement *el = g_value_get_object (&v);
    GstElementFactory *f = gst_element_get_factory (el);
    gint mode = 0;
    if (f && g_str_equal (GST_OBJECT_NAME (f), "srtsrc") &&
        g_signal_lookup ("caller-connecting", G_OBJECT_TYPE (el)) &&
        (g_object_get (el, "mode", &mode, NULL), mode == SRT_MODE_LISTENER)) {
      Gate *g = g_new0 (Gate, 1);
      g_atomic_ref_count_init (&g->ref);
      g_mutex_init (&g->lock);
      g->label = g_strdup (label);
      /* caller-connecting is emitted only with authentication on */
      g_object_set (el, "authentication", TRUE, NULL);
      g_signal_connect (el, "caller-added", G_CALLBACK (on_caller_added), g);
      g_signal_connect (el, "caller-removed", G_CALLBACK (on_caller_removed), g);
      g_signal_connect (el, "caller-connecting", G_CALLBACK (on_caller_connecting), g);
      g_autoptr (GstPad) pad = gst_element_get_static_pad (el, "src");
      gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST, on_data, gate_ref (g),
                         gate_unref);
      g_object_set_data_full (G_OBJECT (el), "dragoman-srt-gate", g, gate_unref);
    }
    g_value_reset (&v);
  }
  g_value_unset (&v);
}

guint64
dragoman_srt_gate_refused_total (void)
{
  return __atomic_load_n (&refused_total, __ATOMIC_RELAXED);
}
