#include "source.h"

#include "config.h"

#include <string.h>

GST_DEBUG_CATEGORY_STATIC (source_debug);
#define GST_CAT_DEFAULT source_debug

char *
dragoman_source_expand (const char *text, GHashTable *vars, GError **error)
{
  g_autoptr (GString) out = g_string_new (NULL);
  for (const char *line_start = text; *line_start;) {
    const char *nl = strchr (line_start, '\n');
    const char *line_end = nl ? nl : line_start + strlen (line_start);
    const char *s = line_start;
    while (s < line_end && g_ascii_isspace (*s))
      s++;
    if (s < line_end && *s != '#') {
      for (const char *c = s; c < line_end; c++) {
        if (c[0] == '$' && c[1] == '{') {
          const char *close = memchr (c, '}', line_end - c);
          if (!close) {
            g_set_error (error, DRAGOMAN_CONFIG_ERROR, 1, "unterminated ${ in '%.*s'", (int) (line_end - s), s);
            return NULL;
          }
          g_autofree char *name = g_strndup (c + 2, close - c - 2);
          const char *val = g_hash_table_lookup (vars, name);
          if (!val) {
            g_set_error (error, DRAGOMAN_CONFIG_ERROR, 1, "unknown variable ${%s} (set it in the config group)", name);
            return NULL;
          }
          g_string_append (out, val);
          c = close;
        } else {
          g_string_append_c (out, *c);
        }
      }
      g_string_append_c (out, '\n');
    }
    line_start = nl ? nl + 1 : line_end;
  }
  return g_string_free (g_steal_pointer (&out), FALSE);
}

static gboolean
ghost (GstBin *bin, const char *name, gboolean required, GError **error)
{
  g_autoptr (GstElement) el = gst_bin_get_by_name (bin, name);
  if (!el) {
    if (required)
      g_set_error (error, DRAGOMAN_CONFIG_ERROR, 1, "no element named '%s'", name);
    return !required;
  }
  g_autoptr (GstPad) pad = gst_element_get_static_pad (el, "src");
  if (!pad || gst_pad_is_linked (pad)) {
    g_set_error (error, DRAGOMAN_CONFIG_ERROR, 1, "element '%s' needs an unlinked src pad", name);
    return FALSE;
  }
  gst_element_add_pad (GST_ELEMENT (bin), gst_ghost_pad_new (name, pad));
  return TRUE;
}

GstElement *
dragoman_source_new (const char *pipeline_dir, const char *name, const char *bin_name, GHashTable *vars,
                     GError **error)
{
  if (!source_debug)
    GST_DEBUG_CATEGORY_INIT (source_debug, "dragoman-source", 0, "dragoman pipeline sources");

  g_autofree char *path = g_strdup_printf ("%s/%s.pipeline", pipeline_dir, name);
  g_autofree char *text = NULL;
  g_autofree char *desc = NULL;
  g_autoptr (GError) err = NULL;
  GstElement *bin = NULL;

  if (!g_file_get_contents (path, &text, NULL, &err))
    goto failed;
  if (!(desc = dragoman_source_expand (text, vars, &err)))
    goto failed;
  GST_DEBUG ("%s: %s", path, desc);
  bin = gst_parse_bin_from_description_full (desc, FALSE, NULL, GST_PARSE_FLAG_FATAL_ERRORS, &err);
  if (!bin)
    goto failed;
  gst_object_set_name (GST_OBJECT (bin), bin_name);
  if (!ghost (GST_BIN (bin), "audio", TRUE, &err) || !ghost (GST_BIN (bin), "video", FALSE, &err))
    goto failed;
  return bin;

  /* ERRORS */
failed:
  g_set_error (error, DRAGOMAN_CONFIG_ERROR, 1, "%s: %s", path, err->message);
  if (bin)
    gst_object_unref (gst_object_ref_sink (bin));
  return NULL;
}
