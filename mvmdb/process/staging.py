"""Owner-tagged staging directories, and publication that catalog and files survive a crash at any point.

Each job run stages its files (temporary products, drizzle spools, backups of the products
it replaces) in a hidden directory of the sky cell's product directory named after its lease
(:class:`mvmdb.db.jobs.Lease`): ``.stage-j<job id>-b<backend pid>-<token>``. Only that owner
writes or removes anything inside it while its lease is held; a later worker of the sky cell
removes the directories whose owner's lease is gone (:func:`recover`), after undoing an
unfinished publication. No worker ever deletes a file of a live owner.

Publication (:func:`place`, called inside the finishing transaction with the job row locked
and ownership checked, before COMMIT):

1. write ``.placing.tmp`` in the stage (the final paths about to change), fsynced;
2. hard-link each existing final file to ``.prev-<name>.tmp`` in the stage (the old content is kept
   until COMMIT);
3. rename each staged file onto its final name; fsync the directories.

After COMMIT the caller removes the stage (:func:`remove`). A crash anywhere in between leaves
``.placing.tmp``: :func:`recover` then compares each final file with the catalog's checksum. If
they match, the COMMIT happened and the file stays; otherwise the old file comes back from
``.prev-<name>.tmp`` (or, when there was none, the uncatalogued new file is removed). Afterwards the
catalog and the files agree, and the layer (still NEW) is drawn again by the job's next run.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa

from mvmdb.db.jobs import owner_alive
from mvmdb.db.products import checksums_by_path
from mvmdb.fitsio.product import fsync_directory, sha256_of

log = logging.getLogger(__name__)

STAGE_RE = re.compile(r"^\.stage-j(\d+)-b(\d+)-[0-9a-f]+$")
"""Name of a staging directory: job id and the owner's PostgreSQL backend pid."""
PLACING = ".placing.tmp"
"""The manifest of a publication in progress (hidden, like every file of a stage)."""


def new_stage(target: Path, tag: str) -> Path:
    """Create ``target/.stage-<tag>-<token>`` (``tag`` is the lease's ``j<job>-b<pid>``)."""
    stage = Path(target) / f".stage-{tag}-{uuid.uuid4().hex[:10]}"
    stage.mkdir(parents=True)
    return stage


def place(pairs: Sequence[tuple[Path, Path]]) -> None:
    """Rename each staged ``(tmp, final)`` onto ``final``, keeping the old finals in the stage (steps 1-3)."""
    if not pairs:
        return
    stages = {Path(tmp).parent for tmp, _ in pairs}
    for stage in stages:
        mine = [str(final) for tmp, final in pairs if Path(tmp).parent == stage]
        with open(stage / PLACING, "w") as fh:
            json.dump(mine, fh)
            fh.flush()
            os.fsync(fh.fileno())
        fsync_directory(stage)
    dirs = set(stages)
    for tmp, final in pairs:
        final = Path(final)
        prev = Path(tmp).parent / f".prev-{final.name}.tmp"
        if final.exists():
            prev.unlink(missing_ok=True)
            os.link(final, prev)
        os.replace(tmp, final)
        dirs.add(final.parent)
    for d in dirs:
        fsync_directory(d)


def committed(pairs: Sequence[tuple[Path, Path]]) -> None:
    """After COMMIT: the publication needs no recovery any more (drop the manifests and the old files)."""
    for stage in {Path(tmp).parent for tmp, _ in pairs}:
        (stage / PLACING).unlink(missing_ok=True)
        for prev in stage.glob(".prev-*.tmp"):
            prev.unlink(missing_ok=True)


def remove(stage: Path) -> None:
    """Remove a stage directory and everything in it (best effort)."""
    shutil.rmtree(stage, ignore_errors=True)


def needs_recovery(stage: Path) -> bool:
    """Whether a publication from ``stage`` started and was not confirmed committed."""
    return (Path(stage) / PLACING).exists()


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return sha256_of(fh)


def _undo(engine: sa.Engine, stage: Path) -> None:
    """Make the finals listed in the stage's ``.placing.tmp`` agree with the catalog again."""
    finals = [Path(p) for p in json.loads((stage / PLACING).read_text())]
    catalog = checksums_by_path(engine, [str(p) for p in finals])
    for final in finals:
        want = catalog.get(str(final))
        if want is not None and final.exists() and _sha256(final) == want:
            continue  # committed (or unchanged): the file is the catalogued one
        prev = stage / f".prev-{final.name}.tmp"
        if prev.exists():
            os.replace(prev, final)
            log.warning("restored %s: its replacement was never committed", final)
        elif final.exists() and want is None:
            final.unlink()
            log.warning("removed %s: placed by a worker that died before COMMIT", final)
    for d in {f.parent for f in finals}:
        fsync_directory(d)


def recover(engine: sa.Engine, target: Path) -> int:
    """Undo and remove the stage directories in ``target`` whose owner's lease is gone; returns their count."""
    n = 0
    if not Path(target).is_dir():
        return 0
    for stage in Path(target).iterdir():
        m = STAGE_RE.match(stage.name)
        if m is None or not stage.is_dir() or owner_alive(engine, int(m[1]), int(m[2])):
            continue
        if needs_recovery(stage):
            _undo(engine, stage)
        remove(stage)
        n += 1
    if n:
        log.info("recovered %d staging directories of dead workers in %s", n, target)
    return n
