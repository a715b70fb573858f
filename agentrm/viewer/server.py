"""Launching the viewer: bind a port (the next free one if it is taken), announce the URL, serve with uvicorn.

The socket is bound here and handed to uvicorn, so the port that is announced is the port that is served (no
window between "this port is free" and "uvicorn binds it" for another process to take it). A non-loopback host
needs `allow_remote=True`: traces can hold prompts and paths that should not leave the machine. When bound to
loopback the app also checks the Host header (DNS-rebinding protection, see agentrm.viewer.app).

`BackgroundServer` runs the same thing on a thread for the browser tests and the benchmark.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
import threading
import time
import webbrowser
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentrm.errors import AgentrmError

log = logging.getLogger(__name__)

LOCAL_NAMES = ["127.0.0.1", "localhost", "::1"]
PORT_TRIES = 50


def is_local(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int, tries: int = PORT_TRIES) -> socket.socket:
    """A listening socket on host:port, or on the next free port after it (port 0 = any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    last = port + tries - 1 if port else 0
    for p in range(port, last + 1):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host.strip("[]"), p))
            sock.listen(128)
            if p != port:
                log.info("port %d is taken; using %d", port, p)
            return sock
        except OSError as exc:
            sock.close()
            if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                raise AgentrmError(f"cannot listen on {host}:{p}: {exc} (check --host)") from exc
    raise AgentrmError(f"no free port in {port}..{last} on {host}; pass another --port")


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def check_host(host: str, allow_remote: bool) -> str | None:
    """Raise unless a non-local host was explicitly allowed; returns the warning to show when it was."""
    if is_local(host):
        return None
    if not allow_remote:
        raise AgentrmError(
            f"--host {host} would expose traces (prompts, model outputs, video paths) beyond this machine; "
            "pass --allow-remote as well if that is intended, or keep the default --host 127.0.0.1"
        )
    return (
        f"serving on {host}: anyone who can reach this machine can read these traces and the frames of the "
        "videos they reference (there is no authentication)"
    )


def _uvicorn(app: Any) -> Any:
    import uvicorn

    return uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))


def serve(
    source: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    open_browser: bool = True,
    allow_remote: bool = False,
    cache_dir: str | Path | None = None,
    announce: Callable[[str], None] = log.info,
) -> int:
    """Index `source`, then serve the viewer until interrupted. `announce` shows lines to the user."""
    from agentrm.viewer.app import create_app

    warning = check_host(host, allow_remote)
    if warning:
        announce(f"WARNING: {warning}")
    t0 = time.perf_counter()
    app = create_app(source, cache_dir=cache_dir, allowed_hosts=LOCAL_NAMES if is_local(host) else None)
    index = app.state.index
    announce(f"indexed {len(index.runs())} run(s) under {index.root} in {time.perf_counter() - t0:.1f}s")
    sock = bind(host, port)
    url = url_of(sock)
    announce(f"agentrm viewer at {url}  (Ctrl+C to stop)")
    if open_browser:
        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    try:
        _uvicorn(app).run(sockets=[sock])
    finally:
        sock.close()
        index.close()
    return 0


class BackgroundServer:
    """Serve an app on a thread (tests, benchmarks): `with BackgroundServer(app) as url: ...`."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app, self.sock = app, bind(host, port)
        self.url = url_of(self.sock)
        self.server = _uvicorn(app)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise AgentrmError(f"viewer server at {self.url} did not start")
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
