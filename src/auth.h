/* auth — tokens and the brake on guessing them.
 *
 * Tokens are compared in constant time and never logged. Failed attempts are
 * counted per client address; after DRAGOMAN_AUTH_MAX_FAILURES in a minute the
 * address is refused without comparing (main thread only). */
#pragma once
#include <glib.h>

#define DRAGOMAN_AUTH_MAX_FAILURES 10

/* TRUE when both are non-empty and equal; time depends only on the length of `given` */
gboolean dragoman_auth_token_equal (const char *expected, const char *given);

typedef struct _DragomanAuthLimiter DragomanAuthLimiter;
DragomanAuthLimiter *dragoman_auth_limiter_new (void);
void dragoman_auth_limiter_free (DragomanAuthLimiter *limiter);
/* FALSE: this address failed too often recently; do not even compare */
gboolean dragoman_auth_allowed (DragomanAuthLimiter *limiter, const char *address);
void dragoman_auth_failed (DragomanAuthLimiter *limiter, const char *address);
