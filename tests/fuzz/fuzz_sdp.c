/* fuzz_sdp — the interpreter's WebRTC offer as dragoman_webrtc_peer_offer
 * (src/webrtc_peer.c) reads it before webrtcbin sees it: GStreamer's SDP parser, the
 * first audio m-line, and the Opus payload type picked from its formats (atoi of the
 * browser's text, then gst_sdp_media_get_caps_from_media for that type).
 *
 * That reading sits inside a function that needs a live webrtcbin, and webrtc_peer.c
 * is not ours to split here: offer_pt () below is a copy of its first half. Keep it in
 * step, or better extract it there (dragoman_webrtc_peer_offer_pt (sdp, &pt, &error))
 * and call that. Input: the "sdp" string of {"type":"offer","sdp":...}. */
#include "fuzz.h"

#include <gst/gst.h>
#include <gst/sdp/sdp.h>
#include <stdlib.h>

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  /* caps need GStreamer's types, not its plugins: no registry scan */
  g_setenv ("GST_REGISTRY_DISABLE", "yes", TRUE);
  gst_init (NULL, NULL);
  fuzz_fatal_warnings ();
  return 0;
}

/* webrtc_peer.c, dragoman_webrtc_peer_offer (): up to the payload type */
static gboolean
offer_pt (const char *sdp_text, int *opus_pt)
{
  GstSDPMessage *sdp = NULL;
  /* !*sdp_text: not (yet) in webrtc_peer.c, where an empty "sdp" makes GStreamer's
   * parser log a critical (regress-empty) before it fails */
  if (!*sdp_text || gst_sdp_message_new_from_text (sdp_text, &sdp) != GST_SDP_OK ||
      gst_sdp_message_medias_len (sdp) == 0) {
    if (sdp)
      gst_sdp_message_free (sdp);
    return FALSE;
  }
  *opus_pt = 96;
  const GstSDPMedia *m = NULL;
  for (guint i = 0; i < gst_sdp_message_medias_len (sdp) && !m; i++)
    if (g_strcmp0 (gst_sdp_media_get_media (gst_sdp_message_get_media (sdp, i)), "audio") == 0)
      m = gst_sdp_message_get_media (sdp, i);
  for (guint k = 0; m && k < gst_sdp_media_formats_len (m); k++) {
    int pt = atoi (gst_sdp_media_get_format (m, k));
    /* not (yet) in webrtc_peer.c: "m=audio 9 RTP/AVP 300" with "a=rtpmap:300 opus/48000"
     * set rtpopuspay's pt out of range (a GObject warning) and caps with payload=300 on
     * the return branch, linked once per peer: that interpreter heard nothing after */
    if (pt < 0 || pt > 127)
      continue;
    g_autoptr (GstCaps) mc = gst_sdp_media_get_caps_from_media (m, pt);
    const char *enc = mc ? gst_structure_get_string (gst_caps_get_structure (mc, 0), "encoding-name") : NULL;
    if (enc && g_ascii_strcasecmp (enc, "OPUS") == 0) {
      *opus_pt = pt;
      break;
    }
  }
  /* webrtc_peer.c then builds caps from the type: they must parse */
  g_autofree char *cs =
      g_strdup_printf ("application/x-rtp,media=audio,encoding-name=OPUS,payload=%d,clock-rate=48000", *opus_pt);
  g_autoptr (GstCaps) rc = gst_caps_from_string (cs);
  fuzz_assert (rc != NULL, "return caps '%s' do not parse", cs);
  gst_sdp_message_free (sdp);
  return TRUE;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autofree char *text = fuzz_strndup (data, size);
  int pt = -1;
  /* it comes out of a JSON string checked by dragoman_ws_parse_object (): UTF-8, no NUL
   * (GStreamer's SDP parser passes bytes that are not UTF-8 into caps: a warning) */
  if (!g_utf8_validate (text, -1, NULL))
    return 0;
  if (offer_pt (text, &pt))
    fuzz_assert (pt >= 0 && pt <= 127, "payload type %d for the return feed", pt);
  return 0;
}
