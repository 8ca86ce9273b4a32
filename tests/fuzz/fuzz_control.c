/* fuzz_control — the AV crew's messages: dragoman_ws_control_parse (src/ws_control.c),
 * the JSON check in front of sign_in () and dragoman_control_handle () (src/control.c).
 * The actions themselves need a running server (rooms, booths, outputs): not fuzzed
 * here; what they read is, and the result's echo of "id".
 *
 * Input: one whole text message, parsed as the sign-in and as a later action. Checks:
 * as fuzz_booth, plus the result a refused action gets is JSON that parses back. */
#include "fuzz.h"

#include "ws_control.h"

#include <stdlib.h>

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  fuzz_fatal_warnings ();
  return 0;
}

/* what control.c's result () sends: {"type":"result","id":<as it came>,"ok":false,...} */
static void
check_result (JsonObject *msg)
{
  g_autoptr (JsonBuilder) j = json_builder_new ();
  json_builder_begin_object (j);
  json_builder_set_member_name (j, "id");
  if (json_object_has_member (msg, "id"))
    json_builder_add_value (j, json_node_copy (json_object_get_member (msg, "id")));
  else
    json_builder_add_null_value (j);
  json_builder_end_object (j);
  g_autoptr (JsonNode) root = json_builder_get_root (j);
  g_autofree char *json = json_to_string (root, FALSE);
  g_autoptr (JsonParser) parser = json_parser_new ();
  fuzz_assert (json_parser_load_from_data (parser, json, -1, NULL), "result does not parse: %s", json);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static const char *const strings[] = { "type", "token", "name",        "room", "lang",
                                         "booth", "text", "interpreter", NULL };
  for (int signed_in = 0; signed_in <= 1; signed_in++) {
    g_autoptr (GError) err = NULL;
    g_autoptr (JsonObject) msg = dragoman_ws_control_parse ((const char *) data, size, signed_in, &err);
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
    double db = json_object_get_double_member_with_default (msg, "db", 1);
    (void) db;
    if (!signed_in)
      fuzz_assert (g_str_equal (json_object_get_string_member_with_default (msg, "type", ""), "auth"), "not an auth");
    check_result (msg);
  }
  return 0;
}
