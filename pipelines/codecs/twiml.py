"""Twilio's webhook side, sans I/O: the ``<Connect><Stream>`` TwiML answer and ``X-Twilio-Signature``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit, urlunsplit


def connect_stream_twiml(stream_url: str, parameters: Mapping[str, str]) -> str:
    """``<Response><Connect><Stream url=...>`` with one ``<Parameter>`` per item (Twilio puts them in
    ``start.customParameters``; the Stream url itself must not carry a query string)."""
    response = ET.Element("Response")
    stream = ET.SubElement(ET.SubElement(response, "Connect"), "Stream", url=stream_url)
    for name, value in parameters.items():
        ET.SubElement(stream, "Parameter", name=name, value=value)
    return '<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(response, encoding="unicode")


def twilio_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]] = ()) -> str:
    """``X-Twilio-Signature``: base64 HMAC-SHA1, keyed by the auth token, of the full URL followed by
    each POST parameter's name and value, sorted by name (no separators)."""
    data = url + "".join(k + v for k, v in sorted(params))
    digest = hmac.new(auth_token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _port_variants(url: str) -> list[str]:
    """The URL with and without its default port: Twilio may sign either form."""
    parts = urlsplit(url)
    default = {"https": 443, "wss": 443, "http": 80, "ws": 80}.get(parts.scheme)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = f"{userinfo}@" if userinfo else ""
    if parts.port is None and default is not None:
        return [url, urlunsplit(parts._replace(netloc=f"{prefix}{host}:{default}"))]
    if parts.port is not None and parts.port == default:
        return [url, urlunsplit(parts._replace(netloc=f"{prefix}{host}"))]
    return [url]


def signature_valid(auth_token: str, signature: str, urls: Iterable[str], params: Iterable[tuple[str, str]] = ()) -> bool:
    """Whether ``signature`` signs any of ``urls`` (each also tried with/without its default port)."""
    if not auth_token or not signature:
        return False
    pairs = list(params)
    candidates = [variant for url in urls for variant in _port_variants(url)]
    return any(hmac.compare_digest(twilio_signature(auth_token, u, pairs), signature) for u in candidates)
