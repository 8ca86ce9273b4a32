// dragoman listener page, Watch mode: the room's HLS stream in a <video>.
//
// /hls/<room>/master.m3u8 has one H.264 video variant and one AAC audio
// rendition per channel (EXT-X-MEDIA, GROUP-ID "aac", URI audio-<lang>.m3u8).
// A language button picks the rendition: hls.audioTrack switches it on the
// running MediaSource (~20 ms; the new language is audible within ~1 s), the
// video is never restarted. Listen mode (WebSocket, ~50 ms) is for the hall;
// Watch is for remote viewers and is a few seconds behind: segments are 2 s
// and we play liveSyncDurationCount = 2 segments behind the live edge.
//
// hls.js comes from npm (web/package.json) and is served by dragoman at
// /vendor/hls/; it is imported only when Watch starts, so Listen never
// downloads it. Where hls.js cannot run (no MSE: older iPhones) the browser's
// own HLS player is used. With hls.js the <video>'s sound is routed through
// Web Audio (MediaElementSource -> Analyser -> destination) for the level
// meter; native HLS is left alone (Safari may play HLS silent through Web
// Audio).

const HLS_MODULE = '/vendor/hls/hls.min.mjs';
const HLS_WORKER = '/vendor/hls/hls.worker.js'; // a 'self' URL: the CSP forbids blob: workers
const HLS_CONFIG = {
  workerPath: HLS_WORKER,
  liveSyncDurationCount: 2, // start 2 segments (4 s) behind the live edge
  liveMaxLatencyDurationCount: 5, // further behind than 5 segments: jump forward
  maxLiveSyncPlaybackRate: 1.1, // between the two: play up to 10 % fast to catch up
  maxBufferLength: 10,
  backBufferLength: 10, // phones: keep memory small
};
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 8000;
// Playing but currentTime frozen this long: rebuild the player (hls.js
// handles ordinary stalls and discontinuities itself; this is the last resort).
const FROZEN_MS = 10000;
const TICK_MS = 250;

let hlsModule = null; // the imported hls.js module, once

// Retried: on a busy server or a flaky phone link one failed fetch must not
// push a browser that runs hls.js onto its own (maybe weaker) HLS player.
async function loadHls(tries = 3) {
  for (let i = 1; !hlsModule; i++) {
    try {
      // A query per retry: a module that failed once is not fetched again for the same URL.
      hlsModule = await import(i === 1 ? HLS_MODULE : `${HLS_MODULE}?retry=${i}`);
    } catch (e) {
      if (i >= tries) throw e;
      await new Promise((r) => setTimeout(r, 500 * i));
    }
  }
  return hlsModule.default;
}

// The audio track of `tracks` (hls.js audioTracks) that carries channel `ch`.
// By URI first: orig and the floor language's booth share LANGUAGE (both
// "en"), so the language code alone cannot tell them apart.
export function findTrack(tracks, ch) {
  const file = `audio-${ch.lang}.m3u8`;
  const byUri = tracks.find((t) => {
    try { return new URL(t.url, location.href).pathname.endsWith(`/${file}`); } catch { return false; }
  });
  if (byUri) return byUri;
  if (ch.native_name) {
    const byName = tracks.find((t) => t.name === ch.native_name);
    if (byName) return byName;
  }
  if (ch.lang === 'orig') return tracks.find((t) => t.default) || null;
  return tracks.find((t) => t.lang === ch.lang && !t.default) || null;
}

export class Watch {
  // video: the <video>; on: { status(i18n key, vars, kind), level(peak or null),
  // info({delayMs, track}), ended() (the player gave up), tokenRefused(room, i18n key) }
  constructor(video, on) {
    this.video = video;
    this.on = on;
    this.hls = null;
    this.native = false;
    this.ctx = null; // Web Audio route (hls.js only)
    this.source = null;
    this.analyser = null;
    this.room = null;
    this.channel = null;
    this.channels = [];
    this.timer = null;
    this.retryTimer = null;
    this.backoff = RETRY_MIN_MS;
    this.mediaRecoveries = 0;
    this.generation = 0; // bumps on every start/stop: late callbacks of an old player do nothing
    this.stats = {
      state: 'idle', engine: null, latencyMs: null, pdtLatencyMs: null, audioTrack: -1, audioTrackLang: null,
      audioTrackUrl: null, currentTime: 0, bufferMs: 0, droppedFrames: 0, mediaAttaches: 0, errors: 0, lastError: null,
      switches: [], // { lang, requestedAt, switchedMs } (performance.now() ms)
    };
    window.dragomanWatch = this; // tests read hls, video, stats, analyser
    video.addEventListener('playing', () => this.onPlaying());
    video.addEventListener('waiting', () => { if (this.stats.state === 'playing') this.setState('buffering', 'watch.buffering', 'warn'); });
    document.addEventListener('securitypolicyviolation', (e) => {
      if (this.stats.state === 'idle' || !/^(media|worker)-src|^default-src/.test(e.effectiveDirective || e.violatedDirective)) return;
      console.warn(`dragoman: CSP ${e.effectiveDirective} blocked ${e.blockedURI}`);
      this.fail('watch.csp', { directive: e.effectiveDirective });
      this.stats.lastError = `CSP ${e.effectiveDirective} blocked ${e.blockedURI}`;
    });
  }

  get playing() { return this.stats.state !== 'idle'; }

  masterUrl() {
    const q = this.token ? `?token=${encodeURIComponent(this.token)}` : '';
    return `/hls/${encodeURIComponent(this.room)}/master.m3u8${q}`;
  }

  // Call from the click handler (user gesture) before anything is awaited.
  prepareAudio() {
    if (this.ctx) { if (this.ctx.state !== 'running') this.ctx.resume(); return; }
    try {
      this.ctx = new AudioContext({ latencyHint: 'playback' });
    } catch {
      this.ctx = null; // no Web Audio: play straight, without a meter
    }
  }

  // token: a paid room's ticket code ('' for an open room), sent as ?token=; the
  // server puts it on every URI in the playlists, so hls.js carries it on
  async start(room, channels, lang, token = '') {
    this.stop(true);
    this.token = token;
    const gen = ++this.generation;
    this.room = room;
    this.channels = channels;
    this.channel = channels.find((c) => c.lang === lang) || null;
    this.backoff = RETRY_MIN_MS;
    this.mediaRecoveries = 0;
    this.setState('loading', 'watch.loading');
    let Hls = null;
    try {
      Hls = await loadHls();
    } catch (e) {
      console.warn('dragoman: cannot load hls.js', e);
    }
    if (gen !== this.generation) return;
    const url = this.masterUrl();
    if (Hls && Hls.isSupported()) {
      this.routeAudio();
      this.createHls(Hls, url, gen);
    } else if (this.video.canPlayType('application/vnd.apple.mpegurl')) {
      this.native = true;
      this.stats.engine = 'native';
      this.video.src = url;
      this.video.addEventListener('loadedmetadata', () => this.applyNativeTrack(), { once: true });
      this.play();
    } else {
      this.fail('watch.unsupported');
      return;
    }
    this.timer = setInterval(() => this.tick(), TICK_MS);
  }

  routeAudio() {
    if (!this.ctx || this.source) return;
    try {
      this.source = this.ctx.createMediaElementSource(this.video);
      this.analyser = new AnalyserNode(this.ctx, { fftSize: 2048, smoothingTimeConstant: 0 });
      this.source.connect(this.analyser);
      this.analyser.connect(this.ctx.destination);
    } catch (e) {
      console.warn('dragoman: no Web Audio route for the video', e);
    }
  }

  createHls(Hls, url, gen) {
    const hls = new Hls(HLS_CONFIG);
    this.hls = hls;
    this.stats.engine = `hls.js ${Hls.version}`;
    const E = Hls.Events;
    hls.on(E.MEDIA_ATTACHED, () => { this.stats.mediaAttaches++; });
    // audioTracks fill here, not in MANIFEST_PARSED.
    hls.on(E.AUDIO_TRACKS_UPDATED, () => this.applyTrack());
    hls.on(E.MANIFEST_PARSED, () => this.play());
    hls.on(E.AUDIO_TRACK_SWITCHED, (_, d) => {
      const sw = this.stats.switches[this.stats.switches.length - 1];
      if (sw && sw.switchedMs == null && d.id === sw.track) sw.switchedMs = performance.now() - sw.requestedAt;
      this.readTrack();
    });
    hls.on(E.FRAG_BUFFERED, () => { this.backoff = RETRY_MIN_MS; });
    hls.on(E.ERROR, (_, d) => this.onHlsError(Hls, d, gen));
    hls.attachMedia(this.video);
    hls.loadSource(url);
  }

  onHlsError(Hls, d, gen) {
    if (gen !== this.generation) return;
    this.stats.errors++;
    this.stats.lastError = `${d.type}/${d.details}${d.fatal ? ' (fatal)' : ''}`;
    if (!d.fatal) return;
    const code = d.response && d.response.code;
    if (d.details === Hls.ErrorDetails.MANIFEST_LOAD_ERROR && code === 404) {
      this.fail('watch.noVideo');
      return;
    }
    // 403: a paid room refused the ticket code (or none was given); retrying cannot help
    if (code === 403) {
      const key = this.token ? 'status.badToken' : 'status.tokenRequired';
      this.fail(key);
      if (this.on.tokenRefused) this.on.tokenRefused(this.room, key);
      return;
    }
    if (d.type === Hls.ErrorTypes.MEDIA_ERROR && this.mediaRecoveries < 2) {
      this.mediaRecoveries++;
      this.hls.recoverMediaError();
      return;
    }
    // Network or unrecoverable: rebuild the player after a backoff.
    this.setState('reconnecting', 'watch.lostIn', 'warn', { s: Math.round(this.backoff / 1000) });
    this.destroyHls();
    this.retryTimer = setTimeout(() => {
      if (gen !== this.generation) return;
      this.mediaRecoveries = 0;
      this.createHls(Hls, this.masterUrl(), gen);
    }, this.backoff);
    this.backoff = Math.min(RETRY_MAX_MS, this.backoff * 2);
  }

  play() {
    const p = this.video.play();
    if (p && p.catch) {
      p.catch((e) => {
        if (e.name === 'NotAllowedError') this.on.status('watch.pressPlay', {}, 'warn');
        else if (e.name !== 'AbortError') console.warn('dragoman: video.play()', e);
      });
    }
  }

  onPlaying() {
    if (this.stats.state === 'idle') return;
    this.lastAdvance = performance.now();
    this.setState('playing', 'watch.playing', 'ok');
  }

  // Language buttons: pick the channel's audio rendition; the video goes on.
  setLang(lang) {
    this.channel = this.channels.find((c) => c.lang === lang) || null;
    if (this.native) this.applyNativeTrack();
    else this.applyTrack();
  }

  applyTrack() {
    const hls = this.hls;
    if (!hls || !this.channel || !hls.audioTracks.length) return;
    const t = findTrack(hls.audioTracks, this.channel);
    if (!t) {
      this.on.status('watch.noTrack', { name: this.channel.native_name || this.channel.lang }, 'warn');
      return;
    }
    if (hls.audioTrack !== t.id) {
      this.stats.switches.push({ lang: this.channel.lang, track: t.id, requestedAt: performance.now(), switchedMs: null });
      if (this.stats.switches.length > 20) this.stats.switches.shift();
      hls.audioTrack = t.id;
    }
    this.readTrack();
  }

  applyNativeTrack() {
    const list = this.video.audioTracks; // Safari; absent elsewhere
    const ch = this.channel;
    if (!list || !ch) return;
    const all = Array.from({ length: list.length }, (_, i) => list[i]);
    const orig = this.channels.find((c) => c.lang === 'orig');
    const pick = all.find((t) => ch.native_name && t.label === ch.native_name)
      || (ch.lang === 'orig' ? all[0] : all.find((t) => t.language === ch.lang && !(orig && t.label === orig.native_name)));
    if (!pick) return;
    for (const t of all) t.enabled = t === pick;
    this.stats.audioTrack = all.indexOf(pick);
    this.stats.audioTrackLang = ch.lang;
    this.on.info({ track: pick.label || ch.lang });
  }

  readTrack() {
    const hls = this.hls;
    if (!hls) return;
    const t = hls.audioTracks[hls.audioTrack];
    this.stats.audioTrack = hls.audioTrack;
    this.stats.audioTrackUrl = t ? t.url : null;
    const m = t && /\/audio-([^/]+)\.m3u8$/.exec(new URL(t.url, location.href).pathname);
    this.stats.audioTrackLang = m ? m[1] : t ? t.lang : null; // channel lang ("orig", not "en")
    this.on.info({ track: t ? t.name : null });
  }

  tick() {
    const v = this.video;
    const s = this.stats;
    if (v.currentTime !== s.currentTime) this.lastAdvance = performance.now();
    s.currentTime = v.currentTime;
    s.droppedFrames = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality().droppedVideoFrames : 0;
    s.bufferMs = 0;
    for (let i = 0; i < v.buffered.length; i++) {
      if (v.buffered.start(i) <= v.currentTime && v.currentTime <= v.buffered.end(i)) s.bufferMs = (v.buffered.end(i) - v.currentTime) * 1000;
    }
    // Two views of the delay: hls.js's distance to the playlist's live edge,
    // and wall clock minus the PROGRAM-DATE-TIME of what is on screen (the
    // true delay when the server's and this device's clocks agree).
    let pdt = null;
    if (this.hls) {
      s.latencyMs = Number.isFinite(this.hls.latency) && this.hls.latency > 0 ? this.hls.latency * 1000 : null;
      pdt = this.hls.playingDate;
    } else if (this.native && v.getStartDate) {
      const start = v.getStartDate().getTime();
      if (Number.isFinite(start)) pdt = new Date(start + v.currentTime * 1000);
    }
    const age = pdt ? Date.now() - pdt.getTime() : null;
    s.pdtLatencyMs = age != null && age > -1000 && age < 120000 ? age : null;
    this.on.info({ delayMs: s.pdtLatencyMs ?? s.latencyMs });
    this.on.level(this.readLevel());
    if (s.state === 'playing' && !v.paused && performance.now() - this.lastAdvance > FROZEN_MS) {
      console.warn('dragoman: video frozen, restarting the player');
      this.start(this.room, this.channels, this.channel ? this.channel.lang : null);
    }
  }

  readLevel() {
    if (!this.analyser) return null;
    const wave = new Float32Array(this.analyser.fftSize);
    this.analyser.getFloatTimeDomainData(wave);
    let peak = 0;
    for (const x of wave) peak = Math.max(peak, Math.abs(x));
    return peak;
  }

  // key: an i18n key of the status line (the page translates it).
  setState(state, key, kind = '', vars = {}) {
    this.stats.state = state;
    this.on.status(key, vars, kind);
  }

  destroyHls() {
    if (this.hls) this.hls.destroy(); // detaches the MediaSource and stops loading
    this.hls = null;
  }

  // Give up: stop, say why (an i18n key), and let the page show its Play button again.
  fail(key, vars = {}) {
    this.stop();
    this.on.status(key, vars, 'error');
    this.on.ended();
  }

  // quiet: a restart follows at once; keep the status line.
  stop(quiet = false) {
    this.generation++;
    clearInterval(this.timer);
    clearTimeout(this.retryTimer);
    this.timer = null;
    this.destroyHls();
    if (this.native || this.video.getAttribute('src')) {
      this.video.removeAttribute('src');
      this.video.load();
    }
    this.video.pause();
    this.native = false;
    this.stats.state = 'idle';
    this.stats.latencyMs = null;
    this.stats.pdtLatencyMs = null;
    if (!quiet) this.on.level(null);
  }
}
