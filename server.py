"""Composition root: builds the Starlette app, loads and warms models before the first call,
admits calls up to ``max_sessions``, and serves the REST API and the static pages.

Run it with ``python server.py`` (what ``make run`` does) or ``uvicorn server:app``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from agent.llm_policy import LLMPolicy
from agent.personas import Persona, load_personas
from agent.policy import IntentPolicy, Policy
from agent.prompt import build_messages
from agent.state import DialogueState
from agent.tools import ToolContext, ToolRegistry, default_registry, seed_orders
from models.hub import ModelHub
from models.llm import LLMConfig, OpenAIChatLLM
from models.llm_server import LocalLLMServer
from models.manifest import MANIFEST, resolve_llm
from pipelines import events as ev
from pipelines.codecs.wscall import SessionStart, event_to_json
from pipelines.errors import CapacityError, ProtocolViolation
from pipelines.monitor import Monitor
from pipelines.runner import CallSession
from pipelines.transports.monitor import serve_monitor
from pipelines.transports.twilio import twilio_routes
from pipelines.transports.voices import voice_routes
from pipelines.transports.webrtc import handle_offer
from pipelines.transports.websocket import CallConnection
from pipelines.tts import TTSStage, split_clauses
from pipelines.voices import UnknownVoice, load_voice
from settings import ROOT, Settings
from storage import Store

log = logging.getLogger("parley")


class Parley:
    """Process-wide state: settings, models, storage, live sessions."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.hub: ModelHub | None = None
        self.store: Store | None = None
        self.personas: dict[str, Persona] = load_personas(settings.data_dir / "personas.json")
        self.tts_cache: dict[tuple[str, int], np.ndarray] = {}
        self.sessions: dict[str, CallSession] = {}
        self.live = Monitor()
        self.ready = False
        self.started_at = time.time()
        self.warm_ms: dict[str, float] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self.tools: ToolRegistry = default_registry()
        self.llm: OpenAIChatLLM | None = None
        self.llm_server: LocalLLMServer | None = None
        self.llm_error: str | None = None

    def background(self, coro: Any) -> asyncio.Task[Any]:
        """Run a task owned by the app (cancelled at shutdown), e.g. a WebRTC call."""
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def startup(self) -> None:
        self.store = await Store.open(self.settings.db_url)
        orders = self.settings.data_dir / "orders.json"
        await seed_orders(self.store, orders if orders.exists() else None)
        # the LLM server loads its weights while the other models load and warm
        llm_ready = asyncio.create_task(self._start_llm_or_degrade())
        try:
            self.hub = await asyncio.to_thread(ModelHub.load, self.settings)
            self.warm_ms.update(await asyncio.to_thread(self.hub.warm))
        finally:
            await llm_ready
        # synthesise every persona's greeting once, at the common output rates
        for persona in self.personas.values():
            for rate in {8000, 16000, 24000, 48000}:
                stage = TTSStage(self.hub.tts, self.hub.aux_pool, rate, self.tts_cache)
                for clause in split_clauses(persona.greeting):
                    await stage.speak(clause, cache=True)
        self.ready = True
        log.info("Parley ready on %s (load %s ms, warm %s ms)", self.hub.device.kind, self.hub.load_ms, self.warm_ms)

    async def _start_llm_or_degrade(self) -> None:
        """A broken LLM set-up must not keep callers out: calls then get the template policy."""
        try:
            await self._start_llm()
        except Exception as exc:
            self.llm_error = f"{type(exc).__name__}: {exc}"
            log.error("LLM unavailable, answering from templates only: %s", self.llm_error)
            if self.llm_server is not None:
                await self.llm_server.stop()
                self.llm_server = None
            self.llm = None

    async def _start_llm(self) -> None:
        """Connect the LLM: the configured endpoint, or the bundled model on a supervised local server."""
        s = self.settings
        if s.policy != "llm":
            return
        base_url, model = s.llm_base_url, s.llm_model or "parley-local"
        if not base_url:
            path = await asyncio.to_thread(resolve_llm, s.llm_local_model, s.data_dir / "models")
            self.llm_server = LocalLLMServer(
                path, alias=model, threads=s.llm_threads, n_ctx=s.llm_ctx,
                log_path=s.data_dir / "llm-server.log", start_timeout_s=s.llm_start_timeout_s,
            )  # fmt: skip
            t0 = time.perf_counter()
            base_url = await self.llm_server.start()
            self.warm_ms["llm"] = round((time.perf_counter() - t0) * 1000, 1)
        self.llm = OpenAIChatLLM(
            LLMConfig(
                base_url=base_url, api_key=s.llm_api_key, model=model, timeout_s=s.llm_timeout_s,
                first_token_timeout_s=s.llm_first_token_timeout_s, retries=s.llm_retries,
                max_tokens=s.llm_max_tokens, temperature=s.llm_temperature,
            )
        )  # fmt: skip
        if self.llm_server is not None:  # the default persona's system prompt, evaluated before the first call
            persona = self.personas["default"]
            await self.llm.prime(build_messages(persona, DialogueState(), [], self.llm_tools), None)

    @property
    def llm_tools(self) -> bool:
        """Whether the LLM is offered tools: the bundled 1.5B model describes them instead of calling them."""
        return self.settings.llm_tools == "on" or (self.settings.llm_tools == "auto" and bool(self.settings.llm_base_url))

    @property
    def llm_shares_cpu(self) -> bool:
        """The bundled model on this machine's CPU: speculative LLM work then slows ASR and TTS (measured)."""
        return self.llm_server is not None and (self.hub is None or self.hub.device.kind == "cpu")

    def policy_for(self, persona: Persona) -> Any:
        """A factory building the call's policy once the session exists (tools need its id and events)."""
        hub, llm, s = self.hub, self.llm, self.settings
        assert hub is not None

        def build(session: CallSession) -> Policy:
            intents = IntentPolicy(persona, hub.embedder, offload=lambda fn: hub.aux_pool.run(1, fn))
            if llm is None or persona.policy == "intent":
                return intents
            return LLMPolicy(
                persona, llm, self.tools, intents,
                lambda state: ToolContext(session.id, self.store, state.slots, s.data_dir),
                session.agent_event,
                max_tool_rounds=s.llm_max_tool_rounds, retries=1, max_chars=s.reply_max_chars,
                offer_tools=self.llm_tools, prime_cache=self.llm_server is not None,
                fast_path_threshold=s.fast_path_threshold, ack_slow=s.llm_ack,
                preempt=s.switch("llm_preempt", not self.llm_shares_cpu),
                prime_partials=s.switch("llm_prime_partials", not self.llm_shares_cpu),
            )  # fmt: skip

        return build

    async def shutdown(self) -> None:
        for session in list(self.sessions.values()):
            session.end("server_shutdown")
        for _ in range(50):
            if not self.sessions:
                break
            await asyncio.sleep(0.1)
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self.store is not None:
            await self.store.close()
        if self.llm is not None:
            await self.llm.aclose()
        if self.llm_server is not None:
            await self.llm_server.stop()
        if self.hub is not None:
            self.hub.close()

    async def new_session(self, start: SessionStart, transport: str) -> CallSession:
        """Admit a call. Raises CapacityError when full, ProtocolViolation for an unknown persona or voice."""
        if not self.ready or self.hub is None:
            raise CapacityError("models are still loading; try again shortly")
        if len(self.sessions) >= self.settings.max_sessions:
            raise CapacityError(f"server is at its limit of {self.settings.max_sessions} calls")
        persona_name = start.persona or "default"
        if persona_name not in self.personas:
            raise ProtocolViolation("unknown_persona", f"unknown persona {persona_name!r}; known: {sorted(self.personas)}")
        try:
            converter = await load_voice(self, start.voice)
        except UnknownVoice as exc:
            raise ProtocolViolation("unknown_voice", f"unknown voice {start.voice!r}: {exc}") from None
        if len(self.sessions) >= self.settings.max_sessions:  # re-checked: loading a voice awaited
            raise CapacityError(f"server is at its limit of {self.settings.max_sessions} calls")
        session = CallSession(
            self.hub,
            self.settings,
            input_rate=start.audio.sample_rate,
            language=start.language,
            persona=self.personas[persona_name],
            policy_factory=self.policy_for(self.personas[persona_name]),
            store=self.store,
            transport=transport,
            tts_cache=self.tts_cache,
            metadata=start.metadata,
            voice=(start.voice, converter) if converter is not None and start.voice else None,
        )
        self.sessions[session.id] = session
        self.live.call_started(session.id, transport=transport, language=start.language, persona=persona_name)
        return session

    def release_session(self, session: CallSession) -> None:
        if self.sessions.pop(session.id, None) is not None:
            self.live.call_ended(session.id, session.end_reason)

    def monitor(self, session: CallSession, event: ev.OutboundEvent) -> None:
        """Every event a call emits passes here on its way out: supervisors see all but the audio."""
        if not isinstance(event, ev.AgentAudio | ev.SessionCreated | ev.SessionEnded):
            self.live.publish(session.id, event_to_json(event))


def build_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    parley = Parley(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await parley.startup()
        yield
        await parley.shutdown()

    async def ws_call(ws: WebSocket) -> None:
        await CallConnection(parley, ws).serve()

    async def ws_monitor(ws: WebSocket) -> None:
        await serve_monitor(parley.live, ws, settings.send_timeout_s)

    async def webrtc_offer(request: Request) -> Response:
        return await handle_offer(parley, request)

    async def health(request: Request) -> Response:
        hub = parley.hub
        body: dict[str, Any] = {
            "status": "ok" if parley.ready else "loading",
            "device": hub.device.kind if hub else None,
            "sessions": len(parley.sessions),
            "max_sessions": settings.max_sessions,
            "asr_queue": hub.asr_pool.queued() if hub else None,
            "emotion": settings.emotion,
            "load_ms": hub.load_ms if hub else None,
            "warm_ms": parley.warm_ms,
            "policy": settings.policy if parley.llm is not None or settings.policy == "intent" else "intent (LLM unavailable)",
            "llm_error": parley.llm_error,
            "llm": None
            if parley.llm is None
            else {
                "model": parley.llm.model,
                "local": parley.llm_server is not None,
                "restarts": parley.llm_server.restarts if parley.llm_server else 0,
                "tools": parley.llm_tools,
            },
        }
        return JSONResponse(body, status_code=200 if parley.ready else 503)

    async def models(request: Request) -> Response:
        return JSONResponse(
            [{"name": m.name, "capability": m.capability, "package": m.package, "licence": m.licence} for m in MANIFEST]
        )

    async def supervisor(request: Request) -> Response:
        return FileResponse(ROOT / "web_client" / "supervisor.html")

    async def personas(request: Request) -> Response:
        return JSONResponse(
            [
                {
                    "name": p.name,
                    "agent_name": p.agent_name,
                    "language": p.language,
                    "greeting": p.greeting,
                    "policy": p.policy,
                    "tools": p.tools,
                }
                for p in parley.personas.values()
            ]
        )

    async def list_calls(request: Request) -> Response:
        assert parley.store is not None
        try:
            limit = min(200, max(1, int(request.query_params.get("limit", "50"))))
            offset = max(0, int(request.query_params.get("offset", "0")))
        except ValueError:
            return JSONResponse({"error": "limit and offset must be integers"}, status_code=400)
        return JSONResponse({"calls": await parley.store.list_calls(limit, offset), "limit": limit, "offset": offset})

    async def get_call(request: Request) -> Response:
        assert parley.store is not None
        call = await parley.store.get_call(request.path_params["call_id"])
        if call is None:
            return JSONResponse({"error": "no such call"}, status_code=404)
        call["live"] = call["id"] in parley.sessions
        return JSONResponse(call)

    routes = [
        WebSocketRoute("/ws/call", ws_call),
        WebSocketRoute("/ws/monitor", ws_monitor),
        Route("/webrtc/offer", webrtc_offer, methods=["POST"]),
        *twilio_routes(parley),
        Route("/health", health),
        Route("/supervisor", supervisor),
        Route("/api/models", models),
        Route("/api/personas", personas),
        Route("/api/calls", list_calls),
        Route("/api/calls/{call_id}", get_call),
        *voice_routes(parley),
        Mount("/", StaticFiles(directory=str(ROOT / "web_client"), html=True), name="web"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.parley = parley
    return app


def main() -> None:
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    uvicorn.run(
        build_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        ws="websockets-sansio",
        ws_max_size=max(settings.max_frame_bytes, settings.max_text_bytes) * 2,
        log_level="info",
    )


if __name__ == "__main__":
    main()
