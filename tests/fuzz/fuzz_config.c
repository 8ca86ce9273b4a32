/* fuzz_config — the key-file loader, dragoman_config_load_data (src/config.c), and
 * the --set overrides it applies.
 *
 * Input: the file, then each --set string after a NUL ("[room main]\n...\0room
 * main.duck-db=-6\0server.port=9"). Checks, besides the sanitizers: a config or a
 * GError, never both or neither; a loaded config holds what config.h promises
 * (ids, languages, ranges); no GLib critical (GKeyFile's g_return_if_fail on a
 * value it cannot read, an override it cannot set). */
#include "fuzz.h"

#include "config.h"

#include <stdlib.h>

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  fuzz_fatal_warnings ();
  return 0;
}

static void
check_config (const DragomanConfig *c)
{
  fuzz_assert (c->rooms->len > 0, "loaded without a room");
  fuzz_assert (c->port >= 1 && c->port <= 65535, "port %d", c->port);
  fuzz_assert (c->listen_hard_limit_ms > c->listen_soft_limit_ms, "limits");
  fuzz_assert (!c->admin_token || strlen (c->admin_token) >= 8, "short admin token");
  fuzz_assert (!c->tls_cert == !c->tls_key, "half a TLS pair");
  for (guint i = 0; i < c->rooms->len; i++) {
    const DragomanRoomConfig *r = c->rooms->pdata[i];
    fuzz_assert (dragoman_config_valid_id (r->id), "room id '%s'", r->id);
    fuzz_assert (dragoman_config_find_room (c, r->id) == r, "duplicate room '%s'", r->id);
    fuzz_assert (dragoman_config_valid_id (r->stage), "stage '%s'", r->stage);
    fuzz_assert (r->opus_frame_ms == 10 || r->opus_frame_ms == 20, "frame %d", r->opus_frame_ms);
    fuzz_assert (r->duck_db >= -60 && r->duck_db <= 0, "duck %g", r->duck_db);
    fuzz_assert (dragoman_language_lookup (r->floor_lang), "floor '%s'", r->floor_lang);
    for (guint k = 0; r->langs[k]; k++)
      fuzz_assert (dragoman_language_lookup (r->langs[k]) && !g_str_equal (r->langs[k], "orig"), "lang '%s'",
                   r->langs[k]);
    for (guint k = 0; k < r->booths->len; k++) {
      const DragomanBoothConfig *b = r->booths->pdata[k];
      fuzz_assert (g_strv_contains ((const char *const *) r->langs, b->lang), "booth '%s'", b->lang);
      fuzz_assert (dragoman_config_valid_id (b->source), "source '%s'", b->source);
      fuzz_assert (!g_str_equal (b->source, "browser") || (b->token && strlen (b->token) >= 8), "token");
      /* every key became a ${var}: none may be lost on the way */
      GHashTableIter it;
      gpointer key, value;
      g_hash_table_iter_init (&it, b->vars);
      while (g_hash_table_iter_next (&it, &key, &value))
        fuzz_assert (value != NULL, "[booth %s/%s] %s: value lost", r->id, b->lang, (char *) key);
    }
    GHashTableIter it;
    gpointer key, value;
    g_hash_table_iter_init (&it, r->stage_vars);
    while (g_hash_table_iter_next (&it, &key, &value))
      fuzz_assert (value != NULL, "[stage %s] %s: value lost", r->id, (char *) key);
  }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autofree char *buf = fuzz_strndup (data, size);
  const char *end = buf + size;
  g_autoptr (GPtrArray) sets = g_ptr_array_new ();
  for (const char *p = buf + strlen (buf); p < end; p += strlen (p))
    g_ptr_array_add (sets, (char *) ++p);
  g_ptr_array_add (sets, NULL);

  g_autoptr (GError) err = NULL;
  g_autoptr (DragomanConfig) c =
      dragoman_config_load_data ("fuzz.ini", buf, (const char *const *) sets->pdata, &err);
  fuzz_assert (!c != !err, "config %p and error %s", (void *) c, err ? err->message : "(none)");
  if (c)
    check_config (c);
  return 0;
}
