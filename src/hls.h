/* hls — a room's HLS: one video rendition (the program's video: the stage's H.264,
 * passed through, or a slate while the stage is lost) and one AAC audio rendition
 * per channel, all from the program's tees (program.h: encoded once).
 *
 * GStreamer's hlssink2 writes only media playlists without PROGRAM-DATE-TIME and
 * its audio-only sinks drift ~16 ms a segment (DESIGN.md), so we run one
 * splitmuxsink per rendition, drive every split from the video's keyframes
 * (split-at-running-time on all of them: same sequence numbers, audio starting
 * within one AAC frame of video) and write every playlist ourselves, in memory
 * (served by http.c) with segments on disk. Owner: the room. Main thread, except
 * the keyframe probe (streaming thread), which only emits the split signals. */
#pragma once
#include "config.h"
#include "program.h"

#include <gst/gst.h>

typedef struct _DragomanHls DragomanHls;

DragomanHls *dragoman_hls_new (GstElement *pipeline, DragomanProgram *program, const DragomanConfig *config,
                               const DragomanRoomConfig *room, GError **error);
void dragoman_hls_free (DragomanHls *hls);
/* a rendition for the channel `lang`, from the program's AAC tee */
void dragoman_hls_link_audio (DragomanHls *hls, const char *lang);
/* the stage went live or was lost: mark a discontinuity (the program switches) */
void dragoman_hls_set_stage_live (DragomanHls *hls, gboolean live);
/* a playlist by file name ("master.m3u8", "video.m3u8", "audio-hy.m3u8"), or NULL */
const char *dragoman_hls_get_playlist (DragomanHls *hls, const char *name);
/* main thread, from the room's bus watch: TRUE if the message was a fragment of ours */
gboolean dragoman_hls_handle_message (DragomanHls *hls, GstMessage *message);
/* the directory holding this room's segments */
const char *dragoman_hls_get_dir (DragomanHls *hls);
