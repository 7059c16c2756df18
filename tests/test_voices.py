"""Cloned voices over the real REST API of a real server, judged with real models.

Two references: two LibriVox clips (one male reader) and four ``cards`` clips (another man). The
preview of each cloned voice is compared with clips of the same speaker that were *not* uploaded.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf

from bench.metrics import wer
from bench.voices import cards_clips, read_clip, wav_bytes
from models.voice_embedding import VoiceFilterSpeakerEncoder, similarity
from pipelines.voice_reference import ReferenceLimits, prepare_reference
from pipelines.voices import PREVIEW_TEXT, UnknownVoice, load_voice, to_16k
from settings import Settings
from storage import Store
from tests.conftest import ServerProcess

# bench/voices.py, seven references: cloned speech is on average 0.25 closer to held-out clips of
# the speaker than the stock voice (-0.01 to +0.45 per reference). Through this API the two
# references here gained +0.22-0.24 (LibriVox) and +0.08-0.38 (cards) over repeated runs: the
# fit's intelligibility guard judges stochastic Piper output and sometimes rejects the strongest
# settings. Stock and clone are scored against the same held-out clips, so any positive margin is
# a move towards the speaker; 0.05 keeps the test meaningful without failing on that variance.
MIN_GAIN = 0.05
# tiny.en on the 23-word preview: one word is 4.3 points; the cloned voice may cost two words.
MAX_EXTRA_WER = 0.09


def librivox(i: int) -> Path:
    from bench.caller import librivox_clips

    return librivox_clips()[i][0]


REFERENCES = {
    "librivox": ([librivox(0), librivox(1)], [librivox(2), librivox(3), librivox(4)]),
    "cards": (cards_clips()[:4], cards_clips()[4:]),
}


@pytest.fixture(scope="module")
def encoder() -> VoiceFilterSpeakerEncoder:
    return VoiceFilterSpeakerEncoder()


@pytest.fixture(scope="module")
async def client(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=180) as c:
        yield c


@pytest.fixture(scope="module")
async def voices(client: httpx.AsyncClient) -> AsyncIterator[dict[str, dict[str, Any]]]:
    """One voice per reference, created through POST /api/voices; deleted afterwards."""
    made: dict[str, dict[str, Any]] = {}
    try:
        for name, (reference, _) in REFERENCES.items():
            r = await client.post(
                "/api/voices",
                files={"file": (f"{name}.wav", wav_bytes(reference), "audio/wav")},
                data={"name": name, "staff_code": "T1"},
            )
            assert r.status_code == 201, r.text
            made[name] = r.json()
        yield made
    finally:
        for voice in made.values():
            await client.delete(f"/api/voices/{voice['id']}")


def wav_audio(data: bytes) -> tuple[np.ndarray, int]:
    audio, rate = sf.read(io.BytesIO(data), dtype="int16")
    return np.asarray(audio, np.int16), int(rate)


@pytest.fixture(scope="module")
def asr() -> Any:
    from models.asr import FasterWhisperASR
    from models.device import select_device
    from models.manifest import whisper_tiny_en

    return FasterWhisperASR(whisper_tiny_en(), select_device("cpu"), cpu_threads=1)


@pytest.mark.parametrize("speaker", list(REFERENCES))
async def test_cloned_preview_sounds_like_the_speaker(
    speaker: str, voices: dict[str, dict[str, Any]], client: httpx.AsyncClient, encoder: VoiceFilterSpeakerEncoder, asr: Any
) -> None:
    voice = voices[speaker]
    assert voice["name"] == speaker and voice["staff_code"] == "T1" and voice["engine"] == "praat-spectral-v1"
    assert {c["name"] for c in voice["checks"]} >= {"duration", "clipping", "noise", "silence", "sample_rate"}
    assert all(c["status"] in {"ok", "warn"} and c["message"] for c in voice["checks"])
    figures = voice["similarity"]
    assert figures["preview"] > figures["stock_preview"]
    detail = (await client.get(f"/api/voices/{voice['id']}")).json()
    assert detail["similarity"] == figures and detail["params"]["formant_ratio"] > 0

    sample = await client.get(voice["sample_url"])
    assert sample.status_code == 200 and sample.headers["content-type"] == "audio/wav"
    cloned, rate = wav_audio(sample.content)
    stock_resp = await client.post("/api/tts", json={"text": PREVIEW_TEXT})
    stock, stock_rate = wav_audio(stock_resp.content)
    # two separate Piper syntheses: its duration noise moves the length by up to ~10 %
    assert rate == stock_rate and abs(len(cloned) - len(stock)) < 0.15 * len(stock)

    held = prepare_reference(wav_bytes(REFERENCES[speaker][1]), ReferenceLimits(min_speech_s=1.0)).audio
    held_emb = encoder.embed(held)
    sim_clone = similarity(encoder.embed(to_16k(cloned, rate)), held_emb)
    sim_stock = similarity(encoder.embed(to_16k(stock, rate)), held_emb)
    print(f"{speaker}: similarity to held-out clips stock {sim_stock:.3f} cloned {sim_clone:.3f}")
    assert sim_clone >= sim_stock + MIN_GAIN, (sim_stock, sim_clone)

    wer_clone = wer(PREVIEW_TEXT, asr.transcribe(to_16k(cloned, rate), "en").text)
    wer_stock = wer(PREVIEW_TEXT, asr.transcribe(to_16k(stock, rate), "en").text)
    print(f"{speaker}: preview WER stock {wer_stock:.3f} cloned {wer_clone:.3f}")
    assert wer_clone <= wer_stock + MAX_EXTRA_WER, (wer_stock, wer_clone)


async def test_list_pages_and_tts_with_a_voice(voices: dict[str, dict[str, Any]], client: httpx.AsyncClient) -> None:
    first = (await client.get("/api/voices", params={"limit": 1})).json()
    second = (await client.get("/api/voices", params={"limit": 1, "offset": 1})).json()
    assert first["total"] >= 2 and len(first["voices"]) == len(second["voices"]) == 1
    assert first["voices"][0]["id"] != second["voices"][0]["id"]
    assert "embedding" not in first["voices"][0] and "params" not in first["voices"][0]
    assert (await client.get("/api/voices", params={"limit": "x"})).status_code == 400

    voice_id = voices["librivox"]["id"]
    said = await client.post("/api/tts", json={"text": "Thanks for waiting. I found your order.", "voice": voice_id})
    assert said.status_code == 200 and said.headers["content-type"] == "audio/wav"
    pcm, rate = wav_audio(said.content)
    assert rate == 22050 and len(pcm) > rate and np.abs(pcm).max() > 3000
    stock = await client.post("/api/tts", json={"text": "Thanks for waiting. I found your order.", "voice": "default"})
    assert stock.status_code == 200 and not np.array_equal(wav_audio(stock.content)[0], pcm)


async def test_tts_errors(client: httpx.AsyncClient) -> None:
    unknown = await client.post("/api/tts", json={"text": "Hello.", "voice": "nope"})
    assert unknown.status_code == 404 and "nope" in unknown.json()["message"]
    assert (await client.post("/api/tts", json={"voice": "x"})).status_code == 400
    assert (await client.post("/api/tts", content=b"{not json")).status_code == 400
    assert (await client.post("/api/tts", json={"text": "a" * 5000})).status_code == 413
    plain = await client.post("/api/tts", json={"text": "Hello there."})
    assert plain.status_code == 200 and wav_audio(plain.content)[1] == 22050


def clipped_wav() -> bytes:
    loud = np.clip(read_clip(librivox(0)).astype(np.int32) * 8, -32768, 32767).astype(np.int16)
    buf = io.BytesIO()
    sf.write(buf, loud, 16000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def short_wav() -> bytes:
    buf = io.BytesIO()
    sf.write(buf, read_clip(librivox(1))[: 16000 * 2], 16000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def silent_wav() -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.zeros(16000 * 8, np.int16), 16000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


BAD = {
    "too_short": (short_wav, 422),
    "silent": (silent_wav, 422),
    "clipped": (clipped_wav, 422),
    "not_audio": (lambda: b"this is a text file, not a recording\n" * 50, 415),
    "file_too_large": (lambda: b"RIFF" + b"\x00" * (21 * 1024 * 1024), 413),
}


@pytest.mark.parametrize("kind", list(BAD))
async def test_bad_references_are_rejected_and_nothing_is_stored(
    kind: str, server: ServerProcess, client: httpx.AsyncClient
) -> None:
    before = (await client.get("/api/voices")).json()["total"]
    make, status = BAD[kind]
    r = await client.post("/api/voices", files={"file": ("ref.wav", make(), "audio/wav")}, data={"name": kind})
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == kind and len(body["message"]) > 20
    assert (await client.get("/api/voices")).json()["total"] == before
    voices_dir = server.data_dir / "voices"
    assert not voices_dir.exists() or not any(p.name.endswith(".partial") for p in voices_dir.iterdir())


async def test_form_errors(client: httpx.AsyncClient) -> None:
    no_file = await client.post("/api/voices", data={"name": "x"}, files={"other": ("a.txt", b"x", "text/plain")})
    assert no_file.status_code == 400 and no_file.json()["error"] == "missing_file"
    no_name = await client.post("/api/voices", files={"file": ("ref.wav", wav_bytes(REFERENCES["cards"][0]), "audio/wav")})
    assert no_name.status_code == 400 and no_name.json()["error"] == "invalid_name"
    assert (await client.post("/api/voices", json={"name": "x"})).status_code == 400


async def test_delete(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/voices", files={"file": ("c.wav", wav_bytes(cards_clips()[1:]), "audio/wav")}, data={"name": "to delete"}
    )
    assert r.status_code == 201, r.text
    voice_id = r.json()["id"]
    assert (await client.delete(f"/api/voices/{voice_id}")).status_code == 204
    assert (await client.get(f"/api/voices/{voice_id}")).status_code == 404
    assert (await client.get(f"/api/voices/{voice_id}/sample")).status_code == 404
    assert (await client.delete(f"/api/voices/{voice_id}")).status_code == 404
    assert (await client.post("/api/tts", json={"text": "Hi.", "voice": voice_id})).status_code == 404


async def test_openapi_describes_the_voice_endpoints(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert schema["openapi"].startswith("3.")
    assert {"/api/voices", "/api/voices/{voice_id}", "/api/voices/{voice_id}/sample", "/api/tts"} <= set(schema["paths"])
    assert set(schema["paths"]["/api/voices"]) == {"get", "post"}
    assert "multipart/form-data" in schema["paths"]["/api/voices"]["post"]["requestBody"]["content"]


@dataclass(eq=False)  # hashable by identity, like server.Parley
class _Parley:
    hub: Any
    store: Store | None
    settings: Settings


async def test_load_voice_for_calls(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'parley.db'}")
    try:
        parley = _Parley(hub=object(), store=store, settings=Settings(data_dir=tmp_path))
        assert await load_voice(parley, None) is None
        assert await load_voice(parley, "default") is None
        with pytest.raises(UnknownVoice, match="nope"):
            await load_voice(parley, "nope")
    finally:
        await store.close()


async def test_call_in_a_cloned_voice_streams_converted_audio(
    voices: dict[str, dict[str, Any]], server: ServerProcess, encoder: VoiceFilterSpeakerEncoder
) -> None:
    """session.start's ``voice`` makes the greeting and replies come out in that voice, streamed."""
    from bench.caller import Caller, load_pcm
    from pipelines.audio import to_float

    async def greeting(voice: str | None) -> np.ndarray:
        caller = Caller(f"{server.ws}/ws/call", voice=voice)
        log = await caller.connect()
        await caller.wait_for("agent.audio.done", timeout=30)
        await caller.close()
        return np.frombuffer(b"".join(a for _, t, a in log.audio if t == 1), dtype="<i2")

    cards = voices["cards"]["id"]
    stock, cloned = await greeting(None), await greeting(cards)
    assert len(cloned) > 16000 * 2 and not np.array_equal(stock[: len(cloned)], cloned[: len(stock)])
    held_out = np.concatenate([load_pcm(p, 16000) for p in REFERENCES["cards"][1]])
    ref = encoder.embed(to_float(held_out))
    assert similarity(encoder.embed(to_float(cloned)), ref) > similarity(encoder.embed(to_float(stock)), ref) + 0.1
    with pytest.raises(ConnectionError):
        await Caller(f"{server.ws}/ws/call", voice="no-such-voice").connect()
