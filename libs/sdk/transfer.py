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


class VerifiedFile:
    """A download in progress: chunks go to a temporary file beside ``target`` and are hashed on the way;
    ``commit()`` moves it into place only if the sha256 and size match, so a corrupted or cut download
    never looks like a finished file. Leaving the ``with`` block without a commit removes the temporary."""

    def __init__(self, target: Path, *, expected_sha256: str, expected_size: int,
                 progress: ProgressCallback | None = None) -> None:
        self.target, self.expected_sha256, self.expected_size = target, expected_sha256, expected_size
        self.progress = progress
        self.done = 0
        self._digest = hashlib.sha256()
        self._tmp: str | None = None
        self._out = None

    def __enter__(self) -> "VerifiedFile":
        self.target.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(prefix=f".{self.target.name}.", suffix=".part", dir=self.target.parent)
        self._out = os.fdopen(fd, "wb")
        if self.progress:
            self.progress(0, self.expected_size)
        return self

    def write(self, chunk: bytes) -> None:
        self._out.write(chunk)
        self._digest.update(chunk)
        self.done += len(chunk)
        if self.progress:
            self.progress(self.done, self.expected_size)

    def commit(self) -> None:
        self._out.close()
        actual = self._digest.hexdigest()
        if self.done != self.expected_size or actual != self.expected_sha256:
            raise CairnIntegrityError(
                f"download of {self.target.name} does not match the registry: got {self.done} bytes with sha256 "
                f"{actual}, expected {self.expected_size} bytes with sha256 {self.expected_sha256}")
        os.replace(self._tmp, self.target)
        self._tmp = None

    def __exit__(self, *exc: object) -> None:
        if not self._out.closed:
            self._out.close()
        if self._tmp is not None:
            Path(self._tmp).unlink(missing_ok=True)


def save_verified(chunks: Iterable[bytes], target: Path, *, expected_sha256: str, expected_size: int,
                  progress: ProgressCallback | None = None) -> None:
    with VerifiedFile(target, expected_sha256=expected_sha256, expected_size=expected_size,
                      progress=progress) as file:
        for chunk in chunks:
            file.write(chunk)
        file.commit()
