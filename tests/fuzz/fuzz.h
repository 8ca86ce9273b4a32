/* fuzz — what every libFuzzer target of tests/fuzz/ shares.
 *
 * A GLib critical or warning is a bug the target found (json-glib and GKeyFile
 * answer misuse with a g_return_if_fail and a default, which hides it): make it
 * fatal, so libFuzzer reports it with its input and stack like a crash. Debug
 * output (GST_*) stays off. */
#pragma once
#include <glib.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);
int LLVMFuzzerInitialize (int *argc, char ***argv);

static void
fuzz_log (const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer data)
{
  if (!(level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING)))
    return;
  g_printerr ("fuzz: %s: %s\n", domain ? domain : "(no domain)", message);
  abort (); /* not GLib's own fatal path: its SIGTRAP is no crash to libFuzzer */
}

static inline void
fuzz_fatal_warnings (void)
{
  g_log_set_default_handler (fuzz_log, NULL);
}

/* the input as a C string (embedded NULs end it early, as they would in the server) */
static inline char *
fuzz_strndup (const uint8_t *data, size_t size)
{
  char *s = g_malloc (size + 1);
  memcpy (s, data, size);
  s[size] = '\0';
  return s;
}

#define fuzz_assert(cond, ...)                                                                                         \
  do {                                                                                                                 \
    if (!(cond)) {                                                                                                     \
      g_printerr ("fuzz: %s:%d: %s: ", __FILE__, __LINE__, #cond);                                                     \
      g_printerr (__VA_ARGS__);                                                                                        \
      g_printerr ("\n");                                                                                               \
      abort ();                                                                                                        \
    }                                                                                                                  \
  } while (0)
