/* stage — a room's stage input (test, SRT) and what happens when it fails.
 *
 * For a network stage the floor every channel mixes never stops: an input-selector
 * switches it to live silence when the stage has sent no audio for
 * DRAGOMAN_STAGE_LOST_MS, and back on the stage's next buffer; the interpreters
 * keep being heard throughout. The video (H.264, passed through) is handed on as
 * it comes; HLS puts its slate in (hls.c). Owner: the room. Main thread, except
 * the pad probes, which only store timestamps and counters. */
#pragma once
#include "config.h"

#include <gst/gst.h>

/* 500 ms: a healthy feed delivers a video frame every 33-40 ms and audio every
 * 20-60 ms, so half a second of nothing is a dead sender (300 ms misfired on a
 * loaded 2-core machine). Until the switch the channels' mixers have no floor and
 * stall: listeners hear a gap of about this plus the watchdog's 100 ms, per loss. */
#define DRAGOMAN_STAGE_LOST_MS 500
/* an srtsrc still without a sender this long after the loss is reset to take a new one */
#define DRAGOMAN_STAGE_RESET_MS 500

typedef struct _DragomanStage DragomanStage;

DragomanStage *dragoman_stage_new (GstElement *pipeline, const DragomanConfig *config, const DragomanRoomConfig *room,
                                   GHashTable *vars, GError **error);
void dragoman_stage_free (DragomanStage *stage);
/* S16LE 48 kHz mono, never stops: link the floor tee here */
GstElement *dragoman_stage_get_floor (DragomanStage *stage);
/* H.264 byte-stream (or NULL: an audio-only stage) */
GstPad *dragoman_stage_get_video (DragomanStage *stage);
gboolean dragoman_stage_is_live (DragomanStage *stage);
const char *dragoman_stage_get_reason (DragomanStage *stage);
gint64 dragoman_stage_get_since (DragomanStage *stage); /* unix seconds of the last change */
/* "1280x720 30/1 H.264", bitrate in bit/s over the last second; NULL before any video */
const char *dragoman_stage_get_video_info (DragomanStage *stage);
guint64 dragoman_stage_get_bitrate (DragomanStage *stage);
guint dragoman_stage_get_losses (DragomanStage *stage);
/* called on the main thread when the stage goes live or is lost */
void dragoman_stage_set_change_func (DragomanStage *stage, void (*func) (gpointer, gboolean live), gpointer data);
