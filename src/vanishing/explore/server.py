"""The explore server: one page and a small JSON API, on the loopback address only.

Built on the standard library's :class:`http.server.ThreadingHTTPServer`: the page has
one user on this machine and six routes, so a framework would add dependencies and
moving parts without adding safety; every check a framework would leave to its
configuration is written out here, where a test can see it:

- it binds ``127.0.0.1`` (there is no option for another address), port 0 picks a free
  port;
- DNS rebinding: a request whose ``Host`` is not ``127.0.0.1:PORT`` or ``localhost:PORT``,
  or whose ``Origin`` (when sent) is not ``http://`` one of those, is refused (403);
- the page and its two assets come from a fixed in-package allowlist (:data:`ASSETS`):
  no path a request names is ever opened; anything else is 404;
- a POST body must be a JSON object of at most :data:`MAX_BODY` bytes (413 beyond, 411
  without a length, 415 for another content type); every field is checked and bounded
  by the panel that reads it (:mod:`vanishing.explore.params`);
- computations run one at a time on a worker thread; a request waits at most
  :data:`TIME_CAP` seconds for its answer (503 after that), and at most
  :data:`MAX_WAITING` requests wait at once (503 "busy" beyond);
- a library ``ValueError`` / ``TypeError`` is ``{"error": "<its one line>"}`` with 400;
  any other failure is 500 with its type and first line, and the server keeps serving.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path

from .._checks import positive_int
from .api import Api

__all__ = ["ASSETS", "HOST", "MAX_BODY", "MAX_WAITING", "TIME_CAP", "ExploreServer",
           "make_server"]

#: The only address the server binds.
HOST = "127.0.0.1"
#: URL path -> (file in ``vanishing/explore/static``, content type): all the server serves.
ASSETS = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/explore.js": ("explore.js", "text/javascript; charset=utf-8"),
    "/explore.css": ("explore.css", "text/css; charset=utf-8"),
}
#: Largest request body, bytes.
MAX_BODY = 16 * 1024
#: Seconds a request waits for its computation.
TIME_CAP = 10.0
#: Requests that may wait for the worker at once.
MAX_WAITING = 4
#: Seconds a connection may stay silent (a client that never sends its body).
SOCKET_TIMEOUT = 10.0
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; connect-src 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class RequestError(Exception):
    """A refused request: its HTTP status and the one-line reason."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class ExploreServer(ThreadingHTTPServer):
    """The server; :attr:`url` is where the page is. :meth:`close` stops it, cancels any
    training and frees the port."""

    daemon_threads = True

    def __init__(self, port: int, models: Path, train_steps: int) -> None:
        super().__init__((HOST, port), _Handler)
        self.port = self.server_address[1]
        self.hosts = {f"{HOST}:{self.port}", f"localhost:{self.port}"}
        self.origins = {f"http://{h}" for h in self.hosts}
        self.api = Api(models, train_steps)
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="explore-compute")
        self._waiting = threading.BoundedSemaphore(MAX_WAITING)
        self._serving = threading.Event()
        self._assets = {path: (resources.files(__package__).joinpath("static", name)
                               .read_bytes(), kind) for path, (name, kind) in ASSETS.items()}

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def compute(self, fn, *args):
        """``fn(*args)`` on the worker thread, waited for at most :data:`TIME_CAP` s."""
        if not self._waiting.acquire(blocking=False):
            raise RequestError(HTTPStatus.SERVICE_UNAVAILABLE,
                               "busy: too many requests are waiting; try again")
        try:
            future = self._worker.submit(fn, *args)
            try:
                return future.result(timeout=TIME_CAP)
            except FutureTimeout:
                future.cancel()
                raise RequestError(HTTPStatus.SERVICE_UNAVAILABLE,
                                   f"no answer within {TIME_CAP:g} s; try a shorter T or "
                                   f"fewer hidden units") from None
        finally:
            self._waiting.release()

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self._serving.set()
        try:
            super().serve_forever(poll_interval)
        finally:
            self._serving.clear()

    def close(self) -> None:
        """Stop serving (called from another thread than :meth:`serve_forever`'s, or after
        it returned), cancel training and wait for it, free the port."""
        self.api.job.cancel()
        if self._serving.is_set():
            self.shutdown()
        self.server_close()
        self.api.job.join(timeout=30)
        self._worker.shutdown(wait=False, cancel_futures=True)

    def asset(self, path: str) -> tuple[bytes, str] | None:
        return self._assets.get(path)


def make_server(port: int = 0, models: Path = Path("vanishing-out/models"),
                train_steps: int = 3000) -> ExploreServer:
    """A bound (not yet serving) server on ``127.0.0.1:port``; call ``serve_forever()``."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an integer from 0 to 65535, got {port!r}")
    return ExploreServer(port, Path(models), positive_int("train_steps", train_steps))


class _Handler(BaseHTTPRequestHandler):
    server: ExploreServer
    server_version = "vanishing-explore"
    sys_version = ""
    timeout = SOCKET_TIMEOUT

    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's name
        """Quiet: the terminal shows the URL and nothing per request."""

    def do_GET(self) -> None:
        self._answer(self._get)

    def do_POST(self) -> None:
        self._answer(self._post)

    def _other(self) -> None:
        self._answer(self._refuse_method)

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _other

    def _refuse_method(self):
        raise RequestError(HTTPStatus.METHOD_NOT_ALLOWED, f"method {self.command} is not "
                                                          f"allowed; the API takes GET and POST")

    def _answer(self, handle) -> None:
        try:
            self._check_origin()
            status, body, kind = handle()
        except RequestError as exc:
            status, body, kind = exc.status, _json({"error": str(exc)}), "application/json"
            self.close_connection = True
        except (ValueError, TypeError) as exc:
            status, body, kind = HTTPStatus.BAD_REQUEST, _json(_error(exc)), "application/json"
        except Exception as exc:  # a bug: say so, keep serving
            line = (str(exc).strip().splitlines() or [""])[0]
            status, kind = HTTPStatus.INTERNAL_SERVER_ERROR, "application/json"
            body = _json({"error": f"internal error: {type(exc).__name__}: {line}"})
        self._send(status, body, kind)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None
                   ) -> None:
        """The base class's own refusals (a malformed request line, a line too long, too
        many headers) as JSON too."""
        status = HTTPStatus(code)
        self.close_connection = True
        self._send(status, _json({"error": message or status.phrase}), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for key, value in _HEADERS.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _check_origin(self) -> None:
        """DNS rebinding: only the loopback names, with this port."""
        host = self.headers.get("Host")
        if host not in self.server.hosts:
            raise RequestError(HTTPStatus.FORBIDDEN, f"refused: Host {_short(host)} is not "
                                                     f"{HOST}:{self.server.port}")
        origin = self.headers.get("Origin")
        if origin is not None and origin not in self.server.origins:
            raise RequestError(HTTPStatus.FORBIDDEN, f"refused: Origin {_short(origin)} is not "
                                                     f"http://{HOST}:{self.server.port}")

    def _route(self) -> str:
        return self.path.split("?", 1)[0]

    def _get(self):
        route = self._route()
        asset = self.server.asset(route)
        if asset is not None:
            return HTTPStatus.OK, asset[0], asset[1]
        read = self.server.api.reads.get(route)
        if read is None:
            raise RequestError(HTTPStatus.NOT_FOUND, f"not found: {_short(route)}")
        return HTTPStatus.OK, _json(read()), "application/json"

    def _post(self):
        route = self._route()
        action = self.server.api.actions.get(route)
        if action is None:
            raise RequestError(HTTPStatus.NOT_FOUND, f"not found: POST {_short(route)}")
        fn, heavy = action
        body = self._body()
        result = self.server.compute(fn, body) if heavy else fn(body)
        return HTTPStatus.OK, _json(result), "application/json"

    def _body(self) -> dict:
        """The JSON object the request carries (checked before a byte of it is read)."""
        kind = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise RequestError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                               f"the body must be application/json, got {_short(kind)}")
        length = self.headers.get("Content-Length")
        if length is None or not (length.isascii() and length.isdigit()):
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "a POST needs a Content-Length")
        if int(length) > MAX_BODY:
            raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                               f"the body is {int(length):,} bytes, at most {MAX_BODY:,}")
        try:
            body = json.loads(self.rfile.read(int(length)) or b"{}")
        except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, nested too deep
            raise RequestError(HTTPStatus.BAD_REQUEST,
                               f"the body is not JSON ({type(exc).__name__})") from None
        if not isinstance(body, dict):
            raise RequestError(HTTPStatus.BAD_REQUEST, f"the body must be a JSON object, got "
                                                       f"{type(body).__name__}")
        return body


def _error(exc: Exception) -> dict:
    """``{"error": one line}`` (plus the unknown words, for the page to mark)."""
    out = {"error": " ".join(str(exc).split()) or type(exc).__name__}
    words = getattr(exc, "words", None)
    if isinstance(words, list):
        out["unknown"] = words
    return out


def _short(value: object, most: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= most else text[:most] + "...'"


def _json(data: object) -> bytes:
    """JSON without NaN or Infinity (which JSON does not have): they are refused here, so
    every panel must map them to null first."""
    return json.dumps(data, allow_nan=False, separators=(",", ":")).encode()
