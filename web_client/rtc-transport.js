// WebRTC transport (POST /webrtc/offer): the microphone track goes up as Opus, the agent's voice
// comes back as a remote track played by an <audio> element, and the same JSON events as /ws/call
// arrive on the "events" data channel. No trickle ICE: the offer is posted with its candidates.
// On barge-in the server stops sending audio itself, so there is nothing to flush here.

import { stats } from "./stats.js";
import { Transport } from "./transport.js";

const ICE_GATHER_TIMEOUT_MS = 3000; // post what was gathered by then (host candidates take ms)
const STATS_INTERVAL_MS = 250;

class CallFailed extends Error {
  constructor(code, message) {
    super(message);
    this.name = code;
  }
}

function iceGathered(pc, timeoutMs) {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    const check = () => pc.iceGatheringState === "complete" && done();
    const timer = setTimeout(done, timeoutMs);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

export class RtcTransport extends Transport {
  /** `audio` is the <audio> element that plays the agent. */
  constructor(mic, options, handlers, audio) {
    super(mic, options, handlers);
    this.audio = audio;
    this.pc = null;
    this.channel = null;
    this.timer = 0;
  }

  async connect() {
    const pc = (this.pc = new RTCPeerConnection());
    // The track and the data channel must exist before the offer: the answer has no renegotiation.
    pc.addTrack(this.mic.track, this.mic.stream);
    const channel = (this.channel = pc.createDataChannel("events"));
    channel.onmessage = (e) => this.onEvent(JSON.parse(e.data));
    channel.onclose = () => this.finish({ code: "connection", message: "the call's data channel closed" });
    pc.ontrack = (e) => {
      this.audio.srcObject = e.streams[0] || new MediaStream([e.track]);
      this.audio.play().catch(() => {}); // autoplay is allowed: the page was clicked
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "failed") this.finish({ code: "ice_failed", message: "no network path to the server (ICE failed)" });
    };
    await pc.setLocalDescription(await pc.createOffer());
    await iceGathered(pc, ICE_GATHER_TIMEOUT_MS);
    if (this.done) return;
    const { language, persona, voice } = this.options;
    const response = await fetch("webrtc/offer", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ sdp: pc.localDescription.sdp, type: "offer", language, persona, voice }),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new CallFailed(body.error || `http ${response.status}`, body.message || response.statusText);
    if (this.done) return;
    await pc.setRemoteDescription({ type: body.type, sdp: body.sdp });
    this.timer = setInterval(() => this.poll(), STATS_INTERVAL_MS);
  }

  async poll() {
    const report = await this.pc?.getStats().catch(() => null);
    report?.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "audio") {
        stats.rtcInboundBytes = s.bytesReceived ?? 0;
        stats.rtcSamplesReceived = s.totalSamplesReceived ?? 0;
        stats.rtcAudioEnergy = s.totalAudioEnergy ?? 0;
        stats.rtcAudioLevelMax = Math.max(stats.rtcAudioLevelMax, s.audioLevel ?? 0);
      } else if (s.type === "outbound-rtp" && s.kind === "audio") {
        stats.framesSent = s.packetsSent ?? 0; // one Opus packet per 20 ms
      } else if (s.type === "candidate-pair" && s.nominated && s.currentRoundTripTime !== undefined) {
        stats.rtcRoundTripMs = Math.round(s.currentRoundTripTime * 1000);
      }
    });
  }

  onEvent(event) {
    if (event.type === "session.created") stats.outputRate = event.output_audio.sample_rate;
    this.dispatch(event);
  }

  send(message) {
    if (this.channel?.readyState !== "open") return false;
    this.channel.send(JSON.stringify(message));
    return true;
  }

  /** Close the peer connection and stop playback. */
  close() {
    if (this.done) return;
    super.close();
    clearInterval(this.timer);
    this.poll(); // the last counters, read before the connection closes
    if (this.channel) this.channel.onclose = null;
    this.pc?.close();
    this.audio.srcObject = null;
  }
}
