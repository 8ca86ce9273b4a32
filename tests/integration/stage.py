#!/usr/bin/env python3
"""The stage from a real encoder: ffmpeg pushes MPEG-TS (H.264 + AAC) over SRT.

  - ffprobe on /hls/main/master.m3u8 sees one video and one audio rendition per
    channel, language-tagged; renditions aligned (same sequence numbers, PDT);
  - SIGKILL the sender: the stage is "lost" within 1 s, HLS keeps advancing (on the
    slate, after a DISCONTINUITY), a WebSocket listener stays connected;
  - a new sender with another resolution: "live" again within 2 s, the master
    playlist follows the new resolution;
  - playlists short-cached, segments long-cached, with their MIME types.
Deadlines are scaled() by DRAGOMAN_TIME_SCALE (harness.py)."""
import json, os, re, signal, socket, subprocess, sys, time, urllib.request
from datetime import datetime

from harness import scaled, scaled_int

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
failures = []


def check(ok, what, detail=""):
    print(f"{'PASS' if ok else 'FAIL'}: {what}{' — ' + detail if detail else ''}")
    if not ok:
        failures.append(what)


def free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def get(url, timeout=3):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode(errors="replace"), {k.lower(): v for k, v in r.headers.items()}


def sender(srt_port, size, rate, seconds=60):
    return subprocess.Popen(["ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
                             "-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}",
                             "-f", "lavfi", "-i", "sine=frequency=8000:sample_rate=48000",
                             "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", str(2 * rate),
                             "-pix_fmt", "yuv420p", "-b:v", "1M", "-c:a", "aac", "-b:a", "96k", "-t", str(seconds),
                             "-f", "mpegts", f"srt://127.0.0.1:{srt_port}?mode=caller"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stage_state(port):
    rooms = json.loads(get(f"http://127.0.0.1:{port}/api/v1/rooms")[0])["rooms"]
    return rooms[0]["stage"]["state"]


def wait_state(port, want, limit):
    """seconds until the stage is `want`, None after scaled(limit)"""
    t0 = time.time()
    while time.time() - t0 < scaled(limit):
        if stage_state(port) == want:
            return time.time() - t0
        time.sleep(0.05)
    return None


def playlist(port, name):
    return get(f"http://127.0.0.1:{port}/hls/main/{name}")[0]


def segments_by_time(text):
    """[(PROGRAM-DATE-TIME in s, discontinuity sequence number)] of a media playlist's segments"""
    out, dsn, pdt = [], 0, None
    for line in text.splitlines():
        if line.startswith("#EXT-X-DISCONTINUITY-SEQUENCE:"):
            dsn = int(line.split(":", 1)[1])
        elif line == "#EXT-X-DISCONTINUITY":
            dsn += 1
        elif line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            pdt = datetime.fromisoformat(line.split(":", 1)[1].replace("Z", "+00:00")).timestamp()
        elif line and not line.startswith("#"):
            out.append((pdt, dsn))
    return out


def main():
    port, srt = free_port(), free_port(socket.SOCK_DGRAM)
    art = os.path.join(ROOT, "build/test-artifacts")
    os.makedirs(art, exist_ok=True)
    log = open(os.path.join(art, "stage-server.log"), "w")
    srv = subprocess.Popen([os.path.join(ROOT, "build/dragoman"), "--config", "configs/conference.ini",
                            "--set", f"server.port={port}", "--set", f"stage main.port={srt}",
                            "--set", f"server.hls-dir={art}/hls-{port}"],
                           cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    procs = [srv]
    try:
        for _ in range(scaled_int(100)):
            try:
                if get(f"http://127.0.0.1:{port}/healthz")[0].startswith("ok"):
                    break
            except OSError:
                time.sleep(0.2)
        check(stage_state(port) == "lost", "before any sender the stage is lost (waiting)")
        probe = subprocess.Popen([os.path.join(ROOT, "build/wsprobe"), "--url",
                                  f"ws://127.0.0.1:{port}/ws/listen?room=main&lang=hy", "--seconds", "30", "--json"],
                                 stdout=subprocess.PIPE, text=True)
        procs.append(probe)

        ff = sender(srt, "640x360", 25)
        procs.append(ff)
        took = wait_state(port, "live", 10)
        check(took is not None, "ffmpeg over SRT: the stage goes live", f"after {took:.2f} s" if took else "")
        time.sleep(7)

        out = subprocess.run(["ffprobe", "-hide_banner", "-of", "json", "-show_streams",
                              f"http://127.0.0.1:{port}/hls/main/master.m3u8"], capture_output=True, text=True,
                             timeout=30)
        streams = json.loads(out.stdout or "{}").get("streams", [])
        video = [s for s in streams if s["codec_type"] == "video"]
        audio = [s for s in streams if s["codec_type"] == "audio"]
        langs = sorted(s.get("tags", {}).get("language", "?") for s in audio)
        check(len(video) == 1 and video[0]["codec_name"] == "h264" and video[0]["width"] == 640,
              "ffprobe: one H.264 video, passed through (640x360)", f"{[(v['codec_name'], v['width']) for v in video]}")
        check(len(audio) == 6 and langs == sorted(["en", "en", "hy", "az", "ru", "tr"]),
              "ffprobe: one AAC rendition per channel, language-tagged", f"{langs}")
        master = playlist(port, "master.m3u8")
        check('NAME="Հայերեն"' in master and 'DEFAULT=YES,AUTOSELECT=YES' in master and 'CODECS="avc1.' in master,
              "master: native names, orig default, CODECS", master.splitlines()[3][:90])

        seqs = {}
        for name in ["video", "audio-orig", "audio-hy", "audio-tr"]:
            pl = playlist(port, f"{name}.m3u8")
            ids = [int(m) for m in re.findall(r"-(\d{5})\.ts", pl)]
            seqs[name] = ids
            check("#EXT-X-PROGRAM-DATE-TIME:" in pl, f"{name}: PROGRAM-DATE-TIME")
        common = set(seqs["video"]) & set(seqs["audio-hy"]) & set(seqs["audio-orig"])
        check(len(common) >= 2, "renditions aligned: the same segment numbers", f"{seqs}")
        vdur = re.findall(r"#EXTINF:([\d.]+)", playlist(port, "video.m3u8"))
        adur = re.findall(r"#EXTINF:([\d.]+)", playlist(port, "audio-hy.m3u8"))
        if len(vdur) >= 3 and len(adur) >= 3:
            diff = max(abs(float(a) - float(v)) for a, v in zip(adur[1:-1], vdur[1:-1]))
            check(diff < 0.05, "audio segments as long as video's (within an AAC frame, no drift)",
                  f"max difference {diff * 1000:.1f} ms")

        _, h = get(f"http://127.0.0.1:{port}/hls/main/video.m3u8")
        seg = re.findall(r"(/hls-seg/\S+\.ts)", playlist(port, "video.m3u8"))[-1]
        _, hs = get(f"http://127.0.0.1:{port}{seg}")
        check("mpegurl" in h.get("content-type", "") and "max-age=1" in h.get("cache-control", ""),
              "playlists: HLS MIME type, cached 1 s", f"{h.get('content-type')}, {h.get('cache-control')}")
        check(hs.get("content-type") == "video/mp2t" and "max-age=31536000" in hs.get("cache-control", ""),
              "segments: video/mp2t, cached a year", f"{hs.get('content-type')}, {hs.get('cache-control')}")

        # the encoder dies
        before = len(re.findall(r"#EXTINF", playlist(port, "video.m3u8")))
        first_before = re.search(r"MEDIA-SEQUENCE:(\d+)", playlist(port, "video.m3u8")).group(1)
        ff.send_signal(signal.SIGKILL)
        ff.wait()
        took = wait_state(port, "lost", 3)
        check(took is not None and took <= scaled(1.0), f"SIGKILL the sender: stage lost within {scaled(1):g} s",
              f"after {took:.2f} s" if took is not None else "never")
        time.sleep(5)
        vpl = playlist(port, "video.m3u8")
        after_seq = re.search(r"MEDIA-SEQUENCE:(\d+)", vpl).group(1)
        check(len(re.findall(r"#EXTINF", vpl)) > before or after_seq != first_before,
              "HLS keeps advancing on the slate", f"sequence {first_before} → {after_seq}")
        check("#EXT-X-DISCONTINUITY" in vpl, "video playlist marks the loss with a DISCONTINUITY")
        metrics = get(f"http://127.0.0.1:{port}/metrics")[0]
        check('dragoman_stage_live{room="main"} 0' in metrics, "/metrics: stage lost")
        check('dragoman_alert{kind="stage-lost",room="main"' in metrics, "the crew's stage-lost alert is raised")

        # another encoder, another resolution
        ff2 = sender(srt, "1280x720", 30)
        procs.append(ff2)
        took = wait_state(port, "live", 5)
        check(took is not None and took <= scaled(2.0), f"a new sender (1280x720): live again within {scaled(2):g} s",
              f"after {took:.2f} s" if took is not None else "never")
        time.sleep(6)
        check("RESOLUTION=1280x720" in playlist(port, "master.m3u8"), "master follows the new resolution")

        # the encoder crashes and is restarted 1.5 s later (OBS's reconnect delay is 2 s)
        ff2.send_signal(signal.SIGKILL)
        ff2.wait()
        time.sleep(1.5)
        ff3 = sender(srt, "640x360", 25)
        procs.append(ff3)
        t_restart = time.time()
        wait_state(port, "lost", 3)
        took = wait_state(port, "live", 8)
        took = time.time() - t_restart if took is not None else None
        check(took is not None and took <= scaled(2.0),
              f"an encoder restarted 1.5 s after a crash: live within {scaled(2):g} s of its start",
              f"after {took:.2f} s" if took is not None else "never")

        r = json.loads(probe.communicate(timeout=40)[0])

        # every rendition numbers the discontinuities alike (players line audio up with
        # video by that number), also once the first ones have left the 12 s window
        vsegs, asegs = segments_by_time(playlist(port, "video.m3u8")), segments_by_time(playlist(port, "audio-hy.m3u8"))
        pairs = [(v, a) for v in vsegs for a in asegs if abs(v[0] - a[0]) < 0.1]
        check(len(pairs) >= 3 and all(v[1] == a[1] for v, a in pairs),
              "video and audio playlists give each segment the same discontinuity number",
              f"(video, audio-hy) by time: {[(v[1], a[1]) for v, a in pairs]}")
        check(vsegs and vsegs[-1][1] >= 3, "the discontinuity count carries on after the tags left the window "
              "(EXT-X-DISCONTINUITY-SEQUENCE)", f"last segment's number {vsegs[-1][1] if vsegs else None} after 4 switches")
        check(r["close_code"] in (1000, -1) and r["closed_by"] != "server" and r["packets"] > 30 * 50 * 0.9,
              "the WebSocket listener stayed connected throughout",
              f"{r['packets']} packets, closed by {r['closed_by']}, longest pause {r['max_interarrival_ms']:.0f} ms")
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(scaled(10))  # the server: LeakSanitizer checks at exit
            except subprocess.TimeoutExpired:
                p.kill()
        log.close()
    if failures:
        print("stage: FAILED: " + "; ".join(failures))
        print(open(os.path.join(art, "stage-server.log")).read()[-3000:])
        sys.exit(1)
    print("stage: all checks passed")


if __name__ == "__main__":
    main()
