/* source — a GstBin built from a launch description in pipelines/NAME.pipeline.
 *
 * The AV crew can add an input kind (decklink, ALSA, NDI) by writing a file, no
 * recompiling. Lines starting with '#' are comments; ${var} is replaced from the
 * given table (an unknown variable is an error), ${var:-default} falls back. The src pads of the elements
 * named "audio" and "video" become the bin's ghost pads of the same names.
 * An appsrc named "loop:PATH" (with raw audio caps) plays the file at PATH in a
 * loop as a live source: the demo's voices. An srtsrc that listens gets a gate
 * (srtgate.h): one sender at a time. */
#pragma once
#include <gst/gst.h>

GstElement *dragoman_source_new (const char *pipeline_dir, const char *name, const char *bin_name,
                                 GHashTable *vars, GError **error);
char *dragoman_source_expand (const char *text, GHashTable *vars, GError **error);
