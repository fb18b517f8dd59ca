"""Where shot tasks run: in this process, in local worker processes, or on a Ray cluster.

Tasks share nothing but file paths: each writes its frames atomically into its job's work
directory, so progress is read from those directories the same way for every executor, and a
task that is retried (Ray, or a re-run after a crash) continues after its last finished frame."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import replace
from typing import Any

from tqdm.auto import tqdm

from ..errors import StrotssError, UsageError, install_stop_handlers
from ..features.vgg import FeatureExtractor
from ..flow.base import FlowEstimator
from .job import ShotOutcome, ShotTask, run_shot, threads_per_worker
from .workdir import WorkDir

EXECUTORS = ("local", "ray")
POLL_SECONDS = 0.5


class BatchProgress:
    """An overall bar (frames done / total, ETA) and one line per running shot."""

    def __init__(self, tasks: Sequence[ShotTask], done_before: int, total: int,
                 enabled: bool, slots: int) -> None:
        self.enabled = enabled
        self.total = total
        self.bar = tqdm(total=total, initial=done_before, disable=not enabled, unit="frame",
                        desc="all shots", position=0, dynamic_ncols=True)
        self.lines = [tqdm(total=0, bar_format="{desc}", position=i + 1, disable=not enabled,
                           leave=False) for i in range(max(0, slots))] if slots > 1 else []
        self.tasks = list(tasks)
        self._counts: dict[tuple[str, int], int] = {}
        self._initial: dict[tuple[str, int], int] = {}

    def poll(self, running: Sequence[ShotTask]) -> None:
        """Count finished frames of every task on disk; refresh the bars."""
        if not self.enabled:
            return
        gained = 0
        for task in self.tasks:
            key = (str(task.work), task.shot.index)
            before = self._counts.get(key, 0)
            if before == task.shot.frames:
                continue
            # Frames finish in order: only look past the ones already counted.
            n = before + WorkDir(task.work).finished_prefix(task.shot.start_frame + before,
                                                            task.shot.end_frame)
            gained += n - before
            self._counts[key] = n
        if gained > 0:
            self.bar.update(gained)
        # A pool marks queued-but-waiting tasks as running too: show those with frames first.
        def started(t: ShotTask) -> bool:
            key = (str(t.work), t.shot.index)
            return self._counts.get(key, 0) > self._initial.get(key, 0)

        shown = sorted(running, key=lambda t: not started(t))[:len(self.lines)]
        for line, shown_task in zip(self.lines, shown + [None] * len(self.lines)):
            if shown_task is None:
                line.set_description_str("", refresh=True)
            else:
                n = self._counts.get((str(shown_task.work), shown_task.shot.index), 0)
                line.set_description_str(f"  {shown_task.job} shot {shown_task.shot.index}: "
                                         f"{n}/{shown_task.shot.frames} frames", refresh=True)

    def close(self) -> None:
        for line in self.lines:
            line.close()
        self.bar.close()


def _initial_counts(progress: BatchProgress) -> None:
    for task in progress.tasks:
        work = WorkDir(task.work)
        key = (str(task.work), task.shot.index)
        progress._counts[key] = progress._initial[key] = \
            task.shot.frames if work.shot_done(task.shot.index) else \
            work.finished_prefix(task.shot.start_frame, task.shot.end_frame)


def run_in_process(tasks: Sequence[ShotTask], progress: BatchProgress, *,
                   extractor: FeatureExtractor | None = None,
                   flow: FlowEstimator | None = None) -> list[ShotOutcome]:
    """Run the tasks one after another here (injected extractor and flow allowed)."""
    outcomes = []
    for task in tasks:
        def tick(t: ShotTask, record: Any, task: ShotTask = task) -> None:
            progress.bar.set_postfix(shot=t.shot.index, kind=record.kind,
                                     loss=f"{record.losses.get('total', 0):.3f}", refresh=False)
            progress.poll([task])
        outcomes.append(run_shot(task, extractor=extractor, flow=flow, on_frame=tick))
    progress.poll([])
    return outcomes


# -------------------------------------------------------------------------- local processes

_WORKER_DEVICE: str | None = None


def _init_worker(slots: Any) -> None:
    global _WORKER_DEVICE
    install_stop_handlers()
    _WORKER_DEVICE = slots.get() if slots is not None else None


def _worker_run(task: ShotTask) -> ShotOutcome:
    if _WORKER_DEVICE is not None:
        task = replace(task, device=_WORKER_DEVICE)
    return run_shot(task)


def _devices_for(tasks: Sequence[ShotTask], workers: int) -> list[str] | None:
    """One CUDA device per worker when the tasks run on CUDA and several GPUs are visible."""
    import torch

    device = tasks[0].config.runtime.device if tasks else "cpu"
    if device in ("auto", "cuda") and torch.cuda.is_available() and torch.cuda.device_count() > 1:
        return [f"cuda:{i % torch.cuda.device_count()}" for i in range(workers)]
    return None


def _drive(futures: dict[Future[ShotOutcome], ShotTask], progress: BatchProgress,
           on_done: Callable[[ShotOutcome], None] | None) -> list[ShotOutcome]:
    outcomes = []
    pending = set(futures)
    while pending:
        finished, pending = wait(pending, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
        for fut in finished:
            outcome = fut.result()  # re-raises the task's error here
            outcomes.append(outcome)
            if on_done is not None:
                on_done(outcome)
        running = [futures[f] for f in pending if f.running()]
        progress.poll(running)
    progress.poll([])
    return outcomes


def run_local(tasks: Sequence[ShotTask], workers: int, progress: BatchProgress,
              on_done: Callable[[ShotOutcome], None] | None = None) -> list[ShotOutcome]:
    """Run the tasks in ``workers`` spawned processes, each with its share of the CPU threads
    (or its own GPU when several are visible)."""
    if not tasks:
        return []
    devices = _devices_for(tasks, workers)
    ctx = mp.get_context("spawn")  # fork would copy this process's torch thread pools
    slots = None
    if devices is not None:
        slots = ctx.Queue()
        for d in devices:
            slots.put(d)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                               initargs=(slots,))
    try:
        futures = {pool.submit(_worker_run, t): t for t in tasks}
        return _drive(futures, progress, on_done)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# ------------------------------------------------------------------------------------ Ray

def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError("--executor ray needs the ray extra: pip install 'strotss-video[ray]'") \
            from None
    return ray


def _ray_shot(task: ShotTask) -> ShotOutcome:
    return run_shot(task)


def run_ray(tasks: Sequence[ShotTask], address: str | None, progress: BatchProgress,
            on_done: Callable[[ShotOutcome], None] | None = None,
            retries: int = 3) -> list[ShotOutcome]:
    """Run each task as a Ray remote function (inputs are paths every worker must see).

    Uses the Ray instance this process already joined, else connects to ``address``
    (``auto``: the local cluster). A task whose worker dies is retried ``retries`` times and
    continues from its last finished frame."""
    if not tasks:
        return []
    ray = _ray()
    if not ray.is_initialized():
        try:
            ray.init(address=address or "auto", log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise StrotssError(f"cannot connect to the Ray cluster at {address or 'auto'}: "
                               f"{str(exc).splitlines()[0] if str(exc) else exc}; start one with "
                               "`ray start --head` or pass --address") from None
    gpu = tasks[0].config.runtime.device.startswith("cuda") or (
        tasks[0].config.runtime.device == "auto" and
        bool(ray.cluster_resources().get("GPU", 0)))
    threads = max(1, tasks[0].threads)
    remote = ray.remote(num_cpus=threads, num_gpus=1 if gpu else 0, max_retries=retries)(_ray_shot)
    refs = {remote.remote(replace(t, threads=threads)): t for t in tasks}
    outcomes = []
    pending = list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1, timeout=POLL_SECONDS)
        for ref in ready:
            try:
                outcome = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:
                cause = exc.as_instanceof_cause()
                if isinstance(cause, StrotssError):
                    raise type(cause)(str(cause).splitlines()[0]) from None
                raise
            outcomes.append(outcome)
            if on_done is not None:
                on_done(outcome)
        progress.poll([refs[r] for r in pending][:len(progress.lines)])
    progress.poll([])
    return outcomes


def run_tasks(tasks: Sequence[ShotTask], *, executor: str = "local", workers: int = 1,
              address: str | None = None, progress: BatchProgress,
              extractor: FeatureExtractor | None = None, flow: FlowEstimator | None = None,
              on_done: Callable[[ShotOutcome], None] | None = None) -> list[ShotOutcome]:
    """Run shot tasks with the chosen executor; every task gets its thread share."""
    if executor not in EXECUTORS:
        raise UsageError(f"unknown executor {executor!r}; use local or ray")
    if executor == "ray":
        tasks = [replace(t, threads=t.config.runtime.threads or 1) for t in tasks]
        return run_ray(tasks, address, progress, on_done)
    tasks = [replace(t, threads=t.config.runtime.threads or threads_per_worker(workers))
             for t in tasks]
    if workers <= 1 or extractor is not None or flow is not None:
        outcomes = []
        for t in tasks:
            outcomes.extend(run_in_process([t], progress, extractor=extractor, flow=flow))
            if on_done is not None:
                on_done(outcomes[-1])
        return outcomes
    return run_local(tasks, workers, progress, on_done)


def start_progress(tasks: Sequence[ShotTask], done_before: int, total: int, enabled: bool,
                   slots: int) -> BatchProgress:
    progress = BatchProgress(tasks, done_before, total, enabled, slots)
    _initial_counts(progress)
    return progress
