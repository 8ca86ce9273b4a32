// dragoman interpreter console (/booth): sign in to a booth, send the
// microphone over WebRTC, hear the incoming feed, run the booth.
//
// Contract: docs/protocol.md, "WS /ws/booth". In short: the token travels in
// the first WebSocket message only (never in a URL); after `joined` the page
// offers one sendrecv audio transceiver (microphone out, incoming feed back on
// the same m-line), trickles ICE both ways, and drives the console with small
// JSON messages. The server's `state` message is the truth the page renders:
// a button press only sends a request and shows it as pending.
//
// Audio: the microphone is taken with every browser processing stage off
// (echo cancellation, noise suppression, AGC would colour the voice and pump
// the floor). The incoming feed is a remote WebRTC stream: Chromium only
// delivers its samples if it is attached to a media element, so it goes to a
// muted <audio> and, for the sound, through Web Audio (source -> GainNode for
// the incoming volume -> speakers), where the page also meters it.
//
// Strings: i18n.js (i18n/<code>.json); the interpreter's pick in the header,
// else the browser's language. Shortcuts go by the physical key (e.code), so
// they work on an Armenian or Russian layout too; F8/F9 also work while typing
// and with a screen reader in browse mode (which takes the letter keys).

import { LANGS, browserLanguage, fillPicker, i18n, num, onLanguage, saveLanguage, savedLanguage, setLanguage, t } from './i18n.js';

const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 5000;
const METER_MS = 100;
const ALERT_MS = 8000; // non-critical errors fade after this; refusals stay
const TOKEN_KEY = (room, booth) => `dragoman.booth.token:${room}/${booth}`; // sessionStorage: this tab only
const PREFS_KEY = 'dragoman.booth'; // localStorage: name, volume, last room/booth (no secrets)

const $ = (id) => document.getElementById(id);
const ui = {
  signin: $('signin'), form: $('signin-form'), room: $('room'), booth: $('booth'), name: $('name'), token: $('token'),
  signinButton: $('signin-button'), signinStatus: $('signin-status'), console: $('console'),
  title: $('booth-title'), roomName: $('room-name'), chState: $('ch-state'), audience: $('audience'), conn: $('conn'),
  clock: $('clock'), alert: $('alert'), alertText: $('alert-text'), alertClose: $('alert-close'),
  onair: $('onair'), onairLabel: $('onair-label'), onairSub: $('onair-sub'), cough: $('cough'),
  micBar: $('mic-bar'), micDb: $('mic-db'), retBar: $('ret-bar'), retDb: $('ret-db'),
  volume: $('ret-volume'), volumeText: $('ret-volume-text'), enableSound: $('enable-sound'),
  incoming: $('incoming'), outgoing: $('outgoing'), team: $('team'),
  hoRequest: $('handover-request'), hoRequestText: $('handover-request-text'), acceptHandover: $('accept-handover'),
  requestHandover: $('request-handover'), takeOver: $('take-over'), handOver: $('hand-over'), slowDown: $('slow-down'),
  onairTime: $('onair-time'), chatLog: $('chat-log'), chatForm: $('chat-form'), chatText: $('chat-text'),
  signout: $('signout'), returnAudio: $('return-audio'), announce: $('announce'), uiLang: $('ui-lang'),
  stagePanel: $('stage-panel'), stageVideo: $('stage-video'), stageLost: $('stage-lost'),
};

// Exposed for tests and curious engineers; never read back by the page.
const stats = {
  phase: 'signed-out', // signed-out | connecting | joined | reconnecting | refused
  id: null, ice: 'new', connection: 'new', reconnects: 0,
  mic: { peakDb: -Infinity }, incoming: { peakDb: -Infinity },
  sentAt: {}, // message type -> Date.now() when last sent
  received: [], // last 100 server messages: {at, msg}
  lastError: null, trackAt: null, answerAt: null, joinedAt: null,
  video: { trackAt: null, firstFrameAt: null, frames: 0 }, // the stage's picture
};
const audio = { ctx: null, returnNode: null, returnAnalyser: null, micAnalyser: null, micSource: null, returnSource: null };
let session = null; // the current sign-in, across reconnects
let mic = null; // MediaStream, kept across reconnects
let rooms = [];

window.dragomanBooth = {
  get pc() { return session && session.pc; },
  get ws() { return session && session.ws; },
  get state() { return session && session.state; },
  get joined() { return session && session.joined; },
  stats,
  get ctx() { return audio.ctx; },
  get returnNode() { return audio.returnNode; },
  get micNode() { return audio.micAnalyser; },
};

// ---- preferences -------------------------------------------------------------

function prefs() {
  try { return JSON.parse(localStorage.getItem(PREFS_KEY)) || {}; } catch { return {}; }
}
function savePrefs(p) {
  try { localStorage.setItem(PREFS_KEY, JSON.stringify({ ...prefs(), ...p })); } catch { /* private mode */ }
}
function storedToken(room, booth) {
  try { return sessionStorage.getItem(TOKEN_KEY(room, booth)); } catch { return null; }
}
function storeToken(room, booth, token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY(room, booth), token);
    else sessionStorage.removeItem(TOKEN_KEY(room, booth));
  } catch { /* private mode: the token lives in memory only */ }
}

// ---- sign-in form ------------------------------------------------------------

const findRoom = (id) => rooms.find((r) => r.id === id);
const langName = (c) => (c.native_name && c.native_name !== c.lang ? `${c.native_name} (${c.lang})` : c.lang);
// The floor's name from the server is English ("Original (English)"): ours is translated.
const floorName = () => t('booth.floor');

function fillBooths(wantBooth) {
  const room = findRoom(ui.room.value);
  const booths = room ? room.channels.filter((c) => c.lang !== 'orig') : [];
  const opts = booths.map((c) => new Option(langName(c), c.lang));
  if (wantBooth && !booths.some((c) => c.lang === wantBooth)) opts.push(new Option(wantBooth, wantBooth));
  ui.booth.replaceChildren(...opts);
  if (wantBooth) ui.booth.value = wantBooth;
}

async function loadRooms() {
  const q = new URLSearchParams(location.search);
  const p = prefs();
  const wantRoom = q.get('room') || p.room || '';
  const wantBooth = q.get('booth') || p.booth || '';
  ui.name.value = p.name || '';
  try {
    const res = await fetch('/api/v1/rooms', { cache: 'no-store' });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    rooms = (await res.json()).rooms || [];
  } catch (e) {
    setSigninStatus('booth.status.roomsFailed', { error: e.message }, 'warn');
  }
  const opts = rooms.map((r) => new Option(r.title ? `${r.title} (${r.id})` : r.id, r.id));
  if (wantRoom && !findRoom(wantRoom)) opts.push(new Option(wantRoom, wantRoom));
  ui.room.replaceChildren(...opts);
  if (wantRoom) ui.room.value = wantRoom;
  fillBooths(wantBooth);
  // A reload of a signed-in tab signs in again by itself.
  const token = storedToken(ui.room.value, ui.booth.value);
  if (token && ui.name.value) signIn(ui.room.value, ui.booth.value, ui.name.value, token);
  else (ui.name.value ? ui.token : ui.name).focus();
}

// Status lines and alerts hold an i18n key, so a language switch re-renders them.
let signinMsg = null;
function setSigninStatus(key, vars = {}, kind = '') {
  signinMsg = key ? { key, vars, kind } : null;
  renderSigninStatus();
}
function renderSigninStatus() {
  ui.signinStatus.textContent = signinMsg ? msgText(signinMsg) : '';
  ui.signinStatus.dataset.kind = signinMsg ? signinMsg.kind : '';
}
// {key, vars} or {keys: [...]} (sentences joined) -> text.
function msgText(m) {
  if (m.keys) return m.keys.map((x) => msgText(x)).join(' ');
  return t(m.key, m.vars || {});
}

function showSignin() {
  ui.signin.hidden = false;
  ui.console.hidden = true;
  ui.signinButton.disabled = false;
  document.body.dataset.onair = 'false';
  renderTitle();
}

// ---- the session: one sign-in, across reconnects ---------------------------

class Session {
  constructor(room, booth, name, token) {
    Object.assign(this, { room, booth, name, token });
    this.ws = null;
    this.pc = null;
    this.joined = null;
    this.state = null;
    this.backoff = RECONNECT_MIN_MS;
    this.closed = false;
    this.pendingIce = [];
    this.serverError = null;
    this.wasOnAir = false;
    this.pending = {}; // requests sent and not yet reflected in a state message
  }

  open() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const q = new URLSearchParams({ room: this.room, booth: this.booth });
    const ws = new WebSocket(`${proto}//${location.host}/ws/booth?${q}`);
    this.ws = ws;
    this.serverError = null;
    this.joined = null;
    stats.phase = stats.phase === 'reconnecting' ? 'reconnecting' : 'connecting';
    ws.onopen = () => ws.send(JSON.stringify({ type: 'join', token: this.token, name: this.name }));
    ws.onmessage = (e) => {
      let m;
      try { m = JSON.parse(e.data); } catch { return; }
      stats.received.push({ at: Date.now(), msg: m });
      if (stats.received.length > 100) stats.received.shift();
      this.onMessage(m);
    };
    ws.onclose = (e) => this.onClose(e);
  }

  send(msg) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    stats.sentAt[msg.type] = Date.now();
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  onMessage(m) {
    switch (m.type) {
      case 'joined': this.onJoined(m); break;
      case 'state': this.onState(m); break;
      case 'answer': this.onAnswer(m.sdp); break;
      case 'ice': this.onRemoteIce(m); break;
      case 'handover-request': showHandoverRequest(m); break;
      case 'chat': addChat({ from: m.from, text: m.text, at: m.at }); break;
      case 'slow-down': addChat({ i18n: { key: 'booth.chat.slowDown', vars: { name: m.from } }, at: m.at, kind: 'system' }); break;
      case 'message':
        addChat({ from: { key: 'booth.crew' }, text: m.text, at: m.at, kind: 'crew' });
        showAlert('booth.alert.crew', { text: m.text }, 'info');
        break;
      case 'error': this.onError(m); break;
      default: break; // newer server: ignore what we do not know
    }
  }

  onError(m) {
    // Known codes in the interpreter's language; a newer code as the server says it.
    const msg = errorMsg(m.code, m.message);
    stats.lastError = { code: m.code, message: m.message || m.code, at: Date.now() };
    if (!this.joined) { this.serverError = { code: m.code, msg }; return; } // a refusal: the close follows
    if (m.code === 'not-supported' && this.pending.output) {
      delete this.pending.output;
      retourUnavailable = msg;
      renderOutgoing();
    }
    if (m.code === 'not-live' || m.code === 'channel-busy') delete this.pending.onAir;
    if (m.code === 'channel-busy' || m.code === 'bad-output') { delete this.pending.output; renderOutgoing(); }
    if (m.code === 'bad-sdp') { showAlert('booth.alert.badSdp', { error: m.message || m.code }, 'error', true); this.restart(); return; }
    showAlert(msg.key, msg.vars, 'error');
    render();
  }

  async onJoined(m) {
    this.joined = m;
    stats.joinedAt = Date.now();
    this.backoff = RECONNECT_MIN_MS;
    stats.phase = 'joined';
    stats.id = m.id;
    coughHolders.clear();
    coughSent = false;
    storeToken(this.room, this.booth, this.token);
    ui.signin.hidden = true;
    ui.console.hidden = false;
    renderChannels();
    if (stats.reconnects) {
      showAlert(this.wasOnAir ? 'booth.alert.reconnectedOff' : 'booth.alert.reconnected', {},
        this.wasOnAir ? 'warn' : 'info', this.wasOnAir);
    } else {
      hideAlert();
    }
    if (this.listen && this.listen !== 'floor') this.send({ type: 'listen', source: this.listen }); // keep the relay choice
    try {
      await ensureAudio();
      await ensureMic();
      if (this.closed || this.joined !== m) return;
      await this.startPeer(m.ice_servers || []);
    } catch (e) {
      console.warn('dragoman booth:', e);
      if (e.i18n) showAlert(e.i18n.key, e.i18n.vars, 'error', true);
      else showAlert('booth.alert.failed', { error: e.message || String(e) }, 'error', true);
    }
    render();
  }

  onState(s) {
    const prev = this.state;
    this.state = s;
    if (s.on_air !== undefined) delete this.pending.onAir;
    if (s.listen !== undefined && s.listen === this.pending.listen) delete this.pending.listen;
    if (s.listen) this.listen = s.listen;
    if (s.live !== (prev && prev.live)) {
      delete this.pending.handover;
      hideHandoverRequest(); // whoever asked, the question is answered

    }
    const meOnAir = s.on_air && s.live === stats.id;
    if (meOnAir && !(prev && prev.on_air && prev.live === stats.id)) this.onAirSince = Date.now();
    if (!s.on_air) this.onAirSince = null;
    this.wasOnAir = meOnAir;
    render();
  }

  // ---- WebRTC ----

  async startPeer(iceServers) {
    this.closePeer();
    const pc = new RTCPeerConnection({ iceServers, bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
    this.pc = pc;
    this.pendingIce = [];
    const track = mic.getAudioTracks()[0];
    const tr = pc.addTransceiver(track, { direction: 'sendrecv', streams: [mic] });
    preferOpus(tr);
    // The stage's picture, if the room sends one: a second m-line, receive only
    // (the server answers it with VP8, encoded once for every booth).
    if (this.joined && this.joined.video) pc.addTransceiver('video', { direction: 'recvonly' });
    pc.ontrack = (e) => {
      if (e.track.kind === 'video') { attachVideo(e.track); return; }
      stats.trackAt = Date.now();
      attachReturn(e.streams[0] || new MediaStream([e.track]));
    };
    pc.onicecandidate = (e) => {
      const c = e.candidate;
      this.send({ type: 'ice', candidate: c ? c.candidate : '', sdpMLineIndex: c ? c.sdpMLineIndex ?? 0 : 0 });
    };
    pc.oniceconnectionstatechange = () => { stats.ice = pc.iceConnectionState; renderConn(); };
    pc.onconnectionstatechange = () => {
      stats.connection = pc.connectionState;
      renderConn();
      // The server's peer is per sign-in: a failed path needs a fresh sign-in.
      if (pc.connectionState === 'failed' && this.pc === pc) {
        showAlert('booth.alert.audioFailed', {}, 'error', true);
        this.restart();
      }
    };
    const offer = await pc.createOffer();
    offer.sdp = withInbandFec(offer.sdp);
    await pc.setLocalDescription(offer);
    this.send({ type: 'offer', sdp: pc.localDescription.sdp });
    renderConn();
  }

  async onAnswer(sdp) {
    if (!this.pc) return;
    try {
      await this.pc.setRemoteDescription({ type: 'answer', sdp });
      stats.answerAt = Date.now();
      for (const c of this.pendingIce.splice(0)) await this.addIce(c);
    } catch (e) {
      showAlert('booth.alert.badAnswer', { error: e.message }, 'error', true);
    }
  }

  onRemoteIce(m) {
    if (!m.candidate) return; // end of candidates
    const c = { candidate: m.candidate, sdpMLineIndex: m.sdpMLineIndex ?? 0 };
    if (!this.pc || !this.pc.remoteDescription) this.pendingIce.push(c);
    else this.addIce(c);
  }

  async addIce(c) {
    try { await this.pc.addIceCandidate(c); } catch (e) { console.warn('dragoman booth: candidate refused', e.message); }
  }

  closePeer() {
    if (this.pc) { this.pc.ontrack = this.pc.onicecandidate = this.pc.onconnectionstatechange = null; this.pc.close(); }
    this.pc = null;
    detachReturn();
    detachVideo();
    stats.ice = stats.connection = 'new';
  }

  // ---- connection life ----

  // Drop the socket and sign in afresh (the server takes us off air).
  restart() {
    if (this.closed) return;
    const ws = this.ws;
    if (ws) { ws.onclose = null; ws.close(1000); }
    this.onClose({ code: 1006, restart: true });
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.ws) { this.ws.onclose = null; this.ws.close(1000); }
    this.ws = null;
    this.closePeer();
  }

  onClose(e) {
    this.ws = null;
    this.closePeer();
    if (this.closed) return;
    const refusal = this.serverError;
    // 4xxx before `joined`: the server refused the sign-in. Retrying the same
    // token would only count as another failure: back to the form.
    if (!this.joined && (refusal || (e.code >= 4000 && e.code < 5000))) {
      const code = refusal ? refusal.code : `close ${e.code}`;
      const msg = refusal ? refusal.msg : errorKeys[code] ? { key: errorKeys[code] } : { key: 'booth.error.refused', vars: { code } };
      if (code === 'bad-token') storeToken(this.room, this.booth, null);
      this.closed = true;
      session = null;
      stats.phase = 'refused';
      showSignin();
      signinMsg = { keys: [msg, ...(hintKeys[code] ? [{ key: hintKeys[code] }] : [])], kind: 'error' };
      renderSigninStatus();
      ui.signinStatus.dataset.code = code;
      hideAlert();
      if (code === 'bad-token') ui.token.select();
      renderConn();
      return;
    }
    const wasJoined = !!this.joined;
    this.joined = null;
    this.state = null;
    stats.phase = 'reconnecting';
    if (wasJoined) stats.reconnects++;
    showAlert('booth.alert.lost', { s: num(this.backoff / 1000, 1) }, 'error', true);
    this.timer = setTimeout(() => { if (!this.closed) this.open(); }, this.backoff);
    this.backoff = Math.min(RECONNECT_MAX_MS, this.backoff * 2);
    render();
  }
}

// Server error codes (docs/protocol.md) -> i18n keys.
const errorKeys = Object.fromEntries(['bad-token', 'unknown-booth', 'booth-full', 'bad-message', 'too-many-attempts',
  'not-live', 'not-supported', 'channel-busy', 'bad-output', 'kicked'].map((c) => [c, `booth.error.${c}`]));
const hintKeys = {
  'bad-token': 'booth.hint.bad-token',
  'booth-full': 'booth.hint.booth-full',
  'too-many-attempts': 'booth.hint.too-many-attempts',
};
function errorMsg(code, message) {
  if (errorKeys[code]) return { key: errorKeys[code] };
  return { key: 'booth.error.server', vars: { message: message || code || '?' } };
}

function signIn(room, booth, name, token) {
  if (session) session.close();
  stats.reconnects = 0;
  savePrefs({ room, booth, name });
  ui.signinButton.disabled = true;
  setSigninStatus('booth.status.signingIn');
  delete ui.signinStatus.dataset.code;
  ensureAudio().catch(() => {}); // inside the click: lets the AudioContext start
  session = new Session(room, booth, name, token);
  session.open();
  renderTitle();
  renderConn();
  // The form comes back only on a refusal; re-enable the button after a while anyway.
  setTimeout(() => { ui.signinButton.disabled = false; }, 3000);
}

function signOut() {
  if (session) { storeToken(session.room, session.booth, null); session.close(); }
  session = null;
  stats.phase = 'signed-out';
  hideAlert();
  showSignin();
  setSigninStatus('booth.status.signedOut');
  ui.token.value = '';
  renderConn();
}

// ---- SDP --------------------------------------------------------------------

// Opus in-band FEC lets the server's decoder rebuild a lost packet from the
// next one: add useinbandfec=1 to the offer's Opus fmtp when it is missing.
function withInbandFec(sdp) {
  const m = /a=rtpmap:(\d+) opus\/48000/i.exec(sdp);
  if (!m) return sdp;
  const pt = m[1];
  const fmtp = new RegExp(`^a=fmtp:${pt} (.*)$`, 'm');
  const f = fmtp.exec(sdp);
  if (!f) return sdp.replace(m[0], `${m[0]}\r\na=fmtp:${pt} useinbandfec=1`);
  if (/useinbandfec=1/.test(f[1])) return sdp;
  const params = f[1].replace(/;?\s*useinbandfec=\d/, '');
  return sdp.replace(f[0], `a=fmtp:${pt} ${params ? `${params};` : ''}useinbandfec=1`);
}

function preferOpus(tr) {
  if (!tr.setCodecPreferences || !RTCRtpReceiver.getCapabilities) return;
  const codecs = RTCRtpReceiver.getCapabilities('audio').codecs;
  const opus = codecs.filter((c) => /opus/i.test(c.mimeType));
  if (opus.length) tr.setCodecPreferences([...opus, ...codecs.filter((c) => !/opus/i.test(c.mimeType))]);
}

// ---- audio ------------------------------------------------------------------

async function ensureAudio() {
  if (!audio.ctx) {
    const ctx = new AudioContext({ latencyHint: 'interactive' });
    audio.ctx = ctx;
    audio.returnNode = new GainNode(ctx, { gain: volumeGain() });
    audio.returnAnalyser = new AnalyserNode(ctx, { fftSize: 2048 });
    audio.returnNode.connect(ctx.destination);
    audio.returnNode.connect(audio.returnAnalyser);
    ctx.onstatechange = renderSoundButton;
  }
  if (audio.ctx.state !== 'running') await Promise.race([audio.ctx.resume(), new Promise((r) => setTimeout(r, 300))]);
  renderSoundButton();
}

function renderSoundButton() {
  ui.enableSound.hidden = !audio.ctx || audio.ctx.state === 'running';
}

async function ensureMic() {
  if (mic && mic.getAudioTracks().some((t) => t.readyState === 'live')) return;
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw Object.assign(new Error('no getUserMedia'), { i18n: { key: 'booth.alert.noMicApi' } });
  }
  try {
    mic = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
      video: false,
    });
  } catch (e) {
    throw Object.assign(new Error(`No microphone: ${e.message}`), {
      i18n: e.name === 'NotAllowedError' ? { key: 'booth.alert.micRefused' } : { key: 'booth.alert.noMic', vars: { error: e.message } },
    });
  }
  if (audio.micSource) audio.micSource.disconnect();
  audio.micSource = audio.ctx.createMediaStreamSource(mic);
  audio.micAnalyser = new AnalyserNode(audio.ctx, { fftSize: 2048 });
  audio.micSource.connect(audio.micAnalyser);
  mic.getAudioTracks()[0].onended = () => showAlert('booth.alert.micEnded', {}, 'error', true);
}

function attachReturn(stream) {
  detachReturn();
  ui.returnAudio.srcObject = stream; // muted: it only makes the samples flow
  ui.returnAudio.play().catch(() => {});
  audio.returnSource = audio.ctx.createMediaStreamSource(stream);
  audio.returnSource.connect(audio.returnNode);
}

function detachReturn() {
  if (audio.returnSource) audio.returnSource.disconnect();
  audio.returnSource = null;
  ui.returnAudio.srcObject = null;
}

// ---- the stage's picture -----------------------------------------------------

function attachVideo(track) {
  stats.video.trackAt = Date.now();
  stats.video.firstFrameAt = null;
  ui.stageVideo.srcObject = new MediaStream([track]);
  ui.stageVideo.play().catch(() => {}); // muted: autoplay is allowed
  // first decoded frame and a frame count, for the tests and the curious
  const v = ui.stageVideo;
  if (!v.requestVideoFrameCallback) return;
  const onFrame = () => {
    if (v.srcObject === null) return;
    stats.video.frames += 1;
    if (!stats.video.firstFrameAt) stats.video.firstFrameAt = Date.now();
    v.requestVideoFrameCallback(onFrame);
  };
  v.requestVideoFrameCallback(onFrame);
}

function detachVideo() {
  ui.stageVideo.srcObject = null;
}

function renderStage() {
  const j = session && session.joined;
  ui.stagePanel.hidden = !(j && j.video);
  const s = session && session.state;
  ui.stageLost.hidden = !(s && s.stage_live === false);
}

function volumeGain() {
  const v = Number(prefs().volume ?? 100);
  return Number.isFinite(v) ? v / 100 : 1;
}

const dbfs = (v) => (v > 0 ? 20 * Math.log10(v) : -Infinity);
const peakOf = (analyser, buf) => {
  analyser.getFloatTimeDomainData(buf);
  let p = 0;
  for (const v of buf) p = Math.max(p, Math.abs(v));
  return p;
};
const meterBuf = new Float32Array(2048);

function renderMeter(bar, text, db) {
  // -60..0 dBFS; the bar turns red from -3 dBFS (clipping soon).
  const frac = Math.max(0, Math.min(1, (db + 60) / 60));
  bar.style.transform = `scaleX(${frac})`;
  bar.classList.toggle('hot', db > -3);
  text.textContent = db > -100 ? t('unit.db', { v: num(db) }) : '–∞';
}

function tickMeters() {
  if (audio.micAnalyser) {
    stats.mic.peakDb = dbfs(peakOf(audio.micAnalyser, meterBuf));
    renderMeter(ui.micBar, ui.micDb, stats.mic.peakDb);
  }
  if (audio.returnAnalyser) {
    stats.incoming.peakDb = audio.returnSource ? dbfs(peakOf(audio.returnAnalyser, meterBuf)) : -Infinity;
    renderMeter(ui.retBar, ui.retDb, stats.incoming.peakDb);
  }
}

// ---- console actions ---------------------------------------------------------

const amLive = () => !!(session && session.state && session.state.live === stats.id);
const partner = () => session && session.state && (session.state.interpreters || []).find((i) => i.id !== stats.id);
const liveOne = () => session && session.state && (session.state.interpreters || []).find((i) => i.id === session.state.live);

function toggleOnAir() {
  if (!session || !session.state) return;
  if (!amLive()) { showAlert('booth.error.not-live', {}, 'warn'); return; }
  const want = !session.state.on_air;
  if (session.send({ type: 'on-air', value: want })) session.pending.onAir = want;
  render();
}

// Cough is held by any of: the pointer on the button, the C key, Space/Enter
// on the focused button. Muted while any holds it.
const coughHolders = new Set();
let coughSent = false;
function holdCough(holder, down) {
  if (down) coughHolders.add(holder); else coughHolders.delete(holder);
  const want = coughHolders.size > 0;
  ui.cough.setAttribute('aria-pressed', String(want));
  if (want === coughSent) return;
  if (want && !(amLive() && session.state.on_air)) { coughHolders.clear(); ui.cough.setAttribute('aria-pressed', 'false'); return; }
  coughSent = want;
  if (session) session.send({ type: 'cough', value: want });
}

function handoverKey() {
  if (!session || !session.state) return;
  if (amLive()) { if (partner()) handOver(); } else requestHandover();
}
function handOver() {
  if (session && session.send({ type: 'hand-over' })) session.pending.handover = true;
  render();
}
function requestHandover() {
  if (session && session.send({ type: 'request-handover' })) {
    const lv = liveOne();
    addChat({ i18n: lv ? { key: 'booth.chat.youAsked', vars: { name: lv.name } } : { key: 'booth.chat.youAskedPartner' }, kind: 'system' });
  }
}
function takeOver() {
  if (session && session.send({ type: 'take-over' })) session.pending.handover = true;
  render();
}
function slowDown() {
  if (session) session.send({ type: 'slow-down' });
}
function listen(source) {
  if (!session) return;
  if (session.send({ type: 'listen', source })) session.pending.listen = source;
  renderChannels();
}

// ---- rendering ----------------------------------------------------------------

function pad2(n) { return String(n).padStart(2, '0'); }
function hms(d) { return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`; }
function mmss(ms) { const s = Math.floor(ms / 1000); return `${Math.floor(s / 60)}:${pad2(s % 60)}`; }

// Who is live, on air, coughing: said once to screen readers when it changes.
let lastSaid = '';
function announce(m) {
  const text = msgText(m);
  if (text === lastSaid) return;
  lastSaid = text;
  ui.announce.textContent = text;
}

const upper = (name) => String(name).toLocaleUpperCase(i18n.lang || 'en');

function renderTitle() {
  ui.title.textContent = session ? t('booth.titleBooth', { booth: session.booth }) : t('booth.title');
  ui.roomName.textContent = session ? (findRoom(session.room) && findRoom(session.room).title) || session.room : '';
}

function render() {
  const s = session && session.state;
  const live = amLive();
  const onAir = !!(s && s.on_air);
  const cough = !!(s && s.cough);
  const me = s && (s.interpreters || []).find((i) => i.id === stats.id);
  const mediaUp = !me || me.connected !== false;
  const lv = liveOne();
  renderStage();

  // Tally: the frame and the big button are red only when MY microphone is on air.
  document.body.dataset.onair = String(live && onAir);
  document.body.dataset.cough = String(live && onAir && cough);
  ui.onair.dataset.cough = String(cough);
  ui.onair.setAttribute('aria-pressed', String(live && onAir));
  const pending = session && session.pending.onAir !== undefined;
  ui.onair.dataset.state = pending ? 'pending' : live && onAir ? 'on' : 'off';
  ui.onair.disabled = !s || !live || (!mediaUp && !onAir);
  if (!s) {
    ui.onairLabel.textContent = t('booth.offAir');
    ui.onairSub.textContent = session ? t('booth.sub.connecting') : '';
  } else if (live) {
    ui.onairLabel.textContent = onAir ? (cough ? t('booth.muted') : t('booth.onAir')) : t('booth.offAir');
    const since = session.onAirSince ? ` · ${mmss(Date.now() - session.onAirSince)}` : '';
    ui.onairSub.textContent = !mediaUp && !onAir ? t('booth.sub.waitingAudio') : `${t('booth.sub.pressO')}${since}`;
  } else {
    ui.onairLabel.textContent = lv ? t('booth.partnerLive', { NAME: upper(lv.name) }) : t('booth.offAir');
    ui.onairSub.textContent = onAir ? t('booth.sub.partnerOnAir', { name: lv ? lv.name : t('booth.yourPartner') }) : t('booth.sub.partnerLive');
  }
  ui.cough.disabled = !(live && onAir);
  if (s) {
    if (live) announce({ key: onAir ? (cough ? 'booth.say.muted' : 'booth.say.onAir') : 'booth.say.offAir' });
    else if (lv) announce({ key: onAir ? 'booth.say.partnerOnAir' : 'booth.say.partnerLive', vars: { name: lv.name } });
  }

  // Header facts.
  const cs = s ? s.channel_state || (onAir ? 'interpretation' : 'floor') : null;
  ui.chState.textContent = cs ? t(`booth.channel.${cs}`) : '–';
  ui.chState.dataset.state = cs || '';
  ui.audience.textContent = s && s.listeners !== undefined ? t('booth.listening', { n: s.listeners }) : '–';

  // Team.
  ui.team.replaceChildren(...(s ? s.interpreters || [] : []).map((i) => {
    const li = document.createElement('li');
    li.dataset.live = String(i.id === s.live);
    li.dataset.onair = String(i.id === s.live && onAir);
    li.dataset.id = i.id;
    const badge = document.createElement('span');
    badge.className = 'badge';
    badge.textContent = i.id === s.live ? (onAir ? t('booth.badge.onAir') : t('booth.badge.live')) : t('booth.badge.partner');
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = i.name;
    li.append(badge, name);
    if (i.id === stats.id) {
      const me2 = document.createElement('span');
      me2.className = 'me';
      me2.textContent = i.connected === false ? t('booth.team.youConnecting') : t('booth.team.you');
      li.append(me2);
    } else if (i.connected === false) {
      const c = document.createElement('span');
      c.className = 'me';
      c.textContent = t('booth.team.connecting');
      li.append(c);
    }
    return li;
  }));
  const p = partner();
  ui.handOver.hidden = !(s && live && p);
  ui.handOver.textContent = p ? t('booth.handOverTo', { name: p.name }) : t('booth.handOver');
  ui.requestHandover.hidden = !(s && !live);
  ui.takeOver.hidden = !(s && !live);
  for (const b of [ui.handOver, ui.takeOver]) b.disabled = !!(session && session.pending.handover);
  ui.slowDown.disabled = !s;
  ui.onairTime.textContent = s && onAir && lv
    ? (session.onAirSince ? t('booth.onAirFor', { name: lv.name, time: mmss(Date.now() - session.onAirSince) }) : t('booth.onAirName', { name: lv.name }))
    : '';

  renderChannels();
  renderConn();
}

let retourUnavailable = { key: 'booth.retourUnavailable' };

function renderChannels() {
  const j = session && session.joined;
  const s = session && session.state;
  const chans = j ? j.channels || [] : [];
  const current = (session && session.pending.listen) || (s && s.listen) || 'floor';
  const sources = [{ source: 'floor', label: floorName() },
    ...chans.filter((c) => c.lang !== 'orig' && c.lang !== (session && session.booth))
      .map((c) => ({ source: c.lang, label: t('booth.relay', { name: langName(c) }) }))];
  syncChoices(ui.incoming, 'source', sources.map((x) => x.source), (b, source, i) => {
    b.setAttribute('role', 'radio');
    b.setAttribute('aria-checked', String(source === current));
    // Roving focus (one tab stop for the group, arrows move): the radio pattern.
    b.tabIndex = source === current ? 0 : -1;
    setText(b, sources[i].label);
  });
  renderOutgoing();
}

function setText(el, text) { if (el.textContent !== text) el.textContent = text; }

// The choice buttons of a group, kept across renders (a state message comes
// with every change: rebuilding would take the keyboard focus away); rebuilt
// only when the set changes, and then the focus stays on the same choice.
function syncChoices(box, attr, keys, update) {
  const now = [...box.children];
  if (now.length !== keys.length || now.some((b, i) => b.dataset[attr] !== keys[i])) {
    const focused = box.contains(document.activeElement) ? document.activeElement.dataset[attr] : null;
    box.replaceChildren(...keys.map((k) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'choice';
      b.dataset[attr] = k;
      return b;
    }));
    const again = focused && [...box.children].find((b) => b.dataset[attr] === focused);
    if (again) again.focus();
  }
  [...box.children].forEach((b, i) => update(b, keys[i], i));
}

function renderOutgoing() {
  const j = session && session.joined;
  const s = session && session.state;
  const chans = j ? (j.channels || []).filter((c) => c.lang !== 'orig') : [];
  const out = (s && s.output) || (session && session.booth);
  const own = (j && j.booth) || (session && session.booth);
  // A is the booth's own channel, B any other (retour). A server without
  // retour (no "retour": true in `joined`) shows the others disabled, with
  // the reason as a tooltip.
  const retour = !!(j && j.retour === true);
  syncChoices(ui.outgoing, 'output', chans.map((c) => c.lang), (b, lang, i) => {
    const c = chans[i];
    b.setAttribute('aria-pressed', String(lang === out));
    const taken = s && s.output_taken_by && lang === out ? ` ${t('booth.outputTaken', { booth: s.output_taken_by })}` : '';
    setText(b, `${t(lang === own ? 'booth.outputA' : 'booth.outputB', { name: langName(c) })}${taken}`);
    const off = lang !== out && !retour;
    b.disabled = off;
    if (off) b.title = msgText(retourUnavailable); else b.removeAttribute('title');
  });
}

function renderConn() {
  const pc = session && session.pc;
  let key = 'booth.conn.signedOut';
  let kind = '';
  if (session) {
    if (stats.phase === 'reconnecting') { key = 'booth.conn.reconnecting'; kind = 'error'; }
    else if (!session.joined) { key = 'booth.conn.signingIn'; kind = 'warn'; }
    else if (!pc || pc.connectionState === 'new' || pc.connectionState === 'connecting') { key = 'booth.conn.audioConnecting'; kind = 'warn'; }
    else if (pc.connectionState === 'connected') { key = 'booth.conn.connected'; kind = 'ok'; }
    else { key = pc.connectionState === 'failed' ? 'booth.conn.audioFailed' : 'booth.conn.audioLost'; kind = 'error'; }
  }
  ui.conn.textContent = t(key);
  ui.conn.dataset.kind = kind;
}

let alertTimer = null;
let alertMsg = null;
function showAlert(key, vars = {}, kind = 'error', sticky = false) {
  alertMsg = { key, vars };
  ui.alertText.textContent = msgText(alertMsg);
  ui.alert.dataset.kind = kind;
  ui.alert.hidden = false;
  clearTimeout(alertTimer);
  if (!sticky) alertTimer = setTimeout(hideAlert, ALERT_MS);
}
function hideAlert() { ui.alert.hidden = true; alertMsg = null; clearTimeout(alertTimer); }

let hoTimer = null;
let hoFrom = null;
function showHandoverRequest(m) {
  hoFrom = m.name || null;
  ui.hoRequest.hidden = false;
  ui.hoRequestText.textContent = hoFrom ? t('booth.handoverAsk', { name: hoFrom }) : t('booth.handoverAskPartner');
  clearTimeout(hoTimer);
  hoTimer = setTimeout(hideHandoverRequest, 60000);
  addChat({ i18n: hoFrom ? { key: 'booth.chat.asked', vars: { name: hoFrom } } : { key: 'booth.chat.askedPartner' }, kind: 'system' });
}
function hideHandoverRequest() { ui.hoRequest.hidden = true; clearTimeout(hoTimer); }

// text: as typed by a person; i18n: {key, vars} of a line the page writes
// (kept, so a language switch rewrites it); from: a name or {key}.
function addChat({ from, text, i18n: msg, at, kind = '' }) {
  const li = document.createElement('li');
  if (kind) li.dataset.kind = kind;
  const time = document.createElement('span');
  time.className = 'at';
  time.textContent = hms(at ? new Date(at) : new Date()).slice(0, 5);
  li.append(time);
  if (from) {
    const f = document.createElement('span');
    f.className = 'from';
    if (typeof from === 'object') f.dataset.key = from.key;
    f.textContent = `${typeof from === 'object' ? t(from.key) : from}:`;
    li.append(f);
  }
  const body = document.createElement('span');
  body.className = 'text';
  if (msg) { body.dataset.msg = JSON.stringify(msg); body.textContent = msgText(msg); } else body.textContent = text || '';
  li.append(body);
  const atBottom = ui.chatLog.scrollTop + ui.chatLog.clientHeight >= ui.chatLog.scrollHeight - 4;
  ui.chatLog.append(li);
  while (ui.chatLog.children.length > 200) ui.chatLog.firstElementChild.remove();
  if (atBottom) ui.chatLog.scrollTop = ui.chatLog.scrollHeight;
}

// A language switch: everything the page wrote itself, again.
onLanguage(() => {
  fillPicker(ui.uiLang, LANGS);
  renderTitle();
  renderSigninStatus();
  if (alertMsg) ui.alertText.textContent = msgText(alertMsg);
  if (!ui.hoRequest.hidden) ui.hoRequestText.textContent = hoFrom ? t('booth.handoverAsk', { name: hoFrom }) : t('booth.handoverAskPartner');
  for (const el of ui.chatLog.querySelectorAll('[data-msg]')) el.textContent = msgText(JSON.parse(el.dataset.msg));
  for (const el of ui.chatLog.querySelectorAll('.from[data-key]')) el.textContent = `${t(el.dataset.key)}:`;
  ui.volumeText.textContent = t('booth.percent', { v: ui.volume.value });
  lastSaid = ''; // the next change is said in the new language
  render();
});

// ---- events -------------------------------------------------------------------

ui.form.addEventListener('submit', (e) => {
  e.preventDefault();
  const name = ui.name.value.trim();
  const token = ui.token.value;
  if (!ui.room.value || !ui.booth.value) { setSigninStatus('booth.status.pickBooth', {}, 'error'); return; }
  if (!name) { setSigninStatus('booth.status.enterName', {}, 'error'); ui.name.focus(); return; }
  if (!token) { setSigninStatus('booth.status.enterToken', {}, 'error'); ui.token.focus(); return; }
  signIn(ui.room.value, ui.booth.value, name, token);
});
ui.room.addEventListener('change', () => fillBooths(null));
ui.alertClose.addEventListener('click', hideAlert);
ui.onair.addEventListener('click', toggleOnAir);
ui.cough.addEventListener('pointerdown', (e) => {
  if (e.button !== 0) return;
  ui.cough.setPointerCapture(e.pointerId);
  holdCough('pointer', true);
});
for (const ev of ['pointerup', 'pointercancel', 'lostpointercapture']) ui.cough.addEventListener(ev, () => holdCough('pointer', false));
ui.cough.addEventListener('keydown', (e) => {
  if ((e.key === ' ' || e.key === 'Enter') && !e.repeat) { e.preventDefault(); holdCough('button-key', true); }
});
ui.cough.addEventListener('keyup', (e) => { if (e.key === ' ' || e.key === 'Enter') holdCough('button-key', false); });
ui.cough.addEventListener('contextmenu', (e) => e.preventDefault()); // long press on touch screens
ui.incoming.addEventListener('click', (e) => {
  const b = e.target.closest('button[data-source]');
  if (b) listen(b.dataset.source);
});
// Radio group: the arrow keys move to the next source and pick it.
ui.incoming.addEventListener('keydown', (e) => {
  const step = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 }[e.key];
  const all = [...ui.incoming.querySelectorAll('button[data-source]')];
  const i = all.indexOf(e.target);
  if (!step || i < 0) return;
  e.preventDefault();
  const next = all[(i + step + all.length) % all.length];
  listen(next.dataset.source);
  const el = ui.incoming.querySelector(`button[data-source="${CSS.escape(next.dataset.source)}"]`);
  if (el) el.focus();
});
ui.outgoing.addEventListener('click', (e) => {
  const b = e.target.closest('button[data-output]');
  if (!b || b.disabled || !session) return;
  if (session.send({ type: 'output', lang: b.dataset.output })) session.pending.output = b.dataset.output;
});
ui.requestHandover.addEventListener('click', requestHandover);
ui.takeOver.addEventListener('click', takeOver);
ui.handOver.addEventListener('click', handOver);
ui.acceptHandover.addEventListener('click', () => { hideHandoverRequest(); handOver(); });
ui.slowDown.addEventListener('click', slowDown);
ui.chatForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const text = ui.chatText.value.trim();
  if (text && session && session.send({ type: 'chat', text })) ui.chatText.value = '';
});
ui.signout.addEventListener('click', signOut);
ui.volume.value = String(Math.round(volumeGain() * 100)); // its text: with the language, below
ui.volume.addEventListener('input', () => {
  const v = Number(ui.volume.value);
  ui.volumeText.textContent = t('booth.percent', { v });
  if (audio.returnNode) audio.returnNode.gain.setTargetAtTime(v / 100, audio.ctx.currentTime, 0.02);
  savePrefs({ volume: v });
});
ui.enableSound.addEventListener('click', () => ensureAudio());

// Shortcuts work wherever the focus is, except in a text box (Esc leaves it);
// F8 (on air) and F9 (cough) work there too. Letters go by the physical key
// (e.code), so an Armenian or Cyrillic layout does not turn O into "օ" or "щ".
function typing(el) {
  if (!el) return false;
  if (el.isContentEditable || el.tagName === 'TEXTAREA') return true;
  return el.tagName === 'INPUT' && !['range', 'checkbox', 'radio', 'button', 'submit'].includes(el.type);
}
const KEYS = { KeyO: 'onair', KeyC: 'cough', KeyH: 'handover', KeyS: 'slowdown', F8: 'onair', F9: 'cough' };
const LETTERS = { o: 'onair', c: 'cough', h: 'handover', s: 'slowdown' }; // no e.code (some virtual keyboards)
const shortcut = (e) => KEYS[e.code] || (!e.code && LETTERS[e.key.toLowerCase()]) || null;
document.addEventListener('keydown', (e) => {
  if (ui.console.hidden || e.ctrlKey || e.metaKey || e.altKey) return;
  const fkey = e.code === 'F8' || e.code === 'F9' || e.key === 'F8' || e.key === 'F9';
  if (!fkey && typing(e.target)) { if (e.key === 'Escape') e.target.blur(); return; }
  const what = fkey ? (e.key === 'F9' || e.code === 'F9' ? 'cough' : 'onair') : shortcut(e);
  if (!what) return;
  e.preventDefault();
  if (e.repeat) return;
  if (what === 'onair') toggleOnAir();
  else if (what === 'cough') holdCough(fkey ? 'fkey' : 'key', true);
  else if (what === 'handover') handoverKey();
  else if (what === 'slowdown') slowDown();
});
document.addEventListener('keyup', (e) => {
  if (e.code === 'F9' || e.key === 'F9') holdCough('fkey', false);
  else if (shortcut(e) === 'cough') holdCough('key', false);
});
// A key or pointer released outside the window never sends its "up": let go.
window.addEventListener('blur', () => { for (const h of [...coughHolders]) holdCough(h, false); });

setInterval(tickMeters, METER_MS);
function tickClock() {
  ui.clock.textContent = hms(new Date());
  if (session && session.onAirSince) render(); // the on-air timer
}
tickClock();
setInterval(tickClock, 1000);
document.addEventListener('visibilitychange', () => {
  if (!document.hidden && audio.ctx && audio.ctx.state !== 'running') audio.ctx.resume().then(renderSoundButton, () => {});
});

ui.uiLang.addEventListener('change', () => {
  saveLanguage(ui.uiLang.value);
  setLanguage(ui.uiLang.value);
});

await setLanguage(savedLanguage() || browserLanguage() || 'en');
loadRooms();
