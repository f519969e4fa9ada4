"""``rechunk``: the storage layer's network-piece to 1 MiB-block regrouping keeps every byte in order."""
from __future__ import annotations

import pytest

from libs.storage.streams import rechunk

pytestmark = pytest.mark.asyncio


async def _collect(pieces, block):
    async def source():
        for piece in pieces:
            yield piece
    return [out async for out in rechunk(source(), block)]


async def test_small_pieces_are_grouped_into_blocks_and_the_tail_kept():
    pieces = [bytes([i % 256]) * 7 for i in range(100)]  # 700 bytes in pieces of 7
    out = await _collect(pieces, 64)
    assert b"".join(out) == b"".join(pieces)
    assert all(len(block) >= 64 for block in out[:-1]) and 0 < len(out[-1]) <= 70


async def test_a_big_piece_passes_through_uncopied_and_empty_input_gives_nothing():
    big = b"y" * 1000
    out = await _collect([big], 64)
    assert out == [big] and out[0] is big
    assert await _collect([], 64) == []
    assert await _collect([b"", b"ab", b""], 64) == [b"ab"]
