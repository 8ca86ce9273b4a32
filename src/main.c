/* main — command line, start-up order and graceful shutdown.
 *
 * Start-up: config (exit 2 if bad) → rooms built → sockets listening (fanout
 * wake-ups wired) → pipelines playing. Shutdown on SIGINT/SIGTERM in reverse. */
#include "control.h"
#include "http.h"
#include "publisher.h"
#include "server.h"

#include <glib-unix.h>
#include <sys/resource.h>
#include <gst/gst.h>
#include <stdlib.h>


static gboolean
on_signal (gpointer data)
{
  DragomanServer *server = data;
  g_print ("dragoman: shutting down\n");
  g_main_loop_quit (server->loop);
  return G_SOURCE_REMOVE;
}

typedef struct {
  DragomanServer *server;
  const char *path;
  const char *const *overrides;
} Reload;

/* SIGHUP: re-read the config and rotate the tokens (admin, booth, viewer). Listeners, interpreters and
 * crew already signed in stay; the next sign-in needs the new token. */
static gboolean
on_hangup (gpointer data)
{
  Reload *r = data;
  g_autoptr (GError) err = NULL;
  g_autoptr (DragomanConfig) fresh = dragoman_config_load (r->path, r->overrides, &err);
  if (!fresh) {
    g_printerr ("dragoman: SIGHUP: the configuration does not load, nothing changed: %s\n", err->message);
    return G_SOURCE_CONTINUE;
  }
  guint n = dragoman_config_rotate_tokens (r->server->config, fresh);
  dragoman_publisher_tokens_changed (r->server->publisher);
  /* never the tokens themselves */
  g_printerr ("dragoman: SIGHUP: %u token(s) rotated from %s (other changes need a restart)\n", n, r->path);
  return G_SOURCE_CONTINUE;
}

static void
print_urls (DragomanServer *server)
{
  const DragomanConfig *c = server->config;
  const char *host = g_str_equal (c->address, "0.0.0.0") ? "127.0.0.1" : c->address;
  const char *http = c->tls_cert ? "https" : "http";
  g_print ("dragoman %s: serving %u room(s) from %s\n", DRAGOMAN_VERSION, server->rooms->len, c->path);
  for (guint i = 0; i < server->rooms->len; i++) {
    const DragomanRoomConfig *rc = dragoman_room_get_config (server->rooms->pdata[i]);
    g_print ("  room %-8s listen: %s://%s:%d/?room=%s   (channels: orig", rc->id, http, host, c->port, rc->id);
    for (guint j = 0; rc->langs[j]; j++)
      g_print (" %s", rc->langs[j]);
    g_print (")\n");
    for (guint j = 0; j < rc->booths->len; j++) {
      const DragomanBoothConfig *bc = rc->booths->pdata[j];
      if (g_str_equal (bc->source, "browser"))
        g_print ("  room %-8s booth %s: %s://%s:%d/booth?room=%s&booth=%s (token in %s)\n", rc->id, bc->lang, http, host,
                 c->port, rc->id, bc->lang, c->path);
    }
  }
  if (c->admin_token)
    g_print ("  AV crew: %s://%s:%d/control (admin token in %s)\n", http, host, c->port, c->path);
  g_print ("  metrics: %s://%s:%d/metrics   rooms: %s://%s:%d/api/v1/rooms\n", http, host, c->port, http, host,
           c->port);
  g_print ("Press Ctrl-C to stop.\n");
}

int
main (int argc, char **argv)
{
  g_autofree char *config_path = NULL;
  g_auto (GStrv) overrides = NULL;
  gboolean version = FALSE;
  GOptionEntry entries[] = {
    { "config", 'c', 0, G_OPTION_ARG_FILENAME, &config_path, "Configuration file (default configs/demo.ini)", "FILE" },
    { "set", 's', 0, G_OPTION_ARG_STRING_ARRAY, &overrides, "Override a config key", "GROUP.KEY=VALUE" },
    { "version", 0, 0, G_OPTION_ARG_NONE, &version, "Print the version", NULL },
    { NULL },
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- simultaneous-interpretation relay server");
  g_autoptr (GError) err = NULL;
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, gst_init_get_option_group ());
  if (!g_option_context_parse (ctx, &argc, &argv, &err)) {
    g_printerr ("dragoman: %s (try --help)\n", err->message);
    return 2;
  }
  if (version) {
    g_print ("dragoman %s\n", DRAGOMAN_VERSION);
    return 0;
  }
  gst_init (NULL, NULL);
  /* one descriptor per listener: the default soft limit (1024) would cap the
   * audience far below max-listeners */
  struct rlimit nofile;
  if (getrlimit (RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    setrlimit (RLIMIT_NOFILE, &nofile);
  }

  DragomanServer server = { 0 };
  server.config = dragoman_config_load (config_path ? config_path : "configs/demo.ini",
                                        (const char *const *) overrides, &err);
  if (!server.config) {
    g_printerr ("dragoman: bad configuration: %s\n", err->message);
    return 2;
  }
  server.loop = g_main_loop_new (NULL, FALSE);
  server.started_us = g_get_monotonic_time ();
  server.rooms = g_ptr_array_new_with_free_func ((GDestroyNotify) dragoman_room_free);
  server.auth = dragoman_auth_limiter_new (DRAGOMAN_AUTH_MAX_FAILURES);
  server.viewer_auth = dragoman_auth_limiter_new (DRAGOMAN_AUTH_MAX_VIEWER_FAILURES);
  int status = EXIT_SUCCESS;

  for (guint i = 0; i < server.config->rooms->len; i++) {
    DragomanRoom *room = dragoman_room_new (server.config, server.config->rooms->pdata[i], dragoman_http_headroom (), &err);
    if (!room) {
      g_printerr ("dragoman: bad configuration: %s\n", err->message);
      status = 2;
      goto out;
    }
    g_ptr_array_add (server.rooms, room);
  }
  server.control = dragoman_control_new (&server);
  if (!dragoman_http_start (&server, &err)) {
    g_printerr ("dragoman: %s\n", err->message);
    status = EXIT_FAILURE;
    goto out;
  }
  for (guint i = 0; i < server.rooms->len; i++) {
    if (!dragoman_room_start (server.rooms->pdata[i], &err)) {
      g_printerr ("dragoman: %s\n", err->message);
      status = EXIT_FAILURE;
      goto out;
    }
  }
  server.publisher = dragoman_publisher_new (&server);
  server.heaptrim = dragoman_heaptrim_start (DRAGOMAN_HEAPTRIM_INTERVAL_S);
  print_urls (&server);
  for (guint i = 0; !server.config->tls_cert && i < server.config->rooms->len; i++) {
    const DragomanRoomConfig *rc = server.config->rooms->pdata[i];
    for (guint j = 0; j < rc->booths->len; j++)
      if (g_str_equal (((DragomanBoothConfig *) rc->booths->pdata[j])->source, "browser")) {
        g_printerr ("dragoman: warning: serving plain HTTP: browsers give the booth page a microphone only on "
                    "https:// or localhost, so remote interpreters need TLS: set [server] tls-cert and tls-key "
                    "(make certs) or put a TLS proxy in front (see docs/deploy.md)\n");
        i = server.config->rooms->len - 1;
        break;
      }
  }
  Reload reload = { &server, config_path ? config_path : "configs/demo.ini", (const char *const *) overrides };
  g_unix_signal_add (SIGHUP, on_hangup, &reload);
  g_unix_signal_add (SIGINT, on_signal, &server);
  g_unix_signal_add (SIGTERM, on_signal, &server);
  g_main_loop_run (server.loop);

out:
  /* pipelines first, so no streaming thread wakes a destroyed socket context;
   * sessions closed after that must not touch the rooms */
  server.stopping = TRUE;
  g_clear_pointer (&server.heaptrim, dragoman_heaptrim_stop);
  g_clear_pointer (&server.publisher, dragoman_publisher_free);
  g_ptr_array_set_size (server.rooms, 0);
  dragoman_http_stop (&server);
  dragoman_control_free (server.control);
  g_ptr_array_unref (server.rooms);
  g_main_loop_unref (server.loop);
  dragoman_auth_limiter_free (server.auth);
  dragoman_auth_limiter_free (server.viewer_auth);
  dragoman_config_free (server.config);
  return status;
}
