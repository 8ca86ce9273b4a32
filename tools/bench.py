#!/usr/bin/env python3
"""make bench: dragoman's low-latency core, measured on this machine.

  1. mouth-to-socket: a click track into a booth (Opus/RTP, tools/clickbench),
     timed at a /ws/listen listener; 20 ms and 10 ms channel frames.
  2. fan-out: N /ws/listen clients (tools/loadgen) against the demo, server CPU,
     RSS per listener and delivery delay, next to the bare one-send()-per-listener
     floor measured in the same run (loadgen --bare).
  3. cost per channel: callgrind instruction counts of mix + Opus, and of AAC,
     per second of audio (repeatable on a noisy machine).

  5. browser mouth-to-ear (tools/browserbench.mjs): a click track as the fake
     microphone of a real Chromium's booth page, on air, to a listener page's
     audio output in the same browser (not with --smoke or QUICK=1: ~45 s).

  6. the demo as `make demo` runs it: server CPU and RSS with 0 and with 100
     listeners (~30 s).

  4. the SRT stage (tools/stagebench.py): server CPU and RSS receiving 1080p30
     4 Mbit/s over SRT (with HLS and without), and the latency of a click sent
     into the stage's floor to a /ws/listen listener (floor-to-ear), to a
     browser booth's WebRTC return feed (floor-to-booth) and to the HLS
     playlist (floor-to-HLS segment availability).

Writes bench/results.json and the table in docs/performance.md.
QUICK=1: a reduced run (< 1 minute). --smoke: seconds, asserts sanity, writes
nothing (part of `make test`).
Development: --only mouth,webrtc,browser,fanout,demo,cost,icecast,stage runs those parts
(not with --smoke); --out FILE writes the results there. Either prints the
table and touches neither bench/results.json nor docs/performance.md.
"""
import datetime, json, os, platform, re, shutil, signal, socket, subprocess, sys, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
B = os.path.join(ROOT, "build")
SMOKE = "--smoke" in sys.argv
QUICK = os.environ.get("QUICK") == "1" or SMOKE


def arg(name):
    for i, a in enumerate(sys.argv):
        if a == name and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


ONLY = set(arg("--only").split(",")) if arg("--only") else None
OUT = arg("--out")
PARTS = {"mouth", "webrtc", "browser", "fanout", "demo", "cost", "icecast", "stage"}
# a full run takes 10 minutes and rewrites the results: anything it does not know stops it
_unknown = [a for i, a in enumerate(sys.argv[1:], 1)
            if a not in ("--smoke", "--only", "--out") and not a.startswith(("--only=", "--out="))
            and sys.argv[i - 1] not in ("--only", "--out")]
if _unknown or (ONLY and not ONLY <= PARTS):
    sys.exit(__doc__ + f"\nbench.py: unknown {_unknown or sorted(ONLY - PARTS)}")


def want(part):
    return SMOKE or ONLY is None or part in ONLY


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Server:
    def __init__(self, config, sets=()):
        self.port = free_port()
        args = [os.path.join(B, "dragoman"), "--config", config, "--set", f"server.port={self.port}",
                "--set", f"server.hls-dir=build/test-artifacts/hls-{self.port}"]
        for s in sets:
            args += ["--set", s]
        self.log = open(os.path.join(B, "test-artifacts", f"bench-server-{self.port}.log"), "w")
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1).read().startswith(b"ok"):
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server on {config} did not become healthy")

    def metrics(self):
        return urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2).read().decode()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def run_json(args, timeout):
    out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    try:
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise RuntimeError(f"{args[0]} failed ({out.returncode}): {out.stderr[-500:]}")


def mouth_to_socket(frame_ms, clicks):
    srv = Server("configs/bench.ini", [f"room main.opus-frame-ms={frame_ms}"])
    try:
        time.sleep(0.5)
        r = run_json([os.path.join(B, "clickbench"), "--url", f"ws://127.0.0.1:{srv.port}/ws/listen?room=main&lang=hy",
                      "--rtp", "127.0.0.1:15102", "--clicks", str(clicks), "--frame-ms", str(frame_ms), "--json"],
                     timeout=clicks + 60)
        r["jitter_buffer_ms"] = 20  # configs/bench.ini [booth main/hy] jitter-ms
        r["channel_frame_ms"] = frame_ms
        return r
    finally:
        srv.stop()


def mouth_to_socket_webrtc(clicks):
    """clicks from a webrtcbin peer (tools/boothpeer: capture time of each click) to a
    /ws/listen listener (tools/clickbench --listen-only: arrival time of each click)"""
    srv = Server("configs/bench.ini")
    period = 501.3
    secs = int(clicks * period / 1000) + (4 if QUICK else 6)
    try:
        lis = subprocess.Popen([os.path.join(B, "clickbench"), "--url",
                                f"ws://127.0.0.1:{srv.port}/ws/listen?room=main&lang=az", "--listen-only",
                                str(secs + (2 if QUICK else 4))],
                               cwd=ROOT, stdout=subprocess.PIPE, text=True)
        peer = run_json([os.path.join(B, "boothpeer"), "--url", f"ws://127.0.0.1:{srv.port}/ws/booth?room=main&booth=az",
                         "--token", "bench-az-booth", "--name", "bench", "--click-period-ms", str(period),
                         "--actions", "0.2:on-air=true", "--actions-from-ice", "--seconds", str(secs), "--json"],
                        timeout=secs + 60)
        arrivals = json.loads(lis.communicate(timeout=60)[0])["arrivals_us"]
        mouths = peer["clicks"]["mouth_us"]
        lat = []
        for m in mouths[2:]:  # skip the first second: the booth goes on air and ramps in
            hit = next((a for a in arrivals if m <= a < m + 400000), None)
            if hit is not None:
                lat.append((hit - m) / 1000)
        lat.sort()
        pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")
        return {"clicks_sent": len(mouths) - 2, "clicks_timed": len(lat), "jitter_buffer_ms": 20,
                "sender_frame_ms": 20, "channel_frame_ms": 20,
                "latency_ms": {"p50": pct(0.5), "p95": pct(0.95), "p99": pct(0.99), "max": lat[-1] if lat else float("nan")}}
    finally:
        srv.stop()


def browser_mouth_to_ear(clicks):
    """tools/browserbench.mjs: booth page (fake mic: clicks) → server → listener page, one Chromium"""
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not shutil.which("node") or not os.path.exists(chromium) or \
            not os.path.exists(os.path.join(ROOT, "web", "node_modules", "playwright-core")):
        return {"error": "needs node, Chromium and web/node_modules (playwright-core)"}
    period = 0.487  # browserbench.mjs PERIOD_MS
    out = subprocess.run(["node", os.path.join(ROOT, "tools", "browserbench.mjs"), "--clicks", str(clicks)], cwd=ROOT,
                         capture_output=True, text=True, timeout=clicks * period + 120)
    try:
        r = json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"error": f"browserbench failed ({out.returncode}): {out.stderr.strip()[-300:]}"}
    if out.returncode != 0:
        r["error"] = out.stderr.strip().splitlines()[0][:300] if out.stderr.strip() else f"exit {out.returncode}"
    return r


def fanout(clients, seconds):
    # every loadgen client comes from 127.0.0.1: lift the per-address flood cap (conncap.c)
    srv = Server("configs/demo.ini", ["listen.max-listeners=20000", "server.max-connections-per-address=0"])
    try:
        time.sleep(1)
        r = run_json([os.path.join(B, "loadgen"), "--url", f"ws://127.0.0.1:{srv.port}/ws/listen?room=main",
                      "--langs", "orig,en,hy,az,ru,tr", "--clients", str(clients), "--seconds", str(seconds),
                      "--server-pid", str(srv.proc.pid), "--idle-seconds", "3" if SMOKE else "2" if QUICK else "5",
                      "--stall", "5" if clients >= 1000 else "2", "--json"], timeout=seconds + 120)
        m = srv.metrics()
        r["server_disconnects_slow"] = sum(int(float(v)) for v in
                                           re.findall(r'^dragoman_listener_disconnects_total\{[^}]*\} (\S+)', m, re.M))
        return r
    finally:
        srv.stop()


def demo_load(clients, seconds):
    """configs/demo.ini as `make demo` runs it (two rooms, test-pattern stages, HLS, the espeak
    booths): the server's CPU and RSS with nobody listening (loadgen's idle sample), then with
    `clients` listeners spread over the six channels of room main"""
    srv = Server("configs/demo.ini")
    try:
        time.sleep(3)  # past the start-up (pipelines prerolling, first HLS segments)
        return run_json([os.path.join(B, "loadgen"), "--url", f"ws://127.0.0.1:{srv.port}/ws/listen?room=main",
                         "--langs", "orig,en,hy,az,ru,tr", "--clients", str(clients), "--seconds", str(seconds),
                         "--server-pid", str(srv.proc.pid), "--idle-seconds", str(seconds), "--json"],
                        timeout=2 * seconds + 60)
    finally:
        srv.stop()


def bare(clients, seconds):
    return run_json([os.path.join(B, "loadgen"), "--bare", "--clients", str(clients), "--seconds", str(seconds),
                     "--frame-bytes", "98", "--json"], timeout=seconds + 60)


def callgrind_instructions(pipeline, seconds_of_audio):
    """instructions per second of audio for a gst-launch pipeline, under callgrind"""
    out = os.path.join(B, "callgrind.out.bench")
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "gst-launch-1.0", "-q"] + pipeline.split()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    m = re.search(r"Collected\s*:\s*(\d+)", r.stderr)
    os.unlink(out) if os.path.exists(out) else None
    if not m:
        raise RuntimeError("callgrind: " + r.stderr[-300:])
    return int(m.group(1)) / seconds_of_audio


def channel_cost():
    secs = 20
    n = secs * 100  # 10 ms buffers
    src = (f"audiotestsrc num-buffers={n} samplesperbuffer=480 wave=pink-noise volume=0.2 ! "
           "audio/x-raw,format=S16LE,rate=48000,channels=1")
    base = callgrind_instructions(f"{src} ! fakesink", secs)
    mix = callgrind_instructions(f"audiomixer name=m ! audio/x-raw,format=S16LE,rate=48000,channels=1 ! fakesink "
                                 f"{src} ! volume volume=0.18 ! m. {src} ! volume ! m.", secs) - 2 * base
    opus = callgrind_instructions(f"{src} ! opusenc frame-size=20 bitrate=32000 ! fakesink", secs) - base
    aac = callgrind_instructions(f"{src} ! audioconvert ! avenc_aac bitrate=64000 ! fakesink", secs) - base
    return {"seconds_of_audio": secs, "instructions_per_audio_second": {
        "mix_2_inputs_with_gains": round(mix), "opus_20ms_32k": round(opus), "aac_64k": round(aac)}}


def machine():
    model = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:  # the Makefile's MALLOC of the build under test (jemalloc or glibc)
        malloc = open(os.path.join(B, ".malloc")).read().strip()
    except OSError:
        malloc = "unknown"
    return {"cores": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "load_before": os.getloadavg()[0], "malloc": malloc}


def main():
    os.makedirs(os.path.join(B, "test-artifacts"), exist_ok=True)
    res = {"machine": machine(), "quick": QUICK, "smoke": SMOKE, "timings_s": {}}
    t0 = time.monotonic()

    def timed(name, fn, *a, **kw):
        t = time.monotonic()
        r = fn(*a, **kw)
        res["timings_s"][name] = round(time.monotonic() - t, 1)
        return r

    # Budgets: `make bench` ≤ 10 minutes, QUICK=1 ≤ 1 minute (res["timings_s"] shows where it goes).
    # The first full run took 9.4 minutes with 200 clicks per latency bench; the SRT stage adds ~1.5, so
    # 120 clicks now (p99 = the second highest). QUICK: 12 clicks, and 20 ms channel frames only.
    clicks = 10 if SMOKE else 12 if QUICK else 120
    if want("mouth"):
        res["mouth_to_socket"] = [timed("mouth_to_socket_20ms", mouth_to_socket, 20, clicks)]
        if not QUICK:
            res["mouth_to_socket"].append(timed("mouth_to_socket_10ms", mouth_to_socket, 10, clicks))
    if not SMOKE and want("webrtc"):
        res["mouth_to_socket_webrtc"] = timed("mouth_to_socket_webrtc", mouth_to_socket_webrtc, clicks)
    if not QUICK and want("browser"):
        res["browser_mouth_to_ear"] = timed("browser_mouth_to_ear", browser_mouth_to_ear, 60)
    sizes = [100] if SMOKE else [500] if QUICK else [1000, 2000, 4000]
    secs = 3 if SMOKE else 4 if QUICK else 10
    if want("fanout"):
        res["fanout"] = []
        for n in sizes:
            f = timed(f"fanout_{n}", fanout, n, secs)
            f["bare"] = timed(f"bare_{n}", bare, n, secs)
            res["fanout"].append(f)
    if not SMOKE and want("demo"):
        res["demo"] = timed("demo", demo_load, 100, 4 if QUICK else 10)
    if not QUICK and want("cost") and shutil.which("valgrind"):
        res["channel_cost"] = timed("channel_cost", channel_cost)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    if not QUICK and want("icecast") and shutil.which("icecast2"):
        import icecast_bench
        res["icecast"] = timed("icecast", icecast_bench.run, [100, 1000], 10)
    if not SMOKE and want("stage") and shutil.which("ffmpeg"):
        import stagebench
        try:  # the last part: a failure here (ffmpeg without libsrt, say) keeps the rest of the run
            res["stage"] = timed("stage", stagebench.run, quick=QUICK, log=lambda m: print(m, file=sys.stderr))
        except Exception as e:
            res["stage"] = {"error": f"{type(e).__name__}: {e}"}
            print(f"stage bench failed: {res['stage']['error']}", file=sys.stderr)
    res["timings_s"]["total"] = round(time.monotonic() - t0, 1)

    if SMOKE:
        m = res["mouth_to_socket"][0]
        f = res["fanout"][0]
        h = f["healthy"]
        problems = []
        if m["clicks_timed"] < m["clicks_sent"] * 0.9:
            problems.append(f"clicks timed {m['clicks_timed']} of {m['clicks_sent']}")
        if not (0 < m["latency_ms"]["p50"] < 500):
            problems.append(f"mouth-to-socket p50 {m['latency_ms']['p50']} ms is not sane")
        if h["opened"] != f["clients"] or h["closes"] or h["gaps"]:
            problems.append(f"fan-out: opened {h['opened']}/{f['clients']}, closes {h['closes']}, gaps {h['gaps']}")
        if h["delivered_ratio"] < 0.9:
            problems.append(f"fan-out delivered {h['delivered_ratio']:.2f} of the expected packets")
        print(f"bench smoke: clicks {m['clicks_timed']}/{m['clicks_sent']}, p50 {m['latency_ms']['p50']} ms; "
              f"{f['clients']} listeners delivered {h['delivered_ratio']:.2f}, p99 {h['delay_ms']['p99']} ms")
        if problems:
            print("bench smoke FAILED: " + "; ".join(problems))
            sys.exit(1)
        return

    table = render(res)
    if OUT or ONLY:  # a development run: bench/results.json and docs/performance.md are a full run's
        if OUT:
            with open(OUT, "w") as fh:
                json.dump(res, fh, indent=2)
        print(table)
        return
    os.makedirs(os.path.join(ROOT, "bench"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results.json"), "w") as fh:
        json.dump(res, fh, indent=2)
    print(table)
    write_doc(table)


def render(res):
    m = res["machine"]
    lines = [f"Measured by `make bench`{' (QUICK=1)' if res['quick'] else ''} on {m['date']}: {m['cores']} cores, "
             f"{m['cpu']}, Linux {m['kernel']}, load average {m['load_before']:.1f} before the run; "
             f"the server on {m.get('malloc', 'glibc')}'s malloc."]
    if "mouth_to_socket" in res:
        lines += ["", "### Mouth-to-socket (booth Opus/RTP in → WebSocket listener), jitter buffer 20 ms", "",
                  "| channel frame | clicks timed | p50 | p95 | p99 | max |", "|---|---|---|---|---|---|"]
    for r in res.get("mouth_to_socket", []):
        l = r["latency_ms"]
        lines.append(f"| {r['channel_frame_ms']} ms | {r['clicks_timed']}/{r['clicks_sent']} | {l['p50']:.1f} ms | "
                     f"{l['p95']:.1f} ms | {l['p99']:.1f} ms | {l['max']:.1f} ms |")
    if "mouth_to_socket_webrtc" in res:
        r = res["mouth_to_socket_webrtc"]
        l = r["latency_ms"]
        lines += ["", "### Mouth-to-socket through a WebRTC booth (webrtcbin peer → server → WebSocket listener)", "",
                  "Here the mouth is the click's capture time at the peer, so its own 20 ms Opus frame and packetisation "
                  "are included (the RTP figures above start at the packet's departure).", "",
                  "| clicks timed | p50 | p95 | p99 | max |", "|---|---|---|---|---|",
                  f"| {r['clicks_timed']}/{r['clicks_sent']} | {l['p50']:.1f} ms | {l['p95']:.1f} ms | "
                  f"{l['p99']:.1f} ms | {l['max']:.1f} ms |"]
    if "browser_mouth_to_ear" in res:
        lines += render_browser(res["browser_mouth_to_ear"])
    if "fanout" in res:
        lines += ["", "### Fan-out (demo room, 20 ms frames, healthy listeners; 2-5 stalled ones beside them)", "",
                  "| listeners | server CPU (fan-out only) | bare floor CPU | ratio | RSS/listener | p50 | p99 | "
                  "gaps | discont. | stalled closed by server | loadgen CPU |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for f in res.get("fanout", []):
        s, h, b = f["server"], f["healthy"], f["bare"]["server"]
        fan = s["cpu_pct"] - s["cpu_pct_idle"]
        ratio = fan / b["cpu_pct"] if b["cpu_pct"] > 0 else float("nan")
        lines.append(f"| {f['clients']} | {fan:.1f} % ({s['cpu_pct']:.1f} − idle {s['cpu_pct_idle']:.1f}) | "
                     f"{b['cpu_pct']:.1f} % | {ratio:.2f}× | {s['rss_kib_per_conn']:.1f} KiB | "
                     f"{h['delay_ms']['p50']:.1f} ms | {h['delay_ms']['p99']:.1f} ms | {h['gaps']} | "
                     f"{h['discontinuities']} | {f['server_disconnects_slow']} | {f['loadgen']['cpu_pct']:.0f} % |")
    if "demo" in res:
        d = res["demo"]
        s, h = d["server"], d["healthy"]
        lines += ["", "### The demo (`make demo`: two rooms, test-pattern stages, HLS, simulated booths)", "",
                  f"Server process CPU (% of one core) and RSS over {d['window_s']:.0f} s windows.", "",
                  "| listeners | server CPU | server RSS | delivered | p99 |", "|---|---|---|---|---|",
                  f"| 0 | {s['cpu_pct_idle']:.1f} % | {s['rss_kib_base'] / 1024:.1f} MiB | – | – |",
                  f"| {d['clients']} | {s['cpu_pct']:.1f} % | {s['rss_kib_end'] / 1024:.1f} MiB | "
                  f"{h['delivered_ratio']:.2f} | {h['delay_ms']['p99']:.1f} ms |"]
    if "channel_cost" in res:
        c = res["channel_cost"]["instructions_per_audio_second"]
        lines += ["", "### Cost per channel (callgrind, instructions per second of audio)", "",
                  "| mix (2 inputs, gains) | Opus 20 ms 32 kbit/s | AAC 64 kbit/s |", "|---|---|---|",
                  f"| {c['mix_2_inputs_with_gains'] / 1e6:.1f} M | {c['opus_20ms_32k'] / 1e6:.1f} M | "
                  f"{c['aac_64k'] / 1e6:.1f} M |"]
    if "icecast" in res:
        lines += render_icecast(res["icecast"])
    if "stage" in res and "error" in res["stage"]:
        lines += ["", "### SRT stage", "", f"Not measured: {res['stage']['error']}"]
    elif "stage" in res:
        lines += render_stage(res["stage"])
    return "\n".join(lines) + "\n"


def render_browser(r):
    out = ["", "### Browser mouth-to-ear (Chromium booth page, fake mic → server → listener page's audio graph)", ""]
    if "latency_ms" not in r:
        return out + [f"Not measured: {r.get('error', 'no result')}"]
    l = r["latency_ms"]
    ms = lambda v: "–" if v is None else f"{v:.1f} ms"
    out += ["A click in the booth page's microphone (tapped in its audio graph) to the same click at the output of "
            "the listener page's jitter-buffer worklet, both stamped with performance.timeOrigin + now() in one "
            "browser. Not included: the microphone's capture latency and the listener's device output latency "
            f"(the context reports {ms(r.get('listener_output_latency_ms'))}).", "",
            "| clicks timed | p50 | p95 | p99 | max | booth jitter buffer (server) | listener jitter target | "
            "listener underruns |", "|---|---|---|---|---|---|---|---|",
            f"| {r['clicks_timed']}/{r['clicks_sent']} | {ms(l['p50'])} | {ms(l['p95'])} | {ms(l['p99'])} | "
            f"{ms(l['max'])} | {r['booth_jitter_buffer_ms']} ms | {ms(r.get('listener_jitter_target_ms'))} | "
            f"{r.get('listener_underruns')} |"]
    if r.get("error"):
        out += ["", f"Warning: {r['error']}"]
    return out


def render_icecast(ic):
    """the side-by-side table (the full record stays in bench/results.json)"""
    out = ["", "### Side by side with Icecast 2.4 (Ogg/Opus mount, 32 kbit/s, same machine, same run)", "",
           "Server CPU above idle and RSS per listener; latency = a click in the source → heard by a listener "
           "probe; behind live = how much old audio a new listener is given (Icecast's burst).", "",
           "| listeners | server | CPU above idle | RSS / listener | latency p50 | latency p99 | behind live |",
           "|---|---|---|---|---|---|---|"]
    for row in ic.get("results", []):
        d = row.get("dragoman", {})
        out.append(f"| {row['clients']} | dragoman (WebSocket, 20 ms frames) | {d.get('cpu_pct_fanout', 0):.1f} % | "
                   f"{d.get('rss_kib_per_listener', 0):.1f} KiB | {d.get('delay_ms', {}).get('p50', 0):.1f} ms* | "
                   f"{d.get('delay_ms', {}).get('p99', 0):.1f} ms* | burst-ms 60 (config) |")
        for key, label in (("icecast", "Icecast, 0.5 s Ogg pages"), ("icecast_20ms_pages", "Icecast, 20 ms pages")):
            i = row.get(key)
            if not i:
                continue
            pr = i.get("probe", {})
            lat = pr.get("latency_ms", {})
            behind = pr.get("behind_live_s", {})
            out.append(f"| {row['clients']} | {label} | {i.get('cpu_pct_fanout', 0):.1f} % | "
                       f"{i.get('rss_kib_per_listener', 0):.1f} KiB | {lat.get('p50', 0):.0f} ms | "
                       f"{lat.get('p99', 0):.0f} ms | {behind.get('p50', 0):.1f} s |")
    out += ["", "\\* dragoman's figure is delivery delay (header ingress → client receipt), not a click's "
            "source-to-ear latency; the mouth-to-socket rows above are that for dragoman."]
    return out


def render_stage(st):
    ms = lambda v: "–" if v is None else f"{v:.1f} ms"
    lines = ["", "### SRT stage: server CPU at 1080p30, 4 Mbit/s (configs/conference.ini, video passed through)", "",
             f"Sender: {st['sender']['video']}; {st['sender']['audio']}. Server process only, stage live, "
             "nobody listening.", "",
             "| server | server CPU (% of a core) | server RSS | window | sender (ffmpeg) CPU |", "|---|---|---|---|---|"]
    names = {"hls": "HLS on (the conference: channels, program pipeline, HLS)",
             "program": "`room main.hls=false` (channels + program pipeline, kept for `[record main]`)",
             "channels": "`room main.hls=false`, no `[record main]`: the channels alone"}
    for c in st["cpu"]:
        what = names.get(c["variant"], c["variant"])
        lines.append(f"| {what} | {c['server_cpu_pct']:.1f} % | {c['server_rss_kib'] / 1024:.1f} MiB | "
                     f"{c['seconds']:.0f} s | {c['sender_cpu_pct']:.1f} % |")
    e, b, h = st["floor_to_ear"], st["floor_to_booth"], st["floor_to_hls"]
    warn = "" if h.get("identification_ok") and not h.get("implausible") else (
        f", which click a segment holds is unsure ({h.get('implausible', 0)} taken out: see results.json)")
    el, bl, hl = e["latency_ms"], b["latency_ms"], h["latency_ms"]
    lines += ["", f"### Floor-to-ear over SRT (a click in the stage's AAC, SRT latency {st['srt_latency_ms']} ms)", "",
              "| to | clicks timed | p50 | p95 | p99 | max |", "|---|---|---|---|---|---|",
              f"| WebSocket listener on `orig` | {e['clicks_timed']}/{e['clicks_sent']} | {ms(el['p50'])} | "
              f"{ms(el['p95'])} | {ms(el['p99'])} | {ms(el['max'])} |",
              f"| browser booth `{b['booth']}`, WebRTC return feed | {b['clicks_timed']}/{b['clicks_sent']} | "
              f"{ms(bl['p50'])} | {ms(bl['p95'])} | {ms(bl['p99'])} | {ms(bl['max'])} |",
              f"| HLS: its segment in the `orig` playlist ({h['segment_s']} s segments) | {h['clicks_timed']} in "
              f"{h['segments_seen']} segments | {ms(hl['p50'])} | {ms(hl['p95'])} | {ms(hl['p99'])} | {ms(hl['max'])} |",
              "", f"Send → the Opus packet carrying the click out of the encoder (its ingress stamp): p50 "
              f"{ms(e['send_to_ingress_ms']['p50'])}, p99 {ms(e['send_to_ingress_ms']['p99'])} (SRT "
              f"{st['srt_latency_ms']} ms, demux, AAC parse and decode, mixer, Opus). The sender's own pacing "
              f"(send − PTS, not counted): p99 {ms(st['sender_jitter_ms']['p99'])}. Booth peer's jitter buffer "
              f"{b['peer_jitterbuffer_ms']} ms. HLS: playlist polled every {h['poll_ms']:.0f} ms (longest gap "
              f"{ms(h.get('max_poll_gap_ms'))}){warn}; the click reference checked against the stream: "
              f"{'ok' if st['relay']['click_mapping_check']['ok'] else 'FAILED'}."]
    return lines


def write_doc(table):
    path = os.path.join(ROOT, "docs", "performance.md")
    doc = open(path).read() if os.path.exists(path) else "# Performance\n\n<!-- bench:begin -->\n<!-- bench:end -->\n"
    begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
    if begin not in doc:
        doc += f"\n{begin}\n{end}\n"
    head, rest = doc.split(begin, 1)
    tail = rest.split(end, 1)[1]
    open(path, "w").write(f"{head}{begin}\n{table}{end}{tail}")


if __name__ == "__main__":
    main()
