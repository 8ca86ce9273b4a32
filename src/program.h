/* program — a room's program for viewers, encoded once: the video (the stage's
 * H.264 passed through, or a slate while the stage is lost) and every channel's
 * AAC. HLS, recordings and restreams each take a branch of its tees.
 *
 *  stage H.264 ─┐                                               ┌→ HLS
 *  slate H.264 ─┴ input-selector ─ keyframe gate ─ tee "video" ─┼→ recording bridge
 *                                                               └→ restream bridges
 *  channel PCM ─ leaky queue ─ avenc_aac ─ aacparse ─ tee "aac-LANG" ─→ (the same)
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

DragomanProgram *dragoman_program_new (GstElement *pipeline, const DragomanRoomConfig *room);
void dragoman_program_free (DragomanProgram *program);
/* the stage's H.264 (byte-stream, au); NULL: the slate only */
void dragoman_program_link_video (DragomanProgram *program, GstPad *h264);
void dragoman_program_link_audio (DragomanProgram *program, const char *lang, GstPad *pcm);
/* the stage went live or was lost: switch the video (main thread) */
void dragoman_program_set_stage_live (DragomanProgram *program, gboolean live);
/* the tees: request a src pad for a branch (transfer none) */
GstElement *dragoman_program_get_video_tee (DragomanProgram *program);
GstElement *dragoman_program_get_audio_tee (DragomanProgram *program, const char *lang);
