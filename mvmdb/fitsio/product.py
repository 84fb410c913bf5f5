"""Write MVM layer products (``*_drc.fits`` / ``*_drz.fits``) atomically, streaming the big arrays.

Layout (spec §5.6, plus this project's NEXP): PRIMARY (keywords, no data),
SCI (float32, counts/s, WCS), WHT (float32), CTX (empty unless a context image
is given; then int32 planes, tile-compressed), HDRTAB (binary table, one row
per input chip), NEXP (int16).  Every extension has EXTNAME and EXTVER = 1.

Image data are written block by block (``block_rows`` rows at a time) from
numpy arrays, np.memmap or `TileSpool` files, so a full 21954**2 product never
needs to be in memory.  Every HDU carries the FITS ``CHECKSUM``/``DATASUM``: the
image data sums are taken first, in a pass over the sources (on the native
values, without a big-endian copy), so every header is final when written and
the file is written once, front to back, by `mvmdb.fitsio.staged.StagedFile`
(``O_DIRECT`` where the file system allows it; helper threads write and hash
(SHA-256) each staged block while the next is converted), then fsynced.  The
file is written to a temporary name in the target directory, renamed over the
target with `os.replace` and the directory fsynced; on any error the temporary
file is removed and nothing appears at the target.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import numpy as np
from astropy.io import fits

from mvmdb.fitsio.staged import DIRECT_MIN, StagedFile

__all__ = ["ProductFile", "TileSpool", "LayerSpool", "write_product", "fsync_directory", "sha256_of"]

BLOCK = 2880

#: Keywords that describe the HDU structure; never copied from caller headers.
_STRUCTURAL = {"SIMPLE", "XTENSION", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "EXTEND",
               "PCOUNT", "GCOUNT", "EXTNAME", "EXTVER", "END", "BSCALE", "BZERO", "CHECKSUM", "DATASUM"}

_BITPIX = {np.dtype(np.uint8): 8, np.dtype(np.int16): 16, np.dtype(np.int32): 32, np.dtype(np.int64): 64,
           np.dtype(np.float32): -32, np.dtype(np.float64): -64}


@dataclass(frozen=True)
class ProductFile:
    """A written product: final path, SHA-256 (hex) and size in bytes."""

    path: Path
    sha256: str
    size: int


class TileSpool:
    """A 2-D (or 3-D plane-stacked) array spooled to a raw big-endian scratch file.

    Tiles are written anywhere with `write_tile` (``os.pwrite``, nothing is
    mapped or kept in memory) and read back in row blocks with
    `iter_row_blocks`, e.g. by `write_product`.  Unwritten pixels read as
    ``fill``.  The scratch file is deleted by `close` (or on leaving a ``with``).
    """

    def __init__(self, shape, dtype, directory=None, fill=0):
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype).newbyteorder(">")
        fd, name = tempfile.mkstemp(prefix=".spool-", suffix=".raw", dir=directory)
        self.path = Path(name)
        self._fd = fd
        self._row_bytes = self.shape[-1] * self.dtype.itemsize
        nbytes = int(np.prod(self.shape)) * self.dtype.itemsize
        if fill == 0:
            os.ftruncate(fd, nbytes)  # sparse zeros
        else:
            row = np.full(self.shape[-1], fill, dtype=self.dtype).tobytes()
            chunk = row * max(1, (1 << 22) // len(row))
            n_rows = int(np.prod(self.shape[:-1]))
            rows_per_chunk = len(chunk) // len(row)
            for r0 in range(0, n_rows, rows_per_chunk):
                k = min(rows_per_chunk, n_rows - r0)
                os.pwrite(fd, chunk[:k * len(row)], r0 * self._row_bytes)

    def write_tile(self, y0: int, x0: int, block: np.ndarray, plane: int | None = None) -> None:
        """Write ``block`` with its first pixel at (row y0, column x0) [of ``plane``]."""
        b = np.ascontiguousarray(block, dtype=self.dtype)
        h, w = b.shape
        ny, nx = self.shape[-2:]
        if y0 < 0 or x0 < 0 or y0 + h > ny or x0 + w > nx:
            raise ValueError(f"tile at ({y0}, {x0}) of shape {b.shape} outside spool of shape {self.shape}")
        base = 0 if plane is None else plane * ny * self._row_bytes
        off = base + y0 * self._row_bytes + x0 * self.dtype.itemsize
        if w == nx:
            os.pwrite(self._fd, b.tobytes(), off)
            return
        mv = memoryview(b).cast("B")
        rb = w * self.dtype.itemsize
        for r in range(h):
            os.pwrite(self._fd, mv[r * rb:(r + 1) * rb], off + r * self._row_bytes)

    def iter_row_blocks(self, nrows: int) -> Iterator[tuple[int, np.ndarray]]:
        """Rows in order, ``nrows`` at a time (planes one after another for 3-D spools)."""
        n_rows = int(np.prod(self.shape[:-1]))
        for r0 in range(0, n_rows, nrows):
            k = min(nrows, n_rows - r0)
            raw = os.pread(self._fd, k * self._row_bytes, r0 * self._row_bytes)
            yield r0, np.frombuffer(raw, dtype=self.dtype).reshape(k, self.shape[-1])

    def read(self) -> np.ndarray:
        """The whole array (only for small spools)."""
        raw = os.pread(self._fd, int(np.prod(self.shape)) * self.dtype.itemsize, 0)
        return np.frombuffer(raw, dtype=self.dtype).reshape(self.shape)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self.path.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class LayerSpool:
    """SCI/WHT/NEXP (and optionally CTX) spools with a ``sink(tile)`` for `drizzle_layer`.

    Pass ``spool.sink`` as the ``sink`` argument of
    `mvmdb.process.drizzling.drizzle_layer`, then hand ``spool.sci``,
    ``spool.wht``, ``spool.nexp`` to `write_product`.
    """

    def __init__(self, shape, directory=None, n_ctx_planes: int = 0):
        self.sci = TileSpool(shape, np.float32, directory, fill=np.nan)
        self.wht = TileSpool(shape, np.float32, directory)
        self.nexp = TileSpool(shape, np.int16, directory)
        self.ctx = TileSpool((n_ctx_planes,) + tuple(shape), np.int32, directory) if n_ctx_planes else None

    def sink(self, tile) -> None:
        self.sci.write_tile(tile.y0, tile.x0, tile.sci)
        self.wht.write_tile(tile.y0, tile.x0, tile.wht)
        self.nexp.write_tile(tile.y0, tile.x0, tile.nexp)
        if self.ctx is not None and tile.ctx is not None:
            for p, plane in enumerate(tile.ctx):
                self.ctx.write_tile(tile.y0, tile.x0, plane, plane=p)

    def close(self) -> None:
        for s in (self.sci, self.wht, self.nexp, self.ctx):
            if s is not None:
                s.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --------------------------------------------------------------------------- headers
def _cards(source) -> list[tuple[str, object, str]]:
    """(keyword, value, comment) triples from a Header, a dict of value or (value, comment)."""
    if source is None:
        return []
    if isinstance(source, fits.Header):
        return [(c.keyword, c.value, c.comment) for c in source.cards if c.keyword not in ("", "END")]
    out = []
    for key, val in source.items():
        if isinstance(val, tuple):
            value, comment = (val + ("",))[:2]
        else:
            value, comment = val, ""
        out.append((key, value, comment))
    return out


def _fitting_comment(key: str, value, comment: str) -> str:
    """``comment`` cut to what fits on the card, as in archive products (e.g. MEANWHT's)."""
    if not comment:
        return comment
    base = fits.Card(key, value).image.rstrip()
    if len(base) > 80:  # long string value continued over several cards: astropy places the comment
        return comment
    room = 80 - len(base) - 3  # " / "
    return comment[:max(room, 0)]


def _append(header: fits.Header, cards) -> None:
    for key, value, comment in cards:
        if key.upper() in _STRUCTURAL:
            continue
        if key in ("COMMENT", "HISTORY", ""):
            header.append((key, value), end=True)
        else:
            header[key] = (value, _fitting_comment(key, value, comment))


def _card_images(sources) -> list[str]:
    """80-column images of the cards of ``sources`` (Headers or dicts, in order): structural
    keywords and blank cards skipped, COMMENT/HISTORY kept, a keyword given again keeps its
    first position with the last value, comments cut to fit. Cards read from files keep their
    images, so large blended headers cost no re-formatting."""
    entries: list[str] = []
    pos: dict[str, int] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)  # astropy cuts over-long comments
        for src in sources:
            if src is None:
                continue
            if isinstance(src, fits.Header):
                items = [(c.keyword, c) for c in src.cards]
            else:
                items = [(k, fits.Card(k, v, _fitting_comment(k, v, c)) if k not in ("COMMENT", "HISTORY", "")
                          else fits.Card(k, v)) for k, v, c in _cards(src)]
            for key, card in items:
                if key in ("", "END") or key.upper() in _STRUCTURAL:
                    continue
                image = card.image
                if key in ("COMMENT", "HISTORY"):
                    entries.append(image)
                elif key in pos:
                    entries[pos[key]] = image
                else:
                    pos[key] = len(entries)
                    entries.append(image)
    return entries


def _header_bytes(structural: fits.Header, sources) -> bytes:
    """A whole header block: the structural cards, the sources' cards, END, padding."""
    text = structural.tostring(endcard=False, padding=False) + "".join(_card_images(sources)) + "END".ljust(80)
    text += " " * (-len(text) % BLOCK)
    return text.encode("ascii")


def _primary_header(primary) -> bytes:
    h = fits.Header()
    h["SIMPLE"] = (True, "conforms to FITS standard")
    h["BITPIX"] = (8, "array data type")
    h["NAXIS"] = (0, "number of array dimensions")
    h["EXTEND"] = True
    return _header_bytes(h, [primary])


def _image_header(extname: str, dtype, shape, extra=()) -> bytes:
    h = fits.Header()
    h["XTENSION"] = ("IMAGE", "Image extension")
    h["BITPIX"] = (_BITPIX[np.dtype(dtype).newbyteorder("=")], "array data type")
    h["NAXIS"] = (len(shape), "number of array dimensions")
    for i, n in enumerate(reversed(shape)):
        h[f"NAXIS{i + 1}"] = int(n)
    h["PCOUNT"] = 0
    h["GCOUNT"] = 1
    h["EXTNAME"] = (extname, "extension name")
    h["EXTVER"] = (1, "extension version number")
    return _header_bytes(h, extra)


def _hdu_bytes(hdu) -> bytes:
    """Serialized bytes of one extension HDU (via astropy, for small HDUs)."""
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buf, checksum=True)
    raw = buf.getvalue()
    skip = len(fits.PrimaryHDU().header.tostring())
    if raw[skip:skip + 8] != b"XTENSION":
        raise RuntimeError("unexpected FITS serialization of the dummy primary HDU")
    return raw[skip:]


def _column_kind(present: list) -> str:
    """FITS binary-table type of a column from its non-None values: 'A' text if any value is
    text, else 'D' if any is a float (or none has a value: NaN, as the archive), 'L' if all
    are booleans, else 'K'."""
    if any(isinstance(v, (str, bytes)) for v in present):
        return "A"
    if not present or any(isinstance(v, (float, np.floating)) for v in present):
        return "D"
    if all(isinstance(v, (bool, np.bool_)) for v in present):
        return "L"
    return "K"


def _card(key: str, value, comment: str = "") -> str:
    """One 80-character fixed-format header card (short values only)."""
    if isinstance(value, str):
        text = "'" + value.replace("'", "''").ljust(8) + "'"
        body = f"{key:<8s}= {text:<20s}"
    elif isinstance(value, bool):
        body = f"{key:<8s}= {'T' if value else 'F':>20s}"
    else:
        body = f"{key:<8s}= {value!s:>20s}"
    if comment:
        body += f" / {comment}"
    if len(body) > 80:
        raise ValueError(f"card {key} does not fit in 80 characters")
    return body.ljust(80)


def _hdrtab_bytes(rows: list[Mapping]) -> bytes:
    """HDRTAB (binary table, one row per dict) serialized directly: header cards and big-endian
    rows built with numpy, no astropy table machinery (hundreds of columns cost it seconds).

    Column order: first appearance over the rows. Keys missing from a row (or None) are ''
    (text), NaN (float), 0 (integer) or F (logical); see `_column_kind` for the types.
    """
    keys: list[str] = []
    seen = set()
    for r in rows:
        for k in r:
            if k not in seen:
                seen.add(k)
                keys.append(k)
    fields, forms, columns = [], [], []
    for i, k in enumerate(keys):
        vals = [r.get(k) for r in rows]
        present = [v for v in vals if v is not None]
        kind = _column_kind(present)
        if kind == "A":
            enc = [b"" if v is None else (v if isinstance(v, bytes) else str(v).encode("ascii", "replace"))
                   for v in vals]
            width = max(1, max((len(e) for e in enc), default=1))
            fields.append((f"c{i}", f"S{width}"))
            forms.append(f"{width}A")
            columns.append(enc)
        elif kind == "D":
            fields.append((f"c{i}", ">f8"))
            forms.append("D")
            columns.append([np.nan if v is None else float(v) for v in vals])
        elif kind == "L":
            fields.append((f"c{i}", "S1"))
            forms.append("L")
            columns.append([b"F" if v is None else (b"T" if v else b"F") for v in vals])
        else:
            fields.append((f"c{i}", ">i8"))
            forms.append("K")
            columns.append([0 if v is None else int(v) for v in vals])
    table = np.zeros(len(rows), dtype=np.dtype(fields)) if fields else np.zeros(len(rows), dtype=[])
    for (name, _), col in zip(fields, columns):
        table[name] = col
    row_bytes = table.dtype.itemsize if fields else 0
    cards = [
        _card("XTENSION", "BINTABLE", "binary table extension"),
        _card("BITPIX", 8, "array data type"),
        _card("NAXIS", 2, "number of array dimensions"),
        _card("NAXIS1", row_bytes, "length of dimension 1"),
        _card("NAXIS2", len(rows), "length of dimension 2"),
        _card("PCOUNT", 0, "number of group parameters"),
        _card("GCOUNT", 1, "number of groups"),
        _card("TFIELDS", len(keys), "number of table fields"),
    ]
    for i, (k, form) in enumerate(zip(keys, forms), start=1):
        cards.append(_card(f"TTYPE{i}", k))
        cards.append(_card(f"TFORM{i}", form))
    cards.append(_card("EXTNAME", "HDRTAB", "extension name"))
    cards.append(_card("EXTVER", 1, "extension version number"))
    cards.append("END".ljust(80))
    head = "".join(cards).encode("ascii")
    head += b" " * (-len(head) % BLOCK)
    data = table.tobytes() if fields else b""
    data += b"\0" * (-len(data) % BLOCK)
    return _seal(head, ones_sum(data)) + data


# --------------------------------------------------------------------------- FITS checksums
_EXCLUDE = (0x3A, 0x3B, 0x3C, 0x3D, 0x3E, 0x3F, 0x40, 0x5B, 0x5C, 0x5D, 0x5E, 0x5F, 0x60)


def _fold(total: int) -> int:
    """A sum of 32-bit words folded to 32 bits with end-around carry (ones' complement)."""
    while total >> 32:
        total = (total & 0xFFFFFFFF) + (total >> 32)
    return total


def ones_sum(data, sum32: int = 0) -> int:
    """32-bit ones' complement sum of big-endian words (FITS checksum convention); ``len(data) % 4 == 0``."""
    return _fold(int(sum32) + int(np.frombuffer(data, dtype=">u4").sum(dtype=np.uint64)))


def checksum_string(value: int) -> str:
    """The 16-character ASCII encoding of a 32-bit checksum (FITS checksum convention, section A.7.2)."""
    asc = [0] * 16
    for i in range(4):
        byte = (value >> ((3 - i) * 8)) & 0xFF
        q, r = byte // 4 + ord("0"), byte % 4
        ch = [q + r, q, q, q]
        again = True
        while again:
            again = False
            for x in _EXCLUDE:
                for j in (0, 2):
                    if ch[j] == x or ch[j + 1] == x:
                        ch[j] += 1
                        ch[j + 1] -= 1
                        again = True
        for j in range(4):
            asc[4 * j + i] = ch[j]
    return bytes(asc[(i + 15) % 16] for i in range(16)).decode("ascii")


def _seal(head: bytes, datasum: int) -> bytes:
    """A whole header block (``head``: 80-column cards, END, padding) with ``DATASUM`` = ``datasum``
    (the data unit's ones' complement sum) and the ``CHECKSUM`` that makes the HDU sum to -0.

    Earlier CHECKSUM/DATASUM cards (copied from another file) are dropped; the result may be a
    block longer than ``head`` only when the two new cards do not fit in its padding.
    """
    cards = [head[i:i + 80] for i in range(0, len(head), 80)]
    end = next(i for i, c in enumerate(cards) if c[:8] == b"END     ")
    kept = [c for c in cards[:end] if c[:8] not in (b"CHECKSUM", b"DATASUM ")]
    sums = [_card("DATASUM", str(int(datasum)), "data unit checksum").encode("ascii"),
            _card("CHECKSUM", "0" * 16, "HDU checksum").encode("ascii")]
    raw = b"".join(kept + sums) + b"END".ljust(80)
    raw += b" " * (-len(raw) % BLOCK)
    value = checksum_string(~ones_sum(raw, datasum) & 0xFFFFFFFF).encode("ascii")
    at = raw.index(b"'0000000000000000'", len(b"".join(kept)) + 80) + 1
    return raw[:at] + value + raw[at + 16:]


# --------------------------------------------------------------------------- writing
def _source_shape_dtype(src):
    shape = tuple(src.shape)
    dtype = np.dtype(src.dtype)
    return shape, dtype


def _iter_blocks(src, nrows: int) -> Iterator[np.ndarray]:
    if hasattr(src, "iter_row_blocks"):
        for _, block in src.iter_row_blocks(nrows):
            yield np.asarray(block)
    else:
        a = src
        n = a.shape[0] if a.ndim == 2 else a.shape[0] * a.shape[1]
        flat = a.reshape(n, a.shape[-1]) if a.ndim == 3 else a
        for y0 in range(0, n, nrows):
            yield flat[y0:y0 + nrows]


def _native_words_sum(a: np.ndarray, first: int) -> int:
    """Sum (unfolded) of the big-endian 32-bit words that the values of ``a`` (native byte order,
    item size 2, 4 or 8) make in a data unit where ``a``'s first value is value number ``first``.

    A 4-byte value is one word, whose value is the value's bits; an 8-byte value two words;
    2-byte values pair up, the one at an even position being the word's high half. So the
    sum is taken on the native array, without a big-endian copy."""
    flat = a.reshape(-1)
    size = a.dtype.itemsize
    if size == 4:
        return int(flat.view(np.uint32).sum(dtype=np.uint64))
    if size == 8:
        u = flat.view(np.uint64)
        return int(np.sum(u >> np.uint64(32), dtype=np.uint64)) + int(np.sum(u & np.uint64(0xFFFFFFFF),
                                                                              dtype=np.uint64))
    u = flat.view(np.uint16)
    high = first % 2  # index of the first value at an even position
    return (int(u[high::2].sum(dtype=np.uint64)) << 16) + int(u[1 - high::2].sum(dtype=np.uint64))


def _data_bytes(images) -> int:
    """Bytes of the image data units ``[(name, source, dtype)]``."""
    return sum(int(np.prod(_source_shape_dtype(src)[0])) * np.dtype(dt).itemsize for _, src, dt in images)


def _image_data_sum(extname: str, src, target_dtype, block_rows: int) -> int:
    """``DATASUM`` of image ``src`` stored as big-endian ``target_dtype`` (item size 2, 4 or 8; the
    padding adds nothing), read block by block; checks that the source delivers exactly its shape's
    pixels."""
    shape, _ = _source_shape_dtype(src)
    native = np.dtype(target_dtype).newbyteorder("=")
    expected = int(np.prod(shape))
    total = seen = 0
    for block in _iter_blocks(src, block_rows):
        if seen + block.size > expected:
            raise ValueError(f"{extname}: source delivered more than {expected} pixels")
        total += _native_words_sum(np.ascontiguousarray(block, dtype=native), seen)
        seen += block.size
    if seen != expected:
        raise ValueError(f"{extname}: source delivered {seen} of {expected} pixels")
    return _fold(total)


def _write_image(w: StagedFile, extname: str, src, target_dtype, extra, block_rows: int, datasum: int) -> None:
    """Stream one image HDU: its header with ``datasum`` (:func:`_image_data_sum`), then its data."""
    shape, _ = _source_shape_dtype(src)
    expected = int(np.prod(shape))
    be = np.dtype(target_dtype).newbyteorder(">")
    w.write(_seal(_image_header(extname, target_dtype, shape, extra), datasum))
    written = 0
    for block in _iter_blocks(src, block_rows):
        written += block.size
        if written > expected:  # a source that changed since its sum was taken
            raise ValueError(f"{extname}: source delivered more pixels than its sum covered")
        w.write_array(block.reshape(-1, block.shape[-1]), be)
    if written != expected:
        raise ValueError(f"{extname}: source delivered {written} of {expected} pixels")
    w.write(b"\0" * (-w.size % BLOCK))


def sha256_of(f) -> str:
    """SHA-256 (hex) of an open binary file, read from its start."""
    f.seek(0)
    h = hashlib.sha256()
    view = memoryview(bytearray(1 << 22))  # reused: a fresh 4 MiB bytes object per read costs its page faults
    while n := f.readinto(view):
        h.update(view[:n])
    return h.hexdigest()


def write_product(
    path,
    *,
    primary=None,
    sci,
    wht,
    nexp,
    wcs_header=None,
    hdrtab: list[Mapping] | None = None,
    ctx=None,
    extra_headers: Mapping[str, object] | None = None,
    block_rows: int = 128,
) -> ProductFile:
    """Write an MVM layer product atomically and return its path, SHA-256 and size.

    Parameters
    ----------
    path : str or Path
        Target file; replaced atomically if it exists.
    primary : fits.Header or dict
        PRIMARY keywords: ``{name: value}`` or ``{name: (value, comment)}``.
    sci, wht : 2-D float32 sources
        Science (counts/s) and weight images: ndarray / np.memmap, `TileSpool`
        or anything with ``shape``, ``dtype`` and ``iter_row_blocks(n)`` yielding
        ``(row0, block)`` in row order. Sources are read twice (sums, then data).
    nexp : 2-D int16 source
        Number of inputs per pixel.
    wcs_header : fits.Header or dict, optional
        WCS (and other) cards written to SCI, WHT, CTX (with data) and NEXP.
    hdrtab : list of dict, optional
        One row per input chip for the HDRTAB binary table.
    ctx : int32 array (ny, nx) or (nplanes, ny, nx), optional
        Context image, stored as a RICE-compressed CompImageHDU (loaded into
        memory); None writes the archive's empty CTX extension.
    extra_headers : {EXTNAME: Header or dict}, optional
        Additional cards per extension (e.g. ``{'SCI': {'BUNIT': 'ELECTRONS/S'}}``).
    block_rows : int
        Rows converted and written at a time.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    extra_headers = dict(extra_headers or {})
    shape, _ = _source_shape_dtype(sci)
    for name, src in (("WHT", wht), ("NEXP", nexp)):
        if tuple(src.shape) != shape:
            raise ValueError(f"{name} shape {tuple(src.shape)} differs from SCI shape {shape}")
    wcs_cards = _cards(wcs_header)

    def extra(name):
        return [wcs_header, extra_headers.get(name)]

    images = [("SCI", sci, np.float32), ("WHT", wht, np.float32), ("NEXP", nexp, np.int16)]
    sums = {name: _image_data_sum(name, src, dtype, block_rows) for name, src, dtype in images}
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    tmp = Path(tmp_name)
    w = None
    try:
        try:
            os.fchmod(fd, 0o644)
            w = StagedFile(fd, direct=_data_bytes(images) >= DIRECT_MIN)
            w.write(_seal(_primary_header(primary), 0))
            for name, src, dtype in images[:2]:
                _write_image(w, name, src, dtype, extra(name), block_rows, sums[name])
            w.write(_ctx_bytes(ctx, wcs_cards, extra_headers.get("CTX")))
            w.write(_hdrtab_bytes(list(hdrtab or [])))
            _write_image(w, "NEXP", nexp, np.int16, extra("NEXP"), block_rows, sums["NEXP"])
            digest, size = w.finish(), w.size
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        if w is not None:
            w.abandon()
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(directory)
    return ProductFile(path=path, sha256=digest, size=size)


def _ctx_bytes(ctx, wcs_cards, extra) -> bytes:
    """The CTX extension: the archive's empty one for ``ctx=None``, else the context planes
    RICE-compressed (loaded into memory) with the WCS cards; checksummed either way."""
    if ctx is None:
        return _seal(_image_header("CTX", np.int32, (), [extra]), 0)
    c = np.asarray(ctx.read() if hasattr(ctx, "read") else ctx, dtype=np.int32)
    chdu = fits.CompImageHDU(data=c, compression_type="RICE_1", name="CTX")
    chdu.header["EXTVER"] = 1
    _append(chdu.header, wcs_cards + _cards(extra))
    return _hdu_bytes(chdu)


def fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable."""
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
