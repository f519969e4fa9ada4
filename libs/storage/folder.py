"""``FolderObjectStore``: the embedded default ``ObjectStore``, a directory on the local file system.

Objects are plain files at ``root/<key>``. Writes go to a temp file under ``root/.tmp/`` (same file
system, so the final ``os.replace`` is an atomic rename), are fsynced, then renamed into place:
readers see the old object or the new one, never a partial one, and a crash leaves at most a
stray temp file. Every key is checked twice: by ``validate_key``, then by resolving the final
path (following symlinks) and refusing anything outside ``root``.
"""
from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import stat as stat_mode
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Generator, Iterator
from datetime import timedelta
from pathlib import Path

from libs.storage.port import (
    DEFAULT_CHUNK_SIZE,
    InvalidKey,
    ObjectInfo,
    ObjectNotFound,
    StorageError,
    validate_key,
    validate_prefix,
)
from libs.storage.streams import ChunkPipe, feed_pipe, iterate_in_thread, run_in_thread

TMP_DIR_NAME = ".tmp"
"""Directory under the root for in-flight writes; keys may not start with it."""

_WRITE_BLOCK = 1 << 20  # bytes handed to each write() call
_MAX_BUFFERED = 4 << 20  # bytes queued between the event loop and the writer thread
_WRITEBACK_EVERY = 8 << 20  # start writing dirty pages to disk this often, so the final fsync is short


def _writeback_starter():
    """``sync_file_range(fd, offset, n, SYNC_FILE_RANGE_WRITE)``: start writing a range to disk without
    waiting for it (Linux; Python does not expose it). The final fsync still decides durability; this
    only lets the disk work while the rest of the upload is still arriving. None where unavailable."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        call = libc.sync_file_range
        call.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
        call.restype = ctypes.c_int
    except (OSError, AttributeError):
        return None
    return lambda fd, offset, count: call(fd, offset, count, 2)  # 2 = SYNC_FILE_RANGE_WRITE


_start_writeback = _writeback_starter()


class FolderObjectStore:
    """An ``ObjectStore`` keeping each object as a file under ``root`` (created if missing)."""

    def __init__(self, root: Path | str) -> None:
        self._root = Path(os.path.realpath(root))
        self._tmp = self._root / TMP_DIR_NAME
        # Owner-only: objects may be model weights nobody else on the host should read.
        self._root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._tmp.mkdir(mode=0o700, exist_ok=True)

    @property
    def name(self) -> str:
        """``"folder"``."""
        return "folder"

    @property
    def root(self) -> Path:
        """The resolved root directory."""
        return self._root

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        """Stream ``chunks`` into ``key`` through a temp file, fsync, then atomically rename into place."""
        path = self._path_for(key)
        pipe = ChunkPipe(max_buffered=_MAX_BUFFERED)
        writer = run_in_thread(self._write_blocking, key, path, pipe, name="cairn-folder-put")
        return await feed_pipe(pipe, chunks, writer)

    def open(self, key: str, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> AsyncIterator[bytes]:
        """Stream the file at ``key``; ``ObjectNotFound`` is raised on the first iteration."""
        path = self._path_for(key)
        if chunk_size < 1:
            raise ValueError("chunk_size must be positive")

        def read_chunks() -> Generator[bytes, None, None]:
            with _os_errors(key):
                try:
                    file = open(path, "rb")  # noqa: SIM115 - closed by the `with` below
                except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                    raise ObjectNotFound(key) from None
                with file:
                    while chunk := file.read(chunk_size):
                        yield chunk

        return iterate_in_thread(read_chunks, name="cairn-folder-get")

    async def stat(self, key: str) -> ObjectInfo | None:
        """Return the file's size (``etag`` is ``None``: files have none), or ``None`` if missing."""
        path = self._path_for(key)
        size = await asyncio.to_thread(self._size_blocking, key, path)
        return None if size is None else ObjectInfo(key=key, size=size, etag=None)

    async def exists(self, key: str) -> bool:
        """Return whether a file exists at ``key``."""
        return await self.stat(key) is not None

    async def delete(self, key: str) -> None:
        """Remove the file at ``key`` if there is one."""
        path = self._path_for(key)

        def remove() -> None:
            with _os_errors(key), contextlib.suppress(FileNotFoundError, NotADirectoryError):
                if stat_mode.S_ISREG(os.lstat(path).st_mode):
                    os.unlink(path)

        await asyncio.to_thread(remove)

    async def move(self, src: str, dst: str) -> None:
        """Atomically rename ``src`` to ``dst`` (``os.replace``), replacing any object at ``dst``."""
        src_path, dst_path = self._path_for(src), self._path_for(dst)

        def rename() -> None:
            with _os_errors(src):
                if self._size_blocking(src, src_path) is None:
                    raise ObjectNotFound(src)
                if src_path == dst_path:
                    return
                self._make_parents(dst, dst_path)
                os.replace(src_path, dst_path)
                _fsync_directory(dst_path.parent)
                if src_path.parent != dst_path.parent:
                    _fsync_directory(src_path.parent)

        await asyncio.to_thread(rename)

    async def list(self, prefix: str = "") -> list[ObjectInfo]:
        """Return the files whose key starts with ``prefix``, sorted by key; symlinks and temp files are skipped."""
        validate_prefix(prefix)
        return await asyncio.to_thread(self._list_blocking, prefix)

    async def presigned_get_url(
        self, key: str, expires: timedelta, *, filename: str | None = None
    ) -> str | None:
        """Always ``None``: a folder cannot presign; the gateway signs its own link (``libs.storage.signing``)."""
        self._path_for(key)
        return None

    async def presigned_put_url(self, key: str, expires: timedelta) -> str | None:
        """Always ``None``, as for ``presigned_get_url``."""
        self._path_for(key)
        return None

    async def close(self) -> None:
        """Nothing to release: every transfer closes its own file."""

    # -- helpers ---------------------------------------------------------------------------------

    def _path_for(self, key: str) -> Path:
        """Map a key to its file, refusing keys that are invalid, reserved or resolve outside root."""
        validate_key(key)
        segments = key.split("/")
        if segments[0] == TMP_DIR_NAME:
            raise InvalidKey(key, f"{TMP_DIR_NAME!r} is reserved for in-flight writes")
        # realpath follows every symlink on the way, so a link pointing out of root is caught here.
        path = Path(os.path.realpath(self._root.joinpath(*segments)))
        if path == self._root or not path.is_relative_to(self._root):
            raise InvalidKey(key, "resolves outside the store root")
        if path.is_relative_to(self._tmp):
            raise InvalidKey(key, f"resolves into the reserved {TMP_DIR_NAME!r} directory")
        return path

    def _make_parents(self, key: str, path: Path) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Re-check now that the directories exist: one may have been a symlink created meanwhile.
        if not Path(os.path.realpath(path.parent)).is_relative_to(self._root):
            raise InvalidKey(key, "resolves outside the store root")

    def _write_blocking(self, key: str, path: Path, pipe: ChunkPipe) -> None:
        with _os_errors(key):
            fd, tmp_name = tempfile.mkstemp(dir=self._tmp, prefix="put-")
            try:
                with os.fdopen(fd, "wb") as file:
                    written = flushed = 0
                    while block := pipe.read(_WRITE_BLOCK):
                        file.write(block)
                        written += len(block)
                        if _start_writeback is not None and written - flushed >= _WRITEBACK_EVERY:
                            file.flush()
                            _start_writeback(fd, flushed, written - flushed)
                            flushed = written
                    file.flush()
                    os.fsync(file.fileno())
                self._make_parents(key, path)
                os.replace(tmp_name, path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp_name)
                raise
            # Make the rename itself durable, not just the file's bytes.
            _fsync_directory(path.parent)

    @staticmethod
    def _size_blocking(key: str, path: Path) -> int | None:
        with _os_errors(key):
            try:
                info = os.stat(path)
            except (FileNotFoundError, NotADirectoryError):
                return None
        return info.st_size if stat_mode.S_ISREG(info.st_mode) else None

    def _list_blocking(self, prefix: str) -> list[ObjectInfo]:
        # Walk only the deepest directory the prefix names; filter the rest by string prefix.
        directory = prefix.rpartition("/")[0]
        start = self._root.joinpath(*directory.split("/")) if directory else self._root
        if not Path(os.path.realpath(start)).is_relative_to(self._root):
            return []
        found: list[ObjectInfo] = []
        with _os_errors(prefix):
            for entry in _walk_files(start):
                key = Path(entry.path).relative_to(self._root).as_posix()
                if not key.startswith(prefix) or key.split("/", 1)[0] == TMP_DIR_NAME:
                    continue
                try:
                    validate_key(key)
                except InvalidKey:
                    continue  # a file put there by hand, not by this store
                with contextlib.suppress(FileNotFoundError):
                    found.append(ObjectInfo(key=key, size=entry.stat(follow_symlinks=False).st_size))
        found.sort(key=lambda info: info.key)
        return found


def _walk_files(directory: Path) -> Iterator[os.DirEntry[str]]:
    """Yield regular files under ``directory``, never following symlinks."""
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        if entry.is_symlink():
            continue
        if entry.is_dir(follow_symlinks=False):
            yield from _walk_files(Path(entry.path))
        elif entry.is_file(follow_symlinks=False):
            yield entry


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):  # file systems that cannot fsync a directory
            raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def _os_errors(key: str) -> Iterator[None]:
    """Turn unexpected ``OSError`` (disk full, permissions...) into ``StorageError``."""
    try:
        yield
    except OSError as exc:
        raise StorageError(f"file system error on key {key!r}: {exc.strerror or exc}") from exc


__all__ = ["TMP_DIR_NAME", "FolderObjectStore"]
