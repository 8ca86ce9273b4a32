#!/usr/bin/env python3
"""TLS: https:// and wss:// with a certificate from `make certs` (tools/make-certs.sh).

Browsers give the booth page a microphone only in a secure context, so remote
interpreters need dragoman on https://. This test:
  - makes a fresh self-signed certificate in a temporary directory;
  - config errors: tls-cert without tls-key, and an unreadable certificate, exit 2
    naming the key;
  - starts the demo server with tls-cert/tls-key on a free port: /healthz,
    /api/v1/rooms and the pages over https (the certificate verifies for 127.0.0.1
    and localhost), HTTP/1.1 only (ALPN), security headers present;
  - plain http:// on the same port is redirected to https://;
  - a client that does not trust the certificate is refused (it is really TLS);
  - wss:// /ws/listen delivers the hello, the state and Opus frames;
  - wss:// /ws/control signs in with the admin token and gets the state;
  - a plain-TCP client that sends garbage instead of a TLS hello does not disturb
    the wss listener.
Deadlines are scaled() by DRAGOMAN_TIME_SCALE (harness.py).
Exit status 0 when every check passes."""
import http.client, json, os, socket, ssl, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(__file__))
from wsclient import WebSocket  # noqa: E402
from harness import scaled  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DRAGOMAN = os.path.join(ROOT, "build/dragoman")
ADMIN = "demo-admin-token"  # configs/demo.ini
failures = []


def check(ok, what, detail=""):
    print(f"{'PASS' if ok else 'FAIL'}: {what}" + (f" ({detail})" if detail else ""))
    if not ok:
        failures.append(what)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def https(ctx, port, path, method="GET", host="127.0.0.1"):
    c = http.client.HTTPSConnection(host, port, context=ctx, timeout=5)
    c.request(method, path)
    r = c.getresponse()
    body = r.read()
    alpn = c.sock.selected_alpn_protocol() if c.sock else None
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body, alpn


def binary_frames(ws, seconds):
    """(text messages, binary frame count) for `seconds`"""
    texts, n, end = [], 0, time.time() + seconds
    while time.time() < end:
        ws.sock.settimeout(max(0.05, end - time.time()))
        try:
            f = ws._frame()
        except socket.timeout:
            continue
        if f is None or f[0] == 8:
            break
        if f[0] == 2:
            n += 1
        elif f[0] == 1:
            texts.append(json.loads(f[2]))
    return texts, n


def main():
    tmp = tempfile.mkdtemp(prefix="dragoman-tls-")
    out = subprocess.run([os.path.join(ROOT, "tools/make-certs.sh"), tmp], capture_output=True, text=True)
    crt, key = os.path.join(tmp, "dragoman.crt"), os.path.join(tmp, "dragoman.key")
    check(out.returncode == 0 and os.path.getsize(crt) > 0, "make certs: a certificate and key",
          out.stdout.strip().splitlines()[0] if out.stdout else out.stderr.strip())
    san = subprocess.run(["openssl", "x509", "-in", crt, "-noout", "-ext", "subjectAltName"],
                         capture_output=True, text=True).stdout
    check("127.0.0.1" in san and "localhost" in san, "the certificate names localhost and 127.0.0.1",
          san.strip().splitlines()[-1].strip() if san.strip() else "no SAN")
    check(oct(os.stat(key).st_mode & 0o777) == "0o600", "the private key is readable by its owner only")

    # ---- config errors name the key -------------------------------------
    for what, sets, want in (
        ("tls-cert without tls-key", [f"server.tls-cert={crt}"], "tls-key"),
        ("an unreadable certificate", [f"server.tls-cert={tmp}/missing.crt", f"server.tls-key={key}"], "tls-cert"),
        ("redirect-http not a boolean", [f"server.tls-cert={crt}", f"server.tls-key={key}",
                                         "server.redirect-http=maybe"], "redirect-http"),
    ):
        args = [DRAGOMAN, "--set", f"server.port={free_port()}"]
        for s in sets:
            args += ["--set", s]
        r = subprocess.run(args, capture_output=True, text=True, timeout=20, cwd=ROOT)
        check(r.returncode == 2 and want in r.stderr, f"config error: {what} -> exit 2 naming {want}",
              f"exit {r.returncode}: {r.stderr.strip()[:160]}")

    # ---- the server on TLS ------------------------------------------------
    port = free_port()
    log = open(os.path.join(ROOT, "build/test-artifacts/tls-server.log"), "w")
    srv = subprocess.Popen([DRAGOMAN, "--set", f"server.port={port}", "--set", f"server.tls-cert={crt}",
                            "--set", f"server.tls-key={key}", "--set", f"server.hls-dir={tmp}/hls"],
                           stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    trust = ssl.create_default_context(cafile=crt)
    try:
        t0 = time.time()
        while time.time() - t0 < scaled(15) and srv.poll() is None:
            try:
                if https(trust, port, "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        if srv.poll() is not None:
            log.flush()
            sys.exit(f"FAIL: the TLS server exited ({srv.returncode}): "
                     + open(os.path.join(ROOT, "build/test-artifacts/tls-server.log")).read()[-600:])
        status, headers, body, alpn = https(trust, port, "/healthz")
        check(status == 200 and body.startswith(b"ok"), "https://127.0.0.1/healthz: 200 ok, certificate verified",
              f"{status}")
        browserlike = ssl.create_default_context(cafile=crt)
        browserlike.set_alpn_protocols(["h2", "http/1.1"])  # what a browser offers
        alpn = https(browserlike, port, "/healthz")[3]
        check(alpn == "http/1.1", "ALPN: HTTP/1.1 only (no h2: one socket per WebSocket)", f"{alpn}")
        status, headers, body, _ = https(trust, port, "/api/v1/rooms", host="localhost")
        rooms = json.loads(body)["rooms"] if status == 200 else []
        check(status == 200 and len(rooms) == 2, "https://localhost/api/v1/rooms: both rooms", f"{status}")
        status, headers, body, _ = https(trust, port, "/booth?room=workshop&booth=hy")
        check(status == 200 and b"<html" in body.lower() and "content-security-policy" in headers
              and headers.get("x-content-type-options") == "nosniff",
              "https booth page with its security headers", f"{status}")

        # plain http:// on the TLS port -> redirect
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(f"GET /control HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        raw = b""
        while b"\r\n\r\n" not in raw:  # the headers may come in more than one read
            chunk = s.recv(4096)
            if not chunk:
                break
            raw += chunk
        head = raw.decode(errors="replace")
        s.close()
        first = head.splitlines()[0] if head else ""
        loc = next((ln.split(":", 1)[1].strip() for ln in head.splitlines() if ln.lower().startswith("location:")), "")
        check(first.split(" ")[1:2] in (["301"], ["302"], ["303"], ["307"], ["308"]) and loc.startswith("https://"),
              "plain http:// on the TLS port is redirected to https://", f"{first!r} -> {loc!r}")

        # a client that does not trust our self-signed certificate is refused
        try:
            https(ssl.create_default_context(), port, "/healthz")
            check(False, "an untrusting client is refused (certificate verify failed)")
        except ssl.SSLCertVerificationError as e:
            check(True, "an untrusting client is refused (certificate verify failed)", e.reason)

        # garbage instead of a TLS hello, held open, while a wss listener runs
        junk = socket.create_connection(("127.0.0.1", port), timeout=5)
        junk.sendall(b"\x16\x03\x01\xff\xff" + os.urandom(600))
        ws = WebSocket(port, "/ws/listen?room=main&lang=hy", ssl_context=trust)
        texts, frames = binary_frames(ws, scaled(2.0))  # 60 frames (1.2 s of audio) within 2 s
        ws.close()
        junk.close()
        hello = next((t for t in texts if t.get("type") == "hello"), None)
        state = next((t for t in texts if t.get("type") == "state"), None)
        check(hello is not None and hello.get("codec") == "opus" and state is not None and frames >= 60,
              "wss:// /ws/listen: hello, state and Opus frames (beside a garbage TLS client)",
              f"hello {bool(hello)}, state {state and state.get('state')}, {frames} frames in {scaled(2):g} s")

        ws = WebSocket(port, "/ws/control", ssl_context=trust, server_hostname="localhost")
        ws.send({"type": "auth", "token": ADMIN, "name": "TLS test"})
        msgs = ws.messages(scaled(2.5))
        ws.close()
        kinds = {m.get("type") for m in msgs}
        check("welcome" in kinds and "state" in kinds, "wss:// /ws/control: welcome and state with the admin token",
              ", ".join(sorted(k for k in kinds if k)))
        status = https(trust, port, "/healthz")[0]
        check(status == 200 and srv.poll() is None, "still serving after the session")
    finally:
        srv.terminate()
        try:
            srv.wait(scaled(10))  # LeakSanitizer checks at exit
        except subprocess.TimeoutExpired:
            srv.kill()
        log.close()
        subprocess.run(["rm", "-rf", tmp])
    if failures:
        print(f"tls.py: {len(failures)} check(s) FAILED (server log: build/test-artifacts/tls-server.log)")
        sys.exit(1)
    print("tls.py: all checks passed")


if __name__ == "__main__":
    main()
