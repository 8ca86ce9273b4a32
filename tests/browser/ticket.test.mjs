// A paid room's ticket code (viewer token) on the listener page, in a real
// Chromium: the page asks for it (the room list says token_required), shows a
// clear error for a wrong one and asks again, plays with the right one and
// remembers it per room; Watch mode carries it on every HLS request.
// Run from the repo root: `node tests/browser/ticket.test.mjs` (the Makefile runs
// it under `unshare -n` with only loopback up).

import fs from 'node:fs';
import path from 'node:path';
import { ROOT, assert, launchBrowser, newPage, run, startServer, stopServer } from './lib.mjs';

const TOKEN = 'paid-ticket-2026';
const en = JSON.parse(fs.readFileSync(path.join(ROOT, 'web/i18n/en.json'), 'utf8'));
const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 1 };

let server;
let browser;
let context; // one profile: localStorage carries over between pages
const log = [];

async function waitFor(page, fn, arg, timeout, what) {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 100 });
  } catch {
    const status = await page.textContent('#status').catch(() => '?');
    throw new Error(`timed out after ${timeout} ms waiting for ${what}; page status: "${status}"`);
  }
}

const statusIs = (page, key) => waitFor(page, (text) => document.querySelector('#status').textContent === text, en[key], 10000, `status "${en[key]}"`);

async function open(query) {
  const page = await newPage(context, log);
  await page.goto(`${server.url}/?${query}&ui=en`); // the channel's language would pick Armenian
  await waitFor(page, () => document.querySelector('#status').textContent && !document.querySelector('#status').textContent.startsWith('Loading'), null, 10000, 'the room list');
  return page;
}

const tests = [];
const test = (name, fn) => tests.push([name, fn]);

test('a paid room asks for the ticket code before anything plays', async () => {
  const page = await open('room=main&lang=hy');
  await statusIs(page, 'status.tokenNeeded');
  assert(await page.isVisible('#token'), 'the ticket-code field is not shown');
  assert(await page.getAttribute('#token', 'type') === 'password', 'the code is shown in clear');
  assert(await page.isDisabled('#play'), 'Play is enabled without a code');
  const label = await page.textContent('label[for=token]');
  assert(label === en['listener.token'], `label "${label}"`);
  await page.close();
  return `"${en['status.tokenNeeded']}"`;
});

test('a wrong code: a clear error, the field marked and emptied, asked again', async () => {
  const page = await open('room=main&lang=hy');
  await page.fill('#token', 'wrong-ticket-0000');
  await page.click('#token-use');
  await statusIs(page, 'status.badToken');
  assert(await page.getAttribute('#token', 'aria-invalid') === 'true', 'the field is not marked invalid');
  assert(await page.inputValue('#token') === '', 'the wrong code is still in the field');
  assert(await page.isDisabled('#play'), 'Play is enabled after a refused code');
  const stored = await page.evaluate(() => localStorage.getItem('dragoman.viewerTokens'));
  assert(!stored || !stored.includes('wrong-ticket'), `the wrong code was kept: ${stored}`);
  await page.close();
  return `"${en['status.badToken']}"`;
});

test('the right code plays, and this device remembers it for this room only', async () => {
  let page = await open('room=main&lang=hy');
  const sockets = [];
  page.on('websocket', (ws) => sockets.push(ws.url()));
  await page.fill('#token', TOKEN);
  await page.click('#token-use'); // a user gesture: audio may start
  await waitFor(page, () => window.dragoman.stats.decoded > 25, null, 15000, 'decoded audio');
  assert(sockets.some((u) => u.includes(`token=${TOKEN}`)), `no /ws/listen with the token: ${sockets}`);
  assert(await page.getAttribute('#token', 'aria-invalid') === null, 'still marked invalid');
  await page.close();

  page = await open('room=main&lang=hy');
  await statusIs(page, 'status.pressPlayListen');
  assert(!(await page.isDisabled('#play')), 'Play disabled although the code is remembered');
  assert(await page.inputValue('#token') === TOKEN, 'the remembered code is not in the field');
  await page.click('#play');
  await waitFor(page, () => window.dragoman.stats.decoded > 25, null, 15000, 'decoded audio with the remembered code');
  await page.close();

  page = await open('room=workshop&lang=hy');
  assert(!(await page.isVisible('#token')), 'the open room asks for a code');
  assert(!(await page.isDisabled('#play')), 'Play disabled in the open room');
  await page.close();
  return 'played; remembered on the next visit; the open room asks nothing';
});

test('Watch mode carries the code on every HLS request; a wrong one gets the same clear error', async () => {
  let page = await open('room=main&lang=hy&mode=watch');
  const hls = [];
  page.on('request', (r) => { if (/^\/hls(-seg)?\//.test(new URL(r.url()).pathname)) hls.push(r.url()); });
  await page.click('#play');
  await waitFor(page, () => window.dragomanWatch && window.dragomanWatch.stats.state === 'playing', null, 30000, 'Watch playing');
  const bare = hls.filter((u) => !u.includes(`token=${TOKEN}`));
  assert(hls.some((u) => u.includes('/hls-seg/')) && bare.length === 0, `HLS requests without the code: ${bare.slice(0, 3)} (of ${hls.length})`);
  await page.close();

  page = await open('room=main&lang=hy&mode=watch');
  await page.evaluate(() => localStorage.setItem('dragoman.viewerTokens', JSON.stringify({ main: 'stale-ticket-0000' })));
  await page.reload();
  await waitFor(page, () => !document.querySelector('#play').disabled, null, 10000, 'Play');
  await page.click('#play');
  await statusIs(page, 'status.badToken');
  assert(await page.inputValue('#token') === '', 'the refused code is still in the field');
  await page.close();
  return `${hls.length} HLS requests, all with the code; a stale code refused`;
});

let code = 1;
try {
  server = await startServer({ set: { 'room main.viewer-token': TOKEN }, name: 'ticket' });
  browser = await launchBrowser();
  context = await browser.newContext(PHONE);
  code = await run('ticket', tests);
  const logText = fs.readFileSync(server.logFile, 'utf8');
  if (logText.includes(TOKEN)) { console.log('FAIL the server log contains the ticket code'); code = 1; }
} catch (e) {
  console.log(`ticket: setup failed: ${e.stack || e}`);
  console.log('ticket: 0 passed, 1 failed');
} finally {
  if (code && log.length) console.log(`page log (last 20):\n${log.slice(-20).join('\n')}`);
  if (browser) await browser.close().catch(() => {});
  if (server) await stopServer(server).catch(() => {});
}
process.exit(code);
