"""The web dashboard: a static single-page app under /ui/ (``services/gateway/web``), and ``/`` → /ui/.

The files carry no data and no secret, so these are plain routes without a permission: the page asks
for an API key and calls /api/v1 with it like any other client. Only the files present at start-up are
served, looked up by exact name; nothing from the URL ever reaches the file system.
"""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response

from libs.kit.errors import NotFound

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


def _files() -> dict[str, Path]:
    """The whitelist: name → file, for the web folder's files of a known type."""
    return {p.name: p for p in sorted(WEB_DIR.iterdir()) if p.is_file() and p.suffix in MEDIA_TYPES}


FILES = _files()
router = APIRouter()


def _serve(name: str) -> Response:
    path = FILES.get(name)
    if path is None:
        raise NotFound(f"no dashboard file named {name!r}")
    # no-cache: the browser revalidates (ETag) so a new deployment is seen at once
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers={"cache-control": "no-cache"})


async def root(request: Request) -> Response:
    return RedirectResponse("/ui/", status_code=307)


async def index(request: Request) -> Response:
    return _serve("index.html")


async def asset(request: Request) -> Response:
    return _serve(request.path_params["name"])


router.add_route("/", root, methods=["GET"], include_in_schema=False)
router.add_route("/ui", root, methods=["GET"], include_in_schema=False)
router.add_route("/ui/", index, methods=["GET"], include_in_schema=False)
router.add_route("/ui/{name}", asset, methods=["GET"], include_in_schema=False)
