"""Launch logic: the next free port when one is taken, loopback by default, remote hosts only when asked."""

from __future__ import annotations

import json
import socket
import urllib.request
from pathlib import Path

import pytest

from agentrm.errors import AgentrmError
from agentrm.viewer.server import BackgroundServer, bind, check_host, is_local, url_of

pytest.importorskip("fastapi")


def test_taken_port_moves_to_the_next_free_one() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        sock = bind("127.0.0.1", port)
        try:
            got = sock.getsockname()[1]
            assert got != port and port < got <= port + 50
            assert url_of(sock) == f"http://127.0.0.1:{got}/"
        finally:
            sock.close()


def test_no_free_port_is_an_error_naming_the_range() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        with pytest.raises(AgentrmError, match=f"no free port in {port}..{port}"):
            bind("127.0.0.1", port, tries=1)


def test_remote_hosts_need_an_explicit_flag() -> None:
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert is_local(host) and check_host(host, allow_remote=False) is None
    with pytest.raises(AgentrmError, match="--allow-remote"):
        check_host("0.0.0.0", allow_remote=False)
    warning = check_host("0.0.0.0", allow_remote=True)
    assert warning is not None and "no authentication" in warning


def test_background_server_serves_the_app(trace_dir: Path, cache_dir: Path) -> None:
    from agentrm.viewer.app import create_app

    app = create_app(trace_dir, cache_dir=cache_dir)
    with BackgroundServer(app) as url:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "api/info", timeout=10) as res:
            assert json.load(res)["runs"] == ["run_a", "run_b"]
        with urllib.request.urlopen(url, timeout=10) as res:
            assert b"agentrm viewer" in res.read()
