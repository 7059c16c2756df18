// Hand-drawn canvas plots of a call's emotion: arousal and valence lines (-1..1), and the six
// category scores stacked to 1. x is caller-audio time in seconds (the events' t_ms).

import { CATEGORIES } from "./supervisor-model.js";

const PAD = { left: 36, right: 16, top: 12, bottom: 22 };
const GAP_S = 3; // estimates further apart than this (a pause in speech) are not joined
const MIN_SPAN_S = 10;
const STEPS_S = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600];

function css(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
}

/** Size the backing store to the element (device pixels) and return a context in CSS pixels. */
function prepare(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, canvas.clientWidth);
  const h = Math.max(1, canvas.clientHeight);
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  return { ctx, w, h };
}

function secondsLabel(s) {
  return s >= 60 ? `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}` : `${s}s`;
}

/** Pixel mapping for x in [0, span] seconds and y in [yMin, yMax]. */
function frame({ w, h }, span, yMin, yMax) {
  const iw = w - PAD.left - PAD.right;
  const ih = h - PAD.top - PAD.bottom;
  return {
    x: (t) => PAD.left + (t / span) * iw,
    y: (v) => PAD.top + ((yMax - v) / (yMax - yMin)) * ih,
    span,
    iw,
    ih,
  };
}

function spanOf(points) {
  const last = points.length ? points[points.length - 1].t : 0;
  return Math.max(MIN_SPAN_S, Math.ceil((last + 1) / 5) * 5);
}

function drawAxes(ctx, f, yTicks, yLabel) {
  ctx.font = "11px system-ui, sans-serif";
  ctx.lineWidth = 1;
  ctx.fillStyle = css("--muted");
  ctx.textBaseline = "middle";
  ctx.textAlign = "right";
  for (const v of yTicks) {
    const y = Math.round(f.y(v)) + 0.5;
    ctx.strokeStyle = v === 0 ? css("--axis") : css("--grid");
    ctx.beginPath();
    ctx.moveTo(PAD.left, y);
    ctx.lineTo(PAD.left + f.iw, y);
    ctx.stroke();
    ctx.fillText(yLabel(v), PAD.left - 4, y);
  }
  const step = STEPS_S.find((s) => f.span / s <= 8) ?? 3600;
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (let t = 0; t <= f.span + 1e-9; t += step) {
    const x = Math.round(f.x(t)) + 0.5;
    ctx.strokeStyle = css("--grid");
    ctx.beginPath();
    ctx.moveTo(x, PAD.top);
    ctx.lineTo(x, PAD.top + f.ih);
    ctx.stroke();
    ctx.fillText(secondsLabel(t), x, PAD.top + f.ih + 4);
  }
}

/** Runs of points with no pause longer than GAP_S between neighbours. */
function segments(points) {
  const out = [];
  let run = [];
  for (const p of points) {
    if (run.length && p.t - run[run.length - 1].t > GAP_S) {
      out.push(run);
      run = [];
    }
    run.push(p);
  }
  if (run.length) out.push(run);
  return out;
}

function shade(ctx, f, from, to, color) {
  const x0 = f.x(Math.max(0, from));
  const x1 = Math.max(x0 + 2, f.x(Math.min(f.span, to)));
  ctx.fillStyle = color;
  ctx.fillRect(x0, PAD.top, x1 - x0, f.ih);
}

function line(ctx, f, runs, key, color) {
  ctx.strokeStyle = color;
  ctx.fillStyle = color;
  ctx.lineWidth = 2;
  ctx.lineJoin = "round";
  for (const run of runs) {
    ctx.beginPath();
    run.forEach((p, i) => (i ? ctx.lineTo(f.x(p.t), f.y(p[key])) : ctx.moveTo(f.x(p.t), f.y(p[key]))));
    ctx.stroke();
    for (const p of run) {
      ctx.beginPath();
      ctx.arc(f.x(p.t), f.y(p[key]), p.calibrating ? 1.5 : 2.5, 0, 2 * Math.PI);
      ctx.fill();
    }
  }
}

/** Arousal and valence over time, calibration and alerts shaded; returns the points drawn. */
export function drawArousalValence(canvas, rec) {
  const box = prepare(canvas);
  const points = rec?.points ?? [];
  const f = frame(box, spanOf(points), -1, 1);
  const calibrating = points.filter((p) => p.calibrating);
  if (calibrating.length) shade(box.ctx, f, 0, calibrating[calibrating.length - 1].t, css("--calibrating"));
  for (const a of rec?.alerts ?? []) {
    const end = (Number(a.t_ms) || 0) / 1000;
    const start = typeof a.started_ms === "number" ? a.started_ms / 1000 : end - 0.5;
    shade(box.ctx, f, start, end, css("--alert-shade"));
  }
  drawAxes(box.ctx, f, [-1, -0.5, 0, 0.5, 1], (v) => (v === 0 ? "0" : v.toFixed(1)));
  const runs = segments(points);
  line(box.ctx, f, runs, "valence", css("--valence"));
  line(box.ctx, f, runs, "arousal", css("--arousal"));
  return points.length;
}

/** Each estimate's scores, normalised to sum 1, as cumulative bounds in CATEGORIES order. */
function stack(p) {
  const raw = CATEGORIES.map((c) => Math.max(0, Number(p.scores?.[c]) || 0));
  const total = raw.reduce((a, b) => a + b, 0) || 1;
  let acc = 0;
  return raw.map((v) => [acc, (acc += v / total)]);
}

/** The six categories stacked to 1 over time; a lone estimate is a narrow bar. */
export function drawCategories(canvas, rec) {
  const box = prepare(canvas);
  const { ctx } = box;
  const points = rec?.points ?? [];
  const f = frame(box, spanOf(points), 0, 1);
  for (const run of segments(points)) {
    const bounds = run.map(stack);
    const xs = run.map((p) => f.x(p.t));
    if (run.length === 1) {
      xs.unshift(xs[0] - 2);
      xs[1] += 2;
      bounds.push(bounds[0]);
    }
    CATEGORIES.forEach((c, k) => {
      ctx.fillStyle = css(`--emo-${c}`);
      ctx.beginPath();
      xs.forEach((x, i) => (i ? ctx.lineTo(x, f.y(bounds[i][k][1])) : ctx.moveTo(x, f.y(bounds[i][k][1]))));
      for (let i = xs.length - 1; i >= 0; i--) ctx.lineTo(xs[i], f.y(bounds[i][k][0]));
      ctx.closePath();
      ctx.fill();
    });
  }
  drawAxes(ctx, f, [0, 0.5, 1], (v) => `${Math.round(v * 100)}%`);
  return points.length;
}
