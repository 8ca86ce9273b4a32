#!/usr/bin/env python3
"""Hostile input: each case gets a clear refusal while everyone else keeps being served.

Starts the conference config (SRT stage) on free ports with a listener on main/hy
kept open throughout, then:
  - path traversal, plain and percent-encoded, and node_modules: never a file
    outside web-root;
  - a 64 KB header and 100 headers: refused or closed, nothing served;
  - slow-loris: 40 connections that send half a request line and then trickle:
    closed by the server within its timeout;
  - a 1 MB WebSocket message to /ws/control and to /ws/booth: the socket is closed;
  - malformed JSON and unknown types on /ws/booth after a valid join: a clear error;
  - an invalid SDP offer: error bad-sdp, the session survives;
  - invalid ICE candidates (not "candidate:...", 2 KB long, m-line 99): bad-candidate;
    a garbled one that passes that check goes to the ICE agent, the session survives;
  - garbage datagrams on the SRT stage port: the stage stays lost, nothing breaks;
and after all of it: /healthz ok, and the listener got audio throughout (no gap).
Deadlines are scaled() by DRAGOMAN_TIME_SCALE (harness.py).
Exit status 0 when every check passes."""
import json, os, socket, subprocess, sys, tempfile, time, urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from wsclient import WebSocket  # noqa: E402
from harness import scaled  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ADMIN = "hostile-admin-token"
BOOTH = "change-me-hy-booth"
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


def raw(port, data, timeout=3.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def main():
    tmp = tempfile.mkdtemp(prefix="dragoman-hostile-")
    port, srt = free_port(), free_port(socket.SOCK_DGRAM)
    log = open(os.path.join(ROOT, "build/test-artifacts/hostile-server.log"), "w")
    srv = subprocess.Popen([os.path.join(ROOT, "build/dragoman"), "--config", "configs/conference.ini",
                            "--set", f"server.port={port}", "--set", f"stage main.port={srt}",
                            "--set", f"server.admin-token={ADMIN}", "--set", f"server.hls-dir={tmp}/hls",
                            "--set", f"record main.dir={tmp}/rec", "--set", "record main.autostart=false"],
                           stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    probe = None
    try:
        t0 = time.time()
        while time.time() - t0 < scaled(15):
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read().startswith(b"ok"):
                    break
            except OSError:
                time.sleep(0.2)
        probe = subprocess.Popen([os.path.join(ROOT, "build/wsprobe"), "--url",
                                  f"ws://127.0.0.1:{port}/ws/listen?room=main&lang=hy", "--seconds", "30", "--json"],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        time.sleep(1)

        # ---- HTTP paths ----------------------------------------------------
        leaks = []
        for path in ("/../../../../etc/passwd", "/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2f..%2fetc/passwd",
                     "/vendor/hls/../../package.json", "/vendor/hls/%2e%2e/%2e%2e/package.json",
                     "/node_modules/hls.js/package.json", "/package-lock.json", "/hls-seg/../../configs/demo.ini",
                     "/hls/../configs/conference.ini", "/booth/../../configs/conference.ini"):
            resp = raw(port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            head = resp.split(b"\r\n", 1)[0].decode(errors="replace")
            body = resp.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in resp else b""
            if b"root:" in body or b'"name"' in body or b"admin-token" in body or head.split(" ")[1:2] == ["200"]:
                leaks.append(f"{path} -> {head}")
        check(not leaks, "path traversal (plain, %-encoded, node_modules, configs): nothing outside web-root",
              "; ".join(leaks))

        big = raw(port, b"GET / HTTP/1.1\r\nHost: x\r\nCookie: " + b"a" * 65536 + b"\r\n\r\n")
        many = raw(port, b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(3000)) + b"\r\n")
        check(not big.startswith(b"HTTP/1.1 200") and not many.startswith(b"HTTP/1.1 200"),
              "a 64 KB header and 3000 headers (40 KB) are refused or closed",
              f"{big[:40]!r} / {many[:40]!r}")

        # ---- slow-loris ----------------------------------------------------
        lazy = []
        for _ in range(40):
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            s.sendall(b"GET / HT")
            lazy.append(s)
        t_lazy = time.time()
        # meanwhile the server answers others
        ok_during = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=scaled(2)).read().startswith(b"ok")
        closed = 0
        while time.time() - t_lazy < scaled(25) and closed < len(lazy):
            closed = 0
            for s in lazy:
                s.settimeout(0.01)
                try:
                    s.sendall(b"T")  # trickle a byte
                    if s.recv(1) == b"":
                        closed += 1
                except (socket.timeout, BlockingIOError):
                    pass
                except OSError:
                    closed += 1
            time.sleep(1)
        took = time.time() - t_lazy
        for s in lazy:
            s.close()
        check(ok_during and closed == len(lazy), "slow-loris: 40 trickling connections closed by the server",
              f"{closed}/40 closed after {took:.0f} s; /healthz meanwhile {'ok' if ok_during else 'FAILED'}")

        # ---- WebSocket messages ----------------------------------------------
        for path, first in (("/ws/control", None), ("/ws/booth?room=main&booth=hy", None)):
            ws = WebSocket(port, path)
            got = []
            try:
                ws.send("x" * (1 << 20))
                got = ws.messages(3)
            except OSError:
                pass
            ws.close()
            check(ws.close_code == 1009, f"a 1 MB message to {path.split('?')[0]}: an error, then close 1009",
                  f"close {ws.close_code}, {[m.get('code') for m in got]}")

        ws = WebSocket(port, "/ws/booth?room=main&booth=hy")
        ws.send({"type": "join", "token": BOOTH, "name": "Hana"})
        joined = ws.recv(scaled(3))
        replies = []
        for bad in ("{not json", json.dumps({"type": "no-such-thing"}), json.dumps([1, 2, 3]),
                    json.dumps({"type": "offer", "sdp": "v=0\r\nthis is not an SDP\r\n"}),
                    json.dumps({"type": "ice", "candidate": "not a candidate", "sdpMLineIndex": 0}),
                    json.dumps({"type": "ice", "candidate": "candidate:" + "x" * 2000, "sdpMLineIndex": 0}),
                    json.dumps({"type": "ice", "candidate": "candidate:1 1 UDP 1 127.0.0.1 9 typ host", "sdpMLineIndex": 99})):
            ws.send(bad)
            errs = [m for m in ws.messages(1.5) if m.get("type") == "error"]  # state messages come too
            replies.append(errs[0].get("code") if errs else None)
        # a candidate that looks right but is garbage inside goes to the ICE agent, which drops it
        ws.send({"type": "ice", "candidate": "candidate:x y z 999.999.1.1 -5 typ nonsense", "sdpMLineIndex": 0})
        replies.append(next((m.get("code") for m in ws.messages(1) if m.get("type") == "error"), None))
        ws.send({"type": "chat", "text": "still here"})
        ws.messages(0.5)
        alive = ws.close_code is None
        ws.close()
        check(joined and joined.get("type") == "joined" and replies[:3] == ["bad-message"] * 3 and
              replies[3] == "bad-sdp" and replies[4:7] == ["bad-candidate"] * 3 and alive,
              "booth: malformed JSON, unknown types, a non-object: bad-message; an invalid SDP: bad-sdp; "
              "ICE candidates that are not one, too long or for a far m-line: bad-candidate; still open",
              f"{replies}")

        # ---- garbage on the SRT port ------------------------------------------
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(500):
            u.sendto(os.urandom(1316 if i % 2 else 64), ("127.0.0.1", srt))
        u.close()
        time.sleep(1)
        rooms = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/rooms", timeout=2).read())
        check(rooms["rooms"][0]["stage"]["state"] == "lost", "500 garbage datagrams on the SRT port: the stage stays lost")

        # ---- everyone else ---------------------------------------------------
        p = json.loads(probe.communicate(timeout=scaled(60))[0])
        check(p["gaps"] == 0 and p["packets"] >= 30 * 50 * 0.9 and p["close_code"] in (1000, -1),
              "the listener was served throughout", f"{p['packets']} packets, gaps {p['gaps']}, "
              f"longest pause {p['max_interarrival_ms']:.0f} ms")
        check(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read().startswith(b"ok") and
              srv.poll() is None, "/healthz ok after all of it")
    finally:
        if probe and probe.poll() is None:
            probe.kill()
        srv.terminate()
        try:
            srv.wait(scaled(10))  # LeakSanitizer checks at exit
        except subprocess.TimeoutExpired:
            srv.kill()
        log.close()
        subprocess.run(["rm", "-rf", tmp])
    if failures:
        print(f"hostile.py: {len(failures)} check(s) FAILED (server log: build/test-artifacts/hostile-server.log)")
        sys.exit(1)
    print("hostile.py: all checks passed")


if __name__ == "__main__":
    main()
