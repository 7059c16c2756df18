"""ASRStage: buffers one utterance, publishes partial transcripts while the caller speaks and a final
one at the end of the turn. Decodes run on the shared ASR pool, never on the event loop."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

import numpy as np

from models.asr import ASR
from models.vad import FRAME_MS
from pipelines.audio import to_float
from pipelines.workers import PRIORITY_FINAL, PRIORITY_PARTIAL, PRIORITY_SPECULATIVE, PriorityWorkers

log = logging.getLogger("parley.asr")
PREROLL_MS = 300


class ASRStage:
    """One per call. Push every 16 kHz frame with :meth:`push`; the runner calls :meth:`begin`
    at speech onset, :meth:`speculate` at a pause and :meth:`final` at the end of the turn.

    ``on_partial(text, t_ms)`` is called on the event loop for each new partial.
    """

    def __init__(
        self,
        asr: ASR,
        pool: PriorityWorkers,
        language: str,
        on_partial: Callable[[str, int], None],
        partial_interval_ms: int = 500,
        timeout_s: float = 20.0,
        on_speculative: Callable[[str], None] | None = None,
    ) -> None:
        self._asr = asr
        self._pool = pool
        self.language = language
        self._on_partial = on_partial
        self._on_speculative = on_speculative
        self._interval = partial_interval_ms
        self._timeout = timeout_s
        self._preroll: deque[np.ndarray] = deque(maxlen=PREROLL_MS // FRAME_MS)
        self._frames: list[np.ndarray] = []
        self.active = False
        self._utterance = 0
        self._since_partial_ms = 0
        self._partial_task: asyncio.Task[None] | None = None
        self._last_partial = ""
        self._spec: tuple[int, int, asyncio.Task[str]] | None = None  # (utterance, n_frames, task)
        self.t_ms = 0
        self.decode_ms: list[float] = []

    def push(self, frame: np.ndarray, voiced: bool) -> None:
        self.t_ms += FRAME_MS
        if not self.active:
            self._preroll.append(frame)
            return
        self._frames.append(frame)
        if voiced:
            self._since_partial_ms += FRAME_MS
            self.resumed()  # any speech after a speculative snapshot makes it stale
        # under load, partials yield to waiting finals: skip one while the ASR queue is not empty
        if (
            self._since_partial_ms >= self._interval
            and (self._partial_task is None or self._partial_task.done())
            and self._pool.queued() == 0
        ):
            self._since_partial_ms = 0
            self._partial_task = asyncio.create_task(self._partial(self._utterance, len(self._frames)))

    def begin(self, onset_ms: int) -> None:
        """Open an utterance at speech onset, keeping the pre-roll from just before ``onset_ms``."""
        if self.active:
            return
        keep = max(0, (self.t_ms - onset_ms + 200) // FRAME_MS)
        self._frames = list(self._preroll)[-keep:] if keep else []
        self._preroll.clear()
        self.active = True
        self._utterance += 1
        self._since_partial_ms = 0
        self._last_partial = ""
        self._spec = None

    def _audio(self, n_frames: int) -> np.ndarray:
        if not n_frames:
            return np.zeros(0, dtype=np.float32)
        return to_float(np.concatenate(self._frames[:n_frames]))

    async def _decode(self, priority: int, n_frames: int) -> str:
        audio = self._audio(n_frames)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        result = await self._pool.run(priority, lambda: self._asr.transcribe(audio, self.language), self._timeout)
        if priority != PRIORITY_PARTIAL:
            self.decode_ms.append((loop.time() - t0) * 1000)
        return result.text

    async def _partial(self, utterance: int, n_frames: int) -> None:
        try:
            text = await self._decode(PRIORITY_PARTIAL, n_frames)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a failed partial is not fatal: the final decides
            log.warning("partial decode failed: %s", exc)
            return
        if utterance == self._utterance and self.active and text and text != self._last_partial:
            self._last_partial = text
            self._on_partial(text, self.t_ms)

    def speculate(self) -> None:
        """Start decoding the utterance as it stands; :meth:`final` reuses it if no speech followed.

        A snapshot stays valid until a voiced frame arrives (only silence was added since).
        """
        if not self.active or self._spec is not None:
            return
        n = len(self._frames)
        task = asyncio.create_task(self._decode(PRIORITY_SPECULATIVE, n))
        self._spec = (self._utterance, n, task)
        if self._on_speculative is not None:
            task.add_done_callback(self._speculated)

    def _speculated(self, task: asyncio.Task[str]) -> None:
        """A speculative decode finished: tell the runner if it is still the utterance as it stands."""
        if task.cancelled() or task.exception() is not None or self._spec is None or self._spec[2] is not task:
            return
        if task.result() and self._on_speculative is not None:
            self._on_speculative(task.result())

    def resumed(self) -> None:
        """Speech came back after a pause: the speculative decode is stale."""
        if self._spec is not None:
            self._spec[2].cancel()
            self._spec = None

    async def final(self) -> str:
        """Close the utterance and return its transcript (reusing the speculative decode when valid)."""
        spec, self._spec = self._spec, None
        self.active = False
        if self._partial_task is not None:
            self._partial_task.cancel()
        n_frames = len(self._frames)
        try:
            if spec is not None and spec[0] == self._utterance and not spec[2].cancelled():
                try:
                    return await spec[2]
                except asyncio.CancelledError:
                    if asyncio.current_task() is not None and asyncio.current_task().cancelling():  # type: ignore[union-attr]
                        raise
            return await self._decode(PRIORITY_FINAL, n_frames)
        finally:
            self._frames = []

    async def aclose(self) -> None:
        for task in (self._partial_task, self._spec[2] if self._spec else None):
            if task is not None and not task.done():
                task.cancel()
                try:
                    await task
                except BaseException:  # noqa: BLE001 - we only wait for it to finish
                    pass
