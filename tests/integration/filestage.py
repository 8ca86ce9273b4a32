#!/usr/bin/env python3
"""The file stage (pipelines/stage-file.pipeline): a recording played in a loop as
a live stage feed, for rehearsals.

Makes a 4 s MP4 (320x240 H.264 + AAC of the floor's 8000 Hz ident) with ffmpeg,
starts the demo server with `room main.stage=file`, and checks:
  - the stage goes live; a listener on orig hears the 8000 Hz floor in every
    100 ms window over 14 s (three loops and more: the loop is gapless), with no
    packet gaps;
  - HLS carries the file's own video, passed through (320x240, not the slate);
  - a missing file is a clear configuration error (exit 2 naming it).
Deadlines are scaled() by DRAGOMAN_TIME_SCALE (harness.py).
Exit status 0 when every check passes."""
import json, os, socket, subprocess, sys, tempfile, time, urllib.request

from harness import scaled, scaled_int

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DRAGOMAN = os.path.join(ROOT, "build/dragoman")
failures = []


def check(ok, what, detail=""):
    print(f"{'PASS' if ok else 'FAIL'}: {what}" + (f" ({detail})" if detail else ""), flush=True)
    if not ok:
        failures.append(what)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as r:
        return r.read().decode(errors="replace")


def main():
    tmp = tempfile.mkdtemp(prefix="dragoman-file-")
    talk = os.path.join(tmp, "talk.mp4")
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=frequency=8000:sample_rate=48000",
                    "-t", "4", "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-b:a", "96k", talk], check=True)

    r = subprocess.run([DRAGOMAN, "--set", f"server.port={free_port()}", "--set", "room main.stage=file",
                        "--set", f"stage main.file={tmp}/missing.mp4"], capture_output=True, text=True, timeout=20,
                       cwd=ROOT)
    check(r.returncode == 2 and "missing.mp4" in r.stderr, "a missing file: exit 2 naming it",
          f"exit {r.returncode}: {r.stderr.strip()[:140]}")

    port = free_port()
    log = open(os.path.join(ROOT, "build/test-artifacts/filestage-server.log"), "w")
    srv = subprocess.Popen([DRAGOMAN, "--set", f"server.port={port}", "--set", "room main.stage=file",
                            "--set", f"stage main.file={talk}", "--set", f"server.hls-dir={tmp}/hls"],
                           stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        t0, state = time.time(), None
        while time.time() - t0 < scaled(15):
            try:
                state = json.loads(get(port, "/api/v1/rooms"))["rooms"][0]["stage"]["state"]
                if state == "live":
                    break
            except OSError:
                pass
            time.sleep(0.2)
        check(state == "live", "the file stage goes live", f"after {time.time() - t0:.1f} s")
        out = subprocess.run([os.path.join(ROOT, "build/wsprobe"), "--url",
                              f"ws://127.0.0.1:{port}/ws/listen?room=main&lang=orig", "--seconds", "14", "--json"],
                             capture_output=True, text=True, timeout=scaled(40)).stdout
        p = json.loads(out)
        tl = p["timeline"]
        # a slower server may start the floor late (startup, not a gap in the loop): the
        # first windows beyond the 2 allowed anyway are left out at a DRAGOMAN_TIME_SCALE > 1
        heard = tl[scaled_int(2) - 2:]
        check(p["gaps"] == 0 and len(tl) >= 130 and heard.count("o") >= len(heard) - 2,
              "orig hears the file's floor through 3+ loops, gapless",
              f"{p['packets']} packets, gaps {p['gaps']}, {tl.count('o')}/{len(tl)} windows 8000 Hz: {tl}")
        time.sleep(2)
        pl = get(port, "/hls/main/video.m3u8")
        seg = [ln for ln in pl.splitlines() if ln.startswith("/hls-seg/")]
        info = {}
        if seg:
            r = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height", "-of",
                                "json", f"http://127.0.0.1:{port}{seg[-1]}"], capture_output=True, text=True,
                               timeout=20)
            info = json.loads(r.stdout or "{}")
        v = [(s.get("codec_name"), s.get("width"), s.get("height")) for s in info.get("streams", [])]
        check(v == [("h264", 320, 240)], "HLS carries the file's video, passed through (320x240)", f"{v}")
    finally:
        srv.terminate()
        try:
            srv.wait(scaled(10))  # LeakSanitizer checks at exit
        except subprocess.TimeoutExpired:
            srv.kill()
        log.close()
        subprocess.run(["rm", "-rf", tmp])
    if failures:
        print(f"filestage.py: {len(failures)} check(s) FAILED (server log: build/test-artifacts/filestage-server.log)")
        sys.exit(1)
    print("filestage.py: all checks passed")


if __name__ == "__main__":
    main()
