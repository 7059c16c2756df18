"""Runs and supervises llama.cpp's OpenAI-compatible server (``python -m llama_cpp.server``) on loopback.

:meth:`LocalLLMServer.start` launches it, waits until ``/v1/models`` answers and one short
completion has run (weights paged in, prompt cache primed), and returns the base URL. A
supervisor task restarts it with backoff if it exits; :meth:`stop` terminates it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import IO

import httpx

log = logging.getLogger("parley.llm.server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalLLMServer:
    """One llama.cpp server process. Create, ``await start()``, use :attr:`base_url`, ``await stop()``."""

    def __init__(
        self,
        model_path: Path,
        *,
        alias: str = "parley-local",
        port: int = 0,
        threads: int = 0,
        n_ctx: int = 4096,
        log_path: Path | None = None,
        start_timeout_s: float = 180.0,
    ) -> None:
        self.model_path = model_path
        self.alias = alias
        self.port = port or free_port()
        self.threads = threads or max(1, os.cpu_count() or 1)
        self.n_ctx = n_ctx
        self.log_path = log_path
        self.start_timeout_s = start_timeout_s
        self.restarts = 0
        self.warm_ms: float | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    def _argv(self) -> list[str]:
        return [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.model_path),
            "--model_alias", self.alias,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--n_ctx", str(self.n_ctx),
            "--n_threads", str(self.threads),
            "--n_threads_batch", str(self.threads),
        ]  # fmt: skip

    async def _spawn(self) -> None:
        out: IO[bytes] | None = None
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            out = self.log_path.open("ab")
        env = dict(os.environ, HF_HUB_OFFLINE="1")
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self._argv(),
                stdout=out if out is not None else asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        finally:
            if out is not None:
                out.close()  # the child holds its own copy

    async def start(self) -> str:
        """Launch, wait until warm, start supervising. Raises RuntimeError if it never becomes ready."""
        self._stopping = False
        await self._spawn()
        await self._wait_ready()
        self._supervisor = asyncio.create_task(self._supervise())
        return self.base_url

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        async with httpx.AsyncClient(timeout=5.0) as client:
            while time.monotonic() < deadline:
                if self._proc is None or self._proc.returncode is not None:
                    code = None if self._proc is None else self._proc.returncode
                    raise RuntimeError(f"llama.cpp server exited with {code} while starting (log: {self.log_path})")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.base_url}/models")).status_code == 200:
                        break
                await asyncio.sleep(0.25)
            else:
                await self.stop()
                raise RuntimeError(f"llama.cpp server not ready after {self.start_timeout_s:.0f} s")
            t0 = time.perf_counter()
            body = {"model": self.alias, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
            r = await client.post(f"{self.base_url}/chat/completions", json=body, timeout=120.0)
            r.raise_for_status()
            self.warm_ms = round((time.perf_counter() - t0) * 1000, 1)

    async def _supervise(self) -> None:
        backoff = 1.0
        while not self._stopping:
            assert self._proc is not None
            code = await self._proc.wait()
            if self._stopping:
                return
            self.restarts += 1
            log.error("llama.cpp server exited with %s; restarting in %.0f s", code, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)
            try:
                await self._spawn()
                await self._wait_ready()
                backoff = 1.0
            except Exception:
                log.exception("llama.cpp server restart failed")

    async def stop(self) -> None:
        self._stopping = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(BaseException):
                await self._supervisor
            self._supervisor = None
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
