#!/usr/bin/env python3
"""The SRT stage under load, and the latency from the floor to the hall's ears.

One server on configs/conference.ini (SRT stage, five browser booths; free HTTP
and SRT ports, recording not started, its own HLS directory), fed the way an AV
crew's encoder feeds it: ffmpeg, MPEG-TS over SRT (caller, latency 120 ms),
H.264 1920x1080 30 fps 4 Mbit/s (libx264 -preset veryfast -tune zerolatency
-g 60 -pix_fmt yuv420p) and AAC 128 kbit/s mono 48 kHz.  The video is encoded
once with exactly those settings (build/bench-media/, 10 s) and looped with
-stream_loop -c copy: encoding 1080p30 live costs ~0.4 core of this machine's
two, taken from the server being measured; the bytes on the wire are the same.
The audio is encoded live from a click track (lavfi aevalsrc: a 2 ms burst of
3 kHz every 501.3 ms, as tools/clickbench.c, over -48 dBFS noise), its frames
sent at once (-pes_payload_size 0 -flush_packets 1).

Measured:
  cpu            the server process only (utime+stime from /proc/PID/stat over
                 the window, % of one core; VmRSS at its end), stage live, nobody
                 listening: the conference as it is (HLS on), then (full run) a
                 fresh server as the channels alone (`room main.hls=false` and no
                 [record main]: no program pipeline).  ffmpeg's CPU beside it.
  floor_to_ear   click k sent into the stage → heard by a /ws/listen client on
                 `orig` (build/clickbench --listen-only: arrival of the WebSocket
                 message carrying the onset + the onset's offset in it).  The
                 header's ingress time splits it (send → ingress → arrival).
  floor_to_booth the same click in a browser booth's WebRTC return feed
                 (build/boothpeer --return-clicks on booth `en`, which listens to
                 the floor), decoded after the peer's jitter buffer (in-order
                 packets pass it at once).
  floor_to_hls   when the HLS segment holding click k appears in the `orig` audio
                 playlist (polled every 50 ms; each new segment fetched and
                 decoded behind the one before it to find its clicks).  A player
                 starts further back (hls.js: 3 segments behind the live edge).
  All three at once, on the HLS-on server, after its CPU window.

The send time of click k.  ffmpeg sends to a UDP relay of ours (SrtRelay) that
forwards to the server; it parses the MPEG-TS inside SRT's data packets and
keeps, for every AAC frame (by PTS), the SRT timestamp of the datagram that
completed its PES: when ffmpeg handed it to SRT (srt_sendmsg), on the sender's
clock, which SRT's receiver delivers at + latency (TSBPD).  Mapped to ours by
the least delayed datagram: offset = min(kernel receive time (SO_TIMESTAMPNS)
− SRT timestamp).  (The wire time itself can be later than that: SRT's sending
thread paces, and on a loaded machine runs late; reported as
relay.sender_srt_queue_ms, not counted.)  AAC in MPEG-TS carries no
encoder-delay field, so a decoder (the server's avdec_aac, or ffmpeg) puts input
sample n at the first frame's PTS + 1024 + n (seen with this ffmpeg: a click
generated at sample n decodes at 1024 + n + 11, the 11 being the detector's
threshold crossing, as in clickbench).  So

  send_k = send time of the AAC frame whose decoded span holds the onset
           + the onset's offset in that frame

clickbench's definition (packet departure + onset offset).  Checked on every
run against the stream (relay.click_mapping_check): the two frames whose MDCT
windows hold a click are the large ones, the mapped frame and the one before.
What is counted: SRT's latency (120 ms), tsdemux, aacparse, AAC decode, the
floor's failover selector, the channel mixer (10 ms blocks), the Opus frame and
look-ahead, the fan-out and the socket.  aacparse holds 0-2 frames: while it
looked for sync it set its minimum frame size to the first frame + 9 bytes
(379 here) and keeps it, so it parses only once that many bytes are queued: one
frame behind at 128 kbit/s (~340-byte frames), two behind for smaller frames
(seen with GST_DEBUG=baseparse:6; without aacparse the p50 is ~20 ms lower).
Not counted: the sender's encoding and muxing (its pacing, send − PTS, is
reported as sender_jitter_ms).  Reference error: the offset is the least
delayed of thousands of datagrams (µs on loopback); SRT's own clock mapping
(its handshake went through the relay, relay.max_hold_ms) may shift the whole
run by a few ms on a busy machine.

Usage: tools/stagebench.py [--quick] [--json] [--booth-latency=MS]
                           [--variants=channels,program]
  (bench.py imports run(); logs in build/test-artifacts/stagebench-*;
  STAGEBENCH_DUMP=FILE writes the raw frames, arrivals and HLS clicks there)
"""
import array, bisect, json, os, selectors, shutil, signal, socket, struct, subprocess, sys, threading, time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
B = os.path.join(ROOT, "build")
ART = os.path.join(B, "test-artifacts")
MEDIA = os.path.join(B, "bench-media")

RATE = 48000
PERIOD_MS = 501.3
PERIOD = RATE * PERIOD_MS / 1000          # samples
AAC_FRAME = 1024
TICKS = 90000 / RATE                      # MPEG-TS PTS ticks per sample
SRT_LATENCY_MS = 120                      # configs/conference.ini [stage main] latency-ms
# the click over the hall's noise: uniform noise at -48 dBFS peak (below the detector's re-arm level,
# 0.0375). A floor is never digital silence, and the noise keeps AAC frames at the bitrate's ~340 bytes,
# as speech does: silent frames (11 bytes) are grouped several to a PES by ffmpeg's muxer and held
# longer by the server's aacparse (see above).
CLICK_EXPR = ("0.6*sin(2*PI*3000*t)*sin(PI*mod(t,{p})/0.002)*lt(mod(t,{p}),0.002)+0.004*(2*random(0)-1)"
              .format(p=PERIOD_MS / 1000))
VIDEO = {"size": "1920x1080", "rate": 30, "bitrate": "4M", "gop": 60, "preset": "veryfast", "seconds": 10}
BOOTH, BOOTH_TOKEN = "en", "change-me-en-booth"   # configs/conference.ini [booth main/en]
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


def free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def pct(xs, q):
    xs = sorted(xs)
    if not xs:
        return None
    return round(xs[min(len(xs) - 1, max(0, int(-(-q * len(xs) // 1)) - 1))], 1)


def stats(xs):
    return {"p50": pct(xs, 0.5), "p95": pct(xs, 0.95), "p99": pct(xs, 0.99),
            "min": round(min(xs), 1) if xs else None, "max": round(max(xs), 1) if xs else None}


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])   # utime, stime (fields 14, 15)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class CpuWindow:
    """CPU % of one core of each pid between start() and stop()"""
    def __init__(self, pids):
        self.pids = pids

    def start(self):
        self.t0, self.c0 = time.monotonic(), {p: cpu_ticks(p) for p in self.pids}

    def stop(self):
        dt = time.monotonic() - self.t0
        hz = os.sysconf("SC_CLK_TCK")
        return {p: round(100.0 * (cpu_ticks(p) - self.c0[p]) / hz / dt, 1) for p in self.pids}, round(dt, 2)


# ---- the relay: SRT's UDP through us, the AAC frames' wire times noted -------

class SrtRelay(threading.Thread):
    """UDP relay between an SRT caller (ffmpeg) and the server's SRT listener.
    Notes the kernel receive time of the first datagram carrying each audio PES
    (the PMT's AAC stream), keyed by PTS. SRT is indifferent to the relay: its
    handshake carries socket ids, not addresses that must match."""

    def __init__(self, target_port):
        super().__init__(daemon=True)
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.port = self.front.getsockname()[1]
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.connect(("127.0.0.1", target_port))
        for s in (self.front, self.back):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.front.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.caller = None
        self.stop_flag = False
        self.lock = threading.Lock()
        self.audio_wire = {}       # PTS of each AAC frame → wire time (µs since the epoch)
        self.audio_srt = {}        # PTS → SRT timestamp of the datagram that completed it (µs, sender's clock)
        self.srt_offset = None     # min(wire − SRT timestamp): the sender's clock → ours
        self.srt_ts_last = None    # for the 32-bit wrap (every 71.6 minutes)
        self.srt_wraps = 0
        self.audio_size = {}       # PTS → ADTS frame bytes
        self.duplicates = []       # (PTS, µs between the two sightings) of a frame seen twice
        self.audio_pes_frames = {} # frames per PES → PES count
        self.pes = None
        self.pmt_pid = self.audio_pid = self.video_pid = None
        self.seen_seq = set()
        self.datagrams = self.bytes = self.retransmits = 0
        self.max_hold_us = 0       # our own forwarding delay (receive → sent on)

    def run(self):
        sel = selectors.DefaultSelector()
        sel.register(self.front, selectors.EVENT_READ, "front")
        sel.register(self.back, selectors.EVENT_READ, "back")
        while not self.stop_flag:
            for key, _ in sel.select(0.2):
                try:
                    if key.data == "front":
                        data, anc, _, addr = self.front.recvmsg(65536, socket.CMSG_SPACE(16))
                        self.caller = addr
                        try:
                            self.back.send(data)
                        except OSError:
                            pass
                        wire = None
                        for level, kind, blob in anc:
                            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                                sec, nsec = struct.unpack("qq", blob[:16])
                                wire = sec * 1000000 + nsec // 1000
                        if wire is None:
                            wire = time.time_ns() // 1000
                        self.max_hold_us = max(self.max_hold_us, time.time_ns() // 1000 - wire)
                        self.parse(data, wire)
                    else:
                        data = self.back.recv(65536)
                        if self.caller:
                            self.front.sendto(data, self.caller)
                except OSError:
                    pass

    def parse(self, d, wire):
        if len(d) < 16 or d[0] & 0x80:          # SRT control packet
            return
        self.datagrams += 1
        self.bytes += len(d)
        seq, _, srt_ts = struct.unpack(">III", d[:12])
        if seq in self.seen_seq:
            self.retransmits += 1
            return
        self.seen_seq.add(seq)
        # SRT's timestamp: when the sender handed the packet to SRT (srt_sendmsg); the receiver delivers
        # it at that + latency (TSBPD). The wire time can be later: SRT's sending thread paces and,
        # on a loaded machine, runs late.
        if self.srt_ts_last is not None and srt_ts < self.srt_ts_last and self.srt_ts_last - srt_ts > 1 << 31:
            self.srt_wraps += 1
        self.srt_ts_last = srt_ts
        srt_ts += self.srt_wraps << 32
        if self.srt_offset is None or wire - srt_ts < self.srt_offset:
            self.srt_offset = wire - srt_ts
        for off in range(16, len(d) - 187, 188):
            ts = d[off:off + 188]
            if ts[0] != 0x47:
                break
            pid = (ts[1] & 0x1F) << 8 | ts[2]
            pusi = ts[1] & 0x40
            afc = (ts[3] >> 4) & 3
            p = 4 + (1 + ts[4] if afc & 2 else 0)
            if not (afc & 1) or p >= 188:
                continue
            pl = ts[p:]
            if pid == self.audio_pid:
                self.audio_ts(pl, pusi, wire, srt_ts)
            elif not pusi:
                continue
            elif pid == 0:                        # PAT → the first programme's PMT
                sec = pl[1 + pl[0]:]
                if len(sec) >= 16:
                    self.pmt_pid = (sec[10] & 0x1F) << 8 | sec[11]
            elif pid == self.pmt_pid:           # PMT → the AAC and H.264 streams
                sec = pl[1 + pl[0]:]
                slen = (sec[1] & 0x0F) << 8 | sec[2]
                i = 12 + ((sec[10] & 0x0F) << 8 | sec[11])
                while i + 5 <= min(len(sec), 3 + slen - 4):
                    st, epid = sec[i], (sec[i + 1] & 0x1F) << 8 | sec[i + 2]
                    if st == 0x0F and self.audio_pid is None:
                        self.audio_pid = epid
                    elif st == 0x1B and self.video_pid is None:
                        self.video_pid = epid
                    i += 5 + ((sec[i + 3] & 0x0F) << 8 | sec[i + 4])

    def audio_ts(self, pl, pusi, wire, srt_ts):
        """reassembles the audio PES; when complete, each ADTS frame in it is noted with
        the wire time of the datagram that completed it (a frame is usable only whole)"""
        if pusi:
            self.pes = bytearray(pl) if pl[:3] == b"\x00\x00\x01" else None
        elif self.pes is not None:
            self.pes += pl
        if self.pes is None or len(self.pes) < 14:
            return
        plen = self.pes[4] << 8 | self.pes[5]
        if not plen or len(self.pes) < 6 + plen:
            return
        pes, self.pes = bytes(self.pes[:6 + plen]), None
        if not pes[7] & 0x80:
            return
        h = pes[9:14]
        pts = ((h[0] >> 1) & 7) << 30 | h[1] << 22 | (h[2] >> 1) << 15 | h[3] << 7 | h[4] >> 1
        i, n = 9 + pes[8], 0
        with self.lock:
            while i + 7 <= len(pes) and pes[i] == 0xFF and pes[i + 1] & 0xF0 == 0xF0:
                flen = (pes[i + 3] & 3) << 11 | pes[i + 4] << 3 | pes[i + 5] >> 5
                fpts = pts + round(n * AAC_FRAME * TICKS)
                if fpts in self.audio_wire:
                    self.duplicates.append((fpts, wire - self.audio_wire[fpts]))
                else:
                    self.audio_wire[fpts] = wire
                    self.audio_srt[fpts] = srt_ts
                    self.audio_size[fpts] = flen
                n += 1
                i += max(flen, 7)
            self.audio_pes_frames[n] = self.audio_pes_frames.get(n, 0) + 1

    def frames(self):
        """[(PTS, send time µs)]: SRT's timestamp on our clock (the sender's least delayed datagram
        defines the offset), the moment ffmpeg handed the frame to SRT"""
        with self.lock:
            return sorted((p, t + self.srt_offset) for p, t in self.audio_srt.items())

    def wire_lag_ms(self):
        """wire time − send time per frame: SRT's sender-side queueing (not in the latency)"""
        with self.lock:
            return [(self.audio_wire[p] - (t + self.srt_offset)) / 1000 for p, t in self.audio_srt.items()]

    def close(self):
        self.stop_flag = True
        self.join(2)
        self.front.close()
        self.back.close()


class Clicks:
    """The click schedule in the stream: the AAC frames' wire times → send time of click k"""

    def __init__(self, frames):
        self.frames = frames                      # [(pts, wire_us)] sorted
        self.pts = [p for p, _ in frames]
        self.first = frames[0][0] if frames else 0
        # the sender's pacing: wire − PTS per frame, relative to its least delayed frame
        d = [w - p * 1000000 / 90000 for p, w in frames]
        self.pacing_ms = [(x - min(d)) / 1000 for x in d] if d else []

    def send_us(self, k):
        """wire time of click k's onset (None if its frame was not seen)"""
        t = self.first + (AAC_FRAME + k * PERIOD) * TICKS     # the onset's PTS as decoded
        i = bisect.bisect_right(self.pts, t) - 1
        if i < 0 or t - self.pts[i] >= AAC_FRAME * TICKS + 1:
            return None
        return self.frames[i][1] + (t - self.pts[i]) * 1000000 / 90000

    def frame_of(self, k):
        t = self.first + (AAC_FRAME + k * PERIOD) * TICKS
        return bisect.bisect_right(self.pts, t) - 1

    def check(self, sizes):
        """the mapping, checked against the stream itself: a click makes the two AAC frames whose
        windows hold it (the mapped one and the one before) larger than the noise's; one frame off
        and the large ones would sit at -2/-1 or 0/+1. Mean bytes of the frames around each click."""
        by = {}
        for off in (-2, -1, 0, 1):
            v = [sizes[self.pts[i + off]] for k, _ in self.sends() for i in [self.frame_of(k)]
                 if 0 <= i + off < len(self.pts) and self.pts[i + off] in sizes]
            by[off] = round(sum(v) / len(v)) if v else None
        allv = sorted(sizes.values())
        med = allv[len(allv) // 2] if allv else None
        ok = None not in by.values() and min(by[-1], by[0]) > max(by[-2], by[1])
        return {"mean_frame_bytes_by_offset": by, "median_frame_bytes": med, "ok": ok}

    def sends(self, after_us=0, before_us=None):
        """[(k, send µs)] of the clicks whose frames were seen, sent in [after_us, before_us]"""
        if not self.pts:
            return []
        last = int(((self.pts[-1] - self.first) / TICKS - AAC_FRAME) / PERIOD) + 1
        out = []
        for k in range(max(0, last)):
            s = self.send_us(k)
            if s is not None and s >= after_us and (before_us is None or s <= before_us):
                out.append((k, s))
        return out


# Nothing can arrive before SRT has delivered it (send + latency): a click is looked for from there
# on, for 0.95 period, so a latency between ~105 and ~580 ms is matched to the right click (a window
# from the send itself would take a click delayed by more than 0.8 period for the next one).
EARLIEST_MS = SRT_LATENCY_MS - 15


def match(sends, arrivals_us):
    """each sent click → the first arrival in [send + EARLIEST_MS, + 0.95 period): {k: (latency ms, index)}"""
    order = sorted(range(len(arrivals_us)), key=lambda j: arrivals_us[j])
    arr = [arrivals_us[j] for j in order]
    lat = {}
    for k, s in sends:
        i = bisect.bisect_left(arr, s + EARLIEST_MS * 1000)
        if i < len(arr) and arr[i] - s < (EARLIEST_MS + 0.95 * PERIOD_MS) * 1000:
            lat[k] = ((arr[i] - s) / 1000, order[i])
    return lat


def detect_clicks(pcm):
    """clickbench's detector on S16 samples: sample index of each onset"""
    out, armed, quiet = [], False, 0
    hi, lo = int(0.15 * 32768), int(0.15 / 4 * 32768)
    for i, v in enumerate(pcm):
        a = -v if v < 0 else v
        if armed and a > hi:
            out.append(i)
            armed, quiet = False, 0
        elif a < lo:
            quiet += 1
            if quiet >= RATE // 10:
                armed = True
        else:
            quiet = 0
    return out


# ---- HLS: when does the segment holding click k appear? ---------------------

class HlsWatch(threading.Thread):
    def __init__(self, port, rendition="audio-orig", poll_s=0.05):
        super().__init__(daemon=True)
        self.base = f"http://127.0.0.1:{port}"
        self.url = f"{self.base}/hls/main/{rendition}.m3u8"
        self.poll_s = poll_s
        self.stop_flag = False
        self.segments = {}   # name → {"appeared_us", "pdt_us", "duration", "data"}
        self.polls = self.errors = 0
        self.max_poll_gap_ms = 0.0
        self.last_poll = None

    def run(self):
        while not self.stop_flag:
            t0 = time.time()
            try:
                pl = urllib.request.urlopen(self.url, timeout=2).read().decode()
                seen = time.time_ns() // 1000
                if self.last_poll:
                    self.max_poll_gap_ms = max(self.max_poll_gap_ms, (seen - self.last_poll) / 1000)
                self.last_poll = seen
                self.polls += 1
                pdt = dur = None
                for line in pl.splitlines():
                    if line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
                        pdt = iso_us(line.split(":", 1)[1])
                    elif line.startswith("#EXTINF:"):
                        dur = float(line[8:].split(",")[0])
                    elif line and not line.startswith("#"):
                        name = line.rsplit("/", 1)[1]
                        if name not in self.segments and self.polls > 1:   # not those there before we looked
                            self.segments[name] = {"appeared_us": seen, "pdt_us": pdt, "duration": dur,
                                                   "url": self.base + line}
                        elif name not in self.segments:
                            self.segments[name] = None
                for s in list(self.segments.values()):
                    if s and "data" not in s:
                        s["data"] = urllib.request.urlopen(s["url"], timeout=3).read()
            except OSError:
                self.errors += 1
            time.sleep(max(0, self.poll_s - (time.time() - t0)))

    def close(self):
        self.stop_flag = True
        self.join(5)

    def clicks(self):
        """[(segment appeared µs, click's place in server time µs = PDT + offset, segment)]. Each segment
        is decoded behind the one before it (when we have it), so a click at its very start is armed
        and found, and the AAC decoder starts warm."""
        def decode(data):
            r = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-i", "pipe:0", "-map", "0:a:0",
                                "-f", "s16le", "-ac", "1", "-ar", str(RATE), "pipe:1"],
                               input=data, capture_output=True, timeout=30)
            return array.array("h", r.stdout[:len(r.stdout) // 2 * 2])
        out, prev = [], None
        for name, s in sorted(self.segments.items()):
            if not s or not s.get("data") or s["pdt_us"] is None:
                prev = None
                continue
            if prev is not None:
                skip = len(decode(prev))
                pcm = decode(prev + s["data"])
                first = max(0, skip - RATE // 5)
                onsets = [j + first - skip for j in detect_clicks(pcm[first:]) if j + first >= skip]
            else:
                onsets = detect_clicks(decode(s["data"]))
            for i in onsets:
                out.append((s["appeared_us"], s["pdt_us"] + i * 1000000 / RATE, name))
            prev = s["data"]
        return out


def iso_us(s):
    import datetime
    s = s.strip().replace("Z", "+00:00")
    return int(datetime.datetime.fromisoformat(s).timestamp() * 1000000)


# ---- the server and the sender ----------------------------------------------

def clip():
    """the stage's video, encoded once: 1080p30 4 Mbit/s H.264 as the brief's encoder makes it"""
    v = VIDEO
    path = os.path.join(MEDIA, f"stage-{v['size']}-{v['rate']}fps-{v['bitrate']}-{v['preset']}-g{v['gop']}.mkv")
    if not os.path.exists(path):
        os.makedirs(MEDIA, exist_ok=True)
        tmp = path + ".tmp.mkv"
        subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                        f"testsrc2=size={v['size']}:rate={v['rate']}", "-t", str(v["seconds"]),
                        "-c:v", "libx264", "-preset", v["preset"], "-tune", "zerolatency", "-b:v", v["bitrate"],
                        "-g", str(v["gop"]), "-pix_fmt", "yuv420p", "-an", tmp], check=True, timeout=300)
        os.replace(tmp, path)
    return path


def sender_cmd(port, video):
    return ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
            "-re", "-stream_loop", "-1", "-i", video,
            "-re", "-f", "lavfi", "-i", f"aevalsrc='{CLICK_EXPR}':s={RATE}:c=mono",
            "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac", "-b:a", "128k",
            "-f", "mpegts", "-pes_payload_size", "0", "-flush_packets", "1",
            f"srt://127.0.0.1:{port}?mode=caller&latency={SRT_LATENCY_MS * 1000}&pkt_size=1316"]


def config_without_record():
    """configs/conference.ini without its [record main] group (a copy in build/test-artifacts): with no
    HLS, recording or restream a room builds no program pipeline (no AAC encoders, no video bridge)"""
    out, skip = [], False
    for line in open(os.path.join(ROOT, "configs", "conference.ini")):
        if line.startswith("["):
            skip = line.strip() == "[record main]"
        if not skip:
            out.append(line)
    path = os.path.join(ART, "stagebench-conference-no-record.ini")
    with open(path, "w") as f:
        f.write("# generated by tools/stagebench.py from configs/conference.ini: [record main] removed\n")
        f.writelines(out)
    return path


# the server's variants for the CPU figures
VARIANTS = {
    "hls": "HLS on (the conference's default): channels, program (6 AAC + video), HLS",
    "program": "room main.hls=false: channels and the program pipeline (kept for [record main])",
    "channels": "room main.hls=false, no [record main]: the channels alone (no program pipeline)",
}


class Stage:
    """build/dragoman on configs/conference.ini, an SRT sender through the relay"""

    def __init__(self, variant="hls", relay=True):
        self.port, self.srt = free_port(), free_port(socket.SOCK_DGRAM)
        os.makedirs(ART, exist_ok=True)
        config = "configs/conference.ini"
        sets = [f"server.port={self.port}", f"stage main.port={self.srt}",
                f"stage main.latency-ms={SRT_LATENCY_MS}", f"server.hls-dir={ART}/hls-{self.port}",
                "webrtc.ice-addresses=127.0.0.1"]
        if variant == "channels":
            config = config_without_record()
        else:
            sets += ["record main.autostart=false", f"record main.dir={ART}/rec-{self.port}"]
        if variant != "hls":
            sets.append("room main.hls=false")
        args = [os.path.join(B, "dragoman"), "--config", config]
        for s in sets:
            args += ["--set", s]
        self.log = open(os.path.join(ART, f"stagebench-server-{self.port}.log"), "w")
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        self.relay = self.sender = None
        self.sender_log = None
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dragoman exited {self.proc.returncode}: see {self.log.name}")
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1).read().startswith(b"ok"):
                    break
            except OSError:
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError("the stage server did not become healthy")
        if relay:
            self.relay = SrtRelay(self.srt)
            self.relay.start()

    def state(self):
        rooms = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/v1/rooms", timeout=2).read())
        return rooms["rooms"][0]["stage"]["state"]

    def send(self, video):
        port = self.relay.port if self.relay else self.srt
        self.sender_log = open(os.path.join(ART, f"stagebench-ffmpeg-{self.port}.log"), "w")
        self.sender = subprocess.Popen(sender_cmd(port, video), cwd=ROOT, stdout=subprocess.DEVNULL,
                                       stderr=self.sender_log)
        t0 = time.time()
        while time.time() - t0 < 15:
            if self.sender.poll() is not None:
                raise RuntimeError(f"ffmpeg exited {self.sender.returncode}: see {self.sender_log.name}")
            try:
                if self.state() == "live":
                    return time.time() - t0
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("the stage did not go live")

    def stop(self):
        for p in (self.sender, self.proc):
            if p and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if self.relay:
            self.relay.close()
        for f in (self.log, self.sender_log):
            if f:
                f.close()
        # 1080p segments: ~12 MB a server, kept by nobody
        shutil.rmtree(os.path.join(ART, f"hls-{self.port}"), ignore_errors=True)


def cpu_run(stage, seconds, warmup):
    time.sleep(warmup)
    live_before = stage.state() == "live"
    w = CpuWindow([stage.proc.pid, stage.sender.pid])
    w.start()
    time.sleep(seconds)
    cpu, dt = w.stop()
    return {"seconds": dt, "server_cpu_pct": cpu[stage.proc.pid], "server_rss_kib": rss_kib(stage.proc.pid),
            "sender_cpu_pct": cpu[stage.sender.pid], "stage_live_throughout": live_before and stage.state() == "live"}


def latency_run(stage, seconds, booth_latency_ms):
    """clicks → orig listener, booth return feed, HLS playlist; all at once"""
    listen = subprocess.Popen([os.path.join(B, "clickbench"), "--url",
                               f"ws://127.0.0.1:{stage.port}/ws/listen?room=main&lang=orig",
                               "--listen-only", str(int(seconds) + 1)],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
    peer_log = open(os.path.join(ART, f"stagebench-boothpeer-{stage.port}.log"), "w")
    peer = subprocess.Popen([os.path.join(B, "boothpeer"), "--url",
                             f"ws://127.0.0.1:{stage.port}/ws/booth?room=main&booth={BOOTH}",
                             "--token", BOOTH_TOKEN, "--name", "stagebench", "--volume", "0",
                             "--latency", str(booth_latency_ms), "--return-clicks",
                             "--seconds", str(int(seconds) + 1), "--json"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=peer_log, text=True)
    hls = HlsWatch(stage.port)
    hls.start()
    t_start = time.time_ns() // 1000
    try:
        lj = json.loads(listen.communicate(timeout=seconds + 60)[0])
        arrivals = lj["arrivals_us"]
        peer_out = peer.communicate(timeout=seconds + 60)[0]
    finally:
        for p in (listen, peer):
            if p.poll() is None:
                p.kill()
                p.wait()
        peer_log.close()
        hls.close()
    t_end = time.time_ns() // 1000
    try:
        pj = json.loads(peer_out.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        pj = {"ok": False, "errors": ["no JSON from boothpeer"]}
    frames = stage.relay.frames()
    hclicks = hls.clicks()
    ck = Clicks(frames)
    res = {"srt_latency_ms": SRT_LATENCY_MS, "click_period_ms": PERIOD_MS,
           "sender_jitter_ms": {"p50": pct(ck.pacing_ms, 0.5), "p99": pct(ck.pacing_ms, 0.99),
                                "max": pct(ck.pacing_ms, 1.0)},
           "relay": {"datagrams": stage.relay.datagrams, "retransmits": stage.relay.retransmits,
                     "audio_frames": len(frames), "frames_per_pes": stage.relay.audio_pes_frames,
                     "duplicate_frames": len(stage.relay.duplicates),
                     "sender_srt_queue_ms": stats(stage.relay.wire_lag_ms()),
                     "click_mapping_check": ck.check(stage.relay.audio_size),
                     "max_hold_ms": round(stage.relay.max_hold_us / 1000, 2)}}
    if os.environ.get("STAGEBENCH_DUMP"):
        with open(os.environ["STAGEBENCH_DUMP"], "w") as f:
            json.dump({"frames": frames, "arrivals": arrivals, "ingress": lj.get("ingress_us"),
                       "return": pj.get("return_clicks"), "t_start": t_start, "t_end": t_end, "hls": hclicks}, f)

    # a click counts if sent while its listener listened: 1.5 s after the start (connect, burst) until
    # 0.5 s before it stopped (clickbench listens `seconds + 1` from its start)
    sends = ck.sends(t_start + 1500000, t_start + (int(seconds) + 1 - 0.5) * 1000000)
    lat = match(sends, arrivals)
    ing = lj.get("ingress_us", [])
    # the header's ingress stamp of the packet that carried the click: its newest audio's time on the
    # server's clock, or when it was encoded if that time is still ahead (as the stage's is, by ~0.5 s:
    # tsdemux's timestamps run ahead of the pipeline clock). So send → ingress is everything up to the
    # Opus encoder's output, and latency − that is the fan-out, the socket and the onset's place in
    # its packet (0-20 ms).
    to_ingress, after_ingress = [], []
    for k, s in sends:
        if k in lat and lat[k][1] < len(ing):
            to_ingress.append((ing[lat[k][1]] - s) / 1000)
            after_ingress.append(lat[k][0] - to_ingress[-1])
    res["floor_to_ear"] = {"clicks_sent": len(sends), "clicks_timed": len(lat), "lang": "orig",
                           "latency_ms": stats([v for v, _ in lat.values()]),
                           "send_to_ingress_ms": stats(to_ingress),
                           "ingress_to_arrival_plus_offset_ms": stats(after_ingress),
                           "interarrival_ms": lj.get("interarrival_ms"), "packets": lj.get("packets"),
                           "packet_gaps": lj.get("gaps")}

    # the booth: from ICE connected + 1 s (its return feed starts then)
    rc = pj.get("return_clicks", {}).get("arrivals_us", [])
    ice_at = pj.get("ice_connected_at_s")
    b_from = pj.get("wall_start_us", t_start) + int(((ice_at if ice_at is not None else 5) + 1) * 1e6)
    joined = pj.get("joined_at_s")
    b_to = pj.get("wall_start_us", t_start) + ((joined if joined is not None else 0) + int(seconds) + 1 - 0.5) * 1e6
    bsends = ck.sends(b_from, b_to)
    blat = match(bsends, rc)
    res["floor_to_booth"] = {"clicks_sent": len(bsends), "clicks_timed": len(blat), "booth": BOOTH,
                             "peer_jitterbuffer_ms": booth_latency_ms, "ice_connected": pj.get("ice_connected"),
                             "peer_ok": pj.get("ok"), "peer_errors": pj.get("errors", [])[:3],
                             "latency_ms": stats([v for v, _ in blat.values()])}

    # HLS: each click found in a segment → the segment's appearance − the click's send time. Which click
    # it is: the latest sent before its place in the server's time (the segment's PROGRAM-DATE-TIME +
    # its offset in the segment), which lies ~0.3 s after the send (SRT's 120 ms and the stage's
    # timestamps): right as long as that stays within one click period (501 ms); checked below.
    allsends = ck.sends()
    s_times = [s for _, s in allsends]
    h_lat, pdt_err, implausible = [], [], 0
    for appeared, at, name in hclicks:
        i = bisect.bisect_right(s_times, at) - 1     # the latest click sent before its place in the segment
        if i < 0 or at - s_times[i] >= PERIOD_MS * 1000:
            continue
        if appeared - s_times[i] < EARLIEST_MS * 1000:   # not delivered yet: taken for the wrong click
            implausible += 1
            continue
        h_lat.append((appeared - s_times[i]) / 1000)
        pdt_err.append((at - s_times[i]) / 1000)
    segs = [s for s in hls.segments.values() if s]
    res["floor_to_hls"] = {"segments_seen": len(segs), "clicks_timed": len(h_lat), "poll_ms": hls.poll_s * 1000,
                           "segment_s": round(sum(s["duration"] for s in segs) / len(segs), 3) if segs else None,
                           "latency_ms": stats(h_lat),
                           "max_poll_gap_ms": round(hls.max_poll_gap_ms, 1), "poll_errors": hls.errors,
                           "implausible": implausible,
                           "pdt_minus_send_ms": {"p50": pct(pdt_err, 0.5), "min": pct(pdt_err, 0.0),
                                                 "max": pct(pdt_err, 1.0)},
                           # "the latest click sent before" is the right one while every offset stays
                           # inside one period (with a margin for the PDT's and the decoder's error)
                           "identification_ok": bool(pdt_err) and 30 < min(pdt_err) and
                                                max(pdt_err) < PERIOD_MS - 30}
    return res


def run(quick=False, log=print, booth_latency_ms=20, variants=("channels",)):
    video = clip()
    # QUICK: ~20 s; full: ~85 s (make bench's budget is 10 minutes for everything)
    cpu_s, warm_s = (3, 1.5) if quick else (8, 3)
    lat_s = 7 if quick else 50
    out = {"config": "configs/conference.ini (SRT stage, 5 browser booths)",
           "sender": {"video": f"H.264 {VIDEO['size']} {VIDEO['rate']} fps {VIDEO['bitrate']}bit/s "
                               f"(libx264 {VIDEO['preset']} zerolatency, GOP {VIDEO['gop']}; encoded once, "
                               f"sent with -re -stream_loop -c copy)",
                      "audio": "AAC 128 kbit/s mono 48 kHz, encoded live (click track over -48 dBFS noise)",
                      "command": " ".join(sender_cmd("PORT", os.path.relpath(video, ROOT)))},
           "variants": VARIANTS, "cpu": []}
    st = Stage("hls")
    try:
        out["stage_live_after_s"] = round(st.send(video), 2)
        c = cpu_run(st, cpu_s, warm_s)
        c["variant"] = "hls"
        out["cpu"].append(c)
        log(f"stage CPU, {VARIANTS['hls']}: {c}")
        out.update(latency_run(st, lat_s, booth_latency_ms=booth_latency_ms))
    finally:
        st.stop()
    for v in ([] if quick else variants):
        st = Stage(v, relay=False)
        try:
            st.send(video)
            c = cpu_run(st, cpu_s, warm_s)
            c["variant"] = v
            out["cpu"].append(c)
            log(f"stage CPU, {VARIANTS[v]}: {c}")
        finally:
            st.stop()
    return out


if __name__ == "__main__":
    bl = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--booth-latency=")]
    vs = [a.split("=", 1)[1].split(",") for a in sys.argv if a.startswith("--variants=")]
    r = run(quick="--quick" in sys.argv, log=lambda m: print(m, file=sys.stderr),
            booth_latency_ms=int(bl[0]) if bl else 20, variants=vs[0] if vs else ("channels",))
    print(json.dumps(r, indent=None if "--json" in sys.argv else 1))
