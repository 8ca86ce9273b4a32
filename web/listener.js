// dragoman listener page: pick a room and a language, play the channel.
//
// Path of the audio: WebSocket /ws/listen (one Opus packet per binary
// message, 16-byte header, see docs) -> WebCodecs AudioDecoder -> PCM posted
// to the AudioWorklet in listener-worklet.js, which owns the jitter buffer.
// Codec parameters come from /api/v1/rooms, not from the hello message: an
// edge relay in front of the server may not forward the hello.
//
// Watch mode (watch.js) plays the room's HLS stream (video + the channel's
// AAC rendition) instead; the language buttons then switch its audio track.
// Listen stays the default: it is seconds ahead of Watch, which matters in the
// hall. The mode is remembered; ?mode=watch or ?mode=listen preselects.
//
// The listener's own mix (Listen mode): a slider adds the room's original
// (`orig`, a second /ws/listen socket) under the interpretation, default off
// and remembered. The worklet mixes the two streams lined up (see
// listener-worklet.js); the original is added only while an interpreter is on
// air (the channel is the floor itself otherwise) and fades like the server's
// own floor does. Media Session metadata and play/pause controls for the
// lock screen and headsets.
//
// Lock screen: phones suspend a bare AudioContext when the screen locks, and
// show no controls for it. So the worklet also feeds a
// MediaStreamAudioDestinationNode played by an <audio> element, started in
// the Play click: a playing media element is what mobile browsers keep alive
// in the background and put on the lock screen. That element path costs
// latency: Chromium 156 plays a MediaStream through a 10 ms rebuffering FIFO,
// its own 10 ms sink and an AudioShifter that holds 30 ms more by design;
// measured 81-98 ms from render to speaker against 31 ms for ctx.destination
// (+50-67 ms in four runs at load average 28-50 on 2 cores,
// tests/browser/lockscreen.test.mjs). So it is the fallback for
// a hidden page only (a locked phone: 50-70 ms more beats silence): while the
// page is visible the worklet plays straight to ctx.destination and the
// element plays muted (kept running, so that unmuting needs no user gesture).
// stats.outputPath says which one is audible ('direct' or 'element').
//
// Interface language (i18n.js, strings in i18n/<code>.json): the listener's
// own choice in the picker (remembered), else the chosen channel's language
// when the page has it (someone who picks Armenian reads Armenian), else the
// browser's (navigator.languages), else English. ?ui=ru preselects.

import { Watch } from './watch.js';
import {
  LANGS, browserLanguage, fillPicker, i18n, languageName, match, num, onLanguage, saveLanguage, savedLanguage, setLanguage, t,
} from './i18n.js';

const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 5000;
// No packet for this long on an open socket: assume a dead path (phone roamed
// to another access point, half-open TCP) and reconnect. The server sends a
// packet every frame (20 ms), silence included, and its own slow-listener limit
// resyncs at 400 ms: 1.5 s of nothing is a dead path, and the 2 s for
// recovering from a network change leaves no room for more.
const STALL_MS = 1500;
const STORE_KEY = 'dragoman.listener';
const MODE_KEY = 'dragoman.mode';
const TOKEN_KEY = 'dragoman.viewerTokens'; // room id -> the ticket code typed for it (paid rooms)
const ORIG_KEY = 'dragoman.origMix'; // the listener's original-audio level, 0..100 (0: off)
const ORIG_IN_MS = 300; // an interpreter comes on air: the original comes in under them
const ORIG_OUT_MS = 1000; // off air: the channel's floor comes back over 1 s, ours goes

const MODES = ['listen', 'watch'];
const HEADER_BYTES = 16;
const KIND_OPUS = 1;
const FLAG_DISCONT = 1;

const $ = (id) => document.getElementById(id);
const ui = {
  roomRow: $('room-row'), room: $('room'), langs: $('langs'), play: $('play'), stop: $('stop'),
  status: $('status'), roomTitle: $('room-title'), level: $('level-bar'), levelText: $('level-text'), delay: $('delay'),
  netAge: $('net-age'), chState: $('ch-state'),
  main: $('main'), heading: $('heading'), modes: $('modes'), video: $('video'), fullscreen: $('fullscreen'),
  wTrack: $('w-track'), wDelay: $('w-delay'), uiLang: $('ui-lang'),
  origRow: $('orig-row'), origLevel: $('orig-level'), origText: $('orig-level-text'),
  tokenForm: $('token-form'), token: $('token'),
};

// Exposed for tests and curious engineers; never read back by the page.
const stats = {
  packets: 0, decoded: 0, underruns: 0, discontinuities: 0, seqGaps: 0, bufferMs: 0,
  targetMs: 0, droppedMs: 0, outputLatencyMs: 0, delayMs: 0, networkAgeMs: null,
  level: { peak: 0, rms: 0 }, state: 'idle', channelState: null, outputPath: null,
  orig: { mix: 0, gain: 0, open: false, packets: 0, decoded: 0, reconnects: 0, bufferMs: 0, skewMs: 0, droppedMs: 0, heldMs: 0 },
};
window.dragoman = { ctx: null, node: null, stats };

let rooms = []; // from /api/v1/rooms
let sel = { room: null, lang: null };
let session = null; // the live connection, or null when stopped
let origFeed = null; // the second connection, to `orig`, while the listener mixes it in
let mode = 'listen';
const watch = new Watch(ui.video, {
  status: (key, vars, kind) => setStatus(key, vars, kind),
  level: (peak) => renderLevel(peak),
  info: ({ delayMs, track }) => {
    if (track !== undefined) { lastTrack = track; renderTrack(); }
    if (delayMs !== undefined) ui.wDelay.textContent = delayMs == null ? '–' : t('unit.s', { v: num(delayMs / 1000, 1) });
  },
  ended: () => { ui.play.hidden = false; ui.stop.hidden = true; },
  tokenRefused: (room, key) => tokenRefused(room, key),
});

// ---- room and language choice ----------------------------------------------

function loadChoice() {
  const q = new URLSearchParams(location.search);
  let saved = {};
  try { saved = JSON.parse(localStorage.getItem(STORE_KEY)) || {}; } catch { /* private mode */ }
  return { room: q.get('room') || saved.room || null, lang: q.get('lang') || saved.lang || null,
    fromUrl: q.has('room') || q.has('lang') };
}

function loadMode() {
  const q = new URLSearchParams(location.search).get('mode');
  if (MODES.includes(q)) return q;
  try { const m = localStorage.getItem(MODE_KEY); if (MODES.includes(m)) return m; } catch { /* private mode */ }
  return 'listen';
}

function renderMode() {
  ui.main.dataset.mode = mode;
  ui.heading.dataset.i18n = mode === 'watch' ? 'listener.heading.watch' : 'listener.heading.listen';
  ui.heading.textContent = t(ui.heading.dataset.i18n);
  for (const b of ui.modes.querySelectorAll('button[data-mode]')) b.setAttribute('aria-pressed', String(b.dataset.mode === mode));
}

function saveMode() {
  try { localStorage.setItem(MODE_KEY, mode); } catch { /* private mode */ }
}

function pickMode(m) {
  if (!MODES.includes(m)) return;
  if (m === mode) { saveMode(); return; } // a ?mode= link becomes the choice once confirmed
  const wasPlaying = playing();
  if (wasPlaying) stop();
  mode = m;
  saveMode();
  renderMode();
  if (wasPlaying) start(); // the click is a user gesture: carry on in the other mode
  else if (sel.lang) setStatus(mode === 'watch' ? 'status.pressPlayWatch' : 'status.pressPlayListen');
}

const playing = () => session !== null || watch.playing;

function saveChoice() {
  try { localStorage.setItem(STORE_KEY, JSON.stringify(sel)); } catch { /* private mode */ }
}

const findRoom = (id) => rooms.find((r) => r.id === id);

// ---- a paid room's ticket code (viewer token) --------------------------------
// Kept per room in localStorage (and in memory, for private mode); sent as
// ?token= on the WebSocket and the HLS URL, never shown back in clear.
let tokens = {};
try { tokens = JSON.parse(localStorage.getItem(TOKEN_KEY)) || {}; } catch { /* private mode */ }
const needsToken = (room) => !!(room && room.token_required);
const roomToken = (id) => tokens[id] || '';
const tokenMissing = (room) => needsToken(room) && !roomToken(room.id);
function saveToken(id, token) {
  if (token) tokens[id] = token; else delete tokens[id];
  try { localStorage.setItem(TOKEN_KEY, JSON.stringify(tokens)); } catch { /* private mode */ }
}
// A link sent with the ticket may carry it: /?room=main&token=...
{
  const q = new URLSearchParams(location.search);
  if (q.get('room') && q.get('token')) saveToken(q.get('room'), q.get('token'));
}
// The server refused the code: forget it and ask again.
function tokenRefused(id, key) {
  saveToken(id, '');
  if (id === sel.room) {
    renderLangs(); // the field emptied, Play disabled
    ui.token.setAttribute('aria-invalid', 'true');
    ui.token.focus();
  }
  setStatus(key, { room: id }, 'error');
}
const findChannel = (room, lang) => room && room.channels.find((c) => c.lang === lang);

function renderRooms() {
  ui.room.replaceChildren(...rooms.map((r) => new Option(r.title || r.id, r.id)));
  ui.room.value = sel.room;
  ui.roomRow.hidden = rooms.length < 2;
}

// "Original (English)" from the server is English: say it in the page's language.
function channelLabel(room, c) {
  if (c.lang !== 'orig') return c.native_name || c.name || c.lang;
  const floor = room && room.floor_lang && languageName(room.floor_lang);
  return floor ? t('listener.original', { lang: floor }) : c.native_name || t('listener.originalPlain');
}

function renderLangs() {
  const room = findRoom(sel.room);
  ui.roomTitle.textContent = room ? room.title || room.id : '';
  ui.langs.replaceChildren(...(room ? room.channels : []).map((c) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'lang';
    b.dataset.lang = c.lang;
    if (c.lang !== 'orig') b.lang = c.lang; // screen readers pronounce the native name right
    b.textContent = channelLabel(room, c);
    // The channel's language named in the page's language, as a tooltip.
    const inUi = c.lang !== 'orig' && languageName(c.lang);
    if (inUi && inUi.toLowerCase() !== b.textContent.toLowerCase()) b.title = inUi;
    b.setAttribute('aria-pressed', String(c.lang === sel.lang));
    return b;
  }));
  ui.play.disabled = !findChannel(room, sel.lang) || tokenMissing(room);
  renderToken();
  ui.origRow.hidden = !findChannel(room, sel.lang) || sel.lang === 'orig' || !findChannel(room, 'orig');
  updateMediaSession();
}

function renderToken() {
  const room = findRoom(sel.room);
  ui.tokenForm.hidden = !needsToken(room);
  if (room && document.activeElement !== ui.token) ui.token.value = roomToken(room.id);
}

// Watch mode's sound track: the playlist's NAME is the server's (English for
// orig); the channel it carries, named like the buttons, when it is known.
let lastTrack;
function renderTrack() {
  const room = findRoom(sel.room);
  const ch = findChannel(room, watch.stats.audioTrackLang);
  ui.wTrack.textContent = ch ? channelLabel(room, ch) : lastTrack || '–';
}

// ---- interface language -------------------------------------------------------

// ?ui=xx in the link wins until the listener picks a language in the picker.
let linkUi = match(new URLSearchParams(location.search).get('ui'));
function wantedUiLang() {
  return linkUi || savedLanguage() || match(sel.lang) || browserLanguage() || 'en';
}

async function followUiLang() {
  const want = wantedUiLang();
  if (want !== i18n.lang) await setLanguage(want);
}

onLanguage(() => {
  fillPicker(ui.uiLang, LANGS);
  renderMode();
  renderLangs();
  renderStatus();
  renderChannelState();
  renderMeters();
  renderOrigMix();
  if (lastTrack !== undefined) renderTrack();
});

function pickLang(lang) {
  if (lang === sel.lang) return;
  sel.lang = lang;
  saveChoice();
  renderLangs();
  followUiLang();
  if (watch.playing) watch.setLang(lang); // same video, other audio rendition
  else if (session) start(); // switching while playing: reconnect to the new channel at once
}

function pickRoom(id) {
  sel.room = id;
  if (!findChannel(findRoom(id), sel.lang)) sel.lang = null;
  saveChoice();
  renderLangs();
  if (tokenMissing(findRoom(id))) { if (playing()) stop(); setStatus('status.tokenNeeded'); return; }
  if (playing()) { if (sel.lang) start(); else stop(); }
}

async function loadRooms() {
  setStatus('status.loading');
  let res;
  try {
    res = await fetch('/api/v1/rooms', { cache: 'no-store' });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    rooms = (await res.json()).rooms || [];
  } catch (e) {
    setStatus('status.roomsFailed', { error: e.message }, 'error');
    setTimeout(loadRooms, RECONNECT_MAX_MS);
    return;
  }
  const want = loadChoice();
  let error = null;
  sel.room = want.room;
  if (!findRoom(sel.room)) {
    if (want.room && want.fromUrl) error = ['status.unknownRoom', { room: want.room }];
    sel.room = rooms.length ? rooms[0].id : null;
  }
  sel.lang = want.lang;
  if (!findChannel(findRoom(sel.room), sel.lang)) {
    if (want.lang && want.fromUrl && !error) error = ['status.unknownLang', { lang: want.lang }];
    sel.lang = null;
  }
  renderRooms();
  renderLangs();
  await followUiLang();
  if (!rooms.length) setStatus('status.noRooms', {}, 'error');
  else if (error) setStatus(error[0], error[1], 'error');
  else if (tokenMissing(findRoom(sel.room))) setStatus('status.tokenNeeded');
  else setStatus(sel.lang ? (mode === 'watch' ? 'status.pressPlayWatch' : 'status.pressPlayListen') : 'status.pickLang');
}

// ---- audio ----------------------------------------------------------------

async function ensureAudio() {
  const d = window.dragoman;
  if (d.ctx) {
    playElement(); // in the gesture, before the await
    routeOutput();
    if (d.ctx.state !== 'running') await d.ctx.resume();
    return;
  }
  if (typeof AudioDecoder === 'undefined') {
    throw Object.assign(new Error('no WebCodecs AudioDecoder'), { i18n: 'status.noDecoder' });
  }
  let ctx;
  try {
    ctx = new AudioContext({ sampleRate: 48000, latencyHint: 'interactive' });
  } catch {
    ctx = new AudioContext({ latencyHint: 'interactive' }); // the worklet resamples
  }
  // The lock-screen element, played now: still in the click's user gesture
  // (iOS and the autoplay rules allow play() only there).
  const tap = ctx.createMediaStreamDestination();
  tap.channelCount = 1;
  const el = document.createElement('audio');
  el.srcObject = tap.stream;
  el.muted = !document.hidden;
  el.addEventListener('pause', onElementPaused);
  d.out = { el, tap, path: null, pausedByUs: false };
  playElement();
  await ctx.audioWorklet.addModule('listener-worklet.js');
  const node = new AudioWorkletNode(ctx, 'dragoman-listener', { numberOfInputs: 0, outputChannelCount: [1] });
  node.port.onmessage = (e) => (e.data.type === 'capture' ? onCapture(e.data) : onWorkletStats(e.data));
  node.connect(tap);
  d.ctx = ctx;
  d.node = node;
  routeOutput();
  if (ctx.state !== 'running') await ctx.resume();
}

function playElement() {
  const out = window.dragoman.out;
  if (!out || !out.el.paused) return;
  out.pausedByUs = false;
  out.el.play().catch((e) => console.warn('dragoman: the lock-screen <audio> did not start', e.name, e.message));
}

// Which way the sound goes out: 'direct' (ctx.destination, the lowest
// latency) while the page is visible, 'element' (the <audio>, unmuted) while
// it is hidden. One of the two is audible at any time, never both.
function routeOutput() {
  const d = window.dragoman;
  if (!d.out || !d.node) return;
  const want = document.hidden ? 'element' : 'direct';
  if (want === d.out.path) return;
  if (want === 'element') {
    d.out.el.muted = false;
    playElement();
    try { d.node.disconnect(d.ctx.destination); } catch { /* was not connected */ }
  } else {
    d.node.connect(d.ctx.destination);
    d.out.el.muted = true;
  }
  d.out.path = want;
  stats.outputPath = want;
}

// The browser paused the element by itself (another app took the audio,
// headphones unplugged, the lock-screen pause without our handler): the
// listener no longer hears us, so stop for real.
function onElementPaused() {
  const out = window.dragoman.out;
  if (out.pausedByUs || !out.el.paused || !session) return;
  stop();
}

function pauseElement() {
  const out = window.dragoman.out;
  if (!out || out.el.paused) return;
  out.pausedByUs = true;
  out.el.pause(); // off the lock screen's "playing" too
}

// Tests: the next `ms` of the channel and of the original as the worklet lines
// them up (before gain), to measure their lag by cross-correlation.
let captureWaiters = [];
window.dragoman.capture = (ms) => new Promise((resolve) => {
  captureWaiters.push(resolve);
  window.dragoman.node.port.postMessage({ type: 'capture', ms });
});
function onCapture(m) {
  const w = captureWaiters;
  captureWaiters = [];
  for (const r of w) r({ main: Array.from(m.main), orig: Array.from(m.orig), rate: m.rate });
}

function onWorkletStats(s) {
  if (s.type !== 'stats') return;
  const ctx = window.dragoman.ctx;
  stats.bufferMs = s.bufferMs;
  stats.targetMs = s.targetMs;
  stats.underruns = s.underruns;
  stats.droppedMs = s.droppedMs;
  stats.level = { peak: s.peak, rms: s.rms };
  stats.outputLatencyMs = ((ctx.outputLatency || 0) + (ctx.baseLatency || 0)) * 1000;
  stats.delayMs = stats.bufferMs + stats.outputLatencyMs;
  if (s.orig) Object.assign(stats.orig, { gain: s.orig.gain, bufferMs: s.orig.bufferMs, skewMs: s.orig.skewMs, droppedMs: s.orig.droppedMs, heldMs: s.orig.heldMs });
  renderMeters();
}

const dbfs = (v) => (v > 0 ? 20 * Math.log10(v) : -Infinity);

// peak: linear 0..1, or null when there is nothing to measure.
function renderLevel(peak) {
  const peakDb = peak == null ? -Infinity : dbfs(peak);
  // Bar spans -60..0 dBFS: the ident tones (-40 dBFS) still move it.
  const frac = Math.max(0, Math.min(1, (peakDb + 60) / 60));
  ui.level.style.transform = `scaleX(${frac})`;
  ui.levelText.textContent = peak == null ? '–' : t('unit.db', { v: peakDb > -100 ? num(peakDb) : '–∞' });
}

function renderMeters() {
  renderLevel(stats.level.peak);
  ui.delay.textContent = session ? t('unit.ms', { v: num(stats.delayMs) }) : '–';
  ui.netAge.textContent = stats.networkAgeMs == null ? '–' : t('unit.ms', { v: num(stats.networkAgeMs) });
}

// ---- connection -------------------------------------------------------------

// One Session = one room/lang choice, across reconnects. Replaced on switch.
// orig: the listener's original-audio feed (a second Session on `orig`):
// its audio goes to the worklet's second stream, and it stays quiet (no
// status line; it reconnects by itself, or gives up on a refusal).
class Session {
  constructor(room, lang, { orig = false } = {}) {
    const r = findRoom(room);
    this.room = room;
    this.lang = lang;
    this.orig = orig;
    this.codec = r.codec || { name: 'opus', rate: 48000, channels: 1, frame_ms: 20 };
    this.backoff = RECONNECT_MIN_MS;
    this.closed = false;
    this.ws = null;
    this.timer = null;
    this.decoder = null;
    this.lastSeq = null;
    this.ts = 0; // decoder timestamps in µs; only their order matters
    this.ends = []; // media end time (ms) of each packet in the decoder, in order
  }

  open() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const q = new URLSearchParams({ room: this.room, lang: this.lang });
    if (needsToken(findRoom(this.room))) q.set('token', roomToken(this.room));
    const ws = new WebSocket(`${proto}//${location.host}/ws/listen?${q}`);
    ws.binaryType = 'arraybuffer';
    ws.onmessage = (e) => (typeof e.data === 'string' ? this.onText(e.data) : this.onPacket(e.data));
    ws.onclose = (e) => this.onClose(e);
    ws.onopen = () => {
      this.watch();
      if (this.orig) { stats.orig.open = true; return; }
      stats.state = 'connected';
      setStatus('status.waitingAudio');
    };
    this.ws = ws;
    this.lastSeq = null;
    this.serverError = null;
  }

  // (Re)arm the stall watchdog; called on open and on every packet.
  watch() {
    clearTimeout(this.stallTimer);
    this.stallTimer = setTimeout(() => {
      if (this.closed || !this.ws) return;
      this.ws.onclose = null;
      this.ws.close(1000);
      this.onClose({ code: 0, stalled: true });
    }, STALL_MS);
  }

  // The phone changed networks (online, or a new connection type): the old
  // socket is bound to the old path. Reconnect now, without waiting for the
  // stall watchdog or a backoff.
  renew() {
    if (this.closed) return;
    clearTimeout(this.timer);
    clearTimeout(this.stallTimer);
    if (this.ws) { this.ws.onclose = null; this.ws.close(1000); this.ws = null; }
    this.backoff = RECONNECT_MIN_MS;
    this.open();
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    clearTimeout(this.stallTimer);
    if (this.ws) { this.ws.onclose = null; this.ws.close(1000); }
    this.closeDecoder();
  }

  onText(text) {
    if (this.orig) return; // the original's state is not the channel's
    let m;
    try { m = JSON.parse(text); } catch { return; }
    if (m.type === 'hello' || m.type === 'state') {
      if (m.codec && m.codec !== this.codec.name) console.warn('dragoman: hello codec', m.codec, 'vs rooms', this.codec.name);
      if (m.state) {
        const was = stats.channelState;
        stats.channelState = m.state;
        renderChannelState();
        if (was !== m.state) postOrigGain(m.state === 'interpretation' ? ORIG_IN_MS : ORIG_OUT_MS);
      }
    } else if (m.type === 'error') {
      // Known codes in the page's language; anything newer as the server said it.
      this.serverError = serverErrors[m.code] ? [serverErrors[m.code], { room: this.room, lang: this.lang }]
        : ['status.serverSaid', { message: m.message || m.code || '?' }];
      setStatus(this.serverError[0], this.serverError[1], 'error');
      if (m.code === 'bad-token' || m.code === 'token-required') this.badToken = true;
    }
  }

  onPacket(buf) {
    if (buf.byteLength <= HEADER_BYTES) return;
    const v = new DataView(buf);
    if (v.getUint8(0) !== KIND_OPUS) return;
    const seq = v.getUint32(4);
    const ingressUs = Number(v.getBigUint64(8));
    this.watch();
    if (this.orig) {
      stats.orig.packets++;
      this.backoff = RECONNECT_MIN_MS;
      const gap = this.lastSeq !== null && seq !== ((this.lastSeq + 1) >>> 0);
      if ((gap || (v.getUint8(1) & FLAG_DISCONT)) && this.decoder) this.closeDecoder();
      this.lastSeq = seq;
      this.decode(new Uint8Array(buf, HEADER_BYTES), ingressUs);
      return;
    }
    stats.packets++;
    if (stats.packets === 1 || stats.state !== 'playing') { stats.state = 'playing'; setStatus('status.playing', {}, 'ok'); }
    this.backoff = RECONNECT_MIN_MS; // data flows: the next drop starts the backoff afresh

    const discont = (v.getUint8(1) & FLAG_DISCONT) !== 0;
    const gap = this.lastSeq !== null && seq !== ((this.lastSeq + 1) >>> 0);
    if (discont) stats.discontinuities++;
    if (gap) stats.seqGaps++;
    // Opus carries prediction state between packets: after lost packets start
    // from a clean decoder rather than decode against stale state.
    if ((discont || gap) && this.decoder) this.closeDecoder();
    this.lastSeq = seq;

    // Ingress time is server wall clock: only meaningful when the browser
    // shares that clock (same machine, NTP-synced). Hide implausible values.
    const age = (Date.now() * 1000 - ingressUs) / 1000;
    stats.networkAgeMs = age > -50 && age < 10000 ? age : null;

    this.decode(new Uint8Array(buf, HEADER_BYTES), ingressUs);
  }

  // ingressUs: the packet's media time (its end on the room's clock, as wall
  // time): the same in every channel of the room, so the worklet lines the
  // original up with the channel by it.
  decode(data, ingressUs) {
    if (!this.decoder) this.openDecoder();
    this.ends.push(ingressUs / 1000);
    const frameUs = (this.codec.frame_ms || 20) * 1000;
    this.decoder.decode(new EncodedAudioChunk({ type: 'key', timestamp: this.ts, duration: frameUs, data }));
    this.ts += frameUs;
  }

  openDecoder() {
    const node = window.dragoman.node;
    this.decoder = new AudioDecoder({
      output: (ad) => {
        // Mono: take plane 0. Downmixing stereo is not needed for v1 (mono only).
        const pcm = new Float32Array(ad.numberOfFrames);
        ad.copyTo(pcm, { planeIndex: 0, format: 'f32-planar' });
        const rate = ad.sampleRate;
        const end = this.ends.shift();
        ad.close();
        if (this.closed) return;
        if (this.orig) {
          stats.orig.decoded++;
          node.port.postMessage({ type: 'pcm', stream: 'orig', data: pcm, rate, end }, [pcm.buffer]);
          return;
        }
        stats.decoded++;
        node.port.postMessage({ type: 'pcm', data: pcm, rate, end }, [pcm.buffer]);
      },
      error: (e) => {
        // The decoder is unusable now; the next packet opens a fresh one.
        console.warn('dragoman: decoder error', e);
        this.decoder = null;
        this.ends = [];
      },
    });
    this.decoder.configure({ codec: 'opus', sampleRate: this.codec.rate || 48000, numberOfChannels: this.codec.channels || 1 });
  }

  closeDecoder() {
    this.ends = [];
    if (this.decoder && this.decoder.state !== 'closed') this.decoder.close();
    this.decoder = null;
  }

  onClose(e) {
    this.ws = null;
    clearTimeout(this.stallTimer);
    this.closeDecoder();
    if (this.closed) return;
    if (this.orig) {
      stats.orig.open = false;
      if (e.code >= 4000 && e.code < 5000) { this.closed = true; return; } // refused: the channel plays on alone
      stats.orig.reconnects++;
      this.timer = setTimeout(() => { if (!this.closed) this.open(); }, this.backoff);
      this.backoff = Math.min(RECONNECT_MAX_MS, this.backoff * 2);
      return;
    }
    // 4503: the server is full. Someone may leave: retry, slowly and at a
    // random moment, so a hall full of phones does not retry in step.
    if (e.code === 4503) {
      stats.state = 'reconnecting';
      setStatus('status.fullRetrying', {}, 'warn');
      this.timer = setTimeout(() => { if (!this.closed) this.open(); }, RECONNECT_MAX_MS * (1 + Math.random()));
      return;
    }
    // Other 4xxx: the server refused this room/lang (4404 unknown). Retrying
    // the same request would loop forever; tell the listener and stop.
    if (e.code >= 4000 && e.code < 5000) {
      const msg = this.serverError || ['status.refused', { code: e.code }];
      stop();
      if (this.badToken) tokenRefused(this.room, msg[0]);
      else setStatus(msg[0], msg[1], 'error');
      return;
    }
    stats.state = 'reconnecting';
    setStatus(e.stalled ? 'status.stalledIn' : 'status.lostIn', { s: num(this.backoff / 1000, 1) }, 'warn');
    this.timer = setTimeout(() => { if (!this.closed) { setStatus('status.reconnecting', {}, 'warn'); this.open(); } }, this.backoff);
    this.backoff = Math.min(RECONNECT_MAX_MS, this.backoff * 2);
  }
}

function startWatch() {
  if (session) session.close();
  session = null;
  const room = findRoom(sel.room);
  if (!findChannel(room, sel.lang)) return;
  stats.channelState = findChannel(room, sel.lang).state || null;
  renderChannelState();
  ui.play.hidden = true;
  ui.stop.hidden = false;
  pauseElement(); // Watch plays the video's own sound
  watch.prepareAudio(); // in the click's user gesture, before any await
  watch.start(room.id, room.channels, sel.lang, needsToken(room) ? roomToken(room.id) : '');
  syncOrig(); // Watch has the video's own sound: no second socket
  updateMediaSession();
}

async function start() {
  saveMode(); // pressing Play in a mode chooses it
  if (mode === 'watch') { startWatch(); return; }
  if (watch.playing) watch.stop();
  if (session) session.close();
  session = null;
  const room = sel.room;
  const lang = sel.lang;
  if (!findChannel(findRoom(room), lang)) return;
  stats.state = 'connecting';
  stats.channelState = findChannel(findRoom(room), lang).state || null;
  renderChannelState();
  setStatus('status.connecting');
  ui.play.hidden = true;
  ui.stop.hidden = false;
  try {
    await ensureAudio();
  } catch (e) {
    stop();
    if (e.i18n) setStatus(e.i18n, {}, 'error');
    else setStatus('status.audioFailed', { error: e.message }, 'error');
    return;
  }
  if (sel.room !== room || sel.lang !== lang) return; // superseded by a newer click
  window.dragoman.node.port.postMessage({ type: 'flush' });
  session = new Session(room, lang);
  session.open();
  syncOrig();
  updateMediaSession();
}

// ---- the listener's original-audio mix ---------------------------------------

function loadOrigMix() {
  try { const v = Number(localStorage.getItem(ORIG_KEY)); return Number.isFinite(v) ? Math.max(0, Math.min(100, v)) : 0; } catch { return 0; }
}

// Open or close the `orig` feed to match the slider and the session.
function syncOrig() {
  const want = session && mode === 'listen' && stats.orig.mix > 0 && session.lang !== 'orig' && findChannel(findRoom(session.room), 'orig');
  if (want && (!origFeed || origFeed.room !== session.room)) {
    if (origFeed) origFeed.close();
    origFeed = new Session(session.room, 'orig', { orig: true });
    origFeed.open();
  } else if (!want && origFeed) {
    origFeed.close();
    origFeed = null;
    stats.orig.open = false;
    if (window.dragoman.node) window.dragoman.node.port.postMessage({ type: 'flush-orig' });
  }
  postOrigGain(50);
}

// Slider 0..100 -> gain, squared: the first half of the travel is the quiet
// range where a listener wants fine steps (50 % = -12 dB).
function postOrigGain(rampMs) {
  const node = window.dragoman.node;
  if (!node) return;
  const g = stats.channelState === 'interpretation' ? (stats.orig.mix / 100) ** 2 : 0;
  node.port.postMessage({ type: 'orig-gain', value: origFeed ? g : 0, rampMs });
}

function renderOrigMix() {
  ui.origLevel.value = String(stats.orig.mix);
  ui.origText.textContent = stats.orig.mix > 0 ? t('listener.percent', { v: stats.orig.mix }) : t('listener.origOff');
  ui.origLevel.setAttribute('aria-valuetext', ui.origText.textContent);
}

// ---- Media Session: the lock screen and headset buttons --------------------------

function updateMediaSession() {
  if (!('mediaSession' in navigator)) return;
  const room = findRoom(sel.room);
  const ch = findChannel(room, sel.lang);
  try {
    navigator.mediaSession.metadata = ch && typeof MediaMetadata !== 'undefined'
      ? new MediaMetadata({ title: channelLabel(room, ch), artist: room.title || room.id, album: t('listener.title') }) : null;
    navigator.mediaSession.playbackState = playing() ? 'playing' : 'paused';
  } catch (e) { console.warn('dragoman: media session', e); }
}

function mediaSessionActions() {
  if (!('mediaSession' in navigator)) return;
  const actions = (window.dragoman.mediaActions = {}); // tests call them as the lock screen would
  const on = (action, fn) => {
    actions[action] = fn;
    try { navigator.mediaSession.setActionHandler(action, fn); } catch { /* not supported here */ }
  };
  on('play', () => { if (!playing() && findChannel(findRoom(sel.room), sel.lang)) start(); });
  on('pause', () => { if (playing()) stop(); });
  on('stop', () => { if (playing()) stop(); });
}

function stop() {
  if (session) session.close();
  session = null;
  syncOrig();
  if (watch.playing) watch.stop();
  stats.state = 'idle';
  ui.play.hidden = false;
  ui.stop.hidden = true;
  if (window.dragoman.node) window.dragoman.node.port.postMessage({ type: 'flush' });
  pauseElement();
  setStatus('status.stopped');
  renderMeters();
  updateMediaSession();
}

// ---- status -----------------------------------------------------------------

// The status line says a key; it is re-rendered when the language changes.
let lastStatus = null;
const serverErrors = {
  'unknown-room': 'status.unknownRoom', 'unknown-language': 'status.unknownLang', 'server-full': 'status.full',
  'token-required': 'status.tokenRequired', 'bad-token': 'status.badToken', 'too-many-attempts': 'status.tooManyAttempts',
};

function setStatus(key, vars = {}, kind = '') {
  lastStatus = { key, vars: vars || {}, kind };
  renderStatus();
}

function renderStatus() {
  if (!lastStatus) return;
  ui.status.textContent = t(lastStatus.key, lastStatus.vars);
  ui.status.dataset.kind = lastStatus.kind;
}

function renderChannelState() {
  const s = stats.channelState;
  ui.chState.textContent = s ? t(`channelState.${s}`) : '–';
}

ui.langs.addEventListener('click', (e) => {
  const b = e.target.closest('button[data-lang]');
  if (b) pickLang(b.dataset.lang);
});
ui.room.addEventListener('change', () => pickRoom(ui.room.value));
ui.modes.addEventListener('click', (e) => {
  const b = e.target.closest('button[data-mode]');
  if (b) pickMode(b.dataset.mode);
});
ui.fullscreen.addEventListener('click', () => {
  const v = ui.video;
  if (document.fullscreenElement) document.exitFullscreen();
  else if (v.requestFullscreen) v.requestFullscreen();
  else if (v.webkitEnterFullscreen) v.webkitEnterFullscreen(); // iPhone: only the video can go full screen
});
ui.uiLang.addEventListener('change', () => {
  linkUi = null;
  saveLanguage(ui.uiLang.value); // an explicit choice: it wins over the channel's language from now on
  setLanguage(ui.uiLang.value);
});
ui.origLevel.addEventListener('input', () => {
  stats.orig.mix = Number(ui.origLevel.value);
  try { localStorage.setItem(ORIG_KEY, String(stats.orig.mix)); } catch { /* private mode */ }
  renderOrigMix();
  syncOrig();
});
ui.play.addEventListener('click', () => start());
ui.tokenForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const room = findRoom(sel.room);
  if (!room) return;
  saveToken(room.id, ui.token.value.trim());
  ui.token.removeAttribute('aria-invalid');
  renderLangs();
  if (tokenMissing(room)) { setStatus('status.tokenNeeded', {}, 'error'); return; }
  if (findChannel(room, sel.lang)) start(); // the submit is a user gesture: audio may start
  else setStatus('status.pickLang');
});
ui.stop.addEventListener('click', () => stop());
// A network change (Wi-Fi <-> mobile): reconnect at once on the new path.
function renewSockets() {
  if (session) session.renew();
  if (origFeed) origFeed.renew();
}
window.addEventListener('online', renewSockets);
if (navigator.connection && navigator.connection.addEventListener) navigator.connection.addEventListener('change', renewSockets);
// Phones suspend audio when the page is hidden; resume when it comes back.
document.addEventListener('visibilitychange', () => {
  const ctx = window.dragoman.ctx;
  if (session) routeOutput();
  if (!document.hidden && session && ctx && ctx.state !== 'running') ctx.resume();
  if (!document.hidden && watch.playing && watch.ctx && watch.ctx.state !== 'running') watch.ctx.resume();
});

mode = loadMode();
stats.orig.mix = loadOrigMix();
mediaSessionActions();
{
  // Before the room list: the language of the remembered or linked channel.
  const want = loadChoice();
  sel.lang = want.lang;
  await setLanguage(wantedUiLang());
  sel.lang = null;
}
renderMode();
loadRooms();
