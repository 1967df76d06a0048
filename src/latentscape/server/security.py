"""Who may talk to the server: loopback by default, a bearer token for anything else, Host/Origin checks
against DNS rebinding and cross-site requests, and a bound on request bodies. Pure ASGI middleware."""

from __future__ import annotations

import hmac
import ipaddress
import json
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from latentscape.errors import LatentscapeError

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """A non-loopback bind needs a token (every request must then carry it)."""
    if not is_loopback(host) and not token:
        raise LatentscapeError(f"host '{host}' is not a loopback address, so the server needs a token: pass --token or set "
                               "LATENTSCAPE_TOKEN (every request must then send it).")


@dataclass
class Access:
    """What the middleware accepts: Host names (any port), the token (None: none needed), body bytes."""

    bind_host: str = "127.0.0.1"
    token: str | None = None
    max_body_bytes: int = 16 << 20
    extra_hosts: tuple[str, ...] = ()
    hosts: set[str] = field(init=False)

    def __post_init__(self) -> None:
        self.hosts = {h.lower() for h in (*LOOPBACK_NAMES, *self.extra_hosts)}
        if not is_loopback(self.bind_host) and self.bind_host not in ("0.0.0.0", "::"):
            self.hosts.add(self.bind_host.lower())


def _host_name(value: str) -> str:
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class SecurityMiddleware:
    """Refuses, with ``{"error": sentence}``: a Host not served here (DNS rebinding), an Origin of another
    site, a missing or wrong token (when one is set), and a body above the limit (before reading it all)."""

    def __init__(self, app, access: Access):
        self.app, self.access = app, access

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        problem = self._check(scope, headers)
        if problem is not None:
            return await _error(send, *problem)
        limit = self.access.max_body_bytes
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            return await _error(send, 413, f"the request body is larger than the server's {limit:,}-byte limit.")
        seen = 0

        async def bounded_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, bounded_receive, send)
        except _TooLarge:
            await _error(send, 413, f"the request body is larger than the server's {limit:,}-byte limit.")

    def _check(self, scope, headers) -> tuple[int, str] | None:
        host = _host_name(headers.get("host", ""))
        if host not in self.access.hosts:
            return 403, (f"Host '{headers.get('host', '')[:80]}' is not served here (a DNS-rebinding guard); use "
                         f"http://127.0.0.1 or the address the server was started with.")
        origin = headers.get("origin")
        if origin is not None:
            parts = urlsplit(origin)
            same = parts.scheme in ("http", "https") and (parts.hostname or "") in self.access.hosts and \
                _port(parts) == _port(urlsplit(f"http://{headers.get('host', '')}"))
            if not same:
                return 403, f"Origin '{origin[:80]}' is another site; cross-site requests are refused."
        if self.access.token and not _public_asset(scope):
            given = None
            auth = headers.get("authorization", "")
            if auth.lower().startswith("bearer "):
                given = auth[7:].strip()
            elif scope.get("method") in ("GET", "HEAD"):
                query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
                given = (query.get("token") or [None])[0]
            if given is None:
                return 401, "this server needs a token: send the header 'Authorization: Bearer TOKEN'."
            if not hmac.compare_digest(given.encode(), self.access.token.encode()):
                return 401, "the token is wrong."
        return None


def _public_asset(scope) -> bool:
    """The page's own shipped files (GET /static/...): the browser loads them from the page's <link>/<script>
    tags and module imports, which cannot carry a token; they hold no data. The page itself (GET /?token=T),
    the API, job files and previews still need the token."""
    return scope.get("method") in ("GET", "HEAD") and scope.get("path", "").startswith("/static/")


def _port(parts) -> int:
    try:
        port = parts.port
    except ValueError:
        return -1
    return port if port is not None else (443 if parts.scheme == "https" else 80)


class _TooLarge(Exception):
    pass


async def _error(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
