"""Shared fixtures: a real Parley server on a free loopback port, and a guard against leaked tasks."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.server_proc import ServerProcess, free_port
from models import manifest
from models.llm_server import LocalLLMServer

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
__all__ = ["ServerProcess", "free_port", "ARTIFACTS", "get_json", "wait_call"]


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


async def wait_call(
    server: ServerProcess, call_id: str, done: Callable[[dict[str, Any]], bool], timeout: float = 20.0
) -> dict[str, Any]:
    """Poll ``GET /api/calls/{id}`` until ``done(call)`` or ``timeout``; returns the last answer."""
    deadline = time.time() + timeout
    while True:
        call = dict(await asyncio.to_thread(get_json, f"{server.url}/api/calls/{call_id}"))
        if done(call) or time.time() > deadline:
            return call
        await asyncio.sleep(0.2)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # the template policy: these tests judge the call path, not the LLM (tests/test_agent_llm.py does)
    srv = ServerProcess(tmp_path_factory.mktemp("parley"), PARLEY_POLICY="intent")
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
async def llama(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalLLMServer]:
    """A real llama.cpp server (``python -m llama_cpp.server``) with the bundled Qwen2.5-1.5B GGUF."""
    shared = ROOT / "var" / "models"
    gguf = manifest.resolve_llm("qwen2.5-1.5b", shared if shared.exists() else tmp_path_factory.mktemp("llm"))
    server = LocalLLMServer(gguf, alias="qwen-test", log_path=tmp_path_factory.mktemp("llama") / "llama.log")
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="session")
def llm_parley(llama: LocalLLMServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Parley with the LLM policy, talking to ``llama`` through the OpenAI-compatible path."""
    srv = ServerProcess(
        tmp_path_factory.mktemp("parley-llm"),
        PARLEY_LLM_BASE_URL=llama.base_url,
        PARLEY_LLM_MODEL="qwen-test",
        PARLEY_LLM_API_KEY="sk-test",
        PARLEY_LLM_TOOLS="off",  # measured: this 1.5B coder model describes tools instead of calling them
        PARLEY_LLM_TEMPERATURE="0",
    )
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves asyncio tasks running behind it."""
    before = set(asyncio.all_tasks())
    yield
    await asyncio.sleep(0)
    leaked = [t for t in asyncio.all_tasks() - before if not t.done() and t is not asyncio.current_task()]
    if leaked:
        for t in leaked:
            t.cancel()
        await asyncio.gather(*leaked, return_exceptions=True)
        pytest.fail(f"test leaked {len(leaked)} task(s): {[t.get_coro() for t in leaked]}")
