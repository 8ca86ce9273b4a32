#!/usr/bin/env bash
# Integration test of browser booths (/ws/booth + WebRTC) over loopback.
#
# Starts build/dragoman with configs/demo.ini (room "workshop": browser booths
# hy and ru, max-interpreters 2, tokens demo-hy-booth / demo-ru-booth) on a
# random free port, then plays one scripted session with real WebRTC peers
# (build/boothpeer: webrtcbin, Opus, trickle ICE on 127.0.0.1) and a real
# listener (build/wsprobe on /ws/listen?room=workshop&lang=hy):
#
#   t (s, after each peer's ICE connection: --actions-from-ice, so a loaded
#   machine that takes seconds to set up DTLS does not shift the script)
#   A  hy "Anna"  9000 Hz (hy ident)   2 on air, 4 listen ru, 7 listen floor,
#                                       8 off air, 10 on air, 13 drop (dies)
#   B  ru "Boris" 10000 Hz (ru ident)  1 on air ... 20 quit
#   C  hy "Carla" 10500 Hz, joins ~3 s after A (second in the booth, not live),
#                                       quits 20 s after its ICE connection
#   D  hy "Dora"  joins ~4 s after A: the booth is full -> booth-full, 4409
#
# and checks:
#   - A, B, C sign in, ICE connects, A sends Opus; C sees two interpreters;
#   - the hy listener hears A's 9000 Hz while the channel state says
#     "interpretation", the floor (8000 Hz ident) while it says "floor", and
#     never C's 10500 Hz (C is not live) nor B's 10000 Hz, not even in the
#     window where A dies and input-selector falls over to C's pad by itself
#     (it did, for ~100 ms, until booth.c gated every pad but the armed one);
#   - A's return feed is the floor (8000 Hz), and the ru channel (B's 10000 Hz)
#     while A listens to ru (relay); never A's own voice;
#   - A drops without a close (process exit): the hy channel is back to the
#     floor, state message and audio, within 500 ms (one 100 ms window of
#     measuring slack);
#   - negative cases: unknown booth -> 4404, first message not a join -> 4400,
#     wrong token -> bad-token + 4401 (last: failures are rate-limited per
#     address), and a right token still signs in afterwards.
# Deadlines and latency limits are multiplied by DRAGOMAN_TIME_SCALE (default 1;
# `make asan` sets 3): see scaled() in tests/integration/harness.py.
# Run from the repo root after `make` and building build/boothpeer.
# Artifacts: server log build/test-artifacts/booth-server.log; peer JSON in
# build/test-artifacts/booth-PORT/ (kept only when a check fails).
set -euo pipefail

cd "$(dirname "$0")/../.."
ART=build/test-artifacts
LOG=$ART/booth-server.log
mkdir -p "$ART"
# time limits times DRAGOMAN_TIME_SCALE (harness.py); the python checks import the same
scaled() { python3 tests/integration/harness.py scaled "$1"; }
scaled_int() { python3 tests/integration/harness.py scaled_int "$1"; }
HEALTH_POLLS=$(scaled_int 100) # of 0.2 s: 20 s
ICE_TIMEOUT=$(scaled_int 10)   # boothpeer's default: ICE connected within 10 s of joining
for bin in build/dragoman build/wsprobe build/boothpeer; do
  [[ -x $bin ]] || { echo "FAIL: $bin missing, run make first"; exit 1; }
done

failures=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

PORT=
for _ in $(seq 20); do
  p=$((18600 + RANDOM % 500))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then PORT=$p; break; fi
done
[[ -n $PORT ]] || { echo "FAIL: no free port in 18600-19099"; exit 1; }
BASE=http://127.0.0.1:$PORT
WS=ws://127.0.0.1:$PORT
RUN=$ART/booth-$PORT
mkdir -p "$RUN"

SERVER_PID=
PEER_PIDS=()
cleanup() {
  local rc=$?
  for pid in "${PEER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq "$(scaled_int 50)"); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null || true
  fi
  if ((rc != 0 || failures != 0)); then
    echo "---- last 40 lines of $LOG (peer results kept in $RUN)"
    tail -n 40 "$LOG" 2>/dev/null || true
  else
    rm -rf "$RUN"
  fi
}
trap cleanup EXIT

build/dragoman --config configs/demo.ini --set "server.port=$PORT" --set "server.hls-dir=build/test-artifacts/hls-$PORT" >"$LOG" 2>&1 &
SERVER_PID=$!
healthy=
for _ in $(seq "$HEALTH_POLLS"); do # 20 s
  kill -0 "$SERVER_PID" 2>/dev/null || break
  if [[ $(curl -fsS "$BASE/healthz" 2>/dev/null) == ok* ]]; then healthy=1; break; fi
  sleep 0.2
done
if [[ -z $healthy ]]; then
  fail "server on :$PORT not healthy within $(scaled 20) s"
  exit 1
fi
pass "server up on :$PORT, /healthz ok"

booth() { echo "$WS/ws/booth?room=$1&booth=$2"; }
now_us() { echo $(($(date +%s%N) / 1000)); }

# ---- the scripted session -------------------------------------------------
PROBE_START_US=$(now_us)
# 24 s: A's script ends 13 s after its ICE connection (~2 s, scaled), C quits 20 s after its own
build/wsprobe --url "$WS/ws/listen?room=workshop&lang=hy" --seconds $((22 + $(scaled_int 2))) --json \
  >"$RUN/probe-hy.json" 2>"$RUN/probe-hy.err" &
PROBE_PID=$!
PEER_PIDS+=("$PROBE_PID")
sleep 0.3
build/boothpeer --url "$(booth workshop hy)" --token demo-hy-booth --name Anna --freq 9000 --json --actions-from-ice \
  --ice-timeout "$ICE_TIMEOUT" --actions "2:on-air=true,4:listen=ru,7:listen=floor,8:on-air=false,10:on-air=true,13:drop" \
  >"$RUN/peer-a.json" 2>"$RUN/peer-a.log" &
A_PID=$!
PEER_PIDS+=("$A_PID")
build/boothpeer --url "$(booth workshop ru)" --token demo-ru-booth --name Boris --freq 10000 --json \
  --ice-timeout "$ICE_TIMEOUT" --actions-from-ice --actions "1:on-air=true,20:quit" >"$RUN/peer-b.json" 2>"$RUN/peer-b.log" &
B_PID=$!
PEER_PIDS+=("$B_PID")
sleep 3
build/boothpeer --url "$(booth workshop hy)" --token demo-hy-booth --name Carla --freq 10500 --json \
  --ice-timeout "$ICE_TIMEOUT" --actions-from-ice --actions "20:quit" >"$RUN/peer-c.json" 2>"$RUN/peer-c.log" &
C_PID=$!
PEER_PIDS+=("$C_PID")
sleep 1
rc=0
build/boothpeer --url "$(booth workshop hy)" --token demo-hy-booth --name Dora --json --expect-error booth-full \
  >"$RUN/peer-d.json" 2>"$RUN/peer-d.log" || rc=$?
if python3 - "$RUN/peer-d.json" "$rc" <<'EOF'; then
import json, sys
r, rc = json.load(open(sys.argv[1])), int(sys.argv[2])
print(f"      Dora: close {r['close_code']} {r['close_reason']!r}, errors {r['errors']}")
if rc != 0 or not r["ok"] or r["close_code"] != 4409 or r["joined"]:
    sys.exit(f"      why: exit {rc}, want error booth-full and close 4409")
EOF
  pass "third interpreter in a 2-max booth: error booth-full, close 4409"
else
  fail "booth-full (see $RUN/peer-d.json)"
fi

for who in A B C PROBE; do
  pid_var=${who}_PID
  rc=0
  wait "${!pid_var}" || rc=$?
  echo "$rc" >"$RUN/rc-$who"
done
PEER_PIDS=()

# ---- peers ------------------------------------------------------------------
if python3 - "$RUN" <<'EOF'; then
import json, sys
run = sys.argv[1]
problems = []
for who, name in (("a", "Anna"), ("b", "Boris"), ("c", "Carla")):
    rc = int(open(f"{run}/rc-{who.upper()}").read())
    try:
        r = json.load(open(f"{run}/peer-{who}.json"))
    except ValueError:
        problems.append(f"{name}: no JSON (exit {rc})")
        continue
    st = r["webrtc_stats"]
    print(f"      {name}: exit {rc}, joined {r['joined']} as {r['id']}, ICE {r['ice_state']} at {r['ice_connected_at_s']} s"
          f" ({r['ice_connected_at_s'] - r['joined_at_s']:.2f} s after joined), sent {r['packets_sent']} pkts,"
          f" stats {st}, return windows {r['return']['windows']}, errors {r['errors']}" if r["joined"] and r["ice_connected"]
          else f"      {name}: exit {rc}, joined {r['joined']}, ICE {r['ice_state']!r}, errors {r['errors']}")
    if rc != 0 or not r["ok"]:
        problems.append(f"{name}: exit {rc}, errors {r['errors']}")
    if r["packets_sent"] < 100:
        problems.append(f"{name}: only {r['packets_sent']} RTP packets sent")
    if r["return"]["windows"] < 20:
        problems.append(f"{name}: only {r['return']['windows']} return-feed windows")
c = json.load(open(f"{run}/peer-c.json"))
states = [m["msg"] for m in c["messages"] if m["msg"].get("type") == "state"]
if not any(len(s.get("interpreters", [])) == 2 for s in states):
    problems.append("Carla never saw two interpreters in a state message")
if any(s.get("live") == c["id"] and s.get("on_air") for s in states):
    problems.append("Carla was put on air without asking")
last = states[-1] if states else {}
if len(last.get("interpreters", [])) != 1 or last.get("on_air"):
    problems.append(f"after Anna dropped, Carla's last state should list only her, off air: {last}")
if problems:
    sys.exit("      why: " + "; ".join(problems))
EOF
  pass "A (hy), B (ru), C (hy, second) signed in, ICE connected over loopback, Opus sent both ways"
else
  fail "peers (see $RUN/peer-*.json, peer-*.log)"
fi

# ---- A's return feed: floor, relay from ru, floor ---------------------------
if python3 - "$RUN/peer-a.json" <<'EOF'; then
import json, sys
r = json.load(open(sys.argv[1]))
ret, sent = r["return"], r["sent"]
tl, ends = ret["timeline"], ret["window_end_s"]
at = {}
for m in sent:
    k = (m["msg"]["type"], str(m["msg"].get("source", m["msg"].get("value"))))
    at.setdefault(k, m["t"])
t_ru, t_floor, t_drop = at[("listen", "ru")], at[("listen", "floor")], r["dropped_at_s"]
def seg(t0, t1):
    return "".join(c for c, e in zip(tl, ends) if t0 <= e - 0.1 and e <= t1)
segs = [("floor", seg(ret["first_audio_at_s"] + 0.5, t_ru), "o"),
        ("relay ru", seg(t_ru + 0.7, t_floor), "r"),
        ("floor again", seg(t_floor + 0.7, t_drop), "o")]
problems = []
for name, s, want in segs:
    print(f"      return feed {name}: {s.count(want)}/{len(s)} windows '{want}': {s}")
    if len(s) < 10 or s.count(want) < 0.8 * len(s):
        problems.append(f"{name}: want >= 80% '{want}'")
if "h" in tl:
    problems.append(f"A's own voice (9000 Hz) came back in {tl.count('h')} windows")
if problems:
    sys.exit("      why: " + "; ".join(problems))
EOF
  pass "A's return feed: the floor (8000 Hz), relay from ru (10000 Hz) while listening to ru, never its own voice"
else
  fail "A's return feed (see $RUN/peer-a.json)"
fi

# ---- the hy listener: A on air / off air / dropped -----------------------
if python3 - "$RUN/probe-hy.json" "$RUN/peer-a.json" "$PROBE_START_US" "$(cat "$RUN/rc-PROBE")" <<'EOF'; then
import json, sys
sys.path.insert(0, "tests/integration")
from harness import scaled, scaled_int
p, a = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
rc = int(sys.argv[4])  # argv[3]: when the probe was started (the axis is its first packet now)
tl, tw, texts = p["timeline"], p["text_windows"], p["texts"]
t = p["tones"]
print(f"      hy listener: exit {rc}, {p['packets']} pkts, gaps {p['gaps']}, tones "
      + " ".join(f"{k}={v}" for k, v in t.items()))
print(f"      hy listener: {tl}")
problems = list(p["errors"])
states = [(w, json.loads(x)) for w, x in zip(tw, texts)]
states = [(w, m["state"]) for w, m in states if m.get("type") == "state"]
print("      hy listener: states " + ", ".join(f"{s}@{w / 10:.1f}s" for w, s in states))
for i, (w, st) in enumerate(states):
    end = states[i + 1][0] if i + 1 < len(states) else len(tl)
    s = tl[w + scaled_int(3):end]
    # The test stage speaks over its ident: a floor window may have no
    # dominant ident ('.'), but never another one.
    heard = s.count("h") if st == "interpretation" else s.count("o") + s.count(".")
    if len(s) >= 3 and heard < 0.8 * len(s):
        problems.append(f"state {st!r} at {w / 10:.1f} s but heard {s!r}")
if sum(1 for _, s in states if s == "interpretation") < 2:
    problems.append("want two 'interpretation' periods (A on air twice)")
if t["hy"] < 50:
    problems.append(f"A's 9000 Hz heard in only {t['hy']} windows")
for k, who in (("tr", "Carla (not live)"), ("ru", "Boris (other booth)")):
    if t[k]:
        problems.append(f"{who}'s tone leaked into hy: {t[k]} windows")
# The drop, on the probe's wall clock: wsprobe notes when each 100 ms window and
# each text arrived (ms after its first packet, first_packet_wall_us). Counting
# windows as 100 ms of wall time put the drop 0.7 s late under the sanitized build,
# where the timeline is audio and the server's skips and lags move it off the clock.
rx, text_rx = p["window_rx_ms"], p["text_rx_ms"]
if a.get("dropped_at_s") is None or not rx:
    sys.exit(f"      why: cannot time the drop (peer A dropped_at_s={a.get('dropped_at_s')}, {len(rx)} windows)")
d_ms = (a["wall_start_us"] + a["dropped_at_s"] * 1e6 - p["first_packet_wall_us"]) / 1000
state_rx = [(text_rx[i], json.loads(x)) for i, x in enumerate(texts) if i < len(text_rx)]
after = [(ms, m["state"]) for ms, m in state_rx if m.get("type") == "state" and ms >= d_ms - scaled(100)]
state_ms = after[0][0] - d_ms if after and after[0][1] == "floor" else None
k0 = next((k for k, ms in enumerate(rx) if ms >= d_ms), len(rx))
audio_k = next((k for k in range(k0, len(tl) - 5) if "h" not in tl[k:k + 5] and "o" in tl[k:k + 5]), None)
# a window is heard from the previous one's arrival
audio_ms = rx[max(audio_k - 1, 0)] - d_ms if audio_k is not None else None
print(f"      drop at {d_ms / 1000:.2f} s on the listener's clock: heard {tl[max(0, k0 - 5):k0]}|{tl[k0:k0 + 10]};"
      f" state floor after {state_ms if state_ms is None else round(state_ms)} ms,"
      f" floor audio from {audio_ms if audio_ms is None else round(audio_ms)} ms")
# 500 ms and one 100 ms window of measuring slack
if state_ms is None or state_ms > scaled(600):
    problems.append(f"no state 'floor' within {scaled(500):g} ms of the drop (got {after[:1]})")
if tl[max(0, k0 - 10):k0].count("h") < 5:
    problems.append(f"A's 9000 Hz not heard just before the drop ({tl[max(0, k0 - 10):k0]!r}): cannot time the fallback")
elif audio_ms is None or audio_ms > scaled(600):
    problems.append(f"audio not back to the floor within {scaled(500):g} ms of the drop")
if rc != 0 and not problems:
    problems.append(f"wsprobe exit {rc}")
if problems:
    sys.exit("      why: " + "; ".join(problems[:6]))
EOF
  pass "hy listener: A's 9000 Hz on air, floor off air, back to floor within 500 ms of A's drop"
else
  fail "hy listener (see $RUN/probe-hy.json)"
fi

# ---- negative cases (wrong token last: failures are rate-limited) ----------
negative() { # name code url [boothpeer options]
  local name=$1 code=$2 url=$3 out=$RUN/neg-$1.json rc=0
  shift 3
  build/boothpeer --url "$url" --json --no-media "$@" >"$out" 2>"$RUN/neg-$name.log" || rc=$?
  if python3 - "$out" "$rc" <<'EOF'; then
import json, sys
r, rc = json.load(open(sys.argv[1])), int(sys.argv[2])
errs = [m["msg"] for m in r["messages"] if m["msg"].get("type") == "error"]
print(f"      close {r['close_code']} {r['close_reason']!r}, error messages {errs}")
if rc != 0 or not r["ok"]:
    sys.exit(f"      why: exit {rc}, errors {r['errors']}")
if not errs or "message" not in errs[0]:
    sys.exit("      why: no {\"type\":\"error\",\"code\":...,\"message\":...} before the close")
EOF
    pass "$name → error and close $code"
  else
    fail "$name (see $out)"
  fi
}
negative unknown-booth-room 4404 "$(booth workshop az)" --token demo-hy-booth --expect-error unknown-booth
negative test-booth-is-not-browser 4404 "$(booth main hy)" --token demo-hy-booth --expect-error unknown-booth
negative first-message-not-join 4400 "$(booth workshop hy)" --first-message '{"type":"on-air","value":true}' \
  --expect-error bad-message
negative empty-name 4400 "$(booth workshop hy)" --token demo-hy-booth --name "" --expect-error bad-message
negative wrong-token 4401 "$(booth workshop hy)" --token not-the-token --expect-error bad-token

rc=0
build/boothpeer --url "$(booth workshop hy)" --token demo-hy-booth --name Anna --json --actions-from-ice \
  --ice-timeout "$ICE_TIMEOUT" --actions "0.5:quit" >"$RUN/after.json" 2>"$RUN/after.log" || rc=$?
if ((rc == 0)); then
  pass "the right token still signs in (and ICE connects) after a wrong one"
else
  fail "sign-in after the negative cases (exit $rc, see $RUN/after.json)"
fi
health=$(curl -sS "$BASE/healthz" 2>&1 || true)
if [[ $health == ok* ]]; then
  pass "/healthz ok after the whole session"
else
  fail "/healthz after the session says: $health"
fi

if ((failures)); then
  echo "booth.sh: $failures check(s) FAILED"
  exit 1
fi
echo "booth.sh: all checks passed"
