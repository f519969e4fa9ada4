"""The ``ObjectStore`` contract: behaviour every adapter must have, run against each real backend.

Subclasses provide a ``store`` fixture (a fresh, empty store per test), set ``presigns`` and, if
they presign, implement ``check_presigned_url``.
"""
from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta

import httpx
import pytest

from libs.storage.cas import (
    BlobCorrupted,
    BlobMismatch,
    BlobTooLarge,
    ContentAddressedStore,
    PendingUpload,
)
from libs.storage.port import InvalidKey, ObjectInfo, ObjectNotFound, ObjectStore
from tests.integration.storage.sigv4 import PresignedUrlRejected, signed_at

MIB = 1 << 20
ODD_CHUNK_SIZES = (1, 4093, 65537, MIB + 7, 333_333)

INVALID_KEYS = [
    "../x",
    "/abs",
    "a//b",
    "a/./b",
    "a/../b",
    "x" * 513,
    "",
    "a/",
    ".",
    "..",
    "a b",
    "a\\b",
    "caf\u00e9",
    "a\nb",
    "a\x00b",
]


async def chunks_of(data: bytes, sizes: Sequence[int] = ODD_CHUNK_SIZES) -> AsyncIterator[bytes]:
    """Yield ``data`` in chunks cycling through ``sizes``."""
    offset, turn = 0, 0
    while offset < len(data):
        size = sizes[turn % len(sizes)]
        yield data[offset : offset + size]
        offset += size
        turn += 1


async def failing_after(data: bytes, error: Exception) -> AsyncIterator[bytes]:
    """Yield ``data`` in odd chunks, then raise ``error`` instead of ending."""
    async for chunk in chunks_of(data):
        yield chunk
    raise error


async def read_all(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


def http_client() -> httpx.AsyncClient:
    # trust_env=False: loopback servers must not be reached through a proxy from the environment.
    return httpx.AsyncClient(trust_env=False, timeout=30)


class ObjectStoreContract:
    """Contract tests; a subclass named ``Test...`` runs them against one adapter."""

    presigns: bool = True
    big_size: int = 11 * MIB + 3  # more than two 5 MiB parts: exercises multipart on S3

    def check_presigned_url(self, url: str, *, method: str, now: datetime) -> None:
        """Raise unless ``url`` is a well-signed presigned ``method`` URL that is valid at ``now``."""
        raise NotImplementedError

    @pytest.fixture
    def cas(self, store: ObjectStore) -> ContentAddressedStore:
        return ContentAddressedStore(store)

    async def test_the_store_satisfies_the_port(self, store: ObjectStore) -> None:
        assert isinstance(store, ObjectStore)
        assert store.name == ("s3" if self.presigns else "folder")

    # -- put / open ------------------------------------------------------------------------------

    async def test_round_trip_of_a_multi_mib_object_streamed_in_odd_chunks(self, store: ObjectStore) -> None:
        data = os.urandom(self.big_size)
        assert await store.put("models/a/weights.bin", chunks_of(data)) == len(data)

        received = [chunk async for chunk in store.open("models/a/weights.bin", chunk_size=100_000)]

        assert b"".join(received) == data
        assert all(0 < len(chunk) <= 100_000 for chunk in received)
        info = await store.stat("models/a/weights.bin")
        assert info is not None and (info.key, info.size) == ("models/a/weights.bin", len(data))

    async def test_empty_object_round_trip(self, store: ObjectStore) -> None:
        assert await store.put("empty", chunks_of(b"")) == 0
        assert await read_all(store.open("empty")) == b""
        info = await store.stat("empty")
        assert info is not None and info.size == 0

    async def test_put_replaces_an_existing_object(self, store: ObjectStore) -> None:
        await store.put("k", chunks_of(b"first version"))
        await store.put("k", chunks_of(b"second"))
        assert await read_all(store.open("k")) == b"second"

    async def test_open_of_a_missing_key_raises_object_not_found_on_first_iteration(
        self, store: ObjectStore
    ) -> None:
        chunks = store.open("no/such/key")  # no I/O yet, so no error yet
        with pytest.raises(ObjectNotFound) as caught:
            await anext(chunks)
        assert caught.value.key == "no/such/key"

    async def test_a_consumer_may_stop_reading_early(self, store: ObjectStore) -> None:
        data = os.urandom(3 * MIB)
        await store.put("k", chunks_of(data))
        chunks = store.open("k", chunk_size=64 * 1024)
        assert await anext(chunks) == data[: 64 * 1024]
        await chunks.aclose()  # type: ignore[attr-defined]
        assert await read_all(store.open("k")) == data  # the store is still usable

    # -- all-or-nothing writes -----------------------------------------------------------------

    async def test_a_failing_source_leaves_nothing_at_the_key(self, store: ObjectStore) -> None:
        with pytest.raises(RuntimeError, match="source broke"):
            await store.put("k", failing_after(os.urandom(self.big_size), RuntimeError("source broke")))
        assert not await store.exists("k")
        assert await store.list("") == []

    async def test_a_failing_source_keeps_the_previous_object(self, store: ObjectStore) -> None:
        await store.put("k", chunks_of(b"good"))
        with pytest.raises(RuntimeError):
            await store.put("k", failing_after(os.urandom(2 * MIB), RuntimeError("source broke")))
        assert await read_all(store.open("k")) == b"good"

    async def test_cancelling_an_upload_leaves_nothing_at_the_key(self, store: ObjectStore) -> None:
        sent = asyncio.Event()

        async def stalls_midway() -> AsyncIterator[bytes]:
            async for chunk in chunks_of(os.urandom(2 * MIB)):
                yield chunk
            sent.set()
            await asyncio.Event().wait()  # a client that stops sending

        upload = asyncio.create_task(store.put("k", stalls_midway()))
        await asyncio.wait_for(sent.wait(), 10)
        upload.cancel()
        with pytest.raises(asyncio.CancelledError):
            await upload
        assert not await store.exists("k")
        assert await store.list("") == []

    # -- metadata operations ---------------------------------------------------------------------

    async def test_stat_exists_and_idempotent_delete(self, store: ObjectStore) -> None:
        assert await store.stat("a/b") is None
        assert not await store.exists("a/b")
        await store.put("a/b", chunks_of(b"12345"))
        assert await store.exists("a/b")
        assert (await store.stat("a/b")).size == 5
        await store.delete("a/b")
        await store.delete("a/b")  # deleting a missing object is fine
        assert not await store.exists("a/b")
        assert await store.stat("a/b") is None

    async def test_move_renames_and_replaces(self, store: ObjectStore) -> None:
        await store.put("src/x", chunks_of(b"payload"))
        await store.put("dst/y", chunks_of(b"old"))

        await store.move("src/x", "dst/y")

        assert not await store.exists("src/x")
        assert await read_all(store.open("dst/y")) == b"payload"
        await store.move("dst/y", "dst/y")  # onto itself: nothing changes
        assert await read_all(store.open("dst/y")) == b"payload"
        with pytest.raises(ObjectNotFound):
            await store.move("src/x", "elsewhere")
        with pytest.raises(ObjectNotFound):
            await store.move("src/x", "src/x")

    async def test_list_uses_plain_string_prefixes_and_sorts_by_key(self, store: ObjectStore) -> None:
        for key, size in [("list/b/1", 3), ("list/a/2", 2), ("list/a/1", 1), ("list/ab", 4), ("other/x", 5)]:
            await store.put(key, chunks_of(b"x" * size))

        def keys(infos: list[ObjectInfo]) -> list[str]:
            return [info.key for info in infos]

        assert keys(await store.list("list/a/")) == ["list/a/1", "list/a/2"]
        assert keys(await store.list("list/a")) == ["list/a/1", "list/a/2", "list/ab"]
        assert [(i.key, i.size) for i in await store.list("list/")] == [
            ("list/a/1", 1),
            ("list/a/2", 2),
            ("list/ab", 4),
            ("list/b/1", 3),
        ]
        assert keys(await store.list("")) == ["list/a/1", "list/a/2", "list/ab", "list/b/1", "other/x"]
        assert await store.list("nothing/here/") == []

    # -- key validation --------------------------------------------------------------------------

    @pytest.mark.parametrize("key", INVALID_KEYS, ids=lambda key: repr(key)[:24])
    async def test_invalid_keys_are_refused_by_every_operation(self, store: ObjectStore, key: str) -> None:
        with pytest.raises(InvalidKey):
            store.open(key)  # refused at call time, before any iteration
        for call in (
            lambda: store.put(key, chunks_of(b"x")),
            lambda: store.stat(key),
            lambda: store.exists(key),
            lambda: store.delete(key),
            lambda: store.move(key, "fine"),
            lambda: store.move("fine", key),
            lambda: store.presigned_get_url(key, timedelta(minutes=1)),
            lambda: store.presigned_put_url(key, timedelta(minutes=1)),
        ):
            with pytest.raises(InvalidKey):
                await call()
        assert await store.list("") == []

    async def test_a_key_of_exactly_512_characters_is_accepted(self, store: ObjectStore) -> None:
        key = "/".join(["d" * 127] * 3 + ["e" * 128])
        assert len(key) == 512
        await store.put(key, chunks_of(b"ok"))
        assert await read_all(store.open(key)) == b"ok"

    # -- presigned URLs --------------------------------------------------------------------------

    async def test_presigned_get_url_downloads_the_object_as_an_attachment(self, store: ObjectStore) -> None:
        data = os.urandom(MIB + 5)
        await store.put("dl/weights.bin", chunks_of(data))

        url = await store.presigned_get_url("dl/weights.bin", timedelta(minutes=5), filename="model v1.pt")

        if not self.presigns:
            assert url is None
            return
        async with http_client() as client:
            response = await client.get(url)
        assert response.status_code == 200
        assert response.content == data
        assert 'filename="model v1.pt"' in response.headers["content-disposition"]

    async def test_presigned_put_url_uploads_the_object(self, store: ObjectStore) -> None:
        url = await store.presigned_put_url("up/file.bin", timedelta(minutes=5))

        if not self.presigns:
            assert url is None
            return
        async with http_client() as client:
            response = await client.put(url, content=b"uploaded directly")
        assert response.status_code == 200
        assert await read_all(store.open("up/file.bin")) == b"uploaded directly"

    async def test_presigned_urls_are_signed_and_expire(self, store: ObjectStore) -> None:
        await store.put("k", chunks_of(b"x"))
        get_url = await store.presigned_get_url("k", timedelta(seconds=1))
        put_url = await store.presigned_put_url("k", timedelta(seconds=1))
        if not self.presigns:
            assert get_url is None and put_url is None
            return
        for url, method in ((get_url, "GET"), (put_url, "PUT")):
            self.check_expiry_window(url, method=method, lifetime=timedelta(seconds=1))

    def check_expiry_window(self, url: str, *, method: str, lifetime: timedelta) -> None:
        """Valid from signing until just before ``lifetime`` has passed, refused from then on."""
        start = signed_at(url)  # the server's own clock, so no skew between test and server
        self.check_presigned_url(url, method=method, now=start)
        self.check_presigned_url(url, method=method, now=start + lifetime - timedelta(microseconds=1))
        with pytest.raises(PresignedUrlRejected, match="expired"):
            self.check_presigned_url(url, method=method, now=start + lifetime)
        with pytest.raises(PresignedUrlRejected, match="signature"):  # a longer life cannot be forged
            self.check_presigned_url(url.replace("X-Amz-Expires=1", "X-Amz-Expires=3600"), method=method, now=start)
        with pytest.raises(PresignedUrlRejected, match="signature"):  # nor can another method
            self.check_presigned_url(url, method="DELETE", now=start)

    # -- content-addressed store -----------------------------------------------------------------

    async def test_cas_put_stream_returns_sha256_size_and_key(
        self, store: ObjectStore, cas: ContentAddressedStore
    ) -> None:
        data = os.urandom(3 * MIB + 1)
        digest = hashlib.sha256(data).hexdigest()

        ref = await cas.put_stream(chunks_of(data))

        assert (ref.sha256, ref.size, ref.deduplicated) == (digest, len(data), False)
        assert ref.key == cas.key_for(digest) == f"blobs/sha256/{digest[:2]}/{digest}"
        assert await cas.exists(digest)
        assert await read_all(store.open(ref.key)) == data
        assert await store.list("incoming/") == []

    async def test_cas_stores_identical_content_once(self, store: ObjectStore, cas: ContentAddressedStore) -> None:
        data = os.urandom(MIB + 17)
        first = await cas.put_stream(chunks_of(data))
        second = await cas.put_stream(chunks_of(data, sizes=(777,)))

        assert (first.deduplicated, second.deduplicated) == (False, True)
        assert first.sha256 == second.sha256
        assert [info.key for info in await store.list("")] == [first.key]

    async def test_cas_max_size_is_enforced_without_leftovers(
        self, store: ObjectStore, cas: ContentAddressedStore
    ) -> None:
        data = os.urandom(2 * MIB)
        with pytest.raises(BlobTooLarge) as caught:
            await cas.put_stream(chunks_of(data), max_size=MIB)
        assert caught.value.limit == MIB
        assert await store.list("") == []

        ref = await cas.put_stream(chunks_of(data), max_size=len(data))  # exactly at the limit is fine
        assert ref.size == len(data)

    async def test_cas_open_verified_streams_an_intact_blob(self, cas: ContentAddressedStore) -> None:
        data = os.urandom(2 * MIB + 3)
        ref = await cas.put_stream(chunks_of(data))
        assert await read_all(cas.open_verified(ref.sha256, expected_size=len(data))) == data
        assert await cas.verify(ref.sha256)

    async def test_cas_open_verified_detects_a_corrupted_blob_before_the_last_chunk(
        self, store: ObjectStore, cas: ContentAddressedStore
    ) -> None:
        data = os.urandom(2 * MIB)
        ref = await cas.put_stream(chunks_of(data))
        flipped = bytearray(data)
        flipped[MIB] ^= 0xFF  # same size, one bit pattern changed: only the hash can tell
        await store.put(ref.key, chunks_of(bytes(flipped)))

        received = bytearray()
        with pytest.raises(BlobCorrupted) as caught:
            async for chunk in cas.open_verified(ref.sha256, chunk_size=256 * 1024):
                received += chunk
        assert caught.value.expected == ref.sha256
        assert caught.value.actual == hashlib.sha256(flipped).hexdigest()
        assert len(received) < len(data)  # the consumer never got the whole corrupted blob
        assert not await cas.verify(ref.sha256)

    async def test_cas_open_verified_detects_a_wrong_size(self, store: ObjectStore, cas: ContentAddressedStore) -> None:
        data = os.urandom(MIB)
        ref = await cas.put_stream(chunks_of(data))
        with pytest.raises(BlobCorrupted):
            await read_all(cas.open_verified(ref.sha256, expected_size=len(data) - 1))
        with pytest.raises(BlobCorrupted):
            await read_all(cas.open_verified(ref.sha256, expected_size=len(data) + 1))
        await store.put(ref.key, chunks_of(data[:-10]))  # truncated on disk
        with pytest.raises(BlobCorrupted):
            await read_all(cas.open_verified(ref.sha256))

    async def test_cas_open_verified_of_a_missing_blob_raises_object_not_found(
        self, cas: ContentAddressedStore
    ) -> None:
        chunks = cas.open_verified("0" * 64)
        with pytest.raises(ObjectNotFound):
            await anext(chunks)

    async def test_cas_refuses_malformed_digests_and_upload_ids(self, cas: ContentAddressedStore) -> None:
        for digest in ("A" * 64, "a" * 63, "a" * 65, "g" * 64, "../" + "a" * 61, ""):
            with pytest.raises(InvalidKey):
                cas.key_for(digest)
            with pytest.raises(InvalidKey):
                cas.open_verified(digest)
        for upload_id in (
            "not-a-uuid",
            "6BA7B810-9DAD-41D1-80B4-00C04FD430C8",  # upper case
            "6ba7b8109dad41d180b400c04fd430c8",  # not canonical
            "6ba7b810-9dad-11d1-80b4-00c04fd430c8",  # version 1
            "../6ba7b810-9dad-41d1-80b4-00c04fd430c8",
        ):
            with pytest.raises(InvalidKey):
                await cas.complete_upload(upload_id, expected_sha256="a" * 64, expected_size=1)
        with pytest.raises(InvalidKey):
            await cas.complete_upload(
                "6ba7b810-9dad-41d1-80b4-00c04fd430c8", expected_sha256="A" * 64, expected_size=1
            )

    # -- direct uploads --------------------------------------------------------------------------

    async def upload_directly(self, store: ObjectStore, pending: PendingUpload, data: bytes) -> None:
        """What a client does with a ``PendingUpload``: PUT to the presigned URL, or (no URL) what the gateway does for it."""
        if pending.url is None:
            assert not self.presigns
            await store.put(pending.key, chunks_of(data))
            return
        async with http_client() as client:
            response = await client.put(pending.url, content=data)
        assert response.status_code == 200

    async def test_cas_direct_upload_is_verified_then_stored(
        self, store: ObjectStore, cas: ContentAddressedStore
    ) -> None:
        data = os.urandom(MIB + 11)
        digest = hashlib.sha256(data).hexdigest()
        before = datetime.now().astimezone().replace(microsecond=0)

        pending = await cas.begin_upload(timedelta(minutes=10))

        assert pending.key == f"incoming/{pending.upload_id}"
        assert (pending.url is not None) == self.presigns
        assert before + timedelta(minutes=9) < pending.expires_at <= datetime.now().astimezone() + timedelta(minutes=10)
        await self.upload_directly(store, pending, data)

        ref = await cas.complete_upload(
            pending.upload_id, expected_sha256=digest, expected_size=len(data), max_size=2 * MIB
        )

        assert (ref.sha256, ref.size, ref.deduplicated) == (digest, len(data), False)
        assert await read_all(cas.open_verified(digest)) == data
        assert await store.list("incoming/") == []

        again = await cas.begin_upload(timedelta(minutes=10))
        await self.upload_directly(store, again, data)
        ref = await cas.complete_upload(again.upload_id, expected_sha256=digest, expected_size=len(data))
        assert ref.deduplicated
        assert await store.list("incoming/") == []

    async def test_cas_direct_upload_with_the_wrong_hash_is_rejected_and_removed(
        self, store: ObjectStore, cas: ContentAddressedStore
    ) -> None:
        data = os.urandom(MIB)
        claimed = hashlib.sha256(b"something else").hexdigest()
        pending = await cas.begin_upload(timedelta(minutes=10))
        await self.upload_directly(store, pending, data)

        with pytest.raises(BlobMismatch) as caught:
            await cas.complete_upload(pending.upload_id, expected_sha256=claimed, expected_size=len(data))

        assert caught.value.actual_sha256 == hashlib.sha256(data).hexdigest()
        assert await store.list("") == []

    async def test_cas_direct_upload_with_the_wrong_size_is_rejected_and_removed(
        self, store: ObjectStore, cas: ContentAddressedStore
    ) -> None:
        data = os.urandom(1000)
        pending = await cas.begin_upload(timedelta(minutes=10))
        await self.upload_directly(store, pending, data)

        with pytest.raises(BlobMismatch) as caught:
            await cas.complete_upload(
                pending.upload_id, expected_sha256=hashlib.sha256(data).hexdigest(), expected_size=999
            )

        assert (caught.value.actual_sha256, caught.value.actual_size) == (None, 1000)
        assert await store.list("") == []

    async def test_cas_direct_upload_over_the_limit_is_rejected_and_removed(
        self, store: ObjectStore, cas: ContentAddressedStore
    ) -> None:
        data = os.urandom(2000)
        pending = await cas.begin_upload(timedelta(minutes=10))
        await self.upload_directly(store, pending, data)

        with pytest.raises(BlobTooLarge):
            await cas.complete_upload(
                pending.upload_id,
                expected_sha256=hashlib.sha256(data).hexdigest(),
                expected_size=len(data),
                max_size=1000,
            )
        assert await store.list("") == []

    async def test_cas_completing_an_upload_that_never_arrived_raises_object_not_found(
        self, cas: ContentAddressedStore
    ) -> None:
        pending = await cas.begin_upload(timedelta(minutes=10))
        with pytest.raises(ObjectNotFound):
            await cas.complete_upload(pending.upload_id, expected_sha256="a" * 64, expected_size=1)
