// Parley caller: microphone -> /ws/call -> transcript, reply text, gapless reply audio, latency.
//
// One call at a time. Capture runs in an AudioWorklet (pcm-capture.js) that sends 20 ms PCM16
// frames at 16 kHz; reply audio is scheduled back to back on an AudioContext running at the
// server's output rate, and everything queued is dropped the moment the agent is interrupted.
// window.parleyStats is a read-only summary for tests and for debugging from the console.

const INPUT_RATE = 16000; // what the capture worklet sends and session.start declares
const FRAME_MS = 20;
const START_DELAY_S = 0.05; // jitter margin when playback (re)starts from an empty queue
const METRIC_KEYS = ["end_of_speech_ms", "asr_final_ms", "policy_first_text_ms", "tts_first_audio_ms", "voice_to_voice_ms"];

const $ = (id) => document.getElementById(id);
const ui = {
  button: $("call"),
  state: $("state"),
  level: $("mic-level"),
  session: $("session"),
  transcript: $("transcript"),
  metrics: $("metrics").tBodies[0],
  errors: $("errors"),
};

const freshStats = () => ({
  sessionId: null,
  outputRate: 0,
  framesSent: 0,
  audioBytesReceived: 0,
  audioBytesDropped: 0, // reply audio that arrived for a turn already interrupted
  scheduledChunks: 0,
  playedChunks: 0,
  underruns: 0,
  droppedChunks: 0, // scheduled reply audio thrown away by barge-in
  partials: 0,
  finals: [],
  agentTexts: [],
  interruptions: [],
  metrics: [],
  errors: [],
});
const stats = { state: "idle", ...freshStats() }; // of the current or last call
window.parleyStats = stats;

// ---- page ---------------------------------------------------------------------------------

function setState(state) {
  stats.state = state;
  ui.state.textContent = state;
  document.body.dataset.state = state;
  const live = state === "connecting" || state === "in call" || state === "ending";
  ui.button.textContent = live ? "Hang up" : "Call";
  ui.button.setAttribute("aria-pressed", String(live));
  ui.button.disabled = state === "ending";
}

function showError(code, message) {
  stats.errors.push({ code, message });
  const li = document.createElement("li");
  li.dataset.testid = "error";
  li.textContent = code ? `${code}: ${message}` : message;
  ui.errors.append(li);
}

function addLine(role, testid, text) {
  const li = document.createElement("li");
  li.className = role;
  li.dataset.testid = testid;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = role === "agent" ? "Agent" : "You";
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  li.append(who, body);
  ui.transcript.append(li);
  li.scrollIntoView({ block: "nearest" });
  return li;
}

class Conversation {
  constructor() {
    this.partial = null; // the caller line still being recognised
    this.agentLines = new Map(); // turn_id -> li
  }

  caller(text, final) {
    if (final) {
      // a new node, so screen readers announce the final once (partials are hidden from them)
      const li = addLine("caller", "caller-final", text);
      this.partial?.replaceWith(li);
      this.partial = null;
      return;
    }
    if (!this.partial) {
      this.partial = addLine("caller partial", "caller-partial", "");
      this.partial.setAttribute("aria-hidden", "true");
    }
    this.partial.querySelector(".text").textContent = text;
  }

  agent(turnId, piece) {
    let li = this.agentLines.get(turnId);
    if (!li) {
      li = addLine("agent", "agent-text", "");
      li.dataset.turn = turnId;
      this.agentLines.set(turnId, li);
    }
    li.querySelector(".text").textContent += piece;
  }

  agentDone(turnId, text) {
    const li = this.agentLines.get(turnId);
    if (li && text) li.querySelector(".text").textContent = text;
  }

  interrupted(turnId, heardText) {
    const li = this.agentLines.get(turnId);
    if (!li) return;
    li.classList.add("interrupted");
    const note = document.createElement("span");
    note.className = "note";
    note.textContent = heardText ? `interrupted; you heard "${heardText}"` : "interrupted";
    li.append(note);
  }
}

function addMetrics(event) {
  stats.metrics.push(event);
  const tr = document.createElement("tr");
  tr.dataset.testid = "turn-metrics";
  const th = document.createElement("th");
  th.scope = "row";
  th.textContent = event.turn_id;
  tr.append(th);
  for (const key of METRIC_KEYS) {
    const td = document.createElement("td");
    td.dataset.key = key;
    const v = event[key];
    td.textContent = typeof v === "number" ? Math.round(v) : "—";
    tr.append(td);
  }
  ui.metrics.append(tr);
}

// ---- reply audio ----------------------------------------------------------------------------

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

// ---- the call -------------------------------------------------------------------------------

class Call {
  constructor() {
    this.ws = null;
    this.mic = null;
    this.captureCtx = null;
    this.capture = null;
    this.player = null;
    this.conversation = new Conversation();
    this.turn = 0; // latest agent turn seen in agent.text
    this.droppedTurn = 0; // reply audio for turns up to this one is discarded
    this.closed = false; // hung up, or the server ended the call
  }

  async start() {
    Object.assign(stats, freshStats());
    setState("connecting");
    ui.transcript.replaceChildren();
    ui.metrics.replaceChildren();
    ui.errors.replaceChildren();
    // Made inside the click, so autoplay policies let it run; the player's context, made at
    // session.created, runs on the activation this click gave the page.
    const ctx = (this.captureCtx = new AudioContext({ latencyHint: "interactive" }));
    this.mic = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    if (this.closed) return this.release(); // hung up while the browser asked for the microphone
    await ctx.audioWorklet.addModule("pcm-capture.js");
    if (this.closed) return this.release();
    this.capture = new AudioWorkletNode(ctx, "pcm-capture", {
      channelCount: 1,
      channelCountMode: "explicit",
      processorOptions: { targetRate: INPUT_RATE, frameMs: FRAME_MS },
    });
    this.capture.port.onmessage = (e) => this.onFrame(e.data);
    ctx.createMediaStreamSource(this.mic).connect(this.capture);
    // The worklet outputs silence; connecting it keeps it pulled in every browser.
    this.capture.connect(ctx.destination);
    this.connect();
  }

  connect() {
    const url = new URL("ws/call", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      const language = new URLSearchParams(location.search).get("language") || "en";
      ws.send(JSON.stringify({ type: "session.start", audio: { format: "pcm16", sample_rate: INPUT_RATE }, language }));
    };
    ws.onmessage = (e) => (typeof e.data === "string" ? this.onEvent(JSON.parse(e.data)) : this.onAudio(e.data));
    ws.onclose = (e) => {
      if (!this.closed && e.code !== 1000) {
        const why = e.code === 1006 ? "could not reach the server, or the connection dropped" : e.reason || "the server closed the call";
        showError(`connection ${e.code}`, why);
      }
      this.release();
    };
    this.ws = ws;
  }

  onFrame({ pcm, peak }) {
    ui.level.value = peak > 0 ? Math.max(0, 1 + Math.log10(peak) / 3) : 0; // -60..0 dBFS -> 0..1
    if (this.player && this.ws && this.ws.readyState === WebSocket.OPEN) {
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
    const c = this.conversation;
    switch (event.type) {
      case "session.created":
        stats.sessionId = event.session_id;
        stats.outputRate = event.output_audio.sample_rate;
        ui.session.textContent = `Session ${event.session_id}`;
        this.player = new Player(stats.outputRate);
        setState("in call");
        break;
      case "transcript.partial":
        stats.partials++;
        c.caller(event.text, false);
        break;
      case "transcript.final":
        stats.finals.push(event.text);
        c.caller(event.text, true);
        break;
      case "agent.text":
        this.turn = Math.max(this.turn, event.turn_id);
        c.agent(event.turn_id, event.text);
        break;
      case "agent.text.done":
        stats.agentTexts.push(event.text);
        c.agentDone(event.turn_id, event.text);
        break;
      case "agent.interrupted":
        this.player?.stop();
        this.droppedTurn = Math.max(this.droppedTurn, event.turn_id);
        stats.interruptions.push(event);
        c.interrupted(event.turn_id, event.heard_text);
        break;
      case "turn.metrics":
        addMetrics(event);
        break;
      case "error":
        showError(event.code, event.message);
        break;
      case "session.ended":
        ui.session.textContent = `Call ended (${event.reason})`;
        this.closed = true;
        this.ws?.close(1000);
        break;
      default: // speech.started/stopped, agent.audio.done: nothing to show
    }
  }

  hangUp() {
    if (this.closed) return;
    this.closed = true;
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      setState("ending");
      this.ws.send(JSON.stringify({ type: "session.end" }));
      // the server answers session.ended and closes; do not wait forever for it
      setTimeout(() => this.ws.close(1000), 2000);
    } else {
      this.ws?.close(1000);
      this.release();
    }
  }

  /** Stop the microphone and audio and show the call as ended; safe to call more than once. */
  release() {
    this.closed = true;
    this.capture?.port.postMessage("stop");
    this.capture?.disconnect();
    this.mic?.getTracks().forEach((t) => t.stop());
    this.captureCtx?.close().catch(() => {});
    this.player?.close();
    this.capture = this.mic = this.captureCtx = this.player = null;
    ui.level.value = 0;
    if (call === this) {
      call = null;
      setState("ended");
    }
  }
}

let call = null;

ui.button.addEventListener("click", () => {
  if (call) {
    call.hangUp();
    return;
  }
  if (!window.isSecureContext || !navigator.mediaDevices) {
    showError("insecure", "the microphone needs https:// or http://localhost");
    return;
  }
  call = new Call();
  const current = call;
  current.start().catch((err) => {
    if (!current.closed) showError(err.name || "error", err.message || String(err));
    current.release();
  });
});

setState("idle");
