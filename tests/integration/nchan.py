#!/usr/bin/env python3
"""The low-latency audio path through two nginx + Nchan edges sharing one Redis
(configs/nginx-nchan.conf), on loopback: dragoman publishes ([publish nchan]) to
edge A; listeners on A and B must get what a direct listener gets.

Starts its own redis-server and two nginx (the shipped config with this test's
ports, paths and a publisher token switched on), and the demo server. Checks:
  - listeners on edge A, edge B and dragoman itself, at the same time: the edges
    deliver the same packets (byte for byte: sequence, ingress time, Opus), no gap;
    the delay each edge adds over the direct socket is measured (same clock);
  - the publisher's token is required by the edge and never appears in the log;
  - an unknown channel is refused by the edge (HTTP 403);
  - a paid room (viewer-token) on an edge: no ticket or a wrong one is refused
    (403), the right one plays;
  - `nginx -s reload` of edge A (a certificate renewal): the listener on B keeps
    its socket and the stream resumes, the jump flagged as a discontinuity;
  - edge A down: the publish-down alert, direct listeners unaffected; edge A
    back: every link reconnects by itself and the alert clears.
Deadlines and latency limits are scaled() by DRAGOMAN_TIME_SCALE (harness.py).
Exit status 0 when every check passes."""
import hashlib, json, os, re, shutil, signal, socket, subprocess, sys, tempfile, threading, time, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, Checks, free_port, scaled  # noqa: E402
from wsclient import WebSocket  # noqa: E402

TOKEN = "edge-publisher-" + hashlib.sha256(os.urandom(8)).hexdigest()[:16]
TICKET = "ticket-" + hashlib.sha256(os.urandom(8)).hexdigest()[:20]  # the workshop is a paid room
check = Checks("nchan.py")


def metrics(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            return r.read().decode()
    except OSError:  # not listening yet
        return ""


def metric_values(text, name):
    return [float(v) for v in re.findall(rf"^{name}{{[^}}]*}} (\S+)$", text, re.M)]


def wait_until(fn, timeout, step=0.1):
    """seconds until fn() is true, None after scaled(timeout)"""
    t0 = time.time()
    while time.time() - t0 < scaled(timeout):
        if fn():
            return time.time() - t0
        time.sleep(step)
    return None


class Receiver(threading.Thread):
    """every binary message of one /ws/listen socket: (seq, flags, bytes, receipt time)"""

    def __init__(self, port, room="main", lang="hy"):
        super().__init__(daemon=True)
        self.ws = WebSocket(port, f"/ws/listen?room={room}&lang={lang}")
        self.packets, self.texts, self.stop_at, self.closed = [], [], None, False

    def run(self):
        self.ws.sock.settimeout(0.5)
        while self.stop_at is None or time.time() < self.stop_at:
            try:
                f = self.ws._frame()
            except (socket.timeout, OSError):
                continue
            now = time.time()
            if f is None or f[0] == 8:
                self.closed = True
                return
            if f[0] == 2:
                self.packets.append((int.from_bytes(f[2][4:8], "big"), f[2][1], f[2], now))
            elif f[0] == 1:
                self.texts.append(json.loads(f[2]))

    def finish(self):
        self.stop_at = time.time()
        self.join(3)
        self.ws.close()


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q / 100 * len(xs)))] if xs else float("nan")


def main():
    tmp = tempfile.mkdtemp(prefix="dragoman-nchan-")
    os.chmod(tmp, 0o755)  # nginx's workers (not root) write their temp files here
    port, redis_port = free_port(), free_port()
    edges = {"A": free_port(), "B": free_port()}
    procs, ngx_confs = [], {}
    os.makedirs(os.path.join(ROOT, "build/test-artifacts"), exist_ok=True)
    log_path = os.path.join(ROOT, "build/test-artifacts/nchan-server.log")
    log = open(log_path, "w")
    redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(redis)
    src = open(os.path.join(ROOT, "configs/nginx-nchan.conf")).read()
    for name, ep in edges.items():
        d = f"{tmp}/{name}"
        os.makedirs(d)
        conf = src.replace("listen 8082;", f"listen 127.0.0.1:{ep};")
        conf = conf.replace("server 127.0.0.1:8080;", f"server 127.0.0.1:{port};")
        conf = conf.replace("redis://127.0.0.1:6379", f"redis://127.0.0.1:{redis_port}")
        conf = conf.replace("worker_processes auto;", f"worker_processes 1;\npid {d}/nginx.pid;")
        conf = conf.replace("http {", f"http {{\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;", 1)
        conf = conf.replace('# if ($http_authorization != "Bearer CHANGE-ME") { return 403; }',
                            f'if ($http_authorization != "Bearer {TOKEN}") {{ return 403; }}')
        assert TOKEN in conf, "the shipped config's token line changed: update this test"
        ngx_confs[name] = f"{d}/nginx.conf"
        open(ngx_confs[name], "w").write(conf)

    def nginx(name, *extra):
        d = os.path.dirname(ngx_confs[name])
        return subprocess.run(["nginx", "-p", d, "-c", ngx_confs[name], "-e", f"{d}/error.log", *extra],
                              capture_output=True, text=True, timeout=10)

    srv = None
    try:
        for name in edges:
            r = nginx(name)
            check(r.returncode == 0, f"edge {name} starts with configs/nginx-nchan.conf", r.stderr.strip()[-300:])
        srv = subprocess.Popen([os.path.join(ROOT, "build/dragoman"), "--set", f"server.port={port}",
                                "--set", f"server.hls-dir={tmp}/hls",
                                "--set", f"publish nchan.url=ws://127.0.0.1:{edges['A']}/pubws",
                                "--set", f"publish nchan.token={TOKEN}",
                                "--set", f"room workshop.viewer-token={TICKET}"],
                               stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        up = wait_until(lambda: (lambda v: len(v) == 9 and min(v) == 1)(
            metric_values(metrics(port), "dragoman_publish_connected")) if srv.poll() is None else True, 20, 0.2)
        check(up is not None and srv.poll() is None, "every channel (9, two rooms) connects to edge A with the token",
              f"after {up:.1f} s" if up is not None else f"not within {scaled(20):g} s")

        # the same packets on both edges as on a direct socket
        time.sleep(0.5)
        rx = {"direct": Receiver(port), "A": Receiver(edges["A"]), "B": Receiver(edges["B"])}
        for r in rx.values():
            r.start()
        time.sleep(6)
        for r in rx.values():
            r.finish()
        direct = {p[0]: p for p in rx["direct"].packets}
        for name in ("A", "B"):
            pk = rx[name].packets
            seqs = set(p[0] for p in pk)
            # a jump is legal only where the server dropped packets for everyone
            # (flagged discontinuity, as on the direct socket): never the edge's own loss
            unflagged = [(a[0], c[0]) for a, c in zip(pk, pk[1:]) if c[0] != a[0] + 1 and not c[1] & 1]
            common = [p for p in pk if p[0] in direct]
            same = sum(1 for p in common if p[2] == direct[p[0]][2])
            lo, hi = min(seqs, default=0), max(seqs, default=0)
            missing = [s for s in direct if lo <= s <= hi and s not in seqs]
            delay = [(p[3] - direct[p[0]][3]) * 1000 for p in common]
            check(len(common) >= 250 and not unflagged and not missing and same == len(common),
                  f"edge {name}: the same packets as the direct listener, byte for byte, no gap of its own",
                  f"{len(pk)} packets, {len(common)} also direct, {same} identical, unflagged jumps {unflagged}, "
                  f"direct packets missing {len(missing)}")
            check(len(delay) >= 250 and pct(delay, 50) < scaled(100),
                  f"edge {name}: delay added over the direct socket measured",
                  f"p50 {pct(delay, 50):.2f} ms, p99 {pct(delay, 99):.2f} ms, max {max(delay or [0]):.1f} ms "
                  f"over {len(delay)} packets; load {os.getloadavg()[0]:.1f}")
        states = [t for t in rx["B"].texts if t.get("type") == "state"]
        check(len(states) >= 2 and all(t.get("room") == "main" and t.get("lang") == "hy" for t in states),
              "an edge listener gets the channel's state (repeated every 2 s for late joiners)",
              f"{len(states)} state messages in 6 s: {states[:1]}")

        # unknown channel: Nchan refuses the handshake
        try:
            WebSocket(edges["B"], "/ws/listen?room=main&lang=xx")
            refused = "accepted"
        except ConnectionError as e:
            refused = str(e)
        check("403" in refused, "an unknown language on an edge is refused", refused)

        # a paid room through the edge: only the right ticket gets the channel
        def edge_listen(query):
            try:
                ws = WebSocket(edges["B"], f"/ws/listen?{query}")
            except ConnectionError as e:
                return str(e)
            ws.sock.settimeout(3)
            n = 0
            try:
                while n < 20:
                    f = ws._frame()
                    if f is None:
                        break
                    n += f[0] == 2
            except OSError:
                pass
            ws.close()
            return f"{n} packets"
        paid = {q: edge_listen(f"room=workshop&lang=hy{q}") for q in ("", "&token=wrong-ticket-123", f"&token={TICKET}")}
        check("403" in paid[""] and "403" in paid["&token=wrong-ticket-123"] and paid[f"&token={TICKET}"] == "20 packets",
              "a paid room on an edge: no ticket or a wrong one refused (403), the right one plays",
              f"none: {paid['']}; wrong: {paid['&token=wrong-ticket-123']}; right: {paid[f'&token={TICKET}']}")

        # a publisher without the token is refused by the edge
        try:
            WebSocket(edges["A"], "/pubws?room=main&lang=hy")
            untoken = "accepted"
        except ConnectionError as e:
            untoken = str(e)
        check("403" in untoken, "the edge refuses a publisher without the token", untoken)

        # nginx -s reload of edge A (certificate renewal): B's listener survives, the stream resumes
        b = Receiver(edges["B"])
        b.start()
        time.sleep(1.5)
        r = nginx("A", "-s", "reload")
        t_reload = time.time()
        time.sleep(scaled(3))
        b.finish()
        after = [p for p in b.packets if p[3] > t_reload]
        seqs = [p[0] for p in b.packets]
        jumps = [(a, c) for a, c in zip(b.packets, b.packets[1:]) if c[0] != a[0] + 1]
        flagged = all(c[1] & 1 for _, c in jumps)
        gap_ms = max(((c[3] - a[3]) * 1000 for a, c in zip(b.packets, b.packets[1:])), default=0)
        check(r.returncode == 0 and not b.closed and len(after) >= 100 and flagged,
              "nginx -s reload of edge A: edge B's listener keeps its socket, the stream resumes, the jump flagged",
              f"{len(seqs)} packets, {len(after)} after the reload, longest pause {gap_ms:.0f} ms, "
              f"jumps {[(a[0], c[0]) for a, c in jumps]}, flagged {flagged}")

        # edge A down: alert, direct listeners unaffected; back: reconnects by itself
        d = Receiver(port)
        d.start()
        t_kill = time.time()
        nginx("A", "-s", "stop")
        alert = wait_until(lambda: "publish-down" in metrics(port) and
                           re.search(r'dragoman_alert{kind="publish-down"[^}]*} 1', metrics(port)), 8, 0.2)
        check(alert is not None, "edge A down: publish-down alert (after the 2 s grace)",
              f"{alert:.1f} s after the stop" if alert is not None else f"none in {scaled(8):g} s")
        time.sleep(1)
        r = nginx("A")
        back = wait_until(lambda: (lambda v: len(v) == 9 and min(v) == 1)(
            metric_values(metrics(port), "dragoman_publish_connected")), 10, 0.1)
        check(back is not None, "edge A back: every link reconnects by itself (backoff ≤ 5 s)",
              f"{back:.1f} s after nginx started" if back is not None else f"not within {scaled(10):g} s")
        cleared = wait_until(lambda: not re.search(r'dragoman_alert{kind="publish-down"[^}]*} 1', metrics(port)), 4)
        check(cleared is not None, "the publish-down alert clears")
        time.sleep(0.5)
        d.finish()
        ds = [p[0] for p in d.packets]
        dgaps = sum(1 for a, c in zip(d.packets, d.packets[1:]) if c[0] != a[0] + 1 and not c[1] & 1)
        expect = (time.time() - t_kill) * 50
        check(dgaps == 0 and len(ds) >= 0.8 * expect and not d.closed,
              "a direct listener is unaffected while the edge is down and back",
              f"{len(ds)} packets in {time.time() - t_kill:.1f} s, gaps {dgaps}")
        m = metrics(port)
        check(min(metric_values(m, "dragoman_publish_failures_total")) >= 2,
              "failures counted per link in /metrics", f"{metric_values(m, 'dragoman_publish_failures_total')}")
        log.flush()
        text = open(log_path).read()
        check(TOKEN not in text and TICKET not in text and "publish main/hy" in text,
              "the publisher's token and the viewer ticket are never logged; outages are",
              "tokens absent" if TOKEN not in text and TICKET not in text else "A TOKEN IN THE LOG")
    finally:
        if srv:
            srv.terminate()
            try:
                srv.wait(scaled(10))  # LeakSanitizer checks at exit
            except subprocess.TimeoutExpired:
                srv.kill()
        for name in edges:
            try:
                nginx(name, "-s", "stop")
            except Exception:
                pass
        for p in procs:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)
    check.finish(log_path)


if __name__ == "__main__":
    main()
