#include "server.h"

DragomanRoom *
dragoman_server_find_room (DragomanServer *server, const char *id)
{
  for (guint i = 0; i < server->rooms->len; i++)
    if (g_strcmp0 (dragoman_room_get_config (server->rooms->pdata[i])->id, id) == 0)
      return server->rooms->pdata[i];
  return NULL;
}
