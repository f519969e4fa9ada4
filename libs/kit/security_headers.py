"""Browser-facing hardening headers, added in one place for every service.

Every response gets ``X-Content-Type-Options: nosniff`` (a JSON body must never be sniffed into HTML).
HTML responses also get a Content-Security-Policy that allows only same-origin scripts, styles and
connections and no framing, ``Referrer-Policy: no-referrer`` and ``X-Frame-Options: DENY``. A response
that already sets one of these keeps its own value (the evaluation service's report sets a stricter CSP).

Pure ASGI rather than ``BaseHTTPMiddleware``, so streamed bodies (SSE, artifact downloads) pass untouched.
"""
from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# No inline script anywhere: the dashboard and /docs load every script as a same-origin file.
# data: images are for the SVG icons swagger-ui's stylesheet embeds.
HTML_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
ALWAYS = ((b"x-content-type-options", b"nosniff"),)
FOR_HTML = (
    (b"content-security-policy", HTML_CSP.encode()),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)


def _is_html(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name.lower() == b"content-type":
            return value.split(b";", 1)[0].strip().lower() in (b"text/html", b"application/xhtml+xml")
    return False


def with_security_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` plus the hardening headers they lack (names compared case-insensitively)."""
    present = {name.lower() for name, _ in headers}
    wanted = ALWAYS + (FOR_HTML if _is_html(headers) else ())
    return list(headers) + [(name, value) for name, value in wanted if name not in present]


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": with_security_headers(list(message.get("headers", [])))}
            await send(message)

        await self.app(scope, receive, send_with_headers)
