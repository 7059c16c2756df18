"""Settings come from PARLEY_* variables, typed, validated, with named defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from settings import Settings


def test_defaults_and_types() -> None:
    s = Settings.from_env({})
    assert (s.host, s.port, s.device, s.max_frame_bytes) == ("127.0.0.1", 8000, "auto", 65536)
    s = Settings.from_env(
        {"PARLEY_PORT": "9001", "PARLEY_SMART_TURN": "false", "PARLEY_DATA_DIR": "/tmp/x", "PARLEY_PLAYBACK_LEAD_MS": "120"}
    )
    assert s.port == 9001 and s.smart_turn is False and s.data_dir == Path("/tmp/x") and s.playback_lead_ms == 120
    assert s.db_url == "sqlite+aiosqlite:////tmp/x/parley.db"


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"PARLEY_PORT": "eighty"}, "PARLEY_PORT"),
        ({"PARLEY_VAD_MODE": "7"}, "PARLEY_VAD_MODE"),
        ({"PARLEY_DEVICE": "tpu"}, "PARLEY_DEVICE"),
        ({"PARLEY_OUTPUT_SAMPLE_RATE": "44100"}, "PARLEY_OUTPUT_SAMPLE_RATE"),
        ({"PARLEY_TURN_SILENCE_MS": "900"}, "PARLEY_TURN_MAX_SILENCE_MS"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        Settings.from_env(env)
