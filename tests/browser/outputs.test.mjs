// Control page outputs panel (issues #5 and #7), end to end in a real
// Chromium against the demo config: the room's recording ([record main],
// autostart off) and a restream added with --set that points at a closed
// local port, so it can only retry. The crew starts and stops both from the
// page; stopping a live output goes through the in-page confirm dialog.
//
// Run from the repo root: `node tests/browser/outputs.test.mjs` (under
// `unshare -n` with only loopback up, like the other browser tests).
// Artifacts: build/test-artifacts/control-outputs.png (+ -confirm.png) and
// the server log.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  ARTIFACTS, ROOT, assert, freePort, launchBrowser, newPage, run, sleep, startServer, stopServer,
} from './lib.mjs';

const ADMIN_TOKEN = 'demo-admin-token'; // configs/demo.ini [server] admin-token
const KEY = 'test-key-123456';
const LAPTOP = { viewport: { width: 1440, height: 900 }, deviceScaleFactor: 1 };

let server;
let browser;
let page;
let recDir;
let deadPort;
const log = [];
const measured = {};

const tests = [];
const test = (name, fn) => tests.push([name, fn]);

const card = (room, name) => `.output[data-room="${room}"][data-name="${name}"]`;
const REC = card('main', 'record');
const YT = card('main', 'yt');

async function waitFor(p, fn, arg, timeout, what) {
  try {
    await p.waitForFunction(fn, arg, { timeout, polling: 100 });
  } catch {
    const info = await p.evaluate(() => [...document.querySelectorAll('.output')].map((el) => `${el.dataset.room}/${el.dataset.name}: ${el.innerText.replace(/\s+/g, ' ')}`).join(' | ')).catch(() => '?');
    const conn = await p.textContent('#conn').catch(() => '?');
    throw new Error(`timed out after ${timeout} ms waiting for ${what}; #conn "${conn}"; outputs: ${info}`);
  }
}

// What the page shows for one output card.
const view = (sel) => page.$eval(sel, (el) => ({
  state: el.dataset.state,
  badge: el.querySelector('.out-state').textContent,
  since: el.querySelector('.out-since').textContent,
  name: el.querySelector('.out-name').textContent,
  kind: el.querySelector('.out-kind').textContent,
  target: el.querySelector('.out-target-val').textContent,
  stats: el.querySelector('.out-stats').innerText.replace(/\s+/g, ' ').trim(),
  file: el.querySelector('.out-file').hidden ? null : el.querySelector('.out-file').textContent,
  error: el.querySelector('.out-error').hidden ? null : el.querySelector('.out-error').textContent,
  button: el.querySelector('.out-toggle').textContent,
  label: el.querySelector('.out-toggle').getAttribute('aria-label'),
  alert: el.dataset.alert,
  result: el.querySelector('.result').textContent,
}));

const nResults = () => page.evaluate(() => window.dragomanControl.results.length);
async function resultAfter(n, what) {
  await waitFor(page, (k) => window.dragomanControl.results.length > k, n, 6000, what);
  return page.evaluate((k) => window.dragomanControl.results[k], n);
}

// The full stream key must appear nowhere in the DOM: text, attributes, values.
const keyLeaks = () => page.evaluate((key) => {
  const where = [];
  if (document.body.innerText.includes(key)) where.push('body.innerText');
  if (document.documentElement.outerHTML.includes(key)) where.push('outerHTML');
  for (const el of document.querySelectorAll('*')) {
    for (const a of el.attributes) if (a.value.includes(key)) where.push(`${el.tagName.toLowerCase()}[${a.name}]`);
    if ('value' in el && typeof el.value === 'string' && el.value.includes(key)) where.push(`${el.tagName.toLowerCase()}.value`);
  }
  return where;
}, KEY);

test('sign in: main lists the recording and the restream, both stopped; workshop has none', async () => {
  page = await newPage(browser, log, LAPTOP);
  await page.addInitScript(() => {
    window.cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
  });
  const res = await page.goto(`${server.url}/control`);
  measured.csp = res.headers()['content-security-policy'] || null;
  await page.fill('#token', ADMIN_TOKEN);
  await page.fill('#name', 'Outputs test');
  await page.click('#signin-btn');
  await waitFor(page, (s) => document.querySelectorAll('.room').length === 2 && document.querySelector(s[0])
    && document.querySelector(s[1]), [REC, YT], 8000, 'both rooms with the recording and the restream');
  const rec = await view(REC);
  const yt = await view(YT);
  assert(rec.state === 'stopped' && /^stopped$/i.test(rec.badge.trim()), `recording: ${JSON.stringify(rec)}`);
  assert(yt.state === 'stopped' && /^stopped$/i.test(yt.badge.trim()), `restream: ${JSON.stringify(yt)}`);
  assert(rec.name === 'Recording' && rec.target === recDir, `recording name/target: ${JSON.stringify(rec)}`);
  assert(yt.name === 'yt' && /RTMP/.test(yt.kind) && /HY/i.test(yt.kind), `restream name/kind: ${JSON.stringify(yt)}`);
  assert(yt.target === `rtmp://127.0.0.1:${deadPort}/live/test…`, `restream target (masked by the server): "${yt.target}"`);
  assert(rec.button === 'Start' && yt.button === 'Start', `buttons: ${rec.button} / ${yt.button}`);
  assert(/Start recording/.test(rec.label) && /Start restream yt/.test(yt.label), `button labels: "${rec.label}" / "${yt.label}"`);
  assert(/for \d/.test(rec.since), `recording: no time in state: "${rec.since}"`);
  const ws = await page.evaluate(() => {
    const r = document.querySelector('.room[data-room="workshop"] .outputs');
    return { hidden: r.hidden, cards: r.querySelectorAll('.output').length, text: r.innerText };
  });
  assert(!ws.hidden && ws.cards === 0 && /none configured/i.test(ws.text), `workshop outputs: ${JSON.stringify(ws)}`);
  const leaks = await keyLeaks();
  assert(leaks.length === 0, `the stream key is in the DOM: ${leaks.join(', ')}`);
  return `recording "${rec.stats}", restream → ${yt.target}`;
});

test('Start the recording: live within 5 s with its file shown', async () => {
  const n = await nResults();
  const t0 = Date.now();
  await page.click(`${REC} .out-toggle`);
  const r = await resultAfter(n, 'the record result');
  assert(r.type === 'record' && r.ok && r.fields.value === true && r.fields.room === 'main', `record result ${JSON.stringify(r)}`);
  const open = await page.evaluate(() => document.querySelector('#confirm').open);
  assert(!open, 'Start opened the confirm dialog');
  await waitFor(page, (s) => document.querySelector(s).dataset.state === 'live'
    && /\.mkv/.test(document.querySelector(`${s} .out-file`).textContent), REC, 5000 - (Date.now() - t0), 'recording live with a file');
  measured.recLiveMs = Date.now() - t0;
  const v = await view(REC);
  assert(/^live$/i.test(v.badge.trim()) && v.button === 'Stop', `recording live: ${JSON.stringify(v)}`);
  assert(v.file.includes(recDir) && /writing/.test(v.file), `file "${v.file}" not in ${recDir}`);
  const color = await page.$eval(`${REC} .out-state`, (el) => getComputedStyle(el).backgroundColor);
  assert(color === 'rgb(63, 185, 80)', `live badge colour ${color} (want the page's green)`);
  const said = await page.textContent('.room[data-room="main"] .outputs-announce');
  assert(/Recording live/.test(said), `live region: "${said}"`);
  // Let some data flow so the rate is shown.
  await waitFor(page, (s) => /[1-9]\d* kbit\/s/.test(document.querySelector(`${s} .out-kbps`).textContent), REC, 6000, 'a bit rate');
  const v2 = await view(REC);
  return `live ${measured.recLiveMs} ms after the click (result in ${r.ms} ms); ${v2.file}; ${v2.stats}`;
});

test('Stop the live recording: confirm (Escape keeps it), then stopped and a .mkv on disk', async () => {
  const n = await nResults();
  // Keyboard: focus the button, Enter opens the confirm with "Keep it running" focused.
  await page.focus(`${REC} .out-toggle`);
  await page.keyboard.press('Enter');
  await waitFor(page, () => document.querySelector('#confirm').open, null, 2000, 'the confirm dialog');
  const dlg = await page.evaluate(() => ({
    focused: document.activeElement?.id, title: document.querySelector('#confirm-title').textContent,
    text: document.querySelector('#confirm-text').textContent, modal: document.querySelector('#confirm').matches(':modal'),
  }));
  assert(dlg.modal && dlg.focused === 'confirm-keep', `dialog: ${JSON.stringify(dlg)}`);
  assert(/Stop recording/.test(dlg.title), `dialog title "${dlg.title}"`);
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, 'control-outputs-confirm.png') });
  await page.keyboard.press('Escape');
  await waitFor(page, () => !document.querySelector('#confirm').open, null, 2000, 'the dialog closed by Escape');
  await sleep(300);
  assert(await nResults() === n, 'Escape sent an action');
  const back = await page.evaluate(() => document.activeElement?.classList.contains('out-toggle'));
  assert(back, 'focus did not return to the Stop button');
  assert((await view(REC)).state === 'live', 'recording not live after Escape');

  await page.click(`${REC} .out-toggle`);
  await waitFor(page, () => document.querySelector('#confirm').open, null, 2000, 'the confirm dialog');
  assert(await nResults() === n, 'the first click on Stop already sent the stop');
  await page.click('#confirm-stop');
  const r = await resultAfter(n, 'the stop result');
  assert(r.type === 'record' && r.ok && r.fields.value === false, `stop result ${JSON.stringify(r)}`);
  await waitFor(page, (s) => document.querySelector(s).dataset.state === 'stopped', REC, 5000, 'recording stopped');
  const v = await view(REC);
  assert(/^stopped$/i.test(v.badge.trim()) && v.button === 'Start', `stopped: ${JSON.stringify(v)}`);
  const files = fs.readdirSync(recDir).filter((f) => f.endsWith('.mkv')).map((f) => [f, fs.statSync(path.join(recDir, f)).size]);
  assert(files.length >= 1 && files.every(([, s]) => s > 10000), `.mkv in ${recDir}: ${JSON.stringify(files)}`);
  return `stop ok in ${r.ms} ms; ${files.map(([f, s]) => `${f} ${Math.round(s / 1024)} KiB`).join(', ')}; page: "${v.file}"`;
});

test('a refused Start shows the server\'s error on the card and in Actions', async () => {
  // The recording directory replaced by a plain file: the server cannot create it.
  const saved = `${recDir}.saved`;
  fs.renameSync(recDir, saved);
  fs.writeFileSync(recDir, 'not a directory');
  try {
    const n = await nResults();
    await page.click(`${REC} .out-toggle`);
    const r = await resultAfter(n, 'the refused record result');
    assert(r.type === 'record' && !r.ok && r.error, `expected a refusal, got ${JSON.stringify(r)}`);
    const v = await view(REC);
    assert(v.result.includes(r.error) && v.result.startsWith('✗'), `card result "${v.result}" (error "${r.error}")`);
    const kind = await page.getAttribute(`${REC} .result`, 'data-kind');
    assert(kind === 'error', `card result kind ${kind}`);
    const top = await page.textContent('#actions li:first-child');
    assert(top.includes(r.error), `actions list: "${top}"`);
    await sleep(1200); // a state or two: the button must be usable again, the recording not running
    const after = await view(REC);
    const dis = await page.getAttribute(`${REC} .out-toggle`, 'aria-disabled');
    assert(dis === 'false' && after.button === 'Start', `after the refusal: ${JSON.stringify(after)}, aria-disabled ${dis}`);
    return `"${r.error}" shown; state ${after.state}`;
  } finally {
    fs.rmSync(recDir, { force: true });
    fs.renameSync(saved, recDir);
  }
});

test('Start the restream to a closed port: retrying with an error and reconnects, key never in the DOM; Stop', async () => {
  const n = await nResults();
  const t0 = Date.now();
  await page.click(`${YT} .out-toggle`);
  const r = await resultAfter(n, 'the restream result');
  assert(r.type === 'restream' && r.ok && r.fields.name === 'yt' && r.fields.value === true, `restream result ${JSON.stringify(r)}`);
  await waitFor(page, (s) => {
    const el = document.querySelector(s);
    const rc = Number((el.querySelector('.out-reconnects').textContent.match(/(\d+) reconnect/) || [])[1]);
    return el.dataset.state === 'retrying' && !el.querySelector('.out-error').hidden
      && el.querySelector('.out-error').textContent.length > 0 && rc >= 1;
  }, YT, 10000 - (Date.now() - t0), 'restream retrying with an error and reconnects >= 1');
  measured.retryMs = Date.now() - t0;
  const v = await view(YT);
  assert(/^retrying$/i.test(v.badge.trim()) && v.button === 'Stop', `retrying: ${JSON.stringify(v)}`);
  const color = await page.$eval(`${YT} .out-state`, (el) => getComputedStyle(el).backgroundColor);
  assert(color === 'rgb(210, 153, 34)', `retrying badge colour ${color} (want the page's amber)`);
  // The restream-down alert is listed and flags the card.
  await waitFor(page, (s) => document.querySelector(s).dataset.alert === 'true'
    && /restream-down/.test(document.querySelector('#alerts').textContent), YT, 5000, 'the restream-down alert');
  // Said from its params (control.alertMsg.restream-down): the page's words around
  // the server's own error, which alone is marked as the server's text.
  const al = await page.$eval('#alerts li[data-kind="restream-down"][data-active="true"] .alert-msg', (el) => ({
    text: el.textContent, server: [...el.querySelectorAll('[data-server-text]')].map((x) => x.textContent) }));
  assert(al.text.startsWith('restream yt is down: ') && al.server.length === 1 && al.server[0].length > 0
    && al.text === `restream yt is down: ${al.server[0]}`, `restream-down alert ${JSON.stringify(al)}`);
  measured.alertText = al.text;
  // Watch the DOM for the key while it retries (2 s, every 100 ms).
  for (let i = 0; i < 20; i++) {
    const leaks = await keyLeaks();
    assert(leaks.length === 0, `the stream key is in the DOM: ${leaks.join(', ')}`);
    await sleep(100);
  }
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, 'control-outputs.png');
  await page.$eval('.room[data-room="main"] .outputs', (el) => el.scrollIntoView({ block: 'center' }));
  await page.screenshot({ path: file });
  const shot = `${path.relative(ROOT, file)} (${Math.round(fs.statSync(file).size / 1024)} KiB)`;

  // Not live: Stop goes straight through, no confirm.
  const n2 = await nResults();
  await page.click(`${YT} .out-toggle`);
  const s = await resultAfter(n2, 'the restream stop result');
  assert(!(await page.evaluate(() => document.querySelector('#confirm').open)), 'Stop of a retrying restream asked for confirmation');
  assert(s.type === 'restream' && s.ok && s.fields.value === false, `stop result ${JSON.stringify(s)}`);
  await waitFor(page, (q) => document.querySelector(q).dataset.state === 'stopped', YT, 5000, 'restream stopped');
  const after = await view(YT);
  assert(after.error === null && after.button === 'Start', `after stop: ${JSON.stringify(after)}`);
  const leaks = await keyLeaks();
  assert(leaks.length === 0, `the stream key is in the DOM: ${leaks.join(', ')}`);
  const csp = await page.evaluate(() => window.cspViolations);
  assert(csp.length === 0, `CSP violations (the server's CSP: ${measured.csp}): ${csp.join('; ')}`);
  return `retrying ${measured.retryMs} ms after the click ("${v.error}", ${v.stats}); alert "${measured.alertText}"; stopped in ${s.ms} ms; ${shot}`;
});

let code = 1;
try {
  recDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dragoman-rec-'));
  deadPort = await freePort(40000, 5000); // nothing listens here: the restream can only retry
  server = await startServer({
    name: 'dragoman-outputs',
    set: {
      'restream yt.room': 'main', 'restream yt.lang': 'hy', 'restream yt.url': `rtmp://127.0.0.1:${deadPort}/live`,
      'restream yt.key': KEY, 'record main.dir': recDir,
    },
  });
  browser = await launchBrowser();
  code = await run('outputs', tests);
} catch (e) {
  console.log(`outputs: setup failed: ${e.stack || e}`);
  console.log('outputs: 0 passed, 1 failed');
} finally {
  if (code && log.length) console.log(`page log (last 20):\n${log.slice(-20).join('\n')}`);
  if (code && server && !server.external) console.log(`server log (last 20):\n${server.logTail(20)}`);
  if (browser) await browser.close().catch(() => {});
  if (server) await stopServer(server).catch(() => {});
  if (recDir && !code) fs.rmSync(recDir, { recursive: true, force: true });
}
process.exit(code);
