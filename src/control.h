/* control — the AV crew's view of the server: meters, state, alerts, and the
 * actions they take. Owner: main. Main thread only.
 *
 * Policy numbers: meters go out every DRAGOMAN_LEVEL_INTERVAL_MS (80 ms, 12.5 Hz)
 * to each signed-in page, skipped for a page with more than 8 messages still
 * queued (a slow laptop gets fewer frames, never a growing backlog); state once a
 * second and at once after an action; alerts as they are raised. */
#pragma once
#include "outbox.h"
#include "server.h"

#include <json-glib/json-glib.h>


typedef struct {
  DragomanOutbox out;
  char *name; /* NULL until signed in */
} DragomanCrewMember;

DragomanControl *dragoman_control_new (DragomanServer *server);
void dragoman_control_free (DragomanControl *control);
void dragoman_control_add (DragomanControl *control, DragomanCrewMember *member);
void dragoman_control_remove (DragomanControl *control, DragomanCrewMember *member);
/* an action from a signed-in member (docs/protocol.md); answers with a result */
void dragoman_control_handle (DragomanControl *control, DragomanCrewMember *member, JsonObject *message);
/* the welcome + first state for a member who just signed in */
void dragoman_control_welcome (DragomanControl *control, DragomanCrewMember *member);
/* Prometheus lines for the active alerts */
void dragoman_control_append_metrics (DragomanControl *control, GString *out);
