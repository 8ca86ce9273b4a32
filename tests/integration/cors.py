#!/usr/bin/env python3
"""CORS ([server] cors-origins, access.c) with plain HTTP requests, as a browser
would send them.

Three servers on demo.ini:
  - default (no cors-origins): same-origin only: no Access-Control-* header at all,
    a preflight is refused;
  - cors-origins = https://paid.example http://127.0.0.1:9: an allowed Origin is
    echoed (with Vary: Origin) on /api/v1/rooms, HLS playlists and segments; any
    other origin gets no Access-Control-Allow-Origin; a preflight from an allowed
    origin gets 204 with the allowed methods and headers, from another 403; the
    control, booth and metrics endpoints never carry CORS headers;
  - cors-origins = *: Access-Control-Allow-Origin: * on the public endpoints.
Deadlines are scaled() by DRAGOMAN_TIME_SCALE (harness.py).
Exit status 0 when every check passes."""
import os, re, sys, time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Checks, Server, scaled  # noqa: E402

check = Checks("cors.py")
ALLOWED, OTHER = "https://paid.example", "https://evil.example"
PREFLIGHT = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "range"}


def segment(srv, timeout=20):
    """a segment URL from the orig rendition, once HLS has written one (scaled(timeout))"""
    end = time.time() + scaled(timeout)
    while time.time() < end:
        st, _, pl = srv.request("/hls/main/audio-orig.m3u8")
        segs = re.findall(r"(?m)^/hls-seg/\S+", pl.decode()) if st == 200 else []
        if segs:
            return segs[-1]
        time.sleep(1)
    return None


def run(sets, fn):
    srv = Server("cors", sets=sets)
    try:
        srv.start()
        fn(srv)
    finally:
        srv.stop()


def same_origin(srv):
    st, h, _ = srv.request("/api/v1/rooms", headers={"Origin": ALLOWED})
    check(st == 200 and not any(k.startswith("access-control-") for k in h) and "vary" not in h,
          "default: no CORS header on /api/v1/rooms (same-origin only)", f"{sorted(h)}")
    st, h, _ = srv.request("/api/v1/rooms", method="OPTIONS", headers=dict(PREFLIGHT, Origin=ALLOWED))
    check(st == 403 and "access-control-allow-origin" not in h, "default: a preflight is refused", f"{st}")


def allow_list(srv):
    seg = segment(srv)
    paths = ["/api/v1/rooms", "/hls/main/master.m3u8", "/hls/main/audio-orig.m3u8"] + ([seg] if seg else [])
    check(seg is not None, "HLS wrote a segment to try", f"{seg}")
    for path in paths:
        st, h, _ = srv.request(path, headers={"Origin": ALLOWED})
        check(st == 200 and h.get("access-control-allow-origin") == ALLOWED and "Origin" in h.get("vary", ""),
              f"allowed origin echoed with Vary: Origin on {path.split('?')[0]}",
              f"{st} acao={h.get('access-control-allow-origin')} vary={h.get('vary')}")
        st, h, _ = srv.request(path, headers={"Origin": OTHER})
        check(st == 200 and "access-control-allow-origin" not in h and "Origin" in h.get("vary", ""),
              f"another origin: no Access-Control-Allow-Origin on {path.split('?')[0]} (Vary still)",
              f"{st} acao={h.get('access-control-allow-origin')}")
    st, h, _ = srv.request("/api/v1/rooms", headers={"Origin": "http://127.0.0.1:9"})
    check(h.get("access-control-allow-origin") == "http://127.0.0.1:9", "the second listed origin (with a port)")
    st, h, _ = srv.request("/api/v1/rooms", headers={"Origin": "HTTPS://Paid.Example"})
    check(h.get("access-control-allow-origin") == "HTTPS://Paid.Example",
          "an origin differing only in case is the same origin")
    st, h, _ = srv.request("/api/v1/rooms", headers={"Origin": ALLOWED + ".evil.example"})
    check("access-control-allow-origin" not in h, "a longer origin that starts with an allowed one is not allowed")

    st, h, body = srv.request("/hls/main/master.m3u8", method="OPTIONS", headers=dict(PREFLIGHT, Origin=ALLOWED))
    check(st == 204 and h.get("access-control-allow-origin") == ALLOWED and "GET" in
          h.get("access-control-allow-methods", "") and "range" in h.get("access-control-allow-headers", "").lower()
          and h.get("access-control-max-age") and "Origin" in h.get("vary", "") and not body,
          "preflight from the allowed origin: 204, methods, headers, max-age, Vary",
          f"{st} {h.get('access-control-allow-methods')} | {h.get('access-control-allow-headers')}")
    st, h, _ = srv.request("/api/v1/rooms", method="OPTIONS", headers=dict(PREFLIGHT, Origin=OTHER))
    check(st == 403 and "access-control-allow-origin" not in h, "preflight from another origin: 403, no ACAO",
          f"{st}")
    for path in ("/control", "/booth", "/metrics", "/healthz"):
        st, h, _ = srv.request(path, headers={"Origin": ALLOWED})
        check("access-control-allow-origin" not in h, f"{path}: never CORS, even for an allowed origin", f"{st}")
    st, h, _ = srv.request("/ws/control", method="OPTIONS", headers=dict(PREFLIGHT, Origin=ALLOWED))
    check("access-control-allow-origin" not in h, "no preflight for the control API", f"{st}")


def wildcard(srv):
    for path in ("/api/v1/rooms", "/hls/main/master.m3u8"):
        st, h, _ = srv.request(path, headers={"Origin": OTHER})
        check(h.get("access-control-allow-origin") == "*", f"cors-origins = *: ACAO * on {path}",
              f"{st} {h.get('access-control-allow-origin')}")


def main():
    run([], same_origin)
    run([f"server.cors-origins={ALLOWED} http://127.0.0.1:9"], allow_list)
    run(["server.cors-origins=*"], wildcard)
    check.finish("build/test-artifacts/cors-server.log")


if __name__ == "__main__":
    main()
