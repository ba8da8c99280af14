"""The HTTP server of ``headwater serve``: online features, metrics, run history, a dashboard.

=========================== ===================================================== ============
``GET /health``             liveness: project name and number of views             public
``POST /features/online``   latest feature values for entities                      token
``GET /metrics``            Prometheus text: requests, latency, per-view gauges     token
``GET /api/views``          feature views with freshness and last run (dashboard)   token
``GET /api/runs``           run history, newest first (``?view=&kind=&limit=``)     token
``GET /``, ``/static/...``  the dashboard page; it holds no data and asks for the   public
                            token, which it sends with every API call
=========================== ===================================================== ============

Errors are JSON ``{"error": message, "fix": fix}``: a bad request (unknown view or feature,
missing join key, malformed body) is a 400 (404 for something not applied), never a 500 with a
traceback. FastAPI and uvicorn are imported inside functions so that importing headwater stays
fast. The interactive API docs are off: they load JavaScript from a CDN.
"""

import secrets
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import TYPE_CHECKING, Annotated, Any

from headwater.errors import (
    ConfigError,
    ConnectionFailed,
    DefinitionError,
    HeadwaterError,
    InvalidEntityKey,
    NotFound,
)
from headwater.observability import get_logger
from headwater.server.metrics import CONTENT_TYPE, ServerMetrics
from headwater.server.payloads import OnlineRequest, online_payload, run_payload, view_payload
from headwater.server.state import DEFAULT_STATUS_TTL, ServerState

if TYPE_CHECKING:
    import socket

    from fastapi import APIRouter, FastAPI, Request

    from headwater.feature_store import FeatureStore

_log = get_logger("headwater.server")

DEFAULT_PORT = 8566
"""The port ``headwater serve`` listens on by default. Browsers refuse the ports of the Fetch
standard's bad-port list (6566, the port of other feature servers, is one: ERR_UNSAFE_PORT);
8566 is not on it, nor a port that common data tools (Jupyter 8888, Airflow and Spark 8080,
Streamlit 8501, Dask 8787, Prometheus 9090, Grafana 3000, TensorBoard 6006) listen on."""

STATIC_FILES = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
"""Files under ``static/`` the server hands out (an allow-list: no path is read from a URL)."""

_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def create_app(
    store: "FeatureStore", *, token: str | None = None, status_ttl: float = DEFAULT_STATUS_TTL
) -> "FastAPI":
    """Build the ASGI application serving ``store``.

    Args:
        store: the feature store to serve; the app serialises its calls into it.
        token: when set, every endpoint except ``/health`` and the dashboard's static page
            requires the header ``Authorization: Bearer <token>``.
        status_ttl: seconds the views' status (an offline-store scan) is reused between
            ``/metrics`` scrapes and dashboard refreshes.

    Returns:
        A FastAPI application; run it with :func:`serve` or any ASGI server.

    Raises:
        ConfigError: ``token`` is empty (which would lock every client out).
    """
    from fastapi import APIRouter, Depends, FastAPI

    import headwater

    if token is not None and not token.strip():
        raise ConfigError(
            "the server's bearer token is empty",
            fix="pass a non-empty token, or none to serve without authentication",
        )

    state = ServerState(store, status_ttl=status_ttl)
    metrics = ServerMetrics(state)
    app = FastAPI(
        title="headwater",
        version=headwater.__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.headwater = state
    app.state.metrics = metrics
    _add_error_handlers(app, metrics)
    _add_request_metrics(app, metrics)
    _add_public_routes(app, state)
    api = APIRouter(dependencies=[Depends(_bearer_check(token))])
    _add_api_routes(api, state, metrics)
    app.include_router(api)
    return app


def serve(
    store: "FeatureStore",
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    token: str | None = None,
    *,
    log_level: str = "info",
) -> None:
    """Serve ``store`` over HTTP until interrupted (the ``headwater serve`` command).

    Args:
        store: the feature store to serve.
        host: interface to listen on (``0.0.0.0`` for every interface).
        port: TCP port.
        token: optional bearer token required by every endpoint but ``/health`` and the
            dashboard's static page.
        log_level: uvicorn's log level.

    Raises:
        ConfigError: the port is out of range, in use, or the host cannot be bound.
    """
    import uvicorn

    sock = listening_socket(host, port)
    config = uvicorn.Config(
        create_app(store, token=token),
        host=host,
        port=port,
        log_level=log_level,
        ws="none",
        lifespan="off",
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()


def listening_socket(host: str, port: int) -> "socket.socket":
    """A socket bound to ``host:port``, or a one-line error naming ``--port``/``--host``."""
    import errno
    import socket

    if not 0 < port < 65536:
        raise ConfigError(
            f"--port {port}: not a TCP port", fix=f"pick one in 1-65535, e.g. {DEFAULT_PORT}"
        )
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ConfigError(
            f"--host {host}: {exc.strerror}", fix="pass an address such as 127.0.0.1"
        ) from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"--port {port}: {host}:{port} is already in use",
                fix="pick another with --port, or stop what listens there",
            ) from None
        raise ConfigError(
            f"--host {host} --port {port}: cannot listen: {exc.strerror}",
            fix="pick another --host or --port",
        ) from None
    sock.set_inheritable(True)
    return sock


# ---------------------------------------------------------------------- helpers
class Unauthorized(HeadwaterError):
    """The request lacks the server's bearer token, or carries another one."""


def _status_code(error: HeadwaterError) -> int:
    if isinstance(error, Unauthorized):
        return 401
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, InvalidEntityKey):
        return 422
    if isinstance(error, DefinitionError):
        return 400
    if isinstance(error, ConnectionFailed):
        return 503
    return 500


def _endpoint(request: "Request") -> str:
    """The route template that served ``request`` (bounded label values for metrics)."""
    path = getattr(request.scope.get("route"), "path", None)
    return path if isinstance(path, str) else "unmatched"


def _bearer_check(token: str | None) -> Callable[..., None]:
    from fastapi import Header

    expected = None if token is None else f"Bearer {token}".encode()

    def check(authorization: Annotated[str | None, Header()] = None) -> None:
        if expected is None:
            return
        given = (authorization or "").strip().encode()
        if not secrets.compare_digest(given, expected):
            raise Unauthorized(
                "missing or wrong bearer token" if authorization else "missing bearer token",
                fix="send the header 'Authorization: Bearer <token>' with the server's token",
            )

    return check


def _add_error_handlers(app: "FastAPI", metrics: ServerMetrics) -> None:
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    def reply(request: Request, status: int, kind: str, body: dict[str, Any]) -> JSONResponse:
        metrics.errors.labels(_endpoint(request), kind).inc()
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse(body, status_code=status, headers=headers)

    async def on_headwater(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HeadwaterError)
        body = {"error": exc.message, "fix": exc.fix}
        return reply(request, _status_code(exc), type(exc).__name__, body)

    async def on_invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        if all(err["loc"][:1] == ("query",) for err in exc.errors()):
            # A bad query parameter (``/api/runs?limit=abc``): 422, naming the parameter.
            wrong = [
                f"{'.'.join(str(p) for p in err['loc'][1:])}={err.get('input')!r}: {err['msg']}"
                for err in exc.errors()
            ]
            body = {
                "error": "invalid query parameter " + "; ".join(wrong),
                "fix": f"correct it (the parameters of {request.url.path} are in docs/serving.md)",
            }
            return reply(request, 422, "RequestValidationError", body)
        problems = [f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()]
        body = {
            "error": "invalid request: " + "; ".join(problems),
            "fix": 'send e.g. {"features": ["view:feature"], "entities": {"user_id": [1]}}',
        }
        return reply(request, 400, "RequestValidationError", body)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        body = {"error": str(exc.detail), "fix": None}
        return reply(request, exc.status_code, f"http_{exc.status_code}", body)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        _log.error("unexpected error serving %s", request.url.path, exc_info=exc)
        body = {"error": "internal server error", "fix": "see the server's log"}
        return reply(request, 500, type(exc).__name__, body)

    app.add_exception_handler(HeadwaterError, on_headwater)
    app.add_exception_handler(RequestValidationError, on_invalid)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)


def _add_request_metrics(app: "FastAPI", metrics: ServerMetrics) -> None:
    from fastapi import Request, Response

    @app.middleware("http")
    async def measure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            seconds = time.perf_counter() - started
            metrics.observe(request.method, _endpoint(request), status, seconds)


def _static(name: str) -> bytes:
    return resources.files("headwater.server").joinpath("static", name).read_bytes()


def _add_public_routes(app: "FastAPI", state: ServerState) -> None:
    from fastapi import HTTPException, Response
    from fastapi.responses import HTMLResponse

    page = _static("index.html")
    assets = {name: _static(name) for name in STATIC_FILES}

    @app.get("/health")
    def health() -> dict[str, Any]:
        """Liveness; public even when a token is set."""
        return {"status": "ok", "project": state.project, "views": len(state.views())}

    @app.get("/", response_class=HTMLResponse)
    def dashboard() -> HTMLResponse:
        """The dashboard page (static; its data comes from ``/api/*``)."""
        return HTMLResponse(page, headers=_PAGE_HEADERS)

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        """The dashboard's script and stylesheet."""
        if name not in assets:
            raise HTTPException(404, f"no static file {name!r}")
        headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
        return Response(assets[name], media_type=STATIC_FILES[name], headers=headers)


def _add_api_routes(api: "APIRouter", state: ServerState, metrics: ServerMetrics) -> None:
    from datetime import UTC, datetime

    from fastapi import Query, Response
    from fastapi.responses import JSONResponse

    @api.post("/features/online")
    def online_features(body: OnlineRequest) -> JSONResponse:
        """Latest feature values of each entity (null past the view's ttl)."""
        rows = body.rows()
        result = state.online(body.features, rows, full_feature_names=body.full_feature_names)
        metrics.entity_rows.inc(len(rows))
        for view, count in result.served.items():
            metrics.features_served.labels(view).inc(count)
        return JSONResponse(online_payload(result.table))

    @api.get("/metrics")
    def prometheus() -> Response:
        """Prometheus text exposition of the server's own registry."""
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @api.get("/api/views")
    def views() -> JSONResponse:
        """Feature views with shape, source, offline rows, freshness and last run."""
        definitions = state.views()
        now = datetime.now(UTC)
        items = [
            view_payload(s, definitions.get(s.name), state.schema_types(s.name), now)
            for s in state.status()
        ]
        return JSONResponse(
            {"project": state.project, "generated_at": now.isoformat(), "views": items}
        )

    @api.get("/api/runs")
    def runs(
        view: Annotated[str | None, Query()] = None,
        kind: Annotated[str | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 20,
    ) -> JSONResponse:
        """Run history, newest first, optionally of one view and/or kind."""
        records = state.runs(view or None, kind or None, limit)
        return JSONResponse({"runs": [run_payload(r) for r in records]})
