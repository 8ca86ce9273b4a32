/* output — a recording or a restream of a room's program.
 *
 * Each output runs its own GstPipeline (muxer and sink), fed from the room's
 * program through appsink → appsrc bridges: whatever goes wrong in it — a
 * platform that drops the connection, a full disk, a muxer refusing a new
 * resolution — stays in it. The room's pipeline only ever sees leaky queues
 * and appsinks that drop when nobody pulls.
 *
 *  room pipeline                          output pipeline
 *  program video tee ─ queue ─ appsink ──→ appsrc ─ h264parse ─┐
 *  program aac-LANG tee ─ queue ─ appsink → appsrc ─ aacparse ─┴ mux ─ sink
 *
 *  recording: splitmuxsink (matroskamux), video + every channel as a
 *             language-tagged track; a new file every split-minutes;
 *             optional audio-only files per channel
 *  restream:  flvmux → rtmp2sink (RTMP/RTMPS), or mpegtsmux → srtsink (caller)
 *
 * Timestamps: the bridge turns buffers into running time of the room pipeline
 * minus the running time of the first video keyframe after the start, so every
 * file and stream starts at 0 on a keyframe with audio from the same instant.
 *
 * States: stopped → starting → live; on an error, restreams retry with
 * exponential backoff (1, 2, 4 ... 30 s) until stopped; a recording whose disk
 * is full or unwritable stops as "failed" (an alert), other recording errors
 * retry into a new file. Owner: the room. Main thread, except the bridges'
 * callbacks (streaming threads), which take the output's lock. */
#pragma once
#include "config.h"
#include "program.h"

#include <gst/gst.h>
#include <json-glib/json-glib.h>

typedef struct _DragomanOutput DragomanOutput;

typedef enum {
  DRAGOMAN_OUTPUT_STOPPED,
  DRAGOMAN_OUTPUT_STARTING,
  DRAGOMAN_OUTPUT_LIVE,
  DRAGOMAN_OUTPUT_RETRYING,
  DRAGOMAN_OUTPUT_FAILED,
} DragomanOutputState;

typedef struct {
  DragomanOutputState state;
  const char *error;  /* the last error, or NULL */
  gint64 since_us;    /* wall clock of the last state change */
  guint64 bytes;      /* written since the server started */
  double kbps;        /* over the last ~2 s */
  guint reconnects;   /* restarts after an error */
  guint64 dropped;    /* buffers dropped by the bridge (the output fell behind) */
} DragomanOutputStats;

/* called on the main thread when the state changes */
typedef void (*DragomanOutputChangeFunc) (DragomanOutput *output, gpointer data);

/* built with the room, before it plays: taps on the program's tees */
DragomanOutput *dragoman_output_new_recording (GstElement *room_pipeline, DragomanProgram *program,
                                               const DragomanRoomConfig *room);
DragomanOutput *dragoman_output_new_restream (GstElement *room_pipeline, DragomanProgram *program,
                                              const DragomanRoomConfig *room, const DragomanRestreamConfig *restream);
/* shutting down: end the streams and wait (≤ 3 s) until the files are finished
 * (index, duration); call before the room's pipeline stops, free after */
void dragoman_output_finish (DragomanOutput *output);
void dragoman_output_free (DragomanOutput *output);
void dragoman_output_set_change_func (DragomanOutput *output, DragomanOutputChangeFunc func, gpointer data);

/* main thread. start: TRUE when it is (or already was) starting */
gboolean dragoman_output_start (DragomanOutput *output, GError **error);
void dragoman_output_stop (DragomanOutput *output);
gboolean dragoman_output_is_wanted (DragomanOutput *output);
gboolean dragoman_output_get_autostart (DragomanOutput *output);

const char *dragoman_output_get_name (DragomanOutput *output); /* "record" or the restream's name */
const char *dragoman_output_get_kind (DragomanOutput *output); /* "recording", "rtmp", "srt" */
const char *dragoman_output_get_lang (DragomanOutput *output); /* restreams: the channel; NULL otherwise */
void dragoman_output_get_stats (DragomanOutput *output, DragomanOutputStats *stats);
const char *dragoman_output_state_name (DragomanOutputState state);
/* the destination for people: the URL with the key shown as its first 4 characters
 * and "…" (never in full), or the recording directory */
char *dragoman_output_describe_target (DragomanOutput *output);
/* {"name","kind","room","lang","target","state","error","since","bytes","kbps","reconnects","dropped","file"} */
void dragoman_output_add_json (DragomanOutput *output, JsonBuilder *builder);
