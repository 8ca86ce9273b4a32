#!/usr/bin/env python3
"""Retour (outgoing channel B) between browser booths, with real WebRTC peers.

The demo's workshop room has browser booths hy and ru. Listeners (build/wsprobe)
on the hy and ru channels; two interpreters (build/boothpeer):
  Anna  hy booth, 9000 Hz:  1 s on air, 4 s output=ru (retour), 9 s output=hy, 12 s off air
  Boris ru booth, 10000 Hz: 6 s on air (refused: the ru channel carries Anna's retour)
(seconds after each peer's ICE connection) and checks:
  - joined announces retour;
  - while Anna outputs to ru, the ru channel carries her 9000 Hz and the hy channel
    the floor; before and after, hy carries her; the two never both carry her
    (beyond the 100 ms windows of a switch);
  - Boris's on-air is refused with channel-busy, his console is told who holds his
    channel (output_taken_by), and his 10000 Hz is never on air;
  - an output to a language without a booth is refused (bad-output).
Deadlines and a switch's window are scaled() by DRAGOMAN_TIME_SCALE (harness.py).
Exit status 0 when every check passes."""
import json, os, socket, subprocess, sys, tempfile, time, urllib.request

from harness import scaled, scaled_int

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ART = os.path.join(ROOT, "build/test-artifacts")
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


def main():
    os.makedirs(ART, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="dragoman-retour-")
    port = free_port()
    log = open(os.path.join(ART, "retour-server.log"), "w")
    srv = subprocess.Popen([os.path.join(ROOT, "build/dragoman"), "--set", f"server.port={port}",
                            "--set", f"server.hls-dir={tmp}/hls"], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    procs = []
    try:
        t0 = time.time()
        while time.time() - t0 < scaled(15):
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read().startswith(b"ok"):
                    break
            except OSError:
                time.sleep(0.2)
        ws = f"ws://127.0.0.1:{port}"

        def probe(lang):  # 18 s: the peers' 15 s scripts after ICE connects (~2 s, scaled) and 1 s
            return subprocess.Popen([os.path.join(ROOT, "build/wsprobe"), "--url", f"{ws}/ws/listen?room=workshop&lang={lang}",
                                     "--seconds", str(16 + scaled_int(2)), "--json"],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

        def peer(booth, token, name, freq, actions):
            return subprocess.Popen([os.path.join(ROOT, "build/boothpeer"), "--url",
                                     f"{ws}/ws/booth?room=workshop&booth={booth}", "--token", token, "--name", name,
                                     "--freq", str(freq), "--json", "--actions-from-ice", "--actions", actions,
                                     "--ice-timeout", str(scaled_int(10))],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

        probes = {lang: probe(lang) for lang in ("hy", "ru")}
        procs += probes.values()
        time.sleep(0.3)
        anna = peer("hy", "demo-hy-booth", "Anna", 9000,
                    "1:on-air=true,4:output=ru,9:output=hy,12:on-air=false,12.5:output=tr,15:quit")
        boris = peer("ru", "demo-ru-booth", "Boris", 10000, "6:on-air=true,15:quit")
        procs += [anna, boris]
        a = json.loads(anna.communicate(timeout=scaled(60))[0])
        b = json.loads(boris.communicate(timeout=scaled(60))[0])
        p = {lang: json.loads(pr.communicate(timeout=scaled(60))[0]) for lang, pr in probes.items()}

        def server_messages(r):  # boothpeer keeps {"t": seconds, "msg": {...}}
            out = []
            for m in r.get("messages", []):
                m = json.loads(m) if isinstance(m, str) else m
                out.append(m.get("msg", m))
            return out

        msgs_a = server_messages(a)
        joined = next((m for m in msgs_a if m.get("type") == "joined"), {})
        check(joined.get("retour") is True, "joined announces retour", f"{joined.get('retour')}")
        outputs = [m.get("output") for m in msgs_a if m.get("type") == "state"]
        check("ru" in outputs and outputs[-1] == "hy", "Anna's console follows her output: hy → ru → hy",
              " → ".join(dict.fromkeys(outputs)))
        hy, ru = p["hy"]["timeline"], p["ru"]["timeline"]
        print(f"      hy: {hy}\n      ru: {ru}")
        n = min(len(hy), len(ru))
        both = sum(1 for k in range(n) if hy[k] == "h" and ru[k] == "h")
        check(ru.count("h") >= 30, "the ru channel carries Anna's retour (9000 Hz)", f"{ru.count('h')} windows")
        check(hy.count("h") >= 40 and "o" in hy, "the hy channel carries Anna before and after, the floor meanwhile",
              f"{hy.count('h')} windows of 9000 Hz, {hy.count('o')} of floor")
        check(both <= scaled_int(3), "never on both channels at once (beyond a switch's window)", f"{both} windows on both")
        check(ru.count("r") == 0 and hy.count("r") == 0, "Boris's 10000 Hz never on air", f"ru {ru.count('r')}")
        errs_b = " ".join(b.get("errors", []))
        msgs_b = server_messages(b)
        taken = [m.get("output_taken_by") for m in msgs_b if m.get("type") == "state"]
        check("channel-busy" in errs_b and "hy" in taken,
              "Boris's on-air refused (channel-busy); his console says the hy booth holds his channel",
              f"errors {errs_b[:160]!r}, output_taken_by seen {sorted(set(t for t in taken if t))}")
        errs_a = " ".join(a.get("errors", []))
        check("bad-output" in errs_a and "channel-busy" not in errs_a,
              "an output to a channel without a booth (tr) is refused: bad-output", errs_a[:160])
        check(p["hy"]["gaps"] == 0 and p["ru"]["gaps"] == 0, "listeners saw no gaps",
              f"hy {p['hy']['gaps']}, ru {p['ru']['gaps']}")
    finally:
        for pr in procs:
            if pr.poll() is None:
                pr.kill()
        srv.terminate()
        try:
            srv.wait(scaled(10))  # LeakSanitizer checks at exit
        except subprocess.TimeoutExpired:
            srv.kill()
        log.close()
        subprocess.run(["rm", "-rf", tmp])
    if failures:
        print(f"retour.py: {len(failures)} check(s) FAILED (server log: build/test-artifacts/retour-server.log)")
        sys.exit(1)
    print("retour.py: all checks passed")


if __name__ == "__main__":
    main()
