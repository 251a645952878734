"""COG writing: in memory or through the on-disk temporary, the same bytes; a copy cut short is caught."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from terracover import cog
from terracover.cog import write_cog

TRANSFORM = Affine(10, 0, 600000, 0, -10, 4400000)


@pytest.mark.parametrize("overviews", [False, True])
def test_in_memory_and_on_disk_writes_give_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overviews: bool
) -> None:
    rng = np.random.default_rng(3)
    data = (1000 + 50 * rng.standard_normal((2, 700, 1100))).astype(np.uint16)
    assert data.nbytes <= cog.IN_MEMORY_BYTES
    kwargs = {"descriptions": ["a", "b"], "tags": {"k": "v"}, "overviews": overviews, "blocksize": 256}
    in_memory = write_cog(tmp_path / "mem.tif", data, TRANSFORM, 32630, 0, **kwargs)
    monkeypatch.setattr(cog, "IN_MEMORY_BYTES", 0)
    on_disk = write_cog(tmp_path / "disk.tif", data, TRANSFORM, 32630, 0, **kwargs)
    assert in_memory.read_bytes() == on_disk.read_bytes()
    assert not list(tmp_path.glob("*.parts.tif"))


def test_a_cog_cut_short_fails_the_layout_check(tmp_path: Path) -> None:
    data = np.arange(600 * 900, dtype=np.uint16).reshape(600, 900)
    path = write_cog(tmp_path / "x.tif", data, TRANSFORM, 32630, 0, overviews=True, blocksize=256, level=1)
    cog._check_layout(path, 1, "COG")  # complete: passes
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) - 100])  # as a full disk leaves it: the last tile's end is missing
    with pytest.raises(OSError, match="incomplete"):
        cog._check_layout(path, 1, "COG")
