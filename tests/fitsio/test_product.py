"""Product FITS writing: layout, streaming sources, atomicity, checksum."""

from __future__ import annotations

import hashlib
import os
import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from mvmdb.fitsio.product import LayerSpool, TileSpool, write_product


def _wcs_header():
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [181.0, 27.9]
    w.wcs.crpix = [-500.0, 300.0]
    w.wcs.cd = [[-1.1111111111111112e-05, 0.0], [0.0, 1.1111111111111112e-05]]
    return w.to_header()


def _arrays(shape=(300, 200), seed=0):
    rng = np.random.default_rng(seed)
    sci = rng.normal(0.1, 0.01, shape).astype(np.float32)
    sci[:5] = np.nan
    wht = np.where(np.isnan(sci), 0, 900.0).astype(np.float32)
    nexp = np.where(np.isnan(sci), 0, 3).astype(np.int16)
    return sci, wht, nexp


PRIMARY = {
    "TELESCOP": "HST",
    "SCELLID": ("p1889x07y19", "Sky cell identifier"),
    "NPIXFRAC": (0.25, "Fraction of pixels with data"),
    "MEANWHT": (900.0, "Mean weight (typically exposure time) over pixels with data"),
}
HDRTAB = [
    {"ROOTNAME": "jbt122x8q", "EXTNAME": "SCI", "EXTVER": 1, "EXPTIME": 450.0, "PROPOSID": 12286},
    {"ROOTNAME": "jbt122x8q", "EXTNAME": "SCI", "EXTVER": 2, "EXPTIME": 450.0, "PROPOSID": 12286},
    {"ROOTNAME": "jbt122xaq", "EXTNAME": "SCI", "EXTVER": 1, "EXPTIME": 500.0},
]


def test_layout_values_and_checksum(tmp_path):
    sci, wht, nexp = _arrays()
    target = tmp_path / "hst_skycell-p1889x07y19_acs_wfc_f814w_all_drc.fits"
    res = write_product(target, primary=PRIMARY, sci=sci, wht=wht, nexp=nexp, wcs_header=_wcs_header(),
                        hdrtab=HDRTAB, extra_headers={"SCI": {"BUNIT": ("ELECTRONS/S", "brightness units")}})
    assert res.path == target and res.size == os.path.getsize(target)
    assert res.sha256 == hashlib.sha256(target.read_bytes()).hexdigest()
    with fits.open(target) as hdul:
        hdul.verify("exception")
        assert [h.name for h in hdul] == ["PRIMARY", "SCI", "WHT", "CTX", "HDRTAB", "NEXP"]
        assert all(h.ver == 1 for h in hdul[1:])
        assert hdul[0].header["SCELLID"] == "p1889x07y19"
        assert hdul[0].header.comments["NPIXFRAC"] == "Fraction of pixels with data"
        assert hdul["SCI"].data.dtype == np.dtype(">f4") and hdul["NEXP"].data.dtype == np.dtype(">i2")
        np.testing.assert_array_equal(hdul["SCI"].data, sci)
        np.testing.assert_array_equal(hdul["WHT"].data, wht)
        np.testing.assert_array_equal(hdul["NEXP"].data, nexp)
        assert hdul["CTX"].data is None  # archive: CTX present, empty without context
        assert hdul["SCI"].header["BUNIT"] == "ELECTRONS/S"
        for ext in ("SCI", "WHT", "NEXP"):
            w = WCS(hdul[ext].header)
            np.testing.assert_allclose(w.wcs.crpix, [-500.0, 300.0])
        tab = hdul["HDRTAB"].data
        assert len(tab) == 3 and list(tab["ROOTNAME"]) == ["jbt122x8q", "jbt122x8q", "jbt122xaq"]
        assert list(tab["PROPOSID"]) == [12286, 12286, 0]  # missing integer -> 0
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temporary left behind


def test_context_planes_are_tile_compressed(tmp_path):
    sci, wht, nexp = _arrays((64, 96))
    ctx = np.random.default_rng(1).integers(-2**31, 2**31 - 1, (2, 64, 96)).astype(np.int32)
    res = write_product(tmp_path / "c.fits", primary={}, sci=sci, wht=wht, nexp=nexp, ctx=ctx,
                        wcs_header=_wcs_header())
    with fits.open(res.path) as hdul:
        hdul.verify("exception")
        assert isinstance(hdul["CTX"], fits.CompImageHDU)
        assert hdul["CTX"].ver == 1
        np.testing.assert_array_equal(hdul["CTX"].data, ctx)


class _Strips:
    """A lazy row-block source (``shape``, ``dtype``, ``iter_row_blocks``) delivering ``rows``
    rows per block whatever it is asked, failing or stopping early when told."""

    def __init__(self, a, rows, fail_after=None, stop_after=None, fail_on_pass=1):
        self.a, self.rows, self.fail_after, self.stop_after = a, rows, fail_after, stop_after
        self.shape, self.dtype = a.shape, a.dtype
        self.fail_on_pass, self.passes = fail_on_pass, 0

    def iter_row_blocks(self, nrows):
        self.passes += 1
        for y0 in range(0, self.a.shape[0], self.rows):
            if self.fail_after is not None and y0 >= self.fail_after and self.passes == self.fail_on_pass:
                raise RuntimeError("tile producer died")
            if self.stop_after is not None and y0 >= self.stop_after:
                return
            yield y0, self.a[y0:y0 + self.rows]


def test_streaming_sources_equal_arrays(tmp_path):
    sci, wht, nexp = _arrays((301, 77))
    ref = write_product(tmp_path / "ref.fits", primary=PRIMARY, sci=sci, wht=wht, nexp=nexp)
    mm = np.lib.format.open_memmap(tmp_path / "sci.npy", "w+", np.float32, sci.shape)
    mm[:] = sci
    with TileSpool(nexp.shape, np.int16, tmp_path) as spool:
        for y0 in range(0, 301, 100):
            for x0 in range(0, 77, 30):
                spool.write_tile(y0, x0, nexp[y0:y0 + 100, x0:x0 + 30])
        res = write_product(tmp_path / "streamed.fits", primary=PRIMARY, sci=mm, wht=_Strips(wht, 13), nexp=spool,
                            block_rows=7)
    assert res.sha256 == ref.sha256
    assert not any(p.name.startswith(".spool-") for p in tmp_path.iterdir())


@pytest.mark.parametrize("shape", [(5, 7), (6, 7), (1, 1), (3, 1)])
@pytest.mark.parametrize("rows", [1, 2, 3])
def test_checksums_of_odd_sized_int16_blocks(tmp_path, shape, rows):
    """2-byte values pair into 32-bit words across blocks of odd size (DATASUM from native values)."""
    rng = np.random.default_rng(sum(shape) + rows)
    sci = rng.normal(size=shape).astype(np.float32)
    nexp = rng.integers(-2**15, 2**15 - 1, shape).astype(np.int16)
    res = write_product(tmp_path / "o.fits", primary={}, sci=sci, wht=sci, nexp=_Strips(nexp, rows), block_rows=rows)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with fits.open(res.path, checksum=True) as hdul:
            np.testing.assert_array_equal(hdul["NEXP"].data, nexp)
            assert hdul["NEXP"].header["DATASUM"] == str(_reference_datasum(hdul["NEXP"].data))


def _reference_datasum(data) -> int:
    """DATASUM by the FITS rule, from the big-endian bytes as stored (padding adds nothing)."""
    raw = np.ascontiguousarray(data, dtype=data.dtype.newbyteorder(">")).tobytes()
    raw += b"\0" * (-len(raw) % 4)
    total = int(np.frombuffer(raw, ">u4").sum(dtype=np.uint64))
    while total >> 32:
        total = (total & 0xFFFFFFFF) + (total >> 32)
    return total


def test_failing_source_leaves_no_file(tmp_path):
    sci, wht, nexp = _arrays()
    target = tmp_path / "layer_drc.fits"

    with pytest.raises(RuntimeError, match="tile producer died"):
        write_product(target, primary=PRIMARY, sci=_Strips(sci, 100, fail_after=100), wht=wht, nexp=nexp)
    assert list(tmp_path.iterdir()) == []
    # a short source is an error too, and an existing product survives a failed rewrite
    write_product(target, primary=PRIMARY, sci=sci, wht=wht, nexp=nexp)
    before = target.read_bytes()
    with pytest.raises(ValueError, match="SCI: source delivered 2000 of 60000 pixels"):
        write_product(target, primary=PRIMARY, sci=_Strips(sci, 10, stop_after=10), wht=wht, nexp=nexp)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_drizzle_tiles_to_product_via_spool(tmp_path):
    """drizzle_layer -> LayerSpool sink -> write_product, nothing held in memory but tiles."""
    from mvmdb.process.drizzling import DrizzleInput, drizzle_layer

    w_out = WCS(_wcs_header())
    w_in = WCS(naxis=2)
    w_in.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w_in.wcs.crval = w_out.all_pix2world([[150.0, 100.0]], 0)[0]
    w_in.wcs.crpix = [40.0, 30.0]
    s = 0.05 / 3600
    w_in.wcs.cd = [[-s * 0.8, s * 0.6], [s * 0.6, s * 0.8]]
    inp = DrizzleInput(sci=np.full((60, 80), 2.0, np.float32), exptime=100.0, in_wcs=w_in,
                       units="electrons/s", name="a")
    shape = (200, 300)
    mem = drizzle_layer([inp], w_out, shape, bits=0, tile_shape=(64, 64))
    with LayerSpool(shape, tmp_path) as spool:
        drizzle_layer([inp], w_out, shape, bits=0, tile_shape=(64, 64), sink=spool.sink)
        res = write_product(tmp_path / "p.fits", primary={}, sci=spool.sci, wht=spool.wht, nexp=spool.nexp,
                            wcs_header=w_out.to_header())
    with fits.open(res.path) as hdul:
        np.testing.assert_array_equal(hdul["SCI"].data, mem.sci)
        np.testing.assert_array_equal(hdul["NEXP"].data, mem.nexp)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.fits"]


def test_every_hdu_carries_a_valid_fits_checksum(tmp_path):
    """CHECKSUM/DATASUM on every physical HDU, verified by astropy; odd widths exercise the int16 word carry."""
    import hashlib
    import warnings

    rng = np.random.default_rng(3)
    for nx in (101, 100):
        sci = rng.normal(size=(57, nx)).astype(np.float32)
        wht = rng.random((57, nx)).astype(np.float32)
        nexp = rng.integers(0, 9, (57, nx)).astype(np.int16)
        pf = write_product(tmp_path / f"p{nx}.fits", primary={"FOO": (1, "x")}, sci=sci, wht=wht, nexp=nexp,
                           hdrtab=[{"A": 1}], ctx=(nexp > 3).astype(np.int32), block_rows=7)
        assert hashlib.sha256(pf.path.read_bytes()).hexdigest() == pf.sha256
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with fits.open(pf.path, checksum=True, disable_image_compression=True) as h:
                assert [(x.verify_checksum(), x.verify_datasum()) for x in h] == [(1, 1)] * 6
                np.testing.assert_array_equal(h["NEXP"].data, nexp)


def test_sha256_is_the_files_over_many_read_chunks(tmp_path):
    """The recorded digest is the finished file's for arrays of several 4 MiB chunks; a source failing
    while the file is being written (after its sums were taken) leaves nothing."""
    sci, wht, nexp = _arrays(shape=(1500, 1300), seed=4)
    pf = write_product(tmp_path / "big_drz.fits", primary=PRIMARY, sci=sci, wht=wht, nexp=nexp, hdrtab=HDRTAB,
                       wcs_header=_wcs_header())
    assert pf.size == os.path.getsize(pf.path) > 3 * (1 << 22)
    assert pf.sha256 == hashlib.sha256(pf.path.read_bytes()).hexdigest()

    failing = _Strips(wht, 700, fail_after=700, fail_on_pass=2)
    with pytest.raises(RuntimeError, match="tile producer died"):
        write_product(tmp_path / "bad_drz.fits", primary=PRIMARY, sci=sci, wht=failing, nexp=nexp)
    assert failing.passes == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big_drz.fits"]


def test_fsync_error_fails_the_write_and_leaves_nothing(tmp_path, monkeypatch):
    """The fsync runs in a helper thread while the file is hashed; its error still fails the write."""
    sci, wht, nexp = _arrays()

    def broken(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(OSError, match="Input/output error"):
        write_product(tmp_path / "x_drz.fits", primary=PRIMARY, sci=sci, wht=wht, nexp=nexp)
    assert list(tmp_path.iterdir()) == []
