"""Artifacts over real HTTP on both object stores: streamed uploads, deduplication, the size limit,
hash checks, expiring download links (HMAC-signed on the folder store, presigned on S3), integrity
checks while streaming, and direct (presigned) uploads on S3."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest

from libs.storage.factory import open_object_store
from libs.storage.signing import sign_link
from tests.integration.version.conftest import LINK_SECRET, MAX_ARTIFACT_BYTES, MIB, PUBLIC_URL
from tests.support.kafka import header

pytestmark = pytest.mark.asyncio


def weights(size: int) -> bytes:
    return os.urandom(size)


async def chunked(data: bytes, chunk: int = 256 << 10):
    """An async body: httpx sends it with chunked transfer encoding, no Content-Length."""
    for i in range(0, len(data), chunk):
        yield data[i:i + chunk]


async def new_version(versions, api, version: str = "1.0.0") -> dict:
    model = await versions.register_model()
    response = await api.post(f"/internal/models/{model['model_id']}/versions", json={"version": version})
    assert response.status_code == 201, response.text
    return {**response.json(), "name": model["name"]}


async def fetch(url: str) -> tuple[httpx.Response, bytes]:
    """GET with no credentials at all: the link is the authorisation."""
    async with httpx.AsyncClient(timeout=60) as plain:
        async with plain.stream("GET", url) as response:
            body = b"".join([chunk async for chunk in response.aiter_raw()])
    return response, body


async def raw_request(versions, method: str, path: str, headers: dict[str, str]) -> bytes:
    """Send only the request head (a client that announces a body it has not sent yet) and read the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", versions.folder.port)
    try:
        head = {"host": "127.0.0.1", **versions.headers(), **headers, "connection": "close"}
        writer.write(f"{method} {path} HTTP/1.1\r\n".encode()
                     + "".join(f"{k}: {v}\r\n" for k, v in head.items()).encode() + b"\r\n")
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()


def artifact_url(versions, sha256: str, *, expires: int, name: str, sig: str | None = None) -> str:
    sig = sig or sign_link(f"/api/v1/artifacts/{sha256}", expires, LINK_SECRET.encode(), extra={"name": name})
    return f"{versions.folder.url}/internal/artifacts/{sha256}?expires={expires}&name={name}&sig={sig}"


# ---- folder store -----------------------------------------------------------------------------------

async def test_streamed_upload_then_download_by_signed_link_on_the_folder_store(versions, versions_topic):
    data = weights(5 * MIB + 12345)
    sha = hashlib.sha256(data).hexdigest()
    async with versions.client(versions.folder) as api:
        v = await new_version(versions, api, "1.2.0")
        mid = v["model_id"]
        stored = await api.put(f"/internal/models/{mid}/versions/1.2.0/artifact", content=chunked(data),
                               headers={"x-content-sha256": sha, "content-type": "application/octet-stream"})
        assert stored.status_code == 201, stored.text
        assert stored.json() == {"sha256": sha, "size": len(data), "storage": "folder", "deduplicated": False}
        shown = (await api.get(f"/internal/models/{mid}/versions/1.2.0")).json()
        assert shown["artifact"] == {"sha256": sha, "size": len(data), "storage": "folder"}
        assert versions.blob_path(sha).stat().st_size == len(data)
        event = await versions_topic.wait_for(lambda r: r.key == mid.encode() and header(r, "ce_type") == "ArtifactStored")
        assert orjson.loads(event.value)["artifact"]["sha256"] == sha

        link = await api.get(f"/internal/models/{mid}/download", params={"expires_in": 600})
        assert link.status_code == 200, link.text
        body = link.json()
    assert body["version"] == "1.2.0" and body["sha256"] == sha and body["size"] == len(data)
    assert body["filename"] == f"{v['name']}-1.2.0.pt"
    url = urlsplit(body["download_url"])
    assert body["download_url"].startswith(f"{PUBLIC_URL}/api/v1/artifacts/{sha}?")
    query = parse_qs(url.query)
    assert query["name"] == [body["filename"]] and abs(int(query["expires"][0]) - (time.time() + 600)) < 60

    response, downloaded = await fetch(versions.internal_link(versions.folder, body["download_url"]))
    assert response.status_code == 200
    assert hashlib.sha256(downloaded).hexdigest() == sha and len(downloaded) == len(data)
    assert response.headers["content-length"] == str(len(data))
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["etag"] == f'"{sha}"'
    assert response.headers["repr-digest"] == "sha-256=:" + base64.b64encode(bytes.fromhex(sha)).decode() + ":"
    assert response.headers["cache-control"] == "private, max-age=0"
    assert response.headers["content-disposition"].startswith(f'attachment; filename="{body["filename"]}"')


async def test_identical_weights_are_stored_once_and_deleted_with_their_last_version(versions):
    data = weights(MIB + 7)
    sha = hashlib.sha256(data).hexdigest()
    async with versions.client(versions.folder) as api:
        a = await new_version(versions, api)
        b = await new_version(versions, api)
        first = await api.put(f"/internal/models/{a['model_id']}/versions/1.0.0/artifact", content=data)
        second = await api.put(f"/internal/models/{b['model_id']}/versions/1.0.0/artifact", content=data)
        assert first.json()["deduplicated"] is False and second.json()["deduplicated"] is True
        assert first.json()["sha256"] == second.json()["sha256"] == sha
        blob_dir = versions.blob_path(sha).parent
        assert [p.name for p in blob_dir.iterdir() if p.name == sha] == [sha]

        assert (await api.delete(f"/internal/models/{a['model_id']}/versions/1.0.0")).status_code == 204
        assert versions.blob_path(sha).exists()  # b still uses it
        verified = await api.post(f"/internal/models/{b['model_id']}/versions/1.0.0/verify")
        assert verified.json() == {"ok": True, "sha256": sha, "size": len(data)}
        assert (await api.delete(f"/internal/models/{b['model_id']}/versions/1.0.0")).status_code == 204
        assert not versions.blob_path(sha).exists()


async def test_artifacts_are_immutable(versions):
    async with versions.client(versions.folder) as api:
        v = await new_version(versions, api)
        url = f"/internal/models/{v['model_id']}/versions/1.0.0/artifact"
        assert (await api.put(url, content=b"first weights")).status_code == 201
        again = await api.put(url, content=b"other weights")
        assert again.status_code == 409 and "immutable" in again.json()["detail"]
        assert (await api.get(f"/internal/models/{v['model_id']}/versions/1.0.0")).json()["artifact"]["sha256"] == \
            hashlib.sha256(b"first weights").hexdigest()


async def test_a_body_over_the_limit_is_refused_with_413_and_nothing_is_kept(versions):
    async with versions.client(versions.folder) as api:
        v = await new_version(versions, api)
        url = f"/internal/models/{v['model_id']}/versions/1.0.0/artifact"
        before = {p.name for p in versions.folder_root.rglob("*") if p.is_file()}
        streamed = await api.put(url, content=chunked(b"\0" * (MAX_ARTIFACT_BYTES + 1), MIB))
        assert streamed.status_code == 413, streamed.text
        assert streamed.json()["code"] == "payload_too_large"
        declared = await raw_request(versions, "PUT", url, {"content-length": str(MAX_ARTIFACT_BYTES + 1)})
        assert declared.startswith(b"HTTP/1.1 413 "), declared[:200]  # answered before any byte of the body
        assert (await api.get(f"/internal/models/{v['model_id']}/versions/1.0.0")).json()["artifact"] is None
        assert {p.name for p in versions.folder_root.rglob("*") if p.is_file()} == before
        exactly = await api.put(url, content=chunked(b"\1" * MAX_ARTIFACT_BYTES, MIB))
        assert exactly.status_code == 201 and exactly.json()["size"] == MAX_ARTIFACT_BYTES


async def test_a_declared_sha256_that_does_not_match_is_refused(versions):
    data = weights(300_000)
    async with versions.client(versions.folder) as api:
        v = await new_version(versions, api)
        url = f"/internal/models/{v['model_id']}/versions/1.0.0/artifact"
        wrong = await api.put(url, content=data, headers={"x-content-sha256": "0" * 64})
        assert wrong.status_code == 422
        assert wrong.json()["errors"][0]["field"] == "x-content-sha256"
        malformed = await api.put(url, content=data, headers={"x-content-sha256": "abc"})
        assert malformed.status_code == 422
        assert (await api.get(f"/internal/models/{v['model_id']}/versions/1.0.0")).json()["artifact"] is None
        assert not versions.blob_path(hashlib.sha256(data).hexdigest()).exists()
        right = await api.put(url, content=data, headers={"x-content-sha256": hashlib.sha256(data).hexdigest().upper()})
        assert right.status_code == 201


async def test_a_corrupted_blob_never_downloads_cleanly(versions, caplog):
    data = weights(3 * MIB + 1)
    sha = hashlib.sha256(data).hexdigest()
    async with versions.client(versions.folder) as api:
        v = await new_version(versions, api)
        mid = v["model_id"]
        assert (await api.put(f"/internal/models/{mid}/versions/1.0.0/artifact", content=data)).status_code == 201
        link = (await api.get(f"/internal/models/{mid}/download", params={"version": "1.0.0"})).json()
        # damage the stored bytes behind the store's back, keeping the size
        with open(versions.blob_path(sha), "r+b") as blob:
            blob.seek(2 * MIB)
            blob.write(b"\xff" * 16)
        verified = await api.post(f"/internal/models/{mid}/versions/1.0.0/verify")
        assert verified.status_code == 200 and verified.json()["ok"] is False
    url = versions.internal_link(versions.folder, link["download_url"])
    async with httpx.AsyncClient(timeout=60) as plain:
        received = 0
        with pytest.raises(httpx.HTTPError):
            async with plain.stream("GET", url) as response:
                assert response.status_code == 200  # headers went out before the damage was found
                async for chunk in response.aiter_raw():
                    received += len(chunk)
    assert received < len(data)
    assert any("corrupted" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)


async def test_a_small_corrupted_blob_is_refused_before_any_byte(versions):
    data = weights(100_000)  # one chunk: the check is done before the response starts
    sha = hashlib.sha256(data).hexdigest()
    async with versions.client(versions.folder) as api:
        v = await new_version(versions, api)
        await api.put(f"/internal/models/{v['model_id']}/versions/1.0.0/artifact", content=data)
        link = (await api.get(f"/internal/models/{v['model_id']}/download")).json()
    versions.blob_path(sha).write_bytes(b"\0" * len(data))
    response, body = await fetch(versions.internal_link(versions.folder, link["download_url"]))
    assert response.status_code == 500 and orjson.loads(body)["code"] == "artifact_corrupted"


async def test_expired_and_tampered_links_are_refused(versions):
    data = weights(50_000)
    sha = hashlib.sha256(data).hexdigest()
    async with versions.client(versions.folder) as api:
        v = await new_version(versions, api)
        await api.put(f"/internal/models/{v['model_id']}/versions/1.0.0/artifact", content=data)
    name = "model-1.0.0.pt"
    now = int(time.time())
    good = artifact_url(versions, sha, expires=now + 300, name=name)
    response, body = await fetch(good)
    assert response.status_code == 200 and body == data

    expired, body = await fetch(artifact_url(versions, sha, expires=now - 5, name=name))
    assert expired.status_code == 410
    assert expired.headers["content-type"] == "application/problem+json" and orjson.loads(body)["code"] == "link_expired"

    sig = parse_qs(urlsplit(good).query)["sig"][0]
    tampered = [
        good.replace(f"name={name}", "name=other.pt"),  # another file name
        good.replace(f"expires={now + 300}", f"expires={now + 99999}"),  # a later expiry
        good.replace(f"sig={sig}", f"sig={sig[:-2]}{'AA' if sig[-2:] != 'AA' else 'BB'}"),  # a forged signature
        good.replace(f"&sig={sig}", ""),  # no signature
        good.replace(f"expires={now + 300}", "expires=soon"),
        artifact_url(versions, sha, expires=now + 300, name=name, sig=sign_link(
            f"/api/v1/artifacts/{sha}", now + 300, b"some-other-secret-of-32-bytes!!", extra={"name": name})),
    ]
    for url in tampered:
        refused, body = await fetch(url)
        assert refused.status_code == 403, url
        assert orjson.loads(body)["code"] == "forbidden"
    # a genuine link to bytes that are not stored
    missing, _ = await fetch(artifact_url(versions, "ab" * 32, expires=now + 300, name=name))
    assert missing.status_code == 404


async def test_download_link_rules(versions):
    async with versions.client(versions.folder) as api:
        v = await new_version(versions, api)
        mid = v["model_id"]
        url = f"/internal/models/{mid}/download"
        assert (await api.get(url)).status_code == 404  # no artifact anywhere yet
        await api.put(f"/internal/models/{mid}/versions/1.0.0/artifact", content=b"v1 weights")
        await api.post(f"/internal/models/{mid}/versions", json={"version": "1.1.0"})  # no artifact
        latest = (await api.get(url)).json()
        assert latest["version"] == "1.0.0"  # the highest version that has an artifact
        assert (await api.get(url, params={"version": "1.1.0"})).status_code == 404
        assert (await api.get(url, params={"version": "3.0.0"})).status_code == 404
        for bad in (0, -1, 7 * 24 * 3600 + 1):
            refused = await api.get(url, params={"expires_in": bad})
            assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "expires_in", bad
        await api.put(f"/internal/models/{mid}/aliases/stable-build", json={"version": "1.0.0"})
        assert (await api.get(url, params={"version": "stable-build"})).json()["version"] == "1.0.0"


async def test_direct_upload_is_not_offered_by_the_folder_store(versions):
    async with versions.client(versions.folder) as api:
        v = await new_version(versions, api)
        begun = await api.post(f"/internal/models/{v['model_id']}/versions/1.0.0/artifact/uploads", json={})
    assert begun.status_code == 201
    body = begun.json()
    assert body["upload_url"] is None and body["method"] == "PUT" and "artifact" in body["detail"]


# ---- S3 ---------------------------------------------------------------------------------------------

async def test_streamed_upload_then_presigned_download_on_s3(versions):
    data = weights(7 * MIB + 3)  # over the 5 MiB part size: a multipart upload
    sha = hashlib.sha256(data).hexdigest()
    async with versions.client(versions.s3) as api:
        v = await new_version(versions, api, "2.0.0")
        mid = v["model_id"]
        stored = await api.put(f"/internal/models/{mid}/versions/2.0.0/artifact", content=chunked(data),
                               headers={"x-content-sha256": sha})
        assert stored.status_code == 201, stored.text
        assert stored.json() == {"sha256": sha, "size": len(data), "storage": "s3", "deduplicated": False}
        link = (await api.get(f"/internal/models/{mid}/download", params={"expires_in": 120})).json()
        assert link["filename"] == f"{v['name']}-2.0.0.pt"
        assert link["download_url"].startswith(versions.moto.http_url + f"/{versions.bucket}/")
        assert "X-Amz-Signature=" in link["download_url"]
        response, downloaded = await fetch(link["download_url"])
        assert response.status_code == 200
        assert hashlib.sha256(downloaded).hexdigest() == sha
        again = await new_version(versions, api)
        dup = await api.put(f"/internal/models/{again['model_id']}/versions/1.0.0/artifact", content=data)
        assert dup.json()["deduplicated"] is True
        assert (await api.post(f"/internal/models/{mid}/versions/2.0.0/verify")).json()["ok"] is True


async def test_presigned_upload_and_complete_on_s3(versions):
    data = weights(2 * MIB + 11)
    sha = hashlib.sha256(data).hexdigest()
    async with versions.client(versions.s3) as api, httpx.AsyncClient(timeout=60) as plain:
        v = await new_version(versions, api)
        base = f"/internal/models/{v['model_id']}/versions/1.0.0/artifact/uploads"
        begun = await api.post(base, json={"expires_in": 600})
        assert begun.status_code == 201, begun.text
        upload = begun.json()
        assert upload["upload_url"].startswith(versions.moto.http_url) and upload["method"] == "PUT"
        assert (await plain.put(upload["upload_url"], content=data)).status_code == 200
        done = await api.post(f"{base}/{upload['upload_id']}/complete", json={"sha256": sha, "size": len(data)})
        assert done.status_code == 201, done.text
        assert done.json() == {"sha256": sha, "size": len(data), "storage": "s3", "deduplicated": False}
        assert (await api.get(f"/internal/models/{v['model_id']}/versions/1.0.0")).json()["artifact"]["sha256"] == sha
        link = (await api.get(f"/internal/models/{v['model_id']}/download")).json()
        _, downloaded = await fetch(link["download_url"])
        assert hashlib.sha256(downloaded).hexdigest() == sha
        assert (await api.post(base, json={})).status_code == 409  # it has its artifact now


async def test_presigned_uploads_that_do_not_match_are_refused(versions):
    data = weights(400_000)
    sha = hashlib.sha256(data).hexdigest()
    async with versions.client(versions.s3) as api, httpx.AsyncClient(timeout=60) as plain:
        v = await new_version(versions, api)
        other = await new_version(versions, api)
        base = f"/internal/models/{v['model_id']}/versions/1.0.0/artifact/uploads"

        async def uploaded() -> str:
            upload = (await api.post(base, json={"expires_in": 60})).json()
            assert (await plain.put(upload["upload_url"], content=data)).status_code == 200
            return upload["upload_id"]

        wrong_hash = await api.post(f"{base}/{await uploaded()}/complete", json={"sha256": "1" * 64, "size": len(data)})
        assert wrong_hash.status_code == 422 and wrong_hash.json()["errors"][0]["field"] == "sha256"
        wrong_size = await api.post(f"{base}/{await uploaded()}/complete", json={"sha256": sha, "size": len(data) - 1})
        assert wrong_size.status_code == 422 and wrong_size.json()["errors"][0]["field"] == "size"
        bad_body = await api.post(f"{base}/{await uploaded()}/complete", json={"sha256": "xyz", "size": 1})
        assert bad_body.status_code == 422 and bad_body.json()["errors"][0]["field"] == "sha256"
        assert (await api.get(f"/internal/models/{v['model_id']}/versions/1.0.0")).json()["artifact"] is None

        # an upload belongs to the version that asked for it
        mine = await uploaded()
        elsewhere = await api.post(f"/internal/models/{other['model_id']}/versions/1.0.0/artifact/uploads/{mine}/complete",
                                   json={"sha256": sha, "size": len(data)})
        assert elsewhere.status_code == 404
        nothing_sent = (await api.post(base, json={})).json()["upload_id"]
        assert (await api.post(f"{base}/{nothing_sent}/complete", json={"sha256": sha, "size": 1})).status_code == 404
        assert (await api.post(f"{base}/not-an-id/complete", json={"sha256": sha, "size": 1})).status_code == 404
        too_long = await api.post(base, json={"expires_in": 7 * 24 * 3600 + 1})
        assert too_long.status_code == 422 and too_long.json()["errors"][0]["field"] == "expires_in"
        assert (await api.post(f"{base}/{mine}/complete", json={"sha256": sha, "size": len(data)})).status_code == 201


async def test_verify_finds_an_object_damaged_on_s3(versions):
    data = weights(200_000)
    sha = hashlib.sha256(data).hexdigest()
    async with versions.client(versions.s3) as api:
        v = await new_version(versions, api)
        await api.put(f"/internal/models/{v['model_id']}/versions/1.0.0/artifact", content=data)
        verify = f"/internal/models/{v['model_id']}/versions/1.0.0/verify"
        assert (await api.post(verify)).json() == {"ok": True, "sha256": sha, "size": len(data)}
        raw = open_object_store(versions.moto.url_for(versions.bucket))
        try:
            async def damaged():
                yield b"\0" * len(data)

            await raw.put(f"blobs/sha256/{sha[:2]}/{sha}", damaged())
        finally:
            await raw.close()
        assert (await api.post(verify)).json() == {"ok": False, "sha256": sha, "size": len(data)}
