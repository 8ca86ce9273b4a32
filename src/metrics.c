#include "metrics.h"
#include "publisher.h"

#include "conncap.h"
#include "control.h"
#include "srtgate.h"

#include <json-glib/json-glib.h>
#include <string.h>

gboolean
dragoman_metrics_healthy (DragomanServer *server)
{
  for (guint i = 0; i < server->rooms->len; i++)
    if (!dragoman_room_is_playing (server->rooms->pdata[i]))
      return FALSE;
  return server->rooms->len > 0;
}

typedef struct {
  const char *name, *help;
  gsize offset; /* in DragomanFanoutStats */
  gboolean gauge;
} FanoutMetric;

static const FanoutMetric fanout_metrics[] = {
  { "dragoman_listeners", "Connected listeners", G_STRUCT_OFFSET (DragomanFanoutStats, listeners), TRUE },
  { "dragoman_packets_total", "Opus packets published", G_STRUCT_OFFSET (DragomanFanoutStats, packets_in), FALSE },
  { "dragoman_frames_sent_total", "Messages handed to listener sockets",
    G_STRUCT_OFFSET (DragomanFanoutStats, frames_sent), FALSE },
  { "dragoman_listener_writes_total", "Socket writes that carried those messages (fewer when coalesced)",
    G_STRUCT_OFFSET (DragomanFanoutStats, writes), FALSE },
  { "dragoman_bytes_sent_total", "Bytes handed to listener sockets", G_STRUCT_OFFSET (DragomanFanoutStats, bytes_sent),
    FALSE },
  { "dragoman_listener_resyncs_total", "Listeners skipped to the live edge (soft limit)",
    G_STRUCT_OFFSET (DragomanFanoutStats, resyncs), FALSE },
  { "dragoman_frames_dropped_total", "Frames skipped by resyncs", G_STRUCT_OFFSET (DragomanFanoutStats, frames_skipped),
    FALSE },
  { "dragoman_listener_disconnects_total", "Listeners disconnected at the hard limit (too slow)",
    G_STRUCT_OFFSET (DragomanFanoutStats, slow_disconnects), FALSE },
  { "dragoman_inbox_drops_total", "Packets lost because the socket thread stalled",
    G_STRUCT_OFFSET (DragomanFanoutStats, inbox_drops), FALSE },
  { "dragoman_listener_write_failures_total", "Listeners closed because a write to their socket failed",
    G_STRUCT_OFFSET (DragomanFanoutStats, write_failures), FALSE },
  { "dragoman_late_packets_total", "Packets that waited 100 ms or more for the main loop (a stall every listener hears)",
    G_STRUCT_OFFSET (DragomanFanoutStats, late_dispatches), FALSE },
  { "dragoman_channel_catchups_total", "Bursts longer than the soft limit from the channel's mixer (a stage loss): every listener skipped to the live edge",
    G_STRUCT_OFFSET (DragomanFanoutStats, catchups), FALSE },
  { "dragoman_main_loop_wait_max_ms", "The longest a packet waited for the main loop since start",
    G_STRUCT_OFFSET (DragomanFanoutStats, wait_max_ms), TRUE },
};

/* recordings and restreams: labels room, output (the restream's name or
 * "record"), kind (recording, rtmp, srt) */
/* the stage's picture for the browser booths (booth_video.c): rooms that have one */
static void
append_booth_video_metrics (DragomanServer *server, GString *s)
{
  static const struct {
    const char *name, *type, *help;
    gsize offset;
  } bm[] = {
      {"dragoman_booth_video_peers", "gauge", "WebRTC peers taking the room's booth video (0: the encoder is idle)",
       G_STRUCT_OFFSET (DragomanBoothVideoStats, consumers)},
      {"dragoman_booth_video_frames_total", "counter", "VP8 frames encoded for the booths",
       G_STRUCT_OFFSET (DragomanBoothVideoStats, frames)},
      {"dragoman_booth_video_keyframes_total", "counter", "VP8 keyframes encoded for the booths",
       G_STRUCT_OFFSET (DragomanBoothVideoStats, keyframes)},
      {"dragoman_booth_video_forced_keyframes_total", "counter",
       "keyframes forced for a joining booth or a browser's PLI/FIR (at most 2 a second)",
       G_STRUCT_OFFSET (DragomanBoothVideoStats, forced)},
      {"dragoman_booth_video_dropped_total", "counter", "frames not sent to a slow booth (it resumes at a keyframe)",
       G_STRUCT_OFFSET (DragomanBoothVideoStats, dropped)},
      {"dragoman_booth_video_stage_dropped_total", "counter",
       "stage H.264 frames the booth video's decoder fell behind on",
       G_STRUCT_OFFSET (DragomanBoothVideoStats, stage_dropped)},
  };
  for (guint m = 0; m < G_N_ELEMENTS (bm); m++) {
    g_string_append_printf (s, "# HELP %s %s\n# TYPE %s %s\n", bm[m].name, bm[m].help, bm[m].name, bm[m].type);
    for (guint r = 0; r < server->rooms->len; r++) {
      DragomanRoom *room = server->rooms->pdata[r];
      DragomanBoothVideo *bv = dragoman_room_get_booth_video (room);
      if (!bv)
        continue;
      DragomanBoothVideoStats st;
      dragoman_booth_video_get_stats (bv, &st);
      guint64 v = m == 0 ? st.consumers : *(guint64 *)((guint8 *)&st + bm[m].offset);
      g_string_append_printf (s, "%s{room=\"%s\"} %" G_GUINT64_FORMAT "\n", bm[m].name,
                              dragoman_room_get_config (room)->id, v);
    }
  }
}

static void
append_output_metrics (DragomanServer *server, GString *s)
{
  static const struct {
    const char *name, *type, *help;
  } fams[] = {
    { "dragoman_output_live", "gauge", "1 while a recording writes or a restream's platform receives" },
    { "dragoman_output_wanted", "gauge", "1 while the crew (or autostart) wants the output running" },
    { "dragoman_output_bytes_total", "counter", "Bytes written to the file or sent to the platform" },
    { "dragoman_output_reconnects_total", "counter", "Restarts after an error (with backoff)" },
    { "dragoman_output_dropped_total", "counter", "Buffers dropped because the output fell 2 s behind" },
    { "dragoman_output_kbps", "gauge", "Output rate over the last ~2 s" },
  };
  for (guint f = 0; f < G_N_ELEMENTS (fams); f++) {
    g_string_append_printf (s, "# HELP %s %s\n# TYPE %s %s\n", fams[f].name, fams[f].help, fams[f].name,
                            fams[f].type);
    for (guint r = 0; r < server->rooms->len; r++) {
      DragomanRoom *room = server->rooms->pdata[r];
      GPtrArray *outputs = dragoman_room_get_outputs (room);
      for (guint k = 0; k < outputs->len; k++) {
        DragomanOutput *o = outputs->pdata[k];
        DragomanOutputStats st;
        dragoman_output_get_stats (o, &st);
        double v = f == 0   ? st.state == DRAGOMAN_OUTPUT_LIVE
                   : f == 1 ? dragoman_output_is_wanted (o)
                   : f == 2 ? (double) st.bytes
                   : f == 3 ? st.reconnects
                   : f == 4 ? (double) st.dropped
                            : st.kbps;
        g_string_append_printf (s, "%s{room=\"%s\",output=\"%s\",kind=\"%s\"} %.*f\n", fams[f].name,
                                dragoman_room_get_config (room)->id, dragoman_output_get_name (o),
                                dragoman_output_get_kind (o), f == 5 ? 1 : 0, v);
      }
    }
  }
}

/* [publish nchan]: one link per room/language */
static void
append_publish_metrics (DragomanServer *server, GString *s)
{
  static const struct {
    const char *name, *type, *help;
  } fams[] = {
    { "dragoman_publish_connected", "gauge", "1 while the channel's WebSocket to the Nchan edge is up" },
    { "dragoman_publish_messages_total", "counter", "Messages (packets and state) sent to the edge" },
    { "dragoman_publish_bytes_total", "counter", "Bytes of those messages" },
    { "dragoman_publish_connects_total", "counter", "Handshakes that succeeded" },
    { "dragoman_publish_failures_total", "counter", "Connections refused or lost (each retried with backoff)" },
  };
  guint n = dragoman_publisher_n_links (server->publisher);
  if (n == 0)
    return;
  for (guint f = 0; f < G_N_ELEMENTS (fams); f++) {
    g_string_append_printf (s, "# HELP %s %s\n# TYPE %s %s\n", fams[f].name, fams[f].help, fams[f].name,
                            fams[f].type);
    for (guint i = 0; i < n; i++) {
      DragomanPublishLinkStats st;
      dragoman_publisher_get_link_stats (server->publisher, i, &st);
      guint64 v = f == 0 ? (guint64) st.connected : f == 1 ? st.frames : f == 2 ? st.bytes : f == 3 ? st.connects : st.failures;
      g_string_append_printf (s, "%s{room=\"%s\",lang=\"%s\"} %" G_GUINT64_FORMAT "\n", fams[f].name, st.room, st.lang,
                              v);
    }
  }
}

/* Memory as the kernel and as the allocator see it. RSS alone cannot tell a leak (heap in
 * use grows) from fragmentation (RSS grows, the free bytes malloc keeps grow with it): the
 * soak (docs/reliability.md) judges them apart. */
static void
append_memory_metrics (DragomanServer *server, GString *s)
{
  guint64 rss_kib = dragoman_process_rss_bytes () / 1024;
  DragomanHeapUsage hu;
  dragoman_heap_get_usage (&hu);
  g_string_append_printf (s,
                          "# HELP dragoman_resident_bytes Resident memory of the server process (VmRSS)\n"
                          "# TYPE dragoman_resident_bytes gauge\n"
                          "dragoman_resident_bytes %" G_GUINT64_FORMAT "\n"
                          "# HELP dragoman_heap_bytes malloc's heap: in use by the program, or free but kept by malloc\n"
                          "# TYPE dragoman_heap_bytes gauge\n"
                          "dragoman_heap_bytes{kind=\"in-use\"} %" G_GUINT64_FORMAT "\n"
                          "dragoman_heap_bytes{kind=\"free\"} %" G_GUINT64_FORMAT "\n"
                          "dragoman_heap_bytes{kind=\"mmapped\"} %" G_GUINT64_FORMAT "\n"
                          "# HELP dragoman_heap_allocator_info The malloc the server was built with\n"
                          "# TYPE dragoman_heap_allocator_info gauge\n"
                          "dragoman_heap_allocator_info{allocator=\"%s\"} 1\n",
                          rss_kib * 1024, hu.in_use, hu.free, hu.mapped, dragoman_heap_allocator);
  if (server->heaptrim) {
    DragomanHeapTrimStats ts;
    dragoman_heaptrim_get_stats (server->heaptrim, &ts);
    g_string_append_printf (s,
                            "# HELP dragoman_heap_trims_total Times the free heap was given back to the kernel (every 30 s)\n"
                            "# TYPE dragoman_heap_trims_total counter\n"
                            "dragoman_heap_trims_total %" G_GUINT64_FORMAT "\n"
                            "# HELP dragoman_heap_trimmed_bytes_total Resident memory those trims gave back\n"
                            "# TYPE dragoman_heap_trimmed_bytes_total counter\n"
                            "dragoman_heap_trimmed_bytes_total %" G_GUINT64_FORMAT "\n"
                            "# HELP dragoman_heap_trim_max_seconds The longest trim (one arena locked at a time)\n"
                            "# TYPE dragoman_heap_trim_max_seconds gauge\n"
                            "dragoman_heap_trim_max_seconds %.6f\n",
                            ts.runs, ts.released_bytes, ts.max_us / 1e6);
  }
}

char *
dragoman_metrics_prometheus (DragomanServer *server)
{
  GString *s = g_string_new (NULL);
  for (guint m = 0; m < G_N_ELEMENTS (fanout_metrics); m++) {
    const FanoutMetric *fm = &fanout_metrics[m];
    g_string_append_printf (s, "# HELP %s %s\n# TYPE %s %s\n", fm->name, fm->help, fm->name,
                            fm->gauge ? "gauge" : "counter");
    for (guint r = 0; r < server->rooms->len; r++) {
      DragomanRoom *room = server->rooms->pdata[r];
      const char *id = dragoman_room_get_config (room)->id;
      for (guint c = 0; c < dragoman_room_n_channels (room); c++) {
        DragomanChannel *ch = dragoman_room_get_channel (room, c);
        DragomanFanoutStats st;
        dragoman_fanout_get_stats (dragoman_channel_get_fanout (ch), &st);
        guint64 v = fm->gauge ? *(guint *) ((guint8 *) &st + fm->offset) : *(guint64 *) ((guint8 *) &st + fm->offset);
        g_string_append_printf (s, "%s{room=\"%s\",lang=\"%s\",transport=\"ws\"} %" G_GUINT64_FORMAT "\n", fm->name, id,
                                dragoman_channel_get_lang (ch), v);
      }
    }
  }
  g_string_append (s, "# HELP dragoman_stage_live 1 while the room's stage feed arrives, 0 while it is lost\n"
                      "# TYPE dragoman_stage_live gauge\n");
  for (guint r = 0; r < server->rooms->len; r++) {
    DragomanRoom *room = server->rooms->pdata[r];
    g_string_append_printf (s, "dragoman_stage_live{room=\"%s\"} %d\n", dragoman_room_get_config (room)->id,
                            dragoman_stage_is_live (dragoman_room_get_stage (room)));
  }
  g_string_append (s, "# HELP dragoman_stage_losses_total Times the stage feed was lost\n"
                      "# TYPE dragoman_stage_losses_total counter\n");
  for (guint r = 0; r < server->rooms->len; r++) {
    DragomanRoom *room = server->rooms->pdata[r];
    g_string_append_printf (s, "dragoman_stage_losses_total{room=\"%s\"} %u\n", dragoman_room_get_config (room)->id,
                            dragoman_stage_get_losses (dragoman_room_get_stage (room)));
  }
  g_string_append_printf (s,
                          "# HELP dragoman_srt_callers_refused_total SRT callers refused because another sender was on air\n"
                          "# TYPE dragoman_srt_callers_refused_total counter\n"
                          "dragoman_srt_callers_refused_total %" G_GUINT64_FORMAT "\n",
                          dragoman_srt_gate_refused_total ());
  append_booth_video_metrics (server, s);
  append_output_metrics (server, s);
  g_string_append (s, "# HELP dragoman_channel_interpretation 1 while a live interpreter is on the channel\n"
                      "# TYPE dragoman_channel_interpretation gauge\n");
  for (guint r = 0; r < server->rooms->len; r++) {
    DragomanRoom *room = server->rooms->pdata[r];
    for (guint c = 1; c < dragoman_room_n_channels (room); c++) {
      DragomanChannel *ch = dragoman_room_get_channel (room, c);
      g_string_append_printf (s, "dragoman_channel_interpretation{room=\"%s\",lang=\"%s\"} %d\n",
                              dragoman_room_get_config (room)->id, dragoman_channel_get_lang (ch),
                              dragoman_channel_get_mode (ch) == DRAGOMAN_CHANNEL_INTERPRETATION);
    }
  }
  g_string_append_printf (s,
                          "# HELP dragoman_listeners_refused_total WebSocket listeners refused, by reason\n"
                          "# TYPE dragoman_listeners_refused_total counter\n"
                          "dragoman_listeners_refused_total{reason=\"unknown\"} %" G_GUINT64_FORMAT "\n"
                          "dragoman_listeners_refused_total{reason=\"full\"} %" G_GUINT64_FORMAT "\n"
                          "dragoman_listeners_refused_total{reason=\"token\"} %" G_GUINT64_FORMAT "\n"
                          "# HELP dragoman_protocol_errors_total Listeners closed for breaking the protocol\n"
                          "# TYPE dragoman_protocol_errors_total counter\n"
                          "dragoman_protocol_errors_total %" G_GUINT64_FORMAT "\n"
                          "# HELP dragoman_uptime_seconds Seconds since the server started\n"
                          "# TYPE dragoman_uptime_seconds gauge\n"
                          "dragoman_uptime_seconds %.1f\n",
                          server->counters.refused_unknown, server->counters.refused_full,
                          server->counters.refused_token,
                          server->counters.protocol_errors,
                          (g_get_monotonic_time () - server->started_us) / 1e6);
  /* meters: the crew's levels, for a Grafana board beside the control page */
  g_string_append (s, "# HELP dragoman_level_dbfs Peak and RMS level of the last 80 ms\n# TYPE dragoman_level_dbfs gauge\n");
  for (guint r = 0; r < server->rooms->len; r++) {
    DragomanRoom *room = server->rooms->pdata[r];
    const char *id = dragoman_room_get_config (room)->id;
    const DragomanLevel *fl = dragoman_room_get_level (room, "floor");
    if (fl)
      g_string_append_printf (s, "dragoman_level_dbfs{room=\"%s\",meter=\"floor\",kind=\"peak\"} %.1f\n"
                                 "dragoman_level_dbfs{room=\"%s\",meter=\"floor\",kind=\"rms\"} %.1f\n",
                              id, fl->peak_db, id, fl->rms_db);
    for (guint c = 0; c < dragoman_room_n_channels (room); c++) {
      const char *lang = dragoman_channel_get_lang (dragoman_room_get_channel (room, c));
      g_autofree char *m = g_strdup_printf ("channel:%s", lang);
      const DragomanLevel *l = dragoman_room_get_level (room, m);
      if (l)
        g_string_append_printf (s, "dragoman_level_dbfs{room=\"%s\",meter=\"channel\",lang=\"%s\",kind=\"peak\"} %.1f\n"
                                   "dragoman_level_dbfs{room=\"%s\",meter=\"channel\",lang=\"%s\",kind=\"rms\"} %.1f\n",
                                id, lang, l->peak_db, id, lang, l->rms_db);
    }
  }
  append_publish_metrics (server, s);
  if (server->conncap) {
    DragomanConnCapStats cs;
    dragoman_conncap_get_stats (server->conncap, &cs);
    g_string_append_printf (
        s,
        "# HELP dragoman_connections_open Open client sockets (HTTP and WebSocket), counted from accept\n"
        "# TYPE dragoman_connections_open gauge\n"
        "dragoman_connections_open %u\n"
        "# HELP dragoman_connection_addresses Distinct client addresses with an open socket\n"
        "# TYPE dragoman_connection_addresses gauge\n"
        "dragoman_connection_addresses %u\n"
        "# HELP dragoman_connections_refused_total Sockets closed at accept by the connection cap, by the cap hit\n"
        "# TYPE dragoman_connections_refused_total counter\n"
        "dragoman_connections_refused_total{reason=\"max-connections\"} %" G_GUINT64_FORMAT "\n"
        "dragoman_connections_refused_total{reason=\"max-connections-per-address\"} %" G_GUINT64_FORMAT "\n",
        cs.open, cs.addresses, cs.refused_total, cs.refused_per_address);
  }
  if (server->control)
    dragoman_control_append_metrics (server->control, s);
  append_memory_metrics (server, s);
  return g_string_free (s, FALSE);
}

char *
dragoman_metrics_rooms_json (DragomanServer *server)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "version");
  json_builder_add_int_value (b, 1);
  json_builder_set_member_name (b, "rooms");
  json_builder_begin_array (b);
  for (guint r = 0; r < server->rooms->len; r++) {
    DragomanRoom *room = server->rooms->pdata[r];
    const DragomanRoomConfig *rc = dragoman_room_get_config (room);
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "id");
    json_builder_add_string_value (b, rc->id);
    json_builder_set_member_name (b, "title");
    json_builder_add_string_value (b, rc->title);
    json_builder_set_member_name (b, "floor_lang");
    json_builder_add_string_value (b, rc->floor_lang);
    /* a paid room: the page asks for the viewer token (never sent here) */
    json_builder_set_member_name (b, "token_required");
    json_builder_add_boolean_value (b, rc->viewer_token != NULL);
    DragomanStage *stage = dragoman_room_get_stage (room);
    json_builder_set_member_name (b, "stage");
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "state");
    json_builder_add_string_value (b, dragoman_stage_is_live (stage) ? "live" : "lost");
    json_builder_set_member_name (b, "reason");
    json_builder_add_string_value (b, dragoman_stage_get_reason (stage));
    json_builder_set_member_name (b, "since");
    json_builder_add_int_value (b, dragoman_stage_get_since (stage));
    json_builder_end_object (b);
    json_builder_set_member_name (b, "codec");
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "name");
    json_builder_add_string_value (b, "opus");
    json_builder_set_member_name (b, "rate");
    json_builder_add_int_value (b, 48000);
    json_builder_set_member_name (b, "channels");
    json_builder_add_int_value (b, 1);
    json_builder_set_member_name (b, "frame_ms");
    json_builder_add_int_value (b, rc->opus_frame_ms);
    json_builder_end_object (b);
    json_builder_set_member_name (b, "channels");
    json_builder_begin_array (b);
    for (guint c = 0; c < dragoman_room_n_channels (room); c++) {
      DragomanChannel *ch = dragoman_room_get_channel (room, c);
      const char *lang = dragoman_channel_get_lang (ch);
      const DragomanLanguage *l = dragoman_language_lookup (lang);
      const DragomanLanguage *floor = dragoman_language_lookup (rc->floor_lang);
      DragomanFanoutStats st;
      dragoman_fanout_get_stats (dragoman_channel_get_fanout (ch), &st);
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "lang");
      json_builder_add_string_value (b, lang);
      json_builder_set_member_name (b, "name");
      json_builder_add_string_value (b, l->name);
      json_builder_set_member_name (b, "native_name");
      /* orig is what the floor speaks: name it in the floor's language */
      g_autofree char *orig_name = g_strdup_printf ("Original (%s)", floor->native_name);
      json_builder_add_string_value (b, c == 0 ? orig_name : l->native_name);
      json_builder_set_member_name (b, "state");
      json_builder_add_string_value (b, dragoman_channel_mode_name (dragoman_channel_get_mode (ch)));
      json_builder_set_member_name (b, "listeners");
      json_builder_add_int_value (b, st.listeners);
      json_builder_end_object (b);
    }
    json_builder_end_array (b);
    json_builder_end_object (b);
  }
  json_builder_end_array (b);
  json_builder_end_object (b);
  g_autoptr (JsonNode) root = json_builder_get_root (b);
  return json_to_string (root, FALSE);
}
