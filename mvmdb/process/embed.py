"""The sky cell's common box, its coarse twin, and re-embedding products onto a grown box.

Boxes are ``(xmin, xmax, ymin, ymax)``: 0-based, inclusive pixel indices on the full sky
cell array at one scale (fine 0.04"/px: 21954 px; coarse 0.12"/px: 7318 px). Arrays are
numpy ``[y, x]``.

**Coarse/fine alignment.** The archive's coarse WCS is the fine one with ``CRPIX / 3`` and
``CD * 3``, so coarse pixel ``q`` (0-based) is centred on fine pixel ``3q + 2`` and covers
fine pixels ``3q + 1 .. 3q + 3`` (not ``3q .. 3q + 2``: the 1-based CRPIX convention shifts
the blocks by one fine pixel). The common box stored in ``sky_cell.box_*`` is therefore
always *aligned*: it is the exact fine image of a coarse box, ``xmin = 3*qxmin + 1`` and
``xmax = 3*qxmax + 3`` (same in y), so its width and height are multiples of 3 and every
fine layer of the sky cell overlays every coarse layer pixel for pixel (coarse product
pixel ``(i, j)`` = fine product pixels ``3i..3i+2, 3j..3j+2``, except at the cell's edges: fine
layers are cut to the fine cell, see :func:`fine_in_cell`). The raw union of the
footprints is padded outwards to the enclosing coarse pixels; the coarse box is clipped to
the coarse sky cell ``0..7317``, so the aligned fine box lies within fine ``1..21954``
(fine 21954 is one pixel past the fine NAXIS but inside the coarse cell, on the same
tangent plane; fine 0 lies in no coarse pixel). Fine layers are drawn on that box cut to
the fine cell ``0..21953`` (:func:`fine_in_cell`). Every sky cell uses this rule whether or not it has a
coarse layer, so a later IR or WFPC2 layer never forces a new box.

**Growth.** The common box only grows (new box = aligned union of the old box and the new
footprints). Products on the old box are then *re-embedded*: their arrays are pasted at
the offset of the old box inside the new one, without resampling; pixels outside are
no-data (the fill value).
"""

from __future__ import annotations

import numpy as np

from mvmdb.sky.grid import skycell_naxis
from mvmdb.sky.overlap import check_box, fine_box_to_coarse

FINE_NAXIS = skycell_naxis("fine")

Box = tuple[int, int, int, int]



def union(a: Box | None, b: Box | None) -> Box | None:
    """Smallest box containing both (``None`` stands for the empty box)."""
    if a is None:
        return b
    if b is None:
        return a
    return min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])


def contains(outer: Box, inner: Box) -> bool:
    """True when ``inner`` lies within ``outer``."""
    return outer[0] <= inner[0] and inner[1] <= outer[1] and outer[2] <= inner[2] and inner[3] <= outer[3]


def coarse_cover(fine_box: Box) -> Box:
    """The coarse box whose pixels cover ``fine_box`` (coarse q spans fine 3q+1..3q+3), clipped to the cell."""
    return fine_box_to_coarse(fine_box)


def coarse_to_fine(coarse_box: Box) -> Box:
    """Exact fine image of a coarse box: ``3*qmin + 1 .. 3*qmax + 3`` per axis."""
    qx0, qx1, qy0, qy1 = check_box(coarse_box)
    return 3 * qx0 + 1, 3 * qx1 + 3, 3 * qy0 + 1, 3 * qy1 + 3


def align(fine_box: Box) -> Box:
    """Pad a fine box outwards to the coarse grid (see the module docstring)."""
    return coarse_to_fine(coarse_cover(fine_box))


def is_aligned(fine_box: Box) -> bool:
    return align(fine_box) == tuple(fine_box)


def fine_in_cell(aligned_fine_box: Box) -> Box:
    """The fine layers' box: the aligned box kept inside the fine cell ``0 .. 21953``.

    The aligned box may end at fine 21954 (one past the cell: the last coarse pixel's third
    fine column) and never starts at fine 0 (which lies in no coarse pixel of the cell).
    Fine layers drop index 21954 and take in index 0 when the aligned box starts at 1, so
    no fine pixel lies outside its sky cell and data falling on the first row/column are
    kept, as in the archive (issue 13).
    """
    xmin, xmax, ymin, ymax = check_box(aligned_fine_box)
    last = FINE_NAXIS - 1
    return (0 if xmin <= 1 else xmin, min(xmax, last), 0 if ymin <= 1 else ymin, min(ymax, last))


def at_scale(aligned_fine_box: Box, scale: str) -> Box:
    """The common box at a layer's scale: the aligned fine box kept in the cell
    (:func:`fine_in_cell`), or its coarse box."""
    if scale == "fine":
        return fine_in_cell(aligned_fine_box)
    if scale == "coarse":
        return coarse_cover(aligned_fine_box)
    raise ValueError(f"unknown scale {scale!r}")


def common_box(old: Box | None, footprint_box: Box | None) -> Box | None:
    """New common (aligned, fine) box: aligned union of the stored box and the footprints' box."""
    u = union(old, footprint_box)
    return None if u is None else align(u)


def shape(box: Box) -> tuple[int, int]:
    """Array shape ``(ny, nx)`` of a box."""
    xmin, xmax, ymin, ymax = check_box(box)
    return ymax - ymin + 1, xmax - xmin + 1


def offset(outer: Box, inner: Box) -> tuple[int, int]:
    """``(dy, dx)`` of ``inner``'s first pixel inside ``outer``; ``ValueError`` unless contained."""
    if not contains(outer, inner):
        raise ValueError(f"box {inner} does not lie within {outer}: boxes only grow")
    return inner[2] - outer[2], inner[0] - outer[0]


def embed(array: np.ndarray, old: Box, new: Box, fill=0) -> np.ndarray:
    """``array`` (on box ``old``) pasted into a new array on box ``new`` filled with ``fill``.

    No resampling: pixel ``(y, x)`` of ``array`` lands on ``(y + dy, x + dx)``. Leading axes
    (e.g. context planes) are kept.
    """
    if array.shape[-2:] != shape(old):
        raise ValueError(f"array shape {array.shape[-2:]} does not match box {old}")
    dy, dx = offset(new, old)
    out = np.full(array.shape[:-2] + shape(new), fill, dtype=array.dtype)
    ny, nx = array.shape[-2:]
    out[..., dy : dy + ny, dx : dx + nx] = array
    return out
