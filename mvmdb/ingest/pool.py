"""Ingest's reader pool: chunks of paths read by forked worker processes, batches, the progress bar."""

from __future__ import annotations

import functools
import math
import multiprocessing as mp
from collections.abc import Iterable, Iterator

from mvmdb.fitsio.reader import ReadResult, read_files

__all__ = ["MAX_CHUNK", "POOL_GRACE", "read_stream", "start_pool", "batches", "Progress"]

MAX_CHUNK = 32
"""Files per worker task (at most)."""

POOL_GRACE = 60.0
"""Seconds a pool worker may take beyond its files' time limits before it counts as stuck."""


def _chunks(paths: list[str], jobs: int) -> list[list[str]]:
    size = max(1, min(MAX_CHUNK, math.ceil(len(paths) / max(1, jobs * 4))))
    return [paths[i:i + size] for i in range(0, len(paths), size)]


def read_stream(paths: list[str], jobs: int, pool=None, time_limit: float | None = None) -> Iterator[ReadResult]:
    """Read ``paths`` in chunks, in order: in the pool when there is one, else in this process.

    ``time_limit``: seconds per file (each reader interrupts its own file, see
    :func:`~mvmdb.fitsio.reader.read_files`). If a pool worker still does not answer within
    its chunk's limit plus :data:`POOL_GRACE` seconds, the files of that chunk are errors, the
    pool is terminated (its stuck child with it) and the remaining chunks are read here.
    """
    chunks = _chunks(paths, jobs)
    read = functools.partial(read_files, time_limit=time_limit)
    if pool is None or len(chunks) <= 1:
        for chunk in chunks:
            yield from read(chunk)
        return
    results = pool.imap(read, chunks)
    for k, chunk in enumerate(chunks):
        wait = None if not time_limit else len(chunk) * time_limit + POOL_GRACE
        try:
            got = results.next(timeout=wait)
        except mp.TimeoutError:
            pool.terminate()
            for path in chunk:
                yield ReadResult(path=path, error=f"reader did not answer within {wait:g} s; given up")
            for rest in chunks[k + 1:]:
                yield from read(rest)
            return
        yield from got


def start_pool(jobs: int):
    """A pool of ``jobs`` header readers, forked now -- before this process starts any thread
    (progress bar) or opens its catalog connection, which the children never use (they
    leave through ``os._exit``, so nothing of the parent's is closed or flushed by them).
    The reading modules (astropy, healpy, scipy) are imported first, so that the children
    inherit them instead of each importing them again (~1 s of CPU per child)."""
    import healpy  # noqa: F401  (mvmdb.sky.healpix imports it and scipy.spatial when first used)
    import scipy.spatial  # noqa: F401

    import mvmdb.fitsio.exposure  # noqa: F401
    import mvmdb.sky.overlap

    mvmdb.sky.overlap._pc_trig()  # the projection-cell tables, computed once
    return mp.get_context("fork").Pool(jobs)


def batches(stream: Iterable[ReadResult], size: int) -> Iterator[list[ReadResult]]:
    """Batches of at most ``size`` results in which no exposure identity appears twice.

    A second file with an identity already in the batch waits for the next batch, so files
    with one identity are applied one after the other, in input order.
    """
    batch: list[ReadResult] = []
    keys: set = set()
    carry: list[ReadResult] = []

    def add(r: ReadResult) -> None:
        k = r.key
        if k is not None and k in keys:
            carry.append(r)
            return
        batch.append(r)
        if k is not None:
            keys.add(k)

    for r in stream:
        add(r)
        if len(batch) >= size:
            yield batch
            batch, keys = [], set()
            pending, carry = carry, []
            for c in pending:
                add(c)
    while batch or carry:
        if batch:
            yield batch
        batch, keys = [], set()
        pending, carry = carry, []
        for c in pending:
            add(c)


class Progress:
    """A rich progress bar on stderr (or nothing)."""

    def __init__(self, enabled: bool, total: int):
        self.bar = None
        if enabled and total:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("ingest"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                console=Console(stderr=True), transient=True)
            self.task = self.bar.add_task("ingest", total=total)
            self.bar.start()

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.advance(self.task)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
