// One call as the supervisor sees it: transcript lines, emotion points and alerts, built either
// from /ws/monitor events (live) or from GET /api/calls/{id} (finished). No DOM here.

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
    this.lines = []; // {role: caller|agent|error, text, final, t_ms, turnId, interrupted, heard, emotion, v2v}
    this.partial = null; // the caller line still being recognised
    this.points = []; // {t, arousal, valence, scores, calibrating}
    this.alerts = []; // {kind, started_ms, t_ms, level, at, key, acked}
    this.pendingUtterances = []; // summaries that arrived before their final transcript
    this.speaking = false;
    this.counts = { events: 0, emotionPoints: 0, alerts: 0, finals: 0 };
  }

  get top() {
    const last = this.points[this.points.length - 1];
    return last ? { ...topCategory(last.scores), calibrating: last.calibrating } : null;
  }

  durationMs(now = Date.now()) {
    return (this.endedAt ?? now) - this.startedAt;
  }

  /** Apply one monitor event; returns what changed: {line, added} | {points} | {alert} | {meta} | null. */
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
    if (!line || typeof msg.voice_to_voice_ms !== "number") return null;
    line.v2v = msg.voice_to_voice_ms;
    return { line, added: false };
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

/** A finished (or stored) call from GET /api/calls/{id}; emotions and alerts may be absent. */
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
  return rec;
}
