/* outbox — the text messages waiting for one WebSocket's WRITEABLE (booth consoles,
 * control pages). Bounded: a page that stops reading is closed, never buffered
 * without end. Main thread only. */
#pragma once
#include <glib.h>

struct lws;

typedef struct {
  struct lws *wsi;
  GQueue queue;       /* char* */
  guint max;          /* at this length the socket is closed 1008 */
  guint16 close_code; /* non-zero: close once the queue drains */
  char *close_reason;
} DragomanOutbox;

void dragoman_outbox_init (DragomanOutbox *box, struct lws *wsi, guint max);
void dragoman_outbox_clear (DragomanOutbox *box);
void dragoman_outbox_push (DragomanOutbox *box, const char *json);
guint dragoman_outbox_length (DragomanOutbox *box);
/* queue {"type":"error",...} and close with `code` after it */
void dragoman_outbox_refuse (DragomanOutbox *box, guint16 code, const char *error, const char *message);
void dragoman_outbox_close (DragomanOutbox *box, guint16 code, const char *reason);
/* from LWS_CALLBACK_SERVER_WRITEABLE: returns the callback's return value */
int dragoman_outbox_write (DragomanOutbox *box);
