"""One figure of a benchmark, for ``benchmarks/run_all.py``'s table.

A benchmark script calls :func:`record` for each figure the issues ask for, with the
baseline measured in the same run. When ``MVMDB_BENCH_RESULTS`` names a file, each call
appends one JSON line to it; otherwise it does nothing (the script's own printout stays
the human-readable report).
"""

from __future__ import annotations

import json
import os


#: Units where a smaller value is better (durations, memory, errors); others are rates.
LOWER_IS_BETTER = {"s", "ms", "GiB", "MiB", "px"}


def record(
    benchmark: str,
    measure: str,
    value: float,
    unit: str,
    *,
    baseline: float | None = None,
    baseline_what: str | None = None,
    target: str | None = None,
    met: bool | None = None,
) -> None:
    """Record ``measure`` = ``value`` ``unit``; ``baseline`` in the same unit, same run."""
    path = os.environ.get("MVMDB_BENCH_RESULTS")
    if not path:
        return
    ratio = None  # how many times better than the baseline
    if baseline not in (None, 0) and value not in (None, 0):
        ratio = baseline / value if unit in LOWER_IS_BETTER else value / baseline
    row = {
        "benchmark": benchmark, "measure": measure, "value": value, "unit": unit,
        "baseline": baseline, "baseline_what": baseline_what, "ratio": ratio, "target": target, "met": met,
    }
    with open(path, "a") as fh:
        fh.write(json.dumps(row) + "\n")
