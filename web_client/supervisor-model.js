// One call as the supervisor sees it: transcript lines (tool calls and a transfer among them),
// emotion points, alerts and the agent's slots, built either from /ws/monitor events (live) or
// from GET /api/calls/{id} (finished). No DOM here.

export const CATEGORIES = ["neutral", "happy", "angry", "sad", "fearful", "surprised"];
const MAX_POINTS = 7200; // two hours of caller speech at one estimate a second

/** Category with the highest score, or null. */
export function topCategory(scores) {
  let best = null;
  for (const name of CATEGORIES) {
    const v = Number(scores?.[name]);
    if (Number.isFinite(v) && (best === null || v > best.score)) best = { name, score: v };
  }
  return best;
}

/** m:ss (or h:mm:ss) for a number of milliseconds. */
export function clock(ms) {
  const s = Math.max(0, Math.floor((Number(ms) || 0) / 1000));
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60));
  const ss = String(s % 60).padStart(2, "0");
  return h ? `${h}:${mm.padStart(2, "0")}:${ss}` : `${mm}:${ss}`;
}

/** Local wall-clock time (hh:mm:ss) of epoch milliseconds. */
export function wallTime(ms) {
  return ms ? new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }) : "—";
}

/** Milliseconds since the epoch from epoch seconds or an ISO date (naive dates are UTC). */
export function toEpochMs(value) {
  if (typeof value === "number") return value < 1e12 ? value * 1000 : value;
  if (typeof value !== "string" || !value) return null;
  const zoned = /([zZ]|[+-]\d\d:?\d\d)$/.test(value) ? value : `${value}Z`;
  const ms = Date.parse(zoned);
  return Number.isNaN(ms) ? null : ms;
}

/** turn.metrics' LLM figures (or a stored turn's metrics), or null when the LLM did not answer. */
export function llmFigures(m) {
  if (typeof m?.llm_ttft_ms !== "number") return null;
  return {
    ttftMs: m.llm_ttft_ms,
    tokensPerS: typeof m.llm_tokens_per_s === "number" ? m.llm_tokens_per_s : null,
    preempted: Boolean(m.llm_preempted),
    aheadMs: typeof m.llm_ahead_ms === "number" ? m.llm_ahead_ms : null,
  };
}

function toolOutcome(msg) {
  const ok = msg.ok === true ? true : msg.ok === false ? false : null;
  return {
    ok,
    status: ok === null ? "pending" : ok ? "ok" : "failed",
    result: msg.result ?? null,
    error: msg.error ?? null,
    ms: typeof msg.ms === "number" ? msg.ms : null,
    effect: msg.effect ?? "none",
  };
}

function toolLine(msg) {
  return {
    role: "tool",
    id: msg.id,
    name: String(msg.name ?? "tool"),
    arguments: msg.arguments ?? null,
    source: msg.source ?? null,
    ...toolOutcome(msg),
  };
}

function alertKey(a) {
  return `${a.kind}:${a.started_ms ?? ""}:${a.t_ms ?? ""}`;
}

export class CallRecord {
  /** ``info``: call_id/id, started_at (epoch s or ISO), transport, language, persona. */
  constructor(info, live) {
    this.id = info.call_id ?? info.id;
    this.live = live;
    this.source = live ? "live" : "archive";
    this.transport = info.transport ?? "?";
    this.language = info.language ?? "?";
    this.persona = info.persona ?? "";
    this.startedAt = toEpochMs(info.started_at ?? info.t) ?? Date.now();
    this.endedAt = toEpochMs(info.ended_at);
    this.endReason = info.end_reason ?? null;
    this.lines = []; // {role: caller|agent|tool|transfer|error, text, final, t_ms, turnId, interrupted, heard, emotion, v2v, llm}
    this.partial = null; // the caller line still being recognised
    this.points = []; // {t, arousal, valence, scores, calibrating}
    this.alerts = []; // {kind, started_ms, t_ms, level, at, key, acked}
    this.pendingUtterances = []; // summaries that arrived before their final transcript
    this.speaking = false;
    this.slots = {}; // what the agent has learned: order_number, phone, ...
    this.changedSlots = new Set(); // the keys the latest agent.slots changed
    this.callbacks = []; // booked callbacks (archive only)
    this.tools = new Map(); // tool call id -> its line
    this.transferred = false;
    this.counts = { events: 0, emotionPoints: 0, alerts: 0, finals: 0, toolCalls: 0 };
  }

  get top() {
    const last = this.points[this.points.length - 1];
    return last ? { ...topCategory(last.scores), calibrating: last.calibrating } : null;
  }

  durationMs(now = Date.now()) {
    return (this.endedAt ?? now) - this.startedAt;
  }

  /** Apply one monitor event; returns what changed: {line, added} | {points} | {alert} | {meta} | {slots} | null. */
  apply(msg) {
    this.counts.events++;
    switch (msg.type) {
      case "speech.started":
      case "speech.stopped":
        this.speaking = msg.type === "speech.started";
        return { meta: true };
      case "transcript.partial":
        return this.callerText(msg.text, false, msg.t_ms);
      case "transcript.final":
        return this.callerText(msg.text, true, msg.t_ms);
      case "agent.text":
        return this.agentText(msg.turn_id, msg.text, false);
      case "agent.text.done":
        return this.agentText(msg.turn_id, msg.text, true);
      case "agent.interrupted":
        return this.interrupted(msg.turn_id, msg.heard_text, msg.played_ms);
      case "turn.metrics":
        return this.metrics(msg);
      case "emotion":
        return this.emotion(msg);
      case "emotion.utterance":
        return this.utterance(msg);
      case "emotion.alert":
      case "alert":
        return this.alert(msg);
      case "agent.slots":
        return this.setSlots(msg.slots, msg.changed);
      case "agent.tool_call":
        return this.toolCall(msg);
      case "agent.tool_result":
        return this.toolResult(msg);
      case "agent.transfer":
        return this.transfer(msg);
      case "error":
        return this.addLine({ role: "error", text: msg.code ? `${msg.code}: ${msg.message ?? ""}` : String(msg.message ?? "error") });
      default:
        return null;
    }
  }

  addLine(line) {
    this.lines.push(line);
    return { line, added: true };
  }

  callerText(text, final, tMs) {
    const line = this.partial;
    if (!final) {
      if (line) {
        line.text = text ?? "";
        return { line, added: false };
      }
      this.partial = { role: "caller", text: text ?? "", final: false, t_ms: tMs ?? null, emotion: null };
      return this.addLine(this.partial);
    }
    this.counts.finals++;
    this.partial = null;
    const done = { role: "caller", text: text ?? "", final: true, t_ms: tMs ?? null, emotion: this.pendingUtterances.shift() ?? null };
    if (!line) return this.addLine(done);
    // the final takes the partial's place as a new line (a new node, so it is announced once)
    this.lines[this.lines.indexOf(line)] = done;
    return { line: done, added: false, replaces: line };
  }

  agentLine(turnId) {
    for (let i = this.lines.length - 1; i >= 0; i--) {
      const l = this.lines[i];
      if (l.role === "agent" && (turnId === undefined || l.turnId === turnId)) return l;
    }
    return null;
  }

  agentText(turnId, text, done) {
    const line = this.agentLine(turnId);
    if (!line) return this.addLine({ role: "agent", turnId, text: text ?? "", done, interrupted: false, heard: null });
    line.text = done ? text || line.text : line.text + (text ?? "");
    line.done = line.done || done;
    return { line, added: false };
  }

  interrupted(turnId, heard, playedMs) {
    const line = this.agentLine(turnId);
    // a late joiner's snapshot holds the interruption but not the text before it
    if (!line) return this.addLine({ role: "agent", turnId, text: heard || "…", done: true, interrupted: true, heard: heard ?? "", playedMs: playedMs ?? null });
    line.interrupted = true;
    line.heard = heard ?? "";
    line.playedMs = playedMs ?? null;
    return { line, added: false };
  }

  metrics(msg) {
    const line = this.agentLine(msg.turn_id);
    const llm = llmFigures(msg);
    if (!line || (typeof msg.voice_to_voice_ms !== "number" && !llm)) return null;
    if (typeof msg.voice_to_voice_ms === "number") line.v2v = msg.voice_to_voice_ms;
    if (llm) line.llm = llm;
    return { line, added: false };
  }

  /** The call's slots as a whole (agent.slots carries all of them); ``changed`` marks the new ones. */
  setSlots(slots, changed) {
    if (!slots || typeof slots !== "object") return null;
    this.slots = { ...slots };
    this.changedSlots = new Set(Object.keys(changed && typeof changed === "object" ? changed : {}));
    return { slots: true };
  }

  /** A tool call gets its own line, pending until its result arrives. */
  toolCall(msg) {
    const known = this.tools.get(msg.id);
    if (known) return { line: Object.assign(known, { arguments: msg.arguments ?? known.arguments }), added: false };
    const line = toolLine(msg);
    if (msg.id !== undefined) this.tools.set(msg.id, line);
    this.counts.toolCalls++;
    return this.addLine(line);
  }

  toolResult(msg) {
    const line = this.tools.get(msg.id);
    if (!line) return this.toolCall({ ...msg, arguments: msg.arguments ?? null }); // its agent.tool_call was lost
    Object.assign(line, toolOutcome(msg));
    return { line, added: false };
  }

  transfer(msg) {
    if (msg.slots) this.setSlots(msg.slots, null);
    this.transferred = true;
    const change = this.addLine({ role: "transfer", text: "Handed over to a person", reason: msg.reason ?? null });
    return { ...change, slots: Boolean(msg.slots), meta: true };
  }

  /** Keep the agent's slots, tool calls and transfer of ``old`` (a snapshot carries none of them). */
  adoptAgentState(old) {
    if (!Object.keys(this.slots).length) {
      this.slots = { ...old.slots };
      this.changedSlots = new Set();
    }
    this.transferred ||= old.transferred;
    this.counts.toolCalls = Math.max(this.counts.toolCalls, old.counts.toolCalls);
    old.lines.forEach((line, i) => {
      if ((line.role !== "tool" && line.role !== "transfer") || this.lines.includes(line)) return;
      if (line.role === "tool" && this.tools.has(line.id)) return;
      if (line.role === "tool") this.tools.set(line.id, line);
      // before the reply it led to, when that reply is still shown; else at the end
      const next = old.lines.slice(i + 1).find((l) => l.role === "agent" && l.turnId !== undefined);
      const at = next ? this.lines.findIndex((l) => l.role === "agent" && l.turnId === next.turnId) : -1;
      if (at >= 0) this.lines.splice(at, 0, line);
      else this.lines.push(line);
    });
  }

  emotion(msg) {
    if (typeof msg.arousal !== "number" || typeof msg.valence !== "number") return null;
    const point = {
      t: (Number(msg.t_ms) || 0) / 1000,
      arousal: msg.arousal,
      valence: msg.valence,
      scores: msg.scores ?? {},
      calibrating: Boolean(msg.calibrating),
    };
    this.points.push(point);
    if (this.points.length > MAX_POINTS) this.points.splice(0, this.points.length - MAX_POINTS);
    this.counts.emotionPoints++;
    return { points: true };
  }

  /** A summary belongs to the latest caller final without one; if none is waiting, to the next. */
  utterance(msg) {
    const line = this.lines.findLast((l) => l.role === "caller" && l.final && !l.emotion);
    if (!line) {
      this.pendingUtterances.push(msg);
      return null;
    }
    line.emotion = msg;
    return { line, added: false };
  }

  alert(msg, at = Date.now()) {
    const key = alertKey(msg);
    if (this.alerts.some((a) => a.key === key)) return null;
    const alert = { kind: msg.kind ?? "alert", started_ms: msg.started_ms, t_ms: msg.t_ms, level: msg.level, at, key, acked: false };
    this.alerts.push(alert);
    this.counts.alerts++;
    return { alert };
  }

  get unacked() {
    return this.alerts.filter((a) => !a.acked);
  }

  /** Tool lines in order, for tests and summaries. */
  get toolLines() {
    return this.lines.filter((l) => l.role === "tool");
  }

  ended(reason) {
    this.live = false;
    this.endedAt = Date.now();
    this.endReason = reason ?? null;
    this.speaking = false;
    this.partial = null;
  }
}

/** A live call from a snapshot entry: its recent transcript, emotion and alerts replayed. */
export function fromSnapshot(entry) {
  const rec = new CallRecord(entry, true);
  for (const msg of entry.transcript ?? []) rec.apply(msg);
  for (const msg of entry.emotion ?? []) rec.apply({ type: "emotion", ...msg });
  for (const msg of entry.alerts ?? []) rec.alert(msg);
  if (entry.slots) rec.setSlots(entry.slots, null);
  return rec;
}

/** Attach stored utterance summaries to the caller line nearest in audio time. */
function attachUtterances(rec, summaries) {
  const callers = rec.lines.filter((l) => l.role === "caller");
  summaries.forEach((s, i) => {
    const free = callers.filter((l) => !l.emotion);
    if (!free.length) return;
    const timed = typeof s.t_ms === "number" && free.every((l) => typeof l.t_ms === "number");
    const pick = timed ? free.reduce((a, b) => (Math.abs(b.t_ms - s.t_ms) < Math.abs(a.t_ms - s.t_ms) ? b : a)) : (callers[i] ?? free[0]);
    if (!pick.emotion) pick.emotion = s;
  });
}

/**
 * Place stored tool calls among the turns: each after the last caller line said before it was made
 * (caller-audio time against wall time since the start), else at the end.
 */
function placeToolCalls(rec, calls) {
  for (const c of calls) {
    const line = toolLine({ ...c, id: `stored-${c.seq ?? rec.counts.toolCalls}` });
    rec.tools.set(line.id, line);
    rec.counts.toolCalls++;
    const at = toEpochMs(c.created_at);
    const offset = at === null ? null : at - rec.startedAt;
    let index = -1;
    if (offset !== null) {
      rec.lines.forEach((l, i) => {
        if (l.role === "caller" && typeof l.t_ms === "number" && l.t_ms <= offset) index = i;
      });
    }
    if (index < 0) {
      rec.lines.push(line);
      continue;
    }
    while (rec.lines[index + 1]?.role === "tool") index++; // after those made before it
    rec.lines.splice(index + 1, 0, line);
  }
}

/** A finished (or stored) call from GET /api/calls/{id}; emotions, alerts, slots and tool calls may be absent. */
export function fromArchive(call) {
  const rec = new CallRecord(call, false);
  rec.endedAt = toEpochMs(call.ended_at);
  for (const t of Array.isArray(call.turns) ? call.turns : []) {
    if (t.role === "agent") {
      const metrics = t.metrics ?? {};
      rec.addLine({
        role: "agent",
        text: t.text ?? "",
        done: true,
        interrupted: Boolean(t.interrupted),
        heard: t.interrupted ? (t.heard ?? "") : null,
        playedMs: metrics.played_ms ?? null,
        v2v: typeof metrics.voice_to_voice_ms === "number" ? metrics.voice_to_voice_ms : undefined,
        llm: llmFigures(metrics),
      });
    } else {
      rec.counts.finals++;
      rec.addLine({ role: "caller", text: t.text ?? "", final: true, t_ms: t.t_ms ?? null, emotion: null });
    }
  }
  const emotions = Array.isArray(call.emotions) ? call.emotions : [];
  for (const e of emotions) if ((e.type ?? "emotion") === "emotion") rec.emotion(e);
  const utterances = [...(Array.isArray(call.emotion_utterances) ? call.emotion_utterances : []), ...emotions.filter((e) => e.type === "emotion.utterance")];
  attachUtterances(rec, utterances);
  for (const a of Array.isArray(call.alerts) ? call.alerts : []) rec.alert(a, rec.startedAt + (Number(a.t_ms) || 0));
  rec.setSlots(call.slots, null);
  placeToolCalls(rec, Array.isArray(call.tool_calls) ? call.tool_calls : []);
  rec.transferred = call.end_reason === "transferred";
  if (rec.transferred) rec.addLine({ role: "transfer", text: "Handed over to a person", reason: "transfer_to_human" });
  rec.callbacks = Array.isArray(call.callbacks) ? call.callbacks : [];
  return rec;
}
