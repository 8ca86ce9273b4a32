#!/usr/bin/env python3
"""Recordings and restreams, with real peers: nginx + libnginx-mod-rtmp receives an
RTMP restream, ffmpeg listens for the SRT output, ffprobe/ffmpeg read the files.

Starts nginx (its own config and prefix, not the system service) on a free port,
and the demo server with:
  [restream yt]      main/hy -> rtmp://127.0.0.1:PORT/live, key test-stream-key-4242, autostart
  [restream partner] main/ru -> srt://127.0.0.1:PORT (caller), started from /ws/control
  [record main]      started and stopped from /ws/control, audio-only files too
and checks:
  - the restream goes live; ffprobe on nginx sees H.264 + AAC, and the audio is the
    hy channel (its interpreter's 9000 Hz ident louder than every other booth's);
  - the key is never in the server's log nor in the control page's state;
  - nginx stops -> the restream retries (state, restream-down alert, reconnects in
    /metrics) -> nginx starts -> live again, without restarting dragoman;
  - the SRT output reaches an ffmpeg listener as MPEG-TS with H.264 + AAC;
  - a recording started and stopped by the crew: one Matroska file with one video
    and one audio track per channel, language-tagged (orig tagged with the floor
    language and titled as the original), duration as long as it ran; audio-only
    files per channel;
  - SIGKILL during a recording: the file still plays up to its last seconds;
  - a full disk (a 1 MB tmpfs, as root): the recording stops as failed with a
    recording-failed alert while listeners keep their audio.
Deadlines are scaled() by DRAGOMAN_TIME_SCALE (harness.py).
Exit status 0 when every check passes."""
import json, os, re, shutil, signal, socket, subprocess, sys, tempfile, time, urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from wsclient import WebSocket  # noqa: E402
from harness import scaled  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DRAGOMAN = os.path.join(ROOT, "build/dragoman")
ART = os.path.join(ROOT, "build/test-artifacts")
ADMIN = "demo-admin-token"
KEY = "test-stream-key-4242"
RTMP_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"
failures = []


def check(ok, what, detail=""):
    print(f"{'PASS' if ok else 'FAIL'}: {what}" + (f" ({detail})" if detail else ""), flush=True)
    if not ok:
        failures.append(what)


def free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as r:
        return r.read().decode(errors="replace")


class Nginx:
    def __init__(self, tmp, port):
        self.dir = os.path.join(tmp, "nginx")
        os.makedirs(os.path.join(self.dir, "logs"), exist_ok=True)
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(f"""load_module {RTMP_MODULE};
daemon off;
master_process off;
pid {self.dir}/nginx.pid;
error_log {self.dir}/logs/error.log info;
worker_processes 1;
events {{ worker_connections 64; }}
rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; record off; }} }} }}
""")
        self.port = port
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(["nginx", "-p", self.dir, "-c", self.conf, "-e", f"{self.dir}/logs/error.log"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t0 = time.time()
        while time.time() - t0 < 5:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Crew:
    """a /ws/control session: actions and the latest state"""

    def __init__(self, port):
        self.ws = WebSocket(port, "/ws/control")
        self.ws.send({"type": "auth", "token": ADMIN, "name": "outputs test"})
        self.state = None
        self.alerts = []
        self.n = 0

    def pump(self, seconds):
        for m in self.ws.messages(seconds):
            if m.get("type") == "state":
                self.state = m
            elif m.get("type") == "alert":
                self.alerts.append(m["alert"])
            elif m.get("type") == "result":
                self.results.append(m)

    def act(self, **action):
        self.n += 1
        self.results = []
        self.ws.send(dict(action, id=self.n))
        t0 = time.time()
        while time.time() - t0 < scaled(5):
            self.pump(0.2)
            for r in self.results:
                if r.get("id") == self.n:
                    return r
        return None

    def output(self, name):
        for room in (self.state or {}).get("rooms", []):
            for o in room.get("outputs", []):
                if o["name"] == name:
                    return o
        return None

    def wait_output(self, name, pred, limit):
        """(seconds until pred(the output's state), that state), or None after scaled(limit)"""
        t0 = time.time()
        while time.time() - t0 < scaled(limit):
            self.pump(0.25)
            o = self.output(name)
            if o and pred(o):
                return time.time() - t0, o
        return None, self.output(name)


def tone_db(path_or_url, freq, seconds=4, extra=()):
    """mean level (dB) of a narrow band around `freq` in the first `seconds` of audio"""
    r = subprocess.run(["ffmpeg", "-hide_banner", "-nostats", *extra, "-i", path_or_url, "-t", str(seconds), "-vn",
                        "-af", f"bandpass=f={freq}:width_type=h:w=150,bandpass=f={freq}:width_type=h:w=150,volumedetect",
                        "-f", "null", "-"], capture_output=True, text=True, timeout=30)
    m = re.search(r"mean_volume: (-?[\d.]+) dB", r.stderr)
    return float(m.group(1)) if m else -120.0


def probe_streams(path_or_url, timeout=20):
    r = subprocess.run(["ffprobe", "-v", "error", "-rw_timeout", "8000000", "-show_entries",
                        "stream=codec_type,codec_name:stream_tags=language,title:format=duration", "-of", "json",
                        path_or_url], capture_output=True, text=True, timeout=timeout)
    try:
        return json.loads(r.stdout)
    except ValueError:
        return {}


def decodable_seconds(path):
    r = subprocess.run(["ffmpeg", "-hide_banner", "-v", "error", "-i", path, "-map", "0", "-f", "null", "-",
                        "-progress", "pipe:1"], capture_output=True, text=True, timeout=60)
    times = re.findall(r"out_time_us=(\d+)", r.stdout)
    return int(times[-1]) / 1e6 if times else 0.0


def _ebml(data, pos, vint_id=False):
    """one EBML variable-size integer at pos: (value, next pos); an ID keeps its marker bit"""
    first = data[pos]
    n = 1
    while n <= 8 and not first & (0x80 >> (n - 1)):
        n += 1
    value = first if vint_id else first & (0xFF >> n)
    for b in data[pos + 1:pos + n]:
        value = value << 8 | b
    return value, pos + n


def cue_points(path):
    """the number of CuePoints in a Matroska file's Cues (its seek index); -1: no Cues"""
    with open(path, "rb") as f:
        data = f.read()
    pos, end = 0, len(data)
    while pos < end:
        eid, pos = _ebml(data, pos, vint_id=True)
        size, pos = _ebml(data, pos)
        if eid == 0x18538067:  # Segment: descend
            end = min(end, pos + size)
            continue
        if eid == 0x1C53BB6B:  # Cues: count its CuePoint children
            count, p = 0, pos
            while p < pos + size:
                cid, p = _ebml(data, p, vint_id=True)
                csize, p = _ebml(data, p)
                count += cid == 0xBB
                p += csize
            return count
        pos += size
    return -1


def start_server(port, sets, log_name):
    log = open(os.path.join(ART, log_name), "w")
    args = [DRAGOMAN, "--set", f"server.port={port}", "--set", f"server.hls-dir={tempfile.mkdtemp(prefix='hls-')}"]
    for s in sets:
        args += ["--set", s]
    srv = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    t0 = time.time()
    while time.time() - t0 < scaled(15):
        try:
            if get(port, "/healthz").startswith("ok"):
                break
        except OSError:
            time.sleep(0.2)
    return srv, log


def main():
    if not os.path.exists(RTMP_MODULE):
        sys.exit(f"FAIL: {RTMP_MODULE} missing: run `make deps` (libnginx-mod-rtmp)")
    os.makedirs(ART, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="dragoman-outputs-")
    rec_dir = os.path.join(tmp, "rec")
    rtmp_port, srt_port, port = free_port(), free_port(socket.SOCK_DGRAM), free_port()
    nginx = Nginx(tmp, rtmp_port)
    nginx.start()
    rtmp_url = f"rtmp://127.0.0.1:{rtmp_port}/live"
    srv, log = start_server(port, [
        "restream yt.room=main", "restream yt.lang=hy", f"restream yt.url={rtmp_url}", f"restream yt.key={KEY}",
        "restream yt.autostart=true",
        "restream partner.room=main", "restream partner.lang=ru", f"restream partner.url=srt://127.0.0.1:{srt_port}",
        f"record main.dir={rec_dir}", "record main.audio-only=true",
    ], "outputs-server.log")
    crew = None
    try:
        crew = Crew(port)
        took, o = crew.wait_output("yt", lambda o: o["state"] == "live", 15)
        check(took is not None, "RTMP restream (autostart) goes live", f"after {took:.1f} s" if took else f"{o}")
        check(o is not None and KEY not in json.dumps(o) and o["target"].endswith("/test…"),
              "the control page shows the target with the key masked", o and o["target"])
        info = probe_streams(f"{rtmp_url}/{KEY}")
        kinds = sorted(s.get("codec_name", "?") for s in info.get("streams", []))
        check(kinds == ["aac", "h264"], "ffprobe on nginx-rtmp: H.264 + AAC", f"{kinds}")
        levels = {f: tone_db(f"{rtmp_url}/{KEY}", f, 6) for f in (9000, 9500, 10000, 10500)}
        check(levels[9000] > max(levels[9500], levels[10000], levels[10500]) + 10,
              "the restream's audio is the hy channel (9000 Hz ident above az/ru/tr by > 10 dB)",
              ", ".join(f"{k} Hz {v:.1f} dB" for k, v in levels.items()))

        # the platform goes away and comes back
        nginx.stop()
        took, o = crew.wait_output("yt", lambda o: o["state"] == "retrying", 10)
        check(took is not None and o["reconnects"] >= 1 and o["error"],
              "nginx stopped: the restream retries with a reason", f"{o and (o['state'], o['reconnects'], o['error'])}")
        crew.pump(scaled(1.5))
        kinds_alerts = {a["kind"] for a in crew.alerts} | {a["kind"] for a in (crew.state or {}).get("alerts", [])}
        check("restream-down" in kinds_alerts, "restream-down alert raised", f"{sorted(kinds_alerts)}")
        metrics = get(port, "/metrics")
        m = re.search(r'dragoman_output_reconnects_total\{room="main",output="yt",kind="rtmp"\} (\d+)', metrics)
        check(m is not None and int(m.group(1)) >= 1, "/metrics counts the reconnects", m and m.group(0))
        time.sleep(3)
        nginx.start()
        took, o = crew.wait_output("yt", lambda o: o["state"] == "live", 40)
        check(took is not None, "nginx back: the restream is live again without restarting dragoman",
              f"after {took:.1f} s, {o['reconnects']} reconnects" if took else f"{o}")
        info = probe_streams(f"{rtmp_url}/{KEY}")
        kinds = sorted(s.get("codec_name", "?") for s in info.get("streams", []))
        check(kinds == ["aac", "h264"], "ffprobe after the reconnect: H.264 + AAC", f"{kinds}")

        # the SRT output, started by the crew, to an ffmpeg listener
        ts = os.path.join(tmp, "partner.ts")
        ff = subprocess.Popen(["ffmpeg", "-hide_banner", "-v", "error", "-y", "-i",
                               f"srt://127.0.0.1:{srt_port}?mode=listener", "-t", "4", "-c", "copy", ts],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        r = crew.act(type="restream", room="main", name="partner", value=True)
        check(r is not None and r.get("ok"), "crew starts the SRT output", f"{r}")
        try:
            ff.wait(scaled(20))
        except subprocess.TimeoutExpired:
            ff.kill()
        info = probe_streams(ts) if os.path.exists(ts) else {}
        kinds = sorted(s.get("codec_name", "?") for s in info.get("streams", []))
        check(kinds == ["aac", "h264"], "the SRT output reaches an ffmpeg listener: MPEG-TS, H.264 + AAC", f"{kinds}")
        crew.act(type="restream", room="main", name="partner", value=False)

        # recording, started and stopped by the crew
        r = crew.act(type="record", room="main", value=True)
        check(r is not None and r.get("ok"), "crew starts the recording", f"{r}")
        t_start = time.time()
        took, o = crew.wait_output("record", lambda o: o["state"] == "live" and o.get("file"), 10)
        check(took is not None, "the recording is live with a file name", f"{o and o.get('file')}")
        time.sleep(8)
        r = crew.act(type="record", room="main", value=False)
        ran = time.time() - t_start
        took, o = crew.wait_output("record", lambda o: o["state"] == "stopped", 8)
        check(r is not None and r.get("ok") and took is not None, "crew stops the recording", f"{o and o['state']}")
        mkvs = sorted(f for f in os.listdir(rec_dir) if f.endswith(".mkv"))
        info = probe_streams(os.path.join(rec_dir, mkvs[0])) if mkvs else {}
        streams = info.get("streams", [])
        video = [s for s in streams if s.get("codec_type") == "video"]
        # matroskamux writes the title as a TITLE tag (ffprobe keeps the case)
        audio = [(s.get("tags", {}).get("language"), s.get("tags", {}).get("title", s.get("tags", {}).get("TITLE")))
                 for s in streams if s.get("codec_type") == "audio"]
        check(len(mkvs) == 1 and len(video) == 1 and len(audio) == 6,
              "one Matroska file: one video and one audio track per channel (6)", f"{mkvs}, {len(video)} video, {audio}")
        langs = [a[0] for a in audio]
        check(langs == ["eng", "eng", "arm", "aze", "rus", "tur"] and audio and audio[0][1] == "Original"
              and audio[3][1] == "Azerbaijani",
              "tracks language-tagged; orig tagged with the floor language, titled as the original", f"{audio}")
        dur = float(info.get("format", {}).get("duration", 0) or 0)
        check(ran - 4 <= dur <= ran + 1, "the file lasts as long as the recording ran", f"{dur:.1f} s of {ran:.1f} s")
        mkas = sorted(f for f in os.listdir(rec_dir) if f.endswith(".mka"))
        check(len(mkas) == 6, "audio-only files, one per channel", f"{mkas}")
        cues = cue_points(os.path.join(rec_dir, mkas[0])) if mkas else -1
        # matroskamux's default indexes every AAC frame (47/s) of a one-track file and
        # holds the index in memory to the end: 18 MiB of heap an hour for 6 languages
        check(1 <= cues <= ran + 3, "the audio-only file is indexed for seeking, about once a second",
              f"{cues} cue points in {mkas[0] if mkas else '-'} for {ran:.1f} s")

        # SIGKILL while recording
        crew.act(type="record", room="main", value=True)
        crew.wait_output("record", lambda o: o["state"] == "live", 10)
        time.sleep(8)
        before = set(mkvs)
        srv.send_signal(signal.SIGKILL)
        srv.wait()
        killed = [f for f in sorted(os.listdir(rec_dir)) if f.endswith(".mkv") and f not in before]
        secs = decodable_seconds(os.path.join(rec_dir, killed[0])) if killed else 0
        check(len(killed) == 1 and secs >= 5, "SIGKILL mid-recording: the file still plays up to its last seconds",
              f"{killed}: {secs:.1f} s decodable of ~8 s")
        with open(os.path.join(ART, "outputs-server.log")) as f:
            text = f.read()
        check(KEY not in text, "the stream key is never in the server's log",
              f"{text.count(KEY)} occurrences" if KEY in text else "")
    finally:
        if crew:
            crew.ws.close()
        if srv.poll() is None:
            srv.kill()
            srv.wait()
        log.close()
        nginx.stop()

    # ---- a full disk ---------------------------------------------------------
    if os.getuid() != 0:
        print("SKIP: full-disk case needs root to mount a small tmpfs")
    else:
        full = os.path.join(tmp, "full")
        os.makedirs(full)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", full], check=True)
        port = free_port()
        srv, log = start_server(port, [f"record main.dir={full}", "record main.autostart=true"], "outputs-full.log")
        try:
            crew = Crew(port)
            took, o = crew.wait_output("record", lambda o: o["state"] == "failed", 30)
            check(took is not None and o["error"], "full disk: the recording stops as failed, with the reason",
                  f"after {took:.1f} s: {o['error']}" if took else f"{o}")
            crew.pump(scaled(1.5))
            kinds = {a["kind"] for a in (crew.state or {}).get("alerts", [])}
            check("recording-failed" in kinds, "recording-failed alert raised", f"{sorted(kinds)}")
            ws = WebSocket(port, "/ws/listen?room=main&lang=hy")
            n, end = 0, time.time() + 2
            while time.time() < end:
                ws.sock.settimeout(0.5)
                try:
                    f = ws._frame()
                except socket.timeout:
                    continue
                if f is None:
                    break
                n += f[0] == 2
            ws.close()
            check(n >= 60 and get(port, "/healthz").startswith("ok"),
                  "listeners keep their audio while the disk is full", f"{n} frames in 2 s")
            crew.ws.close()
        finally:
            srv.terminate()
            try:
                srv.wait(scaled(10))  # LeakSanitizer checks at exit
            except subprocess.TimeoutExpired:
                srv.kill()
            log.close()
            subprocess.run(["umount", full])
    shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print(f"outputs.py: {len(failures)} check(s) FAILED (logs: build/test-artifacts/outputs-*.log)")
        sys.exit(1)
    print("outputs.py: all checks passed")


if __name__ == "__main__":
    main()
