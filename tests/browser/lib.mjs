// Shared helpers for dragoman's browser tests (listener, booth, control).
//
// - startServer(): runs build/dragoman on a free 127.0.0.1 port and waits for
//   /healthz. Set DRAGOMAN_TEST_URL=http://127.0.0.1:PORT to test a server
//   that is already running instead (then nothing is started or stopped).
// - launchBrowser(): Debian's chromium through playwright-core (from
//   web/node_modules), headless "new" mode started by hand because
//   Playwright's headless:true adds --mute-audio, which silences the
//   AudioWorklet output we measure.
// - sampleTones(): which of a set of ident tones dominates a node's output.
// - run(): a tiny sequential test runner; ends with "N passed, N failed".
// - writeToneWav() + fakeMicArgs(): a fake microphone for booth tests.
// - startListenProbe(): a /ws/listen client in a page that measures ident
//   tones per 10 ms of decoded audio, stamped with the server's ingress time.

import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const ARTIFACTS = path.join(ROOT, 'build/test-artifacts');
const require = createRequire(path.join(ROOT, 'web/package.json'));

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function loadPlaywright() {
  try {
    return require('playwright-core');
  } catch {
    throw new Error('playwright-core missing: run `cd web && npm ci`');
  }
}

export const CHROMIUM_ARGS = [
  '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--autoplay-policy=no-user-gesture-required', '--use-fake-ui-for-media-stream',
];

// A WAV for Chromium's fake microphone: a sine (or several, summed) at
// 44.1 kHz stereo S16, which is what the fake device delivers anyway. Whole
// seconds of whole cycles of integer-Hz tones, so the loop has no seam.
export function writeToneWav(file, { freqs = [9000], amplitude = 0.3, seconds = 10, rate = 44100 } = {}) {
  const n = rate * seconds;
  const buf = Buffer.alloc(44 + n * 4);
  buf.write('RIFF', 0); buf.writeUInt32LE(36 + n * 4, 4); buf.write('WAVE', 8);
  buf.write('fmt ', 12); buf.writeUInt32LE(16, 16); buf.writeUInt16LE(1, 20); buf.writeUInt16LE(2, 22);
  buf.writeUInt32LE(rate, 24); buf.writeUInt32LE(rate * 4, 28); buf.writeUInt16LE(4, 32); buf.writeUInt16LE(16, 34);
  buf.write('data', 36); buf.writeUInt32LE(n * 4, 40);
  const a = (amplitude / freqs.length) * 32767;
  for (let i = 0; i < n; i++) {
    let v = 0;
    for (const f of freqs) v += Math.sin((2 * Math.PI * f * i) / rate);
    const s = Math.round(v * a);
    buf.writeInt16LE(s, 44 + i * 4);
    buf.writeInt16LE(s, 46 + i * 4);
  }
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, buf);
  return file;
}

// Chromium flags for a fake microphone that loops `wavFile` (DESIGN.md facts).
export const fakeMicArgs = (wavFile) => [
  '--use-fake-device-for-media-stream', `--use-file-for-fake-audio-capture=${wavFile}`,
  '--allow-loopback-in-peer-connection',
];

export async function launchBrowser(extraArgs = []) {
  const { chromium } = loadPlaywright();
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: false, // see the top of this file
    args: [...CHROMIUM_ARGS, ...extraArgs],
  });
}

// A page that records its console and errors, so a failing test can show them.
// opts go to browser.newPage(), e.g. { viewport: { width: 390, height: 844 } }.
export async function newPage(browser, log, opts = {}) {
  const page = await browser.newPage(opts);
  page.on('console', (m) => log.push(`[console.${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => log.push(`[pageerror] ${e.message}`));
  return page;
}

async function portIsFree(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

export async function freePort(base = 18000, span = 2000) {
  for (let i = 0; i < 50; i++) {
    const port = base + Math.floor(Math.random() * span);
    if (await portIsFree(port)) return port;
  }
  throw new Error('no free port found');
}

async function healthy(url) {
  try {
    const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
    return res.status === 200;
  } catch {
    return false;
  }
}

const running = new Set(); // servers to kill if the test process dies

// Starts build/dragoman; resolves once /healthz answers 200 (or throws with
// the tail of the server log). `set` entries become --set key=value.
export async function startServer({ config = 'configs/demo.ini', port, set = {}, timeoutMs = 20000, name = 'dragoman' } = {}) {
  if (process.env.DRAGOMAN_TEST_URL) return { url: process.env.DRAGOMAN_TEST_URL, external: true, stop: async () => {} };
  port = port || (await freePort());
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const logFile = path.join(ARTIFACTS, `${name}-${port}.log`);
  const out = fs.openSync(logFile, 'a');
  const args = ['--config', config, '--set', `server.port=${port}`, '--set', `server.hls-dir=build/test-artifacts/hls-${port}`];
  for (const [k, v] of Object.entries(set)) args.push('--set', `${k}=${v}`);
  const proc = spawn(path.join(ROOT, 'build/dragoman'), args, { cwd: ROOT, stdio: ['ignore', out, out] });
  fs.closeSync(out);
  const server = { url: `http://127.0.0.1:${port}`, port, proc, logFile, exited: null };
  proc.on('exit', (code, sig) => { server.exited = { code, sig }; running.delete(server); });
  running.add(server);
  server.stop = () => stopServer(server);
  server.logTail = (n = 30) => fs.readFileSync(logFile, 'utf8').split('\n').slice(-n).join('\n');

  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (server.exited) throw new Error(`dragoman exited (${JSON.stringify(server.exited)}) before /healthz:\n${server.logTail()}`);
    if (await healthy(server.url)) return server;
    await sleep(200);
  }
  await stopServer(server);
  throw new Error(`dragoman: /healthz not 200 within ${timeoutMs} ms:\n${server.logTail()}`);
}

// SIGTERM, then SIGKILL after 5 s: a hung shutdown must not hang the test.
export async function stopServer(server) {
  if (!server.proc || server.exited) return server.exited;
  server.proc.kill('SIGTERM');
  const deadline = Date.now() + 5000;
  while (!server.exited && Date.now() < deadline) await sleep(50);
  if (!server.exited) {
    server.proc.kill('SIGKILL');
    while (!server.exited) await sleep(50);
    server.killed = true;
  }
  return server.exited;
}

function killAll() {
  for (const s of running) try { s.proc.kill('SIGKILL'); } catch { /* already gone */ }
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { killAll(); process.exit(130); });

// Attach an AnalyserNode to the AudioNode at `nodeExpr` (evaluated in the
// page) and sample it every intervalMs for durationMs. Each sample says which
// of `freqs` (evenly spaced) has the most energy and by how many dB it stands
// above the bins halfway to its neighbours; below minMarginDb, dominant is
// null (a tone must stand out of speech and noise, not just win). Returns [{t, dominant (Hz or null), toneDb, marginDb, rmsDb}].
export async function sampleTones(page, { nodeExpr = 'window.dragoman.node', freqs, durationMs, intervalMs = 200, minMarginDb = 10 }) {
  return page.evaluate(async ({ nodeExpr, freqs, durationMs, intervalMs, minMarginDb }) => {
    const node = eval(nodeExpr); // eslint-disable-line no-eval -- test-only, expression from the test
    const ctx = node.context;
    if (!window.__toneAnalyser || window.__toneAnalyser.context !== ctx) {
      const a = new AnalyserNode(ctx, { fftSize: 8192, smoothingTimeConstant: 0 });
      node.connect(a);
      window.__toneAnalyser = a;
    }
    const a = window.__toneAnalyser;
    const spec = new Float32Array(a.frequencyBinCount);
    const wave = new Float32Array(a.fftSize);
    const binHz = ctx.sampleRate / a.fftSize;
    const sorted = [...freqs].sort((x, y) => x - y);
    const step = sorted.length > 1 ? sorted[1] - sorted[0] : 500;
    const peakDb = (f, w) => {
      let m = -Infinity;
      const c = Math.round(f / binHz);
      for (let b = c - w; b <= c + w; b++) if (spec[b] > m) m = spec[b];
      return m;
    };
    const out = [];
    const t0 = performance.now();
    while (performance.now() - t0 < durationMs) {
      a.getFloatFrequencyData(spec);
      a.getFloatTimeDomainData(wave);
      let sq = 0;
      for (const v of wave) sq += v * v;
      const rmsDb = 10 * Math.log10(sq / wave.length || 1e-20);
      let best = null;
      let toneDb = -Infinity;
      for (const f of freqs) {
        const d = peakDb(f, 2);
        if (d > toneDb) { toneDb = d; best = f; }
      }
      // Reference: the louder of the two half-way points around the winner.
      // Local, so speech whose spectrum slopes across 8-11 kHz cannot fake a tone.
      const ref = Math.max(peakDb(best - step / 2, 3), peakDb(best + step / 2, 3), -200);
      const marginDb = toneDb - ref;
      out.push({ t: Math.round(performance.now() - t0), dominant: marginDb > minMarginDb ? best : null, toneDb, marginDb, rmsDb });
      await new Promise((r) => setTimeout(r, intervalMs));
    }
    return out;
  }, { nodeExpr, freqs, durationMs, intervalMs, minMarginDb });
}

// Counts per dominant frequency ("none" when no tone stood out).
export function tally(samples) {
  const t = {};
  for (const s of samples) t[s.dominant ?? 'none'] = (t[s.dominant ?? 'none'] || 0) + 1;
  return t;
}

export const median = (xs) => {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return v.length ? v[Math.floor(v.length / 2)] : NaN;
};

export function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

// Runs tests in order; prints one line per test and a closing
// "N passed, N failed" line; returns the exit code.
export async function run(suite, tests) {
  let passed = 0;
  let failed = 0;
  for (const [name, fn] of tests) {
    const t0 = Date.now();
    try {
      const note = await fn();
      passed++;
      console.log(`ok   ${name} (${Date.now() - t0} ms)${note ? ` — ${note}` : ''}`);
    } catch (e) {
      failed++;
      console.log(`FAIL ${name} (${Date.now() - t0} ms): ${e.stack || e}`);
    }
  }
  console.log(`${suite}: ${passed} passed, ${failed} failed`);
  return failed ? 1 : 0;
}

// A /ws/listen client inside `page` (any page of the server's origin): each
// Opus packet is decoded with WebCodecs and each 10 ms of it measured at
// `freqs` (Hann-windowed DFT, dBFS of a sine), plus the power of the
// 100 Hz - 3.5 kHz band ("speech" band, where the floor's speech lives). Every window
// carries the server's ingress time of its packet (the packet's newest input,
// minus 10 ms for the first half) and the arrival time, both Date.now() ms.
// Returns a handle: read() gives {windows, texts}; stop() closes the socket.
export async function startListenProbe(page, { url, freqs }) {
  const key = `probe${Math.random().toString(36).slice(2)}`;
  await page.evaluate(({ url, freqs, key }) => new Promise((resolve, reject) => {
    const p = { windows: [], texts: [], packets: 0, errors: [] };
    window[key] = p;
    // Hann-windowed cos/sin tables per (length, rate, frequency), built once:
    // the probe must stay light or its own lag shows up in the timings.
    const BAND = [];
    for (let f = 100; f <= 3500; f += 100) BAND.push(f);
    const cache = new Map();
    const tables = (n, rate) => {
      const k = `${n}/${rate}`;
      if (!cache.has(k)) {
        const m = new Map();
        for (const f of [...freqs, ...BAND]) {
          const c = new Float32Array(n);
          const s = new Float32Array(n);
          for (let i = 0; i < n; i++) {
            const w = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / (n - 1));
            c[i] = w * Math.cos((2 * Math.PI * f * i) / rate);
            s[i] = -w * Math.sin((2 * Math.PI * f * i) / rate);
          }
          m.set(f, [c, s]);
        }
        cache.set(k, m);
      }
      return cache.get(k);
    };
    const dft = (x, [c, s]) => {
      let re = 0;
      let im = 0;
      for (let i = 0; i < x.length; i++) { re += x[i] * c[i]; im += x[i] * s[i]; }
      return [re, im];
    };
    const meta = [];
    const dec = new AudioDecoder({
      output: (ad) => {
        const m = meta.shift();
        const pcm = new Float32Array(ad.numberOfFrames);
        ad.copyTo(pcm, { planeIndex: 0, format: 'f32-planar' });
        const rate = ad.sampleRate;
        ad.close();
        const half = Math.floor(pcm.length / 2);
        for (let h = 0; h < 2; h++) {
          const x = pcm.subarray(h * half, (h + 1) * half);
          const n = x.length;
          const t = tables(n, rate);
          const db = {};
          for (const f of freqs) {
            const [re, im] = dft(x, t.get(f));
            const amp = (4 * Math.hypot(re, im)) / n; // Hann: coherent gain 1/2
            db[f] = amp > 0 ? 20 * Math.log10(amp) : -200; // dBFS re a full-scale sine
          }
          // Speech band: DFT power at 100 Hz steps from 100 Hz to 3.5 kHz
          // (Hann window: a 8-10 kHz ident tone leaks nothing down there).
          let sq = 0;
          for (const f of BAND) {
            const [re, im] = dft(x, t.get(f));
            sq += re * re + im * im;
          }
          sq *= 16 / (n * n) / 2; // same scale as the tones: mean-square of the band's sines
          p.windows.push({ seq: m.seq, half: h, ingress: m.ingress - (1 - h) * ((half / rate) * 1000), rx: m.rx, db, lowPow: sq });
        }
      },
      error: (e) => p.errors.push(String(e)),
    });
    dec.configure({ codec: 'opus', sampleRate: 48000, numberOfChannels: 1 });
    const ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    p.ws = ws;
    p.dec = dec;
    let ts = 0;
    ws.onmessage = (e) => {
      const rx = Date.now();
      if (typeof e.data === 'string') {
        let msg = null;
        try { msg = JSON.parse(e.data); } catch { /* ignore */ }
        p.texts.push({ rx, msg });
        if (msg && msg.type === 'hello') resolve();
        return;
      }
      const v = new DataView(e.data);
      if (v.getUint8(0) !== 1) return;
      p.packets++;
      meta.push({ seq: v.getUint32(4), ingress: Number(v.getBigUint64(8)) / 1000, rx });
      dec.decode(new EncodedAudioChunk({ type: 'key', timestamp: ts, data: new Uint8Array(e.data, 16) }));
      ts += 20000;
    };
    ws.onerror = () => reject(new Error(`probe: websocket error on ${url}`));
    setTimeout(() => reject(new Error(`probe: no hello from ${url} in 5 s`)), 5000);
  }), { url, freqs, key });
  return {
    read: (sinceMs = 0) => page.evaluate(({ key, sinceMs }) => {
      const p = window[key];
      return { windows: p.windows.filter((w) => w.ingress >= sinceMs), texts: p.texts, packets: p.packets, errors: p.errors };
    }, { key, sinceMs }),
    stop: () => page.evaluate((key) => { const p = window[key]; p.ws.close(); if (p.dec.state !== 'closed') p.dec.close(); }, key).catch(() => {}),
  };
}

// Power-mean (dB) of the low band over windows: compares a channel's floor speech with orig's.
export function lowBandDb(windows) {
  if (!windows.length) return NaN;
  return 10 * Math.log10(windows.reduce((s, w) => s + w.lowPow, 0) / windows.length + 1e-20);
}
