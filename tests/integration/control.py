#!/usr/bin/env python3
"""/ws/control, from the protocol side: tokens, and every action's effect on the media.

Starts the demo server, then:
  - without the admin token nothing is shown and actions are refused;
  - force-floor on main/hy: a listener (build/wsprobe) hears the floor only, from
    within 100 ms of the result (the floor then fades in over a second);
  - duck -6 dB on main/en: the floor's ident under the English interpreter rises
    by about 9 dB (from -15 dB);
  - mute on main/tr: the interpreter's ident disappears, the floor stays ducked.
Deadlines and latency limits are scaled() by DRAGOMAN_TIME_SCALE (harness.py).
Exit status 0 when every check passes."""
import json, os, signal, socket, subprocess, sys, threading, time, urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from wsclient import WebSocket  # noqa: E402
from harness import scaled, scaled_int  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
failures = []


def check(ok, what, detail=""):
    print(f"{'PASS' if ok else 'FAIL'}: {what}{' — ' + detail if detail else ''}")
    if not ok:
        failures.append(what)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def probe(port, lang, seconds):
    out = subprocess.run([os.path.join(ROOT, "build/wsprobe"), "--url",
                          f"ws://127.0.0.1:{port}/ws/listen?room=main&lang={lang}", "--seconds", str(seconds),
                          "--json", "--levels"], capture_output=True, text=True, timeout=seconds + scaled(20))
    return json.loads(out.stdout)


def probe_async(port, lang, seconds):
    box = {}
    t = threading.Thread(target=lambda: box.update(r=probe(port, lang, seconds)))
    t.start()
    return t, box


def crew(port):
    ws = WebSocket(port, "/ws/control")
    ws.send({"type": "auth", "token": "demo-admin-token", "name": "test crew"})
    assert ws.recv()["type"] == "welcome"
    return ws


def act(ws, msg):
    ws.send(msg)
    while True:
        m = ws.recv(5)
        if m is None or m.get("type") == "result":
            return m


def main():
    port = free_port()
    os.makedirs(os.path.join(ROOT, "build/test-artifacts"), exist_ok=True)
    log = open(os.path.join(ROOT, "build/test-artifacts/control-server.log"), "w")
    # every dragoman category at INFO and above: "the token is never logged" must mean something
    env = dict(os.environ, GST_DEBUG="dragoman-*:5", GST_DEBUG_NO_COLOR="1")
    srv = subprocess.Popen([os.path.join(ROOT, "build/dragoman"), "--set", f"server.port={port}",
                            "--set", f"server.hls-dir=build/test-artifacts/hls-{port}"], cwd=ROOT,
                           stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        for _ in range(scaled_int(100)):
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read().startswith(b"ok"):
                    break
            except OSError:
                time.sleep(0.2)
        t_start = time.time()

        # no token: an action first is refused, nothing is shown
        ws = WebSocket(port, "/ws/control")
        ws.send({"type": "force-floor", "room": "main", "lang": "hy", "value": True})
        got = ws.messages(scaled(1.5))
        check(ws.close_code == 4400 and [m["type"] for m in got] == ["error"],
              "an action before the token is refused (4400), nothing else sent",
              f"close {ws.close_code}, got {[m['type'] for m in got]}")
        ws = WebSocket(port, "/ws/control")
        ws.send({"type": "auth", "token": "wrong-token-here", "name": "intruder"})
        got = ws.messages(scaled(1.5))
        check(ws.close_code == 4401 and [m["type"] for m in got] == ["error"],
              "a wrong admin token is refused (4401), no meters or state",
              f"close {ws.close_code}, got {[m['type'] for m in got]}")

        ws = crew(port)
        first = ws.messages(scaled(1.0))
        kinds = {m["type"] for m in first}
        check({"state", "meters"} <= kinds, "signed in: state and meters arrive", f"{sorted(kinds)}")
        meters = [m for m in first if m["type"] == "meters"]
        check(len(meters) >= 8, f"meters at >= 10 Hz ({len(meters)} in {scaled(1.0):g} s)")
        logged = open(log.name).read()
        check("signed in" in logged and "demo-admin-token" not in logged and "wrong-token-here" not in logged,
              "sign-ins are logged, tokens (right or wrong) never")

        # duck on en (on air from 0 s to 12 s in the demo): floor ident rises by ~9 dB
        t, box = probe_async(port, "en", 4)
        time.sleep(2.0)
        r = act(ws, {"type": "duck", "room": "main", "lang": "en", "db": -6, "id": 1})
        t.join()
        check(r and r["ok"], "duck accepted", json.dumps(r))
        lv = box["r"]["levels_db"]["orig"]
        before = sorted(lv[5:15])[5]
        after = sorted(lv[-12:-2])[5]
        # a -50..-65 dBFS tone under a loud voice comes out of Opus masked, the more
        # the quieter it is (measured +9.4, +13.2 and +16.5 dB for the 9 dB change):
        # the window is "it rose by the duck change, or Opus's masking of it more"
        check(5 <= after - before <= 20, "duck -15 → -6 dB: the floor under en rises by about 9 dB",
              f"floor ident median {before:.1f} → {after:.1f} dBFS ({after - before:+.1f} dB)")

        # force floor on hy (on air from 3 s to 15 s): only the floor afterwards
        while time.time() - t_start < 5:
            time.sleep(0.1)
        t, box = probe_async(port, "hy", 4)
        time.sleep(1.5)
        r = act(ws, {"type": "force-floor", "room": "main", "lang": "hy", "value": True, "id": 2})
        t.join()
        pr = box["r"]
        forced = [w for w, txt in zip(pr["text_windows"], pr["texts"]) if "forced-floor" in txt]
        tl = pr["timeline"]
        check(r and r["ok"] and forced, "force-floor accepted and announced to listeners", json.dumps(r))
        if forced:
            w = forced[0]
            check("h" in tl[:w] and "h" not in tl[w + scaled_int(1):],
                  f"force-floor: hy's voice gone within {scaled(100):g} ms",
                  f"timeline {tl[:w]}|{tl[w:]}")
        act(ws, {"type": "force-floor", "room": "main", "lang": "hy", "value": False, "id": 3})

        # mute tr (on air from 12 s): its ident disappears, the floor stays ducked
        while time.time() - t_start < 13.5:
            time.sleep(0.1)
        t, box = probe_async(port, "tr", 3)
        time.sleep(1.2)
        r = act(ws, {"type": "mute", "room": "main", "booth": "tr", "value": True, "id": 4})
        t.join()
        tl = box["r"]["timeline"]
        lv = box["r"]["levels_db"]["orig"]
        check(r and r["ok"] and "t" in tl[:10] and "t" not in tl[-12:],
              "mute: the interpreter is silenced", f"timeline {tl}")
        # the floor's ident reads about -48 dBFS un-ducked after Opus and -55..-66 ducked
        # (under a voice Opus masks it further): "still ducked" = clearly below -48
        check(max(lv[-10:]) < -52, "mute: the floor stays ducked",
              f"floor ident {max(lv[:5]):.1f} → {max(lv[-10:]):.1f} dBFS (un-ducked it reads ~-48)")

        bad = act(ws, {"type": "force-floor", "room": "nope", "lang": "hy", "value": True, "id": 5})
        check(bad and not bad["ok"] and bad.get("code") == "unknown-room", "an action on an unknown room is refused (unknown-room)",
              json.dumps(bad))
        bad = act(ws, {"type": "kick", "room": "main", "booth": "xx", "interpreter": "Anna", "id": 6})
        check(bad and not bad["ok"] and bad.get("code") == "unknown-booth", "a kick in an unknown booth is refused (unknown-booth)",
              json.dumps(bad))
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        check("dragoman_level_dbfs{room=\"main\",meter=\"channel\",lang=\"hy\"" in metrics,
              "levels are in /metrics")
        ws.close()
    finally:
        srv.send_signal(signal.SIGTERM)
        srv.wait(scaled(10))  # LeakSanitizer checks at exit
        log.close()
    if failures:
        print("control: FAILED: " + "; ".join(failures))
        print(open(os.path.join(ROOT, "build/test-artifacts/control-server.log")).read()[-2000:])
        sys.exit(1)
    print("control: all checks passed")


if __name__ == "__main__":
    main()
