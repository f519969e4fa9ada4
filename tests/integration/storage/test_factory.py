"""``open_object_store`` URL parsing and ``redact_url`` (no server needed: stores do no I/O until used)."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from libs.storage.factory import open_object_store, redact_url
from libs.storage.folder import FolderObjectStore
from libs.storage.s3 import S3ObjectStore


def test_absolute_file_url_opens_a_folder_store(tmp_path: Path) -> None:
    store = open_object_store(f"file://{tmp_path}/objects")
    assert isinstance(store, FolderObjectStore)
    assert store.name == "folder"
    assert store.root == (tmp_path / "objects").resolve()


def test_relative_file_url_is_relative_to_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_object_store("file://./data/objects")
    assert isinstance(store, FolderObjectStore)
    assert store.root == (tmp_path / "data" / "objects").resolve()


@pytest.mark.parametrize(
    "url",
    ["file://host/path", "file://./", "file:relative", "file:///abs?x=1", "file://../up"],
)
def test_malformed_file_urls_are_rejected(url: str) -> None:
    with pytest.raises(ValueError):
        open_object_store(url)


async def test_s3_url_settings_reach_the_store() -> None:
    store = open_object_store(
        "s3://AKIA%2Fkey:se%2Fcr%40et@minio.internal:9000/models"
        "?secure=true&region=eu-west-3&create_bucket=false&part_size=8388608"
    )
    assert isinstance(store, S3ObjectStore)
    assert (store.name, store.bucket) == ("s3", "models")
    # Presigning is offline (explicit region, no bucket creation), and shows what was configured.
    url = await store.presigned_get_url("k", timedelta(minutes=1))
    assert url.startswith("https://minio.internal:9000/models/k?")
    assert "X-Amz-Credential=AKIA%2Fkey%2F" in url
    assert "%2Feu-west-3%2Fs3%2F" in url
    await store.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://host/bucket", "unsupported object store URL scheme"),
        ("memory://", "unsupported object store URL scheme"),
        ("s3://host:9000/bucket", "credentials"),
        ("s3://a:b@host:9000/", "bucket"),
        ("s3://a:b@host:9000/bucket/extra", "bucket"),
        ("s3://a:b@host:9000/bucket?secure=maybe", "true or false"),
        ("s3://a:b@host:9000/bucket?sekure=true", "unknown parameter"),
        ("s3://a:b@host:9000/bucket?region=x&region=y", "twice"),
        ("s3://a:b@host:9000/bucket?part_size=big", "integer"),
        ("s3://a:b@host:9000/bucket?part_size=1024", "part_size"),
        ("s3://a:b@host:99999/bucket", "port"),
        ("s3://a:b@host:9000/Not_A_Bucket", "invalid bucket name"),
    ],
)
def test_malformed_s3_urls_are_rejected_without_leaking_the_secret(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        open_object_store(url)
    assert ":b@" not in str(caught.value)


def test_redact_url_hides_only_the_secret() -> None:
    assert redact_url("s3://AK:s3cr%2Ft@host:9000/bucket?secure=true") == "s3://AK:***@host:9000/bucket?secure=true"
    assert redact_url("s3://AK:p@ss@host/b") == "s3://AK:***@host/b"
    assert redact_url("s3://host:9000/bucket") == "s3://host:9000/bucket"
    assert redact_url("file:///var/lib/cairn") == "file:///var/lib/cairn"
    assert "secret" not in redact_url("s3://AK:secret@[::1")
