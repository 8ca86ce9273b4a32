/* fileplayer — a recording played as a live stage feed, in a loop, for rehearsals.
 *
 * A stage pipeline names two appsrcs "play-video:FILE" and "play-audio:FILE"
 * (pipelines/stage-file.pipeline). One player per FILE runs a private pipeline:
 *
 *   filesrc ─ parsebin ─┬ H.264: h264parse ─ appsink (sync) ⇒ appsrc "play-video:FILE"
 *                       └ audio: decodebin ─ convert/resample ─ appsink (sync) ⇒ appsrc "play-audio:FILE"
 *
 * paced by the clock (sync appsinks) and looped gaplessly with segment seeks
 * (a non-flushing seek back to 0 on each SEGMENT_DONE: running time goes on).
 * The video passes through untouched, as from an encoder; each buffer keeps its
 * instant across (player running time → clock → room running time; both on
 * the system clock). Owner: the appsrcs (the player goes with the last one).
 * Main thread, except the appsinks' callbacks. */
#pragma once
#include <gst/gst.h>

/* finds the play-video:/play-audio: appsrcs in `bin` and attaches players;
 * FALSE with `error` when a file is missing or unreadable */
gboolean dragoman_fileplayer_setup (GstBin *bin, GError **error);
