"""Ingest calibrated exposures (FLT/FLC) into the catalog.

Modules: :mod:`~mvmdb.ingest.inputs` (arguments -> paths, switches),
:mod:`~mvmdb.ingest.pool` (reader workers running :func:`mvmdb.fitsio.reader.read_files`,
batches, progress), :mod:`~mvmdb.ingest.ingester` (classification of each file and the run;
writes through :mod:`mvmdb.db.exposures` and :mod:`mvmdb.db.members`),
:mod:`~mvmdb.ingest.results` (what a run reports).

:func:`ingest` is the plain function behind ``mvm ingest`` and ``scripts/nightly_ingest``:
``ingest(engine, paths, *, jobs, include_small, only_cte, progress) -> IngestSummary``.
One :class:`FileResult` per input file, with status

* ``ingested`` -- a new exposure, usable for MVM (layer members, NEW);
* ``excluded`` -- a new exposure stored with ``exposure.excluded_reason`` (chips, HEALPix
  ranges and sky cells are stored too; no layer memberships);
* ``unchanged`` -- already catalogued with the same header and WCS: nothing is written
  (``reason`` repeats the stored exclusion, if any);
* ``updated`` -- catalogued before, and its header or WCS changed (re-aligned), or its
  exclusion changed (other switches, an FLC appeared): footprint and memberships are
  recomputed and every affected layer is marked for redraw;
* ``error`` -- not ingested; ``reason`` says why; a row in ``ingest_error``.

``reason`` is the exclusion reason of every excluded exposure, whatever its status
(``excluded`` is the status of *new* excluded exposures only), or the error; else null.

Inputs (:func:`expand_inputs`): files (ingested whatever their name), directories
(recursive; ``*_flt.fits`` and ``*_flc.fits``), or text files listing paths (one per line,
``#`` comments; relative paths are relative to the list file). Paths are stored absolute
(``os.path.abspath``, symlinks kept).

Hostile inputs never stop a run (issue 15). Errors, each with its reason: a path that is
not UTF-8 (reported and recorded with ``\\xNN`` escapes, :func:`mvmdb.rules.display_path`),
longer than the system opens, or holding a comma or a line break (a poller line could not
carry it, :func:`mvmdb.rules.path_problem`); a directory that cannot be read; a list line
longer than any path; FIFOs, sockets and devices (refused from ``stat``, never opened); a
file whose reading exceeds the per-file time limit (``file_time_limit``); filter names with
characters other than letters, digits and '-'; EXTVER/NAXIS out of their columns' range.
Exclusions: everything the planner needs of a header is checked at ingest
(:func:`mvmdb.rules.catalog_exclusion`: negative EXPTIME, PROPOSID missing or out of
range). A file whose name is not ``*_flt.fits``/``*_flc.fits`` (its type from ``FILENAME``)
is catalogued under its pipeline name (:func:`mvmdb.rules.catalog_filename`).

Identity of an exposure: ``ipppssoot`` = lower-cased ``ROOTNAME``; ``filetype`` from the
file name's ``_flt``/``_flc`` suffix, else from the ``FILENAME`` keyword; else the file is
refused. Drizzled products (``_drz``/``_drc`` names, non-ipppssoot ROOTNAMEs) are refused.

FLT / FLC / duplicate paths (the rule)
--------------------------------------
* Exposure rows are unique on ``(ipppssoot, filetype)``.
* When both the FLT and the FLC of an ipppssoot are catalogued, only the FLC joins layers;
  the FLT is kept with ``excluded_reason = 'superseded by <ipppssoot>_flc.fits'`` (its
  chips and sky cells stay). An FLC arriving after its FLT supersedes the FLT then: the
  FLT's memberships are removed and their layers marked for redraw.
* The same ``(ipppssoot, filetype)`` from another path with identical header and WCS hashes
  is ``unchanged``; the stored path is kept unless it no longer exists, in which case it
  moves to the new path (the only write). With different hashes it is ``updated`` and the
  new path is stored. Within one run the inputs are applied in order: the second of two
  files with one identity is compared with the first (it lands in a later batch).

Re-ingest. A file whose absolute path, size and mtime match the stored
``file_size``/``file_mtime_ns`` is not opened at all; its switch-dependent exclusion
(``MVM_INCLUDE_SMALL``, ``MVM_ONLY_CTE``, supersession) is re-evaluated from catalog
columns (content reasons never depend on switches, see :mod:`mvmdb.rules`). A file with
another size or mtime is read; equal hashes -> ``unchanged`` (only the stored size/mtime
are refreshed).

Redraw. Layers whose membership changed are marked for redraw: all their members become
NEW with a fresh ``nextval('member_generation_seq')``. That covers every layer of an
updated exposure (before and after), and every layer that lost a member. A new member
simply joins as NEW.

Speed. Headers are read and footprints computed in worker processes (``jobs``; a fork
pool started before any thread or connection), sky cells in vectorized calls per chunk of
files; the parent writes batches with COPY into TEMP staging tables and set-based SQL, one transaction per batch
(:mod:`mvmdb.db.bulk`). A batch that fails in the database is retried file by file, so
one bad row costs only its own file.

Units: exposure times in seconds, EXPSTART/EXPEND MJD, angles in degrees.
"""

from __future__ import annotations

from mvmdb.ingest.ingester import DEFAULT_BATCH, ingest
from mvmdb.ingest.inputs import default_jobs, expand_inputs, switches_from_env
from mvmdb.ingest.results import STATUSES, FileResult, IngestSummary, print_error_line

__all__ = [
    "DEFAULT_BATCH", "STATUSES", "FileResult", "IngestSummary", "ingest", "expand_inputs", "default_jobs",
    "switches_from_env", "print_error_line",
]
