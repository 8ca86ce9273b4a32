#!/usr/bin/env python3
"""The connection-flood cap ([server] max-connections, max-connections-per-address).

One server (demo.ini; max-listeners 40, max-connections 100, 60 per address) and
one listener on main/orig counting its Opus frames all along. Then:
  1. per address: 300 idle sockets from 127.0.0.1 (the listener's own address):
     at most 60 stay open, the rest are closed at accept, and a WebSocket from
     that address during the flood gets no handshake; the listener hears on;
  2. the total: 5 addresses (127.0.0.2-6, still loopback) x 50 sockets: at most
     100 open in all, the rest refused; the listener hears on;
  3. after each flood closes, a new listener from 127.0.0.1 gets its hello and audio;
  4. max-listeners still answers with its own clear error (4503 server-full) below
     the connection cap, and the count of open sockets returns to what it was;
  5. /metrics counts the refusals by reason; the log names each cap and is
     rate-limited (one line per reason per 10 s, not one per socket).
Waits for the server and latency limits are scaled() by DRAGOMAN_TIME_SCALE (harness.py).
Exit status 0 when every check passes."""
import os, socket, sys, threading, time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Checks, Server, scaled  # noqa: E402
from wsclient import WebSocket  # noqa: E402

check = Checks("flood.py")
PER_ADDRESS, TOTAL, LISTENERS = 60, 100, 40


class Counter(threading.Thread):
    """counts binary (Opus) frames of a listener with their arrival times"""

    def __init__(self, ws):
        super().__init__(daemon=True)
        self.ws, self.times, self.stop = ws, [], False

    def run(self):
        self.ws.sock.settimeout(0.5)
        while not self.stop:
            try:
                f = self.ws._frame()
            except socket.timeout:
                continue
            except OSError:
                return
            if f is None or f[0] == 8:
                return
            if f[0] == 2:
                self.times.append(time.monotonic())

    def frames_between(self, t0, t1):
        return sum(t0 <= t < t1 for t in self.times)

    def longest_gap(self, t0, t1):
        ts = [t for t in self.times if t0 <= t <= t1]
        return max((b - a for a, b in zip(ts, ts[1:])), default=t1 - t0)


def flood(sources, per_source, port):
    """open sockets (idle: they send nothing) from each source address; returns them"""
    socks = []
    for src in sources:
        for _ in range(per_source):
            s = socket.socket()
            s.bind((src, 0))
            try:
                s.connect(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            socks.append(s)
    return socks


def still_open(socks):
    """sockets the server has not closed (a closed one reads EOF or a reset)"""
    n = 0
    for s in socks:
        s.settimeout(0.05)
        try:
            n += s.recv(1) != b""
        except socket.timeout:
            n += 1
        except OSError:
            pass
    return n


def new_listener_served(port, seconds=1.5):
    try:
        ws = WebSocket(port, "/ws/listen?room=main&lang=orig")
    except OSError as e:
        return False, f"connect: {e}"
    hello = ws.recv(3)
    c = Counter(ws)
    c.start()
    end = time.time() + scaled(3 * seconds)  # a loaded machine delays audio: whether it flows is the question
    while time.time() < end and len(c.times) < 25 * seconds:
        time.sleep(0.1)
    c.stop = True
    ws.close()
    n = len(c.times)
    return bool(hello and hello.get("type") == "hello") and n >= 25 * seconds, f"hello, then {n} frames"


def metrics_from(port, src="127.0.0.7"):
    """/metrics from an address of its own, so the flood's cap does not refuse it"""
    s = socket.socket()
    s.bind((src, 0))
    s.settimeout(3)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    buf = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        buf += d
    s.close()
    return buf.split(b"\r\n\r\n", 1)[-1].decode()


def main():
    srv = Server("flood", sets=[f"listen.max-listeners={LISTENERS}", f"server.max-connections={TOTAL}",
                                f"server.max-connections-per-address={PER_ADDRESS}"])
    try:
        srv.start()
        port = srv.port
        base_open = srv.metric("dragoman_connections_open", metrics_from(port))
        listener = WebSocket(port, "/ws/listen?room=main&lang=orig")
        check(listener.recv(3).get("type") == "hello", "a listener joins before the flood")
        counter = Counter(listener)
        counter.start()
        time.sleep(1)

        # 1. one address over its cap
        t0 = time.monotonic()
        socks = flood(["127.0.0.1"], 300, port)
        time.sleep(scaled(0.5))  # the server closes what is over the cap
        n = still_open(socks)
        check(n <= PER_ADDRESS - 1, "per address: the server keeps at most the cap open from one address",
              f"{n} of {len(socks)} still open, cap {PER_ADDRESS} incl. the listener")
        check(n >= PER_ADDRESS - 10, "per address: sockets below the cap are accepted", f"{n} open")
        try:
            WebSocket(port, "/ws/listen?room=main&lang=orig").close()
            blocked = False
        except OSError:
            blocked = True
        check(blocked, "per address: a new socket from the flooding address is closed at accept")
        m = metrics_from(port)
        refused_pa = srv.metric('dragoman_connections_refused_total{reason="max-connections-per-address"}', m)
        check(refused_pa and refused_pa >= 300 - PER_ADDRESS, "per address: /metrics counts the refusals",
              f"{refused_pa}")
        time.sleep(1)
        t1 = time.monotonic()
        got, gap = counter.frames_between(t0, t1), counter.longest_gap(t0, t1)
        check(got >= 0.6 * 50 * (t1 - t0) and gap < scaled(1.5), "per address: the listener hears on through the flood",
              f"{got} frames in {t1 - t0:.1f} s, longest gap {gap * 1000:.0f} ms")
        for s in socks:
            s.close()
        time.sleep(0.5)
        ok, detail = new_listener_served(port)
        check(ok, "per address: after the flood a new listener from that address is served", detail)

        # 2. many addresses over the total
        t0 = time.monotonic()
        sources = [f"127.0.0.{i}" for i in range(2, 7)]
        socks = flood(sources, 50, port)
        time.sleep(scaled(0.5))  # the server closes what is over the cap
        n = still_open(socks)
        check(n <= TOTAL - 1, "total: the server keeps at most max-connections open",
              f"{n} of {len(socks)} flood sockets open, cap {TOTAL} incl. the listener")
        time.sleep(1)
        t1 = time.monotonic()
        got, gap = counter.frames_between(t0, t1), counter.longest_gap(t0, t1)
        check(got >= 0.6 * 50 * (t1 - t0) and gap < scaled(1.5), "total: the listener hears on through the flood",
              f"{got} frames in {t1 - t0:.1f} s, longest gap {gap * 1000:.0f} ms")
        for s in socks:
            s.close()
        time.sleep(0.5)
        m = metrics_from(port)
        refused_t = srv.metric('dragoman_connections_refused_total{reason="max-connections"}', m)
        check(refused_t and refused_t >= 250 - TOTAL, "total: /metrics counts the refusals", f"{refused_t}")
        ok, detail = new_listener_served(port)
        check(ok, "total: after the flood a new listener is served", detail)

        # 4. max-listeners below the connection cap keeps its own, clear refusal
        time.sleep(scaled(1))  # the listeners of step 3 leave the count once the server has seen them close
        wss, codes = [], []
        for i in range(LISTENERS + 3):
            ws = WebSocket(port, "/ws/listen?room=main&lang=en")
            first = ws.recv(3)
            if first and first.get("type") == "error":
                codes.append(first.get("code"))
                ws.recv(1)
                codes.append(ws.close_code)
                ws.close()
            else:
                wss.append(ws)
        # never more than max-listeners in all (the first listener is one of them); one or two
        # fewer when a listener closed just before has not been counted out yet
        check(LISTENERS - 3 <= len(wss) <= LISTENERS - 1 and "server-full" in codes and 4503 in codes,
              "max-listeners: listeners beyond it get 4503 server-full, not a refused socket",
              f"{len(wss)} joined besides the first, refusals {codes[:4]}")
        for ws in wss:
            ws.close()
        listener.close()
        counter.stop = True
        time.sleep(scaled(1))  # the server sees every close
        open_now = srv.metric("dragoman_connections_open", metrics_from(port))
        check(open_now == base_open, "every socket closed is uncounted", f"{open_now} open now, {base_open} before")

        log = srv.log_text()
        lines = [ln for ln in log.splitlines() if ln.startswith("connections: refused")]
        per_reason = {r: sum(f"at {r} =" in ln for ln in lines) for r in ("max-connections", "max-connections-per-address")}
        check(all(1 <= v <= 2 for v in per_reason.values()),
              "the log names each cap, rate-limited (not one line per refused socket)", f"{per_reason}")
    finally:
        srv.stop()
    check.finish("build/test-artifacts/flood-server.log")


if __name__ == "__main__":
    main()
