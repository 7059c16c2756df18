// The caller's microphone: one getUserMedia stream, an AudioContext to process it, and a level meter.

const LEVEL_INTERVAL_MS = 50;

export class Microphone {
  /** Make it inside the click that starts the call, so autoplay policies let its context run. */
  constructor(onLevel) {
    this.ctx = new AudioContext({ latencyHint: "interactive" });
    this.ctx.resume().catch(() => {}); // some browsers create it suspended even inside a click
    this.onLevel = onLevel; // peak of the last interval, 0..1 on a -60..0 dBFS scale
    this.stream = null;
    this.source = null;
    this.timer = 0;
  }

  /** Ask for the microphone; then use `source` (Web Audio) or `track` (WebRTC). */
  async open() {
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    this.source = this.ctx.createMediaStreamSource(this.stream);
    const analyser = this.ctx.createAnalyser();
    analyser.fftSize = 2048;
    this.source.connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    this.timer = setInterval(() => {
      analyser.getFloatTimeDomainData(samples);
      let peak = 0;
      for (const s of samples) peak = Math.max(peak, Math.abs(s));
      this.onLevel(peak > 0 ? Math.max(0, 1 + Math.log10(peak) / 3) : 0);
    }, LEVEL_INTERVAL_MS);
  }

  get track() {
    return this.stream.getAudioTracks()[0];
  }

  /** Stop the microphone; safe to call more than once, and before open() finished. */
  close() {
    clearInterval(this.timer);
    this.source?.disconnect();
    this.stream?.getTracks().forEach((t) => t.stop());
    this.ctx.close().catch(() => {});
    this.onLevel(0);
  }
}
