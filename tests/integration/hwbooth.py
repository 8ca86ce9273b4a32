#!/usr/bin/env python3
"""A hardware booth over SRT (pipelines/booth-srt.pipeline): a console or encoder
sends the booth's audio as MPEG-TS over SRT; the booth is on air while it sends.

The demo's main/en booth is made an SRT booth on a free port; ffmpeg sends the en
ident (8500 Hz, AAC) for 6 s and stops. A listener on en hears the floor (8000 Hz)
first, the booth's 8500 Hz while it sends (the channel says "interpretation"), and
the floor again within a second of the sender stopping (on-air = signal).
Deadlines are scaled() by DRAGOMAN_TIME_SCALE (harness.py).
Exit status 0 when every check passes."""
import json, os, socket, subprocess, sys, tempfile, time, urllib.request

from harness import scaled, scaled_int

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
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


def main():
    tmp = tempfile.mkdtemp(prefix="dragoman-hwbooth-")
    port, srt = free_port(), free_port(socket.SOCK_DGRAM)
    log = open(os.path.join(ROOT, "build/test-artifacts/hwbooth-server.log"), "w")
    srv = subprocess.Popen([os.path.join(ROOT, "build/dragoman"), "--set", f"server.port={port}",
                            "--set", f"server.hls-dir={tmp}/hls", "--set", "booth main/en.source=srt",
                            "--set", f"booth main/en.port={srt}", "--set", "booth main/en.latency-ms=60"],
                           stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    ff = None
    try:
        t0 = time.time()
        while time.time() - t0 < scaled(15):
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read().startswith(b"ok"):
                    break
            except OSError:
                time.sleep(0.2)
        probe = subprocess.Popen([os.path.join(ROOT, "build/wsprobe"), "--url",
                                  f"ws://127.0.0.1:{port}/ws/listen?room=main&lang=en", "--seconds", "11", "--json"],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        time.sleep(2)
        ff = subprocess.Popen(["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i",
                               "sine=frequency=8500:sample_rate=48000", "-t", "6", "-c:a", "aac", "-b:a", "96k",
                               "-f", "mpegts", f"srt://127.0.0.1:{srt}?mode=caller&latency=60000"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        p = json.loads(probe.communicate(timeout=scaled(40))[0])
        tl = p["timeline"]
        states = [json.loads(t).get("state") for t in p.get("texts", [])]
        print(f"      en: {tl}\n      states: {states}")
        first_e = tl.find("e")
        last_e = tl.rfind("e")
        check(tl[:15].count("o") + tl[:15].count(".") >= 12, "the floor before the console sends", tl[:15])
        check(tl.count("e") >= 45, "the console's 8500 Hz on the en channel while it sends",
              f"{tl.count('e')} windows, from {first_e / 10:.1f} s to {last_e / 10:.1f} s")
        check("interpretation" in states and states[-1] == "floor",
              "the channel says interpretation while it sends, floor after (on-air = signal)", f"{states}")
        tail = tl[last_e + 1:] if last_e >= 0 else ""
        check(len(tail) >= 5 and tail[5:].count("e") == 0 and tail.count("o") >= len(tail) - scaled_int(8),
              f"the floor back within {scaled(1):g} s of the console stopping", tail[:20])
    finally:
        if ff and ff.poll() is None:
            ff.kill()
        srv.terminate()
        try:
            srv.wait(scaled(10))  # LeakSanitizer checks at exit
        except subprocess.TimeoutExpired:
            srv.kill()
        log.close()
        subprocess.run(["rm", "-rf", tmp])
    if failures:
        print(f"hwbooth.py: {len(failures)} check(s) FAILED (server log: build/test-artifacts/hwbooth-server.log)")
        sys.exit(1)
    print("hwbooth.py: all checks passed")


if __name__ == "__main__":
    main()
