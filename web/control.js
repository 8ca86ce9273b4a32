// dragoman control page: the AV crew's view of every room, booth and channel.
//
// One WebSocket, /ws/control (docs/protocol.md). The admin token goes in the
// first message only, never in a URL; it is kept in sessionStorage so a reload
// does not sign the crew member out, and forgotten when the tab closes.
//
// The server sends `meters` ~12 times a second and `state` once a second (and
// at once after a change). The page redraws meters with requestAnimationFrame,
// independent of message timing: bars rise at once and fall smoothly, the peak
// is held for PEAK_HOLD_MS and then decays, a clip lamp stays lit CLIP_HOLD_MS.
// The DOM is rebuilt only when the set of rooms, channels or booths changes;
// otherwise elements are updated in place so a slider being dragged or a
// message being typed is never clobbered by the next state.
//
// Each room also lists its outputs (recording, restreams: issues #5 and #7)
// with their state, target (the server masks stream keys), bit rate,
// reconnects and drops, and a Start/Stop button. Stopping a live output asks
// first, in an in-page modal <dialog> (focus on "Keep it running"): a stray
// click must not end a live stream.
//
// Strings: i18n.js (i18n/<code>.json), in every interface language; the
// crew member's pick in the header, else the browser's language. Alerts are
// said from their kind and params (control.alertMsg.KIND); the server's
// English `message` only for a kind this page does not know, and the words
// of GStreamer's errors (a restream's or a recording's) as they came.

import { LANGS, apply, browserLanguage, fillPicker, has, i18n, num as fmtNum, onLanguage, saveLanguage, savedLanguage, setLanguage, t } from './i18n.js';

const UI_LANGS = LANGS;

const STORE_KEY = 'dragoman.control';
const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 5000;
const STATE_STALE_MS = 3000; // state is sent every second: 3 s of nothing is wrong
const METER_STALE_MS = 1000; // meters come ~12 Hz: a silent second means no data
const METER_MIN_DB = -60;
const CLIP_DB = -0.5;
const CLIP_HOLD_MS = 2000;
const PEAK_HOLD_MS = 1500;
const PEAK_FALL_DB_S = 20; // held peak decay after the hold
const BAR_FALL_DB_S = 40; // peak bar fall (rise is instant)
const RMS_TAU_MS = 60; // RMS bar smoothing, both ways
const KICK_CONFIRM_MS = 3000;
const ACTION_TIMEOUT_MS = 5000;
const MAX_FEED = 100;
const MAX_CLEARED_ALERTS = 20;

const $ = (id) => document.getElementById(id);
const ui = {
  conn: $('conn'), server: $('server'), who: $('who'), whoName: $('who-name'), signout: $('signout'),
  signin: $('signin'), token: $('token'), name: $('name'), signinBtn: $('signin-btn'), signinError: $('signin-error'),
  dash: $('dash'), rooms: $('rooms'), alerts: $('alerts'), alertCount: $('alert-count'), chat: $('chat'),
  actions: $('actions'), roomTpl: $('room-tpl'), stripTpl: $('strip-tpl'), outputTpl: $('output-tpl'),
  confirm: $('confirm'), confirmTitle: $('confirm-title'), confirmText: $('confirm-text'),
  confirmKeep: $('confirm-keep'), confirmStop: $('confirm-stop'), announce: $('announce'), uiLang: $('ui-lang'),
  srv: { cpu: $('srv-cpu'), mem: $('srv-mem'), listeners: $('srv-listeners'), uptime: $('srv-uptime'),
    version: $('srv-version'), link: $('srv-link'), crew: $('srv-crew') },
};

// Traffic on /ws/control as seen by this page (UTF-8 bytes of each message).
const stats = { since: performance.now(), rx: { bytes: 0, msgs: 0 }, tx: { bytes: 0, msgs: 0 }, byType: {} };
// Exposed for tests and curious engineers; the page never reads it back.
const control = { ws: null, state: null, meters: null, results: [], stats, alerts: [], chat: [], welcome: null,
  lastClose: null };
window.dragomanControl = control;

let creds = null; // { token, name } while signed in (or signing in)
let session = 0; // bumps on every (re)connect, so stale sockets are ignored
let retryMs = RECONNECT_MIN_MS;
let retryTimer = 0;
let lastStateAt = 0;
let nextId = 1;
const pending = new Map(); // action id -> { type, fields, at, strip }
const utf8 = new TextEncoder();

// ---- sign in ---------------------------------------------------------------

function loadCreds() {
  try {
    const c = JSON.parse(sessionStorage.getItem(STORE_KEY));
    return c && c.token && c.name ? c : null;
  } catch { return null; }
}
function saveCreds(c) {
  try { c ? sessionStorage.setItem(STORE_KEY, JSON.stringify(c)) : sessionStorage.removeItem(STORE_KEY); } catch { /* private mode */ }
}

// The connection line and the sign-in error hold i18n keys: a language
// switch re-renders them.
let connMsg = null;
let signinMsg = null;
function setConn(key, vars = {}, kind = 'idle') {
  connMsg = { key, vars };
  ui.conn.textContent = t(key, vars);
  ui.conn.dataset.kind = kind;
}
function setSigninError(key, vars = {}) {
  signinMsg = key ? { key, vars } : null;
  ui.signinError.textContent = key ? t(key, vars) : '';
}

function showSignin(error, vars = {}) {
  clearTimeout(retryTimer);
  ui.signin.hidden = false;
  ui.dash.hidden = true;
  ui.server.hidden = true;
  ui.who.hidden = true;
  ui.signinBtn.disabled = false;
  setSigninError(error, vars);
  setConn(error ? 'control.conn.refused' : 'control.conn.signedOut', {}, error ? 'error' : 'idle');
  if (creds && creds.name) ui.name.value = creds.name;
  (ui.token.value ? ui.name : ui.token).focus();
}

// Forget everything that came from the server: after a refused sign-in or a
// sign out nothing of the previous session may stay on screen.
function clearDashboard() {
  control.state = null;
  control.meters = null;
  control.welcome = null;
  control.alerts = [];
  control.chat = [];
  alertsById.clear();
  announced.clear();
  roomViews.clear();
  meters.clear();
  ui.rooms.replaceChildren();
  ui.alerts.replaceChildren();
  ui.chat.replaceChildren();
  ui.actions.replaceChildren();
  ui.alertCount.textContent = '0';
  shapeKey = '';
  if (ui.confirm.open) ui.confirm.close('');
}

ui.signin.addEventListener('submit', (e) => {
  e.preventDefault();
  const token = ui.token.value;
  const name = ui.name.value.trim();
  if (!token || !name) return;
  creds = { token, name };
  ui.signinBtn.disabled = true;
  setSigninError(null);
  connect();
});

ui.signout.addEventListener('click', () => {
  creds = null;
  saveCreds(null);
  session++;
  if (control.ws) control.ws.close(1000, 'signed out');
  control.ws = null;
  clearDashboard();
  ui.token.value = '';
  showSignin();
});

// ---- connection ------------------------------------------------------------

function send(ws, obj) {
  const s = JSON.stringify(obj);
  ws.send(s);
  stats.tx.bytes += utf8.encode(s).length;
  stats.tx.msgs++;
}

function connect() {
  clearTimeout(retryTimer);
  const my = ++session;
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(`${proto}//${location.host}/ws/control`);
  control.ws = ws;
  let welcomed = false;
  let refused = null; // the server's error message, if any
  setConn('control.conn.connecting', {}, 'warn');
  ws.onopen = () => {
    if (my !== session) return;
    send(ws, { type: 'auth', token: creds.token, name: creds.name });
  };
  ws.onmessage = (e) => {
    if (my !== session || typeof e.data !== 'string') return;
    let msg;
    try { msg = JSON.parse(e.data); } catch { return; }
    const n = utf8.encode(e.data).length;
    stats.rx.bytes += n;
    stats.rx.msgs++;
    const t = (stats.byType[msg.type] ||= { bytes: 0, msgs: 0 });
    t.bytes += n;
    t.msgs++;
    if (msg.type === 'error') { refused = msg; return; }
    if (msg.type === 'welcome') {
      welcomed = true;
      retryMs = RECONNECT_MIN_MS;
      control.welcome = msg;
      saveCreds(creds);
      onWelcome(msg);
      return;
    }
    if (!welcomed) return; // nothing but welcome/error is valid before sign-in
    handlers[msg.type]?.(msg);
  };
  ws.onclose = (e) => {
    if (my !== session) return;
    control.ws = null;
    control.lastClose = { code: e.code, reason: e.reason, error: refused };
    for (const [id, p] of pending) finishAction({ id, ok: false, error: t('control.err.connectionLost') }, p);
    pending.clear();
    const code = refused?.code;
    if (code === 'bad-token' || e.code === 4401) {
      // Never retry a wrong token: it only burns the rate limit.
      saveCreds(null);
      clearDashboard();
      ui.token.value = '';
      showSignin('control.err.badToken');
      return;
    }
    if (code === 'too-many-attempts' || e.code === 4429) {
      clearDashboard();
      showSignin('control.err.tooMany');
      return;
    }
    if (!creds) return;
    if (code === 'bad-message' || e.code === 4400) {
      clearDashboard();
      // A known code in the page's words; the server's English only for an unknown one.
      showSignin(code === 'bad-message' || !refused?.message ? 'control.err.badMessage' : 'control.err.server', { message: refused?.message });
      return;
    }
    // Anything else (server restart, network): keep the screen, mark it stale, retry.
    const why = refused?.message || (e.code === 1006 ? t('control.err.connectionLost') : t('control.err.closed', { code: `${e.code}${e.reason ? ` ${e.reason}` : ''}` }));
    setConn('control.conn.disconnected', { why }, 'error');
    document.body.classList.add('stale');
    retryTimer = setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, RECONNECT_MAX_MS);
  };
}

function onWelcome(msg) {
  ui.signin.hidden = true;
  setSigninError(null);
  ui.dash.hidden = false;
  ui.server.hidden = false;
  ui.who.hidden = false;
  ui.whoName.textContent = msg.name || creds.name;
  document.body.classList.remove('stale');
  lastStateAt = performance.now();
  setConn('control.conn.connected', {}, 'ok');
}

const handlers = {
  meters: (m) => { control.meters = m; feedMeters(m); },
  state: (m) => { control.state = m; lastStateAt = performance.now(); renderState(m); },
  alert: (m) => { if (m.alert) { upsertAlert(m.alert, true); renderAlerts(); } },
  // A slow-down request as a chat line (the highlighted one comes from its
  // alert): its text is the server's English, the page has its own words.
  chat: (m) => addFeed({ kind: 'chat', room: m.room, booth: m.booth, from: m.from,
    text: m.kind === 'slow-down' ? null : m.text, key: m.kind === 'slow-down' ? 'control.slowDownPlease' : null, at: m.at }),
  result: (m) => {
    const p = pending.get(m.id);
    pending.delete(m.id);
    finishAction(m, p);
  },
};

// ---- actions ---------------------------------------------------------------

function act(type, fields, strip) {
  const ws = control.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN || !control.welcome) {
    showResult(strip, t('control.result.notConnected', { type: actionName(type) }), false);
    return null;
  }
  const id = nextId++;
  const p = { type, fields, at: performance.now(), strip };
  pending.set(id, p);
  send(ws, { type, id, ...fields });
  // A result that never comes must not leave a button disabled mid-event.
  setTimeout(() => {
    if (pending.get(id) !== p) return;
    pending.delete(id);
    finishAction({ id, ok: false, error: t('control.err.noAnswer', { s: ACTION_TIMEOUT_MS / 1000 }) }, p);
  }, ACTION_TIMEOUT_MS);
  if (strip) showResult(strip, `${actionName(type)}…`, null);
  return id;
}

const actionName = (type) => t(`control.action.${type}`);

function describe(type, f) {
  const where = `${f.room}/${f.lang || f.booth}`;
  if (type === 'duck') return t('control.do.duck', { where, db: f.db });
  if (type === 'kick') return t('control.do.kick', { who: f.interpreter, where });
  if (type === 'message') return t('control.do.message', { where });
  if (type === 'record') return t(f.value ? 'control.do.recordStart' : 'control.do.recordStop', { room: f.room });
  if (type === 'restream') return t(f.value ? 'control.do.restreamStart' : 'control.do.restreamStop', { where: `${f.room}/${f.name}` });
  return t(f.value ? 'control.do.on' : 'control.do.off', { action: actionName(type), where });
}

// Why the server refused, in the crew's language (docs/protocol.md: result codes); an
// output that would not start adds the server's own words; an unknown code, its English.
function refusal(res) {
  const key = `control.refusal.${res.code}`;
  if (!res.code || !has(key)) return res.error || t('control.err.refused');
  return t(key, { error: res.error || '' });
}

function finishAction(res, p) {
  const ms = p ? Math.round(performance.now() - p.at) : null;
  const entry = { id: res.id, ok: !!res.ok, error: res.error || null, type: p?.type || null, fields: p?.fields || null,
    ms, at: Date.now() };
  control.results.push(entry);
  if (control.results.length > 200) control.results.shift();
  const what = p ? describe(p.type, p.fields) : t('control.actionN', { id: res.id });
  const text = res.ok ? `✓ ${what} (${t('unit.ms', { v: ms })})` : `✗ ${what}: ${refusal(res)}`;
  if (p?.strip) showResult(p.strip, text, !!res.ok);
  const li = document.createElement('li');
  li.className = res.ok ? 'ok' : 'bad';
  li.textContent = `${clock(Date.now())} ${text}`;
  ui.actions.prepend(li);
  while (ui.actions.children.length > 30) ui.actions.lastChild.remove();
  if (p?.strip) p.strip.busy.delete(p.type);
  if (p?.type === 'message' && res.ok && p.strip) p.strip.msgText.value = '';
  if (control.state) renderState(control.state); // re-enable buttons
}

function showResult(strip, text, ok) {
  if (!strip) return;
  strip.result.textContent = text;
  strip.result.dataset.kind = ok === null ? 'pending' : ok ? 'ok' : 'error';
}

// ---- state -> DOM ----------------------------------------------------------

// Accept both arrays of objects and objects keyed by id/lang.
const list = (x, key) => (Array.isArray(x) ? x : Object.entries(x || {}).map(([k, v]) => ({ [key]: k, ...v })));
const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null);

const roomViews = new Map(); // room id -> { el, strips: Map lang -> strip }
let shapeKey = '';

function roomShape(rooms) {
  return JSON.stringify(rooms.map((r) => [r.id, list(r.channels, 'lang').map((c) => c.lang),
    list(r.booths, 'lang').map((b) => b.lang)]));
}

function renderState(st) {
  const rooms = list(st.rooms, 'id');
  const key = roomShape(rooms);
  if (key !== shapeKey) { buildRooms(rooms); shapeKey = key; }
  let total = 0;
  for (const r of rooms) {
    const view = roomViews.get(r.id);
    if (!view) continue;
    view.title.textContent = r.title ? `${r.title} (${r.id})` : r.id;
    const stage = typeof r.stage === 'string' ? { state: r.stage } : r.stage || {};
    const stageState = stage.state || (stage.signal === false ? 'no signal' : 'unknown');
    const since = num(stage.since) > 0 ? ` ${t('control.stage.for', { s: Math.max(0, Math.round(Date.now() / 1000 - stage.since)) })}` : '';
    const video = stage.video ? ` · ${stage.video}` : '';
    const rate = num(stage.bitrate) > 0 ? ` · ${t('control.mbps', { v: fmtNum(stage.bitrate / 1e6, 1) })}` : '';
    view.stage.textContent = `${t('control.stage', { state: stateName('stage', stageState) })}${since}${video}${rate}`;
    // Screen readers hear the stage going and coming back (stage lost is the crew's worst moment).
    if (view.stageState && view.stageState !== stageState) {
      say(stageState === 'lost' ? 'control.say.stageLost' : 'control.say.stage', { room: r.id, state: stateName('stage', stageState) });
    }
    view.stageState = stageState;
    view.stage.dataset.state = stageState;
    const reason = stage.reason_code && has(`control.stageReason.${stage.reason_code}`) ? t(`control.stageReason.${stage.reason_code}`) : stage.reason;
    view.stage.title = [stage.source ? t('control.stage.source', { source: stage.source }) : '', reason || ''].filter(Boolean).join(': ');
    const booths = list(r.booths, 'lang');
    let roomListeners = 0;
    for (const ch of list(r.channels, 'lang')) {
      roomListeners += num(ch.listeners) || 0;
      const booth = booths.find((b) => b.lang === ch.lang) || null;
      const s = view.strips.get(ch.lang);
      if (s) updateStrip(s, ch, booth);
    }
    total += roomListeners;
    view.listeners.textContent = t('control.listeners', { n: roomListeners });
    renderOutputs(view, r);
  }
  renderServer(st.server || {}, total);
  if (st.alerts) {
    const active = new Set();
    for (const a of st.alerts) { upsertAlert(a, false); active.add(a.id); }
    for (const a of alertsById.values()) if (a.active && !active.has(a.id)) { a.active = false; a.clearedAt = Date.now(); }
    renderAlerts();
  }
}

function buildRooms(rooms) {
  roomViews.clear();
  const els = rooms.map((r) => {
    const el = ui.roomTpl.content.firstElementChild.cloneNode(true);
    apply(el);
    el.dataset.room = r.id;
    const view = { el, room: r.id, title: el.querySelector('.room-title'), stage: el.querySelector('.stage'),
      listeners: el.querySelector('.room-listeners'), strips: new Map(),
      outPanel: el.querySelector('.outputs'), outList: el.querySelector('.output-list'),
      outNone: el.querySelector('.outputs-none'), outAnnounce: el.querySelector('.outputs-announce'),
      outputs: new Map(), outKey: null };
    view.outPanel.setAttribute('aria-label', t('control.outputsOf', { room: r.id }));
    const strips = el.querySelector('.strips');
    const booths = list(r.booths, 'lang');
    for (const ch of list(r.channels, 'lang')) {
      const s = buildStrip(r.id, ch, booths.find((b) => b.lang === ch.lang));
      view.strips.set(ch.lang, s);
      strips.append(s.el);
    }
    roomViews.set(r.id, view);
    return el;
  });
  ui.rooms.replaceChildren(...els);
  meterStrips = [...roomViews.values()].flatMap((v) => [...v.strips.values()]);
  for (const s of meterStrips) sizeCanvas(s);
}

function buildStrip(room, ch, booth) {
  const el = ui.stripTpl.content.firstElementChild.cloneNode(true);
  apply(el);
  const q = (sel) => el.querySelector(sel);
  const lang = ch.lang;
  const isOrig = lang === 'orig';
  el.dataset.room = room;
  el.dataset.lang = lang;
  const s = {
    el, room, lang, isOrig, hasBooth: !!booth, busy: new Set(), channel: ch, booth,
    onairLamp: q('.onair'), mode: q('.mode'), canvas: q('.meter'), inDb: q('.in-db'), outDb: q('.out-db'),
    kind: q('.kind'), flags: q('.flags'), interpreters: q('.interpreters'), listeners: q('.listeners'),
    drops: q('.drops'), duck: q('.duck-slider'), duckVal: q('.duck-val'), duckLabel: q('.duck'),
    forceBtn: q('.force-floor'), onAirBtn: q('.on-air'), muteBtn: q('.mute'), msgForm: q('.msg'),
    msgText: q('.msg-text'), result: q('.result'), duckActive: false, interpKey: '',
    inKey: isOrig ? `${room}|floor` : `${room}|booth|${lang}`, outKey: `${room}|ch|${lang}`,
    inLabel: isOrig ? 'control.meter.floor' : 'control.meter.booth',
  };
  q('.lang').textContent = lang.toUpperCase(); // a code, not a word: "ORIG" in every language (CSS would give Turkish "ORİG")
  q('.native').textContent = ch.native_name || ch.name || (isOrig ? t('control.floor') : '');
  s.duck.setAttribute('aria-label', t('control.duckOf', { lang }));
  s.onairLamp.textContent = t('control.lamp.offAir');
  if (isOrig) {
    // The floor as spoken: nothing to force, duck or put on air.
    s.duckLabel.hidden = true;
    s.forceBtn.hidden = true;
  }
  if (!booth) {
    s.onAirBtn.hidden = true;
    s.muteBtn.hidden = true;
    s.msgForm.hidden = true;
    s.interpreters.hidden = true;
  }
  s.forceBtn.addEventListener('click', () => {
    const value = s.forceBtn.getAttribute('aria-pressed') !== 'true';
    s.busy.add('force-floor');
    s.forceBtn.disabled = true;
    act('force-floor', { room, lang, value }, s);
  });
  s.onAirBtn.addEventListener('click', () => {
    const value = s.onAirBtn.getAttribute('aria-pressed') !== 'true';
    s.busy.add('on-air');
    s.onAirBtn.disabled = true;
    act('on-air', { room, booth: lang, value }, s);
  });
  s.muteBtn.addEventListener('click', () => {
    const value = s.muteBtn.getAttribute('aria-pressed') !== 'true';
    s.busy.add('mute');
    s.muteBtn.disabled = true;
    act('mute', { room, booth: lang, value }, s);
  });
  s.duck.addEventListener('input', () => { s.duckActive = true; s.duckVal.textContent = t('unit.db', { v: s.duck.value }); });
  s.duck.addEventListener('change', () => {
    s.duckActive = false;
    s.busy.add('duck');
    act('duck', { room, lang, db: Number(s.duck.value) }, s);
  });
  s.duck.addEventListener('pointerdown', () => { s.duckActive = true; });
  s.duck.addEventListener('blur', () => { s.duckActive = false; });
  s.msgForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const text = s.msgText.value.trim();
    if (text) act('message', { room, booth: lang, text }, s);
  });
  s.interpreters.addEventListener('click', (e) => {
    const b = e.target.closest('button.kick');
    if (!b) return;
    // Two clicks: a kick in the middle of a speech must not be a slip of the mouse.
    if (b.dataset.armed !== 'true') {
      b.dataset.armed = 'true';
      b.textContent = t('control.kickSure');
      setTimeout(() => { b.dataset.armed = 'false'; b.textContent = t('control.kick'); }, KICK_CONFIRM_MS);
      return;
    }
    b.disabled = true;
    act('kick', { room, booth: lang, interpreter: b.dataset.id }, s);
  });
  return s;
}

function boolOf(...vals) {
  for (const v of vals) if (typeof v === 'boolean') return v;
  return false;
}

function updateStrip(s, ch, booth) {
  s.channel = ch;
  s.booth = booth;
  const mode = ch.mode || ch.state || 'unknown';
  s.el.dataset.mode = mode;
  s.mode.textContent = stateName('mode', mode);
  s.mode.dataset.mode = mode;
  const forced = mode === 'forced-floor' || boolOf(ch.force_floor, ch.forced_floor);
  s.forceBtn.setAttribute('aria-pressed', String(forced));
  s.forceBtn.textContent = forced ? t('control.releaseFloor') : t('control.forceFloor');
  s.forceBtn.disabled = s.busy.has('force-floor');

  const duck = num(ch.duck_db);
  if (duck !== null && !s.duckActive && !s.busy.has('duck') && document.activeElement !== s.duck) {
    s.duck.value = String(Math.max(-30, Math.min(0, Math.round(duck))));
  }
  if (!s.duckActive) s.duckVal.textContent = duck !== null ? t('unit.db', { v: Math.round(duck) }) : '–';

  const listeners = num(ch.listeners) ?? 0;
  s.listeners.textContent = t('control.listening', { n: listeners });
  s.listeners.title = t('control.listeningTitle');
  const resyncs = num(ch.resyncs) ?? 0;
  const disc = num(ch.disconnects) ?? 0;
  s.drops.textContent = resyncs + disc ? `· ${t('control.drops', { resyncs, drops: disc })}` : `· ${t('control.noDrops')}`;
  s.drops.dataset.bad = String(resyncs + disc > 0);
  s.drops.title = num(ch.packets) !== null ? t('control.packets', { n: ch.packets }) : '';

  if (s.isOrig) {
    s.onairLamp.textContent = t('control.lamp.floor');
    s.onairLamp.dataset.on = 'floor';
    s.kind.textContent = t('control.kind.stage');
    return;
  }
  if (!booth) {
    s.onairLamp.textContent = t('control.lamp.noBooth');
    s.onairLamp.dataset.on = 'false';
    return;
  }
  const onAir = boolOf(booth.on_air);
  const cough = boolOf(booth.cough);
  const muted = boolOf(booth.muted, booth.muted_by_crew);
  s.onairLamp.textContent = onAir ? t('control.lamp.onAir') : t('control.lamp.offAir');
  s.onairLamp.dataset.on = String(onAir);
  s.onAirBtn.setAttribute('aria-pressed', String(onAir));
  s.onAirBtn.textContent = onAir ? t('control.takeOffAir') : t('control.putOnAir');
  s.onAirBtn.disabled = s.busy.has('on-air');
  s.muteBtn.setAttribute('aria-pressed', String(muted));
  s.muteBtn.textContent = muted ? t('control.unmute') : t('control.mute');
  s.muteBtn.disabled = s.busy.has('mute');
  const kind = booth.kind || booth.source || 'booth';
  s.kind.textContent = stateName('kind', kind);
  s.kind.title = booth.on_air_mode ? t('control.onAirBy', { mode: booth.on_air_mode }) : '';
  s.interpreters.hidden = kind !== 'browser' && !list(booth.interpreters, 'id').length;
  const flags = [];
  if (cough) flags.push(t('control.flag.cough'));
  if (muted) flags.push(t('control.flag.muted'));
  const sig = booth.signal ?? booth.input_signal ?? booth.input;
  if (sig === false || sig === 'none' || sig === 'no-signal') flags.push(t('control.flag.noSignal'));
  if (s.flags.textContent !== flags.join('')) {
    s.flags.replaceChildren(...flags.map((f) => {
      const l = document.createElement('span');
      l.className = 'lamp flag';
      l.textContent = f;
      return l;
    }));
  }

  const interps = list(booth.interpreters, 'id');
  const key = JSON.stringify([i18n.lang, ...interps.map((i) => [i.id, i.name, i.live, i.connected, i.rtt_ms, i.jitter_ms, i.loss_permille])]);
  if (key !== s.interpKey) {
    s.interpKey = key;
    s.interpreters.replaceChildren(...interps.map((i) => {
      const li = document.createElement('li');
      li.dataset.live = String(!!i.live);
      li.dataset.connected = String(i.connected !== false);
      const name = document.createElement('span');
      name.className = 'iname';
      name.textContent = `${i.live ? '● ' : ''}${i.name || i.id}${i.connected === false ? ` ${t('control.gone')}` : ''}`;
      name.title = i.live ? t('control.interp.live') : t('control.interp.standby');
      li.append(name);
      // WebRTC health of this interpreter's connection (-1: not measured yet)
      if (num(i.rtt_ms) >= 0 || num(i.jitter_ms) >= 0 || num(i.loss_permille) >= 0) {
        const h = document.createElement('span');
        h.className = 'health';
        const part = (v, f) => (num(v) >= 0 ? f(num(v)) : '–');
        const ms = (v) => t('unit.ms', { v });
        h.textContent = ` ${t('control.health', { rtt: part(i.rtt_ms, ms), jitter: part(i.jitter_ms, ms), loss: part(i.loss_permille, (v) => t('control.pct', { v: fmtNum(v / 10, 1) })) })}`;
        li.append(h);
      }
      if (i.id && s.hasBooth && (booth.kind || booth.source) !== 'test') {
        const b = document.createElement('button');
        b.type = 'button';
        b.className = 'kick small';
        b.dataset.id = i.id;
        b.textContent = t('control.kick');
        li.append(b);
      }
      return li;
    }));
    if (!interps.length) {
      const li = document.createElement('li');
      li.className = 'none';
      li.textContent = (booth.kind || booth.source) === 'browser' ? t('control.nobody') : '';
      s.interpreters.append(li);
    }
  }
}

// ---- outputs: recording and restreams -------------------------------------

const RUNNING = new Set(['starting', 'live', 'retrying']); // the crew wants it on: the button stops it
const kindLabel = (k) => (k === 'recording' ? t('control.out.toDisk') : k === 'rtmp' ? 'RTMP' : k === 'srt' ? 'SRT' : k);
const outKeyOf = (o) => `${o.kind === 'recording' ? 'recording' : 'restream'}:${o.name}`;
let confirming = null; // the output card whose Stop waits for the confirm dialog

// "Recording" or "restream yt (RTMP, hy)": for labels, the confirm and announcements.
function outputLabel(c) {
  if (c.isRec) return t('control.out.recording');
  const bits = [kindLabel(c.kind), c.lang].filter(Boolean).join(', ');
  return t('control.out.restream', { name: `${c.name}${bits ? ` (${bits})` : ''}` });
}

function fmtFor(sec) {
  if (sec < 60) return t('unit.s', { v: sec });
  return fmtUptime(sec).replace(new RegExp(`^${t('control.uptime.m', { v: 0 })} `), '');
}

function renderOutputs(view, r) {
  if (!('outputs' in r)) { view.outPanel.hidden = true; return; } // a server without outputs
  const outs = list(r.outputs, 'name').filter((o) => o && o.name);
  view.outPanel.hidden = false;
  const key = JSON.stringify(outs.map((o) => [o.name, o.kind, o.lang]));
  if (key !== view.outKey) {
    view.outKey = key;
    const keep = new Map();
    const els = outs.map((o) => {
      const k = outKeyOf(o);
      let c = view.outputs.get(k);
      if (!c || c.kind !== o.kind || c.lang !== (o.lang || '')) c = buildOutput(view, o);
      keep.set(k, c);
      return c.el;
    });
    if (confirming && confirming.view === view && keep.get(confirming.key) !== confirming) ui.confirm.close('');
    view.outputs = keep;
    view.outList.replaceChildren(...els);
    view.outNone.textContent = outs.length ? '' : t('control.out.none');
  }
  const changes = [];
  for (const o of outs) {
    const c = view.outputs.get(outKeyOf(o));
    if (c) { const ch = updateOutput(c, o); if (ch) changes.push(ch); }
  }
  // Screen readers hear state changes, not the per-second counters.
  if (changes.length) view.outAnnounce.textContent = `${view.room}: ${changes.join('. ')}`;
  view.outShown = true;
}

function buildOutput(view, o) {
  const el = ui.outputTpl.content.firstElementChild.cloneNode(true);
  apply(el);
  const q = (sel) => el.querySelector(sel);
  const isRec = o.kind === 'recording';
  const c = {
    el, view, room: view.room, name: o.name, kind: o.kind, lang: o.lang || '', isRec, key: outKeyOf(o),
    busy: new Set(), o, state: null, lastFile: null,
    badge: q('.out-state'), since: q('.out-since'), target: q('.out-target-val'), targetK: q('.out-k'),
    kbps: q('.out-kbps'), bytes: q('.out-bytes'), reconnects: q('.out-reconnects'), dropped: q('.out-dropped'),
    file: q('.out-file'), error: q('.out-error'), btn: q('.out-toggle'), result: q('.result'),
  };
  el.dataset.room = view.room;
  el.dataset.name = o.name;
  el.dataset.kind = o.kind;
  const nameEl = q('.out-name');
  nameEl.id = `out-${view.room}-${isRec ? 'rec' : 'rs'}-${o.name}`;
  nameEl.textContent = isRec ? t('control.out.recording') : o.name;
  el.setAttribute('aria-labelledby', nameEl.id);
  q('.out-kind').textContent = [kindLabel(o.kind), o.lang ? o.lang.toUpperCase() : ''].filter(Boolean).join(' · ');
  c.targetK.textContent = isRec ? t('control.out.into') : t('control.out.to');
  c.btn.addEventListener('click', () => {
    if (c.busy.size) return; // the last press is still on its way
    const st = c.o.state;
    const value = !RUNNING.has(st);
    if (!value && st === 'live') { askStop(c); return; }
    sendOutput(c, value);
  });
  return c;
}

function sendOutput(c, value) {
  const type = c.isRec ? 'record' : 'restream';
  const fields = c.isRec ? { room: c.room, value } : { room: c.room, name: c.name, value };
  c.busy.add(type);
  setToggle(c);
  if (act(type, fields, c) === null) { c.busy.delete(type); setToggle(c); }
}

function setToggle(c) {
  const on = RUNNING.has(c.o.state);
  c.btn.textContent = on ? t('control.out.stop') : t('control.out.start');
  c.btn.dataset.action = on ? 'stop' : 'start';
  c.btn.setAttribute('aria-label', c.isRec ? t(on ? 'control.out.stopRecording' : 'control.out.startRecording', { room: c.room })
    : t(on ? 'control.out.stopWhat' : 'control.out.startWhat', { what: outputLabel(c) }));
  // aria-disabled, not disabled: a keyboard user's focus stays on the button.
  c.btn.setAttribute('aria-disabled', String(c.busy.size > 0));
}

// Returns a sentence for the live region when the state changed, else ''.
function updateOutput(c, o) {
  c.o = o;
  const st = o.state || 'unknown';
  const prev = c.state;
  c.state = st;
  c.el.dataset.state = st;
  c.badge.dataset.state = st;
  c.badge.textContent = stateName('out', st);
  const since = num(o.since);
  c.since.textContent = since > 0 ? t('control.out.for', { time: fmtFor(Math.max(0, Math.round(Date.now() / 1000 - since))) }) : '';
  c.since.title = since > 0 ? t('control.out.since', { state: stateName('out', st), time: clock(since) }) : '';
  c.target.textContent = o.target || '–'; // as sent: the server masks stream keys
  const kbps = num(o.kbps);
  c.kbps.textContent = t('control.kbps', { v: kbps !== null && (kbps > 0 || st === 'live') ? kbps.toFixed(0) : '–' });
  c.bytes.textContent = `· ${num(o.bytes) ? fmtBytes(o.bytes) : fmtBytes(0)}`;
  const rc = num(o.reconnects) ?? 0;
  const dr = num(o.dropped) ?? 0;
  c.reconnects.textContent = `· ${t('control.out.reconnects', { n: rc })}`;
  c.reconnects.dataset.bad = String(rc > 0);
  c.dropped.textContent = `· ${t('control.out.dropped', { n: dr })}`;
  c.dropped.dataset.bad = String(dr > 0);
  if (o.file) c.lastFile = o.file;
  const file = o.file || c.lastFile;
  c.file.hidden = !c.isRec || !file;
  c.file.textContent = o.file ? t('control.out.writing', { file: o.file }) : file ? t('control.out.lastFile', { file }) : '';
  c.file.dataset.current = String(!!o.file);
  c.error.hidden = !o.error;
  c.error.textContent = o.error || '';
  setToggle(c);
  if (prev === null || prev === st) return '';
  return `${outputLabel(c)} ${stateName('out', st)}${o.error ? `: ${o.error}` : ''}`;
}

function askStop(c) {
  confirming = c;
  const label = outputLabel(c);
  if (c.isRec) {
    ui.confirmTitle.textContent = t('control.confirm.recTitle', { room: c.room });
    ui.confirmText.textContent = c.o.file ? t('control.confirm.recTextFile', { file: c.o.file }) : t('control.confirm.recText');
    ui.confirmStop.textContent = t('control.confirm.recStop');
  } else {
    ui.confirmTitle.textContent = t('control.confirm.rsTitle', { what: label });
    ui.confirmText.textContent = t('control.confirm.rsText', { room: c.room, target: c.o.target || t('control.confirm.platform') });
    ui.confirmStop.textContent = t('control.confirm.rsStop');
  }
  ui.confirm.returnValue = '';
  ui.confirm.showModal();
  ui.confirmKeep.focus(); // the safe choice is the default: Enter or Escape keeps it running
}

ui.confirm.addEventListener('close', () => {
  const c = confirming;
  confirming = null;
  if (!c || !c.el.isConnected) return;
  if (ui.confirm.returnValue === 'stop') sendOutput(c, false);
  c.btn.focus();
});

function fmtUptime(sec) {
  if (num(sec) === null) return '–';
  const d = Math.floor(sec / 86400);
  const h = Math.floor((sec % 86400) / 3600);
  const m = Math.floor((sec % 3600) / 60);
  const s = Math.floor(sec % 60);
  const u = (k, v) => t(`control.uptime.${k}`, { v });
  const p2 = (v) => String(v).padStart(2, '0');
  return d ? `${u('d', d)} ${u('h', h)}` : h ? `${u('h', h)} ${u('m', p2(m))}` : `${u('m', m)} ${u('s', p2(s))}`;
}
function fmtBytes(b) {
  if (num(b) === null) return '–';
  if (b >= 1 << 30) return t('control.gib', { v: fmtNum(b / 2 ** 30, 1) });
  if (b >= 1 << 20) return t('control.mib', { v: fmtNum(b / 2 ** 20) });
  return t('control.kib', { v: fmtNum(b / 1024) });
}

function renderServer(srv, roomListeners) {
  const cpu = num(srv.cpu_pct ?? srv.cpu_percent ?? srv.cpu);
  ui.srv.cpu.textContent = cpu === null ? '–' : t('control.pct', { v: cpu.toFixed(0) });
  ui.srv.cpu.dataset.bad = String(cpu !== null && cpu > 80);
  const rss = num(srv.rss_bytes ?? srv.rss) ?? (num(srv.rss_kb ?? srv.rss_kib) !== null ? (srv.rss_kb ?? srv.rss_kib) * 1024 : null);
  ui.srv.mem.textContent = fmtBytes(rss);
  ui.srv.listeners.textContent = String(num(srv.listeners) ?? roomListeners);
  ui.srv.uptime.textContent = fmtUptime(num(srv.uptime_s ?? srv.uptime));
  ui.srv.version.textContent = srv.version || control.welcome?.version || '–';
  ui.srv.crew.textContent = num(srv.crew) === null ? '–' : String(srv.crew);
}

// ---- alerts and the chat feed ----------------------------------------------

const alertsById = new Map(); // id -> alert + { active, firstSeen, clearedAt }
const announced = new Set(); // slow-down requests already in the feed (id@since)

const ms = (t) => (num(t) === null ? Date.now() : t < 1e12 ? t * 1000 : t); // seconds or ms since the epoch
function clock(t) {
  const d = new Date(ms(t));
  return d.toTimeString().slice(0, 8);
}

function upsertAlert(a, fresh) {
  if (!a || !a.id) return;
  const old = alertsById.get(a.id);
  const merged = { ...old, ...a, active: true, firstSeen: old?.firstSeen ?? Date.now() };
  delete merged.clearedAt;
  alertsById.set(a.id, merged);
  const feedKey = `${a.id}@${a.since}`;
  if (a.kind === 'slow-down' && !announced.has(feedKey)) {
    announced.add(feedKey);
    // The request also reaches us as a booth chat line (the partner sees it
    // there); the feed shows both, the highlighted one comes from the alert.
    addFeed({ kind: 'slow-down', room: a.room, booth: a.lang || a.booth, from: a.params?.who || '', alert: a, at: ms(a.since) });
  }
  if (fresh) {
    merged.fresh = true;
    // A new alert is said at once (role=alert); stage loss has its own words, from the stage badge.
    if ((!old || !old.active) && a.kind !== 'stage-lost') say('control.say.alert', { kind: alertName(a.kind), where: [a.room, a.lang || a.booth].filter(Boolean).join('/'), message: alertText(a).join('') });
  }
}

// An alert's message in the page's language, as parts: [before, error, after]
// where `error` is the server's own words (GStreamer's, English) or ''. From
// control.alertMsg.KIND and the alert's params; a kind (or a server) the
// page does not know: the server's message, whole, as the "error" part.
const ERROR_MARK = '\u0000';
function alertText(a) {
  const p = a.params && typeof a.params === 'object' ? a.params : null;
  let key = `control.alertMsg.${a.kind}`;
  if (!p || !has(key)) return ['', a.message || '', ''];
  const vars = { ...p };
  if (a.kind === 'stage-lost') {
    const r = `control.stageReason.${p.reason}`;
    vars.reason = has(r) ? t(r) : p.reason || '';
  }
  if (a.kind === 'restream-down' && !p.error) key = 'control.alertMsg.restream-downNotYet';
  if (typeof p.peak_db === 'number') vars.peak = fmtNum(p.peak_db, 1);
  if (typeof p.n === 'number') vars.n = p.n;
  if (typeof p.s === 'number') vars.s = fmtNum(p.s);
  if ('error' in p) vars.error = ERROR_MARK;
  const [before, after = ''] = t(key, vars).split(ERROR_MARK);
  return [before, 'error' in p && p.error ? String(p.error) : '', after];
}

// Fills `el` with an alert's message: the server's own words in a span of
// their own, marked data-server-text (the i18n test skips them).
function fillAlertText(el, a) {
  const [before, error, after] = alertText(a);
  const parts = [before];
  if (error) {
    const span = document.createElement('span');
    span.dataset.serverText = '';
    span.lang = 'en';
    span.textContent = error;
    parts.push(span);
  }
  parts.push(after);
  el.replaceChildren(...parts.filter((x) => x !== ''));
}

function renderAlerts() {
  const all = [...alertsById.values()];
  const active = all.filter((a) => a.active).sort((x, y) => ms(y.since ?? y.firstSeen) - ms(x.since ?? x.firstSeen));
  const cleared = all.filter((a) => !a.active).sort((x, y) => y.clearedAt - x.clearedAt);
  for (const a of cleared.slice(MAX_CLEARED_ALERTS)) alertsById.delete(a.id);
  control.alerts = active;
  ui.alertCount.textContent = String(active.length);
  ui.alertCount.dataset.any = String(active.length > 0);
  ui.alerts.replaceChildren(...[...active, ...cleared.slice(0, MAX_CLEARED_ALERTS)].map((a) => {
    const li = document.createElement('li');
    li.dataset.kind = a.kind || 'alert';
    li.dataset.active = String(a.active);
    const head = document.createElement('div');
    head.className = 'alert-head';
    const kind = document.createElement('span');
    kind.className = 'alert-kind';
    kind.textContent = alertName(a.kind);
    const where = document.createElement('span');
    where.className = 'alert-where';
    where.textContent = [a.room, a.lang || a.booth].filter(Boolean).join('/');
    const when = document.createElement('time');
    when.textContent = a.active ? clock(a.since ?? a.firstSeen) : t('control.cleared', { time: clock(a.clearedAt) });
    head.append(kind, where, when);
    const msg = document.createElement('div');
    msg.className = 'alert-msg';
    fillAlertText(msg, a);
    li.append(head, msg);
    return li;
  }));
  // Flag the strips (and outputs) that have an active alert.
  for (const v of roomViews.values()) {
    for (const s of v.strips.values()) s.el.dataset.alert = 'false';
    for (const c of v.outputs.values()) c.el.dataset.alert = 'false';
  }
  for (const a of active) {
    const v = roomViews.get(a.room);
    // restream-down carries the restream's name in `lang`; recording-failed is the room's recording.
    const target = a.kind === 'restream-down' ? v?.outputs.get(`restream:${a.lang}`)
      : a.kind === 'recording-failed' ? v?.outputs.get('recording:record') : v?.strips.get(a.lang || a.booth);
    if (target) target.el.dataset.alert = 'true';
  }
}

function addFeed(item) {
  control.chat.unshift(item);
  if (control.chat.length > MAX_FEED) control.chat.pop();
  feedLi.set(item, document.createElement('li'));
  fillFeedItem(item);
  ui.chat.prepend(feedLi.get(item));
  while (ui.chat.children.length > MAX_FEED) ui.chat.lastChild.remove();
}

const feedLi = new WeakMap(); // feed item -> its <li>

function fillFeedItem(item) {
  const li = feedLi.get(item);
  li.dataset.kind = item.kind;
  const head = document.createElement('div');
  head.className = 'feed-head';
  const where = document.createElement('span');
  where.className = 'feed-where';
  where.textContent = `${item.room || '?'}/${item.booth || '?'}`;
  const from = document.createElement('span');
  from.className = 'feed-from';
  from.textContent = item.kind === 'slow-down' ? `${t('control.slowDown')}${item.from ? ` (${item.from})` : ''}` : item.from || '';
  const when = document.createElement('time');
  when.textContent = clock(item.at);
  head.append(where, from, when);
  const text = document.createElement('div');
  text.className = 'feed-text';
  if (item.alert) fillAlertText(text, item.alert);
  else if (item.key) text.textContent = t(item.key);
  else {
    text.dataset.serverText = ''; // a person's words
    text.textContent = item.text || '';
  }
  li.replaceChildren(head, text);
}

// ---- meters ----------------------------------------------------------------

const meters = new Map(); // key -> { peak, rms, dPeak, dRms, hold, holdAt, clipAt, at }
let meterStrips = [];

function meterFor(key) {
  let m = meters.get(key);
  if (!m) {
    m = { peak: -100, rms: -100, dPeak: METER_MIN_DB, dRms: METER_MIN_DB, hold: METER_MIN_DB, holdAt: 0, clipAt: -1e9, at: 0 };
    meters.set(key, m);
  }
  return m;
}

function setMeter(key, pr, now) {
  if (!Array.isArray(pr)) return;
  const m = meterFor(key);
  m.peak = num(pr[0]) ?? -100;
  m.rms = num(pr[1]) ?? -100;
  m.at = now;
  if (m.peak >= CLIP_DB) m.clipAt = now;
  if (m.peak >= m.hold) { m.hold = m.peak; m.holdAt = now; }
}

function feedMeters(msg) {
  const now = performance.now();
  for (const [room, r] of Object.entries(msg.rooms || {})) {
    setMeter(`${room}|floor`, r.floor, now);
    for (const [lang, v] of Object.entries(r.channels || {})) setMeter(`${room}|ch|${lang}`, v, now);
    for (const [lang, v] of Object.entries(r.booths || {})) setMeter(`${room}|booth|${lang}`, v, now);
  }
}

function stepMeter(m, now, dt) {
  const stale = now - m.at > METER_STALE_MS;
  const peak = stale ? -100 : Math.max(METER_MIN_DB, m.peak);
  const rms = stale ? -100 : Math.max(METER_MIN_DB, m.rms);
  m.dPeak = peak >= m.dPeak ? peak : Math.max(peak, m.dPeak - BAR_FALL_DB_S * dt);
  m.dRms += (rms - m.dRms) * (1 - Math.exp(-(dt * 1000) / RMS_TAU_MS));
  if (m.dRms < METER_MIN_DB) m.dRms = METER_MIN_DB;
  if (now - m.holdAt > PEAK_HOLD_MS) m.hold = Math.max(m.dPeak, m.hold - PEAK_FALL_DB_S * dt);
  m.stale = stale;
}

const CSS_W = 120;
const CSS_H = 112;
function sizeCanvas(s) {
  const dpr = window.devicePixelRatio || 1;
  s.canvas.width = Math.round(CSS_W * dpr);
  s.canvas.height = Math.round(CSS_H * dpr);
  s.ctx = s.canvas.getContext('2d');
  s.ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
}

const TOP = 22;
const BOTTOM = CSS_H - 4;
const yOf = (db) => TOP + (BOTTOM - TOP) * (Math.min(0, Math.max(METER_MIN_DB, db)) / METER_MIN_DB);
const SCALE = [0, -6, -12, -20, -30, -40, -50, -60];

function drawBar(ctx, x, w, m, now, label) {
  ctx.fillStyle = '#1b1f24';
  ctx.fillRect(x, TOP, w, BOTTOM - TOP);
  // Peak band (lighter) then RMS bar, both coloured by zone.
  const zones = [[-60, -18, '#2ea043'], [-18, -6, '#d4a72c'], [-6, 0, '#f85149']];
  for (const [lo, hi, col] of zones) {
    const top = Math.min(hi, m.dPeak);
    if (top > lo) {
      ctx.globalAlpha = 0.35;
      ctx.fillStyle = col;
      ctx.fillRect(x, yOf(top), w, yOf(lo) - yOf(top));
    }
    const rtop = Math.min(hi, m.dRms);
    if (rtop > lo) {
      ctx.globalAlpha = 1;
      ctx.fillStyle = col;
      ctx.fillRect(x, yOf(rtop), w, yOf(lo) - yOf(rtop));
    }
  }
  ctx.globalAlpha = 1;
  if (m.hold > METER_MIN_DB) {
    ctx.fillStyle = m.hold >= CLIP_DB ? '#ff7b72' : '#e6edf3';
    ctx.fillRect(x, yOf(m.hold) - 1, w, 2);
  }
  const clip = now - m.clipAt < CLIP_HOLD_MS;
  ctx.fillStyle = clip ? '#f85149' : '#30363d';
  ctx.fillRect(x, 12, w, 7);
  ctx.fillStyle = m.stale ? '#6e7681' : '#9da7b3';
  ctx.font = '9px system-ui, sans-serif';
  ctx.textAlign = 'center';
  ctx.fillText(clip ? t('control.meter.clip') : t(label), x + w / 2, 9);
  if (m.stale) {
    ctx.fillStyle = 'rgba(13,17,23,0.6)';
    ctx.fillRect(x, TOP, w, BOTTOM - TOP);
  }
}

function drawStrip(s, now) {
  const ctx = s.ctx;
  if (!ctx) return;
  ctx.clearRect(0, 0, CSS_W, CSS_H);
  const inM = meterFor(s.inKey);
  const outM = meterFor(s.outKey);
  drawBar(ctx, 6, 38, inM, now, s.inLabel);
  drawBar(ctx, 76, 38, outM, now, 'control.meter.out');
  ctx.fillStyle = '#8b949e';
  ctx.font = '9px system-ui, sans-serif';
  ctx.textAlign = 'center';
  for (const db of SCALE) {
    const y = yOf(db);
    ctx.fillRect(45, y, 3, 1);
    ctx.fillRect(72, y, 3, 1);
    ctx.fillText(String(db), 60, y + 3);
  }
  const fmt = (m) => (m.stale || m.rms <= -99 ? '—' : `${m.rms.toFixed(0)}`);
  const inText = t(s.isOrig ? 'control.level.floor' : 'control.level.in', { v: fmt(inM) });
  const outText = t('control.level.out', { v: fmt(outM) });
  if (s.inDb.textContent !== inText) s.inDb.textContent = inText;
  if (s.outDb.textContent !== outText) s.outDb.textContent = outText;
}

let lastFrame = performance.now();
let lastLinkAt = performance.now();
let lastLinkBytes = 0;
function frame(now) {
  const dt = Math.min(0.25, (now - lastFrame) / 1000);
  lastFrame = now;
  for (const m of meters.values()) stepMeter(m, now, dt);
  for (const s of meterStrips) drawStrip(s, now);
  // i18n.lang: the strings are loaded (a busy machine took over 1 s: the link
  // speed was drawn as its key before)
  if (i18n.lang && now - lastLinkAt >= 1000) {
    const bps = ((stats.rx.bytes - lastLinkBytes) * 1000) / (now - lastLinkAt);
    ui.srv.link.textContent = t('control.kibps', { v: fmtNum(bps / 1024, 1) });
    lastLinkBytes = stats.rx.bytes;
    lastLinkAt = now;
    if (control.welcome && control.ws && now - lastStateAt > STATE_STALE_MS) {
      setConn('control.conn.stale', { s: Math.round((now - lastStateAt) / 1000) }, 'error');
      document.body.classList.add('stale');
    } else if (control.welcome && control.ws) {
      if (ui.conn.dataset.kind !== 'ok') setConn('control.conn.connected', {}, 'ok');
      document.body.classList.remove('stale');
    }
  }
  requestAnimationFrame(frame);
}
requestAnimationFrame(frame);

// ---- language ----------------------------------------------------------------

// State words from the server (stage, channel mode, output state, booth kind,
// alert kind): translated when the language has them, else as sent.
function stateName(group, v) {
  const key = `control.${group}.${v}`;
  return has(key) ? t(key) : v;
}
const alertName = (kind) => stateName('alert', kind || 'alert');

let lastSay = '';
function say(key, vars) {
  const text = t(key, vars);
  // The same words twice in a row are not spoken again: change them a little.
  ui.announce.textContent = text === lastSay ? `${text}\u00a0` : text;
  lastSay = ui.announce.textContent;
}

onLanguage(() => {
  fillPicker(ui.uiLang, UI_LANGS);
  if (connMsg) ui.conn.textContent = t(connMsg.key, connMsg.vars);
  if (signinMsg) ui.signinError.textContent = t(signinMsg.key, signinMsg.vars);
  // Rebuild what the state draws: the next state message fills it in the new language.
  shapeKey = '';
  if (control.state) renderState(control.state);
  renderAlerts();
  for (const item of control.chat) if (feedLi.has(item)) fillFeedItem(item);
});
ui.uiLang.addEventListener('change', () => {
  saveLanguage(ui.uiLang.value);
  setLanguage(ui.uiLang.value);
});

// ---- start -----------------------------------------------------------------

await setLanguage(savedLanguage(UI_LANGS) || browserLanguage(UI_LANGS) || 'en');
creds = loadCreds();
if (creds) {
  ui.signin.hidden = true;
  connect();
} else {
  showSignin();
}
