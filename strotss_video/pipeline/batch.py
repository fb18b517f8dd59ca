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
earlier continues from its finished shots and frames."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..config import (FLAG_FIELDS, Config, apply_overrides, build_config, flag_overrides,
                      load_yaml)
from ..errors import ConfigError, Interrupted, StrotssError
from ..files import atomic_write_bytes
from .executors import run_tasks, start_progress
from .job import (JobPlan, JobSpec, ShotOutcome, assemble, finish_job, job_is_done, parse_bound,
                  plan_job)
from .runtime import check_output_path
from .workdir import default_work_root

JOB_KEYS = {"input", "style", "output", "start", "end", "options", "shots", "name"}
OPTION_EXTRAS = {"preset", "config"}


@dataclass
class BatchResult:
    jobs: int
    skipped_jobs: list[str] = field(default_factory=list)
    finished_jobs: list[str] = field(default_factory=list)
    frames: int = 0
    computed_frames: int = 0
    shots_run: int = 0
    seconds: float = 0.0


def _fail(manifest: Path, where: str, message: str) -> ConfigError:
    return ConfigError(f"{manifest.name}: {where}: {message}")


def _path(base: Path, value: Any, manifest: Path, where: str, must_exist: bool) -> Path:
    if not isinstance(value, str) or not value:
        raise _fail(manifest, where, "expected a file path")
    p = Path(value)  # no ~ or $VAR expansion: a manifest names files, it runs nothing
    p = p if p.is_absolute() else base / p
    if must_exist and not p.is_file():
        raise _fail(manifest, where, f"file not found: {p}; fix the path (relative to the "
                    "manifest's folder)")
    return p


def _options(raw: Any, manifest: Path, where: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise _fail(manifest, where, "expected a mapping of options")
    out = {}
    for key, value in raw.items():
        name = str(key).replace("-", "_")
        if name not in FLAG_FIELDS and name not in OPTION_EXTRAS:
            raise _fail(manifest, f"{where}.{key}", "unknown option; use the CLI's long option "
                        "names (strotss-video --help)")
        out[name] = value
    return out


def _job_config(preset: str | None, config_file: Path | None,
                defaults: dict[str, Any], options: dict[str, Any], manifest: Path,
                base: Path, where: str) -> Config:
    merged = {**defaults, **options}
    preset = merged.pop("preset", preset)
    cfg_file = merged.pop("config", None)
    cfg_path = _path(base, cfg_file, manifest, f"{where}.config", True) if cfg_file else config_file
    try:
        return apply_overrides(build_config(preset, cfg_path), flag_overrides(merged), "options")
    except ConfigError as exc:
        raise _fail(manifest, where, str(exc)) from None


def load_manifest(path: str | os.PathLike[str], *, preset: str | None = None,
                  config_file: str | os.PathLike[str] | None = None) -> list[JobSpec]:
    """Parse and validate a manifest into job specs (no work is done)."""
    manifest = Path(path)
    data = load_yaml(manifest, "manifest", "pass an existing YAML file", "fix the manifest")
    if isinstance(data, list):
        data = {"jobs": data}
    if not isinstance(data, Mapping) or not isinstance(data.get("jobs"), list) or not data["jobs"]:
        raise ConfigError(f"{manifest.name}: expected a 'jobs:' list with at least one job")
    unknown = set(data) - {"jobs", "defaults"}
    if unknown:
        raise ConfigError(f"{manifest.name}: unknown top-level key {sorted(unknown)[0]!r}; "
                          "use jobs: and defaults:")
    base = manifest.resolve().parent
    defaults = _options(data.get("defaults"), manifest, "defaults")
    cfg_file = Path(config_file) if config_file is not None else None
    specs: list[JobSpec] = []
    outputs: dict[Path, str] = {}
    for n, job in enumerate(data["jobs"]):
        where = f"job {n}"
        if not isinstance(job, Mapping):
            raise _fail(manifest, where, "expected a mapping with input, style and output")
        if isinstance(job.get("input"), str):
            where = f"job {n} ({job['input']})"
        extra = set(job) - JOB_KEYS
        if extra:
            raise _fail(manifest, f"{where}.{sorted(extra)[0]}", "unknown field; a job has "
                        f"{', '.join(sorted(JOB_KEYS))}")
        for key in ("input", "style", "output"):
            if key not in job:
                raise _fail(manifest, where, f"missing field '{key}'")
        input_path = _path(base, job["input"], manifest, f"{where}.input", True)
        style = _path(base, job["style"], manifest, f"{where}.style", True)
        output = _path(base, job["output"], manifest, f"{where}.output", False)
        key = output.resolve()
        if key in outputs:
            raise _fail(manifest, f"{where}.output", f"same output as {outputs[key]}; give each job "
                        "its own output")
        outputs[key] = where
        from .video import VIDEO_EXTENSIONS
        try:
            check_output_path(output, [input_path, style], True, VIDEO_EXTENSIONS)
        except StrotssError as exc:
            raise _fail(manifest, f"{where}.output", str(exc)) from None
        options = _options(job.get("options"), manifest, f"{where}.options")
        config = _job_config(preset, cfg_file, defaults, options, manifest, base, where)
        try:
            start = parse_bound(job.get("start"), "start")
            end = parse_bound(job.get("end"), "end")
        except StrotssError as exc:
            raise _fail(manifest, f"{where}.start/end", str(exc)) from None
        shot_styles: dict[int, Path] = {}
        for k, entry in enumerate(job.get("shots") or []):
            at = f"{where}.shots[{k}]"
            if not isinstance(entry, Mapping) or set(entry) != {"index", "style"}:
                raise _fail(manifest, at, "expected {index: N, style: FILE}")
            index = entry["index"]
            if isinstance(index, bool) or not isinstance(index, int) or index < 0:
                raise _fail(manifest, f"{at}.index", "expected a shot number >= 0")
            shot_styles[index] = _path(base, entry["style"], manifest, f"{at}.style", True)
        name = str(job.get("name") or input_path.name)
        specs.append(JobSpec(input=input_path, style=style, output=output, config=config,
                             start=start, end=end, shot_styles=shot_styles, name=name))
    return specs


def run_batch(manifest: str | os.PathLike[str], *, workers: int = 1, executor: str = "local",
              address: str | None = None, work_dir: str | os.PathLike[str] | None = None,
              fresh: bool = False, keep_work: bool = False, overwrite: bool = False,
              progress: bool = True, preset: str | None = None,
              config_file: str | os.PathLike[str] | None = None,
              stats: str | os.PathLike[str] | None = None) -> BatchResult:
    """Run every job of ``manifest``: plan all jobs (validating inputs, shots and outputs), run
    the pending shot tasks on the executor, and encode each job as soon as its shots are done."""
    t0 = time.perf_counter()
    specs = load_manifest(manifest, preset=preset, config_file=config_file)
    root = Path(work_dir) if work_dir is not None else default_work_root()
    result = BatchResult(jobs=len(specs))
    plans: list[JobPlan] = []
    for n, spec in enumerate(specs):
        try:
            plan = plan_job(spec, root, fresh=fresh, progress=False)
        except StrotssError as exc:
            raise type(exc)(f"{Path(manifest).name}: job {n} ({spec.name}): {exc}") from None
        if not fresh and job_is_done(plan.work, spec.output):
            result.skipped_jobs.append(spec.name)
            continue
        assert spec.output is not None
        if spec.output.exists() and not overwrite:
            raise ConfigError(f"{Path(manifest).name}: job {spec.name}: output {spec.output} exists "
                              "and was not written by this manifest's run; pass --overwrite")
        plans.append(plan)
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
        assemble(plan, overwrite=True)
        finish_job(plan, keep_work)
        result.finished_jobs.append(plan.spec.name)
        result.frames += plan.total_frames

    for path, n in remaining.items():
        if n == 0:  # every shot done by an earlier run: only the encode is left
            job_finished(by_work[path])

    def on_done(outcome: ShotOutcome) -> None:
        result.shots_run += 1
        result.computed_frames += outcome.computed
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
    result.seconds = time.perf_counter() - t0
    if stats is not None:
        atomic_write_bytes(Path(stats), json.dumps(vars(result), indent=2).encode())
    return result
