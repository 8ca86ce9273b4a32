/* webrtc_peer — see the header. Flow (DESIGN.md facts, checked here):
 *   offer → set-remote-description → create-answer → set-local-description →
 *   answer to the browser; trickle ICE both ways.
 * The return feed's sink pad is requested before the offer arrives, so webrtcbin
 * matches it to the browser's sendrecv audio m-line and sends on it. */
#include "webrtc_peer.h"

#include <gst/app/gstappsrc.h>
#include <gst/sdp/sdp.h>
#include <gst/video/video.h>
#define GST_USE_UNSTABLE_API
#include <gst/webrtc/webrtc.h>
#include <json-glib/json-glib.h>
#include <stdlib.h>

GST_DEBUG_CATEGORY_STATIC (peer_debug);
#define GST_CAT_DEFAULT peer_debug

#define PCM_CAPS "audio/x-raw,format=S16LE,rate=48000,channels=1,layout=interleaved"

struct _DragomanWebrtcPeer {
  gint refs;
  char *name;
  GstElement *pipeline, *parent, *bin, *webrtc, *ret_src, *voice_target, *pay, *rtpcaps;
  gint ret_linked; /* atomic */
  DragomanBoothVideo *video; /* the room's stage picture, or NULL */
  GstElement *vid_src;       /* our consumer of it, once the offer asked for video (main thread) */
  gint vid_linked;           /* atomic */
  GstPad *voice_pad; /* request pad on voice_target, once media flows */
  const DragomanWebrtcPeerCallbacks *cb;
  gpointer owner;
  gboolean closed; /* main thread: no more callbacks */
  guint stats_timer;
  /* WebRTC health for the crew, from webrtcbin's get-stats (every 2 s) */
  GMutex stats_lock;
  double rtt_ms, jitter_ms, loss_pct; /* protected by stats_lock; < 0: unknown */
};

static DragomanWebrtcPeer *
peer_ref (DragomanWebrtcPeer *p)
{
  g_atomic_int_inc (&p->refs);
  return p;
}

static void
peer_unref (gpointer data)
{
  DragomanWebrtcPeer *p = data;
  if (!g_atomic_int_dec_and_test (&p->refs))
    return;
  g_mutex_clear (&p->stats_lock);
  g_free (p->name);
  g_free (p);
}

static void
peer_closure_unref (gpointer data, GClosure *closure)
{
  peer_unref (data);
}

/* ---- marshalling to the main thread ------------------------------------- */

typedef struct {
  DragomanWebrtcPeer *peer;
  char *json;
  GstPad *pad;
  char *ice_state;
} Call;

static gboolean
run_call (gpointer data)
{
  Call *c = data;
  DragomanWebrtcPeer *p = c->peer;
  if (!p->closed) {
    if (c->json)
      p->cb->send_json (p->owner, c->json);
    if (c->pad) {
      p->voice_pad = gst_object_ref (c->pad);
      p->cb->media (p->owner, c->pad);
    }
    if (c->ice_state)
      p->cb->ice_state (p->owner, c->ice_state);
  }
  return G_SOURCE_REMOVE;
}

static void
free_call (gpointer data)
{
  Call *c = data;
  peer_unref (c->peer);
  g_free (c->json);
  g_clear_object (&c->pad);
  g_free (c->ice_state);
  g_free (c);
}

static void
to_main (DragomanWebrtcPeer *p, char *json, GstPad *pad, const char *ice_state)
{
  Call *c = g_new0 (Call, 1);
  c->peer = peer_ref (p);
  c->json = json;
  c->pad = pad ? gst_object_ref (pad) : NULL;
  c->ice_state = g_strdup (ice_state);
  g_idle_add_full (G_PRIORITY_HIGH, run_call, c, free_call);
}

static char *
json_message (const char *type, const char *key, const char *value, const char *int_key, gint64 int_value)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "type");
  json_builder_add_string_value (b, type);
  json_builder_set_member_name (b, key);
  json_builder_add_string_value (b, value);
  if (int_key) {
    json_builder_set_member_name (b, int_key);
    json_builder_add_int_value (b, int_value);
  }
  json_builder_end_object (b);
  g_autoptr (JsonNode) root = json_builder_get_root (b);
  return json_to_string (root, FALSE);
}

/* ---- webrtcbin callbacks (GStreamer threads) ----------------------------- */

static void
on_ice_candidate (GstElement *webrtc, guint mline, char *candidate, gpointer data)
{
  to_main (data, json_message ("ice", "candidate", candidate, "sdpMLineIndex", mline), NULL, NULL);
}

static void
on_ice_state (GstElement *webrtc, GParamSpec *pspec, gpointer data)
{
  GstWebRTCICEConnectionState state;
  g_object_get (webrtc, "ice-connection-state", &state, NULL);
  static const char *names[] = { "new", "checking", "connected", "completed", "failed", "disconnected", "closed" };
  DragomanWebrtcPeer *p = data;
  /* the path is up: a keyframe now, not at the end of the GOP (a first picture
   * within a frame or two of DTLS) */
  if ((state == GST_WEBRTC_ICE_CONNECTION_STATE_CONNECTED || state == GST_WEBRTC_ICE_CONNECTION_STATE_COMPLETED) &&
      g_atomic_int_get (&p->vid_linked))
    dragoman_booth_video_request_keyframe (p->video);
  if ((guint) state < G_N_ELEMENTS (names))
    to_main (data, NULL, NULL, names[state]);
}

static void
on_answer_created (GstPromise *promise, gpointer data)
{
  DragomanWebrtcPeer *p = data;
  GstWebRTCSessionDescription *answer = NULL;
  const GstStructure *reply = gst_promise_get_reply (promise);
  if (reply)
    gst_structure_get (reply, "answer", GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &answer, NULL);
  if (!answer) {
    GST_WARNING ("%s: webrtcbin could not answer the offer", p->name);
    to_main (p, json_message ("error", "code", "bad-sdp", NULL, 0), NULL, NULL);
    gst_promise_unref (promise);
    return;
  }
  g_signal_emit_by_name (p->webrtc, "set-local-description", answer, NULL);
  g_autofree char *text = gst_sdp_message_as_text (answer->sdp);
  to_main (p, json_message ("answer", "sdp", text, NULL, 0), NULL, NULL);
  gst_webrtc_session_description_free (answer);
  gst_promise_unref (promise);
}

static void
on_remote_set (GstPromise *promise, gpointer data)
{
  DragomanWebrtcPeer *p = data;
  const GstStructure *reply = gst_promise_get_reply (promise);
  GError *err = NULL;
  if (reply && gst_structure_get (reply, "error", G_TYPE_ERROR, &err, NULL)) {
    GST_WARNING ("%s: offer refused by webrtcbin: %s", p->name, err->message);
    to_main (p, json_message ("error", "code", "bad-sdp", NULL, 0), NULL, NULL);
    g_error_free (err);
    gst_promise_unref (promise);
    return;
  }
  gst_promise_unref (promise);
  GstPromise *next = gst_promise_new_with_change_func (on_answer_created, peer_ref (p), peer_unref);
  g_signal_emit_by_name (p->webrtc, "create-answer", NULL, next);
}

static GstElement *
add (GstBin *bin, const char *factory)
{
  GstElement *e = gst_element_factory_make (factory, NULL);
  gst_bin_add (bin, e);
  return e;
}

/* the microphone: decode and hand it to the booth */
static void
on_pad_added (GstElement *webrtc, GstPad *pad, gpointer data)
{
  DragomanWebrtcPeer *p = data;
  if (GST_PAD_DIRECTION (pad) != GST_PAD_SRC)
    return;
  GstBin *bin = GST_BIN (p->bin);
  GstElement *depay = add (bin, "rtpopusdepay");
  GstElement *dec = add (bin, "opusdec");
  GstElement *conv = add (bin, "audioconvert");
  GstElement *res = add (bin, "audioresample");
  GstElement *caps = add (bin, "capsfilter");
  /* PLC covers a lost packet; in-band FEC recovers it from the next one */
  g_object_set (dec, "plc", TRUE, "use-inband-fec", TRUE, NULL);
  g_autoptr (GstCaps) c = gst_caps_from_string (PCM_CAPS);
  g_object_set (caps, "caps", c, NULL);
  gst_element_link_many (depay, dec, conv, res, caps, NULL);
  g_autoptr (GstPad) sink = gst_element_get_static_pad (depay, "sink");
  if (gst_pad_link (pad, sink) != GST_PAD_LINK_OK) {
    GST_WARNING ("%s: cannot decode the incoming stream", p->name);
    return;
  }
  GstPad *target = gst_element_request_pad_simple (p->voice_target, "sink_%u");
  g_autoptr (GstPad) src = gst_element_get_static_pad (caps, "src");
  /* the bin takes the (floating) ghost pad: no unref of ours */
  GstPad *ghost = gst_ghost_pad_new (NULL, src);
  gst_pad_set_active (ghost, TRUE);
  gst_element_add_pad (p->bin, ghost);
  if (gst_pad_link (ghost, target) != GST_PAD_LINK_OK)
    GST_ERROR ("%s: cannot link the microphone to the booth", p->name);
  gst_element_sync_state_with_parent (depay);
  gst_element_sync_state_with_parent (dec);
  gst_element_sync_state_with_parent (conv);
  gst_element_sync_state_with_parent (res);
  gst_element_sync_state_with_parent (caps);
  GST_INFO ("%s: microphone connected", p->name);
  to_main (p, NULL, target, NULL);
  gst_object_unref (target);
}

/* ---- WebRTC health ---------------------------------------------------------- */

static gboolean
read_stat (GQuark id, const GValue *value, gpointer data)
{
  DragomanWebrtcPeer *p = data;
  if (!GST_VALUE_HOLDS_STRUCTURE (value))
    return TRUE;
  const GstStructure *st = gst_value_get_structure (value);
  GstWebRTCStatsType type = 0;
  if (!gst_structure_get (st, "type", GST_TYPE_WEBRTC_STATS_TYPE, &type, NULL))
    return TRUE;
  double d;
  gint64 lost;
  guint64 received;
  g_mutex_lock (&p->stats_lock);
  if (type == GST_WEBRTC_STATS_INBOUND_RTP) {
    /* the microphone as we receive it: jitter (s) and losses */
    if (gst_structure_get_double (st, "jitter", &d))
      p->jitter_ms = d * 1000;
    if (gst_structure_get_int64 (st, "packets-lost", &lost) &&
        gst_structure_get_uint64 (st, "packets-received", &received) && received + lost > 0)
      p->loss_pct = 100.0 * MAX (lost, 0) / (received + MAX (lost, 0));
  } else if (type == GST_WEBRTC_STATS_REMOTE_INBOUND_RTP) {
    if (gst_structure_get_double (st, "round-trip-time", &d))
      p->rtt_ms = d * 1000;
  }
  g_mutex_unlock (&p->stats_lock);
  return TRUE;
}

static void
on_stats (GstPromise *promise, gpointer data)
{
  const GstStructure *reply = gst_promise_get_reply (promise);
  if (reply)
    gst_structure_foreach (reply, read_stat, data);
  gst_promise_unref (promise);
}

static gboolean
poll_stats (gpointer data)
{
  DragomanWebrtcPeer *p = data;
  GstPromise *promise = gst_promise_new_with_change_func (on_stats, peer_ref (p), peer_unref);
  g_signal_emit_by_name (p->webrtc, "get-stats", NULL, promise);
  return G_SOURCE_CONTINUE;
}

void
dragoman_webrtc_peer_get_health (DragomanWebrtcPeer *p, double *rtt_ms, double *jitter_ms, double *loss_pct)
{
  g_mutex_lock (&p->stats_lock);
  *rtt_ms = p->rtt_ms;
  *jitter_ms = p->jitter_ms;
  *loss_pct = p->loss_pct;
  g_mutex_unlock (&p->stats_lock);
}

/* ---- public -------------------------------------------------------------- */

DragomanWebrtcPeer *
dragoman_webrtc_peer_new (GstElement *pipeline, const char *name, GstElement *voice_target,
                          const DragomanConfig *config, int jitter_ms, DragomanBoothVideo *video,
                          const DragomanWebrtcPeerCallbacks *callbacks, gpointer owner)
{
  if (!peer_debug)
    GST_DEBUG_CATEGORY_INIT (peer_debug, "dragoman-webrtc", 0, "dragoman WebRTC peers");
  DragomanWebrtcPeer *p = g_new0 (DragomanWebrtcPeer, 1);
  p->refs = 1;
  g_mutex_init (&p->stats_lock);
  p->rtt_ms = p->jitter_ms = p->loss_pct = -1;
  p->name = g_strdup (name);
  p->pipeline = pipeline;
  p->voice_target = voice_target;
  p->video = video;
  p->cb = callbacks;
  p->owner = owner;
  p->bin = gst_bin_new (name);
  GstBin *bin = GST_BIN (p->bin);

  p->webrtc = add (bin, "webrtcbin");
  g_object_set (p->webrtc, "bundle-policy", GST_WEBRTC_BUNDLE_POLICY_MAX_BUNDLE, "latency", (guint) jitter_ms, NULL);
  if (config->stun_server)
    g_object_set (p->webrtc, "stun-server", config->stun_server, NULL);
  if (config->turn_server)
    g_object_set (p->webrtc, "turn-server", config->turn_server, NULL);
  GstWebRTCICE *ice = NULL;
  g_object_get (p->webrtc, "ice-agent", &ice, NULL);
  for (guint i = 0; ice && config->ice_addresses[i]; i++) {
    gboolean ok;
    g_signal_emit_by_name (ice, "add-local-ip-address", config->ice_addresses[i], &ok);
  }
  /* No UPnP: libnice asks the LAN's router (UPnP IGD, SSDP multicast) to map a port for every
   * peer, which a server does not need (it is the address browsers reach, or STUN/TURN says
   * otherwise), and gssdp leaked a socket address (128 bytes with its GInetAddress) each time
   * (LeakSanitizer, make asan ASAN_LEAKS=1: 768 bytes after booth.sh). The NiceAgent is
   * webrtcbin's (GstWebRTCNice "agent", GStreamer >= 1.22; older: UPnP stays on). */
  GObject *agent = NULL;
  if (ice && g_object_class_find_property (G_OBJECT_GET_CLASS (ice), "agent"))
    g_object_get (ice, "agent", &agent, NULL);
  if (agent && g_object_class_find_property (G_OBJECT_GET_CLASS (agent), "upnp"))
    g_object_set (agent, "upnp", FALSE, NULL);
  g_clear_object (&agent);
  g_clear_object (&ice);

  /* return feed: the channel's Opus packets, stamped on arrival */
  p->ret_src = add (bin, "appsrc");
  g_autoptr (GstCaps) opus = gst_caps_from_string ("audio/x-opus,channel-mapping-family=0,channels=1,rate=48000");
  g_object_set (p->ret_src, "is-live", TRUE, "do-timestamp", TRUE, "format", GST_FORMAT_TIME, "caps", opus,
                "max-buffers", (guint64) 10, "leaky-type", 2 /* downstream: drop old */, NULL);
  p->pay = add (bin, "rtpopuspay");
  p->rtpcaps = add (bin, "capsfilter");
  gst_element_link_many (p->ret_src, p->pay, p->rtpcaps, NULL);

  g_signal_connect_data (p->webrtc, "on-ice-candidate", G_CALLBACK (on_ice_candidate), peer_ref (p),
                         peer_closure_unref, 0);
  g_signal_connect_data (p->webrtc, "notify::ice-connection-state", G_CALLBACK (on_ice_state), peer_ref (p),
                         peer_closure_unref, 0);
  g_signal_connect_data (p->webrtc, "pad-added", G_CALLBACK (on_pad_added), peer_ref (p),
                         peer_closure_unref, 0);
  /* beside the booth's selector, in the booth's bin: pads link only within one bin */
  p->parent = GST_ELEMENT_PARENT (voice_target) ? GST_ELEMENT_PARENT (voice_target) : pipeline;
  gst_bin_add (GST_BIN (p->parent), p->bin);
  gst_element_sync_state_with_parent (p->bin);
  p->stats_timer = g_timeout_add_seconds (2, poll_stats, p);
  return p;
}

/* the browser's PLI/FIR, as rtpsession turns them into events: to the room's encoder */
static GstPadProbeReturn
on_video_upstream (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  DragomanWebrtcPeer *p = data;
  if (gst_video_event_is_force_key_unit (GST_PAD_PROBE_INFO_EVENT (info))) {
    GST_DEBUG ("%s: the browser asks for a keyframe", p->name);
    dragoman_booth_video_request_keyframe (p->video);
    return GST_PAD_PROBE_DROP; /* handled: appsrc has no upstream */
  }
  return GST_PAD_PROBE_OK;
}

/* The stage's picture, if the offer has a video m-line with VP8 (sendonly from
 * here): our appsrc takes the room's encoded frames, payloaded with the
 * browser's own payload type. */
static void
link_video (DragomanWebrtcPeer *p, const GstSDPMessage *sdp)
{
  const GstSDPMedia *m = NULL;
  for (guint i = 0; i < gst_sdp_message_medias_len (sdp) && !m; i++)
    if (g_strcmp0 (gst_sdp_media_get_media (gst_sdp_message_get_media (sdp, i)), "video") == 0)
      m = gst_sdp_message_get_media (sdp, i);
  if (!m)
    return;
  int vp8_pt = -1;
  for (guint k = 0; k < gst_sdp_media_formats_len (m) && vp8_pt < 0; k++) {
    int pt = atoi (gst_sdp_media_get_format (m, k));
    if (pt < 0 || pt > 127)
      continue;
    g_autoptr (GstCaps) mc = gst_sdp_media_get_caps_from_media (m, pt);
    const char *enc = mc ? gst_structure_get_string (gst_caps_get_structure (mc, 0), "encoding-name") : NULL;
    if (enc && g_ascii_strcasecmp (enc, "VP8") == 0)
      vp8_pt = pt;
  }
  if (vp8_pt < 0) {
    GST_WARNING ("%s: the offer's video has no VP8: no stage picture for this booth", p->name);
    return;
  }
  GstBin *bin = GST_BIN (p->bin);
  g_autofree char *sname = g_strdup_printf ("%s-video", p->name);
  p->vid_src = gst_element_factory_make ("appsrc", sname);
  gst_bin_add (bin, p->vid_src);
  GstElement *pay = add (bin, "rtpvp8pay");
  /* 15-bit picture ids, as browsers send: the receiver tells a lost frame from a late one */
  gst_util_set_object_arg (G_OBJECT (pay), "picture-id-mode", "15-bit");
  g_object_set (pay, "pt", vp8_pt, NULL);
  GstElement *caps = add (bin, "capsfilter");
  g_autofree char *cs =
      g_strdup_printf ("application/x-rtp,media=video,encoding-name=VP8,payload=%d,clock-rate=90000", vp8_pt);
  g_autoptr (GstCaps) rc = gst_caps_from_string (cs);
  g_object_set (caps, "caps", rc, NULL);
  gst_element_link_many (p->vid_src, pay, caps, NULL);
  GstPad *wsink = gst_element_request_pad_simple (p->webrtc, "sink_%u");
  g_autoptr (GstPad) csrc = gst_element_get_static_pad (caps, "src");
  gst_pad_link (csrc, wsink);
  GstWebRTCRTPTransceiver *trans = NULL;
  g_object_get (wsink, "transceiver", &trans, NULL);
  if (trans) {
    g_object_set (trans, "direction", GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_SENDONLY, NULL);
    g_object_unref (trans);
  }
  gst_object_unref (wsink);
  g_autoptr (GstPad) vsrc = gst_element_get_static_pad (p->vid_src, "src");
  gst_pad_add_probe (vsrc, GST_PAD_PROBE_TYPE_EVENT_UPSTREAM, on_video_upstream, p, NULL);
  dragoman_booth_video_add (p->video, p->vid_src);
  gst_element_sync_state_with_parent (caps);
  gst_element_sync_state_with_parent (pay);
  gst_element_sync_state_with_parent (p->vid_src);
  g_atomic_int_set (&p->vid_linked, 1);
  GST_INFO ("%s: stage picture on VP8/%d", p->name, vp8_pt);
}

gboolean
dragoman_webrtc_peer_offer (DragomanWebrtcPeer *p, const char *sdp_text, GError **error)
{
  GstSDPMessage *sdp = NULL;
  /* empty: GStreamer's parser logs a critical on it (found by tests/fuzz) */
  if (!sdp_text || !*sdp_text || gst_sdp_message_new_from_text (sdp_text, &sdp) != GST_SDP_OK ||
      gst_sdp_message_medias_len (sdp) == 0) {
    if (sdp)
      gst_sdp_message_free (sdp);
    g_set_error (error, G_MARKUP_ERROR, G_MARKUP_ERROR_INVALID_CONTENT, "the offer is not valid SDP with media");
    return FALSE;
  }
  /* Answer with the browser's own Opus payload type (Chromium: 111): webrtcbin only
   * sends on a transceiver whose caps match the offer's, else it answers recvonly
   * and the interpreter hears nothing (seen with Chromium; our test peer used 96).
   * So the return branch is linked now, from the offer's first audio m-line. */
  int opus_pt = 96;
  const GstSDPMedia *m = NULL;
  for (guint i = 0; i < gst_sdp_message_medias_len (sdp) && !m; i++)
    if (g_strcmp0 (gst_sdp_media_get_media (gst_sdp_message_get_media (sdp, i)), "audio") == 0)
      m = gst_sdp_message_get_media (sdp, i);
  for (guint k = 0; m && k < gst_sdp_media_formats_len (m); k++) {
    int pt = atoi (gst_sdp_media_get_format (m, k));
    /* RTP payload types are 0-127: a 300 was taken, rtpopuspay refused it and the
     * interpreter heard nothing until they reconnected (tests/fuzz) */
    if (pt < 0 || pt > 127)
      continue;
    g_autoptr (GstCaps) mc = gst_sdp_media_get_caps_from_media (m, pt);
    const char *enc = mc ? gst_structure_get_string (gst_caps_get_structure (mc, 0), "encoding-name") : NULL;
    if (enc && g_ascii_strcasecmp (enc, "OPUS") == 0) {
      opus_pt = pt;
      break;
    }
  }
  if (!g_atomic_int_get (&p->ret_linked)) {
    g_object_set (p->pay, "pt", opus_pt, NULL);
    g_autofree char *cs =
        g_strdup_printf ("application/x-rtp,media=audio,encoding-name=OPUS,payload=%d,clock-rate=48000", opus_pt);
    g_autoptr (GstCaps) rc = gst_caps_from_string (cs);
    g_object_set (p->rtpcaps, "caps", rc, NULL);
    GstPad *wsink = gst_element_request_pad_simple (p->webrtc, "sink_%u");
    g_autoptr (GstPad) rsrc = gst_element_get_static_pad (p->rtpcaps, "src");
    gst_pad_link (rsrc, wsink);
    GstWebRTCRTPTransceiver *trans = NULL;
    g_object_get (wsink, "transceiver", &trans, NULL);
    if (trans) {
      g_object_set (trans, "direction", GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_SENDRECV, NULL);
      g_object_unref (trans);
    }
    gst_object_unref (wsink);
    g_atomic_int_set (&p->ret_linked, 1);
  }
  if (p->video && !p->vid_src)
    link_video (p, sdp);
  GstWebRTCSessionDescription *offer = gst_webrtc_session_description_new (GST_WEBRTC_SDP_TYPE_OFFER, sdp);
  GstPromise *promise = gst_promise_new_with_change_func (on_remote_set, peer_ref (p), peer_unref);
  g_signal_emit_by_name (p->webrtc, "set-remote-description", offer, promise);
  gst_webrtc_session_description_free (offer);
  return TRUE;
}

void
dragoman_webrtc_peer_add_ice (DragomanWebrtcPeer *p, guint mline, const char *candidate)
{
  if (!candidate || !*candidate)
    return; /* end of candidates */
  g_signal_emit_by_name (p->webrtc, "add-ice-candidate", mline, candidate);
}

void
dragoman_webrtc_peer_free (DragomanWebrtcPeer *p)
{
  if (!p)
    return;
  p->closed = TRUE;
  g_source_remove (p->stats_timer);
  g_signal_handlers_disconnect_by_data (p->webrtc, p);
  if (p->vid_src)
    dragoman_booth_video_remove (p->video, p->vid_src); /* no frame reaches it after this */
  if (p->voice_pad) {
    GstPad *peer = gst_pad_get_peer (p->voice_pad);
    if (peer) {
      gst_pad_unlink (peer, p->voice_pad);
      gst_object_unref (peer);
    }
    gst_element_release_request_pad (p->voice_target, p->voice_pad);
    g_clear_object (&p->voice_pad);
  }
  gst_element_set_locked_state (p->bin, TRUE);
  gst_element_set_state (p->bin, GST_STATE_NULL);
  gst_bin_remove (GST_BIN (p->parent), p->bin);
  GST_INFO ("%s: closed", p->name);
  peer_unref (p);
}

/* ---- return feed as a fanout sink ----------------------------------------- */

static DragomanWriteResult
ret_write (gpointer sink, guint8 *data, gsize len)
{
  DragomanWebrtcPeer *p = sink;
  if (len <= DRAGOMAN_HEADER_BYTES || !g_atomic_int_get (&p->ret_linked))
    return DRAGOMAN_WRITE_OK;
  GstBuffer *buf = gst_buffer_new_memdup (data + DRAGOMAN_HEADER_BYTES, len - DRAGOMAN_HEADER_BYTES);
  gst_app_src_push_buffer (GST_APP_SRC (p->ret_src), buf);
  return DRAGOMAN_WRITE_OK;
}

static DragomanWriteResult
ret_write_text (gpointer sink, guint8 *data, gsize len)
{
  return DRAGOMAN_WRITE_OK; /* channel state: the booth page gets its own */
}

static void
ret_request_writable (gpointer sink)
{
}

static void
ret_close (gpointer sink, guint16 code, const char *reason)
{
}

static const DragomanSinkFuncs ret_funcs = { ret_write, ret_write_text, ret_request_writable, ret_close };

const DragomanSinkFuncs *
dragoman_webrtc_peer_return_funcs (void)
{
  return &ret_funcs;
}
