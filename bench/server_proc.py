"""Run ``python server.py`` as a real subprocess on a free loopback port (tests and benchmarks)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``python server.py`` in a subprocess; ``url`` is its base address."""

    def __init__(self, data_dir: Path, **env: str) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.log_path = data_dir / "server.log"
        full_env = {
            **os.environ,
            "PARLEY_PORT": str(self.port),
            "PARLEY_DATA_DIR": str(data_dir),
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        # the bundled base model is assembled once into the repo's var/ by `make install`; reuse it
        shared = ROOT / "var" / "models" / "whisper-base"
        if "PARLEY_ASR_MODEL_MULTILINGUAL" not in env and (shared / "model.bin").exists():
            full_env["PARLEY_ASR_MODEL_MULTILINGUAL"] = str(shared)
        qwen = ROOT / "var" / "models" / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
        if full_env.get("PARLEY_LLM_LOCAL_MODEL", "qwen2.5-1.5b") == "qwen2.5-1.5b" and qwen.exists():
            full_env["PARLEY_LLM_LOCAL_MODEL"] = str(qwen)  # not a 1.1 GB copy per test server
        data_dir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "server.py")], cwd=ROOT, env=full_env, stdout=self._log, stderr=subprocess.STDOUT
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws = f"ws://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 240.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"server not ready: {self.log_path.read_text()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()

    def pid(self) -> int:
        return int(self.proc.pid)
