"""Running processing tasks: executors, ``run_queue``, ``run_pollers`` and the ``run_worker`` loop.

A *task* is "claim job J (or the job of poller P) through the database, then draw it".
Tasks are plain picklable values run by :func:`run_task` wherever the executor puts them:

* ``inline`` -- in this process (tests, debugging);
* ``local[:N]`` -- N processes on this machine (default: the CPU count): this one and a pool
  of N - 1 more, all taking the next task from one list (largest sky cell first,
  :mod:`mvmdb.process.order`). Processes, not threads: drizzle's C kernel holds the GIL
  (``cdrizzle.tdriz`` never releases it). This process already has the drawing code loaded,
  so drawing here too spares one process its imports and memory. The pool uses the
  ``forkserver`` start method: a fresh server process (started by ``exec``, so no database
  connection or thread of ours is inherited across ``fork``) imports the drawing code once
  (:data:`DRAWING_MODULES`) and forks the pool's processes ready to draw. :meth:`Executor.start`
  starts it, so it imports while this process reads the catalog; :meth:`Executor.close` stops
  it and waits for it, so its processes are accounted to this one (``getrusage``);
* ``dask[:N]`` -- Dask distributed: the scheduler at ``scheduler`` (``tcp://host:8786``),
  or a ``LocalCluster`` of N single-threaded worker processes when no address is given.

Because every task claims its job in PostgreSQL (``SELECT ... FOR UPDATE SKIP LOCKED``,
see :mod:`mvmdb.process.queue`), a task that finds its job already claimed elsewhere does
nothing: any mix of executors, ``mvm worker`` loops and machines on one catalog draws each
job exactly once. Each task process makes its own engine from the URL (cached per process).
On other machines (Dask with a remote scheduler, several ``mvm worker``), the catalog URL
must reach the same PostgreSQL and the input files and products directory must be visible
at the same paths.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from mvmdb.db import jobs
from mvmdb.db.engine import make_engine
from mvmdb.errors import MvmdbError
from mvmdb.process import queue
from mvmdb.process.arena import release_process_arena
from mvmdb.process.direct import DIRECT_NOTE, busy_results, catalog_match, process_poller_direct
from mvmdb.process.draw import DrawOptions
from mvmdb.process.job import LayerResult, process_job

log = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL = 5.0
"""Seconds an idle worker waits before asking the queue again."""
FAST_FAILURES = 3
"""Consecutive failed jobs after which a worker backs off (and checks its products directory)."""
MAX_BACKOFF = 300.0
"""Longest back-off pause, seconds."""


def check_products_dir(products_dir: str | os.PathLike[str]) -> None:
    """Make sure products can be written under ``products_dir`` (created if needed); else one-line MvmdbError."""
    import tempfile

    path = Path(products_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise MvmdbError(f"cannot write products in {path}: {exc.strerror or exc}") from None


# --------------------------------------------------------------------------- settings, tasks


@dataclass(frozen=True)
class Settings:
    """Everything a task needs besides its own identity (picklable).

    ``db_url`` is a full SQLAlchemy URL string (password included: it travels to the task
    processes); ``products_dir`` the root of ``<skycell-name>/<product>`` files; times in
    seconds.
    """

    db_url: str
    products_dir: str
    heartbeat: float = queue.DEFAULT_HEARTBEAT
    stale_after: float = jobs.DEFAULT_STALE_AFTER
    max_attempts: int = jobs.DEFAULT_MAX_ATTEMPTS
    draw: DrawOptions = field(default_factory=DrawOptions)

    @classmethod
    def for_engine(cls, engine: sa.Engine, products_dir: str | os.PathLike[str], **kw: Any) -> "Settings":
        return cls(db_url=engine.url.render_as_string(hide_password=False), products_dir=str(products_dir), **kw)


@dataclass(frozen=True)
class Task:
    """``job``: claim job ``job_id``; ``poller``: process poller file ``poller``; ``any``: the next queued job."""

    kind: str
    job_id: int | None = None
    poller: str | None = None


@dataclass
class TaskOutcome:
    """What a task did. ``claimed`` is False when its job was taken or busy elsewhere."""

    task: Task
    claimed: bool
    results: list[LayerResult] = field(default_factory=list)
    job_id: int | None = None
    skycell: str | None = None
    note: str | None = None


_ENGINES: dict[str, sa.Engine] = {}


def task_engine(url: str) -> sa.Engine:
    """This process's engine for ``url`` (created once; a small pool: worker + heartbeat)."""
    eng = _ENGINES.get(url)
    if eng is None:
        eng = _ENGINES[url] = make_engine(url, pool_size=2, max_overflow=4)
    return eng


def dispose_task_engines() -> None:
    """Close this process's task engines (their pooled connections)."""
    while _ENGINES:
        _ENGINES.popitem()[1].dispose()


def failed_outcome(task: Task, exc: BaseException) -> TaskOutcome:
    """The outcome of a task that raised: one failed result naming the task, with a one-line reason."""
    from mvmdb.errors import one_line

    what = task.poller or (f"job {task.job_id}" if task.job_id is not None else "task")
    reason = one_line(exc) if isinstance(exc, MvmdbError) else f"{type(exc).__name__}: {one_line(exc)}"
    return TaskOutcome(task, claimed=False, results=[LayerResult(what, None, "failed", reason)], job_id=task.job_id,
                       note=reason)


def run_task(settings: Settings, task: Task, worker: str | None = None) -> TaskOutcome:
    """Run one task here (in whatever process the executor chose).

    A user's error in the task's input (a bad poller file: :class:`MvmdbError`) becomes a
    failed outcome instead of an exception, so it travels back like any result.
    """
    try:
        return _run_task(settings, task, worker)
    except MvmdbError as exc:
        return failed_outcome(task, exc)


def _run_task(settings: Settings, task: Task, worker: str | None = None) -> TaskOutcome:
    engine = task_engine(settings.db_url)
    worker = worker or queue.worker_identity()
    products = Path(settings.products_dir)
    if task.kind == "poller":
        return process_poller(engine, task.poller, settings, task, worker)
    job = queue.claim(engine, worker, job_id=task.job_id if task.kind == "job" else None)
    if job is None:
        return TaskOutcome(task, claimed=False, job_id=task.job_id, note="not claimable (taken or busy elsewhere)")
    results = process_job(engine, job, products, options=settings.draw, heartbeat_interval=settings.heartbeat)
    return TaskOutcome(task, claimed=True, results=results, job_id=job.id, skycell=job.sky_cell_name)


def process_poller(engine: sa.Engine, poller: str | os.PathLike[str], settings: Settings, task: Task,
                   worker: str) -> TaskOutcome:
    """``mvm process POLLER``: one poller file.

    The poller names a sky cell (row 0's; rows of other sky cells are ignored, as the
    archive does). If the catalog knows that sky cell and every file the poller lists (by
    path, else by file name), the sky cell's job is claimed -- created first if there is
    none -- and drawn exactly as a queued job (:func:`process_job`), so the catalog's
    bookkeeping (products, NEW -> OLD, job state) stays right and no other worker draws it
    at the same time. If the sky cell is running elsewhere its layers are reported
    ``skipped``. Otherwise the poller's files are drawn directly, without the catalog
    (:func:`mvmdb.process.direct.process_poller_direct`), and every result says so.
    """
    from mvmdb.poller import read_poller

    rows = read_poller(poller)
    if not rows:
        return TaskOutcome(task, claimed=False, note=f"{poller}: empty poller")
    skycell = rows[0].skycell
    rows = [r for r in rows if r.skycell == skycell]
    sid, unknown = catalog_match(engine, rows)
    if sid is not None and not unknown:
        jobs.enqueue(engine, sid, poller_path=str(poller))
        job = queue.claim(engine, worker, sky_cell_id=sid)
        if job is None:
            return TaskOutcome(task, claimed=False, skycell=skycell, results=busy_results(engine, sid),
                               note=f"{skycell} is being processed by another worker")
        results = process_job(engine, job, Path(settings.products_dir), options=settings.draw,
                              heartbeat_interval=settings.heartbeat)
        return TaskOutcome(task, claimed=True, results=results, job_id=job.id, skycell=skycell)
    why = f"{len(unknown)} of {len(rows)} files" if sid is not None else "sky cell"
    results = process_poller_direct(rows, Path(settings.products_dir), options=settings.draw,
                                    note=f"{DIRECT_NOTE} ({why} not catalogued)")
    return TaskOutcome(task, claimed=True, results=results, skycell=skycell, note=DIRECT_NOTE)


# --------------------------------------------------------------------------- executors


class Executor:
    """Runs ``run_task(settings, task)`` for many tasks; yields outcomes as they complete."""

    name = "executor"

    def run(self, settings: Settings, tasks: Sequence[Task]) -> Iterator[TaskOutcome]:
        raise NotImplementedError

    def warm(self) -> None:
        """Start the executor's processes and import the processing code there (optional)."""

    def start(self) -> None:
        """Like :meth:`warm`, without waiting: the processes import while the caller goes on (optional)."""

    def order(self, engine: sa.Engine, tasks: list[Task], cells: list[int | None] | None = None) -> list[Task]:
        """The order to hand ``tasks`` out in (default: as given)."""
        return tasks

    def close(self) -> None:
        pass

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class InlineExecutor(Executor):
    name = "inline"

    def run(self, settings, tasks):
        for t in tasks:
            yield run_task(settings, t)

    def close(self) -> None:
        # tasks ran in this process: don't leave their pooled connections behind
        dispose_task_engines()


def _spawn_init() -> None:
    # Task processes ignore Ctrl-C: the parent decides; their jobs are released or reaped.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


DRAWING_MODULES = ("mvmdb.process.run", "mvmdb.process.job", "mvmdb.process.direct", "mvmdb.process.inputs",
                   "mvmdb.process.drizzling", "mvmdb.process.skymatch", "mvmdb.process.keywords",
                   "mvmdb.process.product_headers", "mvmdb.fitsio.product")
"""What a task imports (drizzle, astropy, scipy, the writers): preloaded by the pool's fork server."""


def _warm_up(delay: float) -> int:
    """Import what a task needs and linger ``delay`` s, so that every process of the pool gets one."""
    import importlib

    for name in DRAWING_MODULES:
        importlib.import_module(name)
    time.sleep(delay)
    return os.getpid()


def _stop_fork_server() -> None:
    """Stop this process's ``forkserver`` and wait for it (its pool processes are accounted to us).

    Called once the pool's processes are gone: the server holds nothing but imported modules,
    so it is killed rather than left to tear its interpreter down (~0.3 s) while we wait.
    """
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    stop = getattr(server, "_stop", None)
    if stop is None:
        return
    pid = getattr(server, "_forkserver_pid", None)
    if pid is not None:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    stop()


def _run_here(settings: Settings, task: Task) -> TaskOutcome:
    """Run a task in this process; one that raised becomes a failed outcome, as from the pool (:func:`_result`)."""
    try:
        return run_task(settings, task)
    except Exception as exc:  # noqa: BLE001 - one task's failure must not lose the others' outcomes
        log.warning("task %s failed: %s", task, exc, exc_info=log.isEnabledFor(logging.DEBUG))
        return failed_outcome(task, exc)


def _result(fut, task: Task) -> TaskOutcome:
    """A future's outcome; a task that raised (or whose process died) becomes a failed outcome: no result is lost."""
    try:
        return fut.result()
    except Exception as exc:  # noqa: BLE001 - one task's failure must not lose the others' outcomes
        log.warning("task %s failed: %s", task, exc, exc_info=log.isEnabledFor(logging.DEBUG))
        return failed_outcome(task, exc)


class LocalExecutor(Executor):
    """``n`` processes: this one and a pool of ``n - 1`` forked by the fork server, kept for the executor's lifetime.

    :meth:`run` keeps one list of tasks: each pool process is handed the next task when it
    is free (from the pool's completion callbacks), and this process draws the next one
    whenever it has nothing else to do; outcomes are yielded as they complete.
    """

    def __init__(self, n: int | None = None):
        import multiprocessing

        self.n = max(1, n or os.cpu_count() or 1)
        self.name = f"local:{self.n}"
        self._pool = None
        if self.n > 1:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["__main__", *DRAWING_MODULES])
            self._pool = ProcessPoolExecutor(max_workers=self.n - 1, mp_context=ctx, initializer=_spawn_init)
        self._warming: list = []
        self._starter: threading.Thread | None = None

    def warm(self) -> None:
        self.start()
        if self._starter is not None:
            self._starter.join()
        for fut in self._warming:
            fut.result()

    def start(self) -> None:
        """Start the pool in a helper thread: a process start waits for the fork server's imports."""
        if self._pool is not None and self._starter is None:
            linger = 0.2 if self.n > 2 else 0.0  # one pool process needs no spreading
            pool, futures = self._pool, self._warming

            def submit_all() -> None:
                try:
                    futures.extend(pool.submit(_warm_up, linger) for _ in range(self.n - 1))
                except Exception as exc:  # noqa: BLE001 - a broken pool shows again when tasks are submitted
                    log.debug("warming the pool failed: %s", exc)

            self._starter = threading.Thread(target=submit_all, name="pool-start", daemon=True)
            self._starter.start()

    def order(self, engine, tasks, cells=None):
        from mvmdb.process.order import largest_first

        return largest_first(engine, tasks, cells) if len(tasks) > 1 else tasks

    def run(self, settings, tasks):
        import queue as stdlib_queue
        from collections import deque

        todo = deque(tasks)
        done: stdlib_queue.SimpleQueue = stdlib_queue.SimpleQueue()
        lock = threading.Lock()
        futures: dict = {}

        def feed() -> None:  # a pool process is free: hand it the next task
            with lock:
                if not todo:
                    return
                task = todo.popleft()
            try:  # outside the lock: submitting may wait for the pool's start
                fut = self._pool.submit(run_task, settings, task)
            except Exception as exc:  # noqa: BLE001 - a broken pool: the task fails, none is lost
                done.put((None, task, exc))
                return
            with lock:
                futures[fut] = task
            fut.add_done_callback(lambda f, t=task: (done.put((f, t, None)), feed()))

        def outcome(item) -> TaskOutcome:
            fut, task, exc = item
            return failed_outcome(task, exc) if fut is None else _result(fut, task)

        try:
            # this process is ready now, the pool may still be starting: the first (largest) task is ours
            first = todo.popleft() if todo else None
            for _ in range(self.n - 1 if self._pool is not None else 0):  # while this process draws
                threading.Thread(target=feed, name="pool-feed", daemon=True).start()
            expected = len(tasks)
            while expected:
                while True:  # outcomes of the pool first, so they are reported as soon as possible
                    try:
                        item = done.get_nowait()
                    except stdlib_queue.Empty:
                        break
                    expected -= 1
                    yield outcome(item)
                with lock:
                    task = first if first is not None else (todo.popleft() if todo else None)
                first = None
                if task is not None:
                    expected -= 1
                    yield _run_here(settings, task)
                elif expected:
                    expected -= 1
                    yield outcome(done.get())
        finally:
            with lock:
                todo.clear()
                for fut in futures:
                    fut.cancel()

    def close(self) -> None:
        dispose_task_engines()  # tasks drawn in this process: don't leave their pooled connections behind
        if self._pool is not None:
            if self._starter is not None:
                self._starter.join()
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            _stop_fork_server()


class DaskExecutor(Executor):
    """Dask distributed: a client of ``scheduler`` or of a fresh ``LocalCluster`` of ``n`` processes."""

    def __init__(self, scheduler: str | None = None, n: int | None = None):
        from distributed import Client, LocalCluster

        self._cluster = None
        if scheduler:
            self._client = Client(scheduler)
            self.name = f"dask:{scheduler}"
        else:
            n = max(1, n or os.cpu_count() or 1)
            self._cluster = LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.ERROR
            )
            self._client = Client(self._cluster)
            self.name = f"dask:local:{n}"

    def run(self, settings, tasks):
        from distributed import as_completed as dask_completed

        futures = {self._client.submit(run_task, settings, t, pure=False): t for t in tasks}
        for fut in dask_completed(list(futures)):
            yield _result(fut, futures[fut])

    def close(self) -> None:
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()


def make_executor(spec: str = "local", scheduler: str | None = None) -> Executor:
    """``inline``, ``local``, ``local:N``, ``dask`` or ``dask:N`` (+ ``scheduler`` address for dask)."""
    kind, _, count = spec.partition(":")
    try:
        n = int(count) if count else None
    except ValueError:
        raise ValueError(f"bad executor {spec!r}: the part after ':' must be a process count") from None
    if n is not None and n < 1:
        raise ValueError(f"bad executor {spec!r}: the process count must be >= 1")
    if scheduler and kind != "dask":
        raise ValueError("--scheduler only applies to --executor dask")
    if kind == "inline":
        return InlineExecutor()
    if kind == "local":
        return LocalExecutor(n)
    if kind == "dask":
        return DaskExecutor(scheduler, n)
    raise ValueError(f"unknown executor {spec!r}: use local[:N], dask[:N] or inline")


# --------------------------------------------------------------------------- drivers


OutcomeCallback = Callable[[TaskOutcome], None]


def run_queue(
    engine: sa.Engine,
    products_dir: str | os.PathLike[str],
    *,
    executor: Executor | str = "local",
    scheduler: str | None = None,
    on_outcome: OutcomeCallback | None = None,
    reap_first: bool = True,
    **settings_kw: Any,
) -> list[TaskOutcome]:
    """Draw every claimable queued job, then return (``mvm process --queue``).

    Rounds: list the claimable jobs (queued, sky cell not running elsewhere), run one task
    per job on the executor, repeat while a round claimed something (jobs of sky cells that
    were running become claimable when those finish). Jobs still blocked by a job running
    on another machine are left for the workers.
    """
    settings = Settings.for_engine(engine, products_dir, **settings_kw)
    check_products_dir(products_dir)  # before claiming anything
    own = isinstance(executor, str)
    ex = make_executor(executor, scheduler) if own else executor
    outcomes: list[TaskOutcome] = []
    try:
        if reap_first:
            jobs.reap(engine, settings.stale_after, max_attempts=settings.max_attempts)
        while True:
            claimable = jobs.claimable_jobs(engine)
            if not claimable:
                break
            claimed = 0
            tasks = ex.order(engine, [Task("job", job_id=j) for j, _ in claimable], [c for _, c in claimable])
            for out in ex.run(settings, tasks):
                outcomes.append(out)
                claimed += out.claimed
                if on_outcome:
                    on_outcome(out)
            if not claimed:
                break
    finally:
        if own:
            ex.close()
    return outcomes


def run_pollers(
    engine: sa.Engine,
    pollers: Iterable[str | os.PathLike[str]],
    products_dir: str | os.PathLike[str],
    *,
    executor: Executor | str = "local",
    scheduler: str | None = None,
    on_outcome: OutcomeCallback | None = None,
    **settings_kw: Any,
) -> list[TaskOutcome]:
    """Process poller files (``mvm process POLLER...``), one task per file; see :func:`process_poller`."""
    settings = Settings.for_engine(engine, products_dir, **settings_kw)
    check_products_dir(products_dir)
    tasks = [Task("poller", poller=str(Path(p).resolve())) for p in pollers]
    own = isinstance(executor, str)
    ex = make_executor(executor, scheduler) if own else executor
    outcomes: list[TaskOutcome] = []
    try:
        for out in ex.run(settings, ex.order(engine, tasks)):
            outcomes.append(out)
            if on_outcome:
                on_outcome(out)
    finally:
        if own:
            ex.close()
    return outcomes


class WorkerStop(BaseException):
    """Raised in the worker's main thread by SIGTERM: the job in hand is given back, the loop ends."""


def run_worker(
    engine: sa.Engine,
    products_dir: str | os.PathLike[str],
    *,
    once: bool = False,
    idle_exit: float | None = None,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    reap_interval: float | None = None,
    worker: str | None = None,
    on_outcome: OutcomeCallback | None = None,
    **settings_kw: Any,
) -> int:
    """The ``mvm worker`` loop: reap, claim, draw, repeat; returns the number of jobs drawn.

    ``once``: stop after one job (or at once when none is claimable). ``idle_exit``: stop
    after that many seconds without a claimable job (``None``: run until SIGTERM/SIGINT).
    Stale running jobs are reaped every ``reap_interval`` seconds (default: a quarter of
    ``stale_after``). On SIGTERM or Ctrl-C the job in hand is given back to the queue.

    A worker that cannot write its products directory stops before claiming (one-line
    :class:`MvmdbError`). After :data:`FAST_FAILURES` consecutive failed jobs it checks the
    directory again and pauses, doubling the pause up to :data:`MAX_BACKOFF` seconds, instead
    of draining the queue.
    """
    settings = Settings.for_engine(engine, products_dir, **settings_kw)
    check_products_dir(products_dir)
    worker = worker or queue.worker_identity()
    reap_every = reap_interval if reap_interval is not None else max(1.0, settings.stale_after / 4)
    done = failed_in_a_row = 0
    last_reap = -float("inf")
    last_work = time.monotonic()

    def on_term(signum, frame):
        raise WorkerStop()

    old = None
    try:
        old = signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread (tests): no handler
        pass
    try:
        while True:
            now = time.monotonic()
            if now - last_reap >= reap_every:
                jobs.reap(engine, settings.stale_after, max_attempts=settings.max_attempts)
                last_reap = now
            job = queue.claim(engine, worker)
            if job is not None:
                results = process_job(
                    engine, job, Path(settings.products_dir), options=settings.draw, heartbeat_interval=settings.heartbeat
                )
                done += 1
                last_work = time.monotonic()
                if on_outcome:
                    on_outcome(TaskOutcome(Task("any"), True, results, job.id, job.sky_cell_name))
                if once:
                    break
                failed_in_a_row = failed_in_a_row + 1 if results and all(r.status == "failed" for r in results) else 0
                if failed_in_a_row >= FAST_FAILURES:
                    check_products_dir(products_dir)
                    pause = min(MAX_BACKOFF, max(poll_interval, 1.0) * 2 ** (failed_in_a_row - FAST_FAILURES))
                    log.warning("worker %s: %d jobs failed in a row; pausing %.0f s", worker, failed_in_a_row, pause)
                    time.sleep(pause)
                continue
            if once or (idle_exit is not None and time.monotonic() - last_work >= idle_exit):
                break
            released = release_process_arena()  # idle: no reason to keep the last layer's window
            if released:
                log.info("worker %s: queue empty; released %.0f MB of drawing memory", worker, released / 1e6)
            time.sleep(poll_interval if idle_exit is None else min(poll_interval, max(0.05, idle_exit / 10)))
    except (WorkerStop, KeyboardInterrupt):
        log.warning("worker %s stopping on signal", worker)
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)
    return done
