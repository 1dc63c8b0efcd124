"""Executing grids: every run's notebook by papermill, one run per Dask worker process.

Why it is built this way:
- The runner (the process that called :func:`run_grid`) is the only writer of
  ``<output_dir>/<grid>/runs/<run_id>/``. A worker executes its notebook in a private temporary
  folder and sends the executed notebook, ``result.json``, ``history.csv`` and other small files
  back as bytes, so workers need no shared filesystem and never race on files.
- Each run folder appears in one atomic rename, complete or not at all: a grid killed at any
  moment (``kill -9`` of the runner included) loses no finished run, and a rerun redoes exactly
  the runs without a ``result.json``.
- A run is a pure function of its parameters (``run_id``), so a run recorded ``ok`` or
  ``incompatible`` is never redone; ``failed`` runs are redone with ``retry_failed``.
- Inside a worker, papermill runs in its own process group under a wall-clock limit, so a run that
  raises, times out or whose kernel dies (out of memory, say) becomes a ``failed`` record with the
  reason and the tail of the error, and the grid goes on. If the worker or the runner dies, the
  notebook's process tree is killed too (no orphaned kernels training on).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import PeprError
from .gpus import describe, visible_gpus, worker_env, worker_gpus
from .spec import NOTEBOOK_PRETRAINED, NOTEBOOK_SCRATCH, Grid, Run, load_grid
from .worker import MAX_FILE_BYTES, TEMP_PREFIX, _failure, execute_run

#: Dask settings for the LocalCluster a grid starts (one run per worker: Dask's own work is overhead)
LOCAL_CLUSTER_CONFIG = {"distributed.worker.profile.enabled": False, "distributed.admin.system-monitor.interval": "2s"}
DONE = ("ok", "incompatible")  # statuses never redone (a run is deterministic in its parameters)


def notebooks_dir() -> Path:
    """The study's notebooks, shipped as package data (a checkout's ``notebooks/`` or the installed copy)."""
    from ..settings import shipped

    return shipped("notebooks")


def grid_dir(grid: Grid, output_dir: str | os.PathLike | None = None) -> Path:
    from ..settings import output_dir as _output_dir

    return Path(_output_dir(output_dir)) / grid.name


# --------------------------------------------------------------------------- state on disk
@dataclass
class RunState:
    run: Run
    state: str  # "ok" | "incompatible" | "failed" | "pending"
    error: str | None = None
    path: Path | None = None


def grid_states(grid: Grid, output_dir: str | os.PathLike | None = None) -> list[RunState]:
    """Each run's state from its folder: the status in its ``result.json``, else pending."""
    runs_dir = grid_dir(grid, output_dir) / "runs"
    states = []
    for run in grid.runs:
        path = runs_dir / run.run_id
        record = _read_status(path / "result.json")
        if record is None:
            states.append(RunState(run, "pending", path=path))
        else:
            states.append(RunState(run, record.get("status", "failed"), record.get("error"), path))
    return states


def unreadable_record(result: Path) -> str | None:
    """Why ``result`` exists but cannot be used as a record (truncated, not JSON, no status), else None."""
    if not result.exists():
        return None
    try:
        record = json.loads(result.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'unreadable'}"
    if not isinstance(record, dict):
        return f"not a JSON object but {type(record).__name__}"
    if record.get("status") not in ("ok", "failed", "incompatible"):
        return f"status {record.get('status')!r} is not ok, failed or incompatible"
    return None


def _read_status(result: Path) -> dict | None:
    """The record's status and error, or None when there is no readable record (the run is redone)."""
    try:
        record = json.loads(result.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("status") not in ("ok", "failed", "incompatible"):
        return None
    return record


@dataclass
class GridStatus:
    grid: str
    directory: Path
    counts: dict[str, int]
    failed: list[RunState]
    stale: list[str]  # run folders not (or no longer) part of this grid
    partial: list[str]  # half-written folders left by a killed runner (ignored, cleaned on the next run)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (result.json path, why): counted pending

    def lines(self) -> list[str]:
        c = self.counts
        out = [f"grid {self.grid} ({self.directory}): {sum(c.values())} runs: "
               + ", ".join(f"{c.get(k, 0)} {k}" for k in ("ok", "incompatible", "failed", "pending"))]
        for s in self.failed:
            p = s.run.params.as_dict()
            reason = (s.error or "no reason recorded").strip().splitlines()[0][:200]
            out.append(f"  failed {s.run.run_id} {p['model']} {p['dataset']} {p['size']}px "
                       f"fraction={p['fraction']} weights={p['weights'] or 'scratch'}: {reason}")
        if self.stale:
            out.append(f"  {len(self.stale)} run folder(s) not in this grid (kept, not collected)")
        if self.partial:
            out.append(f"  {len(self.partial)} half-written folder(s) from an interrupted run (ignored)")
        for path, why in self.unreadable:
            out.append(f"  unreadable record {path} ({why}): counted as pending; the next `pepr grid run` redoes it")
        return out


def grid_status(grid: Grid, output_dir: str | os.PathLike | None = None) -> GridStatus:
    states = grid_states(grid, output_dir)
    runs_dir = grid_dir(grid, output_dir) / "runs"
    ids = {r.run_id for r in grid.runs}
    stale, partial = [], []
    if runs_dir.is_dir():
        for entry in sorted(runs_dir.iterdir()):
            if entry.name.startswith("."):
                partial.append(entry.name)
            elif entry.is_dir() and entry.name not in ids:
                stale.append(entry.name)
    unreadable = [(str(s.path / "result.json"), why) for s in states if s.state == "pending" and s.path
                  and (why := unreadable_record(s.path / "result.json"))]
    return GridStatus(grid.name, grid_dir(grid, output_dir), dict(Counter(s.state for s in states)),
                      [s for s in states if s.state == "failed"], stale, partial, unreadable)


def collect_grid(grid: Grid, output_dir: str | os.PathLike | None = None,
                 out: str | os.PathLike | None = None) -> tuple[Path, int]:
    """Write the grid's results table (``records.collect`` over its finished runs) atomically."""
    from ..fileio import atomic_path
    from ..records import collect

    done = [s.path for s in grid_states(grid, output_dir) if s.state != "pending"]
    if not done:
        raise PeprError(f"grid {grid.name!r} has no finished runs in {grid_dir(grid, output_dir)}; "
                        "run `pepr grid run` first")
    table = collect(done)
    target = Path(out) if out else grid_dir(grid, output_dir) / "results.csv"
    with atomic_path(target) as tmp:
        table.to_csv(tmp, index=False)
    return target, len(table)


# --------------------------------------------------------------------------- running
@dataclass
class GridReport:
    grid: str
    directory: Path
    total: int
    already_done: int
    to_run: int
    counts: Counter = field(default_factory=Counter)  # statuses of the runs executed now
    failed: list[tuple[str, str]] = field(default_factory=list)  # (run_id, reason)
    wall_s: float = 0.0
    workers: int = 0
    threads_per_run: int | None = None
    failed_before: list[str] = field(default_factory=list)  # run ids recorded failed earlier and not redone now


def run_grid(grid: Grid | str | os.PathLike, *, workers: int = 1, scheduler: Any = None,
             retry_failed: bool = False, dry_run: bool = False, timeout_s: float | None = None,
             output_dir: str | os.PathLike | None = None, progress: bool = True,
             threads_per_run: int | None = None, log=print) -> GridReport:
    """Run every pending run of ``grid`` (and failed ones with ``retry_failed``) on Dask.

    ``workers`` starts a LocalCluster of that many single-threaded worker processes; ``scheduler``
    (an address such as ``tcp://host:8786``, a dask-jobqueue cluster or a ``distributed.Client``)
    uses an existing cluster instead; runs on ``cuda`` ask for one ``GPU`` resource when its workers
    declare GPUs (a local cluster's workers hold one visible GPU each: :mod:`~pepr_utils.grid.gpus`). ``timeout_s`` is a wall-clock limit per run. Returns counts; failures are
    recorded, never raised.
    """
    if not isinstance(grid, Grid):
        grid = load_grid(grid)
    if isinstance(scheduler, str):
        scheduler = check_scheduler_address(scheduler)
    if timeout_s is not None and not timeout_s > 0:
        raise PeprError(f"--timeout {timeout_s!r} must be a positive number of seconds")
    if scheduler is None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise PeprError(f"--workers {workers!r} must be a positive integer")
    directory = grid_dir(grid, output_dir)
    states = grid_states(grid, output_dir)
    redo = DONE if retry_failed else DONE + ("failed",)
    todo = [s.run for s in states if s.state not in redo]
    report = GridReport(grid.name, directory, len(states), len(states) - len(todo), len(todo))
    report.failed_before = [s.run.run_id for s in states if s.state == "failed" and not retry_failed]
    if dry_run:
        return report
    clean_leftovers(grid)
    if not todo:
        return report

    cores = _cores()
    held = _local_gpus(todo, workers) if scheduler is None else []
    if threads_per_run is None and scheduler is None:
        threads_per_run = local_threads_per_run(todo, workers, held, cores)
    report.workers, report.threads_per_run = workers, threads_per_run
    started = time.perf_counter()
    with _grid_lock(directory):
        _clean_partial(directory / "runs")
        notebooks = {nb: _notebook_bytes(nb) for nb in {r.notebook for r in todo}}
        if held:
            log(describe(held))
        client, close = _client(workers, scheduler, held)
        try:
            if scheduler is not None and not client.scheduler_info().get("workers"):
                log("waiting for the first Dask worker to join the cluster ...")
                client.wait_for_workers(1)  # a batch queue may take a while; resources are read from workers
            gpu = _workers_have(client, "GPU")
            report.workers = len(client.scheduler_info().get("workers", {})) or workers
            log(f"grid {grid.name}: {report.total} runs, {report.already_done} already done, "
                f"{len(todo)} to run on {report.workers} worker(s)"
                + (f", {threads_per_run} thread(s) each" if threads_per_run else "")
                + (f", dashboard {client.dashboard_link}" if scheduler is not None and client.dashboard_link else ""))
            futures = {}
            ordered = schedule_order(todo, report.workers)
            for i, run in enumerate(ordered):
                task = _task(run, notebooks[run.notebook], timeout_s, threads_per_run,
                             runner_pid=os.getpid() if scheduler is None else None)
                resources = {"GPU": 1} if gpu and run.params.device.startswith("cuda") else None
                fut = client.submit(execute_run, task, key=f"pepr-{grid.name}-{run.run_id}-{time.time_ns()}",
                                    pure=False, resources=resources, priority=len(ordered) - i)
                futures[fut] = run
            _gather(grid, futures, directory, report, progress)
        finally:
            close()
    report.wall_s = time.perf_counter() - started
    return report


def schedule_order(runs: list[Run], workers: int) -> list[Run]:
    """Longest runs first (fewer idle workers at the end), but the first wave on distinct datasets,
    so that concurrent first runs do not all decode the same uncached dataset at once."""
    by_cost = sorted(runs, key=lambda r: -r.cost)
    first, seen = [], set()
    for run in by_cost:
        key = (run.params.dataset, run.params.size)
        if len(first) < workers and key not in seen:
            first.append(run)
            seen.add(key)
    chosen = {id(r) for r in first}
    return first + [r for r in by_cost if id(r) not in chosen]


def _gather(grid: Grid, futures: dict, directory: Path, report: GridReport, progress: bool) -> None:
    """Write each run's folder as its future completes, updating the progress bar."""
    from distributed import as_completed
    from tqdm.auto import tqdm

    with tqdm(total=len(futures), desc=f"grid {grid.name}", unit="run", disable=not progress,
              dynamic_ncols=True) as bar:
        bar.set_postfix_str(f"ok 0, failed 0, left {len(futures)}")
        for fut in as_completed(list(futures)):
            run = futures[fut]
            try:
                result = fut.result()
            except Exception as exc:  # noqa: BLE001 - a lost worker or a cancelled task: record it, go on
                result = _failure(run.run_id, "worker", f"{type(exc).__name__}: {exc}", "")
            status, error = write_run(directory / "runs" / run.run_id, run, result)
            report.counts[status] += 1
            if status == "failed":
                report.failed.append((run.run_id, (error or "").splitlines()[0] if error else ""))
            fut.release()
            done = sum(report.counts.values())
            bar.set_postfix_str(f"ok {report.counts['ok'] + report.counts['incompatible']}, "
                                f"failed {report.counts['failed']}, left {len(futures) - done}", refresh=False)
            bar.update(1)


def write_run(target: Path, run: Run, result: dict) -> tuple[str, str | None]:
    """The runner's single write of one run folder: executed notebook, files, and the record."""
    from ..fileio import atomic_dir
    from ..records import make_record, write_record
    from ..records import now as utc_now

    files: dict[str, bytes] = result.get("files") or {}
    status, error = None, None
    record = _parse_json(files.get("result.json"))
    if result.get("ok"):
        if record is None:
            status = "failed"
            error = "notebook finished without writing a valid result.json into out_dir"
        else:
            status, error = record.get("status"), record.get("error")
    else:
        status = "failed"
        error = f"{result.get('reason', 'error')}: {result.get('error', '')}".strip()
        tail = (result.get("tail") or "").strip()
        if tail:
            error += "\n" + tail
    dropped: list[str] = []
    if status == "failed":  # a model, predictions or history of a failed run must not sit beside its record
        dropped = sorted(rel for rel in files if rel != "result.json")
        files = {rel: data for rel, data in files.items() if rel == "result.json"}
    with atomic_dir(target) as tmp:
        for rel, data in files.items():
            dest = tmp / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
        if result.get("notebook"):
            (tmp / f"{Path(run.notebook).stem}.ipynb").write_bytes(result["notebook"])
        if status == "failed" and (not result.get("ok") or record is None):
            now = utc_now()
            write_record(tmp, make_record(params=run.params.as_dict(), status="failed", error=error,
                                          started_at=result.get("started_at") or now, finished_at=now))
        info = {"run_id": run.run_id, "notebook": run.notebook, "label": run.label, "params": run.params.as_dict(),
                "extras": run.settings.as_dict(), "reason": result.get("reason"), "wall_s": result.get("wall_s"),
                "cpu_s": result.get("cpu_s"),
                "worker": result.get("worker"), "left_out": result.get("left_out", []),
                "dropped_as_failed": dropped}
        (tmp / "grid_run.json").write_text(json.dumps(info, indent=2, default=str) + "\n", encoding="utf-8")
    return status or "failed", error


def _parse_json(data: bytes | None) -> dict | None:
    if not data:
        return None
    try:
        obj = json.loads(data)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) and obj.get("status") in ("ok", "failed", "incompatible") else None


def _task(run: Run, notebook: bytes, timeout_s: float | None, threads: int | None,
          runner_pid: int | None) -> dict[str, Any]:
    return {"run_id": run.run_id, "notebook": notebook, "parameters": run.notebook_parameters(out_dir=""),
            "timeout_s": timeout_s, "threads": threads, "runner_pid": runner_pid,
            "max_file_bytes": MAX_FILE_BYTES}


def _notebook_bytes(notebook: str) -> bytes:
    path = Path(notebook) if notebook not in (NOTEBOOK_SCRATCH, NOTEBOOK_PRETRAINED) \
        else notebooks_dir() / f"{notebook}.ipynb"
    if not path.is_file():
        raise PeprError(f"notebook {str(path)!r} not found; run `make notebooks` to create the .ipynb "
                        "files from their .py twins")
    return path.read_bytes()


_SCHEDULER_ADDRESS = re.compile(r"^(?:(?P<proto>[a-z][a-z0-9+]*)://)?(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+)"
                                r":(?P<port>[0-9]{1,5})/?$")


def check_scheduler_address(address: str) -> str:
    """``address`` if it reads as a Dask scheduler address (``tcp://host:8786``, ``host:8786``), else a
    one-line PeprError; checked before the grid folder is touched."""
    text = str(address).strip()
    if text.startswith("inproc://") and len(text) > len("inproc://"):  # a cluster in this process
        return text
    m = _SCHEDULER_ADDRESS.match(text)
    ok = m is not None and 0 < int(m["port"]) < 65536 and (m["proto"] or "tcp") in ("tcp", "tls", "ucx", "ws", "wss")
    if not ok:
        raise PeprError(f"--scheduler {address!r} is not a Dask scheduler address; expected PROTOCOL://HOST:PORT "
                        "such as tcp://10.0.0.5:8786 (protocols tcp, tls, ucx, ws, wss; port 1-65535)")
    return text


def local_threads_per_run(todo: list[Run], workers: int, held: list[str | None], cores: int) -> int:
    """Threads each run of a local cluster gets: the cores over the runs that run at once, which are every
    worker's, or only the GPU workers' when every run is a cuda run (the others then stay idle)."""
    gpu_only = held and all(r.params.device.startswith("cuda") for r in todo)
    busy = sum(g is not None for g in held) if gpu_only else workers
    return max(1, cores // max(1, busy))


def _local_gpus(todo: list[Run], workers: int) -> list[str | None]:
    """The GPU each local worker holds (:mod:`~pepr_utils.grid.gpus`) when some run asks for ``cuda`` and the
    machine shows a GPU; [] otherwise (a plain LocalCluster). A run that names its GPU (``cuda:1``) keeps
    that choice: such a grid is not pinned (a worker that sees one GPU has no ``cuda:1``)."""
    devices = {r.params.device for r in todo}
    if not any(d.startswith("cuda") for d in devices) or any(d.startswith("cuda:") for d in devices):
        return []
    gpus = visible_gpus()
    return worker_gpus(workers, gpus) if gpus else []


def _client(workers: int, scheduler: Any, held: list[str | None] = ()):
    """A Dask client and how to close it: an existing cluster, or a local cluster of processes (whose
    workers hold the GPUs ``held`` names, one each, where it names any)."""
    import logging

    from distributed import Client, LocalCluster

    if isinstance(scheduler, Client):
        return scheduler, lambda: None
    if scheduler is not None and not isinstance(scheduler, str):  # a cluster object (dask-jobqueue, ...)
        client = Client(scheduler)
        return client, client.close
    if scheduler:
        try:
            client = Client(scheduler, timeout="30s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise PeprError(f"cannot reach the Dask scheduler at {scheduler!r} ({exc}); "
                            "expected an address such as tcp://host:8786") from exc
        return client, client.close
    import dask

    # Dask's bookkeeping shares the cores with the runs: no dashboard nobody sees, no statistical profiler
    # sampling the worker thread every 10 ms, the system monitor every 2 s instead of 0.5 s
    with dask.config.set(LOCAL_CLUSTER_CONFIG):
        if any(g is not None for g in held):
            cluster = _gpu_cluster(held, logging.ERROR)
        else:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                                   silence_logs=logging.ERROR)
    client = Client(cluster)

    def close() -> None:
        client.close()
        cluster.close()

    return client, close


def _gpu_cluster(held: list[str | None], silence_logs: int):
    """A local cluster like LocalCluster's (one thread per worker process, on 127.0.0.1, no dashboard) whose
    worker i sees only GPU ``held[i]`` and declares ``GPU=1``, or sees none when ``held[i]`` is None."""
    import logging

    from distributed import Nanny, Scheduler, SpecCluster
    from distributed.worker_memory import parse_memory_limit

    # LocalCluster's share of the memory (all of it over the workers), not Nanny's own default (1/cores each)
    memory = parse_memory_limit("auto", 1, len(held), logger=logging.getLogger("distributed.worker.memory"))

    def worker(gpu: str | None) -> dict:
        return {"cls": Nanny, "options": {"nthreads": 1, "host": "127.0.0.1", "silence_logs": silence_logs,
                                          "env": worker_env(gpu), "memory_limit": memory,
                                          "resources": {"GPU": 1} if gpu is not None else {}}}

    return SpecCluster(workers={i: worker(g) for i, g in enumerate(held)}, silence_logs=silence_logs,
                       scheduler={"cls": Scheduler, "options": {"host": "127.0.0.1", "dashboard_address": None}})


def _workers_have(client, resource: str) -> bool:
    info = client.scheduler_info().get("workers", {})
    return any(resource in (w.get("resources") or {}) for w in info.values())


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


@contextmanager
def _grid_lock(directory: Path):
    """One runner per grid folder at a time (the lock goes away with the process, even on kill -9).

    A grid folder this call created is removed again if nothing but the lock ended up in it (an
    unreachable scheduler, say), so a run that did nothing leaves nothing behind.
    """
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    try:
        with _lock_file(directory):
            yield
    finally:
        if created:
            try:
                if [p.name for p in directory.iterdir()] == [".lock"]:
                    (directory / ".lock").unlink()
                    directory.rmdir()
            except OSError:
                pass


@contextmanager
def _lock_file(directory: Path):
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock
        yield
        return
    with open(directory / ".lock", "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise PeprError(f"grid folder {str(directory)!r} is in use by another `pepr grid run`; "
                            "wait for it or stop it first") from exc
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _clean_partial(runs_dir: Path) -> None:
    """Remove half-written folders (hidden temporary names) left by a runner that was killed."""
    if runs_dir.is_dir():
        for entry in runs_dir.iterdir():
            if entry.name.startswith(".") and entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)




def clean_leftovers(grid: Grid, tmp_root: str | os.PathLike | None = None, min_age_s: float = 60.0) -> list[Path]:
    """Remove the temporary run folders (and the kernel connection files inside them) that killed or
    timed-out runs of ``grid`` left in ``$TMPDIR`` on this machine; return what was removed.

    Only folders of this grid's run ids are touched, and never one that may be in use: its runner (named
    in its ``job.json``) alive, a process working in it, or changed in the last ``min_age_s`` seconds (a
    run starting now, whose kernel is not up yet).
    """
    import psutil

    root = Path(tmp_root or tempfile.gettempdir())
    ids = {r.run_id for r in grid.runs}
    candidates = [p for p in root.glob(f"{TEMP_PREFIX}*")
                  if p.is_dir() and not p.is_symlink() and p.name[len(TEMP_PREFIX):].rsplit("-", 1)[0] in ids]
    if not candidates:
        return []
    busy = set()
    for proc in psutil.process_iter(["cwd"]):
        cwd = proc.info.get("cwd")
        for p in candidates:
            if cwd and (cwd == str(p) or cwd.startswith(str(p) + os.sep)):
                busy.add(p)
    removed = []
    for p in candidates:
        if p in busy:
            continue
        try:
            job = json.loads((p / "job.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            job = None
        # the processes a run's papermill watches (its worker and runner): all gone means nobody will use it
        owners = [pid for pid in ((job.get("watch_pids") or [job.get("runner_pid")]) if isinstance(job, dict) else [])
                  if isinstance(pid, int) and pid != os.getpid()]
        if any(psutil.pid_exists(pid) for pid in owners):
            continue  # another runner (another grid with this run) is still using it
        if not owners:  # no job file yet: maybe a run being set up right now, so only an old one goes
            try:
                if time.time() - p.stat().st_mtime < min_age_s:
                    continue
            except OSError:
                continue
        shutil.rmtree(p, ignore_errors=True)
        if not p.exists():
            removed.append(p)
    return removed

