"""Moving files: hashing, streamed reads with progress, and downloads written only once verified."""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from libs.sdk.errors import CairnIntegrityError
from libs.sdk.types import ProgressCallback

CHUNK = 1 << 20


def file_size(path: str | os.PathLike[str]) -> int:
    return os.stat(path).st_size


def sha256_of(path: str | os.PathLike[str], *, progress: ProgressCallback | None = None,
              chunk_size: int = CHUNK) -> str:
    digest = hashlib.sha256()
    total = file_size(path)
    done = 0
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
            done += len(chunk)
            if progress:
                progress(done, total)
    return digest.hexdigest()


def read_chunks(path: str | os.PathLike[str], size: int, *, progress: ProgressCallback | None = None,
                chunk_size: int = CHUNK) -> Iterator[bytes]:
    """The file's bytes in chunks, reporting each one as it is handed to the connection. Stops at
    ``size`` (the Content-Length already sent), so a file growing meanwhile cannot overrun it."""
    done = 0
    if progress:
        progress(0, size)
    with open(path, "rb") as f:
        while done < size and (chunk := f.read(min(chunk_size, size - done))):
            done += len(chunk)
            yield chunk
            if progress:
                progress(done, size)


def target_path(dest: str | os.PathLike[str] | None, filename: str) -> Path:
    """Where a download goes: ``dest`` if it names a file, ``dest/filename`` if it is a directory.
    The server's file name is reduced to its last component, so it cannot point outside ``dest``."""
    safe_name = Path(filename).name or "artifact.bin"
    if dest is None:
        return Path.cwd() / safe_name
    path = Path(dest)
    return path / safe_name if path.is_dir() else path


def save_verified(chunks: Iterable[bytes], target: Path, *, expected_sha256: str, expected_size: int,
                  progress: ProgressCallback | None = None) -> None:
    """Write ``chunks`` to a temporary file beside ``target``, hashing on the way; move it into place only
    if the sha256 and size match, so a corrupted or cut download never looks like a finished file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    done = 0
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            if progress:
                progress(0, expected_size)
            for chunk in chunks:
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress:
                    progress(done, expected_size)
        actual = digest.hexdigest()
        if done != expected_size or actual != expected_sha256:
            raise CairnIntegrityError(
                f"download of {target.name} does not match the registry: got {done} bytes with sha256 {actual}, "
                f"expected {expected_size} bytes with sha256 {expected_sha256}")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
