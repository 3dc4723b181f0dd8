"""Request guards in front of every route: the Host allow-list and the content type of state-changing requests.

- Host: a web page in an operator's browser can make its own domain resolve to 127.0.0.1 (DNS rebinding) and
  then talk to a loopback server as if it were same-origin. Answering only requests that name an allowed host
  (loopback names by default, `api.allowed_hosts`) defeats that.
- Content type: a form or a `text/plain` fetch from any web page is a "simple" cross-site request that the
  browser sends without asking the server first (no CORS preflight). Refusing POST/PUT/PATCH under /api unless
  they declare JSON (or YAML for the model document, or the gateway's own frame type) means such a request can
  no longer post readings or change the plant model (415).
- Content-Security-Policy on every answer: the dashboard loads scripts, styles and data only from this server
  and runs no inline script, so text that reached a page unescaped still cannot run; no framing (click-jacking),
  no MIME sniffing, no referrer sent to other sites.
- Size: a body above the limit of its route is refused (413) before the route reads anything, whether it says its
  length or streams it in chunks: the API's JSON routes take at most `max_body` (the larger of the ingest payload
  limit and 16 MiB), the dashboard's forms `MAX_FORM_BODY`. A large request cannot tie up the server's memory.
"""

from __future__ import annotations

import json

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
UNSAFE = {"POST", "PUT", "PATCH"}
JSON_TYPES = ("application/json",)
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml")
GATEWAY_TYPE = "application/vnd.plantguard.gateway-batches"
MAX_FORM_BODY = 64 * 1024  # a form of the dashboard: a few short fields
DEFAULT_MAX_BODY = 16 * 1024 * 1024
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"), (b"referrer-policy", b"no-referrer")]


def _host_name(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):  # [::1]:8000
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _allowed_types(path: str) -> tuple[str, ...]:
    if path.startswith("/api/gateway/"):
        return JSON_TYPES + (GATEWAY_TYPE,)
    if path == "/api/model":
        return JSON_TYPES + YAML_TYPES
    return JSON_TYPES


def _media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


class GuardMiddleware:
    def __init__(self, app, allowed_hosts: list[str] | tuple[str, ...] = LOOPBACK_HOSTS, max_body: int = DEFAULT_MAX_BODY) -> None:
        self.app = app
        self.max_body = max_body
        self.any_host = "*" in allowed_hosts
        self.hosts = {h.lower().strip("[]") for h in allowed_hosts}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        inner_send = send

        async def send(message) -> None:  # noqa: F811 - every answer carries the security headers
            if message["type"] == "http.response.start":
                have = {k.lower() for k, _ in message.get("headers", [])}
                message = {**message, "headers": list(message.get("headers", [])) + [h for h in SECURITY_HEADERS if h[0] not in have]}
            await inner_send(message)

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if not self.any_host:
            host = _host_name(headers.get("host", ""))
            if host not in self.hosts:
                await _refuse(send, 421, f"host {host!r} is not served here (api.allowed_hosts lists the names this "
                                         "server answers to; add it there if it is this server's own name)")
                return
        path = scope.get("path", "")
        if scope.get("method") in UNSAFE and path.startswith("/api/"):
            ctype = _media_type(headers.get("content-type", ""))
            allowed = _allowed_types(path)
            if not (ctype in allowed or (ctype.startswith("application/") and ctype.endswith("+json"))):
                shown = ctype or "none"
                await _refuse(send, 415, f"Content-Type {shown} is not accepted here; send {' or '.join(allowed)}")
                return
        if scope.get("method") in UNSAFE or "content-length" in headers or "transfer-encoding" in headers:
            limit = self.max_body if path.startswith("/api/") else MAX_FORM_BODY
            declared = headers.get("content-length")
            if declared is not None:
                if not declared.strip().isdigit():
                    await _refuse(send, 400, f"invalid Content-Length {declared[:40]!r}")
                    return
                if int(declared) > limit:
                    await _refuse(send, 413, f"a body of {int(declared)} bytes is above this route's limit of {limit} bytes")
                    return
            else:
                # streamed without a length: read it here, bounded, and hand the route what was read
                body, more = bytearray(), True
                while more:
                    msg = await receive()
                    if msg["type"] != "http.request":
                        return  # the client went away
                    body += msg.get("body", b"")
                    more = msg.get("more_body", False)
                    if len(body) > limit:
                        await _refuse(send, 413, f"the body is above this route's limit of {limit} bytes")
                        return
                sent = False

                async def replay():
                    nonlocal sent
                    if not sent:
                        sent = True
                        return {"type": "http.request", "body": bytes(body), "more_body": False}
                    return await receive()

                await self.app(scope, replay, send)
                return
        await self.app(scope, receive, send)


async def _refuse(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
