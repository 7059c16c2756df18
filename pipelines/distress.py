"""DistressTracker: turns the live emotion estimates of a call into supervisor alerts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipelines.emotion import EmotionEstimate


@dataclass(frozen=True, slots=True)
class DistressAlert:
    """The caller has been angry or distressed (fearful + sad) for ``duration_ms``."""

    kind: str  # "angry" or "distressed"
    started_ms: int
    t_ms: int
    level: float  # mean level over the run

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "emotion.alert",
            "kind": self.kind,
            "started_ms": self.started_ms,
            "t_ms": self.t_ms,
            "level": round(self.level, 3),
        }


class DistressTracker:
    """Raises one :class:`DistressAlert` when the caller stays angry or distressed for ``duration_ms``.

    The level of an estimate is ``max(angry, fearful + sad)`` of its (smoothed) scores. A run starts
    at an estimate at or above ``threshold`` and lasts while estimates stay at or above ``release``
    (default ``threshold - 0.1``); pauses between estimates count toward it, since no estimates arrive
    while the caller is silent. Feed every estimate to :meth:`update`; it returns the alert once per
    run, then ``None`` until the level falls below ``release`` and a new run begins.
    """

    def __init__(
        self, threshold: float = 0.5, duration_ms: int = 4000, release: float | None = None, window_ms: int = 1000
    ) -> None:
        self.threshold = threshold
        self.duration_ms = duration_ms
        self.release = threshold - 0.1 if release is None else release
        self._window_ms = window_ms
        self._start: int | None = None
        self._levels: list[float] = []
        self._angry = 0.0
        self._fired = False

    @staticmethod
    def level(scores: Mapping[str, float]) -> tuple[str, float]:
        angry = scores.get("angry", 0.0)
        distressed = scores.get("fearful", 0.0) + scores.get("sad", 0.0)
        return ("angry", angry) if angry >= distressed else ("distressed", distressed)

    @property
    def active(self) -> bool:
        """A run is in progress (the caller is upset now), whether or not it has alerted yet."""
        return self._start is not None

    def update(self, est: EmotionEstimate) -> DistressAlert | None:
        _, level = self.level(est.scores)
        if self._start is None:
            if level < self.threshold:
                return None
            self._start, self._levels, self._angry, self._fired = est.t_ms - self._window_ms, [], 0.0, False
        elif level < self.release:
            self._start = None
            return None
        self._levels.append(level)
        self._angry += est.scores.get("angry", 0.0) - (est.scores.get("fearful", 0.0) + est.scores.get("sad", 0.0))
        if self._fired or est.t_ms - self._start < self.duration_ms:
            return None
        self._fired = True
        kind = "angry" if self._angry >= 0 else "distressed"
        return DistressAlert(kind, self._start, est.t_ms, sum(self._levels) / len(self._levels))
