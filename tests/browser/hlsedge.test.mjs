// Watch mode (HLS) through an nginx caching edge (configs/nginx-edge.conf): the
// remote viewer's path at CDN scale. Starts dragoman and one edge in front of it,
// then runs watch.test.mjs's playback test against the edge's URL
// (DRAGOMAN_TEST_URL), so the page, hls.js, the playlists and every segment come
// through the cache. tests/integration/edge.py checks the cache itself.
//
// Run from the repo root: `node tests/browser/hlsedge.test.mjs` (the Makefile runs
// it under `unshare -n` with only loopback up).

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, freePort, sleep, startServer, stopServer } from './lib.mjs';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dragoman-hlsedge-'));
fs.chmodSync(tmp, 0o755); // nginx's workers (not root) write the cache here
let server;
let code = 1;
try {
  server = await startServer({ name: 'dragoman-hlsedge', set: { 'server.hls-dir': path.join(tmp, 'hls') }, timeoutMs: 60000 });
  const edgePort = await freePort(24000, 1000);
  const conf = fs.readFileSync(path.join(ROOT, 'configs/nginx-edge.conf'), 'utf8')
    .replace('listen 8081;', `listen 127.0.0.1:${edgePort};`)
    .replace('server 127.0.0.1:8080;', `server 127.0.0.1:${server.port};`)
    .replace('/var/lib/nginx/dragoman-edge', path.join(tmp, 'cache'))
    .replace('worker_processes auto;', `worker_processes 1;\npid ${tmp}/nginx.pid;`)
    .replace('http {', `http {\n  client_body_temp_path ${tmp}/body;\n  proxy_temp_path ${tmp}/proxy;`);
  fs.writeFileSync(path.join(tmp, 'nginx.conf'), conf);
  const r = spawnSync('nginx', ['-p', tmp, '-c', path.join(tmp, 'nginx.conf'), '-e', path.join(tmp, 'error.log')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`nginx edge did not start: ${r.stderr}`);
  await sleep(300);
  const url = `http://127.0.0.1:${edgePort}`;
  console.log(`hlsedge: dragoman ${server.url}, edge ${url}`);
  // A viewer joins a running stream: wait until the edge lists 3 video segments.
  // In the stream's first seconds the playlist holds 1-2 segments, so hls.js
  // starts at the very first one with nothing in hand (it cannot keep its 2
  // segments back), and the edge's playlists lag the origin's by up to 2 s (1 s
  // cache + one stale answer while it refreshes): 2 of 7 runs stalled the video
  // or left the audio silent (bufferAppendNoProgress), and CI failed on it. With
  // this wait 6 of 6 passed. (The same start without the edge passed 4 of 4;
  // a viewer at the stream's very first seconds behind a CDN is a known weak
  // spot, noted in docs/reliability.md.)
  const t0 = Date.now();
  for (;;) {
    const pl = await fetch(`${url}/hls/main/video.m3u8`).then((r) => r.text()).catch(() => '');
    const n = pl.split('\n').filter((l) => l.startsWith('/hls-seg/')).length;
    if (n >= 3) break;
    if (Date.now() - t0 > 40000) throw new Error(`the edge listed only ${n} video segments after 40 s:\n${pl}`);
    await sleep(500);
  }
  console.log(`hlsedge: the edge lists 3 video segments ${Date.now() - t0} ms after it started`);
  code = await new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'tests/browser/watch.test.mjs')], {
      cwd: ROOT, stdio: 'inherit', env: { WATCH_SAMPLE_MS: '4000', ...process.env, DRAGOMAN_TEST_URL: url, WATCH_ONLY: 'hy over HLS' },
    });
    child.on('exit', (c) => resolve(c ?? 1));
  });
  const cacheStatus = spawnSync('curl', ['-s', '-o', '/dev/null', '-D', '-', `${url}/hls/main/master.m3u8`], { encoding: 'utf8' }).stdout;
  console.log(`hlsedge: the edge answered the master playlist with ${(cacheStatus.match(/x-cache-status: \S+/i) || ['no cache status'])[0]}`);
  console.log(`hlsedge: ${code === 0 ? '1 passed, 0 failed' : '0 passed, 1 failed'}`);
} catch (e) {
  console.log(`hlsedge: setup failed: ${e.stack || e}`);
  console.log('hlsedge: 0 passed, 1 failed');
} finally {
  spawnSync('nginx', ['-p', tmp, '-c', path.join(tmp, 'nginx.conf'), '-s', 'stop']);
  if (server) await stopServer(server).catch(() => {});
  fs.rmSync(tmp, { recursive: true, force: true });
}
process.exit(code);
