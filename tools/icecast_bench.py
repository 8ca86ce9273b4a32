#!/usr/bin/env python3
"""Side by side with a peer: the same audio fan-out job served by Icecast.

An Ogg/Opus mount on a private Icecast (Debian's icecast2, our own config on
127.0.0.1 and a free port, never the system service), fed live by GStreamer:

    python (real-time s16le click track, 10 ms chunks) → gst-launch-1.0 fdsrc !
    rawaudioparse ! opusenc bitrate=32000 bitrate-type=cbr frame-size=20 !
    oggmux ! shout2send → icecast /bench.opus → N HTTP listeners + 1 probe

and, at the same N, dragoman's /ws/listen fan-out through build/loadgen (the
way tools/bench.py calls it, but every client on one channel and no stalled
ones, since Icecast's listeners are all healthy and on one mount).

A second mount, /bench20.opus, carries the same audio with one Ogg page per
20 ms Opus packet (oggmux max-page-delay=10 ms): dragoman's write cadence.
Icecast sends one send() per Ogg page per listener (seen with strace: 2133 B
every 520 ms with oggmux's default 500 ms pages, 108 B every 20 ms with one
packet per page), so this mount shows what its cheapness is made of: few,
large, late writes.  The N listeners of each mount run one after the other.

Measured per N, in the same run:
  - Icecast CPU % of a core over the window (utime+stime of the whole process,
    all threads) and idle CPU with the source connected and nobody listening;
  - RSS per listener: (VmRSS at window end − VmRSS before the first listener
    of the run) / N.  Icecast is not restarted between Ns, so run N ascending;
  - bytes per recv() seen by the N listeners (a recv() reads everything the
    socket holds, so this is the server's write size or more), split into the
    burst-on-connect phase (connect + warm-up) and the steady window, with a
    size histogram;
  - latency, from a probe listener that parses Ogg pages, decodes Opus with
    libopus (ctypes) and times the click onsets (2 ms of 3 kHz every 501.3 ms,
    as tools/clickbench.c):
      latency_ms   = (t_recv + o_recv) − (t_send + o_send), clickbench's
                     definition: t_send is when the 10 ms PCM chunk holding the
                     onset was written to the encoder (at its end, like a
                     capture card), o_send the onset's offset in it; t_recv when
                     the Ogg page holding it arrived, o_recv its offset in the
                     page's audio (a player that plays a page on arrival);
      arrival_ms   = t_recv − (t_send + o_send): when the click's bytes exist
                     at the listener;
      page_delay_ms = t_recv − t_send of the newest sample in the page, the
                     analogue of loadgen's delay (receipt − ingress of the
                     newest audio in the packet);
      behind_live_s = how far behind live a player is that starts playing at
                     its first received byte and never stalls: with the
                     default 64 KiB burst-on-connect at 32 kbit/s, ~16 s.
    The source runs long enough before the probe connects that the burst is
    the full burst-size (not just "everything since the source started").

Usage:
  tools/icecast_bench.py [--clients 100,1000] [--seconds 10] [--warmup 3]
                         [--burst-size 65535] [--ramp 250] [--no-dragoman]
                         [--no-small-pages] [--json]
  JSON on stdout, a Markdown table on stderr (unless --json).  ~150 s for the
  defaults.  Logs: build/test-artifacts/icecast-*.
  tools/bench.py: import icecast_bench; icecast_bench.run([100, 1000], 10)

Internal mode (the N listeners, in their own process so their CPU is theirs
and the GIL does not disturb the source's pacing):
  tools/icecast_bench.py --listeners --port P --mount /bench.opus --clients N
                         --warmup S --seconds S [--server-pid PID] [--rss-base KIB]

Needs: icecast2, gstreamer1.0-plugins-good (shout2send), -base (opus, ogg),
libopus0, and for the dragoman side build/dragoman and build/loadgen.
Python 3 stdlib only.
"""
import argparse, array, bisect, ctypes, ctypes.util, json, math, os, pwd, grp, resource, selectors, shutil, signal, socket
import subprocess, sys, tempfile, threading, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
B = os.path.join(ROOT, "build")
ART = os.path.join(B, "test-artifacts")

RATE = 48000
CHUNK = 480                 # samples the source writes at a time (10 ms)
BITRATE = 32000
PERIOD = RATE * 0.5013      # click period in samples (divides neither 10 nor 20 ms)
CLICK_SKIP = RATE * 1.0     # first click at 1 s
CLICK_SAMPLES = 96          # 2 ms burst of 3 kHz
THRESHOLD = 0.15            # the burst peaks at 0.6
QUIET = RATE // 10          # re-arm after 100 ms of quiet
MOUNT = "/bench.opus"
PASSWORD = "benchpw"
SIZE_BUCKETS = [512, 1024, 2048, 4096, 8192, 16384, 32768, 65536]  # recv sizes: < each, then >=


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def proc_sample(pid):
    """(utime+stime in seconds, VmRSS KiB) of a whole process, or None"""
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
        fields = st[st.rindex(")") + 2:].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        rss = 0
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                    break
        return cpu, rss
    except (OSError, ValueError, IndexError):
        return None


def quantile(xs, q):
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def stop_pid(proc, sig=signal.SIGTERM, wait=5):
    if proc is None or proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, sig)
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


# ---- the N listeners (child process) ---------------------------------------

def listeners_main(a):
    """Connect N HTTP listeners, read and count; print one JSON line."""
    want = a.clients + 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    sel = selectors.DefaultSelector()
    req = f"GET {a.mount} HTTP/1.0\r\nHost: 127.0.0.1:{a.port}\r\nUser-Agent: dragoman-icecast-bench\r\n\r\n".encode()
    conns = []  # per connection: [sock, header_done, hdr_buf, t_open, burst_bytes, bytes_total]
    phase = "connect"
    stats = {p: {"recvs": 0, "bytes": 0, "max": 0, "hist": [0] * (len(SIZE_BUCKETS) + 1)}
             for p in ("burst", "window")}
    failed, closed, bad_status = 0, 0, 0
    # icecast listens with a backlog of 5 (a full accept queue silently drops the
    # handshake's last ACK, and that connection hangs for a minute): ramp the
    # connects.  It answers a new listener only when the mount's next page
    # arrives, so many wait for their headers at once.
    # A listener with no answer after RETRY_S is closed and replaced (counted).
    max_pending, pending, started, to_start, retried, stuck = 1000, 0, 0, a.clients, 0, 0
    RETRY_S, next_check, first_bad = 3.0, 0.0, None
    buf = bytearray(256 * 1024)
    mv = memoryview(buf)
    t_start = time.monotonic()
    t_win = t_end = None
    cpu_a = rss_a = None
    self_a = 0.0

    def start(i):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", a.port))
        except BlockingIOError:
            pass
        c = [s, False, b"", time.monotonic(), 0, 0, False]
        conns.append(c)
        sel.register(s, selectors.EVENT_WRITE, c)

    def finish(c, bad=False, retry=False):
        nonlocal pending, closed, failed, bad_status, to_start, retried
        if retry:
            pending -= 1
            retried += 1
            to_start += 1
        elif not c[1]:
            pending -= 1
            failed += 1
            bad_status += bad
        else:
            closed += 1
        sel.unregister(c[0])
        c[0].close()
        c[6] = True

    while True:
        now = time.monotonic()
        while to_start and pending < max_pending and now >= t_start + started / a.ramp:
            start(started)
            started += 1
            to_start -= 1
            pending += 1
        if pending and now >= next_check:
            next_check = now + 0.5
            for c in conns:
                if not c[1] and not c[6] and now - c[3] > RETRY_S:
                    if retried < a.clients:
                        finish(c, retry=True)
                    else:
                        stuck += 1
                        finish(c)
        if phase == "connect" and not to_start and pending == 0:
            phase, t_win = "burst", now + a.warmup
            t_connected = now
        if phase == "burst" and now >= t_win:
            phase, t_win = "window", now
            t_end = now + a.seconds
            w_win = time.time()
            self_a = time.process_time()
            if a.server_pid:
                cpu_a, rss_a = proc_sample(a.server_pid)
        if phase == "window" and now >= t_end:
            self_b = time.process_time()
            w_end = time.time()
            if a.server_pid:
                cpu_b, rss_b = proc_sample(a.server_pid)
            break
        timeout = 0.05 if t_win is None else max(0.0, min(0.05, (t_end or t_win) - now))
        events = sel.select(timeout)
        now = time.monotonic()  # one clock read per batch, not per recv
        st = stats["window" if phase == "window" else "burst"]
        for key, ev in events:
            c = key.data
            s = c[0]
            if not c[1] and ev & selectors.EVENT_WRITE:
                try:
                    s.send(req)
                except OSError:
                    finish(c)
                    continue
                sel.modify(s, selectors.EVENT_READ, c)
                continue
            try:
                n = s.recv_into(buf)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                finish(c)
                continue
            if n == 0:
                finish(c)
                continue
            if not c[1]:
                c[2] += bytes(mv[:n])
                end = c[2].find(b"\r\n\r\n")
                if end < 0:
                    if len(c[2]) > 8192:
                        finish(c, True)
                    continue
                if not c[2].startswith((b"HTTP/1.0 200", b"HTTP/1.1 200")):
                    first_bad = first_bad or c[2].split(b"\r\n")[0].decode(errors="replace")
                    finish(c, True)
                    continue
                c[1], c[3] = True, now
                pending -= 1
                n = len(c[2]) - end - 4
                c[2] = b""
                if n <= 0:
                    continue
            c[5] += n
            if now - c[3] < 1.0:
                c[4] += n
            st["recvs"] += 1
            st["bytes"] += n
            if n > st["max"]:
                st["max"] = n
            st["hist"][bisect.bisect_right(SIZE_BUCKETS, n)] += 1
    opened = sum(1 for c in conns if c[1])
    open_at_end = sum(1 for c in conns if c[1] and not c[6])
    bursts = [c[4] for c in conns if c[1]]
    for c in conns:
        if not c[6]:
            c[0].close()
    out = {"clients": a.clients, "opened": opened, "failed": failed, "retried": retried, "stuck": stuck,
           "bad_status": bad_status, "first_bad_status": first_bad,
           "closed_by_server": closed, "open_at_end": open_at_end}
    if t_end is None:
        out["error"] = "no measurement window"
        print(json.dumps(out))
        return 1
    secs = a.seconds
    out.update({"connect_s": round(t_connected - t_start, 3), "warmup_s": a.warmup, "window_s": secs,
                "window_wall": [w_win, w_end],
                "client_cpu_pct": round(100 * (self_b - self_a) / secs, 1),
                "first_second_bytes_mean": round(sum(bursts) / len(bursts)) if bursts else 0,
                "first_second_bytes_min": min(bursts) if bursts else 0})
    for p, st in stats.items():
        st["bytes_per_recv"] = round(st["bytes"] / st["recvs"], 1) if st["recvs"] else 0
        st["hist"] = {(f"<{SIZE_BUCKETS[i]}" if i < len(SIZE_BUCKETS) else f">={SIZE_BUCKETS[-1]}"): v
                      for i, v in enumerate(st["hist"])}
    w = stats["window"]
    w["recvs_per_listener_per_s"] = round(w["recvs"] / max(1, open_at_end) / secs, 2)
    w["bytes_per_listener_per_s"] = round(w["bytes"] / max(1, open_at_end) / secs, 1)
    out["recv"] = stats
    if a.server_pid and cpu_a is not None and cpu_b is not None:
        out["server"] = {"pid": a.server_pid, "cpu_pct": round(100 * (cpu_b - cpu_a) / secs, 1),
                         "rss_kib_base": a.rss_base, "rss_kib_start": rss_a, "rss_kib_end": rss_b,
                         "rss_kib_per_listener": round((rss_b - a.rss_base) / opened, 2) if opened and a.rss_base
                         else None}
    print(json.dumps(out))
    return 0


# ---- Icecast ----------------------------------------------------------------

ICECAST_XML = """<icecast>
  <location>dragoman bench</location>
  <admin>bench@localhost</admin>
  <limits>
    <clients>{clients}</clients>
    <sources>2</sources>
    <queue-size>524288</queue-size>
    <client-timeout>30</client-timeout>
    <header-timeout>15</header-timeout>
    <source-timeout>10</source-timeout>
    <burst-on-connect>1</burst-on-connect>
    <burst-size>{burst}</burst-size>
  </limits>
  <authentication>
    <source-password>{pw}</source-password>
    <relay-password>{pw}</relay-password>
    <admin-user>admin</admin-user>
    <admin-password>{pw}</admin-password>
  </authentication>
  <hostname>127.0.0.1</hostname>
  <listen-socket>
    <port>{port}</port>
    <bind-address>127.0.0.1</bind-address>
  </listen-socket>
  <fileserve>1</fileserve>
  <paths>
    <basedir>/usr/share/icecast2</basedir>
    <logdir>{dir}</logdir>
    <webroot>/usr/share/icecast2/web</webroot>
    <adminroot>/usr/share/icecast2/admin</adminroot>
    <alias source="/" destination="/status.xsl"/>
  </paths>
  <logging>
    <accesslog>access.log</accesslog>
    <errorlog>error.log</errorlog>
    <loglevel>2</loglevel>
    <logsize>10000</logsize>
  </logging>
  <security>
    <chroot>0</chroot>{owner}
  </security>
</icecast>
"""


class Icecast:
    """A private icecast2 on 127.0.0.1:<free port>, our own config, our own PID."""

    def __init__(self, clients, burst):
        exe = shutil.which("icecast2") or shutil.which("icecast")
        if not exe:
            raise RuntimeError("icecast2 is not installed (apt-get install icecast2)")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="icecast-bench-")
        owner = ""
        if os.getuid() == 0:  # icecast refuses to run as root: it drops to nobody itself
            owner = "\n    <changeowner><user>nobody</user><group>nogroup</group></changeowner>"
            os.chown(self.dir, pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid)
        self.conf = os.path.join(self.dir, "icecast.xml")
        with open(self.conf, "w") as f:
            f.write(ICECAST_XML.format(clients=clients + 100, burst=burst, pw=PASSWORD, port=self.port,
                                       dir=self.dir, owner=owner))
        os.chmod(self.conf, 0o644)
        want = clients + 256

        def limits():
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            if soft < want:
                resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))

        self.out = open(os.path.join(ART, f"icecast-{self.port}.out"), "w")
        self.proc = subprocess.Popen([exe, "-c", self.conf], stdout=self.out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, preexec_fn=limits)
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"icecast exited ({self.proc.returncode}): {self.tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("icecast did not listen: " + self.tail())

    def tail(self):
        txt = ""
        for name in ("error.log",):
            try:
                txt += open(os.path.join(self.dir, name)).read()[-600:]
            except OSError:
                pass
        try:
            txt += open(self.out.name).read()[-400:]
        except OSError:
            pass
        return txt

    def mount_up(self, mount):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{mount}", timeout=1) as r:
                return r.status == 200 and len(r.read(64)) > 0
        except OSError:
            return False

    def stop(self):
        stop_pid(self.proc)
        self.out.close()
        for name in ("error.log", "access.log"):
            p = os.path.join(self.dir, name)
            if os.path.exists(p):
                shutil.copy(p, os.path.join(ART, f"icecast-{self.port}-{name}"))
        shutil.rmtree(self.dir, ignore_errors=True)


# ---- the live source --------------------------------------------------------

def click_sample(k):
    return int(round(CLICK_SKIP + k * PERIOD))


class Source:
    """Real-time click track → gst-launch (opusenc, oggmux, shout2send) → icecast.

    chunk_t[k] is the wall time chunk k (samples k*CHUNK ..) was written, at its
    end, like a capture card delivering a period."""

    def __init__(self, port, mount=MOUNT, page_ms=None):
        mux = "oggmux"  # default max-page-delay 500 ms: ~26 packets per page
        if page_ms:
            mux += f" max-delay={page_ms * 1000000} max-page-delay={page_ms * 1000000}"
        pipeline = (f"fdsrc fd=0 ! rawaudioparse use-sink-caps=false format=pcm pcm-format=s16le "
                    f"sample-rate={RATE} num-channels=1 ! audioconvert ! "
                    f"opusenc bitrate={BITRATE} bitrate-type=cbr frame-size=20 ! {mux} ! "
                    f"shout2send ip=127.0.0.1 port={port} password={PASSWORD} mount={mount}")
        self.mount, self.page_ms = mount, page_ms
        self.cmd = ["gst-launch-1.0", "-q"] + pipeline.split()
        self.log = open(os.path.join(ART, f"icecast-source-{port}{mount.replace('/', '-')}.log"), "w")
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=self.log, stderr=subprocess.STDOUT)
        self.chunk_t = []
        self.stopping = False
        self.error = None
        self.max_late_ms = 0.0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _chunk(self, k):
        first = k * CHUNK
        pcm = array.array("h", bytes(2 * CHUNK))
        kc = max(0, int((first - CLICK_SKIP) // PERIOD))
        while True:
            c = click_sample(kc)
            if c >= first + CHUNK:
                break
            for i in range(max(c, first), min(c + CLICK_SAMPLES, first + CHUNK)):
                pos = i - c
                pcm[i - first] = int(32767 * 0.6 * math.sin(2 * math.pi * 3000 * pos / RATE) *
                                     math.sin(math.pi * pos / CLICK_SAMPLES))
            kc += 1
        return pcm.tobytes()

    def _run(self):
        fd = self.proc.stdin.fileno()
        t0 = time.monotonic()
        k = 0
        try:
            while not self.stopping:
                data = self._chunk(k)
                due = t0 + (k + 1) * CHUNK / RATE
                d = due - time.monotonic()
                if d > 0:
                    time.sleep(d)
                else:
                    self.max_late_ms = max(self.max_late_ms, -d * 1000)
                self.chunk_t.append(time.time())
                os.write(fd, data)
                k += 1
        except OSError as e:
            if not self.stopping:
                self.error = str(e)

    def sent_time(self, sample):
        """wall time input sample `sample` was sent (clickbench's t_send + o_send), or None"""
        k = sample // CHUNK
        if sample < 0 or k >= len(self.chunk_t):
            return None
        return self.chunk_t[k] + (sample - k * CHUNK) / RATE

    def stop(self):
        self.stopping = True
        self.thread.join(2)
        try:
            self.proc.stdin.close()  # EOS
        except OSError:
            pass
        try:
            self.proc.wait(3)
        except subprocess.TimeoutExpired:
            stop_pid(self.proc, signal.SIGINT, 3)
        self.log.close()


# ---- the latency probe --------------------------------------------------------

class Opus:
    def __init__(self):
        name = ctypes.util.find_library("opus") or "libopus.so.0"
        self.lib = ctypes.CDLL(name)
        self.lib.opus_decoder_create.restype = ctypes.c_void_p
        self.lib.opus_decoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
        self.lib.opus_decode_float.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32,
                                               ctypes.POINTER(ctypes.c_float), ctypes.c_int, ctypes.c_int]
        self.lib.opus_packet_get_nb_samples.argtypes = [ctypes.c_char_p, ctypes.c_int32, ctypes.c_int32]
        self.lib.opus_decoder_destroy.argtypes = [ctypes.c_void_p]
        err = ctypes.c_int()
        self.dec = self.lib.opus_decoder_create(RATE, 1, ctypes.byref(err))
        if err.value != 0 or not self.dec:
            raise RuntimeError(f"opus_decoder_create: {err.value}")
        self.out = (ctypes.c_float * 5760)()

    def samples(self, pkt):
        return self.lib.opus_packet_get_nb_samples(pkt, len(pkt), RATE)

    def decode(self, pkt):
        n = self.lib.opus_decode_float(self.dec, pkt, len(pkt), self.out, 5760, 0)
        if n < 0:
            return None
        return array.array("f", bytes(self.out)[:4 * n])

    def close(self):
        self.lib.opus_decoder_destroy(self.dec)


class Probe:
    """One HTTP listener that parses Ogg, decodes Opus and times every click.

    Records per click: (t_recv, latency_ms, arrival_ms, behind_live_s, onset error
    in samples) and per page: (t_recv, page_delay_ms, page bytes, page ms)."""

    def __init__(self, port, source):
        self.src = source
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.sendall(f"GET {source.mount} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        self.clicks, self.pages = [], []
        self.t_connect = time.time()
        self.t_first = None       # first audio page received (wall)
        self.first_idx = None     # its first decoded sample index
        self.first_second_bytes = 0
        self.headers = None
        self.preskip = None
        self.stopping = False
        self.error = None
        self.unmatched = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        opus = Opus()
        buf = b""
        head = b""
        pending = b""      # a packet continued on the next page
        last_loud = -10 * RATE
        try:
            while self.headers is None:
                d = self.sock.recv(4096)
                if not d:
                    raise RuntimeError("probe: connection closed in the headers")
                head += d
                if b"\r\n\r\n" in head:
                    self.headers, buf = head.split(b"\r\n\r\n", 1)
                    if not self.headers.startswith((b"HTTP/1.0 200", b"HTTP/1.1 200")):
                        raise RuntimeError("probe: " + self.headers.split(b"\r\n")[0].decode(errors="replace"))
            self.sock.settimeout(5)
            t_recv = time.time()
            self.first_second_bytes += len(buf)
            while not self.stopping:
                # every complete page in buf was completed by the recv at t_recv
                while len(buf) >= 27:
                    if buf[:4] != b"OggS":
                        j = buf.find(b"OggS", 1)
                        buf = buf[j:] if j > 0 else buf[-3:]
                        continue
                    nseg = buf[26]
                    if len(buf) < 27 + nseg:
                        break
                    lace = buf[27:27 + nseg]
                    size = 27 + nseg + sum(lace)
                    if len(buf) < size:
                        break
                    page, buf = buf[:size], buf[size:]
                    granule = int.from_bytes(page[6:14], "little", signed=True)
                    pkts, body, p = [], page[27 + nseg:], 0
                    cur = pending if page[5] & 1 else b""
                    for l in lace:
                        cur += body[p:p + l]
                        p += l
                        if l < 255:
                            pkts.append(cur)
                            cur = b""
                    pending = cur
                    if pkts and pkts[0].startswith(b"OpusHead"):
                        self.preskip = int.from_bytes(pkts[0][10:12], "little")
                        continue
                    if pkts and pkts[0].startswith(b"OpusTags"):
                        continue
                    if not pkts or granule < 0 or self.preskip is None:
                        continue
                    # decoded-stream index of each packet's first sample, back from the granule
                    ns = [opus.samples(x) for x in pkts]
                    start = granule - sum(ns)
                    if self.t_first is None:
                        self.t_first, self.first_idx = t_recv, start
                    newest = self.src.sent_time(granule - self.preskip - 1)
                    if newest is not None:
                        self.pages.append((t_recv, 1000 * (t_recv - newest), size, 1000 * sum(ns) / RATE))
                    idx = start
                    for x, n in zip(pkts, ns):
                        pcm = opus.decode(x)
                        if pcm is None:
                            idx += n
                            continue
                        if max(pcm) >= THRESHOLD or -min(pcm) >= THRESHOLD:
                            for i, v in enumerate(pcm):
                                if v >= THRESHOLD or v <= -THRESHOLD:
                                    if idx + i - last_loud > QUIET:
                                        self._onset(idx + i, t_recv + (idx + i - start) / RATE, t_recv)
                                    last_loud = idx + i
                        idx += len(pcm)
                d = self.sock.recv(65536)
                if not d:
                    raise RuntimeError("probe: server closed the connection")
                t_recv = time.time()
                if t_recv - self.t_connect < 1.0:
                    self.first_second_bytes += len(d)
                buf += d
        except Exception as e:  # reported in the results, never silently
            if not self.stopping:
                self.error = str(e)
        finally:
            opus.close()

    def _onset(self, idx, t_play_page, t_recv):
        s = idx - self.preskip  # input sample of the onset
        k = round((s - CLICK_SKIP) / PERIOD)
        c = click_sample(k)
        sent = self.src.sent_time(c)
        if k < 0 or abs(s - c) > CHUNK or sent is None:
            self.unmatched += 1
            return
        behind = self.t_first + (idx - self.first_idx) / RATE - sent
        self.clicks.append((t_recv, 1000 * (t_play_page - sent), 1000 * (t_recv - sent), behind, s - c))

    def window(self, w0, w1):
        cl = [c for c in self.clicks if w0 <= c[0] < w1]
        pg = [p for p in self.pages if w0 <= p[0] < w1]

        def q(xs, nd=1):
            return {k: (round(quantile(xs, v), nd) if xs else None)
                    for k, v in (("p50", 0.5), ("p99", 0.99), ("max", 1.0))}

        return {"clicks_timed": len(cl), "clicks_expected": int((w1 - w0) * RATE / PERIOD),
                "latency_ms": q([c[1] for c in cl]), "arrival_ms": q([c[2] for c in cl]),
                "behind_live_s": q([c[3] for c in cl], 2),
                "onset_error_samples": q([abs(c[4]) for c in cl], 0),
                "page_delay_ms": q([p[1] for p in pg]),
                "pages": len(pg), "page_bytes_mean": round(sum(p[2] for p in pg) / len(pg)) if pg else None,
                "page_ms_mean": round(sum(p[3] for p in pg) / len(pg), 1) if pg else None}

    def stop(self):
        self.stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.thread.join(3)
        self.sock.close()


# ---- dragoman at the same N -----------------------------------------------------

def dragoman_fanout(clients, seconds, lang="hy"):
    """build/loadgen against build/dragoman (configs/demo.ini), all clients on one channel."""
    port = free_port()
    log = open(os.path.join(ART, f"icecast-bench-dragoman-{port}.log"), "w")
    proc = subprocess.Popen([os.path.join(B, "dragoman"), "--config", "configs/demo.ini",
                             "--set", f"server.port={port}", "--set", "listen.max-listeners=20000",
                             # every loadgen client comes from 127.0.0.1: no per-address flood cap
                             "--set", "server.max-connections-per-address=0",
                             "--set", f"server.hls-dir=build/test-artifacts/hls-{port}"],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 20
        while True:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read().startswith(b"ok"):
                    break
            except OSError:
                pass
            if time.time() > deadline or proc.poll() is not None:
                raise RuntimeError("dragoman did not become healthy (log: " + os.path.relpath(log.name, ROOT) + ")")
            time.sleep(0.2)
        time.sleep(1)
        args = [os.path.join(B, "loadgen"), "--url", f"ws://127.0.0.1:{port}/ws/listen?room=main",
                "--langs", lang, "--clients", str(clients), "--seconds", str(seconds),
                "--server-pid", str(proc.pid), "--idle-seconds", "3", "--json"]
        out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 120)
        try:
            r = json.loads(out.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            raise RuntimeError(f"loadgen failed ({out.returncode}): {out.stderr[-500:]}")
        s, h = r["server"], r["healthy"]
        return {"cpu_pct": s["cpu_pct"], "cpu_pct_idle": s["cpu_pct_idle"],
                "cpu_pct_fanout": round(s["cpu_pct"] - s["cpu_pct_idle"], 1),
                "rss_kib": s["rss_kib_end"], "rss_kib_base": s["rss_kib_base"],
                "rss_kib_per_listener": s["rss_kib_per_conn"], "delay_ms": h["delay_ms"],
                "delivered_ratio": h["delivered_ratio"], "gaps": h["gaps"], "opened": h["opened"],
                "closes": h["closes"],
                "bytes_per_message": round(h["bytes"] / h["messages"], 1) if h["messages"] else None,
                "messages_per_listener_per_s": round(h["messages"] / max(1, h["opened"]) / r["window_s"], 1),
                "loadgen_cpu_pct": r["loadgen"]["cpu_pct"], "lang": lang,
                "command": " ".join(os.path.relpath(x, ROOT) if x.startswith(B) else x for x in args)}
    finally:
        stop_pid(proc, signal.SIGTERM, 10)
        log.close()


# ---- the whole run -----------------------------------------------------------

# Two mounts on the same server, fed alike except for the Ogg page size: the
# usual one (oggmux's default 500 ms pages), and one page per 20 ms Opus packet,
# i.e. dragoman's write cadence, which shows what Icecast's cheapness is made of.
# (oggmux max-page-delay=10 ms gives one page per packet; 20 ms gives two.)
VARIANTS = (("icecast", MOUNT, None), ("icecast_20ms_pages", "/bench20.opus", 10))


def _listeners(ice, mount, n, seconds, warmup, rss_base, ramp):
    cmd = [sys.executable, os.path.abspath(__file__), "--listeners", "--port", str(ice.port), "--mount", mount,
           "--clients", str(n), "--warmup", str(warmup), "--seconds", str(seconds),
           "--server-pid", str(ice.proc.pid), "--rss-base", str(rss_base), "--ramp", str(ramp)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + warmup + 120)
    try:
        L = json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise RuntimeError(f"listeners failed ({out.returncode}): {out.stderr[-800:]}")
    if "error" in L:
        raise RuntimeError(f"listeners on {mount}: {L['error']}: {L}")
    return L


def run(clients_list, seconds, burst_size=65535, warmup=3.0, dragoman=True, small_pages=True, ramp=250.0,
        log=None):
    """Icecast (and dragoman) at each N in clients_list, in one run; a JSON-able dict.

    results[i] = {"clients": N, "icecast": {...}, "icecast_20ms_pages": {...},
                  "dragoman": {...}}.  About 25 s per N for dragoman, 16 s per N
    and variant for Icecast, plus ~25 s to start Icecast and fill its burst."""
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    os.makedirs(ART, exist_ok=True)
    clients_list = sorted(clients_list)
    variants = VARIANTS if small_pages else VARIANTS[:1]
    res = {"load_before": round(os.getloadavg()[0], 2), "seconds": seconds, "warmup_s": warmup,
           "icecast": {}, "results": [{"clients": n} for n in clients_list]}
    t_run = time.time()
    if dragoman:
        if not (os.access(os.path.join(B, "dragoman"), os.X_OK) and os.access(os.path.join(B, "loadgen"), os.X_OK)):
            raise RuntimeError("build/dragoman and build/loadgen are needed (make all)")
        for row in res["results"]:
            log(f"icecast_bench: dragoman + loadgen, {row['clients']} listeners ...")
            try:  # a broken dragoman build must not cost us the Icecast side
                row["dragoman"] = dragoman_fanout(row["clients"], seconds)
            except (RuntimeError, OSError, subprocess.TimeoutExpired, KeyError) as e:
                row["dragoman"] = {"error": str(e)}
                log(f"icecast_bench: dragoman at {row['clients']}: {e}")

    ice, srcs, probes = None, {}, {}
    try:
        ice = Icecast(max(clients_list) + 1, burst_size)
        exe = shutil.which("icecast2") or shutil.which("icecast")
        info = res["icecast"]
        info.update({"version": subprocess.run([exe, "-v"], capture_output=True, text=True).stdout.strip(),
                     "pid": ice.proc.pid, "port": ice.port, "burst_size": burst_size, "queue_size": 524288,
                     "config": ICECAST_XML.split("<limits>")[1].split("</limits>")[0].strip()
                     .format(clients=max(clients_list) + 101, burst=burst_size)})
        for name, mount, page_ms in variants:
            srcs[name] = Source(ice.port, mount, page_ms)
            info[f"source_{name}"] = " ".join(srcs[name].cmd).replace(PASSWORD, "***")
        deadline = time.time() + 15
        for name, mount, _ in variants:
            while not ice.mount_up(mount):
                if time.time() > deadline or srcs[name].proc.poll() is not None:
                    raise RuntimeError(f"source {mount} never came up on icecast: " + ice.tail())
                time.sleep(0.2)
        # fill the queue past the burst size so every listener gets the full burst,
        # not just whatever the source sent so far
        fill = burst_size * 8 / BITRATE + 2.0
        t_fill = time.time()
        log(f"icecast_bench: icecast pid {ice.proc.pid} on 127.0.0.1:{ice.port}, {len(variants)} mounts; "
            f"{fill:.0f} s to fill the burst ...")
        idle_s = min(5.0, fill - 1)
        time.sleep(max(0.0, fill - idle_s))
        a = proc_sample(ice.proc.pid)
        time.sleep(idle_s)
        b = proc_sample(ice.proc.pid)
        info["cpu_pct_idle"] = round(100 * (b[0] - a[0]) / idle_s, 1)  # sources in, nobody listening
        rss_base = info["rss_kib_base"] = b[1]
        for name, _, _ in variants:
            probes[name] = Probe(ice.port, srcs[name])
        time.sleep(2.0)
        for name, _, _ in variants:
            pr = probes[name]
            info[f"probe_{name}"] = {"first_second_bytes": pr.first_second_bytes,
                                     "first_second_audio_s": round(pr.first_second_bytes * 8 / BITRATE, 2),
                                     "source_ran_s_before_connect": round(pr.t_connect - t_fill, 1)}
        for row in res["results"]:
            n = row["clients"]
            for name, mount, page_ms in variants:
                log(f"icecast_bench: icecast {mount}, {n} listeners + probe ...")
                L = _listeners(ice, mount, n, seconds, warmup, rss_base, ramp)
                srv = L.get("server", {})
                row[name] = {
                    "mount": mount, "oggmux_max_page_delay_ms": page_ms or 500,
                    "ogg_page_ms": probes[name].window(*L["window_wall"])["page_ms_mean"],
                    "cpu_pct": srv.get("cpu_pct"), "cpu_pct_idle": info["cpu_pct_idle"],
                    "cpu_pct_fanout": round(srv["cpu_pct"] - info["cpu_pct_idle"], 1) if srv else None,
                    "rss_kib": srv.get("rss_kib_end"), "rss_kib_base": rss_base,
                    "rss_kib_per_listener": srv.get("rss_kib_per_listener"),
                    "bytes_per_recv": L["recv"]["window"]["bytes_per_recv"],
                    "bytes_per_recv_burst": L["recv"]["burst"]["bytes_per_recv"],
                    "listeners": {k: L[k] for k in ("opened", "failed", "retried", "stuck", "bad_status",
                                                    "first_bad_status", "closed_by_server",
                                                    "open_at_end", "connect_s", "client_cpu_pct",
                                                    "first_second_bytes_mean", "first_second_bytes_min")},
                    "recv": L["recv"], "probe": probes[name].window(*L["window_wall"])}
        for name, _, _ in variants:
            pr, src = probes[name], srcs[name]
            info[f"probe_{name}"]["unmatched_onsets"] = pr.unmatched
            info[f"source_{name}_max_late_ms"] = round(src.max_late_ms, 1)
            errs = [e for e in (pr.error, src.error) if e]
            if errs:
                info.setdefault("errors", []).extend(f"{name}: {e}" for e in errs)
    finally:
        for x in list(probes.values()) + list(srcs.values()) + [ice]:
            if x is not None:
                x.stop()
    res["load_after"] = round(os.getloadavg()[0], 2)
    res["run_s"] = round(time.time() - t_run, 1)
    return res


def render(res):
    lines = [f"load average {res['load_before']} before, {res['load_after']} after; {res['seconds']} s windows", "",
             "| listeners | server | CPU % (fan-out: − idle) | RSS/listener | bytes per recv (burst phase) | "
             "recvs/listener/s | click latency p50 / p99 | click arrival p50 | player behind live |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in res["results"]:
        for name, _, _ in VARIANTS:
            i = r.get(name)
            if not i:
                continue
            p = i["probe"]
            lines.append(f"| {r['clients']} | Icecast, {i['ogg_page_ms']} ms pages | {i['cpu_pct']:.1f} "
                         f"({i['cpu_pct_fanout']:.1f}) | {i['rss_kib_per_listener']:.2f} KiB | "
                         f"{i['bytes_per_recv']:.0f} ({i['bytes_per_recv_burst']:.0f}) | "
                         f"{i['recv']['window']['recvs_per_listener_per_s']:.1f} | "
                         f"{p['latency_ms']['p50']} / {p['latency_ms']['p99']} ms | {p['arrival_ms']['p50']} ms | "
                         f"{p['behind_live_s']['p50']} s |")
        d = r.get("dragoman")
        if d and "error" in d:
            lines.append(f"| {r['clients']} | dragoman (loadgen) | failed: {d['error']} | | | | | | |")
        elif d:
            lines.append(f"| {r['clients']} | dragoman (loadgen) | {d['cpu_pct']:.1f} ({d['cpu_pct_fanout']:.1f}) | "
                         f"{d['rss_kib_per_listener']:.2f} KiB | {d['bytes_per_message']} per WS message | "
                         f"{d['messages_per_listener_per_s']:.1f} msgs | loadgen delay p50 {d['delay_ms']['p50']} / "
                         f"p99 {d['delay_ms']['p99']} ms (delivered {d['delivered_ratio']:.2f}) | | |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listeners", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int)
    ap.add_argument("--mount", default=MOUNT)
    ap.add_argument("--clients", default="100,1000")
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--ramp", type=float, default=250.0, help="listener connects per second")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--server-pid", type=int, default=0)
    ap.add_argument("--rss-base", type=int, default=0)
    ap.add_argument("--burst-size", type=int, default=65535)
    ap.add_argument("--no-dragoman", action="store_true")
    ap.add_argument("--no-small-pages", action="store_true", help="only the default-page mount")
    ap.add_argument("--json", action="store_true", help="only the JSON on stdout")
    a = ap.parse_args()
    if a.listeners:
        a.clients = int(a.clients)
        sys.exit(listeners_main(a))
    res = run([int(x) for x in a.clients.split(",")], a.seconds, a.burst_size, a.warmup, not a.no_dragoman,
              not a.no_small_pages, a.ramp)
    print(json.dumps(res, indent=2))
    if not a.json:
        print(render(res), file=sys.stderr)


if __name__ == "__main__":
    main()
