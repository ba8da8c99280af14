"""``headwater serve`` at its edges: a default port browsers open, a clear line when the port is
taken, a 422 naming a bad query parameter, and views applied while it runs."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from headwater.cli import serving as serving_cli
from headwater.server import DEFAULT_PORT
from tests.server import build_project
from tests.server import test_dashboard_browser as dashboard

ROOT = Path(__file__).resolve().parents[2]
browser = dashboard.browser  # headless Chromium (a module-scoped fixture)

# The Fetch standard's bad ports (https://fetch.spec.whatwg.org/#port-blocking), which Chromium,
# Firefox and Safari refuse to open (ERR_UNSAFE_PORT).
FETCH_BAD_PORTS = frozenset(
    {
        0, 1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95,
        101, 102, 103, 104, 109, 110, 111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161, 179,
        389, 427, 465, 512, 513, 514, 515, 526, 530, 531, 532, 540, 548, 554, 556, 563, 587, 601,
        636, 989, 990, 993, 995, 1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060, 5061, 6000,
        6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080,
    }
)  # fmt: skip
# Ports that tools a data engineer runs beside headwater listen on by default.
COMMON_PORTS = {3000, 4040, 5000, 5432, 5601, 6006, 6379, 8000, 8080, 8088, 8265, 8501, 8787,
                8888, 9000, 9090, 9092}  # fmt: skip


def test_default_port_is_one_browsers_open() -> None:
    assert DEFAULT_PORT not in FETCH_BAD_PORTS
    assert DEFAULT_PORT not in COMMON_PORTS
    assert serving_cli.DEFAULT_PORT == DEFAULT_PORT


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    with build_project(tmp_path) as store:
        root = store.config.root
    yield root


@contextmanager
def serving(project: Path, log: Path, *args: str, port: int = DEFAULT_PORT) -> Iterator[str]:
    """``headwater serve`` in a process of its own, as a user starts it."""
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "headwater", "serve", "--repo", str(project), *args],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while _port_free(port):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def server(project: Path, tmp_path: Path) -> Iterator[str]:
    """``headwater serve`` on its default port."""
    if not _port_free(DEFAULT_PORT):
        pytest.skip(f"something else listens on {DEFAULT_PORT}")
    with serving(project, tmp_path / "serve.log") as url:
        yield url


@pytest.mark.browser
def test_chromium_opens_the_default_port(server: str, browser: Any) -> None:
    page = browser.new_page()
    try:
        response = page.goto(server)  # ERR_UNSAFE_PORT raises here
        assert response is not None and response.status == 200
    finally:
        page.close()


def test_port_in_use_is_one_line(project: Path, server: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "headwater", "serve", "--repo", str(project)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: --port {DEFAULT_PORT}: 127.0.0.1:{DEFAULT_PORT} is already in use — fix: pick "
        "another with --port, or stop what listens there"
    ]


def test_a_bad_query_parameter_is_a_422_naming_it(project: Path) -> None:
    import warnings

    from headwater import FeatureStore
    from headwater.server import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from fastapi.testclient import TestClient

    with FeatureStore(project) as store:
        client = TestClient(create_app(store))
        response = client.get("/api/runs", params={"limit": "abc"})
        assert response.status_code == 422, response.text
        body = response.json()
        assert body["error"].startswith("invalid query parameter limit='abc': ")
        assert "integer" in body["error"]
        assert "/api/runs" in body["fix"]
        assert client.get("/api/runs", params={"limit": "0"}).status_code == 422
        assert client.get("/api/runs", params={"limit": "2"}).status_code == 200


NEW_VIEW = """

user_country = FeatureView("user_country", entity=user, source=orders,
                           features={"country_lower": "lower(country)"})
"""


def _post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_view_applied_while_serving_is_served(project: Path, tmp_path: Path) -> None:
    from headwater import FeatureStore

    port = _free_port()
    body = {"features": ["user_country:country_lower"], "entities": {"user_id": [1, 3]}}
    with serving(project, tmp_path / "serve.log", "--port", str(port), port=port) as url:
        status, answer = _post(url + "features/online", body)
        assert status == 400 and "user_country" in answer["error"]  # not defined yet
        definitions = next(project.glob("definitions.py"))
        definitions.write_text(definitions.read_text() + NEW_VIEW)
        with FeatureStore(project) as store:
            store.apply()
            store.run(["user_country"])
            store.materialize(["user_country"])
        deadline = time.monotonic() + 15
        while True:
            status, answer = _post(url + "features/online", body)
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        assert status == 200, answer
        assert answer["results"]["country_lower"] == ["fr", "us"], answer
