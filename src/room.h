/* room — one stage, its booths and its channels, in one GstPipeline.
 *
 * Owner: main (via the server). Main thread, except the channels' streaming
 * threads which only push packets into the fanouts. */
#pragma once
#include "booth.h"
#include "booth_video.h"
#include "channel.h"
#include "config.h"
#include "hls.h"
#include "output.h"
#include "stage.h"

typedef struct _DragomanRoom DragomanRoom;
/* the stage went live or was lost (main thread) */
typedef void (*DragomanRoomStageFunc) (DragomanRoom *room, gboolean live, gpointer data);

typedef struct {
  double peak_db, rms_db; /* dBFS, -100 for silence */
  gint64 at_us;           /* monotonic time of the measurement */
} DragomanLevel;

DragomanRoom *dragoman_room_new (const DragomanConfig *config, const DragomanRoomConfig *room, guint headroom,
                                 GError **error);
void dragoman_room_free (DragomanRoom *room);
gboolean dragoman_room_start (DragomanRoom *room, GError **error);
const DragomanRoomConfig *dragoman_room_get_config (DragomanRoom *room);
gboolean dragoman_room_is_playing (DragomanRoom *room);
/* channels: index 0 is "orig", then the languages in config order */
guint dragoman_room_n_channels (DragomanRoom *room);
DragomanChannel *dragoman_room_get_channel (DragomanRoom *room, guint index);
DragomanChannel *dragoman_room_find_channel (DragomanRoom *room, const char *lang);
DragomanBooth *dragoman_room_find_booth (DragomanRoom *room, const char *lang);
GstElement *dragoman_room_get_pipeline (DragomanRoom *room);
const DragomanConfig *dragoman_room_get_server_config (DragomanRoom *room);
DragomanStage *dragoman_room_get_stage (DragomanRoom *room);
DragomanHls *dragoman_room_get_hls (DragomanRoom *room); /* NULL: HLS off */
/* the stage's picture for browser booths; NULL: none in this room */
struct _DragomanBoothVideo *dragoman_room_get_booth_video (DragomanRoom *room);
/* the recording (if configured) and this room's restreams: DragomanOutput* */
GPtrArray *dragoman_room_get_outputs (DragomanRoom *room);
/* retour: can channel `lang` take another booth's voice; which booth it carries;
 * give it `booth`'s voice (main thread) */
gboolean dragoman_room_can_route (DragomanRoom *room, const char *lang);
DragomanBooth *dragoman_room_get_voice_owner (DragomanRoom *room, const char *lang);
void dragoman_room_route_voice (DragomanRoom *room, const char *lang, DragomanBooth *booth);
/* the channel belongs to `booth` again, but its selector stays until that booth goes
 * on air (switching at once let a window of its off-air microphone through the
 * voice ramp: its buffers carry older timestamps than the ramp's start) */
void dragoman_room_set_voice_owner (DragomanRoom *room, const char *lang, DragomanBooth *booth);
void dragoman_room_set_stage_func (DragomanRoom *room, DragomanRoomStageFunc func, gpointer data);
DragomanOutput *dragoman_room_find_output (DragomanRoom *room, const char *name); /* "record" or a restream */
/* the newest reading of a meter: "floor", "channel:LANG" or "booth:LANG"; NULL if none yet */
const DragomanLevel *dragoman_room_get_level (DragomanRoom *room, const char *meter);
