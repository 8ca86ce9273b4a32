#!/usr/bin/env python3
"""Hostile ingest: what reaches the SRT and RTP ports besides the one right sender.

The conference config with a passphrase on the SRT stage, main/en as an SRT booth
with a passphrase of its own and main/hy as an RTP booth, a listener on orig, en and
hy from start to end (wsprobe: idents orig 8000 Hz, en 8500, hy 9000, ru 10000):
  - a stage sender with a wrong passphrase, and one with none: their encoders fail
    to connect, the stage stays lost, the server's log names the failed caller;
  - the right passphrase: the stage goes live, orig carries its 8000 Hz;
  - a second stage sender (right passphrase, 10000 Hz) while the first is live: its
    encoder is refused at the handshake, the log names both addresses,
    dragoman_srt_callers_refused_total counts it, the stage stays live on the first
    and 10000 Hz never reaches a listener;
  - the SRT booth with a wrong passphrase: refused, en stays on the floor;
  - 500 garbage datagrams on the SRT booth's port and 500 on the RTP booth's port
    (random bytes; a quarter of them parse as RTP): en and hy stay on the floor;
and throughout: every listener served without a gap, /healthz ok at the end.
Deadlines are scaled() by DRAGOMAN_TIME_SCALE (harness.py).
Exit status 0 when every check passes."""
import json, os, random, socket, subprocess, sys, time

sys.path.insert(0, os.path.dirname(__file__))
from harness import ROOT, Server, scaled, udp_port  # noqa: E402

STAGE_PASS = "stage-passphrase-2026"
BOOTH_PASS = "booth-en-passphrase-2026"
failures = []


def check(ok, what, detail=""):
    print(f"{'PASS' if ok else 'FAIL'}: {what}" + (f" ({detail})" if detail else ""), flush=True)
    if not ok:
        failures.append(what)


def sender(port, hz, passphrase=None, video=True, seconds=None):
    """ffmpeg calling the SRT port: MPEG-TS, H.264 (stage) and AAC at hz"""
    url = f"srt://127.0.0.1:{port}?mode=caller&latency=60000" + (f"&passphrase={passphrase}" if passphrase else "")
    args = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re"]
    if video:
        args += ["-f", "lavfi", "-i", "testsrc=size=320x180:rate=25"]
    args += ["-f", "lavfi", "-i", f"sine=frequency={hz}:sample_rate=48000"]
    if seconds:
        args += ["-t", str(seconds)]
    if video:
        args += ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "50", "-pix_fmt", "yuv420p",
                 "-b:v", "500k"]
    args += ["-c:a", "aac", "-b:a", "96k", "-f", "mpegts", url]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def refused(proc, within):
    """(refused, what ffmpeg said): the encoder gave up on its own within `within` s"""
    try:
        _, err = proc.communicate(timeout=within)
        return proc.returncode != 0, (err or "").strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return False, ["still sending"]


def catchup_counts(srv):
    text = srv.get("/metrics").decode()
    out = {}
    for ln in text.splitlines():
        if ln.startswith("dragoman_channel_catchups_total{") and 'room="main"' in ln:
            out[ln.split('lang="')[1].split('"')[0]] = float(ln.split()[-1])
    return out


def stage(srv):
    return json.loads(srv.get("/api/v1/rooms"))["rooms"][0]["stage"]


def main():
    stage_port, srt_booth, rtp_booth = udp_port(), udp_port(), udp_port()
    srv = Server("ingest", config="configs/conference.ini",
                 sets=[f"stage main.port={stage_port}", f"stage main.passphrase={STAGE_PASS}",
                       "booth main/en.source=srt", f"booth main/en.port={srt_booth}", "booth main/en.latency-ms=60",
                       f"booth main/en.passphrase={BOOTH_PASS}",
                       "booth main/hy.source=rtp", f"booth main/hy.port={rtp_booth}",
                       "record main.autostart=false"])
    srv.sets.append(f"record main.dir={srv.tmp}/rec")
    procs, probes = [], {}
    try:
        srv.start(ready="/api/v1/rooms")
        seconds = scaled(18)  # the steps below take ~11 s; the listeners outlast them
        t_probes = time.time()
        for lang in ("orig", "en", "hy"):
            probes[lang] = subprocess.Popen(
                [os.path.join(ROOT, "build/wsprobe"), "--url", srv.url(f"/ws/listen?room=main&lang={lang}").replace(
                    "http://", "ws://"), "--seconds", f"{seconds:g}", "--json"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        time.sleep(1)

        # ---- the stage: wrong passphrase, none, then the right one ----------------
        wrong = sender(stage_port, 8000, "not-the-stage-passphrase")
        none = sender(stage_port, 8000)
        (w_ok, w_said), (n_ok, n_said) = refused(wrong, scaled(8)), refused(none, scaled(8))
        check(w_ok and n_ok and stage(srv)["state"] == "lost",
              "stage: a wrong passphrase and none are refused, the stage stays lost",
              f"wrong: {w_said}, none: {n_said}, stage {stage(srv)['state']}")
        t0 = time.time()  # the gate names a caller that has not got through after 2 s
        while time.time() - t0 < scaled(6) and srv.log_text().count("did not get through") < 2:
            time.sleep(0.2)
        log = srv.log_text()
        check(log.count("did not get through") >= 2 and "passphrase?" in log and "not-the-stage" not in log,
              "stage: the log names each failed caller (and no passphrase)",
              next((ln for ln in log.splitlines() if "did not get through" in ln), "no line"))

        first = sender(stage_port, 8000, STAGE_PASS)
        procs.append(first)
        t0 = time.time()
        while time.time() - t0 < scaled(6) and stage(srv)["state"] != "live":
            time.sleep(0.2)
        live = stage(srv)
        check(live["state"] == "live", "stage: the right passphrase goes live", f"after {time.time() - t0:.1f} s")

        # ---- a second stage sender while the first is on air -------------------
        time.sleep(2)
        # a stage that goes live can make the mixers hand over a burst that the fan-out
        # skips (a catch-up, flagged and counted): from here on nothing may cost a packet
        catchups = catchup_counts(srv)
        second = sender(stage_port, 10000, STAGE_PASS)
        s_ok, s_said = refused(second, scaled(8))
        after = stage(srv)
        log = srv.log_text()
        line = next((ln for ln in log.splitlines() if "second sender" in ln), "")
        check(s_ok and after["state"] == "live" and after["since"] == live["since"],
              "stage: a second sender is refused at the handshake; the first stays on air",
              f"second: {s_said}; stage {after['state']} since {after['since']} (was {live['since']})")
        check("refused" in line and line.count("127.0.0.1:") == 2, "stage: the log names the refused sender and the one on air",
              line)
        check((srv.metric("dragoman_srt_callers_refused_total") or 0) >= 1, "/metrics counts the refused caller",
              f"dragoman_srt_callers_refused_total {srv.metric('dragoman_srt_callers_refused_total')}")

        # ---- the SRT booth: wrong passphrase; garbage on both booth ports -------
        booth = sender(srt_booth, 8500, "not-the-booth-passphrase", video=False, seconds=20)
        b_ok, b_said = refused(booth, scaled(8))
        check(b_ok, "SRT booth: a wrong passphrase is refused", f"{b_said}")
        rnd = random.Random(8)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(500):
            u.sendto(rnd.randbytes(1316 if i % 2 else 64), ("127.0.0.1", srt_booth))
            u.sendto(rnd.randbytes(200 if i % 2 else 12), ("127.0.0.1", rtp_booth))
            if i % 50 == 0:
                time.sleep(0.05)
        u.close()
        time.sleep(2)

        # ---- everyone else -----------------------------------------------------
        check(time.time() - t_probes < seconds - 1, "the listeners were still listening when the last garbage came",
              f"steps took {time.time() - t_probes:.1f} s of the listeners' {seconds:g} s")
        results = {lang: json.loads(p.communicate(timeout=seconds + scaled(20))[0]) for lang, p in probes.items()}
        for lang, p in results.items():
            print(f"      {lang}: {p['packets']} pkts, gaps {p['gaps']}, tones {p['tones']}, {p['timeline']}")
            states = [json.loads(t).get("state") for t in p.get("texts", []) if '"state"' in t]
            expected = 50 * (seconds - 1)
            ok = (p["gaps"] <= catchups.get(lang, 0) and p["packets"] >= 0.9 * expected and not p["errors"])
            if lang == "orig":
                ok = ok and p["tones"]["ru"] == 0 and p["tones"]["orig"] >= 50
            else:  # the booths never went on air: only the floor, never 10000 Hz
                ok = ok and p["tones"][lang] == 0 and p["tones"]["ru"] == 0 and "interpretation" not in states
            check(ok, f"{lang}: served throughout, no gap but the stage's start, only what it should carry",
                  f"{p['packets']} packets of ~{expected:.0f}, gaps {p['gaps']} (catch-ups at the stage's start "
                  f"{catchups.get(lang, 0)}), states {states}, errors {p['errors'][:2]}")
        check(catchup_counts(srv) == catchups, "no catch-up (no skipped audio) from the refused and garbage senders",
              f"{catchups} -> {catchup_counts(srv)}")
        check(srv.request("/healthz")[0] == 200 and srv.proc.poll() is None, "/healthz ok after all of it")
    finally:
        for p in procs + list(probes.values()):
            if p.poll() is None:
                p.kill()
        srv.stop()
    if failures:
        print(f"ingest.py: {len(failures)} check(s) FAILED (server log: build/test-artifacts/ingest-server.log)")
        sys.exit(1)
    print("ingest.py: all checks passed")


if __name__ == "__main__":
    main()
