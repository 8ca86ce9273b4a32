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
  signout: $('signout'), returnAudio: $('return-audio'),
};

// Exposed for tests and curious engineers; never read back by the page.
const stats = {
  phase: 'signed-out', // signed-out | connecting | joined | reconnecting | refused
  id: null, ice: 'new', connection: 'new', reconnects: 0,
  mic: { peakDb: -Infinity }, incoming: { peakDb: -Infinity },
  sentAt: {}, // message type -> Date.now() when last sent
  received: [], // last 100 server messages: {at, msg}
  lastError: null, trackAt: null, answerAt: null,
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
    setSigninStatus(`Cannot load the room list (${e.message}). You can still sign in if the room and booth are in the address.`, 'warn');
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

function setSigninStatus(text, kind = '') {
  ui.signinStatus.textContent = text;
  ui.signinStatus.dataset.kind = kind;
}

function showSignin() {
  ui.signin.hidden = false;
  ui.console.hidden = true;
  ui.signinButton.disabled = false;
  document.body.dataset.onair = 'false';
  ui.title.textContent = 'Interpreter console';
  ui.roomName.textContent = '';
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
      case 'slow-down': addChat({ text: `${m.from} asked the speaker to slow down.`, at: m.at, kind: 'system' }); break;
      case 'message':
        addChat({ from: 'AV crew', text: m.text, at: m.at, kind: 'crew' });
        showAlert(`AV crew: ${m.text}`, 'info');
        break;
      case 'error': this.onError(m); break;
      default: break; // newer server: ignore what we do not know
    }
  }

  onError(m) {
    const text = m.message || errorText[m.code] || m.code || 'error';
    stats.lastError = { code: m.code, message: text, at: Date.now() };
    if (!this.joined) { this.serverError = { code: m.code, message: text }; return; } // a refusal: the close follows
    if (m.code === 'not-supported' && this.pending.output) {
      delete this.pending.output;
      retourUnavailable = text;
      renderOutgoing();
    }
    if (m.code === 'not-live' || m.code === 'channel-busy') delete this.pending.onAir;
    if (m.code === 'channel-busy' || m.code === 'bad-output') { delete this.pending.output; renderOutgoing(); }
    if (m.code === 'bad-sdp') { showAlert(`The server could not set up the audio connection (${text}). Retrying…`, 'error', true); this.restart(); return; }
    showAlert(text, 'error');
    render();
  }

  async onJoined(m) {
    this.joined = m;
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
      showAlert(this.wasOnAir ? 'Reconnected. You are OFF AIR: press ON AIR to continue.' : 'Reconnected.',
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
      showAlert(e.message || String(e), 'error', true);
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
    pc.ontrack = (e) => { stats.trackAt = Date.now(); attachReturn(e.streams[0] || new MediaStream([e.track])); };
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
        showAlert('The audio connection failed. Reconnecting…', 'error', true);
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
      showAlert(`Bad answer from the server: ${e.message}`, 'error', true);
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
      const msg = (refusal && refusal.message) || errorText[code] || `The server refused the sign-in (${code}).`;
      if (code === 'bad-token') storeToken(this.room, this.booth, null);
      this.closed = true;
      session = null;
      stats.phase = 'refused';
      showSignin();
      setSigninStatus(`${msg}${hint[code] ? ` ${hint[code]}` : ''}`, 'error');
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
    const secs = (this.backoff / 1000).toFixed(1);
    showAlert(`Connection to the server lost: you are OFF AIR, the channel carries the floor. Reconnecting in ${secs} s…`, 'error', true);
    this.timer = setTimeout(() => { if (!this.closed) this.open(); }, this.backoff);
    this.backoff = Math.min(RECONNECT_MAX_MS, this.backoff * 2);
    render();
  }
}

const errorText = {
  'bad-token': 'Wrong or missing booth token.',
  'unknown-booth': 'No browser booth by that name in this room.',
  'booth-full': 'This booth is full: both interpreter places are taken.',
  'bad-message': 'The server did not understand the page (bad message).',
  'too-many-attempts': 'Too many failed sign-ins from this address.',
  'not-live': 'Only the live interpreter can do that: take over first.',
  'not-supported': 'Not available on this server yet.',
  'channel-busy': 'That channel is in use by another booth on air.',
  'bad-output': 'That output channel is not available.',
};
const hint = {
  'bad-token': 'Check the token with the technicians.',
  'booth-full': 'Ask your partner or the technicians to free a place, then sign in again.',
  'too-many-attempts': 'Wait a minute, then try again.',
};

function signIn(room, booth, name, token) {
  if (session) session.close();
  stats.reconnects = 0;
  savePrefs({ room, booth, name });
  ui.signinButton.disabled = true;
  setSigninStatus('Signing in…');
  delete ui.signinStatus.dataset.code;
  ui.title.textContent = `Booth ${booth}`;
  ui.roomName.textContent = (findRoom(room) && findRoom(room).title) || room;
  ensureAudio().catch(() => {}); // inside the click: lets the AudioContext start
  session = new Session(room, booth, name, token);
  session.open();
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
  setSigninStatus('Signed out.');
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
    throw new Error('This browser cannot use a microphone here (the console needs HTTPS, or localhost).');
  }
  try {
    mic = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
      video: false,
    });
  } catch (e) {
    throw new Error(`No microphone: ${e.name === 'NotAllowedError' ? 'permission refused. Allow the microphone for this site and reload.' : e.message}`);
  }
  if (audio.micSource) audio.micSource.disconnect();
  audio.micSource = audio.ctx.createMediaStreamSource(mic);
  audio.micAnalyser = new AnalyserNode(audio.ctx, { fftSize: 2048 });
  audio.micSource.connect(audio.micAnalyser);
  mic.getAudioTracks()[0].onended = () => showAlert('The microphone stopped (unplugged?). Reload the page after plugging it back.', 'error', true);
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
  text.textContent = Number.isFinite(db) ? `${db.toFixed(0)} dB` : '–∞';
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
  if (!amLive()) { showAlert(errorText['not-live'], 'warn'); return; }
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
    addChat({ text: `You asked ${liveOne() ? liveOne().name : 'your partner'} to hand over.`, kind: 'system' });
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

const channelLabels = { interpretation: 'Interpretation', floor: 'Floor (nobody on air)', 'forced-floor': 'Floor (forced by the AV crew)' };

function render() {
  const s = session && session.state;
  const live = amLive();
  const onAir = !!(s && s.on_air);
  const cough = !!(s && s.cough);
  const me = s && (s.interpreters || []).find((i) => i.id === stats.id);
  const mediaUp = !me || me.connected !== false;
  const lv = liveOne();

  // Tally: the frame and the big button are red only when MY microphone is on air.
  document.body.dataset.onair = String(live && onAir);
  document.body.dataset.cough = String(live && onAir && cough);
  ui.onair.dataset.cough = String(cough);
  ui.onair.setAttribute('aria-pressed', String(live && onAir));
  const pending = session && session.pending.onAir !== undefined;
  ui.onair.dataset.state = pending ? 'pending' : live && onAir ? 'on' : 'off';
  ui.onair.disabled = !s || !live || (!mediaUp && !onAir);
  if (!s) {
    ui.onairLabel.textContent = 'OFF AIR';
    ui.onairSub.textContent = session ? 'connecting…' : '';
  } else if (live) {
    ui.onairLabel.textContent = onAir ? (cough ? 'MUTED' : 'ON AIR') : 'OFF AIR';
    const since = session.onAirSince ? ` · ${mmss(Date.now() - session.onAirSince)}` : '';
    ui.onairSub.textContent = !mediaUp && !onAir ? 'waiting for the audio connection…' : `press O${since}`;
  } else {
    ui.onairLabel.textContent = lv ? `${lv.name.toUpperCase()} LIVE` : 'OFF AIR';
    ui.onairSub.textContent = onAir ? `${lv ? lv.name : 'your partner'} is on air · Take over below` : 'your partner is live · Take over below';
  }
  ui.cough.disabled = !(live && onAir);

  // Header facts.
  const cs = s ? s.channel_state || (onAir ? 'interpretation' : 'floor') : null;
  ui.chState.textContent = cs ? channelLabels[cs] || cs : '–';
  ui.chState.dataset.state = cs || '';
  ui.audience.textContent = s && s.listeners !== undefined ? `${s.listeners} listening` : '–';

  // Team.
  ui.team.replaceChildren(...(s ? s.interpreters || [] : []).map((i) => {
    const li = document.createElement('li');
    li.dataset.live = String(i.id === s.live);
    li.dataset.onair = String(i.id === s.live && onAir);
    li.dataset.id = i.id;
    const badge = document.createElement('span');
    badge.className = 'badge';
    badge.textContent = i.id === s.live ? (onAir ? 'ON AIR' : 'LIVE') : 'PARTNER';
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = i.name;
    li.append(badge, name);
    if (i.id === stats.id) {
      const me2 = document.createElement('span');
      me2.className = 'me';
      me2.textContent = i.connected === false ? '(you · audio connecting…)' : '(you)';
      li.append(me2);
    } else if (i.connected === false) {
      const c = document.createElement('span');
      c.className = 'me';
      c.textContent = '(audio connecting…)';
      li.append(c);
    }
    return li;
  }));
  const p = partner();
  ui.handOver.hidden = !(s && live && p);
  ui.handOver.textContent = p ? `Hand over to ${p.name}` : 'Hand over';
  ui.requestHandover.hidden = !(s && !live);
  ui.takeOver.hidden = !(s && !live);
  for (const b of [ui.handOver, ui.takeOver]) b.disabled = !!(session && session.pending.handover);
  ui.slowDown.disabled = !s;
  ui.onairTime.textContent = s && onAir && lv ? `${lv.name} on air${session.onAirSince ? ` for ${mmss(Date.now() - session.onAirSince)}` : ''}` : '';

  renderChannels();
  renderConn();
}

let retourUnavailable = 'Retour (outgoing channel B) is not available on this server yet.';

function renderChannels() {
  const j = session && session.joined;
  const s = session && session.state;
  const chans = j ? j.channels || [] : [];
  const current = (session && session.pending.listen) || (s && s.listen) || 'floor';
  const floorName = (chans.find((c) => c.lang === 'orig') || {}).native_name || 'Original';
  const sources = [{ source: 'floor', label: `Floor · ${floorName}` },
    ...chans.filter((c) => c.lang !== 'orig' && c.lang !== (session && session.booth))
      .map((c) => ({ source: c.lang, label: `Relay · ${langName(c)}` }))];
  ui.incoming.replaceChildren(...sources.map((x) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'choice';
    b.setAttribute('role', 'radio');
    b.dataset.source = x.source;
    b.setAttribute('aria-checked', String(x.source === current));
    b.textContent = x.label;
    return b;
  }));
  renderOutgoing();
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
  ui.outgoing.replaceChildren(...chans.map((c) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'choice';
    b.dataset.output = c.lang;
    b.setAttribute('aria-pressed', String(c.lang === out));
    const taken = s && s.output_taken_by && c.lang === out ? ` (in use by the ${s.output_taken_by} booth)` : '';
    b.textContent = `${c.lang === own ? 'A' : 'B'} · ${langName(c)}${taken}`;
    if (c.lang !== out && !retour) { b.disabled = true; b.title = retourUnavailable; }
    return b;
  }));
}

function renderConn() {
  const pc = session && session.pc;
  let text = 'Signed out';
  let kind = '';
  if (session) {
    if (stats.phase === 'reconnecting') { text = 'Reconnecting…'; kind = 'error'; }
    else if (!session.joined) { text = 'Signing in…'; kind = 'warn'; }
    else if (!pc || pc.connectionState === 'new' || pc.connectionState === 'connecting') { text = 'Audio connecting…'; kind = 'warn'; }
    else if (pc.connectionState === 'connected') { text = 'Connected'; kind = 'ok'; }
    else { text = `Audio ${pc.connectionState}`; kind = 'error'; }
  }
  ui.conn.textContent = text;
  ui.conn.dataset.kind = kind;
}

let alertTimer = null;
function showAlert(text, kind = 'error', sticky = false) {
  ui.alertText.textContent = text;
  ui.alert.dataset.kind = kind;
  ui.alert.hidden = false;
  clearTimeout(alertTimer);
  if (!sticky) alertTimer = setTimeout(hideAlert, ALERT_MS);
}
function hideAlert() { ui.alert.hidden = true; clearTimeout(alertTimer); }

let hoTimer = null;
function showHandoverRequest(m) {
  ui.hoRequestText.textContent = `${m.name || 'Your partner'} asks to take over.`;
  ui.hoRequest.hidden = false;
  clearTimeout(hoTimer);
  hoTimer = setTimeout(hideHandoverRequest, 60000);
  addChat({ text: `${m.name || 'Your partner'} asked for the handover.`, kind: 'system' });
}
function hideHandoverRequest() { ui.hoRequest.hidden = true; clearTimeout(hoTimer); }

function addChat({ from, text, at, kind = '' }) {
  const li = document.createElement('li');
  if (kind) li.dataset.kind = kind;
  const t = document.createElement('span');
  t.className = 'at';
  t.textContent = hms(at ? new Date(at) : new Date()).slice(0, 5);
  li.append(t);
  if (from) {
    const f = document.createElement('span');
    f.className = 'from';
    f.textContent = `${from}:`;
    li.append(f);
  }
  li.append(document.createTextNode(text || ''));
  const atBottom = ui.chatLog.scrollTop + ui.chatLog.clientHeight >= ui.chatLog.scrollHeight - 4;
  ui.chatLog.append(li);
  while (ui.chatLog.children.length > 200) ui.chatLog.firstElementChild.remove();
  if (atBottom) ui.chatLog.scrollTop = ui.chatLog.scrollHeight;
}

// ---- events -------------------------------------------------------------------

ui.form.addEventListener('submit', (e) => {
  e.preventDefault();
  const name = ui.name.value.trim();
  const token = ui.token.value;
  if (!ui.room.value || !ui.booth.value) { setSigninStatus('Pick a room and a booth.', 'error'); return; }
  if (!name) { setSigninStatus('Enter your name.', 'error'); ui.name.focus(); return; }
  if (!token) { setSigninStatus('Enter the booth token.', 'error'); ui.token.focus(); return; }
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
ui.volume.value = String(Math.round(volumeGain() * 100));
ui.volumeText.textContent = `${ui.volume.value} %`;
ui.volume.addEventListener('input', () => {
  const v = Number(ui.volume.value);
  ui.volumeText.textContent = `${v} %`;
  if (audio.returnNode) audio.returnNode.gain.setTargetAtTime(v / 100, audio.ctx.currentTime, 0.02);
  savePrefs({ volume: v });
});
ui.enableSound.addEventListener('click', () => ensureAudio());

// Shortcuts work wherever the focus is, except in a text box (Esc leaves it).
function typing(el) {
  if (!el) return false;
  if (el.isContentEditable || el.tagName === 'TEXTAREA') return true;
  return el.tagName === 'INPUT' && !['range', 'checkbox', 'radio', 'button', 'submit'].includes(el.type);
}
document.addEventListener('keydown', (e) => {
  if (ui.console.hidden || e.ctrlKey || e.metaKey || e.altKey) return;
  if (typing(e.target)) { if (e.key === 'Escape') e.target.blur(); return; }
  const k = e.key.toLowerCase();
  if (k === 'o') { e.preventDefault(); if (!e.repeat) toggleOnAir(); }
  else if (k === 'c') { e.preventDefault(); if (!e.repeat) holdCough('key', true); }
  else if (k === 'h') { e.preventDefault(); if (!e.repeat) handoverKey(); }
  else if (k === 's') { e.preventDefault(); if (!e.repeat) slowDown(); }
});
document.addEventListener('keyup', (e) => { if (e.key.toLowerCase() === 'c') holdCough('key', false); });
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

loadRooms();
