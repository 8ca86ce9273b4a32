/* srtgate — one sender at a time on an SRT listener (the stage, a hardware booth).
 *
 * srtsrc in listener mode reads from its first caller only, yet libsrt completes a
 * second caller's handshake into the listen backlog: that encoder believes it is
 * on air and sends into nothing, and a third is refused only with "backlog
 * exceeded". The gate answers srtsrc's caller-connecting: while a sender is
 * connected and its data flowed within the last second, a new caller is refused
 * at the handshake (its encoder reports the rejection), logged with both
 * addresses and counted. A connected sender that has gone quiet does not block a
 * new one (an encoder restarted after a crash calls while SRT still holds the dead
 * connection; the stage resets srtsrc to take it). Passphrase checks stay
 * libsrt's: a caller with the wrong one fails its handshake after the gate, and
 * the gate logs such a caller once it has not connected within 2 s. */
#pragma once
#include <gst/gst.h>

/* Puts a gate on every srtsrc in bin that listens; label names the input in the
 * log ("room main: stage"). The gates live as long as their elements. */
void dragoman_srt_gate_attach (GstBin *bin, const char *label);

/* Callers refused since start (all gates): dragoman_srt_callers_refused_total */
guint64 dragoman_srt_gate_refused_total (void);
