"""Reusable memory for the large arrays of drawing a layer.

Drawing one layer needs a few arrays as large as its output box (drizzle's SCI, WHT and
context window, NEXP: about 14 bytes per output pixel) and some as large as an input chip
(pixel maps, sky-subtracted data). Allocated afresh for every layer, each is handed back to
the system when freed and its pages are faulted in again by the next layer: on the virtual
machines measured (issue 13) a first touch costs 0.1-0.5 s per 220 MB, as much as a
quarter of a large layer's drawing time.

An :class:`Arena` keeps one anonymous memory mapping per *role* (``"sci"``, ``"pixmap"``,
...), grown to the largest request so far and never shrunk, and hands out array views of
it. Its pages are faulted once per process, at the size of the largest layer drawn, and
reused by every later layer (tasks go out largest first, :mod:`mvmdb.process.order`).

The memory stays with the process between layers: at most about 12 bytes per pixel of the
largest window drawn (SCI, WHT and the scratch; 0.8 GB for a layer of
:data:`mvmdb.process.draw.IN_MEMORY_MAX_PIXELS`, 4096^2 tiles beyond), which is the peak a
layer needed anyway. A process that runs out of work gives it back: ``mvm worker`` calls
:func:`release_process_arena` when the queue has no job for it.

A view is valid until the next :meth:`Arena.take` of the same role: the caller consumes a
layer's arrays before asking again (:func:`mvmdb.process.draw.draw_layer` writes the product
before drawing the next layer). Contents are undefined on return: fill what you read.
"""

from __future__ import annotations

import mmap

import numpy as np

__all__ = ["Arena", "SCRATCH", "process_arena", "release_process_arena"]

SCRATCH = "scratch"
"""Role of short-lived work memory, dead once its user returns: drizzle's context window until
NEXP is counted, then the selected weights of the MVM keywords. Sharing it keeps a layer's peak
memory what it was with fresh arrays (those two never live at the same time)."""

GRANULE = 16 << 20
"""Mappings grow in steps of this many bytes (16 MiB), so layers of similar size share one."""


class Arena:
    """One growing anonymous mapping per role; :meth:`take` returns an array view of it."""

    def __init__(self) -> None:
        self._maps: dict[str, mmap.mmap] = {}

    def take(self, role: str, shape, dtype) -> np.ndarray:
        """A C-contiguous ``shape`` array of ``dtype`` in the memory of ``role`` (contents undefined).

        The previous view of ``role`` must not be used any more; views of other roles stay valid.
        """
        dtype = np.dtype(dtype)
        shape = tuple(int(s) for s in shape) if isinstance(shape, (tuple, list)) else (int(shape),)
        count = int(np.prod(shape, dtype=np.int64))
        nbytes = count * dtype.itemsize
        mem = self._maps.get(role)
        if mem is None or len(mem) < nbytes:
            # the old mapping is unmapped when its last view is gone
            mem = self._maps[role] = mmap.mmap(-1, max(GRANULE, -(-nbytes // GRANULE) * GRANULE))
        return np.frombuffer(mem, dtype=dtype, count=count).reshape(shape)

    def full(self, role: str, shape, dtype, value) -> np.ndarray:
        """:meth:`take`, filled with ``value``."""
        a = self.take(role, shape, dtype)
        a.fill(value)
        return a

    @property
    def nbytes(self) -> int:
        """Bytes mapped in all roles."""
        return sum(len(m) for m in self._maps.values())

    def clear(self) -> None:
        """Forget every mapping (each is unmapped when its last view is gone)."""
        self._maps.clear()


_PROCESS_ARENA: Arena | None = None


def process_arena() -> Arena:
    """This process's arena for drawing layers (created on first use)."""
    global _PROCESS_ARENA
    if _PROCESS_ARENA is None:
        _PROCESS_ARENA = Arena()
    return _PROCESS_ARENA


def release_process_arena() -> int:
    """Hand this process's arena memory back to the system; returns the bytes it held.

    For a process about to idle (a worker finding the queue empty): the next layer faults
    its pages in again. Call it only when no view of the arena is in use.
    """
    if _PROCESS_ARENA is None:
        return 0
    held = _PROCESS_ARENA.nbytes
    _PROCESS_ARENA.clear()
    return held
