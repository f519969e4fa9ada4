"""The dashboard's static files and /docs, served by the gateway app itself, with the security headers.

These need no infrastructure: the gateway app answers them before any dependency is touched, so the
app is driven in-process without its lifespan."""
from __future__ import annotations

import asyncio
import contextlib
import re

import httpx
import pytest
import uvicorn
from fastapi.routing import APIRoute

from libs.stack.procs import free_port
from tests.support.browser import chromium

from libs.kit.security_headers import HTML_CSP, with_security_headers
from services.gateway.app import create_app
from services.gateway.routes import ui
from services.gateway.settings import GatewaySettings

SVG_NAMESPACE = "http://www.w3.org/2000/svg"


@pytest.fixture(scope="module")
def gateway_app():
    settings = GatewaySettings(database_url="postgresql://unused", kafka_bootstrap="unused:9092",
                               redis_url="redis://unused", internal_token="unused")
    return create_app(settings)


@pytest.fixture
async def client(gateway_app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway_app), base_url="http://gateway") as c:
        yield c


def assert_hardened_html(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"


async def test_root_redirects_to_the_dashboard(client):
    for path in ("/", "/ui"):
        response = await client.get(path)
        assert response.status_code == 307 and response.headers["location"] == "/ui/"


async def test_the_dashboard_page_is_hardened_html_with_no_inline_script_or_style(client):
    response = await client.get("/ui/")
    assert_hardened_html(response)
    page = response.text
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", page, flags=re.S)
    assert scripts and all('src="/ui/' in attrs and not body.strip() for attrs, body in scripts)
    assert "style=" not in page and "<style" not in page
    assert not re.search(r"\b(?:src|href)=\"(?:https?:)?//", page), "every asset is same-origin"


async def test_every_dashboard_file_is_served_with_its_type_and_nosniff(client):
    expected = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml"}
    assert {"index.html", "app.js", "api.js", "charts.js", "app.css"} <= set(ui.FILES)
    for name, path in ui.FILES.items():
        response = await client.get(f"/ui/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"].startswith(expected[path.suffix]), name
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.content == path.read_bytes()
        if path.suffix == ".js":
            # no third-party host: the only absolute URL in the code is the SVG namespace name
            urls = set(re.findall(r"[a-z]+://[^\s\"'`)]+", response.text)) - {SVG_NAMESPACE}
            assert not urls, (name, urls)
            assert "innerHTML" not in response.text and "eval(" not in response.text, name


@pytest.mark.parametrize("path", [
    "/ui/nothing.js", "/ui/..%2Fapp.py", "/ui/%2e%2e%2fapp.py", "/ui/../routes/ui.py", "/ui/..%2F..%2Fapp.py",
    "/ui/__init__.py", "/ui/%2Fetc%2Fpasswd", "/ui/index.html%00.js",
])
async def test_only_the_whitelisted_files_are_reachable(client, path):
    response = await client.get(path)
    assert response.status_code == 404, (path, response.status_code, response.text[:200])
    assert "import " not in response.text and "root:" not in response.text


async def test_docs_are_served_locally_under_the_same_policy(client):
    page = await client.get("/docs")
    assert_hardened_html(page)
    sources = re.findall(r"(?:src|href)=\"([^\"]+)\"", page.text)
    assert sources and all(s.startswith("/docs/") for s in sources), sources
    assert not re.findall(r"<script>(.+?)</script>", page.text, flags=re.S), "no inline script"
    assert 'data-openapi-url="/openapi.json"' in page.text
    for asset, kind in (("swagger-ui-bundle.js", "text/javascript"), ("swagger-ui.css", "text/css"),
                        ("swagger-init.js", "text/javascript"), ("favicon.png", "image/png")):
        response = await client.get(f"/docs/{asset}")
        assert response.status_code == 200 and response.headers["content-type"].startswith(kind), asset
        assert response.headers["x-content-type-options"] == "nosniff"
    bundle = (await client.get("/docs/swagger-ui-bundle.js")).text
    assert "SwaggerUIBundle" in bundle and len(bundle) > 500_000
    assert (await client.get("/docs/../app.py")).status_code == 404


async def test_json_responses_get_nosniff_but_no_html_policy(client):
    response = await client.get("/healthz")
    assert response.status_code == 200 and response.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in response.headers
    spec = await client.get("/openapi.json")
    assert not [p for p in spec.json()["paths"] if p.startswith(("/ui", "/docs")) or p == "/"]


def test_dashboard_routes_are_not_api_routes(gateway_app):
    """They carry no data, so they name no permission; being plain routes keeps them out of the
    permission contract and out of the OpenAPI document."""
    assert all(not isinstance(route, APIRoute) for route in ui.router.routes)


def test_a_response_keeps_its_own_stricter_policy():
    own = [(b"content-type", b"text/html; charset=utf-8"), (b"Content-Security-Policy", b"default-src 'none'")]
    headers = dict((k.lower(), v) for k, v in with_security_headers(own))
    assert headers[b"content-security-policy"] == b"default-src 'none'"
    assert headers[b"x-frame-options"] == b"DENY" and headers[b"x-content-type-options"] == b"nosniff"
    plain = dict(with_security_headers([(b"content-type", b"application/json")]))
    assert plain == {b"content-type": b"application/json", b"x-content-type-options": b"nosniff"}
    assert HTML_CSP.count("'self'") >= 4


@pytest.fixture(scope="module")
async def served_gateway(gateway_app):
    """The gateway app on a loopback port without its lifespan: enough for the static files in a browser."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(gateway_app, host="127.0.0.1", port=port, lifespan="off",
                                           log_config=None, access_log=False))
    server.install_signal_handlers = lambda: None
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the gateway did not start"
        await asyncio.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    with contextlib.suppress(asyncio.CancelledError):
        await task


SPLIT_STREAM = """(async () => {
  const { serverSentEvents, session } = await import("/ui/api.js");
  session.set("test-key");
  // one event split across chunks, a keep-alive comment, CRLF line ends, a multi-line data field
  const chunks = ["id: 1-0\\nevent: progress\\nda", 'ta: {"epoch": 1, "train_loss": ', "0.5}\\n\\n: keep-alive\\n\\n",
                  "id: 2-0\\r\\nevent: note\\r\\ndata: line one\\r\\ndata: line two\\r\\n\\r\\n",
                  'id: 3-0\\nevent: completed\\ndata: {"state": "succeeded"}\\n\\n'];
  const seen = [];
  window.fetch = async (url, init) => {
    seen.push({ url, authorization: init.headers.authorization, lastEventId: init.headers["last-event-id"] ?? null });
    const body = new ReadableStream({ start(c) { for (const x of chunks) c.enqueue(new TextEncoder().encode(x)); c.close(); } });
    return new Response(body, { headers: { "content-type": "text/event-stream" } });
  };
  const events = [];
  for await (const event of serverSentEvents("/training-jobs/j/events", { lastEventId: "0-9" })) events.push(event);
  session.clear();
  return { events, seen, keyInUrl: seen.some((s) => s.url.includes("test-key")) };
})()"""

CHARTS = """(async () => {
  const { lineChart, pairedBars, ticks } = await import("/ui/charts.js");
  const chart = lineChart([{ name: "loss", points: [[1, 0.9], [2, 0.5], [3, NaN], [4, 0.2]] }], { xLabel: "epoch" });
  const bars = pairedBars([{ name: "accuracy", a: 0.9, b: 0.95, better: "b" }, { name: "latency", a: 3, b: 2, better: "b" }]);
  const empty = lineChart([{ name: "loss", points: [] }]);
  return { points: chart.querySelectorAll("circle.pt").length, ticks: ticks(0.2, 0.9),
           bars: bars.querySelectorAll("rect.bar").length, better: bars.querySelectorAll("rect.better").length,
           empty: empty.textContent.includes("no data yet") };
})()"""


async def test_in_a_browser_the_page_runs_under_its_policy_and_reads_split_server_sent_events(served_gateway):
    async with chromium() as browser:
        page = await browser.new_page()
        await page.goto(f"{served_gateway}/")
        await page.wait_for("!document.getElementById('login').hidden")  # the module ran: CSP let it
        result = await page.evaluate(SPLIT_STREAM)
        assert [(e["id"], e["event"], e["data"]) for e in result["events"]] == [
            ("1-0", "progress", {"epoch": 1, "train_loss": 0.5}),
            ("2-0", "note", "line one\nline two"),
            ("3-0", "completed", {"state": "succeeded"}),
        ]
        assert result["seen"] == [{"url": "/api/v1/training-jobs/j/events", "authorization": "Bearer test-key",
                                   "lastEventId": "0-9"}]
        assert not result["keyInUrl"]
        charts = await page.evaluate(CHARTS)
        assert charts == {"points": 3, "ticks": [0.2, 0.4, 0.6, 0.8, 1], "bars": 4, "better": 2,
                          "empty": True}
        assert not page.exceptions and not page.console_errors, (page.exceptions, page.console_errors)
        assert not page.foreign_requests(), page.foreign_requests()
