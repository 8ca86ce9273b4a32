/* booth_video — the stage's picture for the interpreters: one small VP8 encode
 * per room, shared by every browser booth's WebRTC peer.
 *
 *   stage H.264 ─ tee ─ (program)
 *                  └ gate ─ queue(leaky) ─ avdec_h264 ─ 15 fps ─ scale ──────────────┐
 *   black (videotestsrc, the same caps) ───────────────────────────────────── input-selector
 *     ─ gate ─ vp8enc ─ appsink ⇒ per peer: appsrc (bounded, own thread) ─ rtpvp8pay ─ webrtcbin
 *
 * Why these choices (figures in docs/performance.md):
 *  - VP8: every WebRTC browser decodes it (Firefox on Linux has H.264 only once it
 *    has downloaded OpenH264); the stage's own H.264 can carry B-frames and 1080p at
 *    several Mbit/s, which a booth's Wi-Fi need not carry.
 *  - Encoded once, payloaded per peer, like the return feed's Opus: each browser
 *    names its own payload type in its offer, and SRTP encrypts per peer anyway.
 *  - The gates: nothing is decoded or encoded while no peer takes the video (the
 *    decode of a 1080p stage is most of the cost). Opening waits for the stage's
 *    next keyframe (a decoder fed a GOP's tail shows smears).
 *  - A peer joins on a keyframe: its appsrc passes nothing before one, and its ICE
 *    connecting and its browser's PLI/FIR each ask the encoder for one, at most one
 *    forced keyframe per DRAGOMAN_BOOTH_VIDEO_KEY_GAP_MS for the whole room (a lossy
 *    booth asking ten times a second must not spend everyone's bit rate on
 *    keyframes); the regular GOP is 2 s.
 *  - A slow peer: its appsrc holds at most DRAGOMAN_BOOTH_VIDEO_MAX_BACKLOG_MS; past
 *    that its frames are dropped (counted) up to the next keyframe, so it resumes on
 *    a clean picture and the encoder's thread never waits for it.
 *  - Stage lost: the selector takes the black input; the page says why (the booth
 *    state's stage_live), in the interpreter's language.
 *
 * Owner: the room. Main thread, except the probes and the appsink callback, which
 * run on streaming threads and only touch atomics and the consumers under lock. */
#pragma once
#include "config.h"

#include <gst/gst.h>

#define DRAGOMAN_BOOTH_VIDEO_FPS 15
#define DRAGOMAN_BOOTH_VIDEO_GOP_FRAMES 30 /* 2 s */
#define DRAGOMAN_BOOTH_VIDEO_KEY_GAP_MS 500
#define DRAGOMAN_BOOTH_VIDEO_MAX_BACKLOG_MS 500

typedef struct _DragomanBoothVideo DragomanBoothVideo;

/* builds the branch in `pipeline`, fed by `stage_h264` (a tee's src pad) */
DragomanBoothVideo *dragoman_booth_video_new (GstElement *pipeline, const DragomanRoomConfig *room, GstPad *stage_h264);
void dragoman_booth_video_free (DragomanBoothVideo *video);
void dragoman_booth_video_set_stage_live (DragomanBoothVideo *video, gboolean live);
/* a peer's appsrc, before it starts (its caps, format and bounds are set here):
 * gets every encoded frame from the next keyframe on, until removed (main thread) */
void dragoman_booth_video_add (DragomanBoothVideo *video, GstElement *appsrc);
void dragoman_booth_video_remove (DragomanBoothVideo *video, GstElement *appsrc);
/* any thread: a keyframe soon (rate-limited room-wide) */
void dragoman_booth_video_request_keyframe (DragomanBoothVideo *video);

typedef struct {
  guint consumers;
  guint64 frames;        /* encoded */
  guint64 keyframes;     /* encoded */
  guint64 forced;        /* keyframes forced on request */
  guint64 dropped;       /* frames not given to a slow peer */
  guint64 stage_dropped; /* stage H.264 the decoder could not keep up with */
} DragomanBoothVideoStats;
void dragoman_booth_video_get_stats (DragomanBoothVideo *video, DragomanBoothVideoStats *stats);
