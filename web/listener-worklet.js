// dragoman listener: AudioWorkletProcessor holding the jitter buffer.
//
// Policy (all numbers in ms of audio at the context rate):
//  - Start playing once the buffer holds TARGET_START_MS.
//  - Underrun (a render quantum finds too few samples): output what is there,
//    fill with silence, count it, raise the target by UNDERRUN_STEP_MS (max
//    TARGET_MAX_MS) and re-buffer up to the new target before playing again.
//  - Each second without an underrun lowers the target by 1 ms, down to
//    TARGET_FLOOR_MS: a network that calmed down gets its latency back slowly.
//  - A backlog of more than target + CATCHUP_SLACK_MS (after a stall, a burst,
//    a tab that was in the background) is cut back to the target at once by
//    dropping the oldest audio: live interpretation must stay live.
//  - Audio that sat in the buffer unused for a whole TRIM_WINDOW_MS (the
//    lowest fill in that window stayed above target + TRIM_SLACK_MS, e.g. the
//    server's connect burst) is dropped too: it is pure added delay.
//  Every drop crossfades over FADE_MS so the cut does not click.
// Input arrives as {type:'pcm', data: Float32Array (mono), rate, end}. If the
// context does not run at the codec rate, a linear resampler converts it.
// Every ~1/15 s the processor posts stats: buffer fill, target, underruns,
// dropped ms, output peak and RMS (linear, 0..1).
//
// The listener's own original-audio mix: a second stream ({type:'pcm',
// stream:'orig'}, the room's `orig` channel) is mixed under the channel at
// the gain the page sets ({type:'orig-gain', value, rampMs}), lined up by
// media time: every chunk carries `end`, its packet's ingress stamp (ms), which
// the server takes from the room's pipeline clock, so the same moment has the
// same stamp in every channel of the room. Before each render quantum the
// original's head is cut back to the channel's head time, or starts later in
// the quantum, when they differ by more than ORIG_TOL_MS (arrival order and
// the channel's own drops move them apart). Every cut of the original fades
// it back in over FADE_MS.

const TARGET_START_MS = 40;
const TARGET_FLOOR_MS = 30;
const TARGET_MAX_MS = 300;
const UNDERRUN_STEP_MS = 10;
const CATCHUP_SLACK_MS = 80;
const TRIM_WINDOW_MS = 2000;
const TRIM_SLACK_MS = 10;
const FADE_MS = 3;
const STATS_HZ = 15;
const ORIG_TOL_MS = 0.5;

class ListenerProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.chunks = []; // queue of Float32Array, oldest first
    this.ends = []; // media time (ms) of the end of each chunk, when known
    this.offset = 0; // read position inside chunks[0]
    this.fill = 0; // samples queued, minus offset
    this.targetMs = TARGET_START_MS;
    this.playing = false; // false while (re)buffering
    this.underruns = 0;
    this.droppedMs = 0;
    this.calmSamples = 0; // samples played since the last underrun or target cut
    this.minFill = Infinity; // lowest fill seen in the current trim window
    this.windowSamples = 0;
    this.fade = null; // samples that would have played before a drop, faded out over the next output
    this.resampler = { rate: sampleRate, pos: 0, last: 0 };
    this.orig = { chunks: [], ends: [], offset: 0, fill: 0, gain: 0, target: 0, step: 0, fadeIn: 0, dropped: 0, held: 0, skew: 0,
      resampler: { rate: sampleRate, pos: 0, last: 0 }, buf: new Float32Array(128) };
    this.statSamples = 0;
    this.peak = 0;
    this.sumSq = 0;
    this.port.onmessage = (e) => this.onMessage(e.data);
  }

  ms(samples) { return (samples * 1000) / sampleRate; }
  samples(ms) { return Math.round((ms * sampleRate) / 1000); }

  onMessage(msg) {
    if (msg.type === 'pcm' && msg.stream === 'orig') {
      const o = this.orig;
      const data = msg.rate === sampleRate ? msg.data : this.resample(msg.data, msg.rate, o.resampler);
      if (data.length === 0) return;
      o.chunks.push(data);
      o.ends.push(msg.end ?? NaN);
      o.fill += data.length;
      // Never more than a second behind whatever happens to the channel.
      if (o.fill > sampleRate) this.origDrop(o.fill - this.fill);
    } else if (msg.type === 'orig-gain') {
      const o = this.orig;
      o.target = Math.max(0, Math.min(2, msg.value));
      o.step = (o.target - o.gain) / Math.max(1, this.samples(msg.rampMs ?? 50));
    } else if (msg.type === 'capture') {
      // Tests: record the channel and the original as lined up, then post both.
      const n = this.samples(msg.ms);
      this.capture = { main: new Float32Array(n), orig: new Float32Array(n), at: 0 };
    } else if (msg.type === 'flush-orig') {
      Object.assign(this.orig, { chunks: [], ends: [], offset: 0, fill: 0, fadeIn: 0, skew: 0 });
    } else if (msg.type === 'pcm') {
      const data = msg.rate === sampleRate ? msg.data : this.resample(msg.data, msg.rate);
      if (data.length === 0) return;
      this.chunks.push(data);
      this.ends.push(msg.end ?? NaN);
      this.fill += data.length;
      this.catchUp();
    } else if (msg.type === 'flush') {
      // New channel or new connection: old audio must not play.
      this.chunks = [];
      this.ends = [];
      this.offset = 0;
      this.fill = 0;
      this.playing = false;
      this.fade = null;
      this.minFill = Infinity;
      this.windowSamples = 0;
      Object.assign(this.orig, { chunks: [], ends: [], offset: 0, fill: 0, fadeIn: 0, skew: 0 });
    }
  }

  // Linear interpolation; keeps phase and the last sample across chunks so
  // chunk boundaries do not click. Only used when the context is not 48 kHz.
  resample(input, rate, r = this.resampler) {
    if (r.rate !== rate) { r.rate = rate; r.pos = 0; }
    const step = rate / sampleRate;
    const out = [];
    // pos is in input samples relative to input[0]; -1 means the previous chunk's last sample.
    let pos = r.pos;
    while (pos < input.length - 1) {
      const i = Math.floor(pos);
      const a = i < 0 ? r.last : input[i];
      const b = input[i + 1];
      out.push(a + (b - a) * (pos - i));
      pos += step;
    }
    r.pos = pos - input.length;
    r.last = input[input.length - 1];
    return Float32Array.from(out);
  }

  catchUp() {
    if (this.fill > this.samples(this.targetMs + CATCHUP_SLACK_MS)) this.drop(this.fill - this.samples(this.targetMs));
  }

  // Skip `n` samples from the head of the queue, keeping the samples that
  // would have played next so process() can crossfade from them.
  drop(n) {
    const fadeLen = this.samples(FADE_MS);
    this.fade = new Float32Array(Math.min(fadeLen, this.fill));
    this.read(this.fade, 0, this.fade.length, false);
    this.droppedMs += this.ms(n);
    this.read(null, 0, n, true);
  }

  // Copy up to n queued samples into out[at..] (out may be null) and, if
  // consume, remove them from the queue. Returns how many were available.
  // q: the queue (the channel's by default, or this.orig).
  read(out, at, n, consume, q = this) {
    let got = 0;
    let ci = 0;
    let off = q.offset;
    while (got < n && ci < q.chunks.length) {
      const c = q.chunks[ci];
      const take = Math.min(n - got, c.length - off);
      if (out) out.set(c.subarray(off, off + take), at + got);
      got += take;
      off += take;
      if (off >= c.length) { ci++; off = 0; }
    }
    if (consume) {
      q.chunks.splice(0, ci);
      q.ends.splice(0, ci);
      q.offset = off;
      q.fill -= got;
    }
    return got;
  }

  origDrop(n) {
    const o = this.orig;
    if (n <= 0) return;
    o.dropped += this.read(null, 0, n, true, o);
    o.fadeIn = this.samples(FADE_MS);
  }

  // Media time (ms) of the next sample of queue q, or null.
  headTime(q) {
    if (!q.chunks.length || !Number.isFinite(q.ends[0])) return null;
    return q.ends[0] - ((q.chunks[0].length - q.offset) * 1000) / sampleRate;
  }

  // Mix up to `n` samples of the original under out[0..n), lined up with the
  // channel, whose head was at media time mainHead before this quantum.
  mixOrig(out, n, mainHead) {
    const o = this.orig;
    if (o.fill === 0) return;
    let at = 0; // where in this quantum the original starts
    const oh = this.headTime(o);
    if (mainHead !== null && oh !== null) {
      const d = ((mainHead - oh) * sampleRate) / 1000; // > 0: the original's head is older
      o.skew = d;
      if (Math.abs(d) > sampleRate) { /* a stamp from another clock: leave it */ }
      else if (d > this.samples(ORIG_TOL_MS)) {
        this.origDrop(Math.min(Math.round(d), o.fill));
        if (o.fill === 0) return;
      } else if (d < -this.samples(ORIG_TOL_MS)) {
        at = Math.round(-d); // newer: it starts later
        o.held += Math.min(at, n);
        if (at >= n) return;
        o.fadeIn = this.samples(FADE_MS);
      }
    }
    if (o.buf.length < n) o.buf = new Float32Array(n);
    o.buf.fill(0);
    const got = this.read(o.buf, at, n - at, true, o) + at;
    const cap = this.capture;
    if (cap) {
      const k = Math.min(got, cap.main.length - cap.at);
      cap.main.set(out.subarray(0, k), cap.at);
      cap.orig.set(o.buf.subarray(0, k), cap.at);
      cap.at += k;
      if (cap.at >= cap.main.length) {
        this.port.postMessage({ type: 'capture', main: cap.main, orig: cap.orig, rate: sampleRate }, [cap.main.buffer, cap.orig.buffer]);
        this.capture = null;
      }
    }
    const fadeLen = this.samples(FADE_MS);
    for (let i = at; i < got; i++) {
      if (o.gain !== o.target) {
        o.gain += o.step;
        if ((o.step > 0 && o.gain > o.target) || (o.step < 0 && o.gain < o.target)) o.gain = o.target;
      }
      let g = o.gain;
      if (o.fadeIn > 0) { g *= 1 - o.fadeIn / fadeLen; o.fadeIn--; }
      out[i] += o.buf[i] * g;
    }
  }

  process(inputs, outputs) {
    const out = outputs[0][0];
    const n = out.length;
    let written = 0;

    if (!this.playing && this.fill >= this.samples(this.targetMs)) this.playing = true;
    if (this.playing) {
      const mainHead = this.headTime(this);
      written = this.read(out, 0, n, true);
      if (this.fade) this.crossfade(out, written);
      out.fill(0, written);
      this.mixOrig(out, written, mainHead);
      if (written < n) this.underrun();
      else this.calm(n);
    } else {
      out.fill(0);
    }
    // Mono in, copy to any further output channels (stereo destinations).
    for (let ch = 1; ch < outputs[0].length; ch++) outputs[0][ch].set(out);

    this.measure(out);
    return true;
  }

  crossfade(out, written) {
    const f = this.fade;
    const len = Math.min(f.length, written);
    for (let i = 0; i < len; i++) {
      const w = (i + 1) / (f.length + 1);
      out[i] = out[i] * w + f[i] * (1 - w);
    }
    this.fade = null;
  }

  underrun() {
    this.minFill = Infinity;
    this.windowSamples = 0;
    this.underruns++;
    this.playing = false;
    this.calmSamples = 0;
    this.targetMs = Math.min(TARGET_MAX_MS, this.targetMs + UNDERRUN_STEP_MS);
  }

  calm(n) {
    this.minFill = Math.min(this.minFill, this.fill);
    this.windowSamples += n;
    if (this.windowSamples >= this.samples(TRIM_WINDOW_MS)) {
      const spare = this.minFill - this.samples(this.targetMs);
      if (spare > this.samples(TRIM_SLACK_MS)) this.drop(spare);
      this.minFill = Infinity;
      this.windowSamples = 0;
    }
    this.calmSamples += n;
    if (this.calmSamples >= sampleRate) {
      this.calmSamples -= sampleRate;
      this.targetMs = Math.max(TARGET_FLOOR_MS, this.targetMs - 1);
    }
  }

  measure(out) {
    for (let i = 0; i < out.length; i++) {
      const v = out[i];
      const a = v < 0 ? -v : v;
      if (a > this.peak) this.peak = a;
      this.sumSq += v * v;
    }
    this.statSamples += out.length;
    if (this.statSamples < sampleRate / STATS_HZ) return;
    this.port.postMessage({
      type: 'stats',
      bufferMs: this.ms(this.fill),
      targetMs: this.targetMs,
      underruns: this.underruns,
      droppedMs: this.droppedMs,
      peak: this.peak,
      rms: Math.sqrt(this.sumSq / this.statSamples),
      orig: { bufferMs: this.ms(this.orig.fill), gain: this.orig.gain, skewMs: this.ms(this.orig.skew),
        droppedMs: this.ms(this.orig.dropped), heldMs: this.ms(this.orig.held) },
    });
    this.statSamples = 0;
    this.peak = 0;
    this.sumSq = 0;
  }
}

registerProcessor('dragoman-listener', ListenerProcessor);
