"""What every desk response carries, and how much any desk request may send.

Headers are set here once, for pages, downloads and static files alike, so no route can
forget them. A form body must declare its length (browsers always do), and no more than
the form needs: without this, an unauthenticated sign-in request could stream gigabytes
into a temporary file before the CSRF check ever ran.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

FORM_LIMIT = 64 * 1024
UPLOAD_LIMIT = 3 * 20 * 1024 * 1024 + 64 * 1024  # the verify page: three files of 20 MiB


class DeskGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        if scope["method"] not in ("GET", "HEAD"):
            refusal = _refusal(scope)
            if refusal is not None:
                status, text = refusal
                await _answer(send, status, text)
                return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _refusal(scope: Scope) -> tuple[int, str] | None:
    declared = dict(scope["headers"]).get(b"content-length", b"").decode("latin-1")
    if not declared.isdigit():
        return 411, "A form sent to the desk must declare its length (Content-Length)."
    limit = UPLOAD_LIMIT if scope["path"].rstrip("/").endswith("/verify") else FORM_LIMIT
    if int(declared) > limit:
        return 413, "What was sent is larger than this form accepts."
    return None


async def _answer(send: Send, status: int, text: str) -> None:
    body = f"<!doctype html><title>casetrail desk</title><p>{text}</p>".encode()
    headers = [
        (b"content-type", b"text/html; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *((name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
