#!/usr/bin/env python3
"""Token rotation with SIGHUP, without dropping anyone.

Runs the server on a copy of configs/demo.ini, keeps a listener (/ws/listen)
and a signed-in crew member (/ws/control) connected, changes the admin token and
the workshop/hy booth token in the file, sends SIGHUP, and checks:
  - the old admin and booth tokens are refused, the new ones accepted;
  - the listener and the crew session signed in before are still served;
  - the tokens never appear in the server's log;
  - a config that no longer loads changes nothing (the new tokens still work).
Deadlines are scaled() by DRAGOMAN_TIME_SCALE (harness.py).
Exit status 0 when every check passes."""
import os, re, shutil, signal, socket, subprocess, sys, tempfile, time, urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from wsclient import WebSocket  # noqa: E402
from harness import scaled  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
failures = []
OLD_ADMIN, NEW_ADMIN = "demo-admin-token", "rotated-admin-token-7731"
OLD_BOOTH, NEW_BOOTH = "demo-hy-booth", "rotated-hy-booth-4410"


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


def control_ok(port, token):
    ws = WebSocket(port, "/ws/control")
    ws.send({"type": "auth", "token": token, "name": "reload test"})
    m = ws.recv(3)
    ws.close()
    return bool(m and m.get("type") == "welcome")


def booth_ok(port, token):
    ws = WebSocket(port, "/ws/booth?room=workshop&booth=hy")
    ws.send({"type": "join", "token": token, "name": "Rita"})
    m = ws.recv(3)
    ws.close()
    return bool(m and m.get("type") == "joined")


def frames(ws, seconds):
    n, end = 0, time.time() + seconds
    while time.time() < end:
        ws.sock.settimeout(0.5)
        try:
            f = ws._frame()
        except socket.timeout:
            continue
        if f is None or f[0] == 8:
            break
        n += f[0] == 2
    return n


def main():
    tmp = tempfile.mkdtemp(prefix="dragoman-reload-")
    conf = os.path.join(tmp, "demo.ini")
    shutil.copy(os.path.join(ROOT, "configs/demo.ini"), conf)
    port = free_port()
    logpath = os.path.join(ROOT, "build/test-artifacts/reload-server.log")
    log = open(logpath, "w")
    srv = subprocess.Popen([os.path.join(ROOT, "build/dragoman"), "--config", conf, "--set", f"server.port={port}",
                            "--set", f"server.hls-dir={tmp}/hls"], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        t0 = time.time()
        while time.time() - t0 < scaled(15):
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read().startswith(b"ok"):
                    break
            except OSError:
                time.sleep(0.2)
        check(control_ok(port, OLD_ADMIN) and booth_ok(port, OLD_BOOTH), "before: the old tokens sign in")
        listener = WebSocket(port, "/ws/listen?room=main&lang=hy")
        crew = WebSocket(port, "/ws/control")
        crew.send({"type": "auth", "token": OLD_ADMIN, "name": "stays"})
        crew.messages(1)

        text = open(conf).read()
        text = re.sub(r"(?m)^admin-token = .*$", f"admin-token = {NEW_ADMIN}", text)
        text = text.replace(f"token = {OLD_BOOTH}", f"token = {NEW_BOOTH}")
        open(conf, "w").write(text)
        srv.send_signal(signal.SIGHUP)
        time.sleep(scaled(1))  # the server re-reads the file
        check(not control_ok(port, OLD_ADMIN) and control_ok(port, NEW_ADMIN),
              "after SIGHUP: the old admin token refused, the new one accepted")
        check(not booth_ok(port, OLD_BOOTH) and booth_ok(port, NEW_BOOTH),
              "after SIGHUP: the old booth token refused, the new one accepted")
        n = frames(listener, 2)
        check(n >= 60, "the listener connected before SIGHUP is still served", f"{n} frames in 2 s")
        states = [m for m in crew.messages(2.5) if m.get("type") == "state"]
        check(len(states) >= 1, "the crew member signed in before SIGHUP still gets state", f"{len(states)} states")

        open(conf, "w").write(text + "\n[nonsense group]\n")
        srv.send_signal(signal.SIGHUP)
        time.sleep(scaled(1))  # the server re-reads the file
        check(control_ok(port, NEW_ADMIN) and srv.poll() is None,
              "a config that no longer loads changes nothing (still serving, new token still valid)")
        listener.close()
        crew.close()
    finally:
        srv.terminate()
        try:
            srv.wait(scaled(10))  # LeakSanitizer checks at exit
        except subprocess.TimeoutExpired:
            srv.kill()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)
    out = open(logpath).read()
    check("token(s) rotated" in out and "does not load" in out, "SIGHUP is logged (rotated; refused)",
          "; ".join(ln for ln in out.splitlines() if "SIGHUP" in ln)[:200])
    check(all(t not in out for t in (OLD_ADMIN, NEW_ADMIN, OLD_BOOTH, NEW_BOOTH)), "no token in the log")
    if failures:
        print(f"reload.py: {len(failures)} check(s) FAILED (server log: build/test-artifacts/reload-server.log)")
        sys.exit(1)
    print("reload.py: all checks passed")


if __name__ == "__main__":
    main()
