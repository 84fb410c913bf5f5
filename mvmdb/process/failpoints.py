"""Failpoints: named places in the processing path where a test can make a worker stop.

A testing aid, inert unless the environment variable ``MVMDB_FAILPOINT`` is set. Its value
is a comma-separated list of ``NAME:ACTION`` items; ``NAME`` is one of :data:`POINTS`,
``ACTION`` one of

* ``sleep`` -- announce the hit, then sleep for a long time (``MVMDB_FAILPOINT_SLEEP``
  seconds, default 3600) so the test can ``kill -9`` the process at exactly this point;
* ``raise`` -- raise :class:`FailpointError` (a simulated crash that Python can still see);
* ``exit`` -- ``os._exit(137)`` at once: no ``finally`` blocks, no rollback, like SIGKILL.

A hit is announced by creating the file ``$MVMDB_FAILPOINT_DIR/<NAME>.<pid>`` (when that
variable is set) and by a line ``failpoint NAME hit (pid N)`` on stderr, so a test can wait
for the file instead of guessing a delay. Example::

    MVMDB_FAILPOINT=before_commit:sleep MVMDB_FAILPOINT_DIR=/tmp/fp mvm worker --once

Production code calls :func:`hit` at the points below; with the variable unset that is one
dictionary lookup.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ENV = "MVMDB_FAILPOINT"
ENV_DIR = "MVMDB_FAILPOINT_DIR"
ENV_SLEEP = "MVMDB_FAILPOINT_SLEEP"

POINTS = {
    "after_claim": "job claimed and committed as running, nothing drawn yet",
    "mid_drizzle": "inside a layer, after some inputs were added to the drizzle",
    "after_product_write": "a layer's product is complete in its temporary file, not renamed",
    "before_commit": "inside the finishing transaction: products renamed into place, "
    "catalog updates sent, COMMIT not yet issued",
    "after_commit": "the finishing transaction committed",
}
ACTIONS = ("sleep", "raise", "exit")


class FailpointError(RuntimeError):
    """Raised by a failpoint whose action is ``raise``."""


def _parse(value: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        name, _, action = item.partition(":")
        action = action or "sleep"
        if name not in POINTS or action not in ACTIONS:
            raise ValueError(
                f"bad {ENV} item {item!r}: use NAME:ACTION with NAME in {sorted(POINTS)} and ACTION in {ACTIONS}"
            )
        out[name] = action
    return out


def active() -> dict[str, str]:
    """The failpoints set in the environment, ``{name: action}`` (empty when unset)."""
    value = os.environ.get(ENV)
    return _parse(value) if value else {}


def hit(name: str) -> None:
    """Trigger failpoint ``name`` if the environment enables it; otherwise do nothing."""
    if name not in POINTS:  # a typo in the calling code must not pass silently
        raise ValueError(f"unknown failpoint {name!r}")
    value = os.environ.get(ENV)
    if not value:
        return
    action = _parse(value).get(name)
    if action is None:
        return
    print(f"failpoint {name} hit (pid {os.getpid()})", file=sys.stderr, flush=True)
    marker_dir = os.environ.get(ENV_DIR)
    if marker_dir:
        Path(marker_dir).mkdir(parents=True, exist_ok=True)
        (Path(marker_dir) / f"{name}.{os.getpid()}").touch()
    if action == "sleep":
        time.sleep(float(os.environ.get(ENV_SLEEP, "3600")))
    elif action == "raise":
        raise FailpointError(f"failpoint {name}")
    else:
        os._exit(137)
