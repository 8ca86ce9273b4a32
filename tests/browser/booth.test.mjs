// Interpreter console (/booth), end to end in a real Chromium: sign-in over
// /ws/booth, the microphone over WebRTC into the booth's channel, the return
// feed back on the same transceiver, measured on the audience's side by a
// /ws/listen probe (WebCodecs, per 10 ms, stamped with the server's ingress
// time) and on the booth's side at the page's Web Audio return node.
//
// Fake microphones (one per browser, generated here): browser A loops a
// 9000 Hz tone (the hy ident), browser B 9500 Hz, so the listener can tell
// which interpreter is live. The workshop floor carries speech + an 8000 Hz
// ident at -40 dBFS. Run from the repo root: `node tests/browser/booth.test.mjs`
// (the Makefile runs it under `unshare -n` with only loopback up).
// Screenshots: build/test-artifacts/booth-*.png.

import fs from 'node:fs';
import path from 'node:path';
import {
  ARTIFACTS, assert, fakeMicArgs, launchBrowser, lowBandDb, median, run, sampleTones, sleep, startListenProbe,
  startServer, stopServer, tally, writeToneWav,
} from './lib.mjs';

const ROOM = 'workshop';
const TOKENS = { hy: 'demo-hy-booth', ru: 'demo-ru-booth' };
const FLOOR = 8000;
const MIC_A = 9000; // Anna, Carla (browser A)
const MIC_B = 9500; // Boris, Dora (browser B)
const FREQS = [FLOOR, MIC_A, MIC_B, 10000];
const DESK = { viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 };
const DUCK_DB = -15; // configs/demo.ini [room workshop] duck-db
// Timing targets (50 ms cough, 500 ms fallback) are measured and reported here, and
// belong to `make bench` on an idle machine; the assertions only catch a broken
// path (seconds, not milliseconds), so a loaded CI machine does not fail the build.
const COUGH_MAX_MS = Number(process.env.BOOTH_COUGH_MAX_MS || 300);
const FALLBACK_MAX_MS = Number(process.env.BOOTH_FALLBACK_MAX_MS || 1500);

let server;
let browserA;
let browserB;
let probePage;
const probes = {};
const log = [];
const measured = {};
const wsUrls = []; // every WebSocket URL a booth page opened (the token must never be in one)
const s = {}; // booth pages shared across tests: { anna, boris, ... } -> { ctx, page, name }

// ---- helpers ----------------------------------------------------------------------

async function openBooth(browser, { booth, name, token, who }) {
  const ctx = await browser.newContext(DESK);
  const page = await ctx.newPage();
  page.on('console', (m) => log.push(`[${who}.${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => log.push(`[${who}.pageerror] ${e.message}`));
  page.on('websocket', (w) => wsUrls.push(w.url()));
  await page.goto(`${server.url}/booth.html?room=${ROOM}&booth=${booth}`);
  await page.waitForFunction(() => document.querySelector('#booth').options.length > 0, null, { timeout: 10000 });
  await page.fill('#name', name);
  await page.fill('#token', token);
  await page.click('#signin-button');
  return { ctx, page, name, booth };
}

async function waitFor(page, fn, arg, timeout, what) {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 50 });
  } catch {
    const d = await page.evaluate(() => ({
      signin: document.querySelector('#signin-status').textContent, alert: document.querySelector('#alert').hidden ? '' : document.querySelector('#alert-text').textContent,
      phase: window.dragomanBooth.stats.phase, pc: window.dragomanBooth.pc && window.dragomanBooth.pc.connectionState,
      state: window.dragomanBooth.state,
    })).catch((e) => ({ error: e.message }));
    throw new Error(`timed out after ${timeout} ms waiting for ${what}; page: ${JSON.stringify(d)}`);
  }
}

// Signed in, ICE+DTLS up, and the server has our microphone (state.connected).
async function waitReady(b) {
  await waitFor(b.page, () => window.dragomanBooth.stats.phase === 'joined', null, 10000, `${b.name} joined`);
  await waitFor(b.page, () => {
    const d = window.dragomanBooth;
    const me = d.state && (d.state.interpreters || []).find((i) => i.id === d.stats.id);
    return d.pc && d.pc.connectionState === 'connected' && me && me.connected !== false;
  }, null, 15000, `${b.name}'s audio connection (pc connected, server has the microphone)`);
}

const boothState = (b) => b.page.evaluate(() => window.dragomanBooth.state);
const myId = (b) => b.page.evaluate(() => window.dragomanBooth.stats.id);
const nowIn = (page) => page.evaluate(() => Date.now());

// Why a return feed is silent: the answer's direction and whether a remote track came.
const returnDiag = (page) => page.evaluate(() => {
  const d = window.dragomanBooth;
  const sdp = (d.pc && d.pc.remoteDescription && d.pc.remoteDescription.sdp) || '';
  const dir = (sdp.match(/a=(sendrecv|sendonly|recvonly|inactive)/) || [])[1];
  return `answer a=${dir || '?'}, remote track ${d.stats.trackAt ? 'received' : 'never received'}, transceiver currentDirection ${d.pc && d.pc.getTransceivers()[0] ? d.pc.getTransceivers()[0].currentDirection : '?'}`;
});

async function shot(page, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `booth-${name}.png`), fullPage: true });
}

// Waits until the probe has decoded audio stamped at or after `t` (a loaded
// machine can leave the probe page behind), so a span ending at `t` is whole.
async function settled(lang, t, timeout = 5000) {
  const t0 = Date.now();
  while (!(await probes[lang].read(t)).windows.length) {
    if (Date.now() - t0 > timeout) throw new Error(`the ${lang} probe has no audio stamped after ${t} (lagging or stalled)`);
    await sleep(50);
  }
}

// The probe's windows of the last `spanMs` before now.
async function recent(lang, spanMs) {
  const t = Date.now();
  await settled(lang, t);
  return windowsBetween((await probes[lang].read(t - spanMs)).windows, t - spanMs, t);
}

// Polls until the last 600 ms of hy are `freq` (> -30 dBFS, 10 dB over `other`)
// in 90 % of the windows; returns that share (the last one seen on timeout).
async function hears(freq, other, timeout = 4000) {
  const t0 = Date.now();
  let sh = 0;
  do {
    const w = await recent('hy', 600);
    sh = share(w, (x) => x.db[freq] > -30 && x.db[freq] > x.db[other] + 10);
    if (sh > 0.9) break;
    await sleep(200);
  } while (Date.now() - t0 < timeout);
  return sh;
}

function windowsBetween(ws, from, to) {
  return ws.filter((w) => w.ingress >= from && w.ingress < to);
}
const share = (ws, pred) => (ws.length ? ws.filter(pred).length / ws.length : 0);
const fmt = (v, d = 0) => (Number.isFinite(v) ? v.toFixed(d) : 'n/a');

// Duck depth: the channel's floor speech (< 4 kHz, where the interpreter's
// tone is not) against orig's over the same span, in dB.
async function duckDb(from, to) {
  await settled('orig', to);
  const hy = windowsBetween((await probes.hy.read(from)).windows, from, to);
  const orig = windowsBetween((await probes.orig.read(from)).windows, from, to);
  return lowBandDb(hy) - lowBandDb(orig);
}

async function closeBooth(key) {
  if (s[key]) await s[key].ctx.close().catch(() => {});
  delete s[key];
}

const tests = [];
const test = (name, fn) => tests.push([name, fn]);

// ---- tests ---------------------------------------------------------------------------

test('1. sign in to hy and go on air: audience hears the interpreter over the ducked floor; return feed = floor', async () => {
  const a = await openBooth(browserA, { booth: 'hy', name: 'Anna', token: TOKENS.hy, who: 'anna' });
  s.anna = a;
  await waitReady(a);
  const p = a.page;
  assert(await p.isHidden('#signin') && await p.isVisible('#console'), 'console not shown after joined');
  assert((await p.textContent('#team')).includes('Anna'), 'team list does not show Anna');
  assert(await p.evaluate(() => sessionStorage.length === 1 && !location.href.includes('demo-hy')), 'token not kept in sessionStorage only');
  const st0 = await boothState(a);
  assert(st0.live === await myId(a) && !st0.on_air, `first interpreter should be live and off air: ${JSON.stringify(st0)}`);

  // Off air: the channel is the floor.
  await sleep(1500);
  const off = await recent('hy', 1000);
  assert(share(off, (w) => w.db[MIC_A] > -40) < 0.05, `hy carries 9000 Hz while off air: ${JSON.stringify(off.slice(0, 3))}`);

  // Shortcuts: typing an "o" in the chat box is text, not a command...
  await p.fill('#chat-text', '');
  await p.type('#chat-text', 'hello from booth');
  await p.press('#chat-text', 'Enter');
  await waitFor(p, () => document.querySelector('#chat-log').textContent.includes('hello from booth'), null, 3000, 'the chat line echoed back');
  assert(!(await boothState(a)).on_air, 'typing "o" in the chat box toggled ON AIR');
  // ...while "O" with the focus on the volume slider is.
  await p.focus('#ret-volume');
  const tOn = await nowIn(p);
  await p.keyboard.press('o');
  await waitFor(p, () => window.dragomanBooth.state.on_air === true, null, 3000, 'state on_air after pressing O');
  assert(await p.getAttribute('body', 'data-onair') === 'true', 'tally frame not lit');
  assert(await p.getAttribute('#onair', 'data-state') === 'on' && /ON AIR/.test(await p.textContent('#onair-label')), 'ON AIR button not lit');

  await sleep(2500); // duck ramp 300 ms + jitter buffers
  const t = Date.now();
  await settled('hy', t);
  await settled('orig', t);
  const on = windowsBetween((await probes.hy.read(t - 2000)).windows, t - 2000, t);
  const origOn = windowsBetween((await probes.orig.read(t - 2000)).windows, t - 2000, t);
  const micDb = median(on.map((w) => w.db[MIC_A]));
  const floorDb = median(on.map((w) => w.db[FLOOR]));
  const duck = await duckDb(t - 2000, t);
  measured.voiceDb = micDb;
  measured.duckDb = duck;
  const hyState = (await probes.hy.read()).texts.filter((x) => x.msg && x.msg.type === 'state').pop();
  assert(hyState && hyState.msg.state === 'interpretation', `listener state is not interpretation: ${JSON.stringify(hyState)}`);
  assert(on.length > 100, `only ${on.length} probe windows in 2 s`);
  assert(share(on, (w) => w.db[MIC_A] > -30) > 0.6,
    `hy listener: the interpreter's 9000 Hz is missing (median ${fmt(micDb, 1)} dBFS; ${fmt(share(on, (w) => w.db[MIC_A] > -30) * 100)} % of windows > -30 dBFS) — the microphone does not reach the channel`);
  assert(share(origOn, (w) => w.db[MIC_A] > -40) < 0.05, 'the orig channel carries the interpreter');
  assert(duck < DUCK_DB + 6 && duck > DUCK_DB - 6, `floor not ducked by ~${DUCK_DB} dB: measured ${fmt(duck, 1)} dB (speech band, hy vs orig)`);

  // The return feed, at the page's Web Audio return node: the floor.
  const ret = await sampleTones(p, { nodeExpr: 'window.dragomanBooth.returnNode', freqs: FREQS, durationMs: 3000, intervalMs: 100 });
  const rt = tally(ret);
  measured.returnFloor = rt;
  measured.returnRmsDb = median(ret.map((x) => x.rmsDb));
  await shot(p, 'onair');
  assert((rt[FLOOR] || 0) / ret.length >= 0.5, `return feed: floor 8000 Hz dominant in only ${rt[FLOOR] || 0}/${ret.length} samples (RMS ${fmt(measured.returnRmsDb)} dBFS); tally ${JSON.stringify(rt)}; ${await returnDiag(p)}`);
  assert(!rt[MIC_A], `return feed carries the interpreter's own voice: ${JSON.stringify(rt)}`);
  return `on air ${(await p.evaluate(() => window.dragomanBooth.stats.sentAt['on-air'])) - tOn} ms after O; listener 9000 Hz ${fmt(micDb, 1)} dBFS, 8000 Hz ${fmt(floorDb, 1)} dBFS; floor speech ducked ${fmt(duck, 1)} dB; return ${JSON.stringify(rt)} (RMS ${fmt(measured.returnRmsDb)} dBFS)`;
});

test('1b. the stage\'s picture (issue #4): the booth page decodes the test pattern, frames advance, key frame on join', async () => {
  const p = s.anna.page;
  const j = await p.evaluate(() => window.dragomanBooth.joined.video);
  assert(j && j.width > 0 && j.height > 0, `joined carries no video: ${JSON.stringify(j)}`);
  assert(await p.isVisible('#stage-video'), 'the stage video is not shown');
  assert(await p.isHidden('#stage-lost'), 'the stage-lost caption shows while the demo stage is live');
  await waitFor(p, () => document.querySelector('#stage-video').videoWidth > 0, null, 10000, 'a decoded stage frame (videoWidth > 0)');
  const q0 = await p.evaluate(() => {
    const v = document.querySelector('#stage-video');
    return { w: v.videoWidth, h: v.videoHeight, frames: v.getVideoPlaybackQuality().totalVideoFrames, rvfc: window.dragomanBooth.stats.video.frames, at: Date.now() };
  });
  await sleep(2000);
  const q1 = await p.evaluate(() => {
    const v = document.querySelector('#stage-video');
    return { frames: v.getVideoPlaybackQuality().totalVideoFrames, dropped: v.getVideoPlaybackQuality().droppedVideoFrames, rvfc: window.dragomanBooth.stats.video.frames, at: Date.now() };
  });
  const fps = ((q1.frames - q0.frames) * 1000) / (q1.at - q0.at);
  measured.videoFps = fps;
  assert(q0.w === j.width && q0.h === j.height, `decoded ${q0.w}x${q0.h}, the server announced ${j.width}x${j.height}`);
  // 15 fps sent; a third of it still proves the picture moves on a loaded machine
  assert(fps >= 5, `only ${fmt(fps, 1)} decoded frames/s (${q0.frames} -> ${q1.frames})`);
  assert(q1.rvfc > q0.rvfc, `requestVideoFrameCallback saw no new frame (${q0.rvfc} -> ${q1.rvfc})`);
  const v = await p.evaluate(() => window.dragomanBooth.stats.video);
  const joinedAt = await p.evaluate(() => window.dragomanBooth.stats.joinedAt);
  measured.videoFirstMs = v.firstFrameAt - joinedAt;
  assert(v.firstFrameAt && measured.videoFirstMs < 5000, `first frame ${fmt(measured.videoFirstMs)} ms after joined`);
  // The pixels are the pattern, not the black of a lost stage: the demo's ball is
  // white on black, so count bright pixels (the ball is ~1 % of the frame, the
  // time overlay more), in two frames 0.5 s apart that must differ (it moves).
  await shot(p, 'video');
  const grab = () => p.evaluate(() => {
    const v = document.querySelector('#stage-video');
    const c = new OffscreenCanvas(v.videoWidth, v.videoHeight);
    const g = c.getContext('2d');
    g.drawImage(v, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height).data;
    let bright = 0;
    const sig = [];
    for (let i = 0; i < d.length; i += 4) {
      const y = (d[i] + d[i + 1] + d[i + 2]) / 3;
      if (y > 128) { bright++; sig.push(i); }
    }
    return { bright: bright / (d.length / 4), sig: sig.slice(0, 2000).join(',') };
  });
  const g0 = await grab();
  await sleep(500);
  const g1 = await grab();
  assert(g0.bright > 0.002 && g1.bright > 0.002, `the decoded picture is black (bright pixels ${fmt(g0.bright * 100, 2)} %, ${fmt(g1.bright * 100, 2)} %): the stage did not reach it`);
  assert(g0.sig !== g1.sig, 'the picture did not change in 0.5 s');
  const lum = g1.bright * 100;
  return `${q0.w}x${q0.h}, ${fmt(fps, 1)} frames/s decoded (${q1.dropped} dropped), first frame ${fmt(measured.videoFirstMs)} ms after joined (${fmt(v.firstFrameAt - v.trackAt)} ms after the track), ${fmt(lum, 2)} % bright pixels`;
});

test('2. cough (hold C): the voice leaves the channel within 50 ms, the floor stays ducked; release brings it back', async () => {
  const a = s.anna;
  assert(a && (await boothState(a)).on_air, 'needs Anna on air (test 1)');
  const p = a.page;
  await p.focus('#onair');
  const ref = median((await recent('hy', 1000)).map((w) => w.db[MIC_A]));
  assert(ref > -30, `no interpreter voice before the cough (median ${fmt(ref, 1)} dBFS) — see test 1`);
  // One long cough (floor must stay ducked, channel state unchanged), then
  // short ones for the statistics. The latency that counts is on the
  // channel's own timeline: the ingress stamp of the first muted 10 ms (when
  // the newest input audio in it reached the server) minus the moment the
  // page sent the cough (page -> server on loopback is < 1 ms; same clock).
  // That is how much audio after the cough still carried the voice, whatever
  // the encoder, the socket or a loaded test machine add afterwards. Arrival
  // at the listener (+ the 20 ms Opus frame, lookahead, WebSocket, probe) is
  // reported too.
  const holds = [1500, 400, 400, 400, 400, 400];
  const runs = [];
  for (const [k, holdMs] of holds.entries()) {
    await p.keyboard.down('c');
    await waitFor(p, () => window.dragomanBooth.state.cough === true, null, 2000, 'state cough=true');
    const tDown = await p.evaluate(() => window.dragomanBooth.stats.sentAt.cough);
    if (k === 0) {
      assert(await p.getAttribute('#cough', 'aria-pressed') === 'true', 'COUGH button not shown pressed');
      assert(/MUTED/.test(await p.textContent('#onair-label')), 'ON AIR label does not say MUTED');
      await shot(p, 'cough');
    }
    await sleep(holdMs);
    await p.keyboard.up('c');
    await waitFor(p, () => window.dragomanBooth.state.cough === false, null, 2000, 'state cough=false');
    const tUp = await p.evaluate(() => window.dragomanBooth.stats.sentAt.cough);
    await sleep(500);
    await settled('hy', tUp + 400);
    const ws = (await probes.hy.read(tDown - 500)).windows;
    // first 10 ms at least 10 dB down (the 10 ms gain ramp's window), then back within 6 dB
    const gone = ws.find((w) => w.rx >= tDown && w.db[MIC_A] < ref - 10);
    assert(gone && gone.rx < tUp + 20, `cough ${k + 1}: the 9000 Hz never dropped while cough was held (ref ${fmt(ref, 1)} dBFS)`);
    const back = ws.find((w) => w.rx >= tUp && w.db[MIC_A] > ref - 6);
    const held = ws.filter((w) => w.rx >= gone.rx + 30 && w.rx < tUp);
    runs.push({ tDown, tUp, muteRx: gone.rx - tDown, muteIngress: gone.ingress - tDown, backRx: back ? back.rx - tUp : NaN,
      leak: share(held, (w) => w.db[MIC_A] > ref - 20), held });
  }
  const long = runs[0];
  const duck = await duckDb(long.tDown + 150, long.tUp);
  const hyTexts = (await probes.hy.read()).texts.filter((x) => x.rx >= long.tDown && x.rx <= runs[runs.length - 1].tUp + 500 && x.msg && x.msg.type === 'state');
  const mutes = runs.map((r) => r.muteIngress);
  const arrivals = runs.map((r) => r.muteRx);
  const backs = runs.map((r) => r.backRx);
  Object.assign(measured, {
    coughMs: median(mutes), coughMaxMs: Math.max(...mutes), coughRxMs: median(arrivals), coughRxMaxMs: Math.max(...arrivals),
    coughReleaseRxMs: median(backs), coughDuckDb: duck,
  });
  const list = (xs) => xs.map((x) => fmt(x)).join('/');
  // most of each hold must be silent; on a loaded machine a stall can make a window
  // look "gone" before the cough really arrived, so not every window is judged
  assert(runs.filter((r) => r.leak < 0.05).length >= runs.length - 1 && runs.every((r) => r.leak < 0.5),
    `voice leaked while cough held: ${list(runs.map((r) => r.leak * 100))} % of windows`);
  assert(duck < DUCK_DB + 6, `floor un-ducked during cough: ${fmt(duck, 1)} dB vs orig`);
  assert(hyTexts.every((x) => x.msg.state === 'interpretation'), `channel state changed during cough: ${JSON.stringify(hyTexts.map((x) => x.msg.state))}`);
  assert(median(mutes) <= COUGH_MAX_MS,
    `cough: the first muted audio reached the server ${list(mutes)} ms after the page sent cough (median ${fmt(median(mutes))}), want median <= ${COUGH_MAX_MS}`);
  assert(backs.every((b) => b < 500), `voice not back at the listener within 500 ms of release: ${list(backs)} ms`);
  return `channel muted ${list(mutes)} ms after the page sent cough (ingress stamps; median ${fmt(median(mutes))}); at the listener ${list(arrivals)} ms (median ${fmt(median(arrivals))}); voice back at the listener ${list(backs)} ms after release; floor ${fmt(duck, 1)} dB vs orig during a 1.5 s cough`;
});

test('3. handover: partner requests, takes over, hands back (H); third interpreter refused booth-full', async () => {
  const a = s.anna;
  assert(a, 'needs Anna (test 1)');
  const b = await openBooth(browserB, { booth: 'hy', name: 'Boris', token: TOKENS.hy, who: 'boris' });
  s.boris = b;
  await waitReady(b);
  const annaId = await myId(a);
  const borisId = await myId(b);
  await waitFor(a.page, () => (window.dragomanBooth.state.interpreters || []).length === 2, null, 3000, 'Anna sees two interpreters');
  // Boris sees who is live and gets the partner's buttons.
  assert(/ANNA LIVE/.test(await b.page.textContent('#onair-label')), `Boris's console does not say Anna is live: "${await b.page.textContent('#onair-label')}"`);
  assert(await b.page.isDisabled('#onair'), 'Boris (not live) can press ON AIR');
  assert(await b.page.isVisible('#take-over') && await b.page.isVisible('#request-handover'), 'Boris has no Take over / Request handover');
  assert(await a.page.isVisible('#hand-over') && !(await a.page.isVisible('#take-over')), 'Anna (live) has the wrong handover buttons');

  await b.page.click('#request-handover');
  await waitFor(a.page, () => !document.querySelector('#handover-request').hidden, null, 3000, 'the handover request on Anna\'s console');
  assert((await a.page.textContent('#handover-request')).includes('Boris'), 'handover request does not name Boris');
  await shot(a.page, 'handover-request');

  const tTake = await nowIn(b.page);
  await b.page.click('#take-over');
  for (const x of [a, b]) {
    await waitFor(x.page, (id) => window.dragomanBooth.state.live === id, borisId, 3000, `${x.name} sees Boris live`);
  }
  const st = await boothState(a);
  assert(st.on_air, 'take-over dropped the booth off air');
  assert(await b.page.getAttribute('body', 'data-onair') === 'true', 'Boris\'s tally not lit after take-over');
  assert(await a.page.getAttribute('body', 'data-onair') === 'false', 'Anna\'s tally still lit after Boris took over');
  assert(/BORIS LIVE/.test(await a.page.textContent('#onair-label')), 'Anna\'s console does not say Boris is live');
  assert(await a.page.isHidden('#handover-request'), 'stale handover request still shown');
  const bShare = await hears(MIC_B, MIC_A);
  assert(bShare > 0.9, `listener does not hear Boris (9500 Hz) after take-over: ${fmt(bShare * 100)} % of windows`);
  const firstB = (await probes.hy.read(tTake)).windows.find((x) => x.db[MIC_B] > -30);
  measured.takeOverMs = firstB ? firstB.ingress - tTake : NaN;
  await shot(a.page, 'handover-anna');
  await shot(b.page, 'handover-boris');

  // Boris hands back with the H key (focus on the page body).
  await b.page.focus('body');
  await b.page.keyboard.press('h');
  for (const x of [a, b]) {
    await waitFor(x.page, (id) => window.dragomanBooth.state.live === id, annaId, 3000, `${x.name} sees Anna live again`);
  }
  const aShare = await hears(MIC_A, MIC_B);
  assert(aShare > 0.9, `listener does not hear Anna again after hand-over (${fmt(aShare * 100)} % of windows)`);

  // A third interpreter: the booth is full.
  const c = await openBooth(browserA, { booth: 'hy', name: 'Carla', token: TOKENS.hy, who: 'carla' });
  await waitFor(c.page, () => document.querySelector('#signin-status').dataset.code === 'booth-full', null, 5000, 'booth-full on Carla\'s sign-in');
  const msg = await c.page.textContent('#signin-status');
  assert(await c.page.isVisible('#signin') && await c.page.isHidden('#console'), 'Carla got past the sign-in form');
  await shot(c.page, 'full');
  await c.ctx.close();
  await closeBooth('boris');
  await waitFor(a.page, () => (window.dragomanBooth.state.interpreters || []).length === 1, null, 3000, 'Anna alone again');
  return `take-over audible after ${fmt(measured.takeOverMs)} ms; Carla: "${msg}"`;
});

test('4. relay: booth ru listens to hy and hears hy\'s output (9000 Hz); retour offered only where the server has it', async () => {
  assert(s.anna && (await boothState(s.anna)).on_air, 'needs Anna on air in hy');
  const d = await openBooth(browserB, { booth: 'ru', name: 'Dora', token: TOKENS.ru, who: 'dora' });
  s.dora = d;
  await waitReady(d);
  const p = d.page;
  assert(await p.isVisible('button[data-source="hy"]') && !(await p.isVisible('button[data-source="ru"]')), 'incoming choices wrong (want floor + relay hy, not ru itself)');
  const b = p.locator('button[data-output]:not([data-output="ru"])').first();
  // Outgoing B (retour): enabled when `joined` says "retour": true, else disabled with the reason.
  const retour = await p.evaluate(() => window.dragomanBooth.joined.retour === true);
  if (retour) assert(!(await b.isDisabled()), 'the server offers retour but the B button is disabled');
  else assert(await b.isDisabled() && /not available/i.test(await b.getAttribute('title')), 'retour control not disabled with an explanation');
  await p.click('button[data-source="hy"]');
  await waitFor(p, () => window.dragomanBooth.state.listen === 'hy', null, 3000, 'state listen=hy');
  assert(await p.getAttribute('button[data-source="hy"]', 'aria-checked') === 'true', 'relay button not checked');
  await sleep(1000);
  const ret = await sampleTones(p, { nodeExpr: 'window.dragomanBooth.returnNode', freqs: FREQS, durationMs: 3000, intervalMs: 100 });
  const rt = tally(ret);
  measured.returnRelay = rt;
  await shot(p, 'relay');
  assert((rt[MIC_A] || 0) / ret.length >= 0.7, `ru's return: hy's 9000 Hz dominant in only ${rt[MIC_A] || 0}/${ret.length}; tally ${JSON.stringify(rt)}; ${await returnDiag(p)}`);
  assert(!rt[MIC_B], `ru's return carries Dora's own voice (9500 Hz): ${JSON.stringify(rt)}`);
  await closeBooth('dora');
  return `ru return while relaying hy: ${JSON.stringify(rt)}; retour ${retour ? 'offered' : 'not offered'} by the server`;
});

test('5. wrong token: clear error on the sign-in form, nothing kept', async () => {
  const w = await openBooth(browserA, { booth: 'hy', name: 'Eve', token: 'not-the-token', who: 'eve' });
  await waitFor(w.page, () => document.querySelector('#signin-status').dataset.kind === 'error', null, 5000, 'an error on the sign-in form');
  const text = await w.page.textContent('#signin-status');
  const code = await w.page.getAttribute('#signin-status', 'data-code');
  const kept = await w.page.evaluate(() => sessionStorage.length);
  await shot(w.page, 'wrong-token');
  await w.ctx.close();
  assert(code === 'bad-token', `error code ${code}, want bad-token ("${text}")`);
  assert(/token/i.test(text), `error does not mention the token: "${text}"`);
  assert(kept === 0, 'a refused token was kept in sessionStorage');
  const leaked = wsUrls.filter((u) => /demo-|not-the-token|token=/.test(u));
  assert(leaked.length === 0, `a token appeared in a WebSocket URL: ${leaked[0]}`);
  return `"${text}"`;
});

test('6. the live interpreter\'s page dies: the hy channel falls back to the floor', async () => {
  const a = s.anna;
  assert(a && (await boothState(a)).on_air, 'needs Anna on air');
  await sleep(500);
  const t0 = Date.now(); // same clock as the probe page (same machine)
  await a.ctx.close();
  delete s.anna;
  await sleep(2500);
  await settled('hy', t0 + 2400);
  await settled('orig', t0 + 2400);
  const r = await probes.hy.read(t0 - 1000);
  const ref = median(windowsBetween(r.windows, t0 - 1000, t0).map((w) => w.db[MIC_A]));
  const gone = r.windows.find((w) => w.rx > t0 && w.db[MIC_A] < ref - 20);
  const floorMsg = r.texts.find((x) => x.rx > t0 && x.msg && x.msg.state === 'floor');
  // On the channel's timeline (ingress stamp, as for cough); arrival at the listener reported too.
  const audioMs = gone ? gone.ingress - t0 : NaN;
  const audioRxMs = gone ? gone.rx - t0 : NaN;
  const stateMs = floorMsg ? floorMsg.rx - t0 : NaN;
  const duck = await duckDb(t0 + 1500, t0 + 2400); // unduck ramp is 1 s
  Object.assign(measured, { fallbackAudioMs: audioMs, fallbackStateMs: stateMs, afterFallbackDb: duck });
  assert(ref > -30, `Anna was not audible before (median ${fmt(ref, 1)} dBFS)`);
  assert(gone, 'the interpreter\'s tone never left the channel');
  assert(audioMs <= FALLBACK_MAX_MS, `voice still in the channel ${fmt(audioMs)} ms after the page died`);
  assert(floorMsg && stateMs <= FALLBACK_MAX_MS, `listener state "floor" ${floorMsg ? `after ${fmt(stateMs)} ms` : 'never came'}`);
  assert(duck > -4, `floor not restored 1.5 s later (${fmt(duck, 1)} dB vs orig)`);
  return `voice gone from the channel ${fmt(audioMs)} ms (at the listener ${fmt(audioRxMs)} ms), state "floor" ${fmt(stateMs)} ms after the context closed; floor at ${fmt(duck, 1)} dB vs orig 1.5 s later`;
});

// ---- main ---------------------------------------------------------------------------

let code = 1;
try {
  const micA = writeToneWav(path.join(ARTIFACTS, 'booth-mic-9000.wav'), { freqs: [MIC_A], amplitude: 0.3 });
  const micB = writeToneWav(path.join(ARTIFACTS, 'booth-mic-9500.wav'), { freqs: [MIC_B], amplitude: 0.3 });
  server = await startServer({ name: 'booth' });
  browserA = await launchBrowser(fakeMicArgs(micA));
  browserB = await launchBrowser(fakeMicArgs(micB));
  probePage = await browserA.newPage();
  probePage.on('pageerror', (e) => log.push(`[probe.pageerror] ${e.message}`));
  await probePage.goto(`${server.url}/api/v1/rooms`);
  const ws = server.url.replace(/^http/, 'ws');
  for (const lang of ['hy', 'orig']) probes[lang] = await startListenProbe(probePage, { url: `${ws}/ws/listen?room=${ROOM}&lang=${lang}`, freqs: FREQS });
  code = await run('booth', tests);
  const m = measured;
  console.log(`booth summary: cough median ${fmt(m.coughMs)} ms (max ${fmt(m.coughMaxMs)}) on the channel timeline, ${fmt(m.coughRxMs)} ms (max ${fmt(m.coughRxMaxMs)}) at the listener, release ${fmt(m.coughReleaseRxMs)} ms; `
    + `fallback ${fmt(m.fallbackAudioMs)} ms audio / ${fmt(m.fallbackStateMs)} ms state; take-over ${fmt(m.takeOverMs)} ms; `
    + `video ${fmt(m.videoFps, 1)} frames/s, first frame ${fmt(m.videoFirstMs)} ms after joined; `
    + `voice ${fmt(m.voiceDb, 1)} dBFS, duck ${fmt(m.duckDb, 1)} dB; return floor ${JSON.stringify(m.returnFloor || {})}, relay ${JSON.stringify(m.returnRelay || {})}`);
} catch (e) {
  console.log(`booth: setup failed: ${e.stack || e}`);
  console.log('booth: 0 passed, 1 failed');
} finally {
  if (code && log.length) console.log(`page log (last 25):\n${log.slice(-25).join('\n')}`);
  if (code && server && server.logTail) console.log(`server log (last 15):\n${server.logTail(15)}`);
  for (const p of Object.values(probes)) await p.stop();
  for (const b of [browserA, browserB]) if (b) await b.close().catch(() => {});
  if (server) await stopServer(server).catch(() => {});
}
process.exit(code);
