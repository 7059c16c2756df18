// window.parleyStats: a read-only summary of the current or last call, for tests and the console.
//
// Common to both transports: framesSent counts 20 ms of caller audio sent (PCM frames over the
// WebSocket; Opus RTP packets over WebRTC, read from getStats). Transport-specific counters stay
// zero under the other transport.

export const stats = { state: "idle" };

export function resetStats(options) {
  Object.assign(stats, {
    transport: options.transport,
    language: options.language,
    persona: options.persona,
    voice: options.voice,
    sessionId: null,
    outputRate: 0,
    framesSent: 0,
    partials: 0,
    finals: [],
    agentTexts: [],
    interruptions: [],
    metrics: [],
    errors: [],
    // WebSocket: PCM16 reply audio played on an AudioContext
    audioBytesReceived: 0,
    audioBytesDropped: 0, // reply audio that arrived for a turn already interrupted
    scheduledChunks: 0,
    playedChunks: 0,
    underruns: 0,
    droppedChunks: 0, // scheduled reply audio thrown away by barge-in
    // WebRTC: the inbound-rtp audio stream, from RTCPeerConnection.getStats()
    rtcInboundBytes: 0,
    rtcSamplesReceived: 0,
    rtcAudioEnergy: 0, // totalAudioEnergy: grows only while the agent's audio is not silent
    rtcAudioLevelMax: 0,
    rtcRoundTripMs: null,
  });
}
