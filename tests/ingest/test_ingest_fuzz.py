"""Fuzz: 200 header mutations of a valid file; every input yields exactly one outcome.

Mutations (seeded, 1-3 per file, applied to the raw bytes): deleted keywords (primary,
SCI, structural), NaN or zero WCS values, garbage values of any keyword, huge SIP
coefficients, swapped cards, random bytes in a header, a lost END card, truncation.
Each file first gets its own ROOTNAME so that a successful file is its own exposure.
"""

from __future__ import annotations

import os

import numpy as np
import sqlalchemy as sa
from ingest_data import IR

from mvmdb.ingest import STATUSES, ingest

N_FILES = 200
KEYS = [
    "ROOTNAME", "INSTRUME", "DETECTOR", "FILTER", "EXPTIME", "OBSTYPE", "MTFLAG", "TARGNAME", "DATE-OBS",
    "EXPSTART", "PROPOSID", "LINENUM", "FILENAME", "CTYPE1", "CTYPE2", "CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2",
    "CD1_1", "CD1_2", "CD2_1", "CD2_2", "A_ORDER", "B_ORDER", "A_2_0", "B_0_2", "NAXIS1", "NAXIS2", "NAXIS",
    "BITPIX", "EXTNAME", "EXTVER", "SIZAXIS1", "PCOUNT", "GCOUNT", "XTENSION", "SIMPLE", "WCSNAME",
]
WCS_KEYS = ["CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2", "CD1_1", "CD1_2", "CD2_1", "CD2_2"]
GARBAGE = ["'garbage'", "T", "F", "1E999", "-", "''", "12345678901234567890123", "abc", "(1.0, 2.0)", "'",
           "-1", "0", "NAN", "'F555W;G141'", "99999999999"]


def _card_offsets(data: bytes, key: str) -> list[int]:
    head = f"{key:<8}".encode()
    out, pos = [], data.find(head)
    while pos != -1:
        if pos % 80 == 0 and data[pos + 8:pos + 10] in (b"= ", b"  "):
            out.append(pos)
        pos = data.find(head, pos + 1)
    return out


def _set(data: bytearray, pos: int, key: str, text: str) -> None:
    data[pos:pos + 80] = (f"{key:<8}= " + f"{text:>20}").ljust(80)[:80].encode()


def _header_spans(data: bytes) -> list[tuple[int, int]]:
    spans, start = [], 0
    end_card = b"END" + b" " * 77
    pos = data.find(end_card)
    while pos != -1:
        if pos % 80 == 0:
            spans.append((start, pos + 80))
            start = (pos // 2880 + 1) * 2880
        pos = data.find(end_card, pos + 1)
    return spans


def mutate(base: bytes, rng: np.random.Generator, index: int) -> tuple[bytes, list[str]]:
    data = bytearray(base)
    for pos in _card_offsets(data, "ROOTNAME"):
        _set(data, pos, "ROOTNAME", f"'iz{index:06d}q'")
    done = []
    for _ in range(int(rng.integers(1, 4))):
        kind = rng.choice(["delete", "nan", "zero", "garbage", "sip", "swap", "bytes", "end", "truncate"])
        if kind == "truncate":
            data = data[: int(rng.integers(0, len(data)))]
            done.append(f"truncate@{len(data)}")
            break
        if kind in ("delete", "garbage"):
            key = str(rng.choice(KEYS))
        elif kind in ("nan", "zero"):
            key = str(rng.choice(WCS_KEYS))
        else:
            key = "A_2_0"
        offsets = _card_offsets(data, key)
        if kind == "delete" and offsets:
            pos = offsets[int(rng.integers(len(offsets)))]
            data[pos:pos + 80] = b" " * 80
        elif kind in ("nan", "zero", "garbage", "sip") and offsets:
            text = {"nan": "NAN", "zero": "0.0", "sip": "1E30"}.get(kind) or str(rng.choice(GARBAGE))
            for pos in offsets:
                _set(data, pos, key, text)
        elif kind == "swap":
            spans = _header_spans(bytes(data))
            start, end = spans[int(rng.integers(len(spans)))]
            a, b = (int(x) for x in rng.integers(start // 80, end // 80 - 1, size=2))
            ca, cb = bytes(data[a * 80:(a + 1) * 80]), bytes(data[b * 80:(b + 1) * 80])
            data[a * 80:(a + 1) * 80], data[b * 80:(b + 1) * 80] = cb, ca
        elif kind == "bytes":
            spans = _header_spans(bytes(data))
            start, end = spans[int(rng.integers(len(spans)))]
            for pos in rng.integers(start, end, size=int(rng.integers(1, 6))):
                data[int(pos)] = int(rng.integers(0, 256))
        elif kind == "end":
            spans = _header_spans(bytes(data))
            _, end = spans[int(rng.integers(len(spans)))]
            data[end - 80:end] = b" " * 80
        done.append(f"{kind}:{key}")
    return bytes(data), done


def test_two_hundred_mutations_each_yield_one_outcome(engine, tmp_path):
    rng = np.random.default_rng(20261124)
    base = IR.read_bytes()
    paths, labels = [], {}
    for i in range(N_FILES):
        data, done = mutate(base, rng, i)
        path = tmp_path / f"m{i:03d}_flt.fits"
        path.write_bytes(data)
        paths.append(str(path))
        labels[str(path)] = done
    summary = ingest(engine, [tmp_path], jobs=2, batch_size=64)

    results = {r.path: r for r in summary.results}
    assert len(summary.results) == N_FILES and set(results) == set(paths)  # exactly one outcome per input
    assert all(r.status in STATUSES for r in summary.results)
    errors = {p for p, r in results.items() if r.status == "error"}
    assert all(results[p].reason for p in errors)
    with engine.connect() as conn:
        error_rows = conn.execute(sa.text("SELECT path, reason FROM ingest_error")).all()
        exposures = conn.execute(sa.text("SELECT ipppssoot, filetype, path FROM exposure")).all()
        orphans = conn.execute(sa.text(
            "SELECT count(*) FROM exposure e WHERE NOT EXISTS (SELECT 1 FROM chip c WHERE c.exposure_id = e.id)"
        )).scalar_one()
        hpx_less = conn.execute(sa.text(
            "SELECT count(*) FROM chip c WHERE NOT EXISTS (SELECT 1 FROM chip_hpx h WHERE h.chip_id = c.id)"
        )).scalar_one()
    assert sorted(p for p, _ in error_rows) == sorted(errors)  # one ingest_error row per failed file
    assert orphans == 0 and hpx_less == 0  # nothing half-written
    stored_paths = {row.path for row in exposures}
    assert not stored_paths & errors
    ok = [r for r in summary.results if r.status != "error"]
    identities = {(r.ipppssoot, r.filetype) for r in ok}
    assert identities == {(row.ipppssoot, row.filetype) for row in exposures}
    # files whose ROOTNAME survived are their own exposure, stored under their own path
    own = [r for r in ok if r.ipppssoot == f"iz{int(os.path.basename(r.path)[1:4]):06d}q"]
    assert all(r.path in stored_paths for r in own)
    assert len(errors) > 40 and len(ok) > 40, (len(errors), len(ok))  # the mutations bite, and not always
    assert summary.exit_code == 2
