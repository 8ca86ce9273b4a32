/* config — the server's configuration, read once from a GLib key file.
 *
 * Owner: main.c loads it; everything else reads it and never writes it. A bad
 * file is a G_KEY_FILE_ERROR naming file, group and key; main exits with 2. */
#pragma once
#include <glib.h>

#define DRAGOMAN_CONFIG_ERROR (g_quark_from_static_string ("dragoman-config"))

typedef struct {
  const char *code;        /* BCP-47: "hy" */
  const char *name;        /* English name: "Armenian" */
  const char *native_name; /* in its own script: "Հայերեն" */
} DragomanLanguage;

typedef struct {
  char *room_id;
  char *lang;
  char *source;          /* pipelines/booth-<source>.pipeline */
  GHashTable *vars;      /* every key of the group, for ${key} in the pipeline */
  char *on_air;          /* "schedule", "always", "signal" or "manual" */
  char *token;           /* browser booths: what an interpreter signs in with */
  int max_interpreters;  /* browser booths */
  int jitter_ms;         /* browser booths: WebRTC jitter buffer */
  double on_air_seconds; /* "test" booths: scheduled on/off air; 0 = always on */
  double off_air_seconds;
  double schedule_offset;
} DragomanBoothConfig;

typedef struct {
  char *dir;           /* recordings/ROOM-DATE-NNN.mkv */
  int split_minutes;   /* a new file every this often (at a keyframe) */
  gboolean autostart;  /* with the server, or from the control page */
  gboolean audio_only; /* also one audio-only file per channel (the proceedings) */
} DragomanRecordConfig;

typedef struct {
  char *name;
  char *room_id;
  char *lang;   /* the channel whose AAC goes with the video ("orig" or a language) */
  char *url;    /* rtmp://, rtmps:// (key appended) or srt:// (caller) */
  char *key;    /* the platform's stream key: never logged or shown in full */
  gboolean autostart;
} DragomanRestreamConfig;

/* [publish nchan]: every channel's /ws/listen stream into an nginx+Nchan edge tier
 * (docs/deploy.md), one WebSocket per room/language */
typedef struct {
  char *url;    /* ws:// or wss://HOST[:PORT]/PATH of the Nchan publisher location */
  char *token;  /* NULL or sent as "Authorization: Bearer …": never logged */
  gboolean tls_insecure; /* wss: accept a self-signed certificate (a LAN edge) */
} DragomanPublishConfig;

typedef struct {
  char *id;
  char *title;
  char *floor_lang;  /* language spoken on the floor (tags orig) */
  char *stage;       /* pipelines/stage-<stage>.pipeline */
  GHashTable *stage_vars;
  char **langs;      /* interpretation channels, without "orig" */
  int opus_frame_ms; /* 10 or 20 */
  int opus_bitrate;  /* bit/s */
  double duck_db;    /* floor level under a live interpreter */
  gboolean hls;      /* HLS with one audio rendition per channel */
  int hls_segment_seconds;
  int hls_window;    /* segments in a media playlist */
  int booth_video_width, booth_video_height; /* the stage to browser booths; 0: off */
  int booth_video_kbps;
  GPtrArray *booths; /* DragomanBoothConfig* */
  DragomanRecordConfig *record; /* NULL: no [record ROOM] */
  char *viewer_token; /* NULL: an open room; else /ws/listen and /hls need ?token= (rotates on SIGHUP) */
} DragomanRoomConfig;

typedef struct {
  char *path;
  char *address;
  int port;
  char *web_root;
  char *pipeline_dir;
  char *media_dir;
  char *hls_dir;
  int listen_burst_ms;
  int listen_soft_limit_ms;
  int listen_hard_limit_ms;
  int max_listeners;
  char *admin_token;   /* the control page; NULL: no control page */
  char *tls_cert;      /* PEM certificate (chain); NULL: plain HTTP */
  char *tls_key;       /* PEM private key */
  gboolean redirect_http; /* TLS: answer plain http:// on the same port with a redirect */
  char *stun_server;   /* webrtcbin's stun-server, e.g. stun://stun.example.org:3478 */
  char *turn_server;   /* turn(s)://user:pass@host:port */
  char **ice_addresses; /* local addresses ICE may use; empty: all */
  GPtrArray *rooms; /* DragomanRoomConfig* */
  GPtrArray *restreams; /* DragomanRestreamConfig* */
  DragomanPublishConfig *publish; /* NULL: no [publish nchan] */
  /* access (parse_access): connection caps and CORS */
  int max_connections;             /* open sockets in total; refused at accept beyond it */
  int max_connections_per_address; /* open sockets from one client address; 0: no cap */
  char **cors_origins;             /* allowed Origin values, lower case; {"*"}: any; empty: same-origin only */
} DragomanConfig;

const DragomanLanguage *dragoman_language_lookup (const char *code);
/* 1-32 of [A-Za-z0-9_-]: room ids, language codes, pipeline names */
gboolean dragoman_config_valid_id (const char *s);

/* overrides: "GROUP.KEY=VALUE" strings applied after loading (tests, --set) */
DragomanConfig *dragoman_config_load (const char *path, const char *const *overrides, GError **error);
DragomanConfig *dragoman_config_load_data (const char *path, const char *data, const char *const *overrides,
                                           GError **error);
void dragoman_config_free (DragomanConfig *config);
/* SIGHUP: new admin, booth and viewer tokens from `fresh` into `live`; returns how many changed */
guint dragoman_config_rotate_tokens (DragomanConfig *live, const DragomanConfig *fresh);
const DragomanRoomConfig *dragoman_config_find_room (const DragomanConfig *config, const char *id);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (DragomanConfig, dragoman_config_free)
