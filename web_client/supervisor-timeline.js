// The selected call's transcript as a list: caller partials (grey) become finals, agent replies
// grow piece by piece, interruptions are marked, and each caller line carries the emotion
// summary of its utterance as a coloured chip. The agent's tool calls and a transfer to a person
// sit among them as lines of their own.

import { clock, topCategory } from "./supervisor-model.js";

const ROLE_NAMES = { caller: "Caller", agent: "Agent", tool: "Tool", transfer: "Transfer", error: "Error" };
const TOOL_STATUS = { pending: "running…", ok: "ok", failed: "failed" };
const SOURCES = { fast_path: "fast path", llm: "LLM" };
const SUMMARY_CHARS = 160;

/** A new element with an optional class and text. */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A small chip with the top category of an emotion summary or estimate. */
export function emotionChip(scores, extra = {}) {
  const top = topCategory(scores);
  if (!top) return null;
  const chip = el("span", "chip", `${top.name} ${Math.round(top.score * 100)}%`);
  chip.dataset.emotion = top.name;
  const details = Object.entries(scores ?? {})
    .map(([k, v]) => `${k} ${Math.round(Number(v) * 100)}%`)
    .join(", ");
  const arousal = typeof extra.arousal === "number" ? `; arousal ${extra.arousal.toFixed(2)}` : "";
  const valence = typeof extra.valence === "number" ? `, valence ${extra.valence.toFixed(2)}` : "";
  chip.title = `${details}${arousal}${valence}`;
  chip.setAttribute("aria-label", `caller emotion ${top.name}, ${Math.round(top.score * 100)} percent${arousal}${valence}`);
  return chip;
}

function testid(line) {
  if (line.role === "caller") return line.final ? "caller-final" : "caller-partial";
  return { agent: "agent-text", tool: "tool-call", transfer: "transfer" }[line.role] ?? "timeline-error";
}

function shorten(text, max = SUMMARY_CHARS) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** "key: value, key: value" for a tool's arguments or result (arrays joined, nested objects as JSON). */
export function summarize(obj) {
  if (obj === null || obj === undefined) return "";
  if (typeof obj !== "object") return shorten(String(obj));
  const parts = Object.entries(obj).map(([k, v]) => {
    const value = Array.isArray(v) ? v.join(", ") : v !== null && typeof v === "object" ? JSON.stringify(v) : String(v);
    return `${k}: ${value === "" ? "—" : value}`;
  });
  return shorten(parts.join(", "));
}

function llmNote(llm) {
  const rate = typeof llm.tokensPerS === "number" ? `, ${Math.round(llm.tokensPerS)} tok/s` : "";
  const early = llm.preempted && typeof llm.aheadMs === "number" && llm.aheadMs > 0 ? `, ready ${Math.round(llm.aheadMs)} ms early` : "";
  const node = el("span", "latency llm", `LLM first token ${Math.round(llm.ttftMs)} ms${rate}${early}`);
  node.dataset.testid = "llm-latency";
  if (llm.preempted) node.title = "a preemptive generation, started before the caller's turn ended";
  return node;
}

function toolNode(line) {
  const li = el("li", `line tool ${line.status}`);
  li.dataset.testid = "tool-call";
  li.dataset.tool = line.name;
  li.dataset.status = line.status;
  const head = el("div", "line-head");
  const status = el("span", "tool-status", TOOL_STATUS[line.status] ?? line.status);
  status.dataset.testid = "tool-status";
  head.append(el("span", "who", ROLE_NAMES.tool), el("code", "tool-name", line.name), status);
  if (typeof line.ms === "number") head.append(el("span", "latency", `${line.ms < 10 ? line.ms.toFixed(1) : Math.round(line.ms)} ms`));
  if (line.source) head.append(el("span", "tool-source", SOURCES[line.source] ?? line.source));
  const args = el("p", "text tool-args", summarize(line.arguments) || "no arguments");
  args.dataset.testid = "tool-args";
  li.append(head, args);
  if (line.status === "failed") {
    const error = el("p", "tool-error", `Failed: ${line.error || "no reason given"}`);
    error.dataset.testid = "tool-error";
    li.append(error);
  } else if (line.status === "ok" && line.result && Object.keys(line.result).length) {
    const result = el("p", "tool-result", `→ ${summarize(line.result)}`);
    result.dataset.testid = "tool-result";
    li.append(result);
  }
  li.setAttribute("aria-label", `Tool ${line.name} ${TOOL_STATUS[line.status] ?? line.status}: ${args.textContent}`);
  return li;
}

function transferNode(line) {
  const li = el("li", "line transfer");
  li.dataset.testid = "transfer";
  const head = el("div", "line-head");
  head.append(el("span", "who", ROLE_NAMES.transfer));
  li.append(head, el("p", "text", line.reason ? `${line.text} (${line.reason.replaceAll("_", " ")})` : line.text));
  return li;
}

function lineNode(line) {
  if (line.role === "tool") return toolNode(line);
  if (line.role === "transfer") return transferNode(line);
  const li = el("li", `line ${line.role}`);
  li.dataset.testid = testid(line);
  if (line.role === "caller" && !line.final) {
    li.classList.add("partial");
    li.setAttribute("aria-hidden", "true"); // announced once, as the final
  }
  const head = el("div", "line-head");
  head.append(el("span", "who", ROLE_NAMES[line.role] ?? line.role));
  if (typeof line.t_ms === "number") {
    const time = el("time", "at", clock(line.t_ms));
    time.title = "caller-audio time";
    head.append(time);
  }
  if (line.emotion) {
    const chip = emotionChip(line.emotion.scores, line.emotion);
    if (chip) {
      chip.dataset.testid = "utterance-emotion";
      head.append(chip);
    }
  }
  if (typeof line.v2v === "number") head.append(el("span", "latency", `voice-to-voice ${Math.round(line.v2v)} ms`));
  if (line.llm) head.append(llmNote(line.llm));
  li.append(head, el("p", "text", line.text));
  if (line.interrupted) {
    li.classList.add("interrupted");
    const played = typeof line.playedMs === "number" ? ` after ${(line.playedMs / 1000).toFixed(1)} s` : "";
    const heard = line.heard ? `; caller heard “${line.heard}”` : "; caller heard nothing of it";
    const note = el("p", "note", `Interrupted${played}${heard}`);
    note.dataset.testid = "interruption";
    li.append(note);
  }
  return li;
}

/** Keeps one call's lines in an <ol>; nodes are rebuilt per line, never per event stream. */
export class TimelineView {
  constructor(list, empty) {
    this.list = list;
    this.empty = empty;
    this.nodes = new Map(); // line -> li
  }

  nearBottom() {
    const l = this.list;
    return l.scrollHeight - l.scrollTop - l.clientHeight < 48;
  }

  /** Show every line of ``rec`` (or none), scrolled to the end. */
  render(rec) {
    this.list.setAttribute("aria-busy", "true");
    this.nodes.clear();
    const items = (rec?.lines ?? []).map((line) => {
      const li = lineNode(line);
      this.nodes.set(line, li);
      return li;
    });
    this.list.replaceChildren(...items);
    this.empty.hidden = items.length > 0;
    this.empty.textContent = rec ? "Nothing said yet." : "Select a call to see what was said.";
    this.list.scrollTop = this.list.scrollHeight;
    this.list.setAttribute("aria-busy", "false");
  }

  /** Reflect one change from CallRecord.apply: a new line, a changed line, or a final replacing a partial. */
  update(change) {
    const stick = this.nearBottom();
    const fresh = lineNode(change.line);
    const old = this.nodes.get(change.replaces ?? change.line);
    if (old && !change.replaces) {
      // the same line grew (agent text), gained a note or chip, or got its tool result: update the node in place
      for (const name of old.getAttributeNames()) if (!fresh.hasAttribute(name)) old.removeAttribute(name);
      for (const name of fresh.getAttributeNames()) old.setAttribute(name, fresh.getAttribute(name));
      old.replaceChildren(...fresh.childNodes);
    } else {
      this.nodes.delete(change.replaces);
      this.nodes.set(change.line, fresh);
      if (old) old.replaceWith(fresh);
      else this.list.append(fresh);
    }
    this.empty.hidden = true;
    if (stick) this.list.scrollTop = this.list.scrollHeight;
  }
}
