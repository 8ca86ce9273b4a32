/* config — unit tests for src/config.c: the key file, its defaults, its errors.
 *
 * Every error case checks that the GError names what a user needs to fix it: the
 * file, the [group] and, where there is one, the key. Error tests start from BASE,
 * which test_base_loads proves valid, and add one mistake, so the error can only
 * come from that mistake.
*/
#include <gst/check/gstcheck.h>
#include <string.h>
#include <sys/wait.h>

#include "config.h"

#define PATH "test.ini"

#define BASE                                                                                                   \
  "[room main]\n"                                                                                              \
  "languages = en hy\n"                                                                                        \
  "[booth main/en]\n"                                                                                          \
  "[booth main/hy]\n"

static DragomanConfig *
load_ok (const char *data, const char *const *overrides)
{
  g_autoptr (GError) err = NULL;
  DragomanConfig *c = dragoman_config_load_data (PATH, data, overrides, &err);
  fail_unless (c != NULL, "config should load, got: %s", err ? err->message : "(no error)");
  fail_unless (err == NULL);
  return c;
}

/* Loads `data`, expects failure, and checks the message names every string in the
 * NULL-terminated list that follows. Returns the message for further checks. */
static char *
load_fail (const char *data, const char *const *overrides, ...) G_GNUC_NULL_TERMINATED;

static char *
load_fail (const char *data, const char *const *overrides, ...)
{
  g_autoptr (GError) err = NULL;
  DragomanConfig *c = dragoman_config_load_data (PATH, data, overrides, &err);
  fail_unless (c == NULL, "config should have been refused:\n%s", data);
  dragoman_config_free (c);
  fail_unless (err != NULL, "refused without a GError");
  fail_unless (err->domain == DRAGOMAN_CONFIG_ERROR, "wrong error domain: %s", g_quark_to_string (err->domain));
  va_list ap;
  va_start (ap, overrides);
  for (const char *want; (want = va_arg (ap, const char *));)
    fail_unless (strstr (err->message, want) != NULL, "error '%s' does not mention '%s'", err->message, want);
  va_end (ap);
  GST_INFO ("refused as expected: %s", err->message);
  return g_strdup (err->message);
}

static const DragomanBoothConfig *
find_booth (const DragomanRoomConfig *r, const char *lang)
{
  for (guint i = 0; i < r->booths->len; i++) {
    const DragomanBoothConfig *b = r->booths->pdata[i];
    if (g_str_equal (b->lang, lang))
      return b;
  }
  return NULL;
}

GST_START_TEST (test_demo_ini)
{
  g_autoptr (GError) err = NULL;
  g_autoptr (DragomanConfig) c = dragoman_config_load ("configs/demo.ini", NULL, &err);
  fail_unless (c != NULL, "configs/demo.ini: %s", err ? err->message : "?");
  fail_unless_equals_string (c->path, "configs/demo.ini");
  fail_unless_equals_string (c->address, "127.0.0.1");
  fail_unless_equals_int (c->port, 8080);
  fail_unless_equals_int (c->listen_burst_ms, 60);
  fail_unless_equals_int (c->listen_soft_limit_ms, 400);
  fail_unless_equals_int (c->listen_hard_limit_ms, 4000);
  fail_unless_equals_int (c->max_listeners, 5000);
  /* main (simulated interpreters) and workshop (browser booths) */
  fail_unless_equals_int (c->rooms->len, 2);
  const DragomanRoomConfig *w = dragoman_config_find_room (c, "workshop");
  fail_unless (w != NULL && w->booths->len == 2);
  const DragomanBoothConfig *wb = find_booth (w, "hy");
  fail_unless_equals_string (wb->source, "browser");
  fail_unless_equals_string (wb->on_air, "manual");
  fail_unless_equals_int (wb->max_interpreters, 2);
  fail_unless_equals_int (wb->jitter_ms, 30);
  fail_unless (wb->token && strlen (wb->token) >= 8);
  fail_unless_equals_string (c->ice_addresses[0], "127.0.0.1");

  const DragomanRoomConfig *r = dragoman_config_find_room (c, "main");
  fail_unless (r != NULL);
  fail_unless (r == c->rooms->pdata[0]);
  fail_unless (dragoman_config_find_room (c, "nope") == NULL);
  fail_unless_equals_string (r->title, "Main hall");
  fail_unless_equals_string (r->floor_lang, "en");
  fail_unless_equals_string (r->stage, "test");
  fail_unless_equals_int (r->opus_frame_ms, 20);
  fail_unless_equals_int (r->opus_bitrate, 32000);
  fail_unless_equals_float (r->duck_db, -15.0);
  fail_unless_equals_string (g_hash_table_lookup (r->stage_vars, "ident-tone-hz"), "8000");

  const char *want[] = { "en", "hy", "az", "ru", "tr" };
  fail_unless_equals_int (g_strv_length (r->langs), G_N_ELEMENTS (want));
  for (guint i = 0; i < G_N_ELEMENTS (want); i++)
    fail_unless_equals_string (r->langs[i], want[i]);

  fail_unless_equals_int (r->booths->len, 5);
  for (guint i = 0; i < G_N_ELEMENTS (want); i++) {
    const DragomanBoothConfig *b = find_booth (r, want[i]);
    fail_unless (b != NULL, "no booth for %s", want[i]);
    fail_unless_equals_string (b->room_id, "main");
    fail_unless_equals_string (b->source, "test");
    fail_unless_equals_float (b->on_air_seconds, 12.0);
    fail_unless_equals_float (b->off_air_seconds, 4.0);
    fail_unless_equals_float (b->schedule_offset, 3.0 * i);
  }
  fail_unless_equals_string (g_hash_table_lookup (find_booth (r, "hy")->vars, "ident-tone-hz"), "9000");
  fail_unless_equals_string (find_booth (r, "hy")->on_air, "schedule");
}
GST_END_TEST;

/* browser booths need a real token; schedule is for test booths */
GST_START_TEST (test_browser_booth)
{
  const char *const no_token[] = { "booth main/en.source=browser", NULL };
  g_free (load_fail (BASE, no_token, PATH, "[booth main/en]", "token", "at least 8", NULL));
  const char *const short_token[] = { "booth main/en.source=browser", "booth main/en.token=abc", NULL };
  g_free (load_fail (BASE, short_token, PATH, "[booth main/en]", "token", NULL));
  const char *const bad_mode[] = { "booth main/en.on-air=sometimes", NULL };
  g_free (load_fail (BASE, bad_mode, PATH, "[booth main/en]", "on-air", "sometimes", NULL));
  const char *const many[] = { "booth main/en.source=browser", "booth main/en.token=12345678",
                               "booth main/en.max-interpreters=9", NULL };
  g_free (load_fail (BASE, many, PATH, "[booth main/en]", "max-interpreters", "out of range", NULL));
  const char *const admin[] = { "server.admin-token=short", NULL };
  g_free (load_fail (BASE, admin, PATH, "[server]", "admin-token", NULL));
  const char *const ok[] = { "booth main/en.source=browser", "booth main/en.token=12345678", NULL };
  g_autoptr (DragomanConfig) c = load_ok (BASE, ok);
  const DragomanBoothConfig *b = find_booth (dragoman_config_find_room (c, "main"), "en");
  fail_unless_equals_string (b->on_air, "manual");
  fail_unless_equals_int (b->max_interpreters, 2);
}
GST_END_TEST;

GST_START_TEST (test_base_loads)
{
  /* every default, from a file that sets none */
  g_autoptr (DragomanConfig) c = load_ok (BASE, NULL);
  fail_unless_equals_string (c->path, PATH);
  fail_unless_equals_string (c->address, "127.0.0.1");
  fail_unless_equals_int (c->port, 8080);
  fail_unless_equals_string (c->web_root, "web");
  fail_unless_equals_string (c->pipeline_dir, "pipelines");
  fail_unless_equals_string (c->media_dir, "build/media");
  fail_unless_equals_int (c->listen_burst_ms, 60);
  fail_unless_equals_int (c->listen_soft_limit_ms, 400);
  fail_unless_equals_int (c->listen_hard_limit_ms, 4000);
  fail_unless_equals_int (c->max_listeners, 5000);
  fail_unless_equals_int (c->rooms->len, 1);
  const DragomanRoomConfig *r = c->rooms->pdata[0];
  fail_unless_equals_string (r->id, "main");
  fail_unless_equals_string (r->title, "main");
  fail_unless_equals_string (r->floor_lang, "en");
  fail_unless_equals_string (r->stage, "test");
  fail_unless_equals_int (g_hash_table_size (r->stage_vars), 0);
  fail_unless_equals_int (r->opus_frame_ms, 20);
  fail_unless_equals_int (r->opus_bitrate, 32000);
  fail_unless_equals_float (r->duck_db, -15.0);
  fail_unless_equals_int (g_strv_length (r->langs), 2);
  fail_unless_equals_int (r->booths->len, 2);
  const DragomanBoothConfig *b = find_booth (r, "hy");
  fail_unless (b != NULL);
  fail_unless_equals_string (b->source, "test");
  fail_unless_equals_float (b->on_air_seconds, 0.0);
}
GST_END_TEST;

GST_START_TEST (test_two_rooms)
{
  /* booth groups may come before their room */
  const char *data = "[booth side/ru]\n"
                     "source = mic\n"
                     "device = hw:1\n"
                     "[room main]\n"
                     "title = Main hall\n"
                     "languages = en hy\n"
                     "[room side]\n"
                     "title = Side room\n"
                     "floor-language = hy\n"
                     "languages = en, ru;tr\n"
                     "opus-frame-ms = 10\n"
                     "opus-bitrate = 24000\n"
                     "duck-db = -6.5\n"
                     "[booth main/hy]\n"
                     "[booth side/en]\n";
  g_autoptr (DragomanConfig) c = load_ok (data, NULL);
  fail_unless_equals_int (c->rooms->len, 2);
  const DragomanRoomConfig *m = dragoman_config_find_room (c, "main");
  const DragomanRoomConfig *s = dragoman_config_find_room (c, "side");
  fail_unless (m != NULL && s != NULL && m != s);
  fail_unless_equals_string (m->title, "Main hall");
  fail_unless_equals_int (m->opus_frame_ms, 20);
  fail_unless_equals_int (m->booths->len, 1);
  fail_unless (find_booth (m, "hy") != NULL);
  fail_unless (find_booth (m, "en") == NULL);

  fail_unless_equals_string (s->title, "Side room");
  fail_unless_equals_string (s->floor_lang, "hy");
  fail_unless_equals_int (s->opus_frame_ms, 10);
  fail_unless_equals_int (s->opus_bitrate, 24000);
  fail_unless_equals_float (s->duck_db, -6.5);
  /* separators: spaces, commas and semicolons, in runs */
  fail_unless_equals_int (g_strv_length (s->langs), 3);
  fail_unless_equals_string (s->langs[0], "en");
  fail_unless_equals_string (s->langs[1], "ru");
  fail_unless_equals_string (s->langs[2], "tr");
  fail_unless_equals_int (s->booths->len, 2);
  const DragomanBoothConfig *ru = find_booth (s, "ru");
  fail_unless (ru != NULL);
  fail_unless_equals_string (ru->room_id, "side");
  fail_unless_equals_string (ru->source, "mic");
  fail_unless_equals_string (g_hash_table_lookup (ru->vars, "device"), "hw:1");
}
GST_END_TEST;

GST_START_TEST (test_unknown_group)
{
  g_autofree char *m = load_fail (BASE "[sever]\nport = 1\n", NULL, PATH, "[sever]", "unknown group", NULL);
  g_free (load_fail (BASE "[stage other]\nx = 1\n", NULL, PATH, "[stage other]", "no [room other]", NULL));
}
GST_END_TEST;

GST_START_TEST (test_unknown_key_server)
{
  g_autofree char *m = load_fail ("[server]\nprot = 8080\n" BASE, NULL, PATH, "[server]", "prot", "unknown key", NULL);
}
GST_END_TEST;

GST_START_TEST (test_unknown_key_listen)
{
  g_autofree char *m = load_fail ("[listen]\nburst = 60\n" BASE, NULL, PATH, "[listen]", "burst", "unknown key", NULL);
}
GST_END_TEST;

GST_START_TEST (test_unknown_key_room)
{
  /* the typo the policy comment in config.c is about */
  g_autofree char *m = load_fail (BASE "[room side]\nlanguages = en\nduck-db = -15\nduck_db = -15\n", NULL, PATH,
                                  "[room side]", "duck_db", "unknown key", NULL);
}
GST_END_TEST;

GST_START_TEST (test_bad_integer)
{
  g_free (load_fail ("[server]\nport = abc\n" BASE, NULL, PATH, "[server]", "port", "'abc'", "not an integer", NULL));
  g_free (load_fail ("[server]\nport = 80x\n" BASE, NULL, PATH, "[server]", "port", "'80x'", NULL));
  g_free (load_fail ("[listen]\nburst-ms =\n" BASE, NULL, PATH, "[listen]", "burst-ms", "not an integer", NULL));
  g_free (load_fail (BASE "[room side]\nopus-bitrate = 32k\n", NULL, PATH, "[room side]", "opus-bitrate",
                     "not an integer", NULL));
  g_free (load_fail (BASE "[room side]\nduck-db = loud\n", NULL, PATH, "[room side]", "duck-db", "not a number",
                     NULL));
  const char *const soon[] = { "booth main/en.on-air-seconds=soon", NULL };
  g_free (load_fail (BASE, soon, PATH, "[booth main/en]", "on-air-seconds", "not a number", NULL));
}
GST_END_TEST;

GST_START_TEST (test_out_of_range)
{
  g_free (load_fail ("[server]\nport = 70000\n" BASE, NULL, PATH, "[server]", "port", "70000", "out of range", NULL));
  g_free (load_fail ("[server]\nport = 0\n" BASE, NULL, PATH, "[server]", "port", "out of range", NULL));
  g_free (load_fail ("[listen]\nburst-ms = 500\n" BASE, NULL, PATH, "[listen]", "burst-ms", "out of range", NULL));
  g_free (load_fail ("[listen]\nmax-listeners = 0\n" BASE, NULL, PATH, "[listen]", "max-listeners",
                     "out of range", NULL));
  g_free (load_fail (BASE "[room side]\nopus-frame-ms = 40\n", NULL, PATH, "[room side]", "opus-frame-ms",
                     "out of range", NULL));
  g_free (load_fail (BASE "[room side]\nduck-db = -70\n", NULL, PATH, "[room side]", "duck-db", "out of range",
                     NULL));
  g_free (load_fail (BASE "[room side]\nduck-db = 3\n", NULL, PATH, "[room side]", "duck-db", "out of range",
                     NULL));
  /* the limits themselves are accepted */
  g_autoptr (DragomanConfig) c = load_ok ("[server]\nport = 65535\n[listen]\nburst-ms = 0\n" BASE, NULL);
  fail_unless_equals_int (c->port, 65535);
  fail_unless_equals_int (c->listen_burst_ms, 0);
}
GST_END_TEST;

GST_START_TEST (test_duplicate_language)
{
  g_autofree char *m = load_fail ("[room main]\nlanguages = en hy ru hy\n", NULL, PATH, "[room main]", "languages",
                                  "duplicate language 'hy'", NULL);
}
GST_END_TEST;

GST_START_TEST (test_unknown_language)
{
  g_free (load_fail ("[room main]\nlanguages = en xx\n", NULL, PATH, "[room main]", "languages",
                     "unknown language 'xx'", NULL));
  /* "orig" is the floor channel, never an interpretation */
  g_free (load_fail ("[room main]\nlanguages = en orig\n", NULL, PATH, "[room main]", "languages",
                     "unknown language 'orig'", NULL));
  g_free (load_fail ("[room main]\nfloor-language = klingon\n", NULL, PATH, "[room main]", "floor-language",
                     "'klingon'", NULL));
}
GST_END_TEST;

GST_START_TEST (test_booth_language_not_in_room)
{
  g_autofree char *m =
      load_fail (BASE "[booth main/ru]\n", NULL, PATH, "[booth main/ru]", "'ru'", "not in [room main]", NULL);
}
GST_END_TEST;

GST_START_TEST (test_booth_unknown_room)
{
  g_free (load_fail (BASE "[booth side/en]\n", NULL, PATH, "[booth side/en]", "unknown room 'side'", NULL));
  g_free (load_fail (BASE "[booth main]\n", NULL, PATH, "[booth main]", "[booth ROOM/LANG]", NULL));
}
GST_END_TEST;

GST_START_TEST (test_bad_ids)
{
  g_free (load_fail ("[room ma in]\nlanguages = en\n", NULL, PATH, "[room ma in]", "room id", NULL));
  const char *const traversal[] = { "booth main/en.source=../../etc/passwd", NULL };
  g_free (load_fail (BASE, traversal, PATH, "[booth main/en]", "source", "not a pipeline name", NULL));
  g_free (load_fail ("[room main]\nstage = a/b\n", NULL, PATH, "[room main]", "stage", NULL));
  fail_unless (dragoman_config_valid_id ("main-2_b"));
  fail_unless (!dragoman_config_valid_id (""));
  fail_unless (!dragoman_config_valid_id (NULL));
  fail_unless (!dragoman_config_valid_id ("a.b"));
  fail_unless (dragoman_config_valid_id ("abcdefghijklmnopqrstuvwxyz012345"));   /* 32 */
  fail_unless (!dragoman_config_valid_id ("abcdefghijklmnopqrstuvwxyz0123456")); /* 33 */
}
GST_END_TEST;

GST_START_TEST (test_missing_file)
{
  g_autoptr (GError) err = NULL;
  DragomanConfig *c = dragoman_config_load ("/nonexistent/dragoman.ini", NULL, &err);
  fail_unless (c == NULL);
  fail_unless (err != NULL);
  fail_unless (err->domain == DRAGOMAN_CONFIG_ERROR);
  fail_unless (strstr (err->message, "/nonexistent/dragoman.ini") != NULL, "%s", err->message);
  fail_unless (strstr (err->message, "cannot read") != NULL, "%s", err->message);
}
GST_END_TEST;

GST_START_TEST (test_syntax_error)
{
  g_autofree char *m = load_fail ("this is not a key file\n", NULL, PATH, NULL);
}
GST_END_TEST;

GST_START_TEST (test_no_room)
{
  g_autofree char *m = load_fail ("[server]\nport = 8080\n", NULL, PATH, "no [room", NULL);
}
GST_END_TEST;

GST_START_TEST (test_hard_limit_not_above_soft)
{
  g_free (load_fail ("[listen]\nsoft-limit-ms = 1000\nhard-limit-ms = 1000\n" BASE, NULL, PATH, "[listen]",
                     "hard-limit-ms", "greater than soft-limit-ms (1000)", NULL));
  g_free (load_fail ("[listen]\nsoft-limit-ms = 1000\nhard-limit-ms = 500\n" BASE, NULL, PATH, "[listen]",
                     "hard-limit-ms", NULL));
  /* against the default soft limit (400) too */
  g_free (load_fail ("[listen]\nhard-limit-ms = 300\n" BASE, NULL, PATH, "[listen]", "hard-limit-ms", "(400)", NULL));
  g_autoptr (DragomanConfig) c = load_ok ("[listen]\nsoft-limit-ms = 1000\nhard-limit-ms = 1001\n" BASE, NULL);
  fail_unless_equals_int (c->listen_hard_limit_ms, 1001);
}
GST_END_TEST;

GST_START_TEST (test_opus_frame_ms)
{
  g_autofree char *m = load_fail ("[room main]\nopus-frame-ms = 15\n", NULL, PATH, "[room main]", "opus-frame-ms",
                                  "must be 10 or 20", NULL);
  g_autoptr (DragomanConfig) c = load_ok ("[room main]\nopus-frame-ms = 10\n", NULL);
  fail_unless_equals_int (((DragomanRoomConfig *) c->rooms->pdata[0])->opus_frame_ms, 10);
}
GST_END_TEST;

/* the stage's picture in the booths: a size, or off; odd or silly sizes refused */
GST_START_TEST (test_booth_video)
{
  g_autoptr (DragomanConfig) c = load_ok ("[room main]\n", NULL);
  const DragomanRoomConfig *r = c->rooms->pdata[0];
  fail_unless_equals_int (r->booth_video_width, 640);
  fail_unless_equals_int (r->booth_video_height, 360);
  fail_unless_equals_int (r->booth_video_kbps, 400);
  g_autoptr (DragomanConfig) c2 = load_ok ("[room main]\nbooth-video = 320x180\nbooth-video-kbps = 200\n", NULL);
  r = c2->rooms->pdata[0];
  fail_unless_equals_int (r->booth_video_width, 320);
  fail_unless_equals_int (r->booth_video_kbps, 200);
  g_autoptr (DragomanConfig) c3 = load_ok ("[room main]\nbooth-video = off\n", NULL);
  fail_unless_equals_int (((DragomanRoomConfig *) c3->rooms->pdata[0])->booth_video_width, 0);
  const char *bad[] = { "641x360", "640x360p", "640", "big", "100x50", "4096x2160", NULL };
  for (guint i = 0; bad[i]; i++) {
    g_autofree char *data = g_strdup_printf ("[room main]\nbooth-video = %s\n", bad[i]);
    g_free (load_fail (data, NULL, PATH, "[room main]", "booth-video", bad[i], NULL));
  }
  g_free (load_fail ("[room main]\nbooth-video-kbps = 10\n", NULL, PATH, "[room main]", "booth-video-kbps",
                     "out of range", NULL));
}
GST_END_TEST;

GST_START_TEST (test_override_applied)
{
  const char *const overrides[] = { "server.port=9999", "room main.opus-frame-ms=10", "listen.burst-ms=40",
                                    "booth main/en.source=mic", NULL };
  g_autoptr (DragomanConfig) c = load_ok ("[server]\nport = 8080\n" BASE, overrides);
  fail_unless_equals_int (c->port, 9999);
  fail_unless_equals_int (c->listen_burst_ms, 40);
  const DragomanRoomConfig *r = dragoman_config_find_room (c, "main");
  fail_unless_equals_int (r->opus_frame_ms, 10);
  fail_unless_equals_string (find_booth (r, "en")->source, "mic");
  fail_unless_equals_string (find_booth (r, "hy")->source, "test");

  /* on a file, as main.c does */
  const char *const port[] = { "server.port=9090", NULL };
  g_autoptr (GError) err = NULL;
  g_autoptr (DragomanConfig) demo = dragoman_config_load ("configs/demo.ini", port, &err);
  fail_unless (demo != NULL, "%s", err ? err->message : "?");
  fail_unless_equals_int (demo->port, 9090);

  /* an override is validated like the file */
  const char *const bad[] = { "server.port=abc", NULL };
  g_autofree char *m = load_fail (BASE, bad, PATH, "[server]", "port", "'abc'", NULL);
  const char *const typo[] = { "server.prot=1", NULL };
  g_free (load_fail (BASE, typo, PATH, "[server]", "prot", "unknown key", NULL));
}
GST_END_TEST;

GST_START_TEST (test_override_malformed)
{
  const char *const specs[] = { "server.port", "port=1", ".port=1", "server.=1", "=1", "" };
  for (guint i = 0; i < G_N_ELEMENTS (specs); i++) {
    const char *const ov[] = { specs[i], NULL };
    g_autofree char *quoted = g_strdup_printf ("'%s'", specs[i]);
    g_free (load_fail (BASE, ov, "GROUP.KEY=VALUE", quoted, NULL));
  }
}
GST_END_TEST;

GST_START_TEST (test_language_lookup)
{
  struct {
    const char *code, *name, *native;
  } want[] = {
    { "hy", "Armenian", "Հայերեն" }, { "az", "Azerbaijani", "Azərbaycanca" }, { "ru", "Russian", "Русский" },
    { "tr", "Turkish", "Türkçe" },   { "en", "English", "English" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (want); i++) {
    const DragomanLanguage *l = dragoman_language_lookup (want[i].code);
    fail_unless (l != NULL, "no language %s", want[i].code);
    fail_unless_equals_string (l->code, want[i].code);
    fail_unless_equals_string (l->name, want[i].name);
    fail_unless_equals_string (l->native_name, want[i].native);
    fail_unless (g_utf8_validate (l->native_name, -1, NULL));
  }
  fail_unless (dragoman_language_lookup ("xx") == NULL);
  fail_unless (dragoman_language_lookup ("") == NULL);
  fail_unless (dragoman_language_lookup (NULL) == NULL);
  fail_unless (dragoman_language_lookup ("HY") == NULL); /* codes are matched exactly */
}
GST_END_TEST;

GST_START_TEST (test_binary_missing_config)
{
  if (!g_file_test ("build/dragoman", G_FILE_TEST_IS_EXECUTABLE)) {
    GST_WARNING ("build/dragoman not built: skipping");
    return;
  }
  char *argv[] = { "build/dragoman", "--config", "/nonexistent.ini", NULL };
  g_autofree char *out = NULL, *errout = NULL;
  int status = 0;
  g_autoptr (GError) err = NULL;
  fail_unless (g_spawn_sync (NULL, argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out, &errout, &status, &err), "%s",
               err ? err->message : "?");
  fail_unless (WIFEXITED (status), "dragoman did not exit normally (status %d)", status);
  fail_unless_equals_int (WEXITSTATUS (status), 2);
  fail_unless (strstr (errout, "/nonexistent.ini") != NULL, "stderr does not name the file: %s", errout);
}
GST_END_TEST;

/* GKeyFile merges groups that appear twice (later keys win); config.c refuses
 * repeated groups and repeated keys, naming the line. */
GST_START_TEST (test_record_and_restreams)
{
  g_autoptr (DragomanConfig) c = load_ok (BASE "[record main]\ndir = /tmp/x\nsplit-minutes = 30\naudio-only = true\n"
                                               "[restream yt]\nroom = main\nlang = hy\nurl = rtmp://h/live\nkey = k123\n"
                                               "[restream partner]\nroom = main\nurl = srt://h:9001\nautostart = true\n",
                                          NULL);
  const DragomanRoomConfig *r = c->rooms->pdata[0];
  fail_unless (r->record != NULL);
  fail_unless_equals_string (r->record->dir, "/tmp/x");
  fail_unless_equals_int (r->record->split_minutes, 30);
  fail_unless (r->record->audio_only && !r->record->autostart);
  fail_unless_equals_int (c->restreams->len, 2);
  const DragomanRestreamConfig *yt = c->restreams->pdata[0], *p = c->restreams->pdata[1];
  fail_unless_equals_string (yt->lang, "hy");
  fail_unless_equals_string (yt->key, "k123");
  fail_unless (!yt->autostart);
  fail_unless_equals_string (p->lang, "orig"); /* default: the floor */
  fail_unless (p->key == NULL && p->autostart);
}

GST_END_TEST;

GST_START_TEST (test_output_errors)
{
  g_free (load_fail (BASE "[record nowhere]\n", NULL, "[record nowhere]", "no [room nowhere]", NULL));
  g_free (load_fail (BASE "[record main]\nsplit-minutes = 0\n", NULL, "split-minutes", NULL));
  g_free (load_fail (BASE "[record main]\nautostart = yes\n", NULL, "autostart", "true or false", NULL));
  g_free (load_fail (BASE "[restream a]\nurl = rtmp://h/live\nkey = k\n", NULL, "[restream a]", "room", NULL));
  g_free (load_fail (BASE "[restream a]\nroom = main\nlang = ru\nurl = rtmp://h/live\nkey = k\n", NULL, "lang",
                     "'ru'", NULL));
  g_free (load_fail (BASE "[restream a]\nroom = main\nurl = http://h/live\nkey = k\n", NULL, "url", NULL));
  g_free (load_fail (BASE "[restream a]\nroom = main\nurl = rtmp://h/live\n", NULL, "key", "stream key", NULL));
  g_free (load_fail (BASE "[restream a]\nroom = main\nurl = srt://h:1\nkey = k\n", NULL, "key", NULL));
  g_free (load_fail (BASE "[restream a]\nroom = main\nurl = rtmp://h/live\nkey = k\nbitrate = 5\n", NULL,
                     "bitrate", NULL));
}

GST_END_TEST;

/* [publish nchan]: the edge publisher */
GST_START_TEST (test_publish)
{
  g_autoptr (DragomanConfig) none = load_ok (BASE, NULL);
  fail_unless (none->publish == NULL);
  g_autoptr (DragomanConfig) c = load_ok (BASE "[publish nchan]\nurl = wss://edge.example.org/pubws\ntoken = s3cret\n", NULL);
  fail_unless (c->publish != NULL);
  fail_unless_equals_string (c->publish->url, "wss://edge.example.org/pubws");
  fail_unless_equals_string (c->publish->token, "s3cret");
  fail_unless (!c->publish->tls_insecure);
  g_free (load_fail (BASE "[publish redis]\nurl = ws://h/pubws\n", NULL, "[publish redis]", "nchan", NULL));
  g_free (load_fail (BASE "[publish nchan]\n", NULL, "url", NULL));
  g_free (load_fail (BASE "[publish nchan]\nurl = http://h/pub\n", NULL, "url", "ws://", NULL));
  /* dragoman adds ?room=R&lang=L itself */
  g_free (load_fail (BASE "[publish nchan]\nurl = ws://h/pubws?room=x\n", NULL, "url", NULL));
  g_free (load_fail (BASE "[publish nchan]\nurl = ws://h/pubws\nchannel = x\n", NULL, "channel", NULL));
}

GST_END_TEST;

GST_START_TEST (test_duplicate_booth)
{
  g_autofree char *m = load_fail (BASE "[booth main/en]\nsource = mic\n", NULL, PATH, "[booth main/en]",
                                  "appears twice", NULL);
  g_autofree char *k = load_fail (BASE "[listen]\nburst-ms = 20\nburst-ms = 40\n", NULL, PATH, "[listen]",
                                  "burst-ms", "appears twice", NULL);
}
GST_END_TEST;

/* parse_access (): the flood caps, CORS and viewer tokens */
GST_START_TEST (test_access)
{
  g_autoptr (DragomanConfig) c = load_ok (BASE, NULL);
  fail_unless_equals_int (c->max_connections, 5000 + 1000); /* derived from max-listeners */
  fail_unless_equals_int (c->max_connections_per_address, 4000);
  fail_unless (c->cors_origins && !c->cors_origins[0]); /* same-origin only */
  fail_unless (((DragomanRoomConfig *) c->rooms->pdata[0])->viewer_token == NULL);
  g_free (load_fail ("[server]\nmax-connections = 100\n[listen]\nmax-listeners = 200\n" BASE, NULL, PATH, "[server]",
                     "max-connections", "below [listen] max-listeners (200)", NULL));
  g_free (load_fail ("[server]\ncors-origins = https://a.example/path\n" BASE, NULL, PATH, "[server]", "cors-origins",
                     "not an origin", NULL));
  g_free (load_fail ("[server]\ncors-origins = * https://a.example\n" BASE, NULL, PATH, "[server]", "cors-origins",
                     "no others", NULL));
  const char *const bad_token[] = { "room main.viewer-token=has space in it", NULL };
  g_autofree char *m = load_fail (BASE, bad_token, PATH, "[room main]", "viewer-token", "URLs", NULL);
  fail_unless (strstr (m, "has space") == NULL, "the message quotes the token: %s", m);
  const char *const good[] = { "server.cors-origins=https://Paid.Example, http://127.0.0.1:8080",
                               "room main.viewer-token=ticket-2026_A", "server.max-connections-per-address=0",
                               NULL };
  g_autoptr (DragomanConfig) d = load_ok (BASE, good);
  fail_unless_equals_string (d->cors_origins[0], "https://paid.example");
  fail_unless_equals_string (d->cors_origins[1], "http://127.0.0.1:8080");
  fail_unless (d->cors_origins[2] == NULL);
  fail_unless_equals_int (d->max_connections_per_address, 0);
  fail_unless_equals_string (((DragomanRoomConfig *) d->rooms->pdata[0])->viewer_token, "ticket-2026_A");
  /* SIGHUP: a new viewer token rotates in, and a removed one opens the room */
  fail_unless_equals_int (dragoman_config_rotate_tokens (c, d), 1);
  fail_unless_equals_string (((DragomanRoomConfig *) c->rooms->pdata[0])->viewer_token, "ticket-2026_A");
  g_autoptr (DragomanConfig) e = load_ok (BASE, NULL);
  fail_unless_equals_int (dragoman_config_rotate_tokens (c, e), 1);
  fail_unless (((DragomanRoomConfig *) c->rooms->pdata[0])->viewer_token == NULL);
}
GST_END_TEST;

static Suite *
config_suite (void)
{
  Suite *s = suite_create ("config");
  TCase *tc = tcase_create ("general");
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_demo_ini);
  tcase_add_test (tc, test_record_and_restreams);
  tcase_add_test (tc, test_publish);
  tcase_add_test (tc, test_output_errors);
  tcase_add_test (tc, test_base_loads);
  tcase_add_test (tc, test_two_rooms);
  tcase_add_test (tc, test_unknown_group);
  tcase_add_test (tc, test_unknown_key_server);
  tcase_add_test (tc, test_unknown_key_listen);
  tcase_add_test (tc, test_unknown_key_room);
  tcase_add_test (tc, test_bad_integer);
  tcase_add_test (tc, test_out_of_range);
  tcase_add_test (tc, test_access);
  tcase_add_test (tc, test_duplicate_language);
  tcase_add_test (tc, test_unknown_language);
  tcase_add_test (tc, test_booth_language_not_in_room);
  tcase_add_test (tc, test_booth_unknown_room);
  tcase_add_test (tc, test_bad_ids);
  tcase_add_test (tc, test_missing_file);
  tcase_add_test (tc, test_syntax_error);
  tcase_add_test (tc, test_no_room);
  tcase_add_test (tc, test_hard_limit_not_above_soft);
  tcase_add_test (tc, test_opus_frame_ms);
  tcase_add_test (tc, test_override_applied);
  tcase_add_test (tc, test_override_malformed);
  tcase_add_test (tc, test_language_lookup);
  tcase_add_test (tc, test_binary_missing_config);
  tcase_add_test (tc, test_duplicate_booth);
  tcase_add_test (tc, test_browser_booth);
  tcase_add_test (tc, test_booth_video);
  return s;
}

GST_CHECK_MAIN (config);
