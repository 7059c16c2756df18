"""REST endpoints for cloned voices and text-to-speech (Starlette). Add them with ``*voice_routes(parley)``.

``POST /api/voices`` (multipart: ``file``, ``name``, optional ``transcript``, ``staff_code``),
``GET /api/voices?limit=&offset=``, ``GET /api/voices/{id}``, ``GET /api/voices/{id}/sample``,
``DELETE /api/voices/{id}``, ``POST /api/tts`` (JSON ``{"text", "voice"?}`` -> audio/wav) and
``GET /openapi.json``. Errors are JSON ``{"error": code, "message": what to do}``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, Field, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from pipelines.transports.voices_openapi import openapi_schema
from pipelines.voice_reference import ReferenceRejected
from pipelines.voices import ParleyLike, UnknownVoice, VoiceLibrary, VoiceLimitReached, library

_FORM_OVERHEAD = 64 * 1024  # multipart boundaries and the small fields, on top of the file


class TTSRequest(BaseModel):
    """Body of ``POST /api/tts``."""

    text: str = Field(min_length=1)
    voice: str | None = None


def error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": code, "message": message, **extra}, status_code=status)


def voice_routes(parley: ParleyLike) -> list[BaseRoute]:
    """The voice and TTS routes, bound to the server's state."""

    def with_library(fn: Callable[[Request, VoiceLibrary], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                lib = library(parley)
            except RuntimeError:
                return error(503, "loading", "models are still loading; try again shortly")
            return await fn(request, lib)

        endpoint.__doc__ = fn.__doc__
        return endpoint

    async def create_voice(request: Request, lib: VoiceLibrary) -> Response:
        """Create a voice from a 5-10 s recording (multipart form)."""
        limit = lib.settings.limits.max_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit + _FORM_OVERHEAD:
            return error(413, "file_too_large", f"The upload is {int(declared) / 1e6:.1f} MB; the limit is {limit / 1e6:.0f} MB.")
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            return error(400, "invalid_form", "Send multipart/form-data with a 'file' and a 'name'.")
        try:
            form = await request.form(max_files=1, max_fields=8, max_part_size=_FORM_OVERHEAD)
        except HTTPException as exc:
            return error(400, "invalid_form", f"Could not read the form: {exc.detail}")
        try:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                return error(400, "missing_file", "Attach the recording as the 'file' field.")
            data = await upload.read(limit + 1)
            if len(data) > limit:
                return error(
                    413, "file_too_large", f"The file is over the {limit / 1e6:.0f} MB limit; 5-10 s of speech is plenty."
                )
            fields = {k: form.get(k) for k in ("name", "transcript", "staff_code")}
            text = {k: v if isinstance(v, str) else None for k, v in fields.items()}
            voice = await lib.create(data, upload.filename or "", text["name"] or "", text["transcript"], text["staff_code"])
        except ReferenceRejected as exc:
            return error(exc.status, exc.code, exc.message, checks=exc.checks)
        except VoiceLimitReached as exc:
            return error(409, exc.code, str(exc))
        except TimeoutError:
            return error(503, "busy", "Fitting the voice took too long; try again when the server is less busy.")
        finally:
            await form.close()
        return JSONResponse(voice, status_code=201, headers={"Location": f"/api/voices/{voice['id']}"})

    async def list_voices(request: Request, lib: VoiceLibrary) -> Response:
        """Stored voices, newest first (``limit`` 1-200, ``offset``)."""
        try:
            limit = min(200, max(1, int(request.query_params.get("limit", "50"))))
            offset = max(0, int(request.query_params.get("offset", "0")))
        except ValueError:
            return error(400, "invalid_query", "limit and offset must be integers")
        voices = await lib.store.list_voices(limit, offset)
        return JSONResponse({"voices": voices, "limit": limit, "offset": offset, "total": await lib.store.count_voices()})

    async def get_voice(request: Request, lib: VoiceLibrary) -> Response:
        """One voice: checks, fitted parameters, similarity of its preview to the reference (and the stock voice's)."""
        voice = await lib.get(request.path_params["voice_id"])
        if voice is None:
            return error(404, "unknown_voice", "No voice has this id.")
        return JSONResponse(voice)

    async def voice_sample(request: Request, lib: VoiceLibrary) -> Response:
        """The preview sentence in the cloned voice (audio/wav)."""
        try:
            wav = await lib.sample(request.path_params["voice_id"])
        except UnknownVoice:
            return error(404, "unknown_voice", "No voice has this id.")
        return Response(wav, media_type="audio/wav")

    async def delete_voice(request: Request, lib: VoiceLibrary) -> Response:
        """Delete a voice and its files."""
        if not await lib.delete(request.path_params["voice_id"]):
            return error(404, "unknown_voice", "No voice has this id.")
        return Response(status_code=204)

    async def tts(request: Request, lib: VoiceLibrary) -> Response:
        """Speak ``text`` in ``voice`` (a voice id; omitted or "default": the stock voice) as audio/wav."""
        try:
            body = TTSRequest.model_validate_json(await request.body())
        except ValidationError as exc:
            first = exc.errors()[0]
            return error(400, "invalid_request", f"{'.'.join(str(p) for p in first['loc']) or 'body'}: {first['msg']}")
        if len(body.text) > lib.settings.max_text_chars:
            return error(413, "text_too_long", f"text is limited to {lib.settings.max_text_chars} characters")
        voice = None if body.voice in (None, "", "default") else body.voice
        try:
            wav = await lib.speak(body.text, voice)
        except UnknownVoice:
            return error(
                404, "unknown_voice", f"Unknown voice {body.voice!r}: list voices with GET /api/voices, or omit 'voice'."
            )
        return Response(wav, media_type="audio/wav")

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_schema())

    return [
        Route("/api/voices", with_library(create_voice), methods=["POST"]),
        Route("/api/voices", with_library(list_voices), methods=["GET"]),
        Route("/api/voices/{voice_id}", with_library(get_voice), methods=["GET"]),
        Route("/api/voices/{voice_id}", with_library(delete_voice), methods=["DELETE"]),
        Route("/api/voices/{voice_id}/sample", with_library(voice_sample), methods=["GET"]),
        Route("/api/tts", with_library(tts), methods=["POST"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]
