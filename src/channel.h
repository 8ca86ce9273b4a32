/* channel — what a listener picks: the floor ("orig") or one language.
 *
 * A language channel mixes its booth's voice over the floor ducked by duck-db;
 * with nobody on air it carries the floor alone. It encodes Opus ONCE and pushes
 * every packet into its fanout. Owner: the room; gains change on the main thread,
 * samples flow on streaming threads. */
#pragma once
#include "fanout.h"

#include <gst/gst.h>

typedef struct _DragomanChannel DragomanChannel;

typedef enum {
  DRAGOMAN_CHANNEL_FLOOR,          /* nobody on air: the floor alone */
  DRAGOMAN_CHANNEL_INTERPRETATION, /* a live interpreter over the ducked floor */
  DRAGOMAN_CHANNEL_FORCED_FLOOR,   /* the crew forced the floor */
} DragomanChannelMode;

/* Ramps, in ms. The floor goes down quickly when an interpreter goes on air (their
 * first words must not fight the speaker) and comes back over a second when they go
 * off air, so a pause between sentences never bursts the floor in. The voice
 * itself switches in a few ms, short enough to catch a cough, long enough (>= 5 ms,
 * i.e. >= 240 samples) that the step does not click. */
#define DRAGOMAN_RAMP_DUCK_MS 300
#define DRAGOMAN_RAMP_UNDUCK_MS 1000
#define DRAGOMAN_RAMP_VOICE_MS 10

/* level meters for the crew: 80 ms = 12.5 updates a second, smooth enough for a
 * meter and ~150 bus messages a second for a full room */
#define DRAGOMAN_LEVEL_INTERVAL_MS 80

/* fanout NULL: no encoder; the bin then has a raw "src" pad (unit tests). */
DragomanChannel *dragoman_channel_new (const char *room, const char *lang, gboolean has_voice, int frame_ms,
                                       int bitrate, double duck_db, DragomanFanout *fanout);
void dragoman_channel_free (DragomanChannel *channel);
/* sink pads "floor" and, with a voice, "voice": S16LE 48 kHz mono */
GstElement *dragoman_channel_get_bin (DragomanChannel *channel);
const char *dragoman_channel_get_lang (DragomanChannel *channel);

/* Main thread. `at` is the running time the change applies from;
 * GST_CLOCK_TIME_NONE = now (the bin's pipeline clock). */
void dragoman_channel_set_input (DragomanChannel *channel, gboolean on_air, gboolean cough, GstClockTime at);
/* the AV crew's override: the floor alone, whatever the booth does */
void dragoman_channel_set_force_floor (DragomanChannel *channel, gboolean force_floor, GstClockTime at);
void dragoman_channel_set_duck_db (DragomanChannel *channel, double duck_db, GstClockTime at);
double dragoman_channel_get_duck_db (DragomanChannel *channel);
DragomanChannelMode dragoman_channel_get_mode (DragomanChannel *channel);
const char *dragoman_channel_mode_name (DragomanChannelMode mode);
DragomanFanout *dragoman_channel_get_fanout (DragomanChannel *channel);
/* a new src pad on the bin carrying the channel's PCM (S16LE 48 kHz mono), for
 * HLS and recordings (transfer full); NULL without an encoder. Main thread. */
GstPad *dragoman_channel_get_pcm_pad (DragomanChannel *channel);

/* Main thread: told when the voice input starts or stops delivering audio (a
 * hardware booth's signal, an interpreter's connection). */
typedef void (*DragomanVoiceSignalFunc) (DragomanChannel *channel, gboolean present, gpointer data);
void dragoman_channel_set_voice_signal_func (DragomanChannel *channel, DragomanVoiceSignalFunc func, gpointer data);
gboolean dragoman_channel_has_voice_signal (DragomanChannel *channel);
/* Main thread. Link the voice to the mixer now if the watchdog detached it
 * (normally done when its next buffer arrives). */
void dragoman_channel_attach_voice (DragomanChannel *channel);
