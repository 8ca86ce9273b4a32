// Control page, end to end in a real Chromium against the demo config:
// sign-in over /ws/control, live meters and state for both rooms, and a crew
// action (force floor on main/hy) checked by ear: build/wsprobe listens to
// /ws/listen?room=main&lang=hy and reports the dominant ident tone per 100 ms
// window (floor 8000 Hz = 'o', hy 9000 Hz = 'h', none = '.').
//
// Run from the repo root: `node tests/browser/control.test.mjs` (the Makefile
// runs it under `unshare -n` with only loopback up). Artifacts:
// build/test-artifacts/control.png and the server log.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  ARTIFACTS, ROOT, assert, launchBrowser, newPage, run, sleep, startServer, stopServer,
} from './lib.mjs';

const ADMIN_TOKEN = 'demo-admin-token'; // configs/demo.ini [server] admin-token
const LAPTOP = { viewport: { width: 1440, height: 900 }, deviceScaleFactor: 1 };
const PROBE_SECONDS = 6;
const FORCE_AT_MS = 1500; // into the probe: hy is heard first, then forced to the floor
const FADE_WINDOWS = 10; // the floor comes back over DRAGOMAN_RAMP_UNDUCK_MS (1 s)

let server;
let browser;
let page; // the signed-in crew page, shared by the tests after sign-in
const log = [];
const measured = {};

const tests = [];
const test = (name, fn) => tests.push([name, fn]);

async function waitFor(p, fn, arg, timeout, what) {
  try {
    await p.waitForFunction(fn, arg, { timeout, polling: 100 });
  } catch {
    const conn = await p.textContent('#conn').catch(() => '?');
    const err = await p.textContent('#signin-error').catch(() => '?');
    throw new Error(`timed out after ${timeout} ms waiting for ${what}; #conn "${conn}", #signin-error "${err}"`);
  }
}

async function signIn(p, token, name) {
  await p.goto(`${server.url}/control`);
  await p.fill('#token', token);
  await p.fill('#name', name);
  await p.click('#signin-btn');
}

// build/wsprobe on one channel; resolves with its JSON report and the wall
// clock time it was started (same host clock as the page's Date.now()).
function probe(lang, seconds) {
  const url = `${server.url.replace('http', 'ws')}/ws/listen?room=main&lang=${lang}`;
  const startedAt = Date.now();
  const proc = spawn(path.join(ROOT, 'build/wsprobe'), ['--url', url, '--seconds', String(seconds), '--json', '--levels'], { cwd: ROOT });
  let out = '';
  let err = '';
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', (d) => { err += d; });
  return new Promise((resolve, reject) => {
    proc.on('exit', (code) => {
      try {
        resolve({ report: JSON.parse(out), code, startedAt });
      } catch {
        reject(new Error(`wsprobe exit ${code}, no JSON: ${out.slice(0, 300)} ${err.slice(0, 300)}`));
      }
    });
  });
}

const strip = (room, lang) => `.strip[data-room="${room}"][data-lang="${lang}"]`;

test('wrong token: clear error, no state or meters shown, nothing stored', async () => {
  const p = await newPage(browser, log, LAPTOP);
  await signIn(p, 'not-the-token', 'Test crew');
  await waitFor(p, () => document.querySelector('#signin-error').textContent.length > 0, null, 5000, 'the sign-in error');
  await sleep(500); // anything the server might (wrongly) send after the refusal
  const r = await p.evaluate(() => ({
    error: document.querySelector('#signin-error').textContent,
    dashHidden: document.querySelector('#dash').hidden,
    formHidden: document.querySelector('#signin').hidden,
    rooms: document.querySelectorAll('.room').length,
    state: window.dragomanControl.state,
    meters: window.dragomanControl.meters,
    byType: window.dragomanControl.stats.byType,
    close: window.dragomanControl.lastClose,
    stored: sessionStorage.getItem('dragoman.control'),
  }));
  await p.close();
  assert(/wrong admin token/i.test(r.error), `error text: "${r.error}"`);
  assert(r.dashHidden && !r.formHidden && r.rooms === 0, `dashboard shown after a wrong token: ${JSON.stringify(r)}`);
  assert(r.state === null && r.meters === null, 'state/meters kept after a wrong token');
  const types = Object.keys(r.byType);
  assert(types.every((t) => t === 'error'), `server sent ${types.join(',')} to a wrong token (only an error is allowed)`);
  assert(r.close && r.close.code === 4401 && r.close.error?.code === 'bad-token', `close: ${JSON.stringify(r.close)}`);
  assert(r.stored === null, 'token stored in sessionStorage after a refusal');
  return `"${r.error}", close ${r.close.code} ${r.close.error.code}`;
});

test('right token: both rooms shown, meters move in a sane range', async () => {
  page = await newPage(browser, log, LAPTOP);
  await signIn(page, ADMIN_TOKEN, 'Test crew');
  await waitFor(page, () => window.dragomanControl.state && document.querySelectorAll('.room').length === 2
    && window.dragomanControl.meters, null, 5000, 'state with 2 rooms and meters');
  const rooms = await page.evaluate(() => [...document.querySelectorAll('.room')].map((r) => ({
    id: r.dataset.room, strips: [...r.querySelectorAll('.strip')].map((s) => s.dataset.lang),
  })));
  const main = rooms.find((r) => r.id === 'main');
  const ws = rooms.find((r) => r.id === 'workshop');
  assert(main && ws, `rooms ${JSON.stringify(rooms)}`);
  assert(['orig', 'en', 'hy', 'az', 'ru', 'tr'].every((l) => main.strips.includes(l)), `main strips ${main.strips}`);
  assert(['orig', 'hy', 'ru'].every((l) => ws.strips.includes(l)), `workshop strips ${ws.strips}`);

  // Two seconds of meters, sampled in the page as they arrive.
  const m = await page.evaluate(async () => {
    const seen = [];
    const t0 = performance.now();
    let last = null;
    while (performance.now() - t0 < 2000) {
      const cur = window.dragomanControl.meters;
      if (cur !== last) { seen.push(cur); last = cur; }
      await new Promise((r) => setTimeout(r, 20));
    }
    return seen;
  });
  assert(m.length >= 15, `only ${m.length} meters messages in 2 s (want ~24)`);
  const series = {}; // "room/kind/lang" -> [[peak, rms]]
  for (const msg of m) {
    for (const [room, r] of Object.entries(msg.rooms)) {
      (series[`${room}/floor`] ||= []).push(r.floor);
      for (const [l, v] of Object.entries(r.channels || {})) (series[`${room}/ch/${l}`] ||= []).push(v);
      for (const [l, v] of Object.entries(r.booths || {})) (series[`${room}/booth/${l}`] ||= []).push(v);
    }
  }
  const bad = [];
  for (const [k, vs] of Object.entries(series)) {
    for (const v of vs) {
      if (!Array.isArray(v) || v.length !== 2 || !v.every(Number.isFinite) || v[0] > 0.01 || v[1] > 0.01 || v[0] < -100.01
        || v[1] < -100.01 || v[1] > v[0] + 0.01) { bad.push(`${k}: ${JSON.stringify(v)}`); break; }
    }
  }
  assert(bad.length === 0, `meters out of range (want -100 <= rms <= peak <= 0): ${bad.slice(0, 5).join('; ')}`);
  const frozen = [];
  for (const k of ['main/floor', 'main/ch/orig', 'main/ch/hy', 'workshop/floor']) {
    assert(series[k], `no meters for ${k}: ${Object.keys(series).join(' ')}`);
    const distinct = new Set(series[k].map((v) => v.join())).size;
    const maxPeak = Math.max(...series[k].map((v) => v[0]));
    if (distinct < 5) frozen.push(`${k} (${distinct} distinct in ${series[k].length}: ${[...new Set(series[k].map((v) => v.join('/')))].slice(0, 3).join(' ')})`);
    else assert(maxPeak > -50, `${k}: implausibly quiet for the demo's stage (max peak ${maxPeak.toFixed(1)} dBFS)`);
  }
  const moving = Object.entries(series).filter(([, vs]) => new Set(vs.map((v) => v.join())).size >= 5).map(([k]) => k);
  assert(frozen.length === 0, `meters do not move over 2 s: ${frozen.join('; ')}; moving: ${moving.join(' ')}; load ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  // The canvases really redraw: the main/orig meter's pixels change.
  const px = () => page.$eval(`${strip('main', 'orig')} canvas`, (c) => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let h = 0;
    for (let i = 0; i < d.length; i += 4) h = (h * 31 + d[i] + d[i + 1] * 3 + d[i + 2] * 7) >>> 0;
    return h;
  });
  const hashes = new Set();
  for (let i = 0; i < 6; i++) { hashes.add(await px()); await sleep(150); }
  assert(hashes.size >= 3, `meter canvas looks frozen (${hashes.size} distinct frames of 6)`);
  const stored = await page.evaluate(() => JSON.parse(sessionStorage.getItem('dragoman.control') || 'null'));
  assert(stored && stored.token === ADMIN_TOKEN, 'credentials not kept in sessionStorage');
  const fl = series['main/floor'];
  return `${m.length} meters msgs in 2 s, ${Object.keys(series).length} meters; main floor peak ${Math.min(...fl.map((v) => v[0])).toFixed(1)}…${Math.max(...fl.map((v) => v[0])).toFixed(1)} dBFS`;
});

// The server will send a CSP without 'unsafe-inline'; the page must not need it.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'";

test('works under a strict Content-Security-Policy (no inline script or style)', async () => {
  // A response fulfilled by route() has no IP address space, so Chromium's
  // Local Network Access checks would block its WebSocket to 127.0.0.1:
  // a separate browser with those checks off.
  const b = await launchBrowser(['--disable-features=LocalNetworkAccessChecks']);
  const p = await newPage(b, log, LAPTOP);
  await p.route('**/control', async (route) => {
    const res = await route.fetch();
    await route.fulfill({ response: res, headers: { ...res.headers(), 'content-security-policy': CSP } });
  });
  await p.addInitScript(() => {
    window.cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
  });
  await signIn(p, ADMIN_TOKEN, 'CSP check');
  await waitFor(p, () => window.dragomanControl && window.dragomanControl.state && window.dragomanControl.meters
    && document.querySelectorAll('.strip').length >= 9, null, 8000, 'state and meters under CSP');
  await sleep(500);
  const v = await p.evaluate(() => window.cspViolations);
  const cspHeader = await p.evaluate(async () => (await fetch('/')).headers.get('content-security-policy'));
  await b.close();
  assert(v.length === 0, `CSP violations: ${v.join('; ')}`);
  return `no violations under "${CSP.slice(0, 40)}…" (the server's own CSP on /: ${cspHeader || 'none yet'})`;
});

test('reload keeps the crew member signed in (sessionStorage), state shown again', async () => {
  await page.reload();
  await waitFor(page, () => window.dragomanControl.welcome && document.querySelectorAll('.room').length === 2, null, 5000, 'signed in again after reload');
  const formHidden = await page.evaluate(() => document.querySelector('#signin').hidden);
  assert(formHidden, 'sign-in form shown after reload');
  return 'ok';
});

// One try of the force-floor scenario. A failure on a stalled stream (the
// machine was starved: packets late by > 300 ms, or digital silence) is marked
// `stall`, and the test tries once more: with the audio behind the clock, an
// action applied "now" legitimately lands on audio the listener hears late.
async function forceFloorOnce() {
  const sel = strip('main', 'hy');
  // Start on a fresh on-air: the demo booth is on air 12 s of every 16, so
  // waiting for the switch to interpretation leaves ~11 s of hy on air.
  await waitFor(page, (s) => document.querySelector(s).dataset.mode !== 'interpretation', sel, 17000, 'main/hy off air');
  await waitFor(page, (s) => document.querySelector(s).dataset.mode === 'interpretation', sel, 17000, 'main/hy interpreting');
  const before = await page.evaluate(() => window.dragomanControl.results.length);
  const running = probe('hy', PROBE_SECONDS);
  await sleep(FORCE_AT_MS);
  const clickedAt = Date.now();
  await page.click(`${sel} button.force-floor`);
  await waitFor(page, (n) => window.dragomanControl.results.length > n, before, 5000, 'the force-floor result');
  const res = await page.evaluate((n) => ({ ...window.dragomanControl.results[n], receivedAt: Date.now() }), before);
  assert(res.type === 'force-floor' && res.ok && res.fields.value === true, `result ${JSON.stringify(res)}`);
  await waitFor(page, (s) => document.querySelector(s).dataset.mode === 'forced-floor', sel, 2000, 'strip mode forced-floor');
  const badge = await page.textContent(`${sel} .mode`);
  assert(/forced floor/i.test(badge), `mode badge "${badge}"`);
  const pressed = await page.getAttribute(`${sel} button.force-floor`, 'aria-pressed');
  assert(pressed === 'true', 'force floor button not pressed');
  const resultText = await page.textContent(`${sel} .result`);
  const { report, startedAt } = await running;
  assert(report.error_count === 0, `wsprobe errors: ${JSON.stringify(report.errors)}`);

  // Where the action falls in the probe's timeline: the listener's state
  // message "forced-floor" is the anchor; the wall clock gives a cross-check
  // (probe start + connect; the 60 ms connect burst shifts audio earlier).
  const tl = report.timeline;
  const texts = report.texts.map((t) => JSON.parse(t));
  const k = texts.findIndex((t) => t.state === 'forced-floor');
  const wallWin = Math.floor((res.receivedAt - startedAt) / 100);
  // On a loaded machine the stream can stall (windows then lag the wall
  // clock); say so in every failure, it is the first thing to rule out.
  let ctx = `timeline ${tl} (${tl.length} windows, max inter-arrival ${report.max_interarrival_ms} ms at ${report.max_interarrival_at_s} s, load ${os.loadavg().map((x) => x.toFixed(1)).join(' ')})`;
  const lvAll = Object.values(report.levels_db || {});
  const nSilent = [...tl].filter((c, i) => lvAll.length > 0 && lvAll.every((a) => a[i] < -100)).length;
  const stalled = report.max_interarrival_ms > 300 || nSilent >= 3 || tl.length < PROBE_SECONDS * 10 - 5;
  const check = (cond, msg) => {
    if (cond) return;
    const e = new Error(msg);
    e.stall = stalled;
    throw e;
  };
  check(k >= 0, `the listener got no forced-floor state message: ${JSON.stringify(report.texts)}; ${ctx}`);
  const anchor = report.text_windows[k];
  const hBefore = [...tl.slice(0, anchor)].filter((c) => c === 'h').length;
  const lastH = tl.lastIndexOf('h');
  const after = tl.slice(anchor + FADE_WINDOWS + 1);
  const foreign = [...tl.slice(anchor + 2)].filter((c) => c !== 'o' && c !== '.');
  const oAfter = [...after].filter((c) => c === 'o').length;
  // Windows where every ident is below -100 dBFS: digital silence (a stalled
  // pipeline fills with it), not speech masking the floor's tone.
  const lv = Object.values(report.levels_db || {});
  const silent = (i) => lv.length > 0 && lv.every((a) => a[i] < -100);
  const audible = [...after].filter((c, i) => !silent(anchor + FADE_WINDOWS + 1 + i)).length;
  const silence = [...tl].map((c, i) => (silent(i) ? 'S' : '-')).join('');
  Object.assign(measured, {
    timeline: tl, anchor, wallWin, lastH, actionMs: res.ms, clickToResultMs: res.receivedAt - clickedAt,
    afterFade: after, tones: report.tones,
  });
  check(hBefore >= 3, `hy's own tone barely heard before the action (${hBefore} windows); ${ctx}`);
  // Anything but the floor more than 100 ms after the result (the window
  // holding the state message, plus one) fails: hy's 9000 Hz must be gone.
  check(foreign.length === 0, `non-floor tones after window ${anchor + 1} (result at window ${anchor}): ${JSON.stringify(foreign.join(''))}; ${ctx}`);
  // After the 1 s fade the floor's 8000 Hz is heard (speech may mask it in
  // some windows, hence '.'; a stalled server shows up as a short timeline).
  ctx += `; silent windows ${silence}`;
  check(audible >= 10, `only ${audible} of ${after.length} windows after the fade carry any audio (the channel went silent: a stalled server?); ${ctx}`);
  check(oAfter >= 0.6 * audible, `after the 1 s fade the floor tone dominates only ${oAfter} of ${audible} audible windows; ${ctx}`);
  if (Math.abs(anchor - wallWin) > 3) log.push(`note: state message at window ${anchor}, wall clock says ~${wallWin}; ${ctx}`);

  // Release through the same button; the channel goes back to interpretation
  // (the booth is still on air) and the listener hears hy again.
  const n2 = await page.evaluate(() => window.dragomanControl.results.length);
  await page.click(`${sel} button.force-floor`);
  await waitFor(page, (n) => window.dragomanControl.results.length > n, n2, 5000, 'the release result');
  const rel = await page.evaluate((n) => window.dragomanControl.results[n], n2);
  assert(rel.ok && rel.fields.value === false, `release result ${JSON.stringify(rel)}`);
  await waitFor(page, (s) => document.querySelector(s).dataset.mode !== 'forced-floor', sel, 2000, 'mode back from forced-floor');
  const mode = await page.getAttribute(sel, 'data-mode');
  const back = await probe('hy', 2);
  measured.releaseTimeline = back.report.timeline;
  assert(mode !== 'interpretation' || back.report.timeline.includes('h'), `released, booth on air, but hy not heard: ${back.report.timeline}`);
  return `result ok in ${res.ms} ms ("${resultText}"); timeline ${tl} (state msg at window ${anchor}, wall clock ~${wallWin}, last 'h' at ${lastH}, max inter-arrival ${report.max_interarrival_ms} ms); after release mode ${mode}, ${back.report.timeline}`;
}

test('force floor on main/hy via the UI: the listener hears only the floor, then release', async () => {
  try {
    return await forceFloorOnce();
  } catch (e) {
    if (!e.stall) throw e;
    log.push(`force floor: first try failed on a stalled stream, retrying: ${e.message}`);
    console.log(`note: force floor: first try failed on a stalled stream (${os.loadavg()[0].toFixed(1)} load), retrying once`);
    const sel = strip('main', 'hy');
    if (await page.getAttribute(`${sel} button.force-floor`, 'aria-pressed') === 'true') {
      await page.click(`${sel} button.force-floor`);
      await waitFor(page, (s) => document.querySelector(s).dataset.mode !== 'forced-floor', sel, 5000, 'release before the retry');
    }
    return `(retried after a stall) ${await forceFloorOnce()}`;
  }
});

test('duck slider sends duck and the state follows', async () => {
  const sel = strip('main', 'en');
  const n = await page.evaluate(() => window.dragomanControl.results.length);
  await page.$eval(`${sel} .duck-slider`, (el) => { el.value = '-22'; el.dispatchEvent(new Event('input', { bubbles: true })); el.dispatchEvent(new Event('change', { bubbles: true })); });
  await waitFor(page, (k) => window.dragomanControl.results.length > k, n, 5000, 'the duck result');
  const r = await page.evaluate((k) => window.dragomanControl.results[k], n);
  assert(r.type === 'duck' && r.ok && r.fields.db === -22, `duck result ${JSON.stringify(r)}`);
  await waitFor(page, () => {
    const m = window.dragomanControl.state.rooms;
    const room = (Array.isArray(m) ? m : Object.entries(m).map(([id, v]) => ({ id, ...v }))).find((x) => x.id === 'main');
    const chs = Array.isArray(room.channels) ? room.channels : Object.entries(room.channels).map(([lang, v]) => ({ lang, ...v }));
    return Math.round(chs.find((c) => c.lang === 'en').duck_db) === -22;
  }, null, 3000, 'state duck_db -22');
  const shown = await page.textContent(`${sel} .duck-val`);
  // Put it back to the demo's -15 dB.
  await page.$eval(`${sel} .duck-slider`, (el) => { el.value = '-15'; el.dispatchEvent(new Event('change', { bubbles: true })); });
  return `duck -22 dB ok in ${r.ms} ms, shown "${shown}"`;
});

// build/boothpeer as interpreters (signalling only, no WebRTC: cheap).
function boothPeer(booth, name, args) {
  const url = `${server.url.replace('http', 'ws')}/ws/booth?room=workshop&booth=${booth}`;
  const proc = spawn(path.join(ROOT, 'build/boothpeer'), ['--url', url, '--token', `demo-${booth}-booth`, '--name', name,
    '--no-media', '--json', ...args], { cwd: ROOT });
  let out = '';
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', () => {});
  const done = new Promise((resolve) => proc.on('exit', (code) => {
    let report = null;
    try { report = JSON.parse(out); } catch { /* reported below */ }
    resolve({ code, report, out });
  }));
  return { proc, done };
}

test('booth actions from the UI: chat/slow-down feed, message, mute, on-air, kick', async () => {
  const sel = strip('workshop', 'ru');
  const anna = boothPeer('ru', 'Anna', ['--actions', '1:on-air=true,2:chat=hello crew,3:slow-down', '--seconds', '25']);
  await sleep(300);
  const boris = boothPeer('ru', 'Boris', ['--seconds', '25']);
  try {
    await waitFor(page, (s) => document.querySelectorAll(`${s} .interpreters button.kick`).length === 2
      && document.querySelector(`${s} .onair`).dataset.on === 'true', sel, 20000, 'Anna and Boris in workshop/ru, on air');
    await waitFor(page, () => window.dragomanControl.chat.some((c) => c.kind === 'slow-down')
      && window.dragomanControl.alerts.some((a) => a.kind === 'slow-down'), null, 8000, 'the chat and slow-down feed');
    const feed = await page.evaluate(() => window.dragomanControl.chat.filter((c) => c.room === 'workshop' && c.booth === 'ru'));
    assert(feed.some((c) => c.kind === 'chat' && c.from === 'Anna' && c.text === 'hello crew'), `chat missing: ${JSON.stringify(feed)}`);
    assert(feed.filter((c) => c.kind === 'slow-down').length === 1, `slow-down listed ${feed.filter((c) => c.kind === 'slow-down').length} times: ${JSON.stringify(feed)}`);
    const alertText = await page.textContent('#alerts');
    assert(/slow-down/.test(alertText) && /workshop\/ru/.test(alertText), `alerts list: "${alertText}"`);

    const n0 = await page.evaluate(() => window.dragomanControl.results.length);
    const result = async (n, what) => {
      await waitFor(page, (k) => window.dragomanControl.results.length > k, n, 5000, what);
      return page.evaluate((k) => window.dragomanControl.results[k], n);
    };
    await page.fill(`${sel} .msg-text`, 'New speaker in 2 minutes');
    await page.click(`${sel} button.send`);
    const msg = await result(n0, 'the message result');
    assert(msg.type === 'message' && msg.ok, `message result ${JSON.stringify(msg)}`);
    assert(await page.inputValue(`${sel} .msg-text`) === '', 'message box not cleared after ok');

    await page.click(`${sel} button.mute`);
    const mute = await result(n0 + 1, 'the mute result');
    assert(mute.ok && mute.fields.value === true, `mute result ${JSON.stringify(mute)}`);
    await waitFor(page, (s) => document.querySelector(`${s} button.mute`).getAttribute('aria-pressed') === 'true'
      && /MUTED/.test(document.querySelector(`${s} .flags`).textContent), sel, 3000, 'MUTED shown');
    await page.click(`${sel} button.mute`);
    const unmute = await result(n0 + 2, 'the unmute result');
    assert(unmute.ok && unmute.fields.value === false, `unmute result ${JSON.stringify(unmute)}`);

    // Kick is two clicks (a slip of the mouse must not cut an interpreter off).
    const kick = `${sel} .interpreters li:nth-child(2) button.kick`;
    const kickId = await page.getAttribute(kick, 'data-id');
    await page.click(kick);
    await sleep(200);
    const armed = await page.evaluate(() => window.dragomanControl.results.length);
    assert(armed === n0 + 3, 'the first click on Kick already sent the kick');
    await page.click(kick);
    const k = await result(n0 + 3, 'the kick result');
    assert(k.ok && k.fields.interpreter === kickId, `kick result ${JSON.stringify(k)}`);
    await waitFor(page, (s) => document.querySelectorAll(`${s} .interpreters button.kick`).length === 1, sel, 3000, 'one interpreter left');

    await page.click(`${sel} button.on-air`);
    const off = await result(n0 + 4, 'the on-air result');
    assert(off.ok && off.fields.value === false, `on-air result ${JSON.stringify(off)}`);
    await waitFor(page, (s) => document.querySelector(`${s} .onair`).dataset.on === 'false', sel, 3000, 'OFF AIR shown');

    const b = await boris.done;
    const got = (b.report?.messages || []).map((r) => r.msg);
    assert(got.some((m) => m.type === 'message' && m.text === 'New speaker in 2 minutes'), `Boris did not get the crew's message: ${b.out.slice(-400)}`);
    assert(b.report?.close_code === 4403 || got.some((m) => m.type === 'error' && m.code === 'kicked'), `Boris not kicked: close ${b.report?.close_code}`);
    const ms = (await page.evaluate((n) => window.dragomanControl.results.slice(n), n0)).map((r) => `${r.type} ${r.ms}`).join(', ');
    return `feed ${feed.length} items; results ok (ms): ${ms}; Boris closed ${b.report?.close_code}`;
  } finally {
    boris.proc.kill('SIGTERM');
    // Anna stays for the screenshot; her --seconds ends her.
    void anna;
  }
});

test('screenshot with moving meters', async () => {
  await waitFor(page, () => window.dragomanControl.meters && document.querySelectorAll('.strip').length >= 9, null, 5000, 'strips');
  await page.evaluate(() => window.scrollTo(0, 0));
  await sleep(800); // let the meters settle into motion
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, 'control.png');
  await page.screenshot({ path: file, fullPage: true });
  const size = fs.statSync(file).size;
  assert(size > 20000, `screenshot only ${size} bytes`);
  return `${path.relative(ROOT, file)} (${Math.round(size / 1024)} KiB)`;
});

test('/ws/control traffic for one crew member over 10 s', async () => {
  const r = await page.evaluate(async () => {
    const s = window.dragomanControl.stats;
    const snap = () => JSON.parse(JSON.stringify({ rx: s.rx, tx: s.tx, byType: s.byType, t: performance.now() }));
    const a = snap();
    await new Promise((res) => setTimeout(res, 10000));
    const b = snap();
    const sec = (b.t - a.t) / 1000;
    const byType = {};
    for (const [t, v] of Object.entries(b.byType)) {
      const o = a.byType[t] || { bytes: 0, msgs: 0 };
      if (v.msgs > o.msgs) byType[t] = { bytesPerS: (v.bytes - o.bytes) / sec, msgsPerS: (v.msgs - o.msgs) / sec, avgBytes: (v.bytes - o.bytes) / (v.msgs - o.msgs) };
    }
    return { sec, rxBps: (b.rx.bytes - a.rx.bytes) / sec, rxMps: (b.rx.msgs - a.rx.msgs) / sec, txBps: (b.tx.bytes - a.tx.bytes) / sec, byType };
  });
  measured.traffic = r;
  const f = (x) => x.toFixed(0);
  const parts = Object.entries(r.byType).map(([t, v]) => `${t} ${f(v.bytesPerS)} B/s (${v.msgsPerS.toFixed(1)}/s × ${f(v.avgBytes)} B)`);
  assert(r.byType.meters && r.byType.meters.msgsPerS > 6 && r.byType.meters.msgsPerS < 20, `meters rate ${r.byType.meters?.msgsPerS}/s (want ~12)`);
  assert(r.byType.state && r.byType.state.msgsPerS >= 0.7, `state rate ${r.byType.state?.msgsPerS}/s (want >= 1)`);
  return `rx ${f(r.rxBps)} B/s (${(r.rxBps * 8 / 1000).toFixed(1)} kbit/s, ${r.rxMps.toFixed(1)} msgs/s), tx ${f(r.txBps)} B/s; ${parts.join('; ')}`;
});

test('server restart: the page marks itself stale, reconnects and signs in again by itself', async () => {
  if (server.external) return 'skipped (external server)';
  await page.evaluate(() => { window.preRestartState = window.dragomanControl.state; });
  await stopServer(server);
  await waitFor(page, () => document.body.classList.contains('stale') && /Reconnecting|No update/.test(document.querySelector('#conn').textContent),
    null, 5000, 'the stale/reconnecting state');
  const stale = await page.textContent('#conn');
  server = await startServer({ port: server.port, name: 'dragoman-control' });
  const t0 = Date.now();
  await waitFor(page, () => !document.body.classList.contains('stale') && window.dragomanControl.ws
    && window.dragomanControl.welcome && window.dragomanControl.state !== window.preRestartState
    && document.querySelector('#signin').hidden, null, 15000, 'signed in again with a fresh state');
  return `"${stale}", back ${Date.now() - t0} ms after /healthz`;
});

let code = 1;
try {
  server = await startServer({ name: 'dragoman-control' });
  browser = await launchBrowser();
  code = await run('control', tests);
  if (measured.traffic) {
    const t = measured.traffic;
    console.log(`control summary: /ws/control ${Math.round(t.rxBps)} B/s down (${(t.rxBps * 8 / 1000).toFixed(1)} kbit/s), ${Math.round(t.txBps)} B/s up; force-floor result ${measured.actionMs ?? 'n/a'} ms`);
  }
} catch (e) {
  console.log(`control: setup failed: ${e.stack || e}`);
  console.log('control: 0 passed, 1 failed');
} finally {
  if (code && log.length) console.log(`page log (last 20):\n${log.slice(-20).join('\n')}`);
  if (code && server && !server.external) console.log(`server log (last 20):\n${server.logTail(20)}`);
  if (browser) await browser.close().catch(() => {});
  if (server) await stopServer(server).catch(() => {});
}
process.exit(code);
