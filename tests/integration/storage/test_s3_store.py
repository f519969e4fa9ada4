"""The ``ObjectStore`` contract on ``S3ObjectStore`` against a real S3 server (moto_server), plus S3 specifics."""
from __future__ import annotations

import asyncio
import os
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import minio.api
import pytest

from libs.storage.factory import open_object_store
from libs.storage.port import StorageError
from libs.storage.s3 import S3ObjectStore
from libs.storage.testing import MotoS3Server
from tests.integration.storage.contract import (
    MIB,
    ObjectStoreContract,
    chunks_of,
    http_client,
    read_all,
)
from tests.integration.storage.sigv4 import verify_presigned_url

PART_SIZE = 5 * MIB  # the S3 minimum, so multi-MiB test objects go multipart


def new_bucket() -> str:
    return f"cairn-test-{uuid.uuid4().hex[:16]}"


def make_store(server: MotoS3Server, bucket: str | None = None, **options: object) -> S3ObjectStore:
    return S3ObjectStore(
        server.endpoint,
        server.access_key,
        server.secret_key,
        bucket or new_bucket(),
        region=server.region,
        part_size=PART_SIZE,
        **options,  # type: ignore[arg-type]
    )


class TestS3ObjectStore(ObjectStoreContract):
    presigns = True

    @pytest.fixture
    async def store(self, moto_s3: MotoS3Server) -> AsyncIterator[S3ObjectStore]:
        store = make_store(moto_s3)
        yield store
        await store.close()

    def check_presigned_url(self, url: str, *, method: str, now: datetime) -> None:
        verify_presigned_url(
            url,
            method=method,
            access_key=MotoS3Server.access_key,
            secret_key=MotoS3Server.secret_key,
            region=MotoS3Server.region,
            now=now,
        )


@pytest.fixture
async def store(moto_s3: MotoS3Server) -> AsyncIterator[S3ObjectStore]:
    store = make_store(moto_s3)
    yield store
    await store.close()


async def multipart_uploads_in_progress(server: MotoS3Server, bucket: str) -> list[str]:
    async with http_client() as client:
        response = await client.get(f"{server.http_url}/{bucket}?uploads")
    response.raise_for_status()
    return [el.text or "" for el in ET.fromstring(response.content).iter() if el.tag.endswith("UploadId")]


async def test_a_failed_multipart_upload_is_aborted(store: S3ObjectStore, moto_s3: MotoS3Server) -> None:
    async def fails_once_a_multipart_upload_exists() -> AsyncIterator[bytes]:
        async for chunk in chunks_of(os.urandom(2 * PART_SIZE + 1)):
            yield chunk
        # Fail only once the server really holds an unfinished upload, so the abort is what removes it.
        for _ in range(200):
            if await multipart_uploads_in_progress(moto_s3, store.bucket):
                raise RuntimeError("client went away")
            await asyncio.sleep(0.05)
        raise AssertionError("no multipart upload was started")

    with pytest.raises(RuntimeError, match="client went away"):
        await store.put("big", fails_once_a_multipart_upload_exists())

    assert await multipart_uploads_in_progress(moto_s3, store.bucket) == []
    assert not await store.exists("big")


async def test_large_objects_are_uploaded_in_parts(store: S3ObjectStore) -> None:
    await store.put("big", chunks_of(os.urandom(2 * PART_SIZE + 1)))
    info = await store.stat("big")
    assert info is not None and info.etag is not None and info.etag.endswith("-3")


async def test_move_of_an_object_above_the_single_copy_limit_uses_a_multipart_copy(
    store: S3ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # S3 copies at most 5 GiB in one request; lower minio's threshold to 5 MiB so a small object
    # takes the same UploadPartCopy path a 6 GiB model would.
    monkeypatch.setattr(minio.api, "MAX_PART_SIZE", PART_SIZE)
    data = os.urandom(2 * PART_SIZE + 12345)
    await store.put("incoming/big", chunks_of(data))

    await store.move("incoming/big", "blobs/big")

    info = await store.stat("blobs/big")
    assert info is not None and info.etag is not None and info.etag.endswith("-3")
    assert await read_all(store.open("blobs/big")) == data
    assert not await store.exists("incoming/big")


async def test_the_bucket_is_created_on_first_use(moto_s3: MotoS3Server) -> None:
    bucket = new_bucket()
    store = make_store(moto_s3, bucket)
    assert await store.list("") == []
    await store.put("k", chunks_of(b"x"))
    again = make_store(moto_s3, bucket)  # an existing bucket is reused, not an error
    assert await read_all(again.open("k")) == b"x"
    await store.close()
    await again.close()


async def test_without_create_bucket_a_missing_bucket_is_a_storage_error(moto_s3: MotoS3Server) -> None:
    store = make_store(moto_s3, create_bucket=False)
    with pytest.raises(StorageError, match="NoSuchBucket"):
        await store.put("k", chunks_of(b"x"))
    await store.close()


async def test_a_closed_store_refuses_work(moto_s3: MotoS3Server) -> None:
    store = make_store(moto_s3)
    await store.close()
    with pytest.raises(StorageError, match="closed"):
        await store.stat("k")


async def test_the_factory_builds_a_working_s3_store(moto_s3: MotoS3Server) -> None:
    store = open_object_store(moto_s3.url_for(new_bucket(), part_size=PART_SIZE))
    assert store.name == "s3"
    await store.put("k", chunks_of(b"via url"))
    assert await read_all(store.open("k")) == b"via url"
    await store.close()


async def test_presigned_urls_can_be_signed_for_a_public_endpoint(moto_s3: MotoS3Server) -> None:
    port = moto_s3.endpoint.rsplit(":", 1)[1]
    store = make_store(moto_s3, public_endpoint=f"s3.example.test:{port}", public_secure=True)
    await store.put("k", chunks_of(b"x"))

    url = await store.presigned_get_url("k", timedelta(minutes=5))

    assert url.startswith(f"https://s3.example.test:{port}/{store.bucket}/k?")
    verify_presigned_url(
        url,
        method="GET",
        access_key=moto_s3.access_key,
        secret_key=moto_s3.secret_key,
        region=moto_s3.region,
        now=datetime.now().astimezone(),
    )
    await store.close()


async def test_presigned_url_expiry_is_bounded_by_sigv4(store: S3ObjectStore) -> None:
    for expires in (timedelta(0), timedelta(milliseconds=500), timedelta(days=7, seconds=1)):
        with pytest.raises(ValueError, match="expiry"):
            await store.presigned_get_url("k", expires)
        with pytest.raises(ValueError, match="expiry"):
            await store.presigned_put_url("k", expires)
