// The finished calls from GET /api/calls, newest first, a page at a time.

import { getJson } from "./supervisor-link.js";
import { clock, toEpochMs, wallTime } from "./supervisor-model.js";
import { el } from "./supervisor-timeline.js";

const PAGE = 20;

export class RecentCalls {
  /** ``isLive(id)``: still in progress (listed with the live calls instead); ``onSelect(id)``: clicked. */
  constructor({ list, empty, more }, { isLive, isSelected, onSelect }) {
    Object.assign(this, { list, empty, more, isLive, isSelected, onSelect });
    this.loaded = 0;
  }

  item(call) {
    const li = el("li", "call");
    li.dataset.testid = "recent-call";
    li.dataset.callId = call.id;
    const button = el("button", "call-select");
    button.type = "button";
    button.setAttribute("aria-current", String(this.isSelected(call.id)));
    const start = toEpochMs(call.started_at);
    const end = toEpochMs(call.ended_at);
    button.append(
      el("span", "call-id", call.id),
      el("span", "call-sub", [wallTime(start), call.transport, call.language].filter(Boolean).join(" · ")),
      el("span", "duration", start && end ? clock(end - start) : "—"),
      el("span", "call-state", end ? (call.end_reason ?? "ended") : "not ended"),
    );
    button.addEventListener("click", () => this.onSelect(call.id));
    li.append(button);
    return li;
  }

  /** Reload what is shown (``more``: append the next older page); returns the calls read. */
  async load(more = false) {
    const offset = more ? this.loaded : 0;
    const limit = more ? PAGE : Math.min(200, Math.max(PAGE, this.loaded));
    this.list.setAttribute("aria-busy", "true");
    try {
      const body = await getJson(`/api/calls?limit=${limit}&offset=${offset}`);
      const calls = Array.isArray(body?.calls) ? body.calls : [];
      this.loaded = offset + calls.length;
      const items = calls.filter((c) => !this.isLive(c.id)).map((c) => this.item(c));
      if (more) this.list.append(...items);
      else this.list.replaceChildren(...items);
      this.more.hidden = calls.length < limit;
      this.empty.textContent = "No finished calls yet.";
      return calls;
    } catch (err) {
      this.empty.textContent = `Could not load calls (${err.message}).`;
      return [];
    } finally {
      this.empty.hidden = this.list.children.length > 0;
      this.list.setAttribute("aria-busy", "false");
    }
  }

  /** The store may record a call's end a moment after call.ended: retry until it shows as ended. */
  async refreshAfterEnd(id, tries = 4) {
    await new Promise((r) => setTimeout(r, 300));
    const calls = await this.load();
    if (tries > 1 && !calls.some((c) => c.id === id && c.ended_at)) setTimeout(() => this.refreshAfterEnd(id, tries - 1), 700);
  }
}
