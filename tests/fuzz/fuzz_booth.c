/* fuzz_booth — an interpreter's console messages: dragoman_ws_booth_parse
 * (src/ws_booth.c), the JSON check in front of join () and dragoman_booth_handle ()
 * (src/booth.c). The handling itself needs a running room (webrtcbin, mixers): not
 * fuzzed here; what it reads is.
 *
 * Input: one whole text message. Each is parsed as a first message (before the join)
 * and as a later one. Checks, for an accepted message: every member booth.c and
 * join () read comes back as they read it (a string is never NULL, no critical);
 * the first is a join; nesting is bounded; strings are UTF-8. Refused: a GError with a UTF-8 message
 * (it goes back to the page in JSON). */
#include "fuzz.h"

#include "ws_booth.h"

#include <stdlib.h>

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  fuzz_fatal_warnings ();
  return 0;
}

static guint
depth (JsonNode *node)
{
  guint d = 0;
  if (JSON_NODE_HOLDS_OBJECT (node)) {
    g_autoptr (GList) values = json_object_get_values (json_node_get_object (node));
    /* MAX () evaluates its arguments twice: depth () in it was 2^depth calls (a
     * 25-deep input took libFuzzer's 10 s timeout) */
    for (GList *l = values; l; l = l->next) {
      guint c = depth (l->data);
      d = MAX (d, c);
    }
    return d + 1;
  }
  if (JSON_NODE_HOLDS_ARRAY (node)) {
    JsonArray *a = json_node_get_array (node);
    for (guint i = 0; i < json_array_get_length (a); i++) {
      guint c = depth (json_array_get_element (a, i));
      d = MAX (d, c);
    }
    return d + 1;
  }
  return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static const char *const strings[] = { "type", "token", "name", "sdp", "candidate", "source", "lang", "text", NULL };
  for (int joined = 0; joined <= 1; joined++) {
    g_autoptr (GError) err = NULL;
    g_autoptr (JsonObject) msg = dragoman_ws_booth_parse ((const char *) data, size, joined, &err);
    fuzz_assert (!msg != !err, "message %p and error %s", (void *) msg, err ? err->message : "(none)");
    if (!msg) {
      fuzz_assert (g_utf8_validate (err->message, -1, NULL), "error message not UTF-8");
      continue;
    }
    for (guint i = 0; strings[i]; i++) {
      const char *v = json_object_get_string_member_with_default (msg, strings[i], "");
      fuzz_assert (v != NULL, "\"%s\" reads as NULL", strings[i]);
      /* it may go back out in JSON text frames, which must be UTF-8 */
      fuzz_assert (g_utf8_validate (v, -1, NULL), "\"%s\" is not UTF-8", strings[i]);
    }
    (void) json_object_get_boolean_member_with_default (msg, "value", FALSE);
    (void) json_object_get_int_member_with_default (msg, "sdpMLineIndex", 0);
    if (!joined)
      fuzz_assert (g_str_equal (json_object_get_string_member_with_default (msg, "type", ""), "join"), "not a join");
    g_autoptr (JsonNode) node = json_node_init_object (json_node_alloc (), msg);
    guint deep = depth (node);
    fuzz_assert (deep <= 32, "nested %u deep", deep);
  }
  return 0;
}
