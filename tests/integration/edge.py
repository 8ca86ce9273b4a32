#!/usr/bin/env python3
"""HLS through an nginx edge (configs/nginx-edge.conf), on loopback.

Starts the demo server and nginx with the shipped edge config (its ports, cache
path and pid file rewritten to this test's), then through the edge:
  - ffprobe on master.m3u8 sees one video and one audio rendition per channel;
  - a playlist is cached (HIT) for at most ~1 s and then moves on with dragoman's;
  - dragoman's playlist ETag lets a cache revalidate: 304 without a body;
  - a segment is fetched from dragoman once: 30 concurrent first requests give
    one MISS and the rest HIT (request collapsing), later requests HIT;
  - the WebSocket listener works through the edge;
  - 240 simulated HLS viewers spread over two edges for 7 s: dragoman sees about
    one fetch per segment per edge (counted in the edges' access logs).
Chromium's Watch mode through an edge: tests/browser/hlsedge.test.mjs.
Deadlines are scaled() by DRAGOMAN_TIME_SCALE (harness.py).
Exit status 0 when every check passes."""
import http.client, json, os, re, shutil, socket, subprocess, sys, tempfile, threading, time, urllib.request

from harness import scaled

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
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


def get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, b""


def main():
    tmp = tempfile.mkdtemp(prefix="dragoman-edge-")
    os.chmod(tmp, 0o755)  # nginx's workers (not root) write its cache here
    port, edge, edge2 = free_port(), free_port(), free_port()
    log = open(os.path.join(ROOT, "build/test-artifacts/edge-server.log"), "w")
    srv = subprocess.Popen([os.path.join(ROOT, "build/dragoman"), "--set", f"server.port={port}",
                            "--set", f"server.hls-dir={tmp}/hls"], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    ngxs = []
    for name, ep in (("e1", edge), ("e2", edge2)):
        d = f"{tmp}/{name}"
        os.makedirs(d)
        os.chmod(d, 0o755)
        conf = open(os.path.join(ROOT, "configs/nginx-edge.conf")).read()
        conf = conf.replace("listen 8081;", f"listen 127.0.0.1:{ep};")
        conf = conf.replace("server 127.0.0.1:8080;", f"server 127.0.0.1:{port};")
        conf = conf.replace("/var/lib/nginx/dragoman-edge", f"{d}/cache")
        conf = conf.replace("worker_processes auto;", "worker_processes 1;")
        conf = f"daemon off;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log warn;\n" + conf
        # which requests went to dragoman: $upstream_status is "-" for a cache hit
        conf = conf.replace("access_log off;", "log_format up '$uri $upstream_cache_status $upstream_status';\n"
                            f"  access_log {d}/access.log up;")
        conf = conf.replace("http {", f"http {{\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n", 1)
        open(f"{d}/nginx.conf", "w").write(conf)
        ngxs.append(subprocess.Popen(["nginx", "-p", d, "-c", f"{d}/nginx.conf", "-e", f"{d}/nginx-error.log"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    base = f"http://127.0.0.1:{edge}"
    try:
        t0 = time.time()
        while time.time() - t0 < scaled(20):
            try:
                if get(f"{base}/healthz")[2].startswith(b"ok") and "#EXTINF" in get(f"{base}/hls/main/video.m3u8")[2].decode():
                    break
            except OSError:
                pass
            time.sleep(0.3)
        r = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type:stream_tags=language",
                            "-of", "json", f"{base}/hls/main/master.m3u8"], capture_output=True, text=True, timeout=30)
        streams = json.loads(r.stdout or "{}").get("streams", [])
        kinds = sorted(s["codec_type"] for s in streams)
        check(kinds.count("video") == 1 and kinds.count("audio") == 6,
              "ffprobe through the edge: one video, one audio rendition per channel", f"{kinds}")

        # playlists: cached at most about a second
        s1, h1, b1 = get(f"{base}/hls/main/video.m3u8")
        s2, h2, b2 = get(f"{base}/hls/main/video.m3u8")
        check(s2 == 200 and h2.get("x-cache-status") == "HIT", "a playlist asked twice at once: the second is a HIT",
              f"{h1.get('x-cache-status')} then {h2.get('x-cache-status')}, cache-control {h1.get('cache-control')}")
        seq = lambda b: int(re.search(rb"MEDIA-SEQUENCE:(\d+)", b).group(1)) if b else -1
        first, moved, t0 = seq(b1), None, time.time()
        while time.time() - t0 < scaled(8):
            b = get(f"{base}/hls/main/video.m3u8")[2]
            if seq(b) > first or b.count(b"#EXTINF") != b1.count(b"#EXTINF"):
                moved = time.time() - t0
                break
            time.sleep(0.2)
        check(moved is not None, "the edge's playlist moves on with dragoman's (not held past ~1 s)",
              f"changed after {moved:.1f} s" if moved is not None else "never")
        st, hd, _ = get(f"http://127.0.0.1:{port}/hls/main/master.m3u8")
        st304 = get(f"http://127.0.0.1:{port}/hls/main/master.m3u8", {"If-None-Match": hd.get("etag", "")})[0]
        check(hd.get("etag") and st304 == 304, "dragoman's playlist ETag: a revalidation gets 304",
              f"etag {hd.get('etag')}, {st304}")

        # segments: one upstream fetch for many viewers
        # a segment nobody fetched yet: wait for dragoman (directly) to list a new one
        segs = lambda: [ln for ln in get(f"http://127.0.0.1:{port}/hls/main/audio-hy.m3u8")[2].decode().splitlines()
                        if ln.startswith("/hls-seg/")]
        known, t0 = set(segs()), time.time()
        fresh = []
        while not fresh and time.time() - t0 < scaled(6):
            time.sleep(0.1)
            fresh = [x for x in segs() if x not in known]
        seg = fresh[-1] if fresh else sorted(known)[-1]
        statuses = []
        lock = threading.Lock()

        def fetch():
            h = get(f"{base}{seg}")[1]
            with lock:
                statuses.append(h.get("x-cache-status"))

        threads = [threading.Thread(target=fetch) for _ in range(30)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        later = get(f"{base}{seg}")[1]
        check(statuses.count("MISS") == 1 and statuses.count("HIT") == 29 and later.get("x-cache-status") == "HIT",
              "30 viewers ask for a new segment at once: one MISS (one upstream fetch), 29 HIT",
              f"{ {k: statuses.count(k) for k in set(statuses)} }, then {later.get('x-cache-status')}, "
              f"cache-control {later.get('cache-control')}")

        out = subprocess.run([os.path.join(ROOT, "build/wsprobe"), "--url",
                              f"ws://127.0.0.1:{edge}/ws/listen?room=main&lang=hy", "--seconds", "3", "--json"],
                             capture_output=True, text=True, timeout=30).stdout
        p = json.loads(out or "{}")
        check(p.get("packets", 0) >= 120 and p.get("gaps") == 0, "the WebSocket listener through the edge",
              f"{p.get('packets')} packets, gaps {p.get('gaps')}")

        # a few hundred HLS viewers over two edges: dragoman sees about one fetch per
        # segment per edge, however many viewers ask
        clients, seconds = 240, 7
        counts = {"playlist": 0, "segment": 0, "errors": 0}
        stop_at = time.time() + seconds

        def viewer(i):
            ep = edge if i % 2 else edge2
            pl = "video.m3u8" if i % 3 == 0 else f"audio-{['orig', 'en', 'hy', 'az', 'ru', 'tr'][i % 6]}.m3u8"
            conn, seen, n = http.client.HTTPConnection("127.0.0.1", ep, timeout=10), set(), {"p": 0, "s": 0, "e": 0}
            time.sleep(i * 0.01)  # viewers arrive over 2.4 s, not in one instant
            while time.time() < stop_at:
                try:
                    conn.request("GET", f"/hls/main/{pl}")
                    r = conn.getresponse()
                    body = r.read().decode()
                    n["p"] += 1
                    segs = [ln for ln in body.splitlines() if ln.startswith("/hls-seg/")]
                    for seg in (segs[-1:] if not seen else [x for x in segs if x not in seen]):
                        conn.request("GET", seg)
                        r2 = conn.getresponse()
                        r2.read()
                        n["s" if r2.status == 200 else "e"] += 1
                    seen.update(segs)
                except (OSError, http.client.HTTPException):
                    n["e"] += 1
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", ep, timeout=10)
                time.sleep(1.0)  # a player re-reads a live playlist about once per target duration
            with lock:
                counts["playlist"] += n["p"]
                counts["segment"] += n["s"]
                counts["errors"] += n["e"]

        threads = [threading.Thread(target=viewer, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ratios = []
        for name in ("e1", "e2"):
            lines = [ln.split() for ln in open(f"{tmp}/{name}/access.log") if ln.startswith("/hls-seg/")]
            distinct = {ln[0] for ln in lines}
            fetched = [ln[0] for ln in lines if len(ln) > 2 and ln[2] != "-"]
            ratios.append((name, len(lines), len(distinct), len(fetched)))
        worst = max(f / max(d, 1) for _, _, d, f in ratios)
        check(counts["segment"] >= clients and counts["errors"] == 0 and all(d > 0 for _, _, d, _ in ratios)
              and worst <= 1.1,
              f"{clients} HLS viewers over two edges: about one origin fetch per segment per edge",
              f"viewers made {counts['playlist']} playlist and {counts['segment']} segment requests, "
              f"{counts['errors']} errors; per edge (requests, segments, fetched from dragoman): "
              + ", ".join(f"{n} {r}/{d}/{f}" for n, r, d, f in ratios) + f"; worst ratio {worst:.2f}")
    finally:
        for ngx in ngxs:
            ngx.terminate()
            try:
                ngx.wait(5)
            except subprocess.TimeoutExpired:
                ngx.kill()
        srv.terminate()
        try:
            srv.wait(scaled(10))  # LeakSanitizer checks at exit
        except subprocess.TimeoutExpired:
            srv.kill()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print(f"edge.py: {len(failures)} check(s) FAILED")
        sys.exit(1)
    print("edge.py: all checks passed")


if __name__ == "__main__":
    main()
