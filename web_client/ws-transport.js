// WebSocket transport (/ws/call): PCM16 frames up from an AudioWorklet, JSON events and PCM16
// reply audio down. Reply audio is scheduled back to back on an AudioContext at the server's
// output rate, and everything queued is dropped the moment the agent is interrupted.

import { stats } from "./stats.js";
import { Transport } from "./transport.js";

const INPUT_RATE = 16000; // what the capture worklet sends and session.start declares
const FRAME_MS = 20;
const START_DELAY_S = 0.05; // jitter margin when playback (re)starts from an empty queue

class Player {
  /** Gapless playback of PCM16 chunks; stop() drops everything queued at once. */
  constructor(rate) {
    try {
      this.ctx = new AudioContext({ sampleRate: rate, latencyHint: "interactive" });
    } catch {
      this.ctx = new AudioContext({ latencyHint: "interactive" }); // resamples each buffer instead
    }
    this.rate = rate;
    this.next = 0; // context time the next chunk starts
    this.sources = new Set();
    this.ctx.resume().catch(() => {});
  }

  play(arrayBuffer) {
    const view = new DataView(arrayBuffer);
    const n = view.byteLength >> 1;
    if (!n) return;
    const buffer = this.ctx.createBuffer(1, n, this.rate);
    const samples = buffer.getChannelData(0);
    for (let i = 0; i < n; i++) samples[i] = view.getInt16(i * 2, true) / 0x8000;
    const src = this.ctx.createBufferSource();
    src.buffer = buffer;
    src.connect(this.ctx.destination);
    const now = this.ctx.currentTime;
    if (this.next < now) {
      if (this.sources.size) stats.underruns++;
      this.next = now + START_DELAY_S;
    }
    src.start(this.next);
    this.next += buffer.duration;
    this.sources.add(src);
    stats.scheduledChunks++;
    src.onended = () => {
      this.sources.delete(src);
      stats.playedChunks++;
    };
  }

  stop() {
    stats.droppedChunks += this.sources.size;
    for (const src of this.sources) {
      src.onended = null;
      src.stop();
      src.disconnect();
    }
    this.sources.clear();
    this.next = 0;
  }

  close() {
    this.stop();
    this.ctx.close().catch(() => {});
  }
}

export class WebSocketTransport extends Transport {
  constructor(mic, options, handlers) {
    super(mic, options, handlers);
    this.ws = null;
    this.capture = null;
    this.player = null;
    this.turn = 0; // latest agent turn seen in agent.text
    this.droppedTurn = 0; // reply audio for turns up to this one is discarded
  }

  async connect() {
    const ctx = this.mic.ctx;
    await ctx.audioWorklet.addModule("pcm-capture.js");
    if (this.done) return;
    this.capture = new AudioWorkletNode(ctx, "pcm-capture", {
      channelCount: 1,
      channelCountMode: "explicit",
      processorOptions: { targetRate: INPUT_RATE, frameMs: FRAME_MS },
    });
    this.capture.port.onmessage = (e) => this.onFrame(e.data.pcm);
    this.mic.source.connect(this.capture);
    // The worklet outputs silence; connecting it keeps it pulled in every browser.
    this.capture.connect(ctx.destination);
    this.open();
  }

  open() {
    const url = new URL("ws/call", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      const { language, persona, voice } = this.options;
      this.send({ type: "session.start", audio: { format: "pcm16", sample_rate: INPUT_RATE }, language, persona, voice });
    };
    ws.onmessage = (e) => (typeof e.data === "string" ? this.onEvent(JSON.parse(e.data)) : this.onAudio(e.data));
    ws.onclose = (e) => {
      const why = e.code === 1006 ? "could not reach the server, or the connection dropped" : e.reason || "the server closed the call";
      this.finish(e.code === 1000 ? null : { code: `connection ${e.code}`, message: why });
    };
    this.ws = ws;
  }

  send(message) {
    if (this.ws?.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  onFrame(pcm) {
    if (this.player && this.ws?.readyState === WebSocket.OPEN) {
      this.ws.send(pcm);
      stats.framesSent++;
    }
  }

  onAudio(data) {
    stats.audioBytesReceived += data.byteLength;
    if (!this.player || this.turn <= this.droppedTurn) {
      stats.audioBytesDropped += data.byteLength;
      return;
    }
    this.player.play(data);
  }

  onEvent(event) {
    switch (event.type) {
      case "session.created":
        stats.outputRate = event.output_audio.sample_rate;
        this.player = new Player(stats.outputRate);
        break;
      case "agent.text":
        this.turn = Math.max(this.turn, event.turn_id);
        break;
      case "agent.interrupted":
        this.player?.stop();
        this.droppedTurn = Math.max(this.droppedTurn, event.turn_id);
        break;
      default:
    }
    this.dispatch(event);
  }

  /** Release the socket, the worklet and playback. */
  close() {
    super.close();
    this.capture?.port.postMessage("stop");
    this.capture?.disconnect();
    this.ws?.close(1000);
    this.player?.close();
    this.capture = this.player = null;
  }
}
