"""``/docs`` (Swagger UI) served entirely from this process: no CDN.

FastAPI's own docs page loads swagger-ui from a CDN and configures it with an inline script, which a
strict Content-Security-Policy forbids. Here the swagger-ui files come from the ``fastapi-offline``
wheel (installed with the project) and the start-up script is a same-origin file too; the page tells
it where the OpenAPI document is through a ``data-`` attribute.
"""
from __future__ import annotations

import html
import importlib.resources
from pathlib import Path

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response

DOCS_PATH = "/docs"
_ASSET_TYPES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon.png": "image/png",
}
INIT_JS = """\
// Starts Swagger UI on the OpenAPI document named by the page (no inline script: CSP forbids it).
window.addEventListener("load", function () {
  var node = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: node.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  });
});
"""


def swagger_assets() -> dict[str, Path]:
    """The fixed set of files served under /docs/, by name. Only these names are ever looked up."""
    static = Path(str(importlib.resources.files("fastapi_offline") / "static"))
    return {name: static / name for name in _ASSET_TYPES}


def docs_page(title: str, prefix: str, openapi_url: str) -> str:
    e = html.escape
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)} - API reference</title>
<link rel="icon" href="{e(prefix)}{DOCS_PATH}/favicon.png">
<link rel="stylesheet" href="{e(prefix)}{DOCS_PATH}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{e(prefix + openapi_url)}"></div>
<script src="{e(prefix)}{DOCS_PATH}/swagger-ui-bundle.js"></script>
<script src="{e(prefix)}{DOCS_PATH}/swagger-init.js"></script>
</body>
</html>
"""


def install_docs(app: FastAPI) -> None:
    """Add /docs and its assets as plain routes (not API routes: no schema entry, no permission)."""
    assets = swagger_assets()
    missing = [str(path) for path in assets.values() if not path.is_file()]
    if missing:
        raise RuntimeError(f"swagger-ui files missing (is fastapi-offline installed?): {missing}")

    async def page(request: Request) -> Response:
        prefix = request.scope.get("root_path", "").rstrip("/")
        return HTMLResponse(docs_page(app.title, prefix, app.openapi_url or "/openapi.json"),
                            headers={"cache-control": "no-cache"})

    async def init_js(request: Request) -> Response:
        return Response(INIT_JS, media_type="text/javascript; charset=utf-8", headers={"cache-control": "no-cache"})

    def asset_route(name: str):
        async def asset(request: Request) -> Response:
            return FileResponse(assets[name], media_type=_ASSET_TYPES[name],
                                headers={"cache-control": "public, max-age=86400"})
        return asset

    app.add_route(DOCS_PATH, page, methods=["GET"], include_in_schema=False)
    app.add_route(f"{DOCS_PATH}/swagger-init.js", init_js, methods=["GET"], include_in_schema=False)
    for name in assets:
        app.add_route(f"{DOCS_PATH}/{name}", asset_route(name), methods=["GET"], include_in_schema=False)
