"""What the web UI serves from the output folder: files inside run folders, never as a web page.

Gradio serves any file under its `allowed_paths` inline with its guessed type. This ASGI
middleware narrows that for the output folder: only files inside a run folder (a subfolder with
a run.json) are served, and any type a browser could run (HTML, SVG, XML, scripts) is sent as a
download. Gradio's own cache and the rest of its routes pass through untouched.
"""
from __future__ import annotations

import mimetypes
import os
from pathlib import Path

# Types a browser shows without running anything; the rest are sent as attachments.
INLINE_TYPES = {"model/gltf-binary", "model/gltf+json", "video/mp4", "image/png", "image/jpeg",
                "image/webp", "text/plain", "text/csv", "application/json", "application/zip"}


def is_run_file(path: Path, root: Path) -> bool:
    """True for a regular file inside root/<run>/..., where root/<run>/run.json exists."""
    try:
        rel = path.relative_to(root)
    except ValueError:
        return False
    parts = rel.parts
    return (len(parts) >= 2 and not any(p.startswith(".") for p in parts)
            and (root / parts[0] / "run.json").is_file() and path.is_file())


class RunFilesOnly:
    def __init__(self, app, root: str):
        self.app, self.root = app, Path(root).resolve()

    async def __call__(self, scope, receive, send):
        marker = "/file="
        if scope["type"] != "http" or marker not in scope.get("path", ""):
            return await self.app(scope, receive, send)
        raw = scope["path"].split(marker, 1)[1]
        path = Path(os.path.abspath(raw)).resolve()
        if path != self.root and self.root not in path.parents:
            return await self.app(scope, receive, send)  # Gradio's cache and its own rules
        if not is_run_file(path, self.root):
            return await _forbidden(send)
        kind = mimetypes.guess_type(path.name)[0]
        if kind in INLINE_TYPES:
            return await self.app(scope, receive, send)

        async def as_download(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() not in (b"content-type", b"content-disposition")]
                headers += [(b"content-type", b"application/octet-stream"),
                            (b"content-disposition", b"attachment"), (b"x-content-type-options", b"nosniff")]
                message = {**message, "headers": headers}
            await send(message)
        return await self.app(scope, receive, as_download)


async def _forbidden(send) -> None:
    body = b"File not allowed: only files inside run folders are served."
    await send({"type": "http.response.start", "status": 403,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
