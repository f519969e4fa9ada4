"""The ``ObjectStore`` contract on ``FolderObjectStore``, plus what only a file system can get wrong."""
from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from libs.storage.folder import FolderObjectStore
from libs.storage.port import InvalidKey
from tests.integration.storage.contract import ObjectStoreContract, chunks_of, failing_after, read_all


class TestFolderObjectStore(ObjectStoreContract):
    presigns = False

    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[FolderObjectStore]:
        store = FolderObjectStore(tmp_path / "objects")
        yield store
        await store.close()


@pytest.fixture
def store(tmp_path: Path) -> FolderObjectStore:
    return FolderObjectStore(tmp_path / "objects")


async def test_symlinks_escaping_the_root_are_refused(store: FolderObjectStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"not yours")
    (store.root / "escape").symlink_to(outside, target_is_directory=True)
    (store.root / "link").symlink_to(outside / "secret")

    for key in ("escape/secret", "escape/new", "link"):
        with pytest.raises(InvalidKey, match="outside the store root"):
            store.open(key)
        for call in (
            lambda: store.put(key, chunks_of(b"overwrite")),
            lambda: store.stat(key),
            lambda: store.exists(key),
            lambda: store.delete(key),
            lambda: store.move(key, "inside"),
            lambda: store.move("inside", key),
        ):
            with pytest.raises(InvalidKey, match="outside the store root"):
                await call()

    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert (outside / "secret").read_bytes() == b"not yours"
    assert await store.list("") == []  # links are never listed either


async def test_symlinks_inside_the_root_are_followed(store: FolderObjectStore) -> None:
    await store.put("real/file", chunks_of(b"data"))
    (store.root / "alias").symlink_to(store.root / "real", target_is_directory=True)
    assert await read_all(store.open("alias/file")) == b"data"


async def test_the_temp_directory_is_reserved(store: FolderObjectStore) -> None:
    with pytest.raises(InvalidKey, match="reserved"):
        await store.put(".tmp/x", chunks_of(b"x"))
    (store.root / "tmp-alias").symlink_to(store.root / ".tmp", target_is_directory=True)
    with pytest.raises(InvalidKey, match="reserved"):
        await store.put("tmp-alias/x", chunks_of(b"x"))


async def test_writes_leave_no_temp_files_and_are_owner_only(store: FolderObjectStore) -> None:
    await store.put("a/b", chunks_of(b"kept"))
    with pytest.raises(RuntimeError):
        await store.put("a/c", failing_after(b"x" * 100_000, RuntimeError("boom")))

    assert list((store.root / ".tmp").iterdir()) == []
    assert stat.S_IMODE(os.stat(store.root / "a" / "b").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(store.root).st_mode) == 0o700


async def test_move_is_a_rename_not_a_copy(store: FolderObjectStore) -> None:
    await store.put("src", chunks_of(b"x" * 10))
    inode = os.stat(store.root / "src").st_ino
    await store.move("src", "deep/dst")
    assert os.stat(store.root / "deep" / "dst").st_ino == inode


async def test_folder_store_cannot_presign(store: FolderObjectStore) -> None:
    await store.put("k", chunks_of(b"x"))
    assert await store.presigned_get_url("k", timedelta(minutes=1), filename="k.bin") is None
    assert await store.presigned_put_url("k", timedelta(minutes=1)) is None
