// What the two call transports share: the handlers they report to, the hang-up, the end.

const HANGUP_WAIT_MS = 2000; // how long to wait for session.ended after session.end

export class Transport {
  /**
   * handlers.onEvent(event) gets every server event; handlers.onClose(error | null) is called
   * once when the call is over (error: {code, message} when it ended abnormally). The page calls
   * connect(), then hangUp() or close().
   */
  constructor(mic, options, handlers) {
    this.mic = mic;
    this.options = options; // {language, persona, voice}
    this.handlers = handlers;
    this.done = false;
  }

  /** Send one JSON message to the server; returns false when the channel is not open. */
  send(message) {
    throw new Error(`${this.constructor.name} must implement send(${message.type})`);
  }

  /** Pass a server event to the page; session.ended is the last one. */
  dispatch(event) {
    this.handlers.onEvent(event);
    if (event.type === "session.ended") this.finish(null);
  }

  /** Ask the server to end the call; returns false when there is nothing to wait for. */
  hangUp() {
    if (!this.send({ type: "session.end" })) return false;
    // the server answers session.ended and closes; do not wait forever for it
    setTimeout(() => this.finish(null), HANGUP_WAIT_MS);
    return true;
  }

  finish(error) {
    if (this.done) return;
    this.close();
    this.handlers.onClose(error);
  }

  /** Release everything the transport holds; subclasses extend it. Safe to call more than once. */
  close() {
    this.done = true;
  }
}
