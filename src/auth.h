/* auth — tokens and the brake on guessing them.
 *
 * Tokens are compared in constant time and never logged. Failed attempts are
 * counted per client address; after a limiter's max_failures in a minute the
 * address is refused without comparing (main thread only). */
#pragma once
#include <glib.h>

/* Booth and control tokens: a handful of people, each typing their own. */
#define DRAGOMAN_AUTH_MAX_FAILURES 10
/* Viewer tokens (paid rooms) have their own limiter and a larger budget: a whole
 * hall of phones can share one NAT address, and at 10 a minute a few mistyped
 * tickets locked everyone there out (and, on one limiter, the crew's and the
 * booths' logins from that address too). A viewer token is at least 8 URL-safe
 * characters, 2^48 values: at 100 guesses a minute from one address that is
 * ~5 million years. */
#define DRAGOMAN_AUTH_MAX_VIEWER_FAILURES 100

/* TRUE when both are non-empty and equal; time depends only on the length of `given` */
gboolean dragoman_auth_token_equal (const char *expected, const char *given);

typedef struct _DragomanAuthLimiter DragomanAuthLimiter;
DragomanAuthLimiter *dragoman_auth_limiter_new (guint max_failures);
void dragoman_auth_limiter_free (DragomanAuthLimiter *limiter);
/* FALSE: this address failed too often recently; do not even compare */
gboolean dragoman_auth_allowed (DragomanAuthLimiter *limiter, const char *address);
void dragoman_auth_failed (DragomanAuthLimiter *limiter, const char *address);
