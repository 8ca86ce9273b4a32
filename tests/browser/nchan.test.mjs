// The listener page, unchanged, through an nginx + Nchan edge (configs/nginx-nchan.conf):
// dragoman publishes ([publish nchan]) to edge A; the page is opened on edge B, which
// shares A's Redis, so its /ws/listen is Nchan's (no hello) while its pages and
// /api/v1/rooms come from dragoman through the edge. It must play the channel.
//
// Run from the repo root: `node tests/browser/nchan.test.mjs` (the Makefile runs it
// under `unshare -n` with only loopback up).

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  ROOT, assert, freePort, launchBrowser, newPage, run, sampleTones, sleep, startServer, stopServer, tally,
} from './lib.mjs';

const IDENT = { orig: 8000, hy: 9000 };
const FREQS = [8000, 8500, 9000, 9500, 10000, 10500];
const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 1 };

let server;
let browser;
let redis;
const edges = {};
const log = [];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dragoman-nchan-browser-'));
fs.chmodSync(tmp, 0o755); // nginx's workers (not root) write their temp files here

function nginx(name, ...extra) {
  const d = path.join(tmp, name);
  return spawnSync('nginx', ['-p', d, '-c', path.join(d, 'nginx.conf'), '-e', path.join(d, 'error.log'), ...extra],
    { encoding: 'utf8', timeout: 10000 });
}

async function startEdges(dragomanPort) {
  const redisPort = await freePort(21000, 1000);
  redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' });
  const src = fs.readFileSync(path.join(ROOT, 'configs/nginx-nchan.conf'), 'utf8');
  for (const name of ['A', 'B']) {
    const d = path.join(tmp, name);
    fs.mkdirSync(d);
    const port = await freePort(22000 + (name === 'B' ? 1000 : 0), 1000);
    const conf = src.replace('listen 8082;', `listen 127.0.0.1:${port};`)
      .replace('server 127.0.0.1:8080;', `server 127.0.0.1:${dragomanPort};`)
      .replace('redis://127.0.0.1:6379', `redis://127.0.0.1:${redisPort}`)
      .replace('worker_processes auto;', `worker_processes 1;\npid ${d}/nginx.pid;`)
      .replace('http {', `http {\n  client_body_temp_path ${d}/body;\n  proxy_temp_path ${d}/proxy;`);
    fs.writeFileSync(path.join(d, 'nginx.conf'), conf);
    const r = nginx(name);
    assert(r.status === 0, `edge ${name} did not start: ${r.stderr}`);
    edges[name] = { port, url: `http://127.0.0.1:${port}` };
  }
  await sleep(300);
}

async function waitFor(page, fn, arg, timeout, what) {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 100 });
  } catch {
    const status = await page.textContent('#status').catch(() => '?');
    throw new Error(`timed out after ${timeout} ms waiting for ${what}; page status: "${status}"`);
  }
}

const tests = [];
const test = (name, fn) => tests.push([name, fn]);

test('the listener page plays a channel through an Nchan edge (no hello, codec from /api/v1/rooms)', async () => {
  const page = await newPage(browser, log, PHONE);
  const sockets = [];
  page.on('websocket', (ws) => sockets.push(ws.url()));
  await page.goto(`${edges.B.url}/?room=main&lang=hy`);
  await waitFor(page, () => !document.querySelector('#play').disabled, null, 20000, 'the Play button');
  await page.click('#play');
  await waitFor(page, () => window.dragoman.stats.decoded > 25 && window.dragoman.stats.level.rms > 0, null, 10000,
    'decoded audio through edge B');
  const samples = await sampleTones(page, { freqs: FREQS, durationMs: 4000 });
  const t = tally(samples);
  const own = ((t[IDENT.hy] || 0) + (t[IDENT.orig] || 0)) / samples.length;
  const foreign = samples.filter((s) => s.dominant && ![IDENT.hy, IDENT.orig].includes(s.dominant));
  const stats = await page.evaluate(() => JSON.parse(JSON.stringify(window.dragoman.stats)));
  await page.close();
  assert(sockets.length > 0 && sockets.every((u) => u.startsWith(`ws://127.0.0.1:${edges.B.port}/ws/listen`)),
    `the page's sockets should go to the edge: ${sockets.join(', ')}`);
  assert(foreign.length === 0, `another language's tone in hy through the edge: ${JSON.stringify(t)}`);
  assert(own >= 0.3, `hy (or the floor) dominant in only ${(own * 100).toFixed(0)}% of windows: ${JSON.stringify(t)}`);
  return `socket ${sockets[0]}; tones ${JSON.stringify(t)}; decoded ${stats.decoded}, underruns ${stats.underruns ?? 'n/a'}`;
});

test('an edge reload (a certificate renewal): the page on that edge reconnects and plays again', async () => {
  const page = await newPage(browser, log, PHONE);
  await page.goto(`${edges.A.url}/?room=main&lang=hy`);
  await waitFor(page, () => !document.querySelector('#play').disabled, null, 20000, 'the Play button');
  await page.click('#play');
  await waitFor(page, () => window.dragoman.stats.decoded > 25, null, 10000, 'decoded audio through edge A');
  const before = await page.evaluate(() => window.dragoman.stats.decoded);
  const r = nginx('A', '-s', 'reload');
  assert(r.status === 0, `nginx -s reload failed: ${r.stderr}`);
  const t0 = Date.now();
  // Nchan closes its subscribers on reload (1001); the page must come back by itself
  await waitFor(page, (n) => window.dragoman.stats.decoded > n + 50, before, 8000, 'audio again after the reload');
  const took = Date.now() - t0;
  await page.close();
  return `playing again (50 more packets decoded) ${took} ms after the reload`;
});

let code = 1;
try {
  const port = await freePort();
  await startEdges(port); // the edges need dragoman's port; dragoman needs edge A's
  server = await startServer({ port, set: { 'publish nchan.url': `ws://127.0.0.1:${edges.A.port}/pubws` } });
  browser = await launchBrowser();
  code = await run('nchan', tests);
} catch (e) {
  console.log(`nchan: setup failed: ${e.stack || e}`);
  console.log('nchan: 0 passed, 1 failed');
} finally {
  if (code && log.length) console.log(`page log (last 20):\n${log.slice(-20).join('\n')}`);
  if (browser) await browser.close().catch(() => {});
  if (server) await stopServer(server).catch(() => {});
  for (const name of Object.keys(edges)) nginx(name, '-s', 'stop');
  if (redis) redis.kill('SIGTERM');
  fs.rmSync(tmp, { recursive: true, force: true });
}
process.exit(code);
