/* booth — where a language's interpreters work, feeding one channel.
 *
 * Owner: the room. Main thread only. Kinds, from the booth's `source`:
 *  - test: a simulated interpreter on a schedule (the demo);
 *  - rtp/srt (hardware consoles): on air while the console sends (on-air = signal),
 *    or by hand;
 *  - browser: up to max-interpreters interpreters over WebRTC; exactly one of them
 *    is live (handover: request / hand over / take over); the live one puts the
 *    booth on air, coughs, and every interpreter picks their own return feed
 *    (floor or relay from another channel). */
#pragma once
#include "channel.h"
#include "config.h"

#include <json-glib/json-glib.h>

typedef struct _DragomanBooth DragomanBooth;
typedef struct _DragomanInterpreter DragomanInterpreter;
struct _DragomanRoom;

DragomanBooth *dragoman_booth_new (const DragomanBoothConfig *config, DragomanChannel *channel,
                                   struct _DragomanRoom *room);
void dragoman_booth_free (DragomanBooth *booth);
/* the booth's source bin is in the pipeline: find its pieces */
void dragoman_booth_set_source (DragomanBooth *booth, GstElement *bin);
/* start the on/off-air schedule (test booths) or the signal watch */
void dragoman_booth_start (DragomanBooth *booth);
void dragoman_booth_set_on_air (DragomanBooth *booth, gboolean on_air);
gboolean dragoman_booth_is_on_air (DragomanBooth *booth);
const char *dragoman_booth_get_lang (DragomanBooth *booth);
const DragomanBoothConfig *dragoman_booth_get_config (DragomanBooth *booth);

/* browser booths: the /ws/booth session's side */
typedef void (*DragomanBoothSendFunc) (gpointer session, const char *json);
typedef void (*DragomanBoothCloseFunc) (gpointer session, guint16 code, const char *reason);
#define DRAGOMAN_BOOTH_ERROR (g_quark_from_static_string ("dragoman-booth"))
typedef enum {
  DRAGOMAN_BOOTH_ERROR_FULL,
  DRAGOMAN_BOOTH_ERROR_NOT_BROWSER,
  DRAGOMAN_BOOTH_ERROR_UNKNOWN, /* retour: no such channel to output to */
  DRAGOMAN_BOOTH_ERROR_BUSY,    /* retour: another booth is on air on it */
} DragomanBoothError;
DragomanInterpreter *dragoman_booth_join (DragomanBooth *booth, const char *name, DragomanBoothSendFunc send,
                                          DragomanBoothCloseFunc close, gpointer session, GError **error);
void dragoman_booth_leave (DragomanBooth *booth, DragomanInterpreter *interpreter);
/* every message after the join: offer, ice and the console's actions */
void dragoman_booth_handle (DragomanBooth *booth, DragomanInterpreter *interpreter, JsonObject *message);
guint dragoman_booth_n_interpreters (DragomanBooth *booth);

/* the stage went live or was lost: the consoles show it (main thread) */
void dragoman_booth_stage_changed (DragomanBooth *booth);

/* the AV crew's side (main thread) */
void dragoman_booth_set_crew_mute (DragomanBooth *booth, gboolean mute);
gboolean dragoman_booth_kick (DragomanBooth *booth, const char *interpreter_id, const char *by);
void dragoman_booth_message (DragomanBooth *booth, const char *text);
/* the booth as JSON members of the object being built (kind, on_air, interpreters...) */
void dragoman_booth_describe (DragomanBooth *booth, JsonBuilder *builder);
/* events the crew must see: kind is "chat", "slow-down", "interpreter-joined",
 * "interpreter-left" (text "live" if they were on air); who is the interpreter */
typedef void (*DragomanBoothEventFunc) (DragomanBooth *booth, const char *kind, const char *who, const char *text,
                                        gpointer data);
void dragoman_booth_set_event_func (DragomanBooth *booth, DragomanBoothEventFunc func, gpointer data);
