/* fuzz_query — the query string of /ws/listen?room=R&lang=L and /ws/booth?room=R&booth=L:
 * dragoman_ws_listen_parse_target (src/ws_listen.c), fed as lws feeds it.
 *
 * lws splits the query at '&' into URL-decoded fragments, and lws_get_urlarg_by_name
 * returns the value of the first fragment that starts with "name=", copied into the
 * caller's 80-byte buffer; a fragment of 80 bytes or more ends its search (lws 4.1's
 * lws_hdr_copy_fragment fails and the loop stops). The input is the decoded query.
 * Checks: each id is "(invalid)" or the value itself, whole, and a valid id. */
#include "fuzz.h"

#include "config.h"
#include "ws_listen.h"

#include <stdlib.h>

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  fuzz_fatal_warnings ();
  return 0;
}

/* lws_get_urlarg_by_name () over the fragments */
static const char *
urlarg (char **frags, const char *name, char *buf, gsize size)
{
  for (guint i = 0; frags[i]; i++) {
    if (strlen (frags[i]) >= size)
      return NULL;
    g_strlcpy (buf, frags[i], size);
    if (g_str_has_prefix (buf, name))
      return buf + strlen (name);
  }
  return NULL;
}

static void
check_id (const char *value, const char *id)
{
  fuzz_assert (strlen (id) < 33, "id overflows");
  if (g_str_equal (id, "(invalid)"))
    fuzz_assert (!value || !dragoman_config_valid_id (value), "valid '%s' refused", value);
  else
    fuzz_assert (value && g_str_equal (value, id) && dragoman_config_valid_id (id), "'%s' became '%s'",
                 value ? value : "(none)", id);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autofree char *query = fuzz_strndup (data, size);
  g_auto (GStrv) frags = g_strsplit (query, "&", -1);
  char room_arg[80], name_arg[80];
  const char *names[] = { "lang=", "booth=" };
  for (guint k = 0; k < G_N_ELEMENTS (names); k++) {
    const char *room = urlarg (frags, "room=", room_arg, sizeof room_arg);
    const char *name = urlarg (frags, names[k], name_arg, sizeof name_arg);
    DragomanWsTarget target;
    memset (&target, 0x5a, sizeof target); /* no terminator left from before */
    dragoman_ws_listen_parse_target (room, name, &target);
    check_id (room, target.room);
    check_id (name, target.name);
  }
  return 0;
}
