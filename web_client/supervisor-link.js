// The supervisor's links to the server: JSON over HTTP, and a WebSocket that reopens itself with
// exponential backoff (and jitter) whenever it closes. Call healthy() once the server has shown
// the link works, so the next outage starts again from the shortest delay.

/** GET a same-origin JSON resource; throws with the status on anything but 2xx. */
export async function getJson(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" }, cache: "no-store" });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

export class ReconnectingSocket {
  /** ``onMessage(msg)`` gets each parsed JSON message; ``onState(state, delayMs)`` "connecting" | "reconnecting". */
  constructor(path, { onMessage, onState }, { firstMs = 500, maxMs = 15000 } = {}) {
    this.url = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}${path}`;
    this.onMessage = onMessage;
    this.onState = onState;
    this.firstMs = firstMs;
    this.maxMs = maxMs;
    this.ws = null;
    this.attempt = 0;
    this.timer = 0;
    this.reconnects = 0;
  }

  open() {
    clearTimeout(this.timer);
    const ws = new WebSocket(this.url);
    this.ws = ws;
    this.onState("connecting");
    ws.addEventListener("message", (e) => {
      let msg;
      try {
        msg = JSON.parse(e.data);
      } catch {
        return; // not JSON: nothing this page can show
      }
      this.onMessage(msg);
    });
    ws.addEventListener("close", () => {
      if (this.ws !== ws) return; // replaced by resync()
      this.ws = null;
      const delay = Math.min(this.maxMs, this.firstMs * 2 ** this.attempt) * (0.8 + 0.4 * Math.random());
      this.attempt++;
      this.reconnects++;
      this.onState("reconnecting", delay);
      this.timer = setTimeout(() => this.open(), delay);
    });
  }

  healthy() {
    this.attempt = 0;
  }

  /** Drop the connection and open a fresh one now. */
  resync() {
    const old = this.ws;
    this.ws = null;
    old?.close();
    this.open();
  }
}
