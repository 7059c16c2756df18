// Parley supervisor: every live call from /ws/monitor (transcript, caller emotion, alerts, the
// agent's slots and tool calls) and the finished calls from /api/calls. Select a call to see its
// details, timeline and emotion plots.
//
// URLs are absolute: the page is served as /supervisor.html and as /supervisor. A call can be
// opened directly with /supervisor#call=<call id>.

import { getJson, ReconnectingSocket } from "./supervisor-link.js";
import { CallRecord, CATEGORIES, clock, fromArchive, fromSnapshot, wallTime } from "./supervisor-model.js";
import { drawArousalValence, drawCategories } from "./supervisor-plot.js";
import { RecentCalls } from "./supervisor-recent.js";
import { renderCallbacks, renderSlots } from "./supervisor-slots.js";
import { el, emotionChip, TimelineView } from "./supervisor-timeline.js";

const RESYNC_MIN_MS = 10000; // after lost events, fetch a fresh snapshot at most this often
const ACK_STORE = "parley.supervisor.acknowledged";
const PAGE_TITLE = document.title;
const LINK_TEXT = { connecting: "connecting…", connected: "connected" };
const ALERT_NAMES = { angry: "Angry caller", distressed: "Distressed caller" };

const $ = (id) => document.getElementById(id);
const ui = {
  connection: $("connection"),
  announcer: $("announcer"),
  liveList: $("live-calls"),
  liveEmpty: $("live-empty"),
  liveCount: $("live-count"),
  recentList: $("recent-calls"),
  recentEmpty: $("recent-empty"),
  recentMore: $("recent-more"),
  recentRefresh: $("recent-refresh"),
  detail: $("detail"),
  title: $("detail-title"),
  meta: $("detail-meta"),
  alerts: $("detail-alerts"),
  plotAV: $("plot-av"),
  plotCategories: $("plot-categories"),
  plotSummary: $("plot-summary"),
  categoryLegend: $("category-legend"),
  slots: $("slots"),
  slotsEmpty: $("slots-empty"),
  callbacks: $("callbacks"),
};

/** Read by the tests and handy in the console; ``calls[id]`` are live counters. */
const stats = { connected: false, calls: {}, selected: null, plotPoints: 0, dropped: 0, reconnects: 0, live: [] };
window.supervisorStats = stats;

const live = new Map(); // call id -> CallRecord: live calls, and ended ones with an unacknowledged alert
const liveNodes = new Map(); // call id -> <li>
const timeline = new TimelineView($("timeline"), $("timeline-empty"));
let current = null; // the CallRecord on show

// ---- helpers --------------------------------------------------------------------------------

function announce(text) {
  ui.announcer.textContent = "";
  setTimeout(() => (ui.announcer.textContent = text), 50); // a change, even for a repeated text
}

// ---- acknowledged alerts survive a reload -----------------------------------------------------

const acknowledged = (() => {
  try {
    return new Set(JSON.parse(localStorage.getItem(ACK_STORE) || "[]"));
  } catch {
    return new Set();
  }
})();

function ackId(rec, alert) {
  return `${rec.id}|${alert.key}`;
}

function restoreAcks(rec) {
  for (const a of rec.alerts) a.acked = acknowledged.has(ackId(rec, a));
}

function acknowledge(rec, alert) {
  alert.acked = true;
  acknowledged.add(ackId(rec, alert));
  try {
    localStorage.setItem(ACK_STORE, JSON.stringify([...acknowledged].slice(-500)));
  } catch {
    // private mode or full storage: acknowledged for this page only
  }
  if (!rec.live && !rec.unacked.length) dropLive(rec.id);
  else renderLiveItem(rec);
  if (rec === current) renderAlertHistory();
}

// ---- live calls -----------------------------------------------------------------------------

function alertLabel(alert) {
  return `${ALERT_NAMES[alert.kind] ?? alert.kind} at ${clock(alert.t_ms)}`;
}

function alertBadge(rec, alert) {
  const badge = el("button", "alert-badge");
  badge.type = "button";
  badge.dataset.testid = "alert-badge";
  badge.dataset.kind = alert.kind;
  const text = el("span", "alert-text", alertLabel(alert));
  text.append(el("small", "alert-when", `raised ${wallTime(alert.at)}`));
  badge.append(el("span", "alert-icon", "!"), text, el("span", "alert-ack", "Acknowledge"));
  badge.title = `Raised ${wallTime(alert.at)}${typeof alert.level === "number" ? `, level ${alert.level.toFixed(2)}` : ""}. Click to acknowledge.`;
  badge.setAttribute("aria-label", `${alertLabel(alert)} on call ${rec.id}, raised ${wallTime(alert.at)}. Acknowledge.`);
  badge.addEventListener("click", () => acknowledge(rec, alert));
  return badge;
}

function topEmotionNode(rec) {
  const top = rec.top;
  if (!top?.name) return el("span", "chip empty-chip", rec.live ? "no estimate yet" : "no emotion data");
  const last = rec.points[rec.points.length - 1];
  const chip = emotionChip(last.scores, last);
  if (top.calibrating) chip.classList.add("calibrating");
  return chip;
}

function renderLiveItem(rec) {
  let li = liveNodes.get(rec.id);
  if (!li) {
    li = el("li", "call");
    li.dataset.testid = "live-call";
    li.dataset.callId = rec.id;
    const button = el("button", "call-select");
    button.type = "button";
    button.addEventListener("click", () => select(rec.id));
    li.append(button, el("div", "badges"));
    liveNodes.set(rec.id, li);
    ui.liveList.append(li);
  }
  const [button, badges] = li.children;
  li.classList.toggle("ended", !rec.live);
  li.classList.toggle("speaking", rec.speaking);
  li.classList.toggle("alerting", rec.unacked.length > 0);
  const top = topEmotionNode(rec);
  top.dataset.testid = "top-emotion";
  const duration = el("span", "duration", clock(rec.durationMs()));
  duration.dataset.testid = "duration";
  const state = el("span", "call-state", rec.live ? (rec.speaking ? "speaking" : "live") : `ended (${rec.endReason ?? "?"})`);
  button.replaceChildren(
    el("span", "call-id", rec.id),
    el("span", "call-sub", [rec.transport, rec.language, rec.persona].filter(Boolean).join(" · ")),
    duration,
    state,
    top,
  );
  button.setAttribute("aria-current", String(rec.id === stats.selected));
  const shown = [...badges.children].map((b) => b.dataset.key).join();
  const unacked = rec.unacked;
  if (shown !== unacked.map((a) => a.key).join()) {
    badges.replaceChildren(
      ...unacked.map((a) => {
        const badge = alertBadge(rec, a);
        badge.dataset.key = a.key;
        return badge;
      }),
    );
  }
  updateLiveCount();
}

function dropLive(id) {
  live.delete(id);
  liveNodes.get(id)?.remove();
  liveNodes.delete(id);
  updateLiveCount();
}

function updateLiveCount() {
  const n = [...live.values()].filter((r) => r.live).length;
  ui.liveCount.textContent = String(n);
  ui.liveEmpty.hidden = live.size > 0;
  stats.live = [...live.keys()];
  const alerts = [...live.values()].reduce((n, r) => n + r.unacked.length, 0);
  document.title = alerts ? `(${alerts} alert${alerts > 1 ? "s" : ""}) ${PAGE_TITLE}` : PAGE_TITLE; // seen from other tabs
}

function track(rec) {
  restoreAcks(rec);
  liveNodes.get(rec.id)?.lastChild.replaceChildren(); // badges of a replaced record act on the new one
  live.set(rec.id, rec);
  stats.calls[rec.id] = rec.counts;
  renderLiveItem(rec);
  if (rec.id === stats.selected) show(rec);
}

function autoSelect() {
  if (stats.selected) return;
  const first = [...live.values()].find((r) => r.live);
  if (first) select(first.id);
}

// ---- monitor events -------------------------------------------------------------------------

function onSnapshot(calls) {
  const now = new Set(calls.map((c) => c.call_id));
  for (const rec of [...live.values()]) if (rec.live && !now.has(rec.id)) onEnded(rec.id, "ended while disconnected");
  for (const entry of calls) {
    const rec = fromSnapshot(entry);
    const old = live.get(rec.id);
    if (old) rec.adoptAgentState(old); // a snapshot carries no slots or tool calls
    track(rec);
  }
  autoSelect();
}

function onEnded(id, reason) {
  const rec = live.get(id);
  if (rec) {
    rec.ended(reason);
    if (rec.unacked.length) renderLiveItem(rec); // an alert stays until someone acknowledges it
    else dropLive(id);
    if (rec === current) renderMeta();
  }
  recent.refreshAfterEnd(id);
}

function onCallEvent(msg) {
  let rec = live.get(msg.call_id);
  if (!rec) {
    rec = new CallRecord({ call_id: msg.call_id }, true); // its call.started was lost
    track(rec);
    autoSelect();
  }
  const change = rec.apply(msg);
  if (!change) return;
  if (change.alert) {
    change.alert.acked = acknowledged.has(ackId(rec, change.alert));
    if (!change.alert.acked) announce(`Alert: ${alertLabel(change.alert)} on call ${rec.id}`);
  }
  if (change.alert || change.points || change.meta) renderLiveItem(rec);
  if (rec !== current) return;
  if (change.line) timeline.update(change);
  if (change.slots) renderDetails();
  if (change.points || change.alert) schedulePlot();
  if (change.alert) renderAlertHistory();
  if (change.points || change.meta) renderMeta();
}

let lastResync = 0;
function onMessage(msg) {
  switch (msg.type) {
    case "snapshot":
      link.healthy();
      setLink("connected");
      onSnapshot(Array.isArray(msg.calls) ? msg.calls : []);
      break;
    case "call.started":
      track(new CallRecord(msg, true));
      autoSelect();
      break;
    case "call.ended":
      onEnded(msg.call_id, msg.reason);
      break;
    case "monitor.dropped":
      stats.dropped += Number(msg.count) || 0;
      // some calls' events are gone: a fresh snapshot puts every live call right again
      if (Date.now() - lastResync > RESYNC_MIN_MS) {
        lastResync = Date.now();
        link.resync();
      }
      break;
    default:
      if (msg.call_id) onCallEvent(msg);
  }
}

function setLink(state, delayMs) {
  stats.connected = state === "connected";
  stats.reconnects = link.reconnects;
  document.body.dataset.link = state;
  ui.connection.textContent = state === "reconnecting" ? `disconnected; retrying in ${Math.ceil(delayMs / 1000)} s` : LINK_TEXT[state];
}

const link = new ReconnectingSocket("/ws/monitor", { onMessage, onState: setLink });
const recent = new RecentCalls(
  { list: ui.recentList, empty: ui.recentEmpty, more: ui.recentMore },
  { isLive: (id) => Boolean(live.get(id)?.live), isSelected: (id) => id === stats.selected, onSelect: (id) => select(id) },
);

// ---- the selected call ----------------------------------------------------------------------

function markSelected() {
  for (const b of document.querySelectorAll(".calls .call-select")) {
    b.setAttribute("aria-current", String(b.closest("li").dataset.callId === stats.selected));
  }
}

async function select(id) {
  stats.selected = id;
  markSelected();
  const hash = `#call=${encodeURIComponent(id)}`;
  if (location.hash !== hash) history.replaceState(null, "", hash);
  const rec = live.get(id);
  if (rec) return show(rec);
  ui.title.textContent = `Call ${id}`;
  ui.detail.dataset.source = "loading";
  ui.detail.dataset.callId = id;
  try {
    const archived = fromArchive(await getJson(`/api/calls/${encodeURIComponent(id)}`));
    restoreAcks(archived);
    if (stats.selected === id && !live.has(id)) show(archived);
  } catch (err) {
    if (stats.selected !== id) return;
    current = null;
    ui.detail.dataset.source = "error";
    const div = el("div");
    div.append(el("dt", "", "Error"), el("dd", "", err.message));
    ui.meta.replaceChildren(div);
    renderDetails();
    timeline.render(null);
  }
}

function show(rec) {
  current = rec;
  stats.calls[rec.id] ??= rec.counts;
  ui.detail.dataset.source = rec.source;
  ui.detail.dataset.callId = rec.id;
  ui.title.textContent = `Call ${rec.id}`;
  renderMeta();
  renderAlertHistory();
  renderDetails();
  timeline.render(rec);
  schedulePlot();
}

function renderMeta() {
  const rec = current;
  if (!rec) return;
  const status = rec.live ? (rec.speaking ? "live, caller speaking" : "live") : `ended${rec.endReason ? ` (${rec.endReason})` : ""}`;
  const rows = [
    ["Status", status],
    ["Transport", rec.transport],
    ["Language", rec.language],
    ["Persona", rec.persona || "default"],
    ["Started", wallTime(rec.startedAt)],
    ["Duration", rec.endedAt || rec.live ? clock(rec.durationMs()) : "—"],
  ];
  const pair = (k, v) => {
    const div = el("div");
    const dd = el("dd", k === "Duration" ? "duration" : "");
    dd.append(v);
    div.append(el("dt", "", k), dd);
    return div;
  };
  ui.meta.replaceChildren(...rows.map(([k, v]) => pair(k, v)), pair("Caller emotion", topEmotionNode(rec)));
}

function renderDetails() {
  renderSlots(ui.slots, ui.slotsEmpty, current);
  renderCallbacks(ui.callbacks, current);
}

function renderAlertHistory() {
  const rec = current;
  ui.alerts.replaceChildren(
    ...(rec?.alerts ?? []).map((a) => {
      const li = el("li", `alert-entry${a.acked ? " acked" : ""}`);
      li.dataset.kind = a.kind;
      li.append(el("span", "", `${alertLabel(a)} · raised ${wallTime(a.at)}`));
      if (a.acked) li.append(el("span", "acked-note", "acknowledged"));
      else {
        const ack = el("button", "quiet", "Acknowledge");
        ack.type = "button";
        ack.addEventListener("click", () => acknowledge(rec, a));
        li.append(ack);
      }
      return li;
    }),
  );
}

let plotQueued = false;
function schedulePlot() {
  if (plotQueued) return;
  plotQueued = true;
  requestAnimationFrame(() => {
    plotQueued = false;
    drawPlots();
  });
}

function drawPlots() {
  stats.plotPoints = drawArousalValence(ui.plotAV, current);
  drawCategories(ui.plotCategories, current);
  const last = current?.points.at(-1);
  const label = last
    ? `${stats.plotPoints} estimates over ${clock(last.t * 1000)}; latest arousal ${last.arousal.toFixed(2)}, valence ${last.valence.toFixed(2)}`
    : "No emotion estimates yet";
  ui.plotAV.setAttribute("aria-label", `Arousal and valence: ${label}`);
  ui.plotCategories.setAttribute("aria-label", `Emotion categories: ${label}`);
  ui.plotSummary.textContent = label;
}

// ---- start ----------------------------------------------------------------------------------

function tick() {
  for (const rec of live.values()) {
    const d = liveNodes.get(rec.id)?.querySelector(".duration");
    if (d && rec.live) d.textContent = clock(rec.durationMs());
  }
  if (current?.live) {
    const d = ui.meta.querySelector("dd.duration");
    if (d) d.textContent = clock(current.durationMs());
  }
}

function buildLegend() {
  ui.categoryLegend.replaceChildren(...CATEGORIES.map((n) => el("span", `key key-${n}`, n)));
}

buildLegend();
updateLiveCount();
ui.recentRefresh.addEventListener("click", () => recent.load());
ui.recentMore.addEventListener("click", () => recent.load(true));
new ResizeObserver(schedulePlot).observe(ui.plotAV);
matchMedia("(prefers-color-scheme: dark)").addEventListener("change", schedulePlot);
setInterval(tick, 1000);
link.open();
recent.load();
const linked = /^#call=(.+)$/.exec(location.hash);
if (linked) select(decodeURIComponent(linked[1]));
else drawPlots();
