"""Bridges between asyncio streams and the blocking I/O threads the stores run their transfers in.

Both adapters (files, and the synchronous ``minio`` client) do blocking I/O. A transfer runs in a
thread of its own and talks to the event loop through a bounded buffer, so that

- the event loop never blocks on disk or network,
- memory stays bounded whatever the object size (back-pressure in both directions), and
- long transfers cannot starve ``asyncio.to_thread``'s shared pool (which short calls use).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Generator
from typing import Any, TypeVar

from libs.storage.port import StorageError

T = TypeVar("T")


class SourceFailed(Exception):
    """Raised in the reading thread when the async side of a ``ChunkPipe`` gave up.

    A distinct type so the thread's own cleanup (abort a multipart upload, delete a temp file)
    runs, while the caller re-raises the original exception from its own task.
    """


def run_in_thread(fn: Callable[..., T], /, *args: Any, name: str) -> asyncio.Future[T]:
    """Run ``fn(*args)`` in a new daemon thread and return an awaitable for its result.

    Cancelling the awaitable does not stop the thread; callers arrange for ``fn`` to finish
    (for example by failing the ``ChunkPipe`` it reads). Daemon, so a wedged network call can
    never hold up interpreter exit.
    """
    future: concurrent.futures.Future[T] = concurrent.futures.Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed over to the awaiting task
            future.set_exception(exc)
        else:
            future.set_result(result)

    threading.Thread(target=run, name=name, daemon=True).start()
    return asyncio.wrap_future(future)


class ChunkPipe:
    """A blocking, file-like ``read()`` fed by an asyncio producer, buffering at most ~``max_buffered`` bytes.

    The producer (in the event loop) calls ``write``/``close_writer``/``fail_writer``; a worker
    thread calls ``read``. The consumer side calls ``close_reader`` once the worker is done so
    a producer waiting for space is released.
    """

    def __init__(self, *, max_buffered: int) -> None:
        if max_buffered < 1:
            raise ValueError("max_buffered must be positive")
        self._loop = asyncio.get_running_loop()
        self._max_buffered = max_buffered
        self._cond = threading.Condition()
        self._chunks: deque[memoryview] = deque()
        self._buffered = 0
        self._eof = False
        self._failed = False
        self._reader_closed = False
        self._space = asyncio.Event()
        self._writer_waiting = False

    async def write(self, chunk: bytes) -> bool:
        """Queue ``chunk`` for the reader, waiting while the buffer is full.

        Returns ``False`` if the reader has stopped (its own outcome says why), ``True`` otherwise.
        """
        if not chunk:
            return not self._reader_closed
        # Copy mutable buffers: the producer may reuse them once we return.
        view = memoryview(chunk if isinstance(chunk, bytes) else bytes(chunk)).cast("B")
        while True:
            with self._cond:
                if self._reader_closed:
                    return False
                # Always accept into an empty buffer, so one chunk larger than the limit cannot deadlock.
                if self._buffered < self._max_buffered or not self._chunks:
                    self._chunks.append(view)
                    self._buffered += len(view)
                    self._cond.notify_all()
                    return True
                self._space.clear()
                self._writer_waiting = True
            await self._space.wait()

    def close_writer(self) -> None:
        """Signal end of data: the reader sees EOF once it has drained the buffer."""
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def fail_writer(self) -> None:
        """Signal that no more data will come because the producer failed: ``read`` raises ``SourceFailed``."""
        with self._cond:
            self._failed = True
            self._chunks.clear()
            self._buffered = 0
            self._cond.notify_all()

    def close_reader(self) -> None:
        """Mark the reading side finished, releasing a producer blocked in ``write``. Loop side only."""
        with self._cond:
            self._reader_closed = True
            self._chunks.clear()
            self._buffered = 0
        self._space.set()

    def read(self, size: int = -1) -> bytes:
        """Block until ``size`` bytes (all remaining data if ``size < 0``) or EOF; return them.

        Returning full reads (not whatever is queued) lets ``minio`` assemble a part in one call
        instead of concatenating thousands of small ``bytes``. Raises ``SourceFailed`` if the
        producer failed. Thread side only.
        """
        parts: list[memoryview] = []
        wanted = size if size >= 0 else None
        got = 0
        with self._cond:
            while wanted is None or got < wanted:
                while not self._chunks and not self._eof and not self._failed:
                    self._cond.wait()
                if self._failed:
                    raise SourceFailed("the data source failed before the end of the object")
                if not self._chunks:
                    break  # EOF
                chunk = self._chunks.popleft()
                if wanted is not None and len(chunk) > wanted - got:
                    self._chunks.appendleft(chunk[wanted - got :])
                    chunk = chunk[: wanted - got]
                parts.append(chunk)
                got += len(chunk)
                self._buffered -= len(chunk)
                if self._writer_waiting and self._buffered < self._max_buffered:
                    self._writer_waiting = False
                    self._wake_writer()
        if len(parts) == 1 and parts[0].obj is not None and len(parts[0]) == len(parts[0].obj):
            return bytes(parts[0].obj)  # a whole bytes chunk: no copy
        return b"".join(parts)

    def _wake_writer(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting any more
            self._loop.call_soon_threadsafe(self._space.set)


async def feed_pipe(pipe: ChunkPipe, chunks: AsyncIterable[bytes], reader: asyncio.Future[Any]) -> int:
    """Feed ``chunks`` into ``pipe`` for the ``reader`` thread and return how many bytes were fed.

    If ``chunks`` raises or the task is cancelled, the pipe is failed and the reader is awaited
    (it aborts the upload or removes its temp file) before the original exception is re-raised,
    so nothing is still writing once this returns or raises. A cancellation that arrives after
    the reader has consumed all the data cannot undo the write: the object is then complete.
    If the reader fails, its exception is raised.
    """
    reader.add_done_callback(lambda _: pipe.close_reader())
    fed = 0
    complete = False
    try:
        async for chunk in chunks:
            if not await pipe.write(chunk):
                break  # the reader stopped early; awaiting it below raises its error
            fed += len(chunk)
        else:
            pipe.close_writer()
            complete = True
        await asyncio.shield(reader)  # shielded: a cancellation must not orphan the thread's work
    except BaseException:
        pipe.fail_writer()
        await asyncio.wait([reader])
        if not reader.cancelled():
            reader.exception()  # mark retrieved: the exception being raised is the one that matters
        raise
    if not complete:
        raise StorageError("the writer stopped before the end of the data")
    return fed


async def rechunk(chunks: AsyncIterable[bytes], block: int) -> AsyncIterator[bytes]:
    """The same bytes in pieces of at least ``block`` (the last may be shorter); a piece already that
    big passes through without a copy."""
    pending = bytearray()
    async for chunk in chunks:
        if not pending and len(chunk) >= block:
            yield bytes(chunk)
            continue
        pending += chunk
        if len(pending) >= block:
            yield bytes(pending)
            pending.clear()
    if pending:
        yield bytes(pending)


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()


async def iterate_in_thread(
    open_chunks: Callable[[], Generator[bytes, None, None]], *, depth: int = 2, name: str
) -> AsyncIterator[bytes]:
    """Run the blocking generator ``open_chunks()`` in its own thread and yield its chunks here.

    At most ``depth`` chunks wait in between (read-ahead with back-pressure). Nothing happens
    until the first ``__anext__``; exceptions from the iterator (including from its very first
    step) are raised here. The iterator is closed, in its thread, when iteration ends or the
    consumer stops early, so its ``finally`` releases files and connections.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=depth)
    stopped = threading.Event()

    def deliver(item: object) -> None:
        # Blocks this thread while the queue is full: that is the back-pressure.
        asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()

    def pump() -> None:
        try:
            outcome: object = _END
            try:
                with contextlib.closing(open_chunks()) as chunks:
                    for chunk in chunks:
                        if stopped.is_set():
                            return
                        deliver(chunk)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
                outcome = _Failure(exc)
            if not stopped.is_set():
                deliver(outcome)
        except RuntimeError:
            pass  # the event loop closed under us: nobody is listening any more

    run_in_thread(pump, name=name)
    try:
        while True:
            item = await queue.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stopped.set()
        # Unblock a pending deliver(); the thread then sees `stopped` and closes its source.
        # Not awaited: a stalled server must not hold up whoever abandoned the download.
        while not queue.empty():
            queue.get_nowait()


__all__ = [
    "ChunkPipe",
    "SourceFailed",
    "feed_pipe",
    "iterate_in_thread",
    "run_in_thread",
]
