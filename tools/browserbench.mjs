// browserbench — browser mouth-to-ear, for `make bench` (tools/bench.py, part "browser").
//
// One real Chromium, two pages on the same machine and clock:
//  - the booth page (/booth, room main, booth az of configs/bench.ini) with a fake
//    microphone that loops a click track (a WAV written here: a 6 ms 2 kHz burst
//    every PERIOD_MS over silence), signed in and ON AIR;
//  - the listener page (/?room=main&lang=az) playing that channel.
// A detector AudioWorklet taps the booth's microphone in the booth page's audio
// graph (after its MediaStreamSource) and the listener's worklet output (the
// jitter buffer's output, before the speakers). Each onset (|x| over THRESHOLD
// after REFRACTORY_MS of quiet) is stamped on the page's main thread with
// performance.timeOrigin + performance.now(), minus the audio still to go from
// the onset to the end of its render quantum, so both pages' stamps are on one
// clock. mouth-to-ear = ear onset − mouth onset, per click.
//
// What the figure includes: WebRTC capture-side encoding and pacing in Chromium,
// the network (loopback), the server's jitter buffer (booth jitter-ms), mix and
// Opus encode, the fan-out, WebSocket delivery, WebCodecs decode and the
// listener page's jitter buffer (its adaptive target, reported beside it).
// What it does not: the microphone's own capture latency and the listener's
// device output latency (ctx.outputLatency + baseLatency, reported), and the
// booth page's MediaStreamSource FIFO sits on the mouth side of the tap, so a
// figure measured from the sound wave would be larger by it (not known here).
//
// Usage: node tools/browserbench.mjs [--clicks N] [--config FILE] ; prints one
// JSON object on the last line of stdout. Exit 1 on failure (reason on stderr).

import fs from 'node:fs';
import path from 'node:path';
import { ARTIFACTS, ROOT, fakeMicArgs, launchBrowser, startServer, stopServer, sleep } from '../tests/browser/lib.mjs';

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : dflt;
};
const CLICKS = Number(opt('--clicks', 60));
const CONFIG = opt('--config', 'configs/bench.ini');
const ROOM = 'main';
const BOOTH = 'az';
const TOKEN = 'bench-az-booth'; // configs/bench.ini [booth main/az]
const BOOTH_JITTER_MS = 20; // configs/bench.ini [booth main/az] jitter-ms
// 487 ms: not a multiple of the 10 ms render/20 ms Opus frames, so clicks land at
// every phase of a frame; 20 periods make the 9.74 s loop seamless
const PERIOD_MS = 487;
const PERIODS_IN_FILE = 20;
const RATE = 44100; // what the fake device delivers
const BURST_MS = 6;
const BURST_HZ = 2000;
const THRESHOLD = 0.05; // -26 dBFS: the burst is at -6 dBFS, the rest digital silence
const REFRACTORY_MS = 250;
const WARMUP_MS = 2000; // on air: the voice ramps in (DRAGOMAN_RAMP_VOICE_MS) and buffers settle

function writeClickWav(file) {
  const n = Math.round((RATE * PERIOD_MS * PERIODS_IN_FILE) / 1000);
  const per = Math.round((RATE * PERIOD_MS) / 1000);
  const burst = Math.round((RATE * BURST_MS) / 1000);
  const buf = Buffer.alloc(44 + n * 4);
  buf.write('RIFF', 0); buf.writeUInt32LE(36 + n * 4, 4); buf.write('WAVE', 8);
  buf.write('fmt ', 12); buf.writeUInt32LE(16, 16); buf.writeUInt16LE(1, 20); buf.writeUInt16LE(2, 22);
  buf.writeUInt32LE(RATE, 24); buf.writeUInt32LE(RATE * 4, 28); buf.writeUInt16LE(4, 32); buf.writeUInt16LE(16, 34);
  buf.write('data', 36); buf.writeUInt32LE(n * 4, 40);
  for (let i = 0; i < n; i++) {
    const k = i % per;
    // a sine burst that starts at full level (a sharp onset to time), 0.5 peak, over a
    // -60 dBFS noise floor: a real microphone is never digitally silent, and silence
    // would let an encoder's DTX or the server's voice watchdog treat the booth as gone
    const noise = 0.001 * (((i * 1103515245 + 12345) >>> 0) / 4294967296 * 2 - 1);
    const v = noise + (k < burst ? 0.5 * Math.sin((2 * Math.PI * BURST_HZ * k) / RATE) * (k < burst - 44 ? 1 : (burst - k) / 44) : 0);
    const s = Math.round(v * 32767);
    buf.writeInt16LE(s, 44 + i * 4);
    buf.writeInt16LE(s, 46 + i * 4);
  }
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, buf);
  return file;
}

// The detector, served to the pages by the server itself, because the pages' CSP
// allows scripts and worklets from 'self' only (and Playwright's routing does not
// see a worklet's module fetch): the server runs with a web root made of links to
// web/'s entries plus this file.
const TAP_JS = `
class ClickTap extends AudioWorkletProcessor {
  constructor(o) {
    super();
    this.threshold = o.processorOptions.threshold;
    this.refractory = Math.round(o.processorOptions.refractoryMs * sampleRate / 1000);
    this.quiet = this.refractory;
  }
  process(inputs, outputs) {
    const x = inputs[0] && inputs[0][0];
    if (x) {
      for (let i = 0; i < x.length; i++) {
        if (Math.abs(x[i]) > this.threshold) {
          if (this.quiet >= this.refractory)
            this.port.postMessage({ onset: currentFrame + i, end: currentFrame + x.length, rate: sampleRate });
          this.quiet = 0;
        } else {
          this.quiet++;
        }
      }
    }
    return true;
  }
}
registerProcessor('click-tap', ClickTap);
`;

// In the page: attach a tap to the node `nodeExpr` names; onsets go to window.__onsets
// as absolute ms (timeOrigin + now − what is left of the quantum after the onset).
const attachTap = ({ nodeExpr, threshold, refractoryMs }) => (async () => {
  const node = eval(nodeExpr); // eslint-disable-line no-eval -- bench-only, expression from this file
  const ctx = node.context;
  await ctx.audioWorklet.addModule('/bench-click-tap.js');
  const tap = new AudioWorkletNode(ctx, 'click-tap', { processorOptions: { threshold, refractoryMs } });
  const mute = new GainNode(ctx, { gain: 0 }); // pulled by the destination, heard by nobody
  node.connect(tap);
  tap.connect(mute);
  mute.connect(ctx.destination);
  window.__onsets = [];
  window.__tap = tap;
  tap.port.onmessage = (e) => {
    const now = performance.timeOrigin + performance.now();
    window.__onsets.push(now - ((e.data.end - e.data.onset) / e.data.rate) * 1000);
  };
  return { rate: ctx.sampleRate, outputLatencyMs: ((ctx.outputLatency || 0) + (ctx.baseLatency || 0)) * 1000 };
})();

function pct(sorted, q) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : null;
}

async function main() {
  const wav = writeClickWav(path.join(ARTIFACTS, 'browserbench-clicks.wav'));
  const webRoot = path.join(ARTIFACTS, 'browserbench-web');
  fs.rmSync(webRoot, { recursive: true, force: true });
  fs.mkdirSync(webRoot, { recursive: true });
  for (const e of fs.readdirSync(path.join(ROOT, 'web'))) fs.symlinkSync(path.join(ROOT, 'web', e), path.join(webRoot, e));
  fs.writeFileSync(path.join(webRoot, 'bench-click-tap.js'), TAP_JS);
  const server = await startServer({ config: CONFIG, name: 'browserbench', set: { 'server.web-root': webRoot } });
  const browser = await launchBrowser(fakeMicArgs(wav));
  const log = [];
  try {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const booth = await ctx.newPage();
    const ear = await ctx.newPage();
    for (const [who, p] of [['booth', booth], ['ear', ear]]) {
      p.on('console', (m) => log.push(`[${who}.${m.type()}] ${m.text()}`));
      p.on('pageerror', (e) => log.push(`[${who}.pageerror] ${e.message}`));
    }

    // the booth: sign in, wait for the audio connection, go on air
    await booth.goto(`${server.url}/booth?room=${ROOM}&booth=${BOOTH}`);
    await booth.waitForFunction(() => document.querySelector('#booth').options.length > 0, null, { timeout: 10000 });
    await booth.fill('#name', 'Bench');
    await booth.fill('#token', TOKEN);
    await booth.click('#signin-button');
    await booth.waitForFunction(() => {
      const d = window.dragomanBooth;
      return d.stats.phase === 'joined' && d.pc && d.pc.connectionState === 'connected' && d.micNode;
    }, null, { timeout: 20000, polling: 50 });

    // the listener, on the same channel
    await ear.goto(`${server.url}/?room=${ROOM}&lang=${BOOTH}`);
    await ear.waitForFunction(() => !document.querySelector('#play').disabled, null, { timeout: 10000 });
    await ear.click('#play');
    await ear.waitForFunction(() => window.dragoman.stats.state === 'playing' && window.dragoman.stats.decoded > 25,
      null, { timeout: 10000, polling: 50 });

    const boothTap = await booth.evaluate(attachTap, { nodeExpr: 'window.dragomanBooth.micNode', threshold: THRESHOLD, refractoryMs: REFRACTORY_MS });
    const earTap = await ear.evaluate(attachTap, { nodeExpr: 'window.dragoman.node', threshold: THRESHOLD, refractoryMs: REFRACTORY_MS });

    await booth.click('#onair');
    await booth.waitForFunction(() => window.dragomanBooth.state && window.dragomanBooth.state.on_air === true,
      null, { timeout: 5000, polling: 50 });
    const onAir = Date.now();
    await sleep(WARMUP_MS + CLICKS * PERIOD_MS + 1000);

    const mouths = (await booth.evaluate(() => window.__onsets)).filter((t) => t > onAir + WARMUP_MS);
    const ears = await ear.evaluate(() => window.__onsets);
    const earStats = await ear.evaluate(() => ({ ...window.dragoman.stats }));
    const lat = [];
    for (const m of mouths) {
      const hit = ears.find((a) => a >= m && a < m + PERIOD_MS - 37); // unambiguous: before the next click
      if (hit !== undefined) lat.push(hit - m);
    }
    lat.sort((a, b) => a - b);
    const r1 = (v) => (v == null ? null : Math.round(v * 10) / 10);
    const out = {
      clicks_sent: mouths.length,
      clicks_timed: lat.length,
      ear_onsets: ears.length,
      latency_ms: { p50: r1(pct(lat, 0.5)), p95: r1(pct(lat, 0.95)), p99: r1(pct(lat, 0.99)), max: r1(lat[lat.length - 1]) },
      booth_jitter_buffer_ms: BOOTH_JITTER_MS,
      listener_jitter_target_ms: r1(earStats.targetMs),
      listener_buffer_ms: r1(earStats.bufferMs),
      listener_underruns: earStats.underruns,
      listener_dropped_ms: r1(earStats.droppedMs),
      listener_output_latency_ms: r1(earTap.outputLatencyMs),
      booth_output_latency_ms: r1(boothTap.outputLatencyMs),
      sample_rates: { booth: boothTap.rate, listener: earTap.rate },
      period_ms: PERIOD_MS,
    };
    if (lat.length < Math.min(CLICKS, mouths.length) * 0.8) {
      process.stderr.write(`browserbench: only ${lat.length} of ${mouths.length} clicks heard (${ears.length} ear onsets)\n${log.slice(-20).join('\n')}\n`);
      console.log(JSON.stringify(out));
      process.exitCode = 1;
      return;
    }
    console.log(JSON.stringify(out));
  } finally {
    await browser.close().catch(() => {});
    await stopServer(server);
  }
}

main().catch((e) => {
  process.stderr.write(`browserbench: ${e.stack || e}\n`);
  process.exit(1);
});
