#include "auth.h"

#include <string.h>

gboolean
dragoman_auth_token_equal (const char *expected, const char *given)
{
  if (!expected || !given || !*expected)
    return FALSE;
  /* Compare digests: equal length, and the loop below never exits early, so the
   * time taken says nothing about how much of the token was right. */
  g_autofree char *a = g_compute_checksum_for_string (G_CHECKSUM_SHA256, expected, -1);
  g_autofree char *b = g_compute_checksum_for_string (G_CHECKSUM_SHA256, given, -1);
  volatile guint8 diff = 0;
  for (gsize i = 0; i < 64; i++)
    diff |= (guint8) (a[i] ^ b[i]);
  return diff == 0;
}

typedef struct {
  guint failures;
  gint64 since_us;
} Entry;

struct _DragomanAuthLimiter {
  GHashTable *by_address; /* char* → Entry*; main thread only */
  guint max_failures;     /* in a WINDOW_US */
};

DragomanAuthLimiter *
dragoman_auth_limiter_new (guint max_failures)
{
  DragomanAuthLimiter *l = g_new0 (DragomanAuthLimiter, 1);
  l->max_failures = max_failures;
  l->by_address = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  return l;
}

void
dragoman_auth_limiter_free (DragomanAuthLimiter *l)
{
  if (!l)
    return;
  g_hash_table_unref (l->by_address);
  g_free (l);
}

#define WINDOW_US (60 * G_USEC_PER_SEC)

gboolean
dragoman_auth_allowed (DragomanAuthLimiter *l, const char *address)
{
  Entry *e = g_hash_table_lookup (l->by_address, address);
  if (!e)
    return TRUE;
  if (g_get_monotonic_time () - e->since_us > WINDOW_US) {
    g_hash_table_remove (l->by_address, address);
    return TRUE;
  }
  return e->failures < l->max_failures;
}

void
dragoman_auth_failed (DragomanAuthLimiter *l, const char *address)
{
  Entry *e = g_hash_table_lookup (l->by_address, address);
  if (!e) {
    /* bounded: a flood of addresses resets the table rather than growing it */
    if (g_hash_table_size (l->by_address) > 10000)
      g_hash_table_remove_all (l->by_address);
    e = g_new0 (Entry, 1);
    e->since_us = g_get_monotonic_time ();
    g_hash_table_insert (l->by_address, g_strdup (address), e);
  }
  e->failures++;
}
