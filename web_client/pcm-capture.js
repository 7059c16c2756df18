// AudioWorklet: microphone (Float32 at the context's rate) -> PCM16 mono frames at targetRate.
//
// Posts {pcm: ArrayBuffer (little-endian int16), peak: number} every frameMs; the buffer is
// transferred, so the main thread owns it. Any context rate works: a windowed-sinc
// resampler low-passes below the target Nyquist, then interpolates (exact for 48k -> 16k).

const ZERO_CROSSINGS = 24; // kernel half width in output samples: ~1.8 kHz transition band
const PHASES = 64; // fractional positions tabulated between two input samples

class Resampler {
  constructor(inRate, outRate) {
    this.step = inRate / outRate; // input samples per output sample
    this.bypass = inRate === outRate;
    this.half = Math.ceil(Math.max(1, this.step) * ZERO_CROSSINGS); // kernel half width, input samples
    const half = this.half;
    const cutoff = Math.min(1, outRate / inRate) * 0.92; // of the input Nyquist; leaves a transition band
    this.table = [];
    for (let p = 0; p <= PHASES; p++) {
      const frac = p / PHASES;
      const taps = new Float32Array(2 * half);
      let sum = 0;
      for (let k = 0; k < 2 * half; k++) {
        const t = k - (half - 1) - frac; // distance from the output position, in input samples
        const x = Math.PI * cutoff * t;
        const sinc = x === 0 ? 1 : Math.sin(x) / x;
        const w = 0.42 + 0.5 * Math.cos((Math.PI * t) / half) + 0.08 * Math.cos((2 * Math.PI * t) / half); // Blackman
        taps[k] = Math.abs(t) < half ? sinc * w : 0;
        sum += taps[k];
      }
      for (let k = 0; k < taps.length; k++) taps[k] /= sum; // unity gain at DC
      this.table.push(taps);
    }
    this.buf = new Float32Array(0); // input not yet consumed, plus the kernel's history
    this.pos = half - 1; // position of the next output sample in buf (starts with no history)
  }

  /** Resample one block; returns the output samples it completes (possibly none). */
  process(input) {
    if (this.bypass) return input;
    const half = this.half;
    const buf = new Float32Array(this.buf.length + input.length);
    buf.set(this.buf);
    buf.set(input, this.buf.length);
    const out = [];
    while (Math.floor(this.pos) + half < buf.length) {
      const base = Math.floor(this.pos);
      const taps = this.table[Math.round((this.pos - base) * PHASES)];
      let acc = 0;
      const start = base - (half - 1);
      for (let k = 0; k < taps.length; k++) acc += buf[start + k] * taps[k];
      out.push(acc);
      this.pos += this.step;
    }
    const keep = Math.max(0, Math.floor(this.pos) - (half - 1));
    this.buf = buf.slice(keep);
    this.pos -= keep;
    return Float32Array.from(out);
  }
}

class PcmCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { targetRate = 16000, frameMs = 20 } = options.processorOptions || {};
    this.resampler = new Resampler(sampleRate, targetRate);
    this.frame = new Int16Array(Math.round((targetRate * frameMs) / 1000));
    this.filled = 0;
    this.peak = 0;
    this.running = true;
    this.port.onmessage = (e) => {
      if (e.data === "stop") this.running = false;
    };
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (channel) this.push(this.resampler.process(channel));
    return this.running;
  }

  push(samples) {
    for (let i = 0; i < samples.length; i++) {
      const s = Math.max(-1, Math.min(1, samples[i]));
      this.peak = Math.max(this.peak, Math.abs(s));
      this.frame[this.filled++] = s < 0 ? Math.round(s * 0x8000) : Math.round(s * 0x7fff);
      if (this.filled === this.frame.length) this.flush();
    }
  }

  flush() {
    // Int16Array uses the platform's byte order; the wire wants little-endian.
    const out = new ArrayBuffer(this.frame.length * 2);
    const view = new DataView(out);
    for (let i = 0; i < this.frame.length; i++) view.setInt16(i * 2, this.frame[i], true);
    this.port.postMessage({ pcm: out, peak: this.peak }, [out]);
    this.filled = 0;
    this.peak = 0;
  }
}

registerProcessor("pcm-capture", PcmCapture);
