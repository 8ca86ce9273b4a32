#include "booth.h"

GST_DEBUG_CATEGORY_STATIC (booth_debug);
#define GST_CAT_DEFAULT booth_debug

struct _DragomanBooth {
  const DragomanBoothConfig *config;
  DragomanChannel *channel; /* borrowed from the room */
  gboolean on_air;
  guint timer;
};

DragomanBooth *
dragoman_booth_new (const DragomanBoothConfig *config, DragomanChannel *channel)
{
  if (!booth_debug)
    GST_DEBUG_CATEGORY_INIT (booth_debug, "dragoman-booth", 0, "dragoman booths");
  DragomanBooth *b = g_new0 (DragomanBooth, 1);
  b->config = config;
  b->channel = channel;
  return b;
}

void
dragoman_booth_free (DragomanBooth *b)
{
  if (!b)
    return;
  if (b->timer)
    g_source_remove (b->timer);
  g_free (b);
}

void
dragoman_booth_set_on_air (DragomanBooth *b, gboolean on_air)
{
  if (b->on_air == on_air)
    return;
  b->on_air = on_air;
  GST_INFO ("booth %s/%s: %s", b->config->room_id, b->config->lang, on_air ? "on air" : "off air");
  dragoman_channel_set_input (b->channel, on_air, FALSE, FALSE, GST_CLOCK_TIME_NONE);
}

static gboolean
on_schedule (gpointer data)
{
  DragomanBooth *b = data;
  dragoman_booth_set_on_air (b, !b->on_air);
  double next = b->on_air ? b->config->on_air_seconds : b->config->off_air_seconds;
  b->timer = g_timeout_add ((guint) (next * 1000), on_schedule, b);
  return G_SOURCE_REMOVE;
}

static void
on_signal (DragomanChannel *channel, gboolean present, gpointer data)
{
  DragomanBooth *b = data;
  GST_INFO ("booth %s/%s: input %s", b->config->room_id, b->config->lang, present ? "has signal" : "lost its signal");
  if (g_str_equal (b->config->on_air, "signal"))
    dragoman_booth_set_on_air (b, present);
}

void
dragoman_booth_start (DragomanBooth *b)
{
  const char *mode = b->config->on_air;
  dragoman_channel_set_voice_signal_func (b->channel, on_signal, b);
  if (g_str_equal (mode, "always"))
    dragoman_booth_set_on_air (b, TRUE);
  else if (g_str_equal (mode, "schedule"))
    /* off air until the offset, so staggered booths cover every state early on */
    b->timer = g_timeout_add ((guint) (b->config->schedule_offset * 1000), on_schedule, b);
}

gboolean
dragoman_booth_is_on_air (DragomanBooth *b)
{
  return b->on_air;
}

const char *
dragoman_booth_get_lang (DragomanBooth *b)
{
  return b->config->lang;
}
