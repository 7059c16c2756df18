"""Headless Chromium helpers for pages other than the caller page.

Builds on the DevTools client, ``Page`` and ``chromium()`` launcher of ``tests/test_web_client.py``.
"""

from __future__ import annotations

import json
from typing import Any

from tests.test_web_client import CHROMIUM, DevTools, Page, chromium, open_page

__all__ = ["CHROMIUM", "DevTools", "Page", "chromium", "open_tab", "SOCKET_SPY", "deliver"]

# open_page() sets up a tab (target, session, domains, viewport) and waits for the caller page's
# window.parleyStats; this stub page satisfies that wait, and open_tab() then goes where it likes.
_STUB = "data:text/html,<script>window.parleyStats={}</script>"

# Keeps every WebSocket the page opens in window.__sockets, so a test can hand the page a message
# as if the server had sent it (deliver) or drop its connection (.close()).
SOCKET_SPY = """
(() => {
  const Native = window.WebSocket;
  window.__sockets = [];
  window.WebSocket = class extends Native {
    constructor(...args) { super(...args); window.__sockets.push(this); }
  };
})();
"""


async def open_tab(
    cdp: DevTools, url: str, ready: str, *, width: int = 1280, height: int = 900, init_script: str | None = None
) -> Page:
    """A new tab at ``url``, returned once the document has loaded and ``ready`` (JS) is truthy.

    ``init_script`` runs in the page before its own scripts (e.g. :data:`SOCKET_SPY`).
    """
    page = await open_page(cdp, _STUB)
    await cdp.send(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        page.session,
    )
    if init_script:
        await cdp.send("Page.addScriptToEvaluateOnNewDocument", {"source": init_script}, page.session)
    await cdp.send("Page.navigate", {"url": url}, page.session)
    await page.wait_for(f"document.readyState === 'complete' && !!({ready})", bool, 15, f"{url} to load")
    return page


async def deliver(page: Page, message: dict[str, Any], socket: int = -1) -> None:
    """Dispatch ``message`` (as JSON text) on the page's ``socket``-th WebSocket, as if received."""
    data = json.dumps(json.dumps(message))
    await page.eval(f"window.__sockets.at({socket}).dispatchEvent(new MessageEvent('message', {{data: {data}}}))")
