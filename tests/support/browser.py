"""Headless Chromium (the Debian package) driven over the Chrome DevTools Protocol, for the dashboard tests.

No browser is downloaded: the system's ``chromium`` is used (``.ci/run`` installs it with apt). Each
browser gets a fresh profile in a temp dir. A page records every request it made, console errors and
uncaught exceptions (a CSP violation shows up as a console error), so tests can assert on them.
"""
from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import websockets

FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--no-default-browser-check",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
    "--disable-default-apps", "--disable-dev-shm-usage", "--mute-audio", "--hide-scrollbars",
    "--remote-debugging-port=0", "--lang=en-US",
)
INSTALL_HINT = "apt-get install -y --no-install-recommends chromium (as .ci/run does)"


class BrowserError(RuntimeError):
    pass


def chromium_binary() -> str:
    """The Chromium executable; a missing one is an error (the tests must fail, not skip)."""
    for candidate in ("/usr/lib/chromium/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    raise BrowserError(f"Chromium is not installed: {INSTALL_HINT}")


class Connection:
    """One DevTools websocket; commands are matched to answers by id, events go to their session."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future] = {}
        self.listeners: dict[str | None, list] = {}
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                message = json.loads(raw)
                if "id" in message:
                    future = self.pending.pop(message["id"], None)
                    if future and not future.done():
                        future.set_result(message)
                else:
                    for listener in self.listeners.get(message.get("sessionId"), []):
                        listener(message["method"], message.get("params", {}))
        finally:
            for future in self.pending.values():
                if not future.done():
                    future.set_exception(BrowserError("the browser connection closed"))

    async def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 60) -> dict:
        ident = next(self.ids)
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        future = asyncio.get_running_loop().create_future()
        self.pending[ident] = future
        await self.ws.send(json.dumps(message))
        answer = await asyncio.wait_for(future, timeout)
        if "error" in answer:
            raise BrowserError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()


class Page:
    def __init__(self, conn: Connection, session: str, target: str) -> None:
        self.conn, self.session, self.target = conn, session, target
        self.requests: list[str] = []
        self.console_errors: list[str] = []
        self.exceptions: list[str] = []
        self.network_errors: list[str] = []
        self._load = asyncio.Event()
        conn.listeners.setdefault(session, []).append(self._on_event)

    def _on_event(self, method: str, params: dict) -> None:
        if method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        elif method == "Page.loadEventFired":
            self._load.set()
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.console_errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.exceptions.append(details.get("exception", {}).get("description") or details.get("text", ""))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            entry = params["entry"]
            # an HTTP error status the page handles (a 404 for "nothing live") is not a page error
            errors = self.network_errors if entry.get("source") == "network" else self.console_errors
            errors.append(f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}".strip())

    async def send(self, method: str, params: dict | None = None, timeout: float = 60) -> dict:
        return await self.conn.send(method, params, self.session, timeout)

    async def goto(self, url: str, timeout: float = 60) -> None:
        self._load.clear()
        await self.send("Page.navigate", {"url": url})
        await asyncio.wait_for(self._load.wait(), timeout)

    async def evaluate(self, expression: str) -> Any:
        """The value of a JS expression (awaited if it is a promise)."""
        result = await self.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True})
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise BrowserError(details.get("exception", {}).get("description") or details.get("text"))
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 60, interval: float = 0.1) -> None:
        """Poll until the expression is truthy in the page. Raises with the page's errors on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if await self.evaluate(f"!!({expression})"):  # a DOM node is not returned by value: test it there
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"never true: {expression}; console errors {self.console_errors}, "
                                   f"exceptions {self.exceptions}")
            await asyncio.sleep(interval)

    async def screenshot(self, path: Path, width: int = 1366) -> Path:
        """A PNG of the whole page (not only the viewport)."""
        metrics = await self.send("Page.getLayoutMetrics")
        height = int(min(max(metrics["cssContentSize"]["height"], 600), 8000))
        await self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        shot = await self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        await self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def foreign_requests(self, allowed_hosts=("127.0.0.1", "localhost")) -> list[str]:
        """Requests that left this machine (anything but loopback, data:, blob: and about:)."""
        foreign = []
        for url in self.requests:
            parts = urlsplit(url)
            if parts.scheme in ("data", "blob", "about"):
                continue
            if parts.hostname not in allowed_hosts:
                foreign.append(url)
        return foreign


class Browser:
    def __init__(self, proc: subprocess.Popen, conn: Connection, profile: Path) -> None:
        self.proc, self.conn, self.profile = proc, conn, profile

    async def new_page(self, width: int = 1366, height: int = 900) -> Page:
        target = (await self.conn.send("Target.createTarget", {"url": "about:blank"}))["targetId"]
        session = (await self.conn.send("Target.attachToTarget", {"targetId": target, "flatten": True}))["sessionId"]
        page = Page(self.conn, session, target)
        for domain in ("Page", "Runtime", "Network", "Log"):
            await page.send(f"{domain}.enable")
        await page.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        return page

    async def close(self) -> None:
        try:
            await self.conn.send("Browser.close", timeout=10)
        except Exception:
            pass
        await self.conn.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        shutil.rmtree(self.profile, ignore_errors=True)


async def _devtools_url(proc: subprocess.Popen, profile: Path, timeout: float) -> str:
    """Chromium writes its port and browser path into DevToolsActivePort once it listens."""
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while not (marker.exists() and len(marker.read_text().splitlines()) >= 2):
        if proc.poll() is not None:
            raise BrowserError(f"chromium exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise BrowserError("chromium did not open its DevTools port")
        await asyncio.sleep(0.05)
    port, path = marker.read_text().splitlines()[:2]
    return f"ws://127.0.0.1:{port}{path}"


@asynccontextmanager
async def chromium(log_path: Path | None = None, timeout: float = 60):
    """A headless Chromium for the duration of the block."""
    binary = chromium_binary()
    profile = Path(tempfile.mkdtemp(prefix="cairn-chromium-"))
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        url = await _devtools_url(proc, profile, timeout)
        ws = await websockets.connect(url, max_size=64 * 1024 * 1024, open_timeout=timeout)
    except BaseException:
        proc.kill()
        proc.wait(10)
        shutil.rmtree(profile, ignore_errors=True)
        raise
    browser = Browser(proc, Connection(ws), profile)
    try:
        yield browser
    finally:
        await browser.close()
        if log_path:
            log.close()
