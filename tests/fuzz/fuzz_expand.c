/* fuzz_expand — pipeline text expansion, dragoman_source_expand (src/source.c):
 * "# comments", ${var} and ${var:-default} in a pipelines/NAME.pipeline file, the
 * variables from the config group (operator input).
 *
 * Input: "name=value" lines (the variables), a NUL, then the pipeline text; without
 * a NUL all of it is the text. Checks: a text or a GError, never both or neither;
 * without variables or "${" in the input, the output is the input without its
 * comment lines and indents. */
#include "fuzz.h"

#include "source.h"

#include <stdlib.h>

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  fuzz_fatal_warnings ();
  return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autofree char *buf = fuzz_strndup (data, size);
  const char *text = buf;
  g_autoptr (GHashTable) vars = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  if (strlen (buf) < size) {
    text = buf + strlen (buf) + 1;
    g_auto (GStrv) lines = g_strsplit (buf, "\n", -1);
    for (guint i = 0; lines[i]; i++) {
      char *eq = strchr (lines[i], '=');
      if (eq)
        g_hash_table_insert (vars, g_strndup (lines[i], eq - lines[i]), g_strdup (eq + 1));
    }
  }
  g_autoptr (GError) err = NULL;
  g_autofree char *out = dragoman_source_expand (text, vars, &err);
  fuzz_assert (!out != !err, "text %p and error %s", (void *) out, err ? err->message : "(none)");
  if (out && !strstr (text, "${")) {
    /* nothing to substitute: every non-comment line comes through, less its indent */
    g_autoptr (GString) want = g_string_new (NULL);
    g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
    for (guint i = 0; lines[i]; i++) {
      const char *s = lines[i];
      while (*s && g_ascii_isspace (*s))
        s++;
      if (*s && *s != '#')
        g_string_append_printf (want, "%s\n", s);
    }
    fuzz_assert (g_str_equal (want->str, out), "expanded '%s' into '%s'", text, out);
  }
  return 0;
}
