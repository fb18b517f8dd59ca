"""Batch runs from a YAML manifest: many videos, split into shot tasks, run by one executor.

Manifest (paths are relative to the manifest's folder; nothing in them is expanded)::

    defaults:                 # optional: options for every job (the CLI's long names)
      preset: preview
      max_size: 256
    jobs:
      - input: shot_a.mp4
        style: styles/udnie.jpg
        output: out/shot_a.mp4
        start: 2s             # optional range, as --start/--end
        end: 120
        options: {warm_iters: 20, crf: 20}
        shots:                # optional per-shot style overrides
          - {index: 2, style: styles/scream.jpg}

Everything is validated before any work starts; a bad manifest is rejected with the job and the
field named. A job whose output was finished by an earlier run is skipped; a job interrupted
earlier continues from its finished shots and frames. Each job and its output are locked from
planning until the job's output is written: a second batch or video run of the same job or
output refuses at once (the shot tasks' worker processes take no locks)."""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, Interrupted, StrotssError
from ..files import atomic_write_bytes
from .executors import run_tasks, start_progress
from .job import JobPlan, ShotOutcome, assemble, finish_job, job_is_done, plan_job
from .manifest import batch_work_root, load_manifest, preflight_batch
from .spec import JobSpec

__all__ = ["BatchResult", "load_manifest", "run_batch"]


@dataclass
class BatchResult:
    jobs: int
    skipped_jobs: list[str] = field(default_factory=list)
    finished_jobs: list[str] = field(default_factory=list)
    frames: int = 0
    computed_frames: int = 0
    shots_run: int = 0
    seconds: float = 0.0
    threads_per_task: list[int] = field(default_factory=list)
    """The CPU thread counts the shot tasks ran with (each distinct count once)."""


def run_batch(manifest: str | os.PathLike[str], *, workers: int = 1, executor: str = "local",
              address: str | None = None, work_dir: str | os.PathLike[str] | None = None,
              fresh: bool = False, keep_work: bool = False, overwrite: bool = False,
              progress: bool = True, preset: str | None = None,
              config_file: str | os.PathLike[str] | None = None,
              stats: str | os.PathLike[str] | None = None, threads: int | None = None,
              sandbox: bool = False) -> BatchResult:
    """Run every job of ``manifest``: check it, the stats file and the work root; plan (and
    lock) all jobs, validating inputs, shots and outputs; run the pending shot tasks on the
    executor, and encode each job as soon as its shots are done, then release its locks.
    ``threads`` (CPU threads per shot task) overrides the manifest's; ``sandbox``: see
    :mod:`.manifest`."""
    t0 = time.perf_counter()
    root = batch_work_root(manifest, work_dir, sandbox)
    specs = preflight_batch(manifest, preset=preset, config_file=config_file,
                            overrides={"threads": threads}, stats=stats, work_root=root,
                            sandbox=sandbox)
    result = BatchResult(jobs=len(specs))
    with ExitStack() as held:  # every plan's locks, released at the latest on the way out
        plans = _plan_all(manifest, specs, root, fresh, overwrite, result, held)
        _run_plans(plans, result, root=root, workers=workers, executor=executor,
                   address=address, keep_work=keep_work, overwrite=overwrite, progress=progress)
    result.seconds = time.perf_counter() - t0
    if stats is not None:
        atomic_write_bytes(Path(stats), json.dumps(vars(result), indent=2).encode())
    return result


def _plan_all(manifest: str | os.PathLike[str], specs: list[JobSpec], root: Path, fresh: bool,
              overwrite: bool, result: BatchResult, held: ExitStack) -> list[JobPlan]:
    """Plan every job; a finished one (its output unchanged since) is skipped, unlocked."""
    plans: list[JobPlan] = []
    for n, spec in enumerate(specs):
        try:
            plan = plan_job(spec, root, fresh=fresh, progress=False)
        except StrotssError as exc:
            raise type(exc)(f"{Path(manifest).name}: job {n} ({spec.name}): {exc}") from None
        held.callback(plan.release)
        if not fresh and job_is_done(plan.work, spec.output):
            result.skipped_jobs.append(spec.name)
            plan.release()
            continue
        assert spec.output is not None
        if spec.output.exists() and not overwrite:
            raise ConfigError(f"{Path(manifest).name}: job {spec.name}: output {spec.output} exists "
                              "and was not written by this manifest's run; pass --overwrite")
        plans.append(plan)
    return plans


def _run_plans(plans: list[JobPlan], result: BatchResult, *, root: Path, workers: int,
               executor: str, address: str | None, keep_work: bool, overwrite: bool,
               progress: bool) -> None:
    """Run the planned jobs' pending shots; encode each job (and release its locks) as soon as
    its last shot is done."""
    tasks = [t for p in plans for t in p.tasks()]
    remaining = {str(p.work.path): len(p.tasks()) for p in plans}
    by_work = {str(p.work.path): p for p in plans}
    done_before = sum(p.done_frames() for p in plans)
    total = sum(p.total_frames for p in plans)
    if progress:
        print(f"{len(plans)} job(s) to run ({len(result.skipped_jobs)} already done), "
              f"{len(tasks)} shot task(s), {total - done_before} of {total} frames to stylise",
              file=sys.stderr)

    def job_finished(plan: JobPlan) -> None:
        assemble(plan, overwrite=overwrite)
        finish_job(plan, keep_work)
        plan.release()
        result.finished_jobs.append(plan.spec.name)
        result.frames += plan.total_frames

    for path, n in remaining.items():
        if n == 0:  # every shot done by an earlier run: only the encode is left
            job_finished(by_work[path])

    def on_done(outcome: ShotOutcome) -> None:
        result.shots_run += 1
        result.computed_frames += outcome.computed
        if outcome.threads and outcome.threads not in result.threads_per_task:
            result.threads_per_task.append(outcome.threads)
        remaining[outcome.work] -= 1
        if remaining[outcome.work] == 0:
            job_finished(by_work[outcome.work])

    bar = start_progress(tasks, done_before, total, progress,
                         slots=min(workers, len(tasks)) if executor == "local" else 4)
    try:
        run_tasks(tasks, executor=executor, workers=workers, address=address, progress=bar,
                  on_done=on_done)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; finished shots and frames are kept under {root}",
                          work_dir=str(root)) from None
    finally:
        bar.close()
