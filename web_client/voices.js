// Parley voice lab: record (MediaRecorder, with a level meter and a live waveform) or upload a
// reference, create a cloned voice (POST /api/voices), see the checks, hear the preview, and list
// or delete voices.
//
// window.parleyStats summarises what happened, for tests and the console.

const PAGE_SIZE = 10;
const MAX_RECORD_S = 30;

const $ = (id) => document.getElementById(id);
const ui = {
  form: $("voice-form"),
  name: $("voice-name"),
  staff: $("staff-code"),
  transcript: $("transcript"),
  record: $("record"),
  time: $("rec-time"),
  level: $("level"),
  wave: $("wave"),
  take: $("take"),
  file: $("file"),
  create: $("create"),
  status: $("status"),
  result: $("result"),
  checks: $("checks"),
  previewBox: $("preview-box"),
  figures: $("figures"),
  preview: $("preview"),
  list: $("voices").tBodies[0],
  prev: $("prev"),
  next: $("next"),
  page: $("page"),
  player: $("player"),
};

const stats = {
  state: "idle", // idle | recording | recorded | creating | created | failed
  recordedMs: 0,
  recordedBytes: 0,
  recordingType: "",
  levelMax: 0,
  created: null, // id of the voice this page created last
  checks: [],
  similarity: null,
  error: null,
  previewPlayed: false,
  voices: [],
  total: 0,
};
window.parleyStats = stats;

let reference = null; // { blob, filename }
let offset = 0;

function setStatus(text, kind = "") {
  ui.status.textContent = text;
  ui.status.className = `status ${kind}`;
}

function updateCreate() {
  ui.create.disabled = !reference || !ui.name.value.trim() || stats.state === "recording" || stats.state === "creating";
}

// ---- recording ------------------------------------------------------------------------------

class Recorder {
  /** Raw microphone (no echo cancellation, noise suppression or gain control: a reference should be the plain voice). */
  async start(onLevel, onWave) {
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
    this.ctx = new AudioContext();
    await this.ctx.resume().catch(() => {});
    const source = this.ctx.createMediaStreamSource(this.stream);
    const analyser = this.ctx.createAnalyser();
    analyser.fftSize = 2048;
    source.connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    const type = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/mp4"].find((t) => MediaRecorder.isTypeSupported(t)) ?? "";
    this.recorder = new MediaRecorder(this.stream, type ? { mimeType: type } : undefined);
    this.chunks = [];
    this.recorder.ondataavailable = (e) => e.data.size && this.chunks.push(e.data);
    this.recorder.start(250);
    this.started = performance.now();
    const tick = () => {
      analyser.getFloatTimeDomainData(samples);
      let peak = 0;
      for (const s of samples) peak = Math.max(peak, Math.abs(s));
      onLevel(peak > 0 ? Math.max(0, 1 + Math.log10(peak) / 3) : 0, performance.now() - this.started);
      onWave(peak);
      this.frame = requestAnimationFrame(tick);
    };
    this.frame = requestAnimationFrame(tick);
    return this.recorder.mimeType || type;
  }

  /** Stop and return the recording as one Blob. */
  stop() {
    cancelAnimationFrame(this.frame);
    return new Promise((resolve) => {
      this.recorder.onstop = () => {
        this.stream.getTracks().forEach((t) => t.stop());
        this.ctx.close().catch(() => {});
        resolve(new Blob(this.chunks, { type: this.recorder.mimeType }));
      };
      this.recorder.stop();
    });
  }
}

const wave = { peaks: [] };

function drawWave() {
  const c = ui.wave;
  const g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  g.fillStyle = getComputedStyle(document.documentElement).getPropertyValue("--accent") || "#1f6feb";
  const n = wave.peaks.length;
  const step = Math.max(1, Math.ceil(n / c.width));
  for (let x = 0, i = 0; i < n; x++, i += step) {
    const p = Math.max(...wave.peaks.slice(i, i + step));
    const h = Math.max(1, p * c.height);
    g.fillRect(x, (c.height - h) / 2, 1, h);
  }
}

let recorder = null;

async function toggleRecording() {
  if (recorder) {
    const rec = recorder;
    recorder = null;
    ui.record.textContent = "Record";
    ui.record.setAttribute("aria-pressed", "false");
    const blob = await rec.stop();
    ui.level.value = 0;
    const ext = blob.type.includes("mp4") ? "m4a" : blob.type.includes("ogg") ? "ogg" : "webm";
    reference = { blob, filename: `recording.${ext}` };
    stats.recordedBytes = blob.size;
    stats.state = "recorded";
    ui.take.src = URL.createObjectURL(blob);
    ui.take.hidden = false;
    ui.file.value = "";
    setStatus(`Recorded ${(stats.recordedMs / 1000).toFixed(1)} s. Listen back, then create the voice.`);
    updateCreate();
    return;
  }
  wave.peaks = [];
  stats.levelMax = 0;
  try {
    recorder = new Recorder();
    stats.recordingType = await recorder.start(
      (level, ms) => {
        ui.level.value = level;
        stats.levelMax = Math.max(stats.levelMax, level);
        stats.recordedMs = ms;
        ui.time.textContent = `${(ms / 1000).toFixed(1)} s`;
        if (ms > MAX_RECORD_S * 1000 && recorder) toggleRecording();
      },
      (peak) => {
        wave.peaks.push(peak);
        drawWave();
      },
    );
  } catch (err) {
    recorder = null;
    stats.state = "failed";
    stats.error = String(err);
    setStatus(`Could not open the microphone: ${err.message ?? err}`, "error");
    return;
  }
  stats.state = "recording";
  ui.record.textContent = "Stop";
  ui.record.setAttribute("aria-pressed", "true");
  ui.take.hidden = true;
  setStatus("Recording… read the text above, then press Stop.");
  updateCreate();
}

ui.record.addEventListener("click", toggleRecording);

ui.file.addEventListener("change", () => {
  const file = ui.file.files[0];
  if (!file) return;
  reference = { blob: file, filename: file.name };
  stats.recordedBytes = file.size;
  stats.state = "recorded";
  ui.take.src = URL.createObjectURL(file);
  ui.take.hidden = false;
  setStatus(`${file.name} (${(file.size / 1e6).toFixed(1)} MB) selected.`);
  updateCreate();
});
ui.name.addEventListener("input", updateCreate);

// ---- creating a voice -----------------------------------------------------------------------

function showChecks(checks) {
  ui.checks.replaceChildren(
    ...checks.map((c) => {
      const li = document.createElement("li");
      li.className = c.status;
      li.dataset.testid = "check";
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = c.name.replace(/_/g, " ");
      li.append(name, c.message);
      return li;
    }),
  );
  ui.result.hidden = checks.length === 0;
}

ui.form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!reference) return;
  const body = new FormData();
  body.append("file", reference.blob, reference.filename);
  body.append("name", ui.name.value.trim());
  if (ui.transcript.value.trim()) body.append("transcript", ui.transcript.value.trim());
  if (ui.staff.value.trim()) body.append("staff_code", ui.staff.value.trim());
  stats.state = "creating";
  stats.error = null;
  updateCreate();
  ui.previewBox.hidden = true;
  showChecks([]);
  setStatus("Checking the recording and fitting the voice (about 10-20 s)…", "busy");
  try {
    const response = await fetch("api/voices", { method: "POST", body });
    const reply = await response.json();
    stats.checks = reply.checks ?? [];
    showChecks(stats.checks);
    if (!response.ok) throw new Error(reply.message ?? `HTTP ${response.status}`);
    stats.created = reply.id;
    stats.similarity = reply.similarity;
    stats.state = "created";
    const s = reply.similarity;
    ui.figures.textContent = `Likeness to your recording: ${s.preview.toFixed(2)} (the stock voice: ${s.stock_preview.toFixed(2)}; the same person scores about 0.75-0.9).`;
    ui.preview.src = `${reply.sample_url.replace(/^\//, "")}?t=${Date.now()}`;
    ui.previewBox.hidden = false;
    setStatus(`Voice “${reply.name}” created. Use it in a call with voice ${reply.id}.`);
    await loadVoices();
  } catch (err) {
    stats.state = "failed";
    stats.error = err.message ?? String(err);
    setStatus(stats.error, "error");
  }
  updateCreate();
});

ui.preview.addEventListener("playing", () => (stats.previewPlayed = true));
ui.player.addEventListener("playing", () => (stats.previewPlayed = true));

// ---- the list -------------------------------------------------------------------------------

function voiceRow(v) {
  const tr = document.createElement("tr");
  tr.dataset.testid = "voice-row";
  tr.dataset.id = v.id;
  const cells = [v.name, new Date(v.created_at).toLocaleString(), v.similarity?.preview != null ? `${v.similarity.preview.toFixed(2)} (${v.similarity.stock_preview.toFixed(2)})` : "–"];
  for (const text of cells) {
    const td = document.createElement("td");
    td.textContent = text;
    tr.append(td);
  }
  const actions = document.createElement("td");
  actions.className = "actions";
  const play = document.createElement("button");
  play.type = "button";
  play.textContent = "Play";
  play.dataset.testid = "play";
  play.addEventListener("click", () => {
    ui.player.src = `api/voices/${encodeURIComponent(v.id)}/sample`;
    ui.player.play().catch((err) => setStatus(`Could not play: ${err.message}`, "error"));
  });
  const del = document.createElement("button");
  del.type = "button";
  del.className = "delete";
  del.textContent = "Delete";
  del.dataset.testid = "delete";
  del.setAttribute("aria-label", `Delete ${v.name}`);
  del.addEventListener("click", async () => {
    if (!window.confirm(`Delete the voice “${v.name}”?`)) return;
    const response = await fetch(`api/voices/${encodeURIComponent(v.id)}`, { method: "DELETE" });
    if (!response.ok && response.status !== 404) setStatus(`Could not delete: HTTP ${response.status}`, "error");
    await loadVoices();
  });
  actions.append(play, del);
  tr.append(actions);
  return tr;
}

async function loadVoices() {
  try {
    const response = await fetch(`api/voices?limit=${PAGE_SIZE}&offset=${offset}`);
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const page = await response.json();
    if (!page.voices.length && offset > 0) {
      offset = Math.max(0, offset - PAGE_SIZE);
      return loadVoices();
    }
    stats.voices = page.voices.map((v) => v.id);
    stats.total = page.total;
    ui.list.replaceChildren(...page.voices.map(voiceRow));
    ui.prev.disabled = offset === 0;
    ui.next.disabled = offset + page.voices.length >= page.total;
    ui.page.textContent = page.total ? `${offset + 1}-${offset + page.voices.length} of ${page.total}` : "";
  } catch (err) {
    setStatus(`Could not list voices: ${err.message}`, "error");
  }
}

ui.prev.addEventListener("click", () => {
  offset = Math.max(0, offset - PAGE_SIZE);
  loadVoices();
});
ui.next.addEventListener("click", () => {
  offset += PAGE_SIZE;
  loadVoices();
});

loadVoices();
