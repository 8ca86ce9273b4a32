// Listener page, Watch mode, end to end in a real Chromium: /hls/<room>/master.m3u8
// -> hls.js (from /vendor/hls/) -> <video> -> Web Audio (the page routes the
// video's sound through MediaElementSource -> Analyser -> destination; headless
// Chromium has no sound card, so we measure there).
//
// The demo config's channels each carry a quiet ident tone (orig/floor 8000 Hz,
// en 8500, hy 9000, az 9500, ru 10000, tr 10500). A channel may carry its own
// tone or the floor's; never another language's. A language button must
// switch hls.audioTrack on the running player: same MediaSource, the video
// keeps playing. Run from the repo root: `node tests/browser/watch.test.mjs`
// (the Makefile runs it under `unshare -n` with only loopback up).
// WATCH_BYPASS_CSP=1 runs the page with its Content-Security-Policy ignored
// (to test the player while the server's CSP is being fixed); the CSP test
// still checks the header itself.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  ARTIFACTS, assert, launchBrowser, median, run, sampleTones, sleep, startServer, stopServer, tally,
} from './lib.mjs';

const IDENT = { orig: 8000, en: 8500, hy: 9000, az: 9500, ru: 10000, tr: 10500 };
const FREQS = Object.values(IDENT);
const BYPASS_CSP = process.env.WATCH_BYPASS_CSP === '1';
const DESKTOP = { viewport: { width: 1000, height: 1100 }, deviceScaleFactor: 1, bypassCSP: BYPASS_CSP };
const PLAY_MS = 20000; // page load + first segments (2 s each) + hls.js start-up
const SAMPLE_MS = Number(process.env.WATCH_SAMPLE_MS || 8000);
const SWITCH_MAX_MS = 3000;

let server;
let browser;
const log = []; // page console, printed on failure
const measured = {};

const foreign = (lang) => FREQS.filter((f) => f !== IDENT[lang] && f !== IDENT.orig);

function checkChannel(lang, samples, minOwnShare) {
  const t = tally(samples);
  const own = (t[IDENT[lang]] || 0) / samples.length;
  const bad = samples.filter((s) => foreign(lang).includes(s.dominant));
  assert(bad.length === 0, `${lang}: foreign tone dominant in ${bad.length} samples, e.g. ${JSON.stringify(bad[0])}; tally ${JSON.stringify(t)}`);
  assert(own >= minOwnShare, `${lang}: own tone ${IDENT[lang]} Hz dominant in only ${(own * 100).toFixed(0)}% of samples (want >= ${minOwnShare * 100}%); tally ${JSON.stringify(t)}`);
  return `${lang}: ${JSON.stringify(t)}`;
}

// A page in its own context (own localStorage) that logs its console and
// counts the MediaSource objects it attaches to media elements.
async function openContext() {
  const ctx = await browser.newContext(DESKTOP);
  await ctx.addInitScript(() => {
    window.__mediaSources = 0;
    const create = URL.createObjectURL;
    URL.createObjectURL = function (o) {
      if (o && /MediaSource/.test((o.constructor && o.constructor.name) || '')) window.__mediaSources++;
      return create.call(URL, o);
    };
  });
  return ctx;
}

async function newPageIn(ctx) {
  const page = await ctx.newPage();
  page.on('console', (m) => log.push(`[console.${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => log.push(`[pageerror] ${e.message}`));
  return page;
}

async function waitFor(page, fn, arg, timeout, what) {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 100 });
  } catch {
    const status = await page.textContent('#status').catch(() => '?');
    const st = await page.evaluate(() => window.dragomanWatch && JSON.stringify(window.dragomanWatch.stats)).catch(() => '?');
    throw new Error(`timed out after ${timeout} ms waiting for ${what}; page status: "${status}"; watch stats ${st}`);
  }
}

const watchStats = (page) => page.evaluate(() => JSON.parse(JSON.stringify(window.dragomanWatch.stats)));
const pressed = (page, sel) => page.getAttribute(sel, 'aria-pressed');

async function openAndWatch(lang) {
  const ctx = await openContext();
  const page = await newPageIn(ctx);
  await page.goto(`${server.url}/?room=main&lang=${lang}&mode=watch`);
  await waitFor(page, () => !document.querySelector('#play').disabled, null, PLAY_MS, 'the Play button (page loaded, rooms fetched)');
  assert(await pressed(page, 'button[data-mode="watch"]') === 'true', '?mode=watch did not select Watch');
  await page.click('#play');
  await waitFor(page, () => window.dragomanWatch.stats.state === 'playing' && window.dragomanWatch.video.currentTime > 0,
    null, PLAY_MS, 'the video playing');
  const t0 = await page.evaluate(() => window.dragomanWatch.video.currentTime);
  await waitFor(page, (t) => window.dragomanWatch.video.currentTime > t + 1, t0, 5000, 'currentTime advancing');
  await waitFor(page, (l) => window.dragomanWatch.stats.audioTrackLang === l, lang, 5000, `the ${lang} audio track`);
  return { ctx, page };
}

// Samples the dominant ident tone every intervalMs for durationMs at the
// video's Web Audio source, clicking button[data-lang=clickLang] after
// clickAfterMs; every sample is stamped with performance.now(), the video's
// currentTime and the number of MediaSources attached so far.
function sampleAroundClick(page, { clickLang, clickAfterMs, durationMs, intervalMs = 100, minMarginDb = 10 }) {
  return page.evaluate(async ({ freqs, clickLang, clickAfterMs, durationMs, intervalMs, minMarginDb }) => {
    const w = window.dragomanWatch;
    const ctx = w.source.context;
    const a = new AnalyserNode(ctx, { fftSize: 4096, smoothingTimeConstant: 0 });
    w.source.connect(a);
    const spec = new Float32Array(a.frequencyBinCount);
    const binHz = ctx.sampleRate / a.fftSize;
    const step = 500;
    const peakDb = (f, wd) => {
      let m = -Infinity;
      const c = Math.round(f / binHz);
      for (let b = c - wd; b <= c + wd; b++) if (spec[b] > m) m = spec[b];
      return m;
    };
    const out = [];
    const hls0 = w.hls;
    let clickAt = null;
    const t0 = performance.now();
    while (performance.now() - t0 < durationMs) {
      const now = performance.now();
      if (clickAt === null && now - t0 >= clickAfterMs) {
        clickAt = performance.now();
        document.querySelector(`button[data-lang="${clickLang}"]`).click();
      }
      a.getFloatFrequencyData(spec);
      let best = null;
      let toneDb = -Infinity;
      for (const f of freqs) {
        const d = peakDb(f, 2);
        if (d > toneDb) { toneDb = d; best = f; }
      }
      const ref = Math.max(peakDb(best - step / 2, 3), peakDb(best + step / 2, 3), -200);
      out.push({ at: now, dominant: toneDb - ref > minMarginDb ? best : null, marginDb: toneDb - ref,
        currentTime: w.video.currentTime, mediaSources: window.__mediaSources, track: w.stats.audioTrackLang });
      await new Promise((r) => setTimeout(r, intervalMs));
    }
    a.disconnect();
    w.source.disconnect(a);
    return { clickAt, samples: out, sameHls: w.hls === hls0, switches: w.stats.switches };
  }, { freqs: FREQS, clickLang, clickAfterMs, durationMs, intervalMs, minMarginDb });
}

// Waits for `lang`'s booth to go on air (channel state floor -> interpretation
// in /api/v1/rooms; the demo booths are 12 s on, 4 s off) and returns that
// moment (Date.now() ms). What the video plays is that much older than the
// live mixer, so the caller adds the measured delay.
async function onAirEdge(lang, timeoutMs = 25000) {
  const deadline = Date.now() + timeoutMs;
  let prev = null;
  while (Date.now() < deadline) {
    const rooms = (await (await fetch(`${server.url}/api/v1/rooms`)).json()).rooms;
    const cur = rooms.find((r) => r.id === 'main').channels.find((c) => c.lang === lang).state;
    if (prev === 'floor' && cur === 'interpretation') return Date.now();
    prev = cur;
    await sleep(100);
  }
  throw new Error(`${lang}'s booth did not go on air within ${timeoutMs} ms`);
}

// Clicks `to` about 1 s (of played stream) after `to`'s booth went on air, so
// the switch lands in the middle of its 12 s on air: samples 2 s before the
// click and durationMs in all.
async function switchWhileOnAir(page, to, durationMs = 6000) {
  const edge = await onAirEdge(to);
  const st = await watchStats(page);
  const behind = st.pdtLatencyMs ?? (st.latencyMs ?? 4000) + 2000;
  await sleep(Math.max(0, edge + behind + 1000 - 2000 - Date.now()));
  return { behind, ...(await sampleAroundClick(page, { clickLang: to, clickAfterMs: 2000, durationMs })) };
}

// Switch time: from the click to the first sample from which on `to` is
// heard and `from` never again (from = null: `to` first heard; orig's 8000 Hz
// is every channel's floor, it may come back under a language).
function switchTime({ clickAt, samples }, from, to) {
  const after = samples.filter((s) => s.at >= clickAt);
  for (let i = 0; i < after.length; i++) {
    if (after[i].dominant !== IDENT[to]) continue;
    if (from && after.slice(i).some((s) => s.dominant === IDENT[from])) continue;
    return after[i].at - clickAt;
  }
  return Infinity;
}

function checkSwitch(r, from, to, durationMs) {
  const ms = switchTime(r, from, to);
  const before = r.samples.filter((s) => s.at < r.clickAt);
  const after = r.samples.filter((s) => s.at >= r.clickAt);
  const late = after.filter((s) => s.at >= r.clickAt + SWITCH_MAX_MS);
  const tl = (xs) => JSON.stringify(tally(xs));
  assert(before.every((s) => !foreign(from).includes(s.dominant)), `before the click: foreign tone in ${from}: ${tl(before)}`);
  assert(Number.isFinite(ms) && ms <= SWITCH_MAX_MS, `${from} -> ${to}: switch took ${ms} ms (want <= ${SWITCH_MAX_MS}); before ${tl(before)}, after ${tl(after)}`);
  assert(late.every((s) => !foreign(to).includes(s.dominant)), `${to}: foreign tone ${SWITCH_MAX_MS} ms after the click: ${tl(late)}`);
  // The video was not restarted: same hls.js, same MediaSource, time went on.
  const ms0 = r.samples[0].mediaSources;
  const ms1 = r.samples[r.samples.length - 1].mediaSources;
  assert(r.sameHls, 'a new hls.js instance was created on the language switch');
  assert(ms1 === ms0, `a new MediaSource was attached during the switch (${ms0} -> ${ms1})`);
  const ct = r.samples.map((s) => s.currentTime);
  const back = ct.slice(1).findIndex((t, i) => t < ct[i] - 0.05);
  assert(back < 0, `currentTime went backwards at sample ${back + 1}: ${ct[back]} -> ${ct[back + 1]}`);
  const advanced = ct[ct.length - 1] - ct[0];
  assert(advanced > (durationMs / 1000) * 0.6, `currentTime advanced only ${advanced.toFixed(2)} s in ${durationMs / 1000} s`);
  return { ms, advanced, before: tl(before), after: tl(late) };
}

const tests = [];
const test = (name, fn) => tests.push([name, fn]);

test('CSP lets the page play HLS (media-src blob: for MSE, \'self\' for native HLS)', async () => {
  const res = await fetch(`${server.url}/`);
  const csp = res.headers.get('content-security-policy') || '';
  if (!csp) return 'no CSP header';
  const dirs = Object.fromEntries(csp.split(';').map((d) => d.trim().split(/\s+/)).filter((d) => d[0]).map(([k, ...v]) => [k, v]));
  const media = dirs['media-src'] || dirs['default-src'] || ['*'];
  const worker = dirs['worker-src'] || dirs['child-src'] || dirs['script-src'] || dirs['default-src'] || ['*'];
  const allows = (list, src) => list.includes('*') || list.includes(src);
  const missing = [];
  if (!allows(media, 'blob:')) missing.push(`media-src must allow blob: (hls.js attaches a MediaSource by blob: URL); effective ${JSON.stringify(media)}`);
  if (!allows(media, "'self'")) missing.push(`media-src must allow 'self' (native HLS on Safari loads /hls/ directly); effective ${JSON.stringify(media)}`);
  if (!allows(worker, "'self'")) missing.push(`worker-src must allow 'self' (/vendor/hls/hls.worker.js); effective ${JSON.stringify(worker)}`);
  assert(missing.length === 0, `server CSP blocks Watch mode: ${missing.join('; ')}. Header: ${csp}`);
  return `CSP ok: media-src ${media.join(' ')}`;
});

test('master playlist names every channel by URI; hls.js is served', async () => {
  const rooms = (await (await fetch(`${server.url}/api/v1/rooms`)).json()).rooms;
  const room = rooms.find((r) => r.id === 'main');
  const master = await (await fetch(`${server.url}/hls/main/master.m3u8`)).text();
  const media = master.split('\n').filter((l) => l.startsWith('#EXT-X-MEDIA:TYPE=AUDIO'));
  for (const c of room.channels) {
    const line = media.find((l) => l.includes(`URI="audio-${c.lang}.m3u8"`));
    assert(line, `no EXT-X-MEDIA with URI audio-${c.lang}.m3u8 in master:\n${master}`);
    if (c.lang === 'orig') assert(/DEFAULT=YES/.test(line), `orig is not DEFAULT: ${line}`);
  }
  for (const f of ['hls.min.mjs', 'hls.worker.js']) {
    const r = await fetch(`${server.url}/vendor/hls/${f}`);
    const type = r.headers.get('content-type') || '';
    assert(r.status === 200 && /javascript/.test(type), `/vendor/hls/${f}: ${r.status} ${type}`);
  }
  return `${media.length} audio renditions`;
});

test('Listen is the default; ?mode=watch preselects; the choice persists', async () => {
  const ctx = await openContext();
  const page = await newPageIn(ctx);
  const ready = () => waitFor(page, () => !document.querySelector('#play').disabled, null, PLAY_MS, 'the Play button');
  const visible = () => page.isVisible('#video');
  await page.goto(`${server.url}/?room=main&lang=hy`);
  await ready();
  assert(await pressed(page, 'button[data-mode="listen"]') === 'true' && !(await visible()), 'fresh page is not in Listen mode (or shows the video)');
  await page.goto(`${server.url}/?room=main&lang=hy&mode=watch`);
  await ready();
  assert(await pressed(page, 'button[data-mode="watch"]') === 'true' && (await visible()), '?mode=watch: Watch not selected or no video');
  await page.click('button[data-mode="watch"]'); // a click stores the choice
  await page.goto(`${server.url}/?room=main&lang=hy`);
  await ready();
  assert(await pressed(page, 'button[data-mode="watch"]') === 'true', 'Watch not remembered after a reload');
  await page.click('button[data-mode="listen"]');
  await page.goto(`${server.url}/?room=main&lang=hy`);
  await ready();
  assert(await pressed(page, 'button[data-mode="listen"]') === 'true', 'Listen not remembered after a reload');
  await page.goto(`${server.url}/?room=main&lang=hy&mode=watch`);
  await ready();
  const hlsLoaded = await page.evaluate(() => performance.getEntriesByType('resource').some((e) => /\/vendor\/hls\//.test(e.name)));
  await ctx.close();
  assert(!hlsLoaded, 'hls.js was downloaded before Play was pressed');
  return 'default listen, ?mode=watch, localStorage both ways; hls.js loaded lazily';
});

test('hy over HLS: video plays, 9000 Hz (or floor) only; switch to tr in place', async () => {
  const { ctx, page } = await openAndWatch('hy');
  assert(await pressed(page, 'button[data-lang="hy"]') === 'true', 'hy button not pressed');
  const s0 = await watchStats(page);
  const samples = await sampleTones(page, { nodeExpr: 'window.dragomanWatch.source', freqs: FREQS, durationMs: SAMPLE_MS });
  const s1 = await watchStats(page);
  assert(s1.currentTime > s0.currentTime + (SAMPLE_MS / 1000) * 0.7, `video did not keep playing: currentTime ${s0.currentTime} -> ${s1.currentTime}`);
  const rms = median(samples.map((s) => s.rmsDb));
  if (!(rms > -80)) {
    const diag = await page.evaluate(() => ({ ctx: window.dragomanWatch.ctx && window.dragomanWatch.ctx.state, muted: window.dragomanWatch.video.muted,
      volume: window.dragomanWatch.video.volume, paused: window.dragomanWatch.video.paused, stats: window.dragomanWatch.stats }));
    throw new Error(`video sound too quiet: median RMS ${rms.toFixed(1)} dBFS; ${JSON.stringify(diag)}`);
  }
  const hy = checkChannel('hy', samples, 0.3);

  // Delay while hy plays steadily: hls.js's distance to the live edge and
  // wall clock minus PROGRAM-DATE-TIME of the frame on screen.
  const d = [];
  for (let i = 0; i < 10; i++) { d.push(await watchStats(page)); await sleep(200); }
  Object.assign(measured, {
    latencyMs: median(d.map((x) => x.latencyMs)), pdtLatencyMs: median(d.map((x) => x.pdtLatencyMs)),
    bufferMs: median(d.map((x) => x.bufferMs)), engine: s1.engine, droppedFrames: s1.droppedFrames,
    shown: await page.textContent('#w-delay'),
  });
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, 'watch.png'), fullPage: true });

  const r = await switchWhileOnAir(page, 'tr');
  const c = checkSwitch(r, 'hy', 'tr', 6000);
  const st = await watchStats(page);
  assert(await pressed(page, 'button[data-lang="tr"]') === 'true', 'tr button not pressed');
  assert(st.audioTrackLang === 'tr' && /\/audio-tr\.m3u8$/.test(st.audioTrackUrl), `audio track is ${st.audioTrackUrl}`);
  const sw = r.switches.find((x) => x.lang === 'tr');
  Object.assign(measured, { switchMs: c.ms, trackSwitchedMs: sw && sw.switchedMs, advanced: c.advanced });
  await ctx.close();
  return `${hy}; hy -> tr heard after ${Math.round(c.ms)} ms (hls.js AUDIO_TRACK_SWITCHED ${sw && Math.round(sw.switchedMs)} ms), after: ${c.after}; video +${c.advanced.toFixed(1)} s, same MediaSource`;
});

test('orig and en share LANGUAGE "en": each button gets its own rendition', async () => {
  const { ctx, page } = await openAndWatch('orig');
  let st = await watchStats(page);
  assert(/\/audio-orig\.m3u8$/.test(st.audioTrackUrl), `orig plays ${st.audioTrackUrl}`);
  const r1 = await switchWhileOnAir(page, 'en', 8000);
  st = await watchStats(page);
  assert(st.audioTrackLang === 'en' && /\/audio-en\.m3u8$/.test(st.audioTrackUrl), `en button plays ${st.audioTrackUrl}`);
  const enLate = r1.samples.filter((s) => s.at > r1.clickAt + SWITCH_MAX_MS);
  assert(enLate.some((s) => s.dominant === IDENT.en), `en's 8500 Hz never heard after the switch: ${JSON.stringify(tally(enLate))}`);
  assert(enLate.every((s) => !foreign('en').includes(s.dominant)), `foreign tone on en: ${JSON.stringify(tally(enLate))}`);
  const r2 = await sampleAroundClick(page, { clickLang: 'orig', clickAfterMs: 500, durationMs: 5000 });
  st = await watchStats(page);
  assert(/\/audio-orig\.m3u8$/.test(st.audioTrackUrl), `orig button plays ${st.audioTrackUrl}`);
  const origLate = r2.samples.filter((s) => s.at > r2.clickAt + SWITCH_MAX_MS);
  const other = origLate.filter((s) => s.dominant !== null && s.dominant !== IDENT.orig);
  assert(other.length === 0, `orig: non-floor tone after the switch back: ${JSON.stringify(tally(origLate))}`);
  assert(r1.sameHls && r2.sameHls && r2.samples[r2.samples.length - 1].mediaSources === r1.samples[0].mediaSources, 'player restarted');
  await ctx.close();
  return `orig -> en heard after ${Math.round(switchTime(r1, null, 'en'))} ms ${JSON.stringify(tally(enLate))}; en -> orig: ${JSON.stringify(tally(origLate))}`;
});

test('Watch -> Listen while playing: video stops, WebSocket audio starts; and back', async () => {
  const { ctx, page } = await openAndWatch('hy');
  await page.click('button[data-mode="listen"]');
  await waitFor(page, () => window.dragoman.stats.decoded > 25 && window.dragomanWatch.stats.state === 'idle', null, 5000, 'Listen playing, Watch idle');
  const paused = await page.evaluate(() => window.dragomanWatch.video.paused && !window.dragomanWatch.hls);
  assert(paused, 'video still playing in Listen mode');
  await page.click('button[data-mode="watch"]');
  await waitFor(page, () => window.dragomanWatch.stats.state === 'playing' && window.dragoman.stats.state === 'idle', null, PLAY_MS, 'Watch playing again, Listen idle');
  await ctx.close();
  return 'mode switch while playing carries on in the other mode';
});

let code = 1;
let cleanup = () => {};
try {
  // Own HLS directory: servers of other tests running at the same time would
  // otherwise write (and delete) the same build/hls/main/*.ts.
  const hlsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dragoman-watch-hls-'));
  cleanup = () => fs.rmSync(hlsDir, { recursive: true, force: true });
  server = await startServer({ name: 'dragoman-watch', set: { 'server.hls-dir': hlsDir }, timeoutMs: 60000 });
  browser = await launchBrowser();
  const only = process.env.WATCH_ONLY; // e.g. WATCH_ONLY=hy: run the tests whose name contains it
  code = await run('watch', only ? tests.filter(([n]) => n.includes(only)) : tests);
  const m = measured;
  const f = (v) => (Number.isFinite(v) ? Math.round(v) : 'n/a');
  console.log(`watch summary: ${m.engine || '?'}; behind live: PROGRAM-DATE-TIME vs wall clock ${f(m.pdtLatencyMs)} ms, hls.latency ${f(m.latencyMs)} ms (page shows ${m.shown ?? 'n/a'}), buffer ${f(m.bufferMs)} ms; language switch heard after ${f(m.switchMs)} ms (hls.js track switched ${f(m.trackSwitchedMs)} ms); dropped frames ${m.droppedFrames ?? 'n/a'}${BYPASS_CSP ? '; page CSP BYPASSED (WATCH_BYPASS_CSP=1)' : ''}`);
} catch (e) {
  console.log(`watch: setup failed: ${e.stack || e}`);
  console.log('watch: 0 passed, 1 failed');
} finally {
  if (code && log.length) console.log(`page log (last 20):\n${log.slice(-20).join('\n')}`);
  if (browser) await browser.close().catch(() => {});
  if (server) await stopServer(server).catch(() => {});
  cleanup();
}
process.exit(code);
