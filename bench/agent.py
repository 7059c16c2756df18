"""LLM-policy benchmark: ``python -m bench.agent`` (also the last section of ``python -m bench.call``).

A caller (the bundled Piper voice, decoded by the real ASR) asks free customer-service
questions that the fast path does not answer, at real-time pace, against a real server running
the LLM policy on the bundled local model. One run compares preemptive generation on and off
(and, with ``--smollm2``, the small fallback model), so the figures are ratios on one machine.

Per turn: voice-to-voice (server: last voiced frame -> first reply audio; caller: last voiced
frame sent -> first reply audio received; an acknowledgement such as "Okay." counts as the reply's
first audio, so the time to the answer's own first words is shown beside it), the LLM's time to
first token and decode speed, and whether its first token existed before the end of the caller's
turn was declared.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.caller import Caller
from bench.metrics import percentile
from bench.server_proc import ServerProcess

QUESTIONS = (
    "My headphones make a buzzing noise when I charge them.",
    "Do you deliver to Canada, and how long does it take?",
    "The color of the jacket I got is different from the picture.",
    "Can I change the delivery address after I have paid?",
    "Is there a discount if I buy three of the same item?",
    "The box arrived damaged but the item inside seems fine.",
    "How do I reset the password for my account?",
    "Why did my card get declined when I tried to pay?",
    "Can I return something I bought as a gift?",
    "Your app keeps logging me out every few minutes.",
)


@dataclass
class Turns:
    v2v_server: list[float] = field(default_factory=list)
    v2v_client: list[float] = field(default_factory=list)
    ttft: list[float] = field(default_factory=list)
    tps: list[float] = field(default_factory=list)
    ahead: list[float] = field(default_factory=list)  # > 0: first token before the end of turn
    preempted: list[float] = field(default_factory=list)
    answer: list[float] = field(default_factory=list)  # last voiced frame -> the answer's own first words
    acks: int = 0
    llm_turns: int = 0
    turns: int = 0
    missed: int = 0
    replies: list[str] = field(default_factory=list)


def speak(texts: tuple[str, ...]) -> list[np.ndarray]:
    from models import manifest
    from models.device import select_device
    from models.tts import PiperTTS
    from pipelines.audio import resample

    tts = PiperTTS(*manifest.piper_joe(), select_device("cpu"))
    return [resample(tts.synthesize(t), tts.sample_rate, 16000) for t in texts]


async def converse(url: str, clips: list[np.ndarray], out: Turns) -> None:
    caller = Caller(url)
    log = await caller.connect()
    greeting = await caller.wait_for("agent.audio.done", timeout=60)
    await caller.listen(greeting["duration_ms"] / 1000 + 0.3)
    for n, pcm in enumerate(clips, start=2):
        await caller.say(pcm)
        spoke_until = log.speech_end_sent[-1]
        try:
            done = await caller.wait_for("agent.audio.done", n, timeout=60)
        except TimeoutError:
            out.missed += 1
            break
        out.turns += 1
        out.replies.append(log.of("agent.text.done")[-1]["text"])
        first = log.first_audio_after(spoke_until)
        if first is not None:
            out.v2v_client.append((first - spoke_until) * 1000)
        await caller.listen(done["duration_ms"] / 1000 + 0.5)
    await caller.close()
    for m in log.of("turn.metrics"):
        if m.get("voice_to_voice_ms") is not None:
            out.v2v_server.append(float(m["voice_to_voice_ms"]))
        if m.get("llm_ttft_ms") is None:
            continue
        out.llm_turns += 1
        out.ttft.append(float(m["llm_ttft_ms"]))
        if m.get("llm_tokens_per_s"):
            out.tps.append(float(m["llm_tokens_per_s"]))
        out.ahead.append(float(m.get("llm_ahead_ms") or 0.0))
        out.preempted.append(float(m.get("llm_preempted") or 0.0))
        out.acks += int(m.get("ack") or 0)
        if m.get("llm_answer_ms") is not None:
            out.answer.append(float(m["llm_answer_ms"]))


async def run_config(tmp: Path, label: str, clips: list[np.ndarray], env: dict[str, str]) -> Turns:
    base = {"PARLEY_LLM_PREEMPT": "0", "PARLEY_LLM_PRIME_PARTIALS": "0"}  # the defaults on a CPU-only host
    srv = ServerProcess(tmp / label, PARLEY_POLICY="llm", **(base | env))
    try:
        srv.wait_ready(timeout=600)
        out = Turns()
        await converse(f"{srv.ws}/ws/call", clips, out)
        return out
    finally:
        srv.stop()


def p(xs: list[float], q: float) -> str:
    return f"{percentile(xs, q):.0f}" if xs else "-"


def table(results: dict[str, Turns]) -> None:
    print(
        "| configuration | turns (LLM) | v2v server p50 | p95 | v2v caller p50 | p95 | LLM TTFT p50 | p95 | tokens/s p50 | first token before end of turn | preempted |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for label, t in results.items():
        before = sum(1 for a in t.ahead if a > 0)
        share = f"{before}/{len(t.ahead)} ({100 * before / len(t.ahead):.0f} %)" if t.ahead else "-"
        pre = f"{int(sum(t.preempted))}/{len(t.preempted)}" if t.preempted else "-"
        print(
            f"| {label} | {t.turns} ({t.llm_turns}) | {p(t.v2v_server, 50)} | {p(t.v2v_server, 95)} | {p(t.v2v_client, 50)} | "
            f"{p(t.v2v_client, 95)} | {p(t.answer, 50)} | {p(t.answer, 95)} | {p(t.ttft, 50)} | {p(t.ttft, 95)} | {p(t.tps, 50)} "
            f"| {share} | {pre} | {t.acks}/{t.llm_turns} |"
        )


async def bench(args: argparse.Namespace) -> dict[str, Turns]:
    tmp = Path(tempfile.mkdtemp(prefix="parley-agent-"))
    clips = speak(QUESTIONS[: args.turns])
    configs: dict[str, dict[str, str]] = {
        "Qwen2.5-1.5B, default (acknowledgement)": {},
        "+ early generation on the speculative transcript": {"PARLEY_LLM_PREEMPT": "1"},
        "+ partial transcripts pre-evaluated": {"PARLEY_LLM_PRIME_PARTIALS": "1"},
        "acknowledgement off": {"PARLEY_LLM_ACK": "0"},
    }
    if args.smollm2:
        configs["SmolLM2-135M, default"] = {"PARLEY_LLM_LOCAL_MODEL": "smollm2"}
    results: dict[str, Turns] = {}
    for label, env in list(configs.items())[: args.configs]:
        results[label] = await run_config(tmp, f"config{len(results)}", clips, env)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--turns", type=int, default=len(QUESTIONS))
    ap.add_argument("--smollm2", action="store_true", help="also measure the SmolLM2-135M fallback")
    ap.add_argument("--replies", action="store_true", help="print what the agent said")
    ap.add_argument("--configs", type=int, default=99, help="run only the first N configurations")
    args = ap.parse_args()
    print(f"# Parley LLM-policy benchmark  ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs)\n")
    results = asyncio.run(bench(args))
    print("## Free questions, one caller, local LLM (ms)\n")
    table(results)
    if args.replies:
        for label, t in results.items():
            print(f"\n### {label}\n")
            for q, r in zip(QUESTIONS, t.replies, strict=False):
                print(f"- {q} -> {r}")


if __name__ == "__main__":
    main()
