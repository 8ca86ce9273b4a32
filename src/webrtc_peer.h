/* webrtc_peer — one interpreter's WebRTC connection: a webrtcbin in the room's
 * pipeline that answers the browser's offer, decodes the microphone into the
 * booth, and sends the return feed (floor or relay) back.
 *
 * Owner: the booth (main thread). GStreamer calls back on its own threads; every
 * callback is marshalled to the main thread before it reaches the owner. The
 * return feed is a fanout listener like any other: the channel's Opus, encoded
 * once, payloaded per peer (SRTP keys differ per peer anyway). If the browser's
 * offer has a VP8 video m-line and the room has a booth video, the stage's
 * picture goes back on it the same way: encoded once (booth_video.c), payloaded
 * with this browser's payload type. */
#pragma once
#include "booth_video.h"
#include "config.h"
#include "fanout.h"

#include <gst/gst.h>

typedef struct _DragomanWebrtcPeer DragomanWebrtcPeer;

typedef struct {
  /* a signalling message for the browser (answer, ice, error) */
  void (*send_json) (gpointer owner, const char *json);
  /* the microphone arrived: `pad` is the voice target's request pad it feeds */
  void (*media) (gpointer owner, GstPad *pad);
  /* ICE connection state: "connected", "completed", "failed", "disconnected", "closed" */
  void (*ice_state) (gpointer owner, const char *state);
} DragomanWebrtcPeerCallbacks;

DragomanWebrtcPeer *dragoman_webrtc_peer_new (GstElement *pipeline, const char *name, GstElement *voice_target,
                                              const DragomanConfig *config, int jitter_ms,
                                              DragomanBoothVideo *video, /* NULL: no stage picture */
                                              const DragomanWebrtcPeerCallbacks *callbacks, gpointer owner);
/* main thread; stops every callback, tears the peer out of the pipeline */
void dragoman_webrtc_peer_free (DragomanWebrtcPeer *peer);
gboolean dragoman_webrtc_peer_offer (DragomanWebrtcPeer *peer, const char *sdp, GError **error);
void dragoman_webrtc_peer_add_ice (DragomanWebrtcPeer *peer, guint mline, const char *candidate);
/* the connection's health (main thread); each < 0 while unknown */
void dragoman_webrtc_peer_get_health (DragomanWebrtcPeer *peer, double *rtt_ms, double *jitter_ms, double *loss_pct);
/* the return feed: pass with the peer as the sink to dragoman_fanout_add () */
const DragomanSinkFuncs *dragoman_webrtc_peer_return_funcs (void);
