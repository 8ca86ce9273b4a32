/* config — parse and validate the key file.
 *
 * Policy: be strict. An unknown group or key is an error, not a warning: a typo
 * in "duck-db" at a live event would otherwise silently leave the floor loud. */
#include "config.h"

#include <glib/gstdio.h>
#include <unistd.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Languages we know the native name of. Extend freely; codes are BCP-47. */
static const DragomanLanguage languages[] = {
  { "orig", "Original", "Original" },
  { "en", "English", "English" },
  { "hy", "Armenian", "Հայերեն" },
  { "az", "Azerbaijani", "Azərbaycanca" },
  { "ru", "Russian", "Русский" },
  { "tr", "Turkish", "Türkçe" },
  { "ka", "Georgian", "ქართული" },
  { "uk", "Ukrainian", "Українська" },
  { "de", "German", "Deutsch" },
  { "fr", "French", "Français" },
  { "es", "Spanish", "Español" },
  { "ar", "Arabic", "العربية" },
  { "fa", "Persian", "فارسی" },
  { "zh", "Chinese", "中文" },
};

const DragomanLanguage *
dragoman_language_lookup (const char *code)
{
  for (guint i = 0; i < G_N_ELEMENTS (languages); i++)
    if (g_strcmp0 (languages[i].code, code) == 0)
      return &languages[i];
  return NULL;
}

static const char *const server_keys[] = { "address", "port",        "web-root", "pipelines",
                                           "media",   "admin-token", "hls-dir",  "tls-cert",
                                           "tls-key", "redirect-http",
                                           /* parse_access () */
                                           "max-connections", "max-connections-per-address", "cors-origins", NULL };
static const char *const webrtc_keys[] = { "stun-server", "turn-server", "ice-addresses", NULL };
static const char *const listen_keys[] = { "burst-ms", "soft-limit-ms", "hard-limit-ms", "max-listeners", NULL };
static const char *const room_keys[] = { "title", "floor-language", "languages", "stage", "opus-frame-ms",
                                         "opus-bitrate", "duck-db", "hls", "hls-segment-seconds", "hls-window",
                                         "booth-video", "booth-video-kbps",
                                         "viewer-token" /* parse_access () */, NULL };
/* stage-* and booth sources may add their own keys: they become ${vars} */

typedef struct {
  GKeyFile *kf;
  const char *path;
  GError **error;
} Parser;

static gboolean
fail (Parser *p, const char *group, const char *key, const char *fmt, ...) G_GNUC_PRINTF (4, 5);

static gboolean
fail (Parser *p, const char *group, const char *key, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  if (key)
    g_set_error (p->error, DRAGOMAN_CONFIG_ERROR, 1, "%s: [%s] %s: %s", p->path, group, key, msg);
  else
    g_set_error (p->error, DRAGOMAN_CONFIG_ERROR, 1, "%s: [%s]: %s", p->path, group, msg);
  return FALSE;
}

static gboolean
check_keys (Parser *p, const char *group, const char *const *allowed)
{
  g_auto (GStrv) keys = g_key_file_get_keys (p->kf, group, NULL, NULL);
  for (guint i = 0; keys && keys[i]; i++)
    if (!g_strv_contains (allowed, keys[i]))
      return fail (p, group, keys[i], "unknown key");
  return TRUE;
}

static char *
get_string (Parser *p, const char *group, const char *key, const char *def)
{
  if (!g_key_file_has_key (p->kf, group, key, NULL))
    return g_strdup (def);
  return g_strstrip (g_key_file_get_string (p->kf, group, key, NULL));
}

static gboolean
get_int (Parser *p, const char *group, const char *key, int def, int min, int max, int *out)
{
  g_autofree char *s = get_string (p, group, key, NULL);
  if (!s) {
    *out = def;
    return TRUE;
  }
  char *end = NULL;
  errno = 0;
  long v = strtol (s, &end, 10);
  if (errno || end == s || *end != '\0')
    return fail (p, group, key, "'%s' is not an integer", s);
  if (v < min || v > max)
    return fail (p, group, key, "%ld is out of range [%d, %d]", v, min, max);
  *out = (int) v;
  return TRUE;
}

static gboolean
get_double (Parser *p, const char *group, const char *key, double def, double min, double max, double *out)
{
  g_autofree char *s = get_string (p, group, key, NULL);
  if (!s) {
    *out = def;
    return TRUE;
  }
  char *end = NULL;
  double v = g_ascii_strtod (s, &end);
  if (end == s || *end != '\0')
    return fail (p, group, key, "'%s' is not a number", s);
  if (v < min || v > max)
    return fail (p, group, key, "%g is out of range [%g, %g]", v, min, max);
  *out = v;
  return TRUE;
}

static gboolean
get_bool (Parser *p, const char *group, const char *key, gboolean def, gboolean *out)
{
  g_autofree char *s = get_string (p, group, key, def ? "true" : "false");
  if (!g_str_equal (s, "true") && !g_str_equal (s, "false"))
    return fail (p, group, key, "'%s' is not true or false", s);
  *out = g_str_equal (s, "true");
  return TRUE;
}

static GHashTable *
group_vars (Parser *p, const char *group)
{
  GHashTable *vars = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_auto (GStrv) keys = g_key_file_get_keys (p->kf, group, NULL, NULL);
  for (guint i = 0; keys && keys[i]; i++)
    g_hash_table_insert (vars, g_strdup (keys[i]), get_string (p, group, keys[i], ""));
  return vars;
}

gboolean
dragoman_config_valid_id (const char *s)
{
  if (!s || !*s || strlen (s) > 32)
    return FALSE;
  for (; *s; s++)
    if (!g_ascii_isalnum (*s) && *s != '-' && *s != '_')
      return FALSE;
  return TRUE;
}

static void
room_free (gpointer data)
{
  DragomanRoomConfig *r = data;
  g_free (r->id);
  g_free (r->title);
  g_free (r->floor_lang);
  g_free (r->stage);
  g_free (r->viewer_token);
  g_clear_pointer (&r->stage_vars, g_hash_table_unref);
  g_strfreev (r->langs);
  g_ptr_array_unref (r->booths);
  if (r->record)
    g_free (r->record->dir);
  g_free (r->record);
  g_free (r);
}

static void
restream_free (gpointer data)
{
  DragomanRestreamConfig *r = data;
  g_free (r->name);
  g_free (r->room_id);
  g_free (r->lang);
  g_free (r->url);
  g_free (r->key);
  g_free (r);
}

static const char *const record_keys[] = { "dir", "split-minutes", "autostart", "audio-only", NULL };
static const char *const restream_keys[] = { "room", "lang", "url", "key", "autostart", NULL };

static gboolean
parse_record (Parser *p, DragomanConfig *c, const char *group, const char *id)
{
  DragomanRoomConfig *r = (DragomanRoomConfig *) dragoman_config_find_room (c, id);
  if (!r)
    return fail (p, group, NULL, "no [room %s] to record", id);
  if (!check_keys (p, group, record_keys))
    return FALSE;
  DragomanRecordConfig *rec = r->record = g_new0 (DragomanRecordConfig, 1);
  rec->dir = get_string (p, group, "dir", "recordings");
  /* an hour: a file per session or so, and what a crash can cost at most is
   * bounded by the muxer's clusters (seconds), not by this */
  return get_int (p, group, "split-minutes", 60, 1, 24 * 60, &rec->split_minutes) &&
         get_bool (p, group, "autostart", FALSE, &rec->autostart) &&
         get_bool (p, group, "audio-only", FALSE, &rec->audio_only);
}

static gboolean
parse_restream (Parser *p, DragomanConfig *c, const char *group, const char *name)
{
  if (!dragoman_config_valid_id (name))
    return fail (p, group, NULL, "restream name '%s' must be 1-32 letters, digits, '-' or '_'", name);
  if (!check_keys (p, group, restream_keys))
    return FALSE;
  DragomanRestreamConfig *rs = g_new0 (DragomanRestreamConfig, 1);
  g_ptr_array_add (c->restreams, rs);
  rs->name = g_strdup (name);
  rs->room_id = get_string (p, group, "room", NULL);
  const DragomanRoomConfig *r = rs->room_id ? dragoman_config_find_room (c, rs->room_id) : NULL;
  if (!r)
    return fail (p, group, "room", rs->room_id ? "unknown room '%s'" : "missing: which room to restream%s",
                 rs->room_id ? rs->room_id : "");
  rs->lang = get_string (p, group, "lang", "orig");
  if (!g_str_equal (rs->lang, "orig") && !g_strv_contains ((const char *const *) r->langs, rs->lang))
    return fail (p, group, "lang", "'%s' is not orig nor in [room %s] languages", rs->lang, r->id);
  rs->url = get_string (p, group, "url", NULL);
  if (!rs->url || !(g_str_has_prefix (rs->url, "rtmp://") || g_str_has_prefix (rs->url, "rtmps://") ||
                    g_str_has_prefix (rs->url, "srt://")))
    return fail (p, group, "url", "must be rtmp://, rtmps:// or srt://HOST:PORT");
  rs->key = get_string (p, group, "key", NULL);
  if (rs->key && !*rs->key)
    g_clear_pointer (&rs->key, g_free);
  if (g_str_has_prefix (rs->url, "rtmp") && !rs->key)
    return fail (p, group, "key", "an RTMP restream needs the platform's stream key");
  if (g_str_has_prefix (rs->url, "srt://") && rs->key)
    return fail (p, group, "key", "an SRT output takes no key (a passphrase goes in the url)");
  for (guint i = 0; i + 1 < c->restreams->len; i++)
    if (g_str_equal (((DragomanRestreamConfig *) c->restreams->pdata[i])->name, name))
      return fail (p, group, NULL, "duplicate restream '%s'", name);
  return get_bool (p, group, "autostart", FALSE, &rs->autostart);
}

static const char *const publish_keys[] = { "url", "token", "tls-insecure", NULL };

static gboolean
parse_publish (Parser *p, DragomanConfig *c, const char *group, const char *name)
{
  if (!g_str_equal (name, "nchan"))
    return fail (p, group, NULL, "unknown publisher '%s' (the one there is: [publish nchan])", name);
  if (!check_keys (p, group, publish_keys))
    return FALSE;
  DragomanPublishConfig *pub = c->publish = g_new0 (DragomanPublishConfig, 1);
  pub->url = get_string (p, group, "url", NULL);
  const char *u = pub->url;
  if (!u || !(g_str_has_prefix (u, "ws://") || g_str_has_prefix (u, "wss://")) || strchr (u, '?') ||
      strchr (u, '#') || strchr (u, ' '))
    return fail (p, group, "url", "must be ws:// or wss://HOST[:PORT]/PATH (dragoman adds ?room=R&lang=L)");
  pub->token = get_string (p, group, "token", NULL);
  if (pub->token && !*pub->token)
    g_clear_pointer (&pub->token, g_free);
  if (pub->token && strpbrk (pub->token, "\r\n"))
    return fail (p, group, "token", "must be one line");
  return get_bool (p, group, "tls-insecure", FALSE, &pub->tls_insecure);
}

static void
booth_free (gpointer data)
{
  DragomanBoothConfig *b = data;
  g_free (b->room_id);
  g_free (b->lang);
  g_free (b->source);
  g_free (b->on_air);
  g_free (b->token);
  g_clear_pointer (&b->vars, g_hash_table_unref);
  g_free (b);
}

static gboolean
parse_room (Parser *p, DragomanConfig *c, const char *group, const char *id)
{
  DragomanRoomConfig *r = g_new0 (DragomanRoomConfig, 1);
  r->booths = g_ptr_array_new_with_free_func (booth_free);
  g_ptr_array_add (c->rooms, r);
  r->id = g_strdup (id);
  if (!dragoman_config_valid_id (id))
    return fail (p, group, NULL, "room id '%s' must be 1-32 letters, digits, '-' or '_'", id);
  if (dragoman_config_find_room (c, id) != r)
    return fail (p, group, NULL, "duplicate room '%s'", id);

  g_autofree char *stage_group = g_strdup_printf ("stage %s", id);
  if (!check_keys (p, group, room_keys))
    return FALSE;
  r->title = get_string (p, group, "title", id);
  r->floor_lang = get_string (p, group, "floor-language", "en");
  if (!dragoman_language_lookup (r->floor_lang) || g_str_equal (r->floor_lang, "orig"))
    return fail (p, group, "floor-language", "unknown language '%s'", r->floor_lang);
  r->stage = get_string (p, group, "stage", "test");
  if (!dragoman_config_valid_id (r->stage))
    return fail (p, group, "stage", "'%s' is not a pipeline name", r->stage);
  r->stage_vars = g_key_file_has_group (p->kf, stage_group) ? group_vars (p, stage_group)
                                                             : g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  if (!get_int (p, group, "opus-frame-ms", 20, 10, 20, &r->opus_frame_ms))
    return FALSE;
  if (r->opus_frame_ms != 10 && r->opus_frame_ms != 20)
    return fail (p, group, "opus-frame-ms", "must be 10 or 20");
  if (!get_int (p, group, "opus-bitrate", 32000, 6000, 256000, &r->opus_bitrate))
    return FALSE;
  if (!get_double (p, group, "duck-db", -15.0, -60.0, 0.0, &r->duck_db))
    return FALSE;
  g_autofree char *hls = get_string (p, group, "hls", "true");
  if (!g_str_equal (hls, "true") && !g_str_equal (hls, "false"))
    return fail (p, group, "hls", "'%s' is not true or false", hls);
  r->hls = g_str_equal (hls, "true");
  if (!get_int (p, group, "hls-segment-seconds", 2, 1, 10, &r->hls_segment_seconds) ||
      !get_int (p, group, "hls-window", 6, 3, 100, &r->hls_window))
    return FALSE;
  /* the stage's picture in the browser booths: "off" or WIDTHxHEIGHT (booth_video.c) */
  g_autofree char *bv = get_string (p, group, "booth-video", "640x360");
  char extra;
  if (!g_str_equal (bv, "off") &&
      (sscanf (bv, "%dx%d%c", &r->booth_video_width, &r->booth_video_height, &extra) != 2 ||
       r->booth_video_width < 160 || r->booth_video_width > 1920 || r->booth_video_height < 90 ||
       r->booth_video_height > 1080 || r->booth_video_width % 2 || r->booth_video_height % 2))
    return fail (p, group, "booth-video", "'%s' is not off or an even WIDTHxHEIGHT from 160x90 to 1920x1080", bv);
  if (!get_int (p, group, "booth-video-kbps", 400, 50, 4000, &r->booth_video_kbps))
    return FALSE;

  g_autofree char *langs = get_string (p, group, "languages", "");
  r->langs = g_strsplit_set (langs, " ,;", -1);
  /* drop the empty strings that runs of separators leave */
  guint n = 0;
  for (guint i = 0; r->langs[i]; i++) {
    if (*r->langs[i])
      r->langs[n++] = r->langs[i];
    else
      g_free (r->langs[i]);
  }
  r->langs[n] = NULL;
  for (guint i = 0; i < n; i++) {
    if (!dragoman_language_lookup (r->langs[i]) || g_str_equal (r->langs[i], "orig"))
      return fail (p, group, "languages", "unknown language '%s'", r->langs[i]);
    for (guint j = 0; j < i; j++)
      if (g_str_equal (r->langs[i], r->langs[j]))
        return fail (p, group, "languages", "duplicate language '%s'", r->langs[i]);
  }
  return TRUE;
}

static gboolean
parse_booth (Parser *p, DragomanConfig *c, const char *group, const char *spec)
{
  g_auto (GStrv) parts = g_strsplit (spec, "/", 2);
  if (!parts[0] || !parts[1])
    return fail (p, group, NULL, "booth groups are named [booth ROOM/LANG]");
  DragomanRoomConfig *r = (DragomanRoomConfig *) dragoman_config_find_room (c, parts[0]);
  if (!r)
    return fail (p, group, NULL, "unknown room '%s'", parts[0]);
  if (!g_strv_contains ((const char *const *) r->langs, parts[1]))
    return fail (p, group, NULL, "language '%s' is not in [room %s] languages", parts[1], r->id);
  for (guint i = 0; i < r->booths->len; i++)
    if (g_str_equal (((DragomanBoothConfig *) r->booths->pdata[i])->lang, parts[1]))
      return fail (p, group, NULL, "duplicate booth '%s'", spec);

  DragomanBoothConfig *b = g_new0 (DragomanBoothConfig, 1);
  g_ptr_array_add (r->booths, b);
  b->room_id = g_strdup (parts[0]);
  b->lang = g_strdup (parts[1]);
  b->source = get_string (p, group, "source", "test");
  if (!dragoman_config_valid_id (b->source))
    return fail (p, group, "source", "'%s' is not a pipeline name", b->source);
  b->vars = group_vars (p, group);
  if (!get_double (p, group, "on-air-seconds", 0, 0, 86400, &b->on_air_seconds) ||
      !get_double (p, group, "off-air-seconds", 0, 0, 86400, &b->off_air_seconds) ||
      !get_double (p, group, "schedule-offset", 0, 0, 86400, &b->schedule_offset))
    return FALSE;
  /* test booths follow their schedule (or are always on); a hardware booth is
   * live while its console sends audio, unless the crew switches it by hand */
  gboolean scheduled = b->on_air_seconds > 0 && b->off_air_seconds > 0;
  /* browser booths: the interpreter presses ON AIR, never the microphone's first sound */
  const char *def = g_str_equal (b->source, "test")      ? (scheduled ? "schedule" : "always")
                    : g_str_equal (b->source, "browser") ? "manual"
                                                         : "signal";
  b->on_air = get_string (p, group, "on-air", def);
  const char *const modes[] = { "schedule", "always", "signal", "manual", NULL };
  if (!g_strv_contains (modes, b->on_air))
    return fail (p, group, "on-air", "'%s' is not one of schedule, always, signal, manual", b->on_air);
  if (g_str_equal (b->on_air, "schedule") && !scheduled)
    return fail (p, group, "on-air", "schedule needs on-air-seconds and off-air-seconds");
  /* two interpreters per booth is the profession's norm (they swap every ~30 min) */
  if (!get_int (p, group, "max-interpreters", 2, 1, 8, &b->max_interpreters))
    return FALSE;
  /* 30 ms rides out home broadband's usual jitter; lower it on a wired LAN */
  if (!get_int (p, group, "jitter-ms", 30, 0, 1000, &b->jitter_ms))
    return FALSE;
  b->token = get_string (p, group, "token", NULL);
  if (g_str_equal (b->source, "browser") && (!b->token || strlen (b->token) < 8))
    return fail (p, group, "token", "a browser booth needs a token of at least 8 characters");
  if (g_str_equal (b->on_air, "schedule") && g_str_equal (b->source, "browser"))
    return fail (p, group, "on-air", "browser booths are put on air by their interpreters");
  return TRUE;
}

/* a name GKeyFile takes: it ignores any other, with a critical, in g_key_file_set_string () */
static gboolean
valid_name (const char *s)
{
  if (!*s || *s == ' ' || s[strlen (s) - 1] == ' ')
    return FALSE;
  for (; *s; s++)
    if (*s == '[' || *s == ']' || g_ascii_iscntrl (*s))
      return FALSE;
  return TRUE;
}

static gboolean
apply_override (Parser *p, const char *spec)
{
  const char *eq = strchr (spec, '=');
  g_autofree char *lhs = eq ? g_strndup (spec, eq - spec) : NULL;
  char *dot = lhs ? strrchr (lhs, '.') : NULL;
  if (dot)
    *dot = '\0';
  if (!dot || !valid_name (lhs) || !valid_name (dot + 1)) {
    g_set_error (p->error, DRAGOMAN_CONFIG_ERROR, 1, "--set '%s': expected GROUP.KEY=VALUE", spec);
    return FALSE;
  }
  g_key_file_set_string (p->kf, lhs, dot + 1, eq + 1);
  return TRUE;
}

/* Every value as GKeyFile will read it, before anything reads one. A value that is not
 * UTF-8 (a file saved as Latin-1) reads as NULL and get_string () let the default stand
 * in: a passphrase "passwörd" in Latin-1 turned the SRT stage's encryption off. A bad
 * escape ("C:\dir\") reads as something else than what was written, with a GLib warning.
 * Our messages, not GKeyFile's: it quotes the value, which may be a token. */
static gboolean
check_values (Parser *p)
{
  g_auto (GStrv) groups = g_key_file_get_groups (p->kf, NULL);
  for (guint i = 0; groups[i]; i++) {
    g_auto (GStrv) keys = g_key_file_get_keys (p->kf, groups[i], NULL, NULL);
    for (guint k = 0; keys && keys[k]; k++) {
      g_autofree char *raw = g_key_file_get_value (p->kf, groups[i], keys[k], NULL);
      if (!raw || !g_utf8_validate (raw, -1, NULL))
        return fail (p, groups[i], keys[k], "the value is not UTF-8 (save the file as UTF-8)");
      for (const char *s = raw; *s; s++)
        if (*s == '\\' && (!*++s || !strchr ("sntr\\", *s)))
          return fail (p, groups[i], keys[k], "a backslash starts \\\\, \\s, \\n, \\t or \\r: write \\\\ for one");
    }
  }
  return TRUE;
}

/* Access: the connection caps, the CORS allow-list and the rooms' viewer tokens
 * (issue #8). Kept apart from the rest of parse () so that each policy reads in
 * one place; every default is explained in configs/conference.ini. */
static gboolean
parse_access (Parser *p, DragomanConfig *c)
{
  const char *g = "server";
  /* 0: derived from max-listeners: every listener holds one socket, and 1,000 more
   * cover page loads, HLS players, booths and the crew while the hall is full */
  if (!get_int (p, g, "max-connections", 0, 0, 200000, &c->max_connections) ||
      !get_int (p, g, "max-connections-per-address", 4000, 0, 200000, &c->max_connections_per_address))
    return FALSE;
  if (c->max_connections == 0)
    c->max_connections = c->max_listeners + 1000;
  else if (c->max_connections < c->max_listeners)
    return fail (p, g, "max-connections", "%d is below [listen] max-listeners (%d): listeners would be refused "
                 "as a flood before the server is full", c->max_connections, c->max_listeners);

  g_autofree char *cors = get_string (p, g, "cors-origins", "");
  g_auto (GStrv) origins = g_strsplit_set (g_strstrip (cors), " ,;", -1);
  GPtrArray *list = g_ptr_array_new ();
  for (guint i = 0; origins[i]; i++) {
    const char *o = origins[i];
    if (!*o)
      continue;
    /* an origin is scheme://host[:port], exactly what a browser sends: no path, no slash */
    const char *host = g_str_has_prefix (o, "https://") ? o + 8 : g_str_has_prefix (o, "http://") ? o + 7 : NULL;
    if (!g_str_equal (o, "*") && (!host || !*host || strpbrk (host, "/?#*@") || strlen (o) > 200)) {
      g_ptr_array_free (list, TRUE);
      return fail (p, g, "cors-origins", "'%s' is not an origin (https://host[:port]) or *", o);
    }
    g_ptr_array_add (list, g_ascii_strdown (o, -1));
  }
  g_ptr_array_add (list, NULL);
  c->cors_origins = (char **) g_ptr_array_free (list, FALSE);
  if (g_strv_contains ((const char *const *) c->cors_origins, "*") && g_strv_length (c->cors_origins) > 1)
    return fail (p, g, "cors-origins", "* allows every origin: list no others beside it");

  for (guint i = 0; i < c->rooms->len; i++) {
    DragomanRoomConfig *r = c->rooms->pdata[i];
    g_autofree char *group = g_strdup_printf ("room %s", r->id);
    r->viewer_token = get_string (p, group, "viewer-token", NULL);
    if (r->viewer_token && !*r->viewer_token)
      g_clear_pointer (&r->viewer_token, g_free); /* "viewer-token =" : open, as if absent */
    /* it travels in URLs (the WebSocket's and every HLS segment's): URL-safe characters only */
    if (r->viewer_token && (strlen (r->viewer_token) < 8 || strlen (r->viewer_token) > 128 ||
                            strspn (r->viewer_token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                                     "0123456789-._~") != strlen (r->viewer_token)))
      return fail (p, group, "viewer-token", "must be 8-128 of A-Z a-z 0-9 - . _ ~ (it goes into URLs)");
  }
  return TRUE;
}

static DragomanConfig *
parse (Parser *p, const char *const *overrides)
{
  for (guint i = 0; overrides && overrides[i]; i++)
    if (!apply_override (p, overrides[i]))
      return NULL;
  if (!check_values (p))
    return NULL;

  g_autoptr (DragomanConfig) c = g_new0 (DragomanConfig, 1);
  c->path = g_strdup (p->path);
  c->rooms = g_ptr_array_new_with_free_func (room_free);
  c->restreams = g_ptr_array_new_with_free_func (restream_free);

  const char *g = "server";
  if (!check_keys (p, g, server_keys))
    return NULL;
  c->address = get_string (p, g, "address", "127.0.0.1");
  c->web_root = get_string (p, g, "web-root", "web");
  c->pipeline_dir = get_string (p, g, "pipelines", "pipelines");
  c->media_dir = get_string (p, g, "media", "build/media");
  c->hls_dir = get_string (p, g, "hls-dir", "build/hls");
  if (!get_int (p, g, "port", 8080, 1, 65535, &c->port))
    return NULL;
  /* TLS: both files or neither; checked here so a typo is a config error naming the key,
   * not lws's "cannot create context" after the pipelines have started */
  c->tls_cert = get_string (p, g, "tls-cert", NULL);
  c->tls_key = get_string (p, g, "tls-key", NULL);
  if (c->tls_cert && !*c->tls_cert)
    g_clear_pointer (&c->tls_cert, g_free);
  if (c->tls_key && !*c->tls_key)
    g_clear_pointer (&c->tls_key, g_free);
  if (!c->tls_cert != !c->tls_key) {
    fail (p, g, c->tls_cert ? "tls-key" : "tls-cert", "tls-cert and tls-key go together (make certs creates both)");
    return NULL;
  }
  const char *tls_files[][2] = { { "tls-cert", c->tls_cert }, { "tls-key", c->tls_key } };
  for (guint k = 0; k < G_N_ELEMENTS (tls_files); k++)
    if (tls_files[k][1] && g_access (tls_files[k][1], R_OK) != 0) {
      fail (p, g, tls_files[k][0], "cannot read %s: %s", tls_files[k][1], g_strerror (errno));
      return NULL;
    }
  g_autofree char *redirect = get_string (p, g, "redirect-http", "true");
  if (!g_str_equal (redirect, "true") && !g_str_equal (redirect, "false")) {
    fail (p, g, "redirect-http", "'%s' is not true or false", redirect);
    return NULL;
  }
  c->redirect_http = g_str_equal (redirect, "true");

  g = "listen";
  if (!check_keys (p, g, listen_keys))
    return NULL;
  if (!get_int (p, g, "burst-ms", 60, 0, 200, &c->listen_burst_ms) ||
      !get_int (p, g, "soft-limit-ms", 400, 60, 5000, &c->listen_soft_limit_ms) ||
      !get_int (p, g, "hard-limit-ms", 4000, 200, 20000, &c->listen_hard_limit_ms) ||
      !get_int (p, g, "max-listeners", 5000, 1, 100000, &c->max_listeners))
    return NULL;
  c->admin_token = get_string (p, "server", "admin-token", NULL);
  if (c->admin_token && strlen (c->admin_token) < 8) {
    fail (p, "server", "admin-token", "must be at least 8 characters");
    return NULL;
  }
  g = "webrtc";
  if (!check_keys (p, g, webrtc_keys))
    return NULL;
  c->stun_server = get_string (p, g, "stun-server", NULL);
  c->turn_server = get_string (p, g, "turn-server", NULL);
  g_autofree char *ice = get_string (p, g, "ice-addresses", "");
  c->ice_addresses = g_strsplit_set (g_strstrip (ice), " ,;", -1);
  if (!*ice) {
    g_strfreev (c->ice_addresses);
    c->ice_addresses = g_new0 (char *, 1);
  }
  g = "listen";
  if (c->listen_hard_limit_ms <= c->listen_soft_limit_ms) {
    fail (p, g, "hard-limit-ms", "must be greater than soft-limit-ms (%d)", c->listen_soft_limit_ms);
    return NULL;
  }

  g_auto (GStrv) groups = g_key_file_get_groups (p->kf, NULL);
  /* rooms first, so booth groups may come in any order */
  for (guint i = 0; groups[i]; i++)
    if (g_str_has_prefix (groups[i], "room ") && !parse_room (p, c, groups[i], groups[i] + 5))
      return NULL;
  for (guint i = 0; groups[i]; i++) {
    const char *grp = groups[i];
    if (g_str_equal (grp, "server") || g_str_equal (grp, "listen") || g_str_equal (grp, "webrtc") ||
        g_str_has_prefix (grp, "room "))
      continue;
    if (g_str_has_prefix (grp, "booth ")) {
      if (!parse_booth (p, c, grp, grp + 6))
        return NULL;
    } else if (g_str_has_prefix (grp, "record ")) {
      if (!parse_record (p, c, grp, grp + 7))
        return NULL;
    } else if (g_str_has_prefix (grp, "restream ")) {
      if (!parse_restream (p, c, grp, grp + 9))
        return NULL;
    } else if (g_str_has_prefix (grp, "publish ")) {
      if (!parse_publish (p, c, grp, grp + 8))
        return NULL;
    } else if (g_str_has_prefix (grp, "stage ")) {
      if (!dragoman_config_find_room (c, grp + 6)) {
        fail (p, grp, NULL, "no [room %s] for this stage", grp + 6);
        return NULL;
      }
    } else {
      fail (p, grp, NULL, "unknown group");
      return NULL;
    }
  }
  if (c->rooms->len == 0) {
    g_set_error (p->error, DRAGOMAN_CONFIG_ERROR, 1, "%s: no [room NAME] group: nothing to serve", p->path);
    return NULL;
  }
  if (!parse_access (p, c))
    return NULL;
  return g_steal_pointer (&c);
}

/* GKeyFile silently merges a group that appears twice and lets a repeated key
 * win: at a live event a pasted second [booth main/hy] would quietly replace the
 * first. Refuse both, naming the line. */
static gboolean
check_duplicates (const char *path, const char *data, GError **error)
{
  g_auto (GStrv) lines = g_strsplit (data, "\n", -1);
  g_autoptr (GHashTable) groups = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr (GHashTable) keys = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autofree char *group = NULL;
  for (guint i = 0; lines[i]; i++) {
    char *line = g_strstrip (lines[i]);
    if (*line == '#' || *line == '\0')
      continue;
    if (*line == '[') {
      char *close = strchr (line, ']');
      if (!close)
        continue; /* GKeyFile reports the syntax error */
      g_free (group);
      group = g_strndup (line + 1, close - line - 1);
      if (!g_hash_table_add (groups, g_strdup (group))) {
        g_set_error (error, DRAGOMAN_CONFIG_ERROR, 1, "%s:%u: [%s]: group appears twice", path, i + 1, group);
        return FALSE;
      }
      g_hash_table_remove_all (keys);
      continue;
    }
    char *eq = strchr (line, '=');
    if (!eq || !group)
      continue;
    g_autofree char *key = g_strstrip (g_strndup (line, eq - line));
    if (!g_hash_table_add (keys, g_strdup (key))) {
      g_set_error (error, DRAGOMAN_CONFIG_ERROR, 1, "%s:%u: [%s] %s: key appears twice", path, i + 1, group, key);
      return FALSE;
    }
  }
  return TRUE;
}

DragomanConfig *
dragoman_config_load_data (const char *path, const char *data, const char *const *overrides, GError **error)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_autoptr (GError) err = NULL;
  if (!check_duplicates (path, data, error))
    return NULL;
  if (!g_key_file_load_from_data (kf, data, -1, G_KEY_FILE_NONE, &err)) {
    g_set_error (error, DRAGOMAN_CONFIG_ERROR, 1, "%s: %s", path, err->message);
    return NULL;
  }
  Parser p = { kf, path, error };
  return parse (&p, overrides);
}

DragomanConfig *
dragoman_config_load (const char *path, const char *const *overrides, GError **error)
{
  g_autofree char *data = NULL;
  g_autoptr (GError) err = NULL;
  if (!g_file_get_contents (path, &data, NULL, &err)) {
    g_set_error (error, DRAGOMAN_CONFIG_ERROR, 1, "%s: cannot read config: %s", path, err->message);
    return NULL;
  }
  return dragoman_config_load_data (path, data, overrides, error);
}

const DragomanRoomConfig *
dragoman_config_find_room (const DragomanConfig *config, const char *id)
{
  for (guint i = 0; i < config->rooms->len; i++) {
    const DragomanRoomConfig *r = config->rooms->pdata[i];
    if (g_strcmp0 (r->id, id) == 0)
      return r;
  }
  return NULL;
}

void
dragoman_config_free (DragomanConfig *c)
{
  if (!c)
    return;
  g_free (c->path);
  g_free (c->address);
  g_free (c->web_root);
  g_free (c->pipeline_dir);
  g_free (c->media_dir);
  g_free (c->hls_dir);
  g_free (c->admin_token);
  g_free (c->tls_cert);
  g_free (c->tls_key);
  g_free (c->stun_server);
  g_free (c->turn_server);
  g_strfreev (c->ice_addresses);
  g_strfreev (c->cors_origins);
  g_clear_pointer (&c->rooms, g_ptr_array_unref);
  g_clear_pointer (&c->restreams, g_ptr_array_unref);
  if (c->publish) {
    g_free (c->publish->url);
    g_free (c->publish->token);
    g_free (c->publish);
  }
  g_free (c);
}

/* Tokens rotate on SIGHUP without a restart: copy the admin token and every
 * booth's token from `fresh` (a config just loaded from the same file) into
 * `live`, which everything else keeps pointers into. Anything else that differs
 * needs a restart; the count of changed tokens is returned. */
guint
dragoman_config_rotate_tokens (DragomanConfig *live, const DragomanConfig *fresh)
{
  guint changed = 0;
  if (g_strcmp0 (live->admin_token, fresh->admin_token) != 0) {
    g_free (live->admin_token);
    live->admin_token = g_strdup (fresh->admin_token);
    changed++;
  }
  for (guint r = 0; r < live->rooms->len; r++) {
    DragomanRoomConfig *lr = live->rooms->pdata[r];
    const DragomanRoomConfig *fr = dragoman_config_find_room (fresh, lr->id);
    for (guint b = 0; fr && b < lr->booths->len; b++) {
      DragomanBoothConfig *lb = lr->booths->pdata[b];
      for (guint k = 0; k < fr->booths->len; k++) {
        const DragomanBoothConfig *fb = fr->booths->pdata[k];
        if (g_str_equal (fb->lang, lb->lang) && g_strcmp0 (fb->token, lb->token) != 0 && fb->token) {
          g_free (lb->token);
          lb->token = g_strdup (fb->token);
          changed++;
        }
      }
    }
    /* viewer tokens (parse_access): a room may also open (token removed) or close */
    if (fr && g_strcmp0 (fr->viewer_token, lr->viewer_token) != 0) {
      g_free (lr->viewer_token);
      lr->viewer_token = g_strdup (fr->viewer_token);
      changed++;
    }
  }
  return changed;
}
