// Parley caller: microphone -> WebSocket (/ws/call) or WebRTC (/webrtc/offer) -> live transcript,
// reply text, the agent's tool calls, the agent's voice, and per-turn latency (the LLM's too).
//
// One call at a time. The transports (ws-transport.js, rtc-transport.js) move audio and events;
// this page shows the events, which are the same for both. Options may be preset in the address:
// ?transport=webrtc&language=zh&persona=NAME&voice=ID.

import { Microphone } from "./microphone.js";
import { RtcTransport } from "./rtc-transport.js";
import { resetStats, stats } from "./stats.js";
import { WebSocketTransport } from "./ws-transport.js";

const METRIC_KEYS = ["end_of_speech_ms", "asr_final_ms", "policy_first_text_ms", "tts_first_audio_ms", "voice_to_voice_ms"];
const TRANSPORT_NAMES = { websocket: "WebSocket", webrtc: "WebRTC" };

const $ = (id) => document.getElementById(id);
const ui = {
  button: $("call"),
  state: $("state"),
  level: $("mic-level"),
  session: $("session"),
  options: $("options"),
  language: $("language"),
  persona: $("persona"),
  voice: $("voice"),
  agentAudio: $("agent-audio"),
  transcript: $("transcript"),
  metrics: $("metrics").tBodies[0],
  metricsTable: $("metrics"),
  errors: $("errors"),
};
window.parleyStats = stats;

// ---- call options ---------------------------------------------------------------------------

const languageNames = new Intl.DisplayNames([navigator.language, "en"], { type: "language" });

function addOption(select, value, label, title) {
  const option = new Option(label, value);
  if (title) option.title = title;
  select.append(option);
  return option;
}

function ensureLanguage(code) {
  if (![...ui.language.options].some((o) => o.value === code)) addOption(ui.language, code, `${languageNames.of(code) ?? code} (${code})`);
}

async function fetchJson(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

/** Personas from the server; the built-in one stays selectable if the list cannot be read. */
async function loadPersonas() {
  let personas = [];
  try {
    personas = await fetchJson("api/personas");
  } catch {
    return; // keeps the "Default" option: the server's default persona
  }
  if (!Array.isArray(personas) || !personas.length) return;
  ui.persona.replaceChildren();
  for (const p of personas) {
    const option = addOption(ui.persona, p.name, p.name === p.agent_name ? p.name : `${p.agent_name} (${p.name})`, p.greeting);
    option.dataset.language = p.language || "";
    if (p.language) ensureLanguage(p.language);
  }
  ui.persona.value = personas.some((p) => p.name === "default") ? "default" : personas[0].name;
}

/** Voices from GET /api/voices (a list of {id, name}, or {voices: [...]}); else just the default. */
async function loadVoices() {
  let voices = [];
  try {
    const body = await fetchJson("api/voices");
    voices = (Array.isArray(body) ? body : body?.voices) ?? [];
  } catch {
    return;
  }
  voices = voices.filter((v) => v && typeof v.id === "string");
  if (!voices.length) return;
  ui.voice.replaceChildren();
  for (const v of voices) addOption(ui.voice, v.id, v.name || v.id);
}

function selectedTransport() {
  return document.querySelector("input[name=transport]:checked")?.value || "websocket";
}

function readOptions() {
  return {
    transport: selectedTransport(),
    language: ui.language.value,
    persona: ui.persona.value || null,
    voice: ui.voice.value || null,
  };
}

function select(el, value) {
  if (value !== null && [...el.options].some((o) => o.value === value)) el.value = value;
}

/** A persona speaks a language: choosing it chooses its language (which can then be changed). */
function adoptPersonaLanguage() {
  const language = ui.persona.selectedOptions[0]?.dataset.language;
  if (language) ui.language.value = language;
}

/** Keep the address in step with the options, so a reload or a shared link places the same call. */
function rememberOptions() {
  const params = new URLSearchParams(location.search);
  for (const [key, value] of Object.entries(readOptions())) {
    if (value) params.set(key, value);
    else params.delete(key);
  }
  history.replaceState(null, "", `${location.pathname}?${params}`);
}

async function setUpOptions() {
  const params = new URLSearchParams(location.search);
  const transport = document.querySelector(`input[name=transport][value="${CSS.escape(params.get("transport") || "")}"]`);
  if (transport) transport.checked = true;
  ensureLanguage(params.get("language") || ui.language.value);
  select(ui.language, params.get("language"));
  await Promise.all([loadPersonas(), loadVoices()]);
  select(ui.persona, params.get("persona"));
  if (!params.get("language")) adoptPersonaLanguage();
  select(ui.voice, params.get("voice"));
  ui.persona.addEventListener("change", adoptPersonaLanguage);
  ui.options.addEventListener("change", rememberOptions);
}

// ---- page -----------------------------------------------------------------------------------

function setState(state) {
  stats.state = state;
  ui.state.textContent = state;
  document.body.dataset.state = state;
  const live = state === "connecting" || state === "in call" || state === "ending";
  ui.button.textContent = live ? "Hang up" : "Call";
  ui.button.setAttribute("aria-pressed", String(live));
  ui.button.disabled = state === "ending";
  ui.options.disabled = live;
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
    this.tools = new Map(); // tool call id -> {li, name, args}
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

  toolCall(event) {
    const li = systemLine("tool-call", toolText(event.name, event.arguments, null));
    li.dataset.tool = event.name;
    li.dataset.status = "pending";
    this.tools.set(event.id, { li, name: event.name, args: event.arguments });
  }

  toolResult(event) {
    const known = this.tools.get(event.id) ?? { li: systemLine("tool-call", ""), name: event.name, args: null };
    known.li.dataset.tool = event.name ?? known.name;
    known.li.dataset.status = event.ok ? "ok" : "failed";
    known.li.classList.toggle("failed", !event.ok);
    known.li.querySelector(".text").textContent = toolText(event.name ?? known.name, known.args, event);
  }

  transfer() {
    systemLine("transfer", "Handed over to a person").classList.add("transfer");
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

// ---- the agent's tool calls, as short system lines ---------------------------------------------

const TOOL_WORDS = {
  lookup_order: {
    pending: (a) => `Looking up order ${a.order_number ?? ""}…`,
    done: (a, r) => `Looked up order ${r.order_number ?? a.order_number ?? ""} — ${r.found === false ? "not found" : (r.status || "found")}${r.eta ? `, due ${r.eta}` : ""}`,
  },
  schedule_callback: {
    pending: () => "Booking a callback…",
    done: (a, r) => `Booked a callback to ${r.phone ?? a.phone ?? "?"}, ${r.when ?? a.when ?? ""}`,
  },
  transfer_to_human: { pending: () => "Transferring you to a person…", done: () => "Transferring you to a person" },
  end_call: { pending: () => "Ending the call…", done: () => "Ending the call" },
};

function argsText(args) {
  return Object.entries(args ?? {})
    .map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`)
    .join(", ");
}

/** What a tool call (``result`` null: still running) says in the conversation. */
function toolText(name, args, result) {
  const words = TOOL_WORDS[name];
  if (!result) return words ? words.pending(args ?? {}) : `Running ${name}(${argsText(args)})…`;
  if (!result.ok) return `${words ? words.pending(args ?? {}).replace(/…$/, "") : name}: failed (${result.error || "no reason given"})`;
  return words ? words.done(args ?? {}, result.result ?? {}) : `${name}(${argsText(args)}) done`;
}

function systemLine(testid, text) {
  const li = document.createElement("li");
  li.className = "system";
  li.dataset.testid = testid;
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  li.append(body);
  ui.transcript.append(li);
  li.scrollIntoView({ block: "nearest" });
  return li;
}

// ---- latency --------------------------------------------------------------------------------

/** The LLM's figures of a turn ("—" when the reply did not come from it). */
function llmCell(event) {
  const td = document.createElement("td");
  td.dataset.key = "llm";
  if (typeof event.llm_ttft_ms !== "number") {
    td.textContent = "—";
    return td;
  }
  ui.metricsTable.classList.add("has-llm");
  const rate = typeof event.llm_tokens_per_s === "number" ? ` · ${Math.round(event.llm_tokens_per_s)} tok/s` : "";
  const early = event.llm_preempted && event.llm_ahead_ms > 0 ? ` · ${Math.round(event.llm_ahead_ms)} early` : "";
  td.textContent = `${Math.round(event.llm_ttft_ms)}${rate}${early}`;
  td.title = `first token ${Math.round(event.llm_ttft_ms)} ms${rate ? `, ${rate.slice(3)}` : ""}${event.llm_preempted ? ", preemptive generation" : ""}`;
  return td;
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
  tr.append(llmCell(event));
  ui.metrics.append(tr);
}

// ---- the call -------------------------------------------------------------------------------

class Call {
  constructor(options) {
    this.options = options;
    this.mic = null;
    this.transport = null;
    this.conversation = new Conversation();
    this.closed = false; // hung up, or the server ended the call
  }

  async start() {
    resetCallStats(this.options);
    setState("connecting");
    ui.session.textContent = "";
    ui.transcript.replaceChildren();
    ui.metrics.replaceChildren();
    ui.metricsTable.classList.remove("has-llm");
    ui.errors.replaceChildren();
    // Made inside the click, so autoplay policies let its audio context run.
    this.mic = new Microphone((level) => (ui.level.value = level));
    await this.mic.open();
    if (this.closed) return this.release(); // hung up while the browser asked for the microphone
    const handlers = { onEvent: (e) => this.onEvent(e), onClose: (error) => this.onClose(error) };
    this.transport =
      this.options.transport === "webrtc"
        ? new RtcTransport(this.mic, this.options, handlers, ui.agentAudio)
        : new WebSocketTransport(this.mic, this.options, handlers);
    await this.transport.connect();
    if (this.closed) this.release();
  }

  onEvent(event) {
    const c = this.conversation;
    switch (event.type) {
      case "session.created":
        stats.sessionId = event.session_id;
        ui.session.textContent = `${TRANSPORT_NAMES[this.options.transport]} · session ${event.session_id}`;
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
        c.agent(event.turn_id, event.text);
        break;
      case "agent.text.done":
        stats.agentTexts.push(event.text);
        c.agentDone(event.turn_id, event.text);
        break;
      case "agent.interrupted":
        stats.interruptions.push(event);
        c.interrupted(event.turn_id, event.heard_text);
        break;
      case "turn.metrics":
        addMetrics(event);
        break;
      case "agent.tool_call":
        stats.toolCalls.push(event);
        c.toolCall(event);
        break;
      case "agent.tool_result":
        stats.toolResults.push(event);
        c.toolResult(event);
        break;
      case "agent.transfer":
        c.transfer();
        break;
      case "error":
        showError(event.code, event.message);
        break;
      case "session.ended":
        ui.session.textContent = `Call ended (${event.reason})`;
        this.closed = true;
        break;
      default: // speech.started/stopped, agent.audio.done, agent.slots: nothing to show
    }
  }

  onClose(error) {
    if (error && !this.closed) showError(error.code, error.message);
    this.release();
  }

  hangUp() {
    if (this.closed) return;
    this.closed = true;
    if (this.transport?.hangUp()) setState("ending");
    else this.release();
  }

  /** Stop the microphone, the transport and the audio, and show the call as ended; idempotent. */
  release() {
    this.closed = true;
    this.transport?.close();
    this.mic?.close();
    this.transport = this.mic = null;
    if (call === this) {
      call = null;
      setState("ended");
    }
  }
}

let call = null;

/** stats.js's counters, plus this page's tool calls and results. */
function resetCallStats(options) {
  resetStats(options);
  Object.assign(stats, { toolCalls: [], toolResults: [] });
}

ui.button.addEventListener("click", () => {
  if (call) {
    call.hangUp();
    return;
  }
  if (!window.isSecureContext || !navigator.mediaDevices) {
    showError("insecure", "the microphone needs https:// or http://localhost");
    return;
  }
  call = new Call(readOptions());
  const current = call;
  current.start().catch((err) => {
    if (!current.closed) showError(err.name || "error", err.message || String(err));
    current.release();
  });
});

resetCallStats(readOptions());
setState("idle");
setUpOptions();
