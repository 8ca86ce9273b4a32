"""Shared helpers for the newer integration scripts (flood.py, viewer_token.py, nchan.py,
cors.py): a free port, a server on a temporary copy of a config with its log in
build/test-artifacts/, /healthz awaited, stopped by its own PID, and PASS/FAIL
bookkeeping. The older scripts keep their own copies of these on purpose.

It also holds the one time scale every integration script uses (the older ones and the
.sh scripts included): DRAGOMAN_TIME_SCALE, default 1. `make asan` sets it (3: a server
built with ASan + UBSan is 2-3 times slower). scaled() multiplies what is time: deadlines
(the server healthy within 20 s, the stage live within 2 s), waits for the server to act
(a switch within 500 ms) and latency limits (delivery delay p95 <= 200 ms). Never what is
correct: which tone is on which channel, no gaps, byte-exact files, counts. At 1 every
script checks exactly what it checked before the scale existed.
`python3 tests/integration/harness.py scaled SECONDS` prints SECONDS scaled (for the .sh
scripts)."""
import math, os, shlex, shutil, signal, socket, subprocess, sys, tempfile, time, urllib.error, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _time_scale():
    text = os.environ.get("DRAGOMAN_TIME_SCALE", "1")
    try:
        value = float(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 20:  # < 1 would tighten the normal checks
        sys.exit(f"DRAGOMAN_TIME_SCALE={text!r}: want a number from 1 to 20")
    return value


TIME_SCALE = _time_scale()


def scaled(seconds):
    """a deadline, wait or latency limit (seconds, ms or 100 ms windows) times DRAGOMAN_TIME_SCALE"""
    return seconds * TIME_SCALE


def scaled_int(n):
    """scaled() for a count of polls or of 100 ms windows: rounded up, unchanged at scale 1"""
    return int(math.ceil(n * TIME_SCALE - 1e-9))


class Checks:
    def __init__(self, name):
        self.name, self.failures = name, []

    def __call__(self, ok, what, detail=""):
        print(f"{'PASS' if ok else 'FAIL'}: {what}" + (f" ({detail})" if detail else ""), flush=True)
        if not ok:
            self.failures.append(what)
        return ok

    def finish(self, log_hint=""):
        if self.failures:
            print(f"{self.name}: {len(self.failures)} check(s) FAILED" + (f" (server log: {log_hint})" if log_hint else ""))
            sys.exit(1)
        print(f"{self.name}: all checks passed")


def free_port(kind=socket.SOCK_STREAM):
    """a free loopback port: TCP by default, socket.SOCK_DGRAM for SRT and RTP"""
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def udp_port():
    return free_port(socket.SOCK_DGRAM)


class Server:
    """build/dragoman on a temporary copy of `config` (edit() it before start ())"""

    def __init__(self, name, config="configs/demo.ini", sets=(), env=None):
        self.env = dict(os.environ, **(env or {}))
        self.tmp = tempfile.mkdtemp(prefix=f"dragoman-{name}-")
        self.conf = os.path.join(self.tmp, os.path.basename(config))
        shutil.copy(os.path.join(ROOT, config), self.conf)
        self.port = free_port()
        self.sets = [f"server.port={self.port}", f"server.hls-dir={self.tmp}/hls"] + list(sets)
        os.makedirs(os.path.join(ROOT, "build/test-artifacts"), exist_ok=True)
        self.logpath = os.path.join(ROOT, f"build/test-artifacts/{name}-server.log")
        self.proc = None

    def edit(self, fn):
        text = open(self.conf).read()
        open(self.conf, "w").write(fn(text))

    def start(self, timeout=20, ready="/healthz"):
        """ready: the path whose 200 means up (/healthz needs every room playing; a room
        waiting for its SRT stage is not: then wait for /api/v1/rooms); timeout is scaled()"""
        timeout = scaled(timeout)
        # DRAGOMAN_WRAP runs the server under a tool, e.g. "heaptrack -o /tmp/ht/soak" or
        # "valgrind --leak-check=full" (with DRAGOMAN_TIME_SCALE for its slowness; valgrind 3.19
        # replaces jemalloc's malloc as it does glibc's: a lost block in a -ljemalloc program is found)
        wrap = shlex.split(self.env.get("DRAGOMAN_WRAP", ""))
        args = wrap + [os.path.join(ROOT, "build/dragoman"), "--config", self.conf]
        for s in self.sets:
            args += ["--set", s]
        self.log = open(self.logpath, "w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT,
                                     env=self.env)
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited ({self.proc.returncode}): see {self.logpath}")
            try:
                if self.request(ready, timeout=1)[0] == 200:
                    return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"the server was not healthy within {timeout} s: see {self.logpath}")

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path, timeout=3):
        return urllib.request.urlopen(self.url(path), timeout=timeout).read()

    def request(self, path, method="GET", headers=None, timeout=3):
        """(status, headers as a lower-case dict, body) without raising on 4xx/5xx"""
        req = urllib.request.Request(self.url(path), method=method, headers=headers or {})
        try:
            r = urllib.request.urlopen(req, timeout=timeout)
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
        except urllib.error.HTTPError as e:
            return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()

    def metric(self, name, text=None):
        """the value of one /metrics line, e.g. 'dragoman_connections_open' or 'x{reason="y"}'"""
        text = text if text is not None else self.get("/metrics").decode()
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        return None

    def log_text(self):
        self.log.flush()
        return open(self.logpath, errors="replace").read()

    def server_pids(self):
        """the server's pid, also under DRAGOMAN_WRAP (heaptrack's script runs it as a child)"""
        if not self.env.get("DRAGOMAN_WRAP"):
            return [self.proc.pid]
        out = subprocess.run(["pgrep", "-f", "^" + os.path.join(ROOT, "build/dragoman") + " --config " + self.conf],
                             capture_output=True, text=True).stdout
        return [int(x) for x in out.split()]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            for pid in self.server_pids():  # the server first: a wrapper may not pass SIGTERM on
                os.kill(pid, signal.SIGTERM)
            try:
                self.proc.wait(scaled(10) * (6 if self.env.get("DRAGOMAN_WRAP") else 1))  # LSan checks at exit
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


if __name__ == "__main__":
    # `make asan` runs every tests/integration/*.py: without arguments this does nothing
    if sys.argv[1:2] == ["scaled"] and len(sys.argv) == 3:
        print(f"{scaled(float(sys.argv[2])):g}")
    elif sys.argv[1:2] == ["scaled_int"] and len(sys.argv) == 3:
        print(scaled_int(float(sys.argv[2])))
