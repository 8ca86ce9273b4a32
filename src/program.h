/* program — a room's program for viewers, encoded once: the video (the stage's
 * H.264 passed through, or a slate while the stage is lost) and every channel's
 * AAC. HLS, recordings and restreams each take a branch of its tees.
 *
 * The program runs in its own pipeline, fed from the room's through appsink →
 * appsrc bridges: a tee passes a branch's flow error upstream, so inside the
 * room's pipeline one HLS writer on a full disk would have stopped the channel
 * it encodes (and, through the stage's demuxer, the floor of every channel).
 * Here a program error is logged and shown to the crew; listeners and booths go
 * on. Both pipelines run on the system clock, and the bridges carry each
 * buffer's instant across (room running time → clock → program running time).
 *
 *  stage H.264 ⇒┐                                               ┌→ HLS
 *  slate H.264 ─┴ input-selector ─ keyframe gate ─ tee "video" ─┼→ recording bridge
 *                                                               └→ restream bridges
 *  channel PCM ⇒ avenc_aac ─ aacparse ─ tee "aac-LANG" ─→ (the same)
 *  (⇒: a bridge, a leaky 1 s queue and an appsink in the room's pipeline)
 *
 * The keyframe gate makes the video safe for every muxer: after a switch it
 * passes nothing until a keyframe later than everything already sent (the new
 * source's encoder may stamp frames before the last one sent, and starts
 * mid-GOP). Owner: the room. Built on the main thread before the room plays;
 * the gate runs on the video streaming thread under the program's lock. */
#pragma once
#include "config.h"

#include <gst/gst.h>

typedef struct _DragomanProgram DragomanProgram;

/* the AAC every output carries: speech and the floor's music, mono */
#define DRAGOMAN_AAC_BITRATE 64000

typedef void (*DragomanProgramMessageFunc) (GstMessage *message, gpointer data);

/* bridges from room_pipeline's pads; the program's own pipeline */
DragomanProgram *dragoman_program_new (GstElement *room_pipeline, const DragomanRoomConfig *room);
void dragoman_program_free (DragomanProgram *program);
/* after the room's pipeline plays */
gboolean dragoman_program_start (DragomanProgram *program);
void dragoman_program_stop (DragomanProgram *program);
GstElement *dragoman_program_get_pipeline (DragomanProgram *program);
/* element messages of the program's pipeline (HLS fragments), main thread */
void dragoman_program_set_message_func (DragomanProgram *program, DragomanProgramMessageFunc func, gpointer data);
const char *dragoman_program_get_error (DragomanProgram *program); /* NULL while healthy */
guint64 dragoman_program_get_dropped (DragomanProgram *program);
/* the stage's H.264 (byte-stream, au); NULL: the slate only */
void dragoman_program_link_video (DragomanProgram *program, GstPad *h264);
void dragoman_program_link_audio (DragomanProgram *program, const char *lang, GstPad *pcm);
/* the stage went live or was lost: switch the video (main thread) */
void dragoman_program_set_stage_live (DragomanProgram *program, gboolean live);
/* the tees: request a src pad for a branch (transfer none) */
GstElement *dragoman_program_get_video_tee (DragomanProgram *program);
GstElement *dragoman_program_get_audio_tee (DragomanProgram *program, const char *lang);
/* a buffer's running time by the pad's sticky segment (not its PTS: x264enc, for
 * one, starts its segment at 1000 hours); GST_CLOCK_TIME_NONE without a segment
 * or before its start. For the program's and HLS's probes. */
GstClockTime dragoman_pad_running_time (GstPad *pad, GstBuffer *buf);
