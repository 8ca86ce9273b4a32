// Stage-lost alert on the control page, end to end (issue #5): a real encoder
// (ffmpeg: lavfi test pattern + sine, H.264 + AAC in MPEG-TS over SRT, as
// tests/integration/stage.py sends it) feeds configs/conference.ini's main
// room; the AV crew's page, signed in, must show the stage as lost and raise
// the stage-lost alert within 2 s of the sender being SIGKILLed, and show the
// stage live again, alert cleared, once a new sender connects.
//
// Figures: page times are the page's Date.now() when the DOM first shows the
// condition (a MutationObserver); the kill/restart times are this process's
// Date.now() (same host clock). For a failure the test also prints when the
// server logged the change and when the page's WebSocket got the messages.
//
// Run from the repo root: `node tests/browser/stage-alert.test.mjs` (the
// Makefile runs it under `unshare -n` with only loopback up). Artifacts:
// build/test-artifacts/stage-alert.png and the server log.

import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import path from 'node:path';
import {
  ARTIFACTS, ROOT, assert, launchBrowser, newPage, run, sleep, startServer, stopServer,
} from './lib.mjs';

const ADMIN_TOKEN = 'stage-alert-test-token'; // set with --set server.admin-token
const LAPTOP = { viewport: { width: 1440, height: 900 }, deviceScaleFactor: 1 };
const LOST_MAX_MS = 2000; // issue #5: the crew sees the loss within 2 s
const BACK_MAX_MS = 10000; // generous: a new SRT caller, then the next state message
// The encoder restarts as OBS would (its reconnect delay is 2 s): stage.c resets
// srtsrc 1 s after the last packet, so a caller from then on is taken at once
// (srtsrc alone kept the dead connection for SRT's 5 s peer idle timeout and
// then dropped any caller waiting; tests/integration/stage.py checks that).
const RESTART_AFTER_KILL_MS = 1500;
const STAGE = '.room[data-room="main"] .stage';

let server;
let browser;
let page;
let srtPort;
let sender = null; // the running ffmpeg, if any
const senders = new Set(); // every ffmpeg started, killed on exit
const log = [];
const measured = {};

const tests = [];
const test = (name, fn) => tests.push([name, fn]);

// ---- helpers ---------------------------------------------------------------

async function udpPortIsFree(port) {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    s.once('error', () => { s.close(); resolve(false); });
    s.bind(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

async function freeUdpPort(base = 20000, span = 2000) {
  for (let i = 0; i < 50; i++) {
    const port = base + Math.floor(Math.random() * span);
    if (await udpPortIsFree(port)) return port;
  }
  throw new Error('no free UDP port found');
}

// ffmpeg as the AV crew's encoder: small and light (320x180, 25 fps).
function startSender(port) {
  const args = ['-hide_banner', '-loglevel', 'error', '-nostdin', '-re',
    '-f', 'lavfi', '-i', 'testsrc=size=320x180:rate=25',
    '-f', 'lavfi', '-i', 'sine=frequency=1000:sample_rate=48000',
    '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-g', '50', '-pix_fmt', 'yuv420p',
    '-b:v', '300k', '-c:a', 'aac', '-b:a', '64k', '-t', '120',
    '-f', 'mpegts', `srt://127.0.0.1:${port}?mode=caller`];
  const proc = spawn('ffmpeg', args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  const s = { proc, startedAt: Date.now(), exited: null, err: '' };
  proc.stderr.on('data', (d) => { s.err = (s.err + d).slice(-2000); });
  proc.on('exit', (code, sig) => { s.exited = { code, sig }; senders.delete(s); });
  proc.on('error', (e) => { s.exited = { error: String(e) }; senders.delete(s); });
  senders.add(s);
  return s;
}

async function killSender(s, sig = 'SIGKILL') {
  if (!s || s.exited) return;
  s.proc.kill(sig);
  const deadline = Date.now() + 3000;
  while (!s.exited && Date.now() < deadline) await sleep(10);
}

process.on('exit', () => { for (const s of senders) try { s.proc.kill('SIGKILL'); } catch { /* gone */ } });

async function apiStage() {
  try {
    const res = await fetch(`${server.url}/api/v1/rooms`, { signal: AbortSignal.timeout(1000) });
    const j = await res.json();
    return (j.rooms || []).find((r) => r.id === 'main')?.stage?.state ?? null;
  } catch {
    return null;
  }
}

// Starts a sender and waits until /api/v1/rooms says the main stage is live.
// A caller that could not connect (ffmpeg exits) is started again, twice at most.
async function senderUntilLive(timeoutMs) {
  const t0 = Date.now();
  let tries = 0;
  while (Date.now() - t0 < timeoutMs) {
    if (!sender || sender.exited) {
      if (sender?.exited) log.push(`ffmpeg exited before live: ${JSON.stringify(sender.exited)} ${sender.err.trim()}`);
      if (tries++ >= 3) break;
      sender = startSender(srtPort);
    }
    if (await apiStage() === 'live') return { ms: Date.now() - t0, tries };
    await sleep(50);
  }
  throw new Error(`the main stage is not live ${Date.now() - t0} ms after starting ffmpeg (${tries} start(s)); `
    + `api says ${await apiStage()}; ffmpeg ${JSON.stringify(sender?.exited)} ${sender?.err.trim() || ''}`);
}

// Lines the server writes when the stage changes, with the time this process
// first saw them in the log (polled every 20 ms: diagnostics, not the figure).
function watchServerLog(file) {
  const w = { lines: [], offset: fs.statSync(file).size, timer: null, partial: '' };
  w.timer = setInterval(() => {
    let fd;
    try {
      fd = fs.openSync(file, 'r');
      const size = fs.fstatSync(fd).size;
      if (size <= w.offset) return;
      const buf = Buffer.alloc(size - w.offset);
      fs.readSync(fd, buf, 0, buf.length, w.offset);
      w.offset = size;
      const text = w.partial + buf.toString('utf8');
      const parts = text.split('\n');
      w.partial = parts.pop();
      const t = Date.now();
      for (const line of parts) if (/stage|ALERT|error/i.test(line)) w.lines.push({ t, line });
    } catch { /* next time */ } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
  }, 20);
  w.stop = () => clearInterval(w.timer);
  // lines seen from `from` on, stamped relative to t0
  w.since = (from, t0) => w.lines.filter((l) => l.t >= from).map((l) => `${l.t - t0 >= 0 ? '+' : ''}${l.t - t0} ms ${l.line}`);
  return w;
}

// In the page, before control.js runs: note each state/alert message as it
// arrives (main's stage state and the alert ids), for the failure report.
function instrumentWebSocket() {
  window.__wsLog = [];
  const Orig = window.WebSocket;
  window.WebSocket = class extends Orig {
    constructor(...a) {
      super(...a);
      this.addEventListener('message', (e) => {
        if (typeof e.data !== 'string') return;
        let m;
        try { m = JSON.parse(e.data); } catch { return; }
        const t = Date.now();
        if (m.type === 'state') {
          const main = (Array.isArray(m.rooms) ? m.rooms : []).find((r) => r.id === 'main');
          window.__wsLog.push({ t, type: 'state', stage: main?.stage?.state, alerts: (m.alerts || []).map((x) => x.id) });
        } else if (m.type === 'alert') {
          window.__wsLog.push({ t, type: 'alert', id: m.alert?.id });
        }
        if (window.__wsLog.length > 500) window.__wsLog.shift();
      });
    }
  };
}

// In the page: the first time (Date.now()) each armed condition holds in the
// DOM, noted by a MutationObserver on the whole document.
function installMarks(stageSel) {
  const stageState = () => document.querySelector(stageSel)?.dataset.state;
  const alertShown = () => [...document.querySelectorAll('#alerts li[data-kind="stage-lost"][data-active="true"]')]
    .some((li) => li.querySelector('.alert-where')?.textContent === 'main');
  const preds = {
    badgeLost: () => stageState() === 'lost',
    alertShown,
    badgeLive: () => stageState() === 'live',
    alertCleared: () => !alertShown(),
  };
  window.__marks = {};
  const armed = new Set();
  const check = () => {
    const t = Date.now();
    for (const k of armed) if (!(k in window.__marks) && preds[k]()) window.__marks[k] = t;
  };
  new MutationObserver(check).observe(document.documentElement,
    { subtree: true, childList: true, attributes: true, characterData: true });
  window.__arm = (names) => {
    for (const n of names) { delete window.__marks[n]; armed.add(n); }
    check();
  };
}

async function waitFor(p, fn, arg, timeout, what) {
  try {
    await p.waitForFunction(fn, arg, { timeout, polling: 50 });
  } catch {
    const conn = await p.textContent('#conn').catch(() => '?');
    const err = await p.textContent('#signin-error').catch(() => '?');
    throw new Error(`timed out after ${timeout} ms waiting for ${what}; #conn "${conn}", #signin-error "${err}"`);
  }
}

async function pageSnapshot(p) {
  return p.evaluate((sel) => ({
    stage: document.querySelector(sel)?.outerHTML ?? null,
    alerts: document.querySelector('#alerts')?.outerHTML ?? null,
    conn: document.querySelector('#conn')?.textContent ?? null,
  }), STAGE).catch((e) => ({ error: String(e) }));
}

// Everything known about a transition, for a failure message.
async function report(t0, serverLog) {
  const wsLog = await page.evaluate((t) => window.__wsLog.filter((m) => m.t >= t - 1500), t0).catch(() => []);
  const ws = wsLog.map((m) => `${m.t - t0 >= 0 ? '+' : ''}${m.t - t0} ms ${m.type} ${m.type === 'state' ? `stage=${m.stage} alerts=[${m.alerts}]` : m.id}`);
  return `\n  server log:\n    ${serverLog.since(t0 - 1500, t0).join('\n    ') || '(nothing)'}`
    + `\n  /ws/control messages:\n    ${ws.join('\n    ') || '(none)'}`
    + `\n  page now: ${JSON.stringify(await pageSnapshot(page))}`;
}

// ---- tests -----------------------------------------------------------------

test('ffmpeg over SRT: /api/v1/rooms says the main stage is live', async () => {
  const before = await apiStage();
  assert(before === 'lost', `before any sender the stage should be lost, api says ${before}`);
  const r = await senderUntilLive(15000);
  measured.firstLiveMs = r.ms;
  return `live ${r.ms} ms after starting ffmpeg (${r.tries} start${r.tries === 1 ? '' : 's'}), SRT port ${srtPort}`;
});

test('control page: signed in, the main stage shown live, no stage-lost alert', async () => {
  page = await newPage(browser, log, LAPTOP);
  await page.addInitScript(instrumentWebSocket);
  await page.goto(`${server.url}/control`);
  await page.fill('#token', ADMIN_TOKEN);
  await page.fill('#name', 'Stage alert test');
  await page.click('#signin-btn');
  await waitFor(page, (sel) => window.dragomanControl.welcome && window.dragomanControl.state
    && document.querySelector(sel), STAGE, 5000, 'sign-in and the first state');
  // The first state may still list the alert raised while nobody was sending
  // (alerts are evaluated once a second): give it a couple of states to clear.
  await waitFor(page, (sel) => document.querySelector(sel).dataset.state === 'live'
    && !document.querySelector('#alerts li[data-kind="stage-lost"][data-active="true"]'), STAGE, 3000,
  'the main stage live with no active stage-lost alert');
  await page.evaluate(installMarks, STAGE);
  const badge = await page.textContent(STAGE);
  assert(/^stage: live/.test(badge), `stage badge "${badge}"`);
  return `badge "${badge}"`;
});

test(`SIGKILL the sender: stage lost and the stage-lost alert on the page within ${LOST_MAX_MS} ms`, async () => {
  assert(sender && !sender.exited, `ffmpeg not running: ${JSON.stringify(sender?.exited)}`);
  const serverLog = watchServerLog(server.logFile);
  try {
    await page.evaluate(() => window.__arm(['badgeLost', 'alertShown']));
    await sleep(300); // the watcher's first poll
    const tKill = Date.now();
    measured.tKill = tKill;
    await killSender(sender, 'SIGKILL');
    // Wait well past the threshold so a slow page is measured, not just failed.
    try {
      await page.waitForFunction(() => 'badgeLost' in window.__marks && 'alertShown' in window.__marks, null,
        { timeout: LOST_MAX_MS + 4000, polling: 50 });
    } catch { /* reported below */ }
    const marks = await page.evaluate(() => ({ ...window.__marks }));
    const badgeMs = marks.badgeLost ? marks.badgeLost - tKill : null;
    const alertMs = marks.alertShown ? marks.alertShown - tKill : null;
    const serverLost = serverLog.lines.find((l) => l.t >= tKill && /room main: stage lost/.test(l.line));
    const alertMsg = await page.evaluate((t) => window.__wsLog.find((m) => m.t >= t && m.type === 'alert'
      && m.id === 'stage-lost:main/'), tKill);
    measured.lost = { badgeMs, alertMs, serverMs: serverLost ? serverLost.t - tKill : null,
      wsAlertMs: alertMsg ? alertMsg.t - tKill : null };
    const worst = badgeMs === null || alertMs === null ? null : Math.max(badgeMs, alertMs);
    const figures = `badge "lost" ${badgeMs ?? 'never'} ms, alert shown ${alertMs ?? 'never'} ms after SIGKILL `
      + `(server logged the loss at ~${measured.lost.serverMs ?? '?'} ms, alert message at ${measured.lost.wsAlertMs ?? '?'} ms)`;
    console.log(`  measured: ${figures}`);
    if (worst === null || worst > LOST_MAX_MS) {
      throw new Error(`stage loss not shown within ${LOST_MAX_MS} ms: ${figures}${await report(tKill, serverLog)}`);
    }
    const text = await page.textContent('#alerts li[data-kind="stage-lost"][data-active="true"] .alert-msg');
    assert(/stage lost/.test(text), `alert text "${text}"`);
    const badge = await page.textContent(STAGE);
    const api = await apiStage();
    assert(api === 'lost', `/api/v1/rooms says ${api} while the page says lost`);
    return `${figures}; "${text}"; badge "${badge}"`;
  } finally {
    serverLog.stop();
  }
});

test(`a new sender: stage live again and the alert cleared within ${BACK_MAX_MS} ms`, async () => {
  const serverLog = watchServerLog(server.logFile);
  try {
    await page.evaluate(() => window.__arm(['badgeLive', 'alertCleared']));
    const wait = (measured.tKill ?? 0) + RESTART_AFTER_KILL_MS - Date.now();
    if (wait > 0) await sleep(wait);
    const afterKill = measured.tKill ? Date.now() - measured.tKill : null;
    const tStart = Date.now();
    sender = startSender(srtPort);
    try {
      await page.waitForFunction(() => 'badgeLive' in window.__marks && 'alertCleared' in window.__marks, null,
        { timeout: BACK_MAX_MS, polling: 50 });
    } catch { /* reported below */ }
    const marks = await page.evaluate(() => ({ ...window.__marks }));
    const liveMs = marks.badgeLive ? marks.badgeLive - tStart : null;
    const clearedMs = marks.alertCleared ? marks.alertCleared - tStart : null;
    const serverLive = serverLog.lines.find((l) => l.t >= tStart && /room main: stage is live/.test(l.line));
    measured.back = { liveMs, clearedMs, serverMs: serverLive ? serverLive.t - tStart : null };
    const figures = `badge "live" ${liveMs ?? 'never'} ms, alert cleared ${clearedMs ?? 'never'} ms after starting `
      + `ffmpeg ${afterKill ?? '?'} ms after the kill (server logged live at ~${measured.back.serverMs ?? '?'} ms)`;
    console.log(`  measured: ${figures}`);
    if (liveMs === null || clearedMs === null || Math.max(liveMs, clearedMs) > BACK_MAX_MS) {
      throw new Error(`stage not shown live again within ${BACK_MAX_MS} ms: ${figures}; ffmpeg `
        + `${JSON.stringify(sender.exited)} ${sender.err.trim()}${await report(tStart, serverLog)}`);
    }
    const cleared = await page.evaluate(() => ({
      active: window.dragomanControl.alerts.filter((a) => a.kind === 'stage-lost').length,
      shownCleared: document.querySelectorAll('#alerts li[data-kind="stage-lost"][data-active="false"]').length,
    }));
    assert(cleared.active === 0, `${cleared.active} stage-lost alert(s) still active in window.dragomanControl.alerts`);
    const api = await apiStage();
    assert(api === 'live', `/api/v1/rooms says ${api} while the page says live`);
    return `${figures}; badge "${await page.textContent(STAGE)}"; the alert listed as cleared: ${cleared.shownCleared > 0}`;
  } finally {
    serverLog.stop();
  }
});

test('screenshot', async () => {
  await page.evaluate(() => window.scrollTo(0, 0));
  await sleep(300);
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, 'stage-alert.png');
  await page.screenshot({ path: file, fullPage: true });
  const size = fs.statSync(file).size;
  assert(size > 20000, `screenshot only ${size} bytes`);
  return `${path.relative(ROOT, file)} (${Math.round(size / 1024)} KiB)`;
});

// ---- main --------------------------------------------------------------------

let code = 1;
try {
  if (process.env.DRAGOMAN_TEST_URL) throw new Error('needs its own server (SRT stage): unset DRAGOMAN_TEST_URL');
  srtPort = await freeUdpPort();
  server = await startServer({
    config: 'configs/conference.ini',
    name: 'dragoman-stage-alert',
    set: { 'server.admin-token': ADMIN_TOKEN, 'stage main.port': srtPort },
  });
  browser = await launchBrowser();
  code = await run('stage-alert', tests);
} catch (e) {
  console.log(`stage-alert: setup failed: ${e.stack || e}`);
  console.log('stage-alert: 0 passed, 1 failed');
} finally {
  if (code && log.length) console.log(`page log (last 20):\n${log.slice(-20).join('\n')}`);
  if (code && server) console.log(`server log (last 20):\n${server.logTail(20)}`);
  for (const s of [...senders]) await killSender(s, 'SIGTERM').catch(() => {});
  for (const s of [...senders]) await killSender(s, 'SIGKILL').catch(() => {});
  if (browser) await browser.close().catch(() => {});
  if (server) await stopServer(server).catch(() => {});
}
process.exit(code);
