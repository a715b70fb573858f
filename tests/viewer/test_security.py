"""What the viewer refuses to serve: paths out of the trace folder or the static folder (`..`, absolute paths,
symlinks out, URL-encoded variants, sent raw to a real server too), and requests for a foreign Host."""

from __future__ import annotations

import http.client
import os
import warnings
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from agentrm.viewer.app import create_app  # noqa: E402
from agentrm.viewer.server import LOCAL_NAMES, BackgroundServer  # noqa: E402

SECRET = "TOP-SECRET-CONTENT"
ESCAPES = [
    "/files/../secret.txt",
    "/files/%2e%2e/secret.txt",
    "/files/%2E%2E%2Fsecret.txt",
    "/files/..%2fsecret.txt",
    "/files/..%5csecret.txt",
    "/files/sub/../../secret.txt",
    "/files//{secret}",
    "/files/%2F{secret_enc}",
    "/files/link-out.txt",
    "/files/dir-out/secret.txt",
    "/files/%252e%252e/secret.txt",
    "/files/run_a.jsonl%00.txt",
    "/static/../../viewer/app.py",
    "/static/%2e%2e/app.py",
    "/static/..%2fapp.py",
    "/static//etc/passwd",
]


@pytest.fixture
def setup(trace_dir: Path, cache_dir: Path) -> tuple[TestClient, Path]:
    secret = trace_dir.parent / "secret.txt"  # next to the trace folder, not in it
    secret.write_text(SECRET)
    os.symlink(secret, trace_dir / "link-out.txt")
    os.symlink(trace_dir.parent, trace_dir / "dir-out")
    os.symlink(trace_dir / "run_a.jsonl", trace_dir / "link-in.jsonl")
    return TestClient(create_app(trace_dir, cache_dir=cache_dir)), secret


def expand(path: str, secret: Path) -> str:
    return path.format(secret=str(secret).lstrip("/"), secret_enc=str(secret).lstrip("/").replace("/", "%2F"))


def test_files_under_the_trace_folder_are_served(setup: tuple[TestClient, Path]) -> None:
    client, _ = setup
    res = client.get("/files/run_a.jsonl")
    assert res.status_code == 200 and res.text.startswith('{"schema_version"')
    assert client.get("/files/link-in.jsonl").status_code == 200  # a symlink that stays inside is fine
    assert client.get("/files/missing.jsonl").status_code == 404


@pytest.mark.parametrize("path", ESCAPES)
def test_escapes_are_refused(setup: tuple[TestClient, Path], path: str) -> None:
    client, secret = setup
    res = client.get(expand(path, secret))
    assert res.status_code in (403, 404), path
    assert SECRET not in res.text and "def create_app" not in res.text


def test_escapes_sent_raw_to_a_real_server(setup: tuple[TestClient, Path]) -> None:
    """http clients normalise `..` away before sending; a hostile one does not: send the bytes as they are."""
    client, secret = setup
    with BackgroundServer(client.app) as url:
        host, port = url.split("//")[1].rstrip("/").split(":")
        for path in [*ESCAPES, "/files/../../../../etc/passwd", "/static/../app.py"]:
            conn = http.client.HTTPConnection(host, int(port), timeout=10)
            conn.putrequest("GET", expand(path, secret), skip_host=True)
            conn.putheader("Host", f"{host}:{port}")
            conn.endheaders()
            res = conn.getresponse()
            body = res.read().decode("utf-8", "replace")
            conn.close()
            assert res.status in (400, 403, 404), (path, res.status)
            assert SECRET not in body and "root:" not in body and "def create_app" not in body


def test_foreign_host_header_is_refused(trace_dir: Path, cache_dir: Path) -> None:
    app = create_app(trace_dir, cache_dir=cache_dir, allowed_hosts=LOCAL_NAMES)
    for base in ("http://127.0.0.1:8765", "http://localhost:8765", "http://[::1]:8765"):
        assert TestClient(app, base_url=base).get("/api/info").status_code == 200, base
    evil = TestClient(app, base_url="http://attacker.example:8765").get("/api/info")
    assert evil.status_code == 400 and "not allowed" in evil.json()["detail"]
