#include "source.h"

#include "fileplayer.h"
#include "srtgate.h"

#include "config.h"

#include <gst/app/gstappsrc.h>
#include <gst/audio/audio.h>
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
          /* ${name:-default}: the pipeline file documents its own defaults */
          char *dflt = strstr (name, ":-");
          if (dflt) {
            *dflt = '\0';
            dflt += 2;
          }
          const char *val = g_hash_table_lookup (vars, name);
          if (!val)
            val = dflt;
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

/* A live looping file player: an appsrc named "loop:PATH" plays PATH (raw audio in
 * the appsrc's caps) in a loop, stamped with the pipeline clock and paced by it.
 * Why not multifilesrc ! rawaudioparse ! clocksync: that chain is not live, and
 * audiomixer fed one live and one non-live input fails its latency query and can
 * stall the pipeline in PAUSED (seen here in 4 of 8 starts). */
typedef struct {
  GBytes *data;
  gsize pos, block;
  guint64 blocks;
  gint64 t0_us;
  guint64 rate_bytes; /* bytes per second */
} FileLoop;

static void
file_loop_free (gpointer p)
{
  FileLoop *l = p;
  g_bytes_unref (l->data);
  g_free (l);
}

static void
file_loop_need_data (GstAppSrc *src, guint length, gpointer user)
{
  FileLoop *l = user;
  /* Pace on the monotonic clock, never more than one block ahead, and let appsrc
   * stamp each buffer with the running time it is pushed at (do-timestamp). Not
   * pts = clock - base_time: need-data can run before PLAYING has set the base
   * time, and a stale base made the loop wait for hours (rooms stuck in PAUSED). */
  gint64 now = g_get_monotonic_time ();
  if (l->blocks == 0)
    l->t0_us = now;
  gint64 due = l->t0_us + (gint64) gst_util_uint64_scale (l->blocks * l->block, G_USEC_PER_SEC, l->rate_bytes);
  gint64 block_us = (gint64) gst_util_uint64_scale (l->block, G_USEC_PER_SEC, l->rate_bytes);
  if (due - block_us > now)
    g_usleep (due - block_us - now);
  gsize size = g_bytes_get_size (l->data);
  GstBuffer *buf = gst_buffer_new_allocate (NULL, l->block, NULL);
  GstMapInfo map;
  gst_buffer_map (buf, &map, GST_MAP_WRITE);
  const guint8 *in = g_bytes_get_data (l->data, NULL);
  for (gsize done = 0; done < l->block;) {
    gsize n = MIN (l->block - done, size - l->pos);
    memcpy (map.data + done, in + l->pos, n);
    done += n;
    l->pos = (l->pos + n) % size;
  }
  gst_buffer_unmap (buf, &map);
  GST_BUFFER_DURATION (buf) = block_us * GST_USECOND;
  l->blocks++;
  gst_app_src_push_buffer (src, buf);
}

static gboolean
setup_file_loops (GstBin *bin, GError **error)
{
  g_autoptr (GstIterator) it = gst_bin_iterate_recurse (bin);
  GValue v = G_VALUE_INIT;
  gboolean ok = TRUE;
  while (ok && gst_iterator_next (it, &v) == GST_ITERATOR_OK) {
    GstElement *el = g_value_get_object (&v);
    const char *name = GST_OBJECT_NAME (el);
    if (GST_IS_APP_SRC (el) && g_str_has_prefix (name, "loop:")) {
      g_autoptr (GError) err = NULL;
      g_autoptr (GMappedFile) file = g_mapped_file_new (name + 5, FALSE, &err);
      GstCaps *caps = gst_app_src_get_caps (GST_APP_SRC (el));
      GstAudioInfo info;
      if (!file || !caps || !gst_audio_info_from_caps (&info, caps) || g_mapped_file_get_length (file) < 4) {
        g_set_error (error, DRAGOMAN_CONFIG_ERROR, 1, "appsrc %s: %s", name,
                     err ? err->message : "needs raw audio caps and a non-empty file");
        ok = FALSE;
      } else {
        FileLoop *l = g_new0 (FileLoop, 1);
        l->data = g_mapped_file_get_bytes (file);
        l->rate_bytes = (guint64) info.rate * info.bpf;
        l->block = info.rate / 100 * info.bpf; /* 10 ms */
        GstAppSrcCallbacks cb = { .need_data = file_loop_need_data };
        gst_app_src_set_callbacks (GST_APP_SRC (el), &cb, l, file_loop_free);
        /* a live source of 10 ms blocks: report that latency (and room to buffer), or
         * a mixer downstream sees max 0 < min and cannot configure its latency */
        gint64 block_ns = (gint64) gst_util_uint64_scale (l->block, GST_SECOND, l->rate_bytes);
        g_object_set (el, "is-live", TRUE, "do-timestamp", TRUE, "format", GST_FORMAT_TIME, "max-buffers",
                      (guint64) 2, "min-latency", (gint64) 0, "max-latency", 10 * block_ns, NULL);
      }
      if (caps)
        gst_caps_unref (caps);
    }
    g_value_reset (&v);
  }
  g_value_unset (&v);
  return ok;
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
  if (GST_LEVEL_DEBUG <= gst_debug_category_get_threshold (source_debug)) {
    /* never log a passphrase */
    g_autoptr (GRegex) re = g_regex_new ("passphrase=[^\"& ]*", 0, 0, NULL);
    g_autofree char *masked = g_regex_replace_literal (re, desc, -1, 0, "passphrase=***", 0, NULL);
    GST_DEBUG ("%s: %s", path, masked);
  }
  bin = gst_parse_bin_from_description_full (desc, FALSE, NULL, GST_PARSE_FLAG_FATAL_ERRORS, &err);
  if (!bin)
    goto failed;
  gst_object_set_name (GST_OBJECT (bin), bin_name);
  if (!setup_file_loops (GST_BIN (bin), &err) || !dragoman_fileplayer_setup (GST_BIN (bin), &err))
    goto failed;
  if (!ghost (GST_BIN (bin), "audio", TRUE, &err) || !ghost (GST_BIN (bin), "video", FALSE, &err))
    goto failed;
  {
    const char *room = g_hash_table_lookup (vars, "room");
    g_autofree char *label = g_strdup_printf ("room %s: %s", room ? room : "?", bin_name);
    dragoman_srt_gate_attach (GST_BIN (bin), label);
  }
  return bin;

  /* ERRORS */
failed:
  g_set_error (error, DRAGOMAN_CONFIG_ERROR, 1, "%s: %s", path, err->message);
  if (bin)
    gst_object_unref (gst_object_ref_sink (bin));
  return NULL;
}
