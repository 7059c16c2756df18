"""Call benchmark: ``python -m bench.call`` (what ``make bench`` runs).

Starts real servers (``python server.py``) on loopback and streams the LibriVox clips at real-time
pace as callers would. Prints tables of per-stage latency, voice-to-voice, ASR WER, TTS real-time
factor, barge-in, server CPU and memory, and how many concurrent callers stay real time. These
sections use the template policy (they measure the call path); the last section (bench/agent.py)
measures the LLM policy on spoken customer questions.
All figures come from one run on this machine; compare them as ratios within the run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.caller import Caller, librivox_clips, load_pcm
from bench.metrics import percentile, wer
from bench.server_proc import ServerProcess

CLK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def proc_peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Run:
    """Per-turn figures gathered from callers."""

    server: dict[str, list[float]] = field(default_factory=dict)
    v2v_client: list[float] = field(default_factory=list)
    wers: list[float] = field(default_factory=list)
    partial_gaps: list[float] = field(default_factory=list)
    missed: int = 0

    def add_metrics(self, m: dict[str, object]) -> None:
        for k, v in m.items():
            if isinstance(v, float | int) and k != "turn_id":
                self.server.setdefault(k, []).append(float(v))


async def one_caller(url: str, clips: list[tuple[Path, str]], run: Run, start_delay: float = 0.0) -> None:
    await asyncio.sleep(start_delay)
    caller = Caller(url)
    log = await caller.connect()
    await caller.wait_for("agent.audio.done", timeout=30)
    await caller.listen(0.5)
    for n, (wav, ref) in enumerate(clips, start=1):
        await caller.say(load_pcm(wav, 16000))
        spoke_until = log.speech_end_sent[-1]
        try:
            final = await caller.wait_for("transcript.final", n, timeout=30)
            await caller.wait_for("agent.audio.done", n + 1, timeout=30)
        except TimeoutError:
            run.missed += 1
            break
        run.wers.append(wer(ref, final["text"]))
        first = log.first_audio_after(spoke_until)
        if first is not None:
            run.v2v_client.append((first - spoke_until) * 1000)
        # let the reply play out, as a polite caller would
        await caller.listen(1.0)
    await caller.close()
    for e in log.of("turn.metrics"):
        run.add_metrics(e)
    ptimes = [t for t, e in log.events if e["type"] in ("transcript.partial", "speech.started")]
    run.partial_gaps += [float(x) * 1000 for x in np.diff(ptimes) if x < 1.5]


async def barge_in_trial(url: str, wav: Path) -> tuple[float, float, float]:
    """(caller's first voiced frame sent -> agent.interrupted, interrupted -> last greeting audio frame, played_ms)."""
    caller = Caller(url)
    log = await caller.connect()
    while not log.audio:
        await asyncio.sleep(0.005)
    await caller.listen(1.0)
    speak = asyncio.create_task(caller.say(load_pcm(wav, 16000)))
    ev = await caller.wait_for("agent.interrupted", timeout=10)
    t_speak = log.speech_start_sent[-1]
    t_int = log.first_after("agent.interrupted", 0.0) or float("nan")
    await speak
    await caller.close()
    last = max((t for t, turn, _ in log.audio if turn == ev["turn_id"]), default=t_int)
    return (t_int - t_speak) * 1000, (last - t_int) * 1000, float(ev["played_ms"])


def tts_rtf() -> tuple[float, float]:
    """(real-time factor, first-clause ms) of the Piper voice on sentences a caller would hear."""
    from models import manifest
    from models.device import select_device
    from models.tts import PiperTTS

    tts = PiperTTS(*manifest.piper_joe(), select_device("cpu"))
    tts.synthesize("Warm up.")
    lines = [
        "Sure.",
        "I can help with that. Could you tell me your order number, please?",
        "Thank you for calling. Have a great day. Goodbye!",
        "I understand, billing mistakes are frustrating. Let me check your account.",
    ]
    total_s = audio_s = 0.0
    first: list[float] = []
    for line in lines:
        t0 = time.perf_counter()
        pcm = tts.synthesize(line)
        dt = time.perf_counter() - t0
        total_s += dt
        audio_s += len(pcm) / tts.sample_rate
        first.append(dt * 1000)
    return total_s / audio_s, statistics.median(first)


def fmt(xs: list[float]) -> str:
    return f"{percentile(xs, 50):7.0f} {percentile(xs, 95):7.0f}" if xs else "      -       -"


async def bench(args: argparse.Namespace) -> None:
    clips = librivox_clips()
    tmp = Path(tempfile.mkdtemp(prefix="parley-bench-"))
    print(f"# Parley call benchmark  ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs)\n")

    # 1. single caller, Smart Turn on vs VAD silence only
    runs: dict[str, Run] = {}
    for label, env in (("smart_turn", {"PARLEY_SMART_TURN": "1"}), ("vad_only", {"PARLEY_SMART_TURN": "0"})):
        srv = ServerProcess(tmp / label, PARLEY_POLICY="intent", **env)
        try:
            srv.wait_ready()
            run = Run()
            cpu0, t0 = proc_cpu_s(srv.pid()), time.perf_counter()
            await one_caller(f"{srv.ws}/ws/call", clips * args.repeat, run)
            cpu = proc_cpu_s(srv.pid()) - cpu0
            wall = time.perf_counter() - t0
            run.server["cpu_share"] = [cpu / wall]
            run.server["peak_rss_mb"] = [proc_peak_rss_mb(srv.pid())]
            runs[label] = run
            if label == "smart_turn":
                bi = [await barge_in_trial(f"{srv.ws}/ws/call", clips[i % len(clips)][0]) for i in range(args.barge_ins)]
        finally:
            srv.stop()

    print("## One caller, LibriVox clips at real-time pace (ms; p50 / p95)\n")
    print("| stage | Smart Turn p50 | p95 | VAD silence only p50 | p95 |")
    print("|---|---|---|---|---|")
    keys = [
        ("end-of-speech detection", "end_of_speech_ms"),
        ("final transcript (after end of turn)", "asr_final_ms"),
        ("policy first text", "policy_first_text_ms"),
        ("TTS first audio", "tts_first_audio_ms"),
        ("voice-to-voice (server)", "voice_to_voice_ms"),
    ]
    for name, key in keys:
        a, b = runs["smart_turn"].server.get(key, []), runs["vad_only"].server.get(key, [])
        print(f"| {name} | {fmt(a).split()[0]} | {fmt(a).split()[1]} | {fmt(b).split()[0]} | {fmt(b).split()[1]} |")
    a, b = runs["smart_turn"].v2v_client, runs["vad_only"].v2v_client
    print(
        f"| voice-to-voice (client: last speech frame sent -> first agent audio received) | {fmt(a).split()[0]} | {fmt(a).split()[1]} | {fmt(b).split()[0]} | {fmt(b).split()[1]} |"
    )
    st = runs["smart_turn"]
    print()
    print("| measure | value |")
    print("|---|---|")
    print(f"| turns | {len(st.wers)} (missed {st.missed}) |")
    print(f"| ASR WER, streamed (mean over turns) | {100 * statistics.mean(st.wers):.1f} % |")
    print(
        f"| partial transcript interval p50 / max | {percentile(st.partial_gaps, 50):.0f} / {max(st.partial_gaps, default=float('nan')):.0f} ms |"
    )
    rtf, first_ms = tts_rtf()
    print(f"| TTS real-time factor (Piper joe, CPU) | {rtf:.3f} |")
    print(f"| TTS first clause synthesis, median | {first_ms:.0f} ms |")
    print(f"| server CPU during the call (share of one core) | {100 * st.server['cpu_share'][0]:.0f} % |")
    print(f"| server peak RSS | {st.server['peak_rss_mb'][0]:.0f} MB |")
    if bi:
        det = [x[0] for x in bi]
        cut = [x[1] for x in bi]
        print(
            f"| barge-in detection: caller's first voiced frame -> agent.interrupted, median | {statistics.median(det):.0f} ms |"
        )
        print(f"| barge-in cut: agent.interrupted -> last agent audio frame, max | {max(cut):.0f} ms |")

    # 2. concurrency
    print("\n## Concurrent callers (each streams the clips at real-time pace; ms)\n")
    print("| callers | v2v p50 | v2v p95 | final ASR p95 | WER | missed turns | server CPU (cores) |")
    print("|---|---|---|---|---|---|---|")
    srv = ServerProcess(tmp / "load", PARLEY_POLICY="intent")
    base_p95 = None
    try:
        srv.wait_ready()
        for n in args.callers:
            run = Run()
            cpu0, t0 = proc_cpu_s(srv.pid()), time.perf_counter()
            await asyncio.gather(*(one_caller(f"{srv.ws}/ws/call", clips[:3], run, i * 0.37) for i in range(n)))
            cores = (proc_cpu_s(srv.pid()) - cpu0) / (time.perf_counter() - t0)
            v2v = run.server.get("voice_to_voice_ms", [])
            p95 = percentile(v2v, 95)
            base_p95 = base_p95 or p95
            flag = "" if p95 <= 2 * base_p95 else " (p95 > 2x one caller)"
            mean_wer = 100 * statistics.mean(run.wers) if run.wers else float("nan")
            print(
                f"| {n} | {percentile(v2v, 50):.0f} | {p95:.0f}{flag} | {percentile(run.server.get('asr_final_ms', []), 95):.0f} | {mean_wer:.1f} % | {run.missed} | {cores:.2f} |"
            )
    finally:
        srv.stop()

    # 3. the LLM policy (bench/agent.py)
    if args.llm:
        from bench import agent

        results = await agent.bench(argparse.Namespace(turns=len(agent.QUESTIONS), smollm2=False, configs=99))
        print("\n## LLM policy: free questions, one caller, local Qwen2.5-1.5B (ms)\n")
        agent.table(results)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeat", type=int, default=2, help="times each clip is spoken in the single-caller run")
    p.add_argument("--callers", type=int, nargs="*", default=[1, 2, 4, 8])
    p.add_argument("--barge-ins", type=int, default=5)
    p.add_argument("--no-llm", dest="llm", action="store_false", help="skip the LLM-policy section")
    asyncio.run(bench(p.parse_args()))


if __name__ == "__main__":
    main()
