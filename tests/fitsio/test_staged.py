"""Staged front-to-back writing: the same bytes and digest with and without O_DIRECT, whatever the sizes."""

from __future__ import annotations

import errno
import hashlib
import os

import numpy as np
import pytest

from mvmdb.fitsio import staged
from mvmdb.fitsio.staged import ALIGN, CHUNK, StagedFile


def _write(path, pieces, direct=True):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        w = StagedFile(fd, direct=direct)
        for p in pieces:
            if isinstance(p, np.ndarray):
                w.write_array(p, p.dtype.newbyteorder(">"))
            else:
                w.write(p)
        return w.finish(), w.size, w.direct
    finally:
        os.close(fd)


def _expected(pieces) -> bytes:
    return b"".join(p.astype(p.dtype.newbyteorder(">")).tobytes() if isinstance(p, np.ndarray) else bytes(p)
                    for p in pieces)


@pytest.mark.parametrize("direct", [True, False])
def test_bytes_and_digest_across_buffer_edges(tmp_path, direct):
    rng = np.random.default_rng(7)
    # odd sizes: a header, rows that straddle the staging buffers, a tail shorter than ALIGN
    pieces = [b"H" * 2880, rng.normal(size=(2500, 777)).astype(np.float32), b"\0" * 100,
              rng.integers(-99, 99, (1500, 333)).astype(np.int16), b"T" * (ALIGN // 2 + 2)]
    want = _expected(pieces)
    assert len(want) > (staged.N_BUFFERS + 1) * CHUNK  # every staging buffer is used, some twice
    digest, size, _ = _write(tmp_path / "f.bin", pieces, direct=direct)
    assert size == len(want) == os.path.getsize(tmp_path / "f.bin")
    assert (tmp_path / "f.bin").read_bytes() == want
    assert digest == hashlib.sha256(want).hexdigest()


def test_a_file_system_refusing_direct_writes_gets_buffered_ones(tmp_path, monkeypatch):
    """EINVAL from an O_DIRECT write (some file systems accept the flag, refuse the write) switches
    the file to the page cache and writes the same bytes."""
    real = os.pwrite
    refused = []

    def pwrite(fd, data, offset):
        if not refused:
            refused.append(offset)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, data, offset)

    monkeypatch.setattr(staged.os, "pwrite", pwrite)
    pieces = [b"x" * (3 * CHUNK + 5)]
    digest, size, direct = _write(tmp_path / "g.bin", pieces)
    assert refused and direct is False
    assert (tmp_path / "g.bin").read_bytes() == pieces[0] and digest == hashlib.sha256(pieces[0]).hexdigest()


def test_a_write_error_is_raised(tmp_path, monkeypatch):
    def pwrite(fd, data, offset):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(staged.os, "pwrite", pwrite)
    fd = os.open(tmp_path / "h.bin", os.O_WRONLY | os.O_CREAT)
    try:
        w = StagedFile(fd)
        with pytest.raises(OSError, match="No space left"):
            w.write(b"y" * (4 * CHUNK))  # the error surfaces when a buffer is reused, or at finish()
            w.finish()
        w.abandon()
    finally:
        os.close(fd)
