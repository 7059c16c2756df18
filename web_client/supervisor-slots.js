// The selected call's details: the slots the agent has filled (order number, phone, date, ...)
// as a key/value list, and the callbacks it booked (stored calls only).

import { el } from "./supervisor-timeline.js";

const SLOT_NAMES = { issue_type: "Issue", order_number: "Order number", phone: "Phone", date: "Date", callback: "Callback" };

function slotName(key) {
  const words = key.replaceAll("_", " ");
  return SLOT_NAMES[key] ?? words.charAt(0).toUpperCase() + words.slice(1);
}

function slotValue(value) {
  if (value === null || value === undefined || value === "") return "—";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value).replaceAll("_", " ");
}

/** Fill ``list`` (a <dl>) with the slots of ``rec``; the ones the latest update changed are marked. */
export function renderSlots(list, empty, rec) {
  const entries = Object.entries(rec?.slots ?? {});
  list.replaceChildren(
    ...entries.map(([key, value]) => {
      const div = el("div", rec.changedSlots.has(key) ? "slot changed" : "slot");
      div.dataset.testid = "slot";
      div.dataset.slot = key;
      const dd = el("dd", "", slotValue(value));
      dd.dataset.testid = "slot-value";
      dd.title = typeof value === "string" ? value : JSON.stringify(value);
      div.append(el("dt", "", slotName(key)), dd);
      return div;
    }),
  );
  empty.hidden = entries.length > 0;
  empty.textContent = rec ? "The agent has not collected any details yet." : "Select a call to see what the agent collected.";
}

/** Fill ``list`` with the callbacks booked on the call on show (GET /api/calls/{id} lists them). */
export function renderCallbacks(list, rec) {
  list.replaceChildren(
    ...(rec?.callbacks ?? []).map((c) => {
      const li = el("li", "callback");
      li.dataset.testid = "callback";
      const reason = c.reason ? ` · ${c.reason}` : "";
      li.append(el("span", "who", "Callback"), el("span", "", `${c.phone ?? "?"} · ${c.when ?? "?"}${reason}`));
      if (c.status) li.append(el("span", "callback-status", c.status));
      return li;
    }),
  );
}
