/* booth — where a language's interpreters work, feeding one channel.
 *
 * Owner: the room. Main thread only. A "test" booth is a simulated interpreter
 * that goes on and off air on its configured schedule. */
#pragma once
#include "channel.h"
#include "config.h"

typedef struct _DragomanBooth DragomanBooth;

DragomanBooth *dragoman_booth_new (const DragomanBoothConfig *config, DragomanChannel *channel);
void dragoman_booth_free (DragomanBooth *booth);
/* start the on/off-air schedule (test booths) */
void dragoman_booth_start (DragomanBooth *booth);
void dragoman_booth_set_on_air (DragomanBooth *booth, gboolean on_air);
gboolean dragoman_booth_is_on_air (DragomanBooth *booth);
const char *dragoman_booth_get_lang (DragomanBooth *booth);
