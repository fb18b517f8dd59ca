"""One video job split into shot tasks: plan (probe, shots, work directory), run each shot
(resumable, any process), assemble the finished frames into the output with the source's timing.

A shot task is a plain picklable value whose inputs are file paths, so it runs the same in this
process, in a local worker process or as a Ray task on another machine that sees the paths."""

from __future__ import annotations

import os
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import Config
from ..errors import InputError, StrotssError, check_stop
from ..features.vgg import FeatureExtractor
from ..flow import make_flow
from ..flow.base import FlowEstimator
from ..io.encoding import check_encoder_settings
from ..io.image import write_contact_sheet
from ..io.probe import VideoInfo, probe
from ..io.reader import read_frames
from ..io.timeline import scan_timeline
from ..io.writer import VideoWriter
from ..shots import Shot, find_shots
from ..stylize.optimize import MIN_SCALE_SIDE, StyleBank, fit_scales
from ..tensorops import resize
from . import budget
from .chain import (
    Flows,
    FrameRecord,
    VideoStylizer,
    flows_ahead,
    processing_size,
    to_tensor,
    to_uint8,
)
from .image import _load
from .locks import lock_job, lock_output, remove_stale_parts
from .overlap import Committer, Prefetch
from .runtime import extractor_for, resolve_device
from .spec import JobSpec, check_range
from .workdir import LAYOUT_VERSION, WorkDir, digest, file_digest, input_fingerprint, job_dir_name
from .workroot import remove_jobs_of_output

SHEET_FRAMES = 6


@dataclass(frozen=True)
class ShotTask:
    """Everything one worker needs to stylise one shot into the job's work directory."""

    job: str
    work: Path
    input: Path
    style: Path | torch.Tensor
    config: Config
    shot: Shot
    size: tuple[int, int]  # processing (H, W)
    out_size: tuple[int, int]  # output (H, W)
    device: str | None = None  # a worker's own device (multi-GPU); else config.runtime.device
    threads: int = 0


@dataclass
class JobPlan:
    spec: JobSpec
    config: Config  # max_size fixed to the processing size, scales to those it holds
    work: WorkDir
    info: VideoInfo
    size: tuple[int, int]
    out_size: tuple[int, int]
    shots: list[Shot]
    resumed_frames: int
    locks: ExitStack = field(default_factory=ExitStack)  # the job's and its output's

    def release(self) -> None:
        """Let other runs work on this job and output again."""
        self.locks.close()

    @property
    def total_frames(self) -> int:
        return sum(s.frames for s in self.shots)

    def done_frames(self) -> int:
        return sum(s.frames if self.work.shot_done(s.index)
                   else self.work.finished_prefix(s.start_frame, s.end_frame) for s in self.shots)

    def style_for(self, shot: Shot) -> Path | torch.Tensor:
        return self.spec.shot_styles.get(shot.index, self.spec.style)

    def tasks(self, pending_only: bool = True) -> list[ShotTask]:
        return [ShotTask(job=self.spec.name or self.spec.input.name, work=self.work.path,
                         input=self.spec.input, style=self.style_for(s), config=self.config,
                         shot=s, size=self.size, out_size=self.out_size)
                for s in self.shots if not (pending_only and self.work.shot_done(s.index))]


def _style_identity(style: Path | torch.Tensor) -> str:
    if isinstance(style, torch.Tensor):
        return digest(style.detach().cpu().float().numpy().tobytes().hex())
    return file_digest(style)


def pixel_settings(config: Config) -> dict[str, Any]:
    """The settings that change output pixels (the work directory's key); encoding options,
    the device and the thread count do not invalidate finished frames."""
    d = config.to_dict()
    return {"strotss": d["strotss"], "temporal": d["temporal"], "shots": d["shots"],
            "seed": d["runtime"]["seed"], "vgg_weights": d["runtime"]["vgg_weights"]}


def plan_job(spec: JobSpec, work_root: Path, *, fresh: bool = False, progress: bool = False,
             min_scale_side: int = MIN_SCALE_SIDE, workers: int = 1) -> JobPlan:
    """Validate the job, check that it fits in memory (``workers`` processes side by side),
    lock it and its output, open its work directory (removing damaged files of an earlier run)
    and fix its shots (detected once, stored). The plan holds the locks until
    :meth:`JobPlan.release`."""
    limit = spec.config.runtime.max_input_pixels
    info = probe(spec.input, limit)
    check_range(spec.start, spec.end)
    styles = [_load(style, "style image", max_pixels=limit,  # validated before any work
                    long_side=spec.config.strotss.max_size)
              for style in [spec.style, *spec.shot_styles.values()]]
    if spec.output is not None:
        video = spec.config.video
        check_encoder_settings(video.codec, video.crf, video.encoder_preset)
    ph, pw = processing_size(info.height, info.width, spec.config.strotss.max_size)
    # Fixed here, once, for every frame and worker: the processing size, and the scales it
    # holds (part of the work directory's key).
    strotss = fit_scales(replace(spec.config.strotss, max_size=max(ph, pw)), ph, pw,
                         min_scale_side)
    config = replace(spec.config, strotss=strotss)
    _check_memory(config, info, (ph, pw), max(styles, key=lambda t: t.numel()), workers)
    if config.video.output_size == "source":
        out_size = (info.height - info.height % 2, info.width - info.width % 2)
    else:
        out_size = (ph, pw)
    meta = _job_identity(spec, config, (ph, pw), out_size)
    job_path = Path(work_root) / job_dir_name(spec.input, meta["key"])
    locks = ExitStack()
    locks.enter_context(lock_job(job_path))
    existed = (job_path / "job.json").exists()  # without it the directory holds nothing
    try:
        problem = None if fresh or not existed else WorkDir(job_path).meta_problem()
        if problem is not None:
            raise _damaged(job_path, problem)
        if spec.output is not None:
            locks.enter_context(lock_output(Path(work_root), spec.output))
            remove_stale_parts(spec.output)
            if fresh:
                remove_jobs_of_output(Path(work_root), spec.output, keep=job_path.name)
        work = WorkDir.open(Path(work_root), job_path.name, meta, fresh=fresh)
        shots = _job_shots(spec, config, work, progress)
        if existed and not fresh:
            for shot in shots:
                _heal_shot(work, shot, out_size)
    except BaseException:
        if not existed:  # nothing was done: leave no empty job directory behind
            shutil.rmtree(job_path, ignore_errors=True)
        locks.close()
        raise
    plan = JobPlan(spec=spec, config=config, work=work, info=info, size=(ph, pw),
                   out_size=out_size, shots=shots, resumed_frames=0, locks=locks)
    plan.resumed_frames = plan.done_frames()
    return plan


def _job_identity(spec: JobSpec, config: Config, size: tuple[int, int],
                  out_size: tuple[int, int]) -> dict[str, Any]:
    """The job's record for job.json. Its key (the work directory's name) covers everything
    that makes the frames or names their destination: the input and output paths, the style
    images' bytes, the range and the pixel settings. The input's content is checked by its
    fingerprint instead, so an edited input restarts the job in the same directory."""
    output = str(spec.output.resolve()) if spec.output is not None else None
    shot_styles = {str(k): _style_identity(v) for k, v in sorted(spec.shot_styles.items())}
    key = digest({"layout": LAYOUT_VERSION, "input": str(spec.input.resolve()),
                  "output": output, "style": _style_identity(spec.style),
                  "shot_styles": shot_styles, "start": repr(spec.start), "end": repr(spec.end),
                  "settings": pixel_settings(config), "size": list(size),
                  "out_size": list(out_size)})
    return {"key": key, "layout": LAYOUT_VERSION, "input": str(spec.input.resolve()),
            "fingerprint": input_fingerprint(spec.input), "output": output,
            "style": str(spec.style) if isinstance(spec.style, Path) else "tensor",
            "start": repr(spec.start), "end": repr(spec.end), "created": time.time()}


def _check_memory(config: Config, info: VideoInfo, size: tuple[int, int], style: torch.Tensor,
                  workers: int) -> None:
    """Refuse a job that would not fit in memory (see :mod:`.budget`), before any work."""
    device = resolve_device(config.runtime.device)
    temporal = config.temporal
    history = 1 + len(temporal.long_term) if temporal.enabled else 0
    # Workers take one GPU each, in turn, when the device is not pinned (executors.py).
    spread = device.type == "cuda" and config.runtime.device in ("auto", "cuda")
    gpus = torch.cuda.device_count() if spread else 1

    def at(side: int) -> budget.Workload:
        return budget.Workload(strotss=replace(config.strotss, max_size=side),
                               size=budget.scaled(size, side),
                               device=device.type, inputs=((style.shape[-2], style.shape[-1]),),
                               source=(info.height, info.width), history=history,
                               workers=workers, gpus=gpus)

    budget.check_memory(at(max(size)), at)


def _damaged(path: Path, problem: str) -> StrotssError:
    return StrotssError(f"the work directory {path} is damaged ({problem}); run the same command "
                        "with --fresh to start this job over")


def _redo(problem: str, shot: Shot) -> None:
    warnings.warn(f"{problem}: shot {shot.index} is computed again from frame {shot.start_frame}",
                  stacklevel=3)


def _heal_shot(work: WorkDir, shot: Shot, size: tuple[int, int]) -> None:
    """Remove what an earlier run left damaged in ``shot`` (a frame PNG, its shot record, the
    chain state to resume from), with one warning each, so that the shot is computed again
    (from its start: the states of earlier frames are not kept) instead of failing."""
    start = shot.start_frame
    finished = work.finished_prefix(start, shot.end_frame)
    if work.shot_done(shot.index):
        records = work.shot_records(shot.index)
        if not isinstance(records, list) or len(records) != shot.frames:
            _redo(f"the record of finished shot {shot.index} in {work.path} is damaged (removed)",
                  shot)
            work.reopen_shot(shot.index)
        elif finished < shot.frames:
            _redo(f"frame {start + finished} is missing from {work.frames}", shot)
            work.reopen_shot(shot.index)
        else:  # a finished shot keeps no chain state
            _heal_frames(work, shot, finished, size)
            return
    if not _heal_frames(work, shot, finished, size) and finished:
        last = start + finished - 1
        if work.state_damaged(last):
            _redo(f"{work.state_path(last)} is damaged (removed)", shot)
            work.state_path(last).unlink(missing_ok=True)


def _heal_frames(work: WorkDir, shot: Shot, finished: int, size: tuple[int, int]) -> bool:
    """Remove the first damaged one of the shot's ``finished`` frames and every later frame;
    whether there was one."""
    bad = work.first_damaged_frame(shot.start_frame, shot.start_frame + finished, size)
    if bad is None:
        return False
    _redo(f"{work.frame_path(bad)} is damaged (removed, with the frames after it)", shot)
    work.reopen_shot(shot.index)
    work.discard_frames(bad, shot.end_frame)
    return True


def _job_shots(spec: JobSpec, config: Config, work: WorkDir, progress: bool) -> list[Shot]:
    """The job's shots: stored by an earlier run, else found (and stored) now."""
    first, last = spec.start, spec.end
    if work.has_stored_shots():
        shots = _stored_shots(work)
    else:
        timeline = scan_timeline(spec.input, first, last)
        shots = find_shots(spec.input, config.shots, timeline, progress=progress)
        work.store_shots([{**s.to_dict(), "start_time": str(s.start_time),
                           "end_time": str(s.end_time)} for s in shots])
    bad = [i for i in spec.shot_styles if not 0 <= i < len(shots)]
    if bad:
        raise InputError(f"a style override names shot {bad[0]}, but {spec.input.name} has "
                         f"{len(shots)} shot(s) (0..{len(shots) - 1}); run `strotss-video shots` "
                         "to list them")
    return shots


def _whole(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TypeError(f"not a frame index: {value!r}")
    return value


def _stored_shots(work: WorkDir) -> list[Shot]:
    """The shot list of ``shots.json``: consecutive shots covering a range, or an error that
    suggests --fresh (a damaged file must not silently change which frames chain together)."""
    stored = work.stored_shots()
    try:
        if not isinstance(stored, list) or not stored:
            raise TypeError("not a list of shots")
        shots = [Shot(index=_whole(s["index"]), start_frame=_whole(s["start_frame"]),
                      end_frame=_whole(s["end_frame"]), start_time=Fraction(s["start_time"]),
                      end_time=Fraction(s["end_time"])) for s in stored]
    except (TypeError, KeyError, ValueError, ZeroDivisionError):
        raise _damaged(work.path, "shots.json does not list the job's shots") from None
    for i, shot in enumerate(shots):
        if shot.index != i or shot.frames <= 0 or (i and shot.start_frame != shots[i - 1].end_frame):
            raise _damaged(work.path, "shots.json does not list the job's shots")
    return shots


# ------------------------------------------------------------------------------ shot tasks

_BANKS: dict[tuple[str, str, str], StyleBank] = {}


def _bank(style: Path | torch.Tensor, extractor: FeatureExtractor, config: Config,
          device: torch.device) -> StyleBank:
    """Style targets once per (style, settings, device, thread count) in this process: the
    thread count changes CPU float sums, and bit-identical runs need identical targets."""
    key = (_style_identity(style), digest(asdict(config.strotss)) + str(id(extractor)),
           f"{device}/{torch.get_num_threads()}")
    if key not in _BANKS:
        if len(_BANKS) >= 4:
            _BANKS.pop(next(iter(_BANKS)))
        image = _load(style, "style image", max_pixels=config.runtime.max_input_pixels,
                      long_side=config.strotss.max_size).to(device)
        _BANKS[key] = StyleBank(extractor, image, config.strotss, seed=config.runtime.seed)
    return _BANKS[key]


@dataclass
class ShotOutcome:
    job: str
    shot: int
    frames: int
    computed: int  # frames stylised by this call (0 when the shot was already finished)
    seconds: float
    weights_source: str | None = None
    work: str = ""
    threads: int = 0  # CPU threads the shot ran with (0: nothing was run)


FrameCallback = Callable[[ShotTask, FrameRecord], None]
CPU = torch.device("cpu")


def run_shot(task: ShotTask, *, extractor: FeatureExtractor | None = None,
             flow: FlowEstimator | None = None, on_frame: FrameCallback | None = None,
             progress: bool = False) -> ShotOutcome:
    """Stylise one shot into the work directory, continuing after its last finished frame.
    Running out of memory ends it with a one-line :class:`OutOfMemory`."""
    with budget.out_of_memory_as_error(max(task.size), ", or use fewer --workers (finished "
                                       "frames are kept for a run with the same settings)"):
        return _run_shot(task, extractor=extractor, flow=flow, on_frame=on_frame,
                         progress=progress)


def _run_shot(task: ShotTask, *, extractor: FeatureExtractor | None,
              flow: FlowEstimator | None, on_frame: FrameCallback | None,
              progress: bool) -> ShotOutcome:
    t0 = time.perf_counter()
    work = WorkDir(task.work)
    shot = task.shot
    if work.shot_done(shot.index):
        return ShotOutcome(task.job, shot.index, shot.frames, 0, 0.0, work=str(task.work))
    if task.threads:
        torch.set_num_threads(task.threads)
    config = task.config
    device = resolve_device(task.device or config.runtime.device)
    model, weights_source = extractor_for(config.runtime, device, extractor, progress)
    if flow is None and config.temporal.enabled:
        flow = make_flow(config.temporal.flow, preset=config.temporal.dis_preset,
                         device=str(device), raft_weights=config.temporal.raft_weights)
    stylizer = VideoStylizer(config, _bank(task.style, model, config, device), model, flow)
    records: list[dict[str, Any]] = []
    done = work.finished_prefix(shot.start_frame, shot.end_frame)
    if done:
        saved = work.load_state(shot.start_frame + done - 1)
        if saved is None:  # state lost (e.g. removed by hand): redo the shot from its start
            work.discard_frames(shot.start_frame, shot.end_frame)
            done = 0
        else:
            stylizer.restore(saved[0], device)
            records = saved[1]
    previous = shot.start_frame + done - 1 if done else None
    computed = 0
    source: Iterator[tuple[Any, Flows | None, float]] = (
        (f, None, 0.0) for f in read_frames(task.input, shot.start_frame + done,
                                           shot.end_frame, size=task.size))
    if flow is not None:
        # Input flows need no stylised frame: the decode thread computes them ahead.
        history = [t.cpu() for t in stylizer.chain.inputs]
        source = flows_ahead((f for f, _, _ in source), lambda f: to_tensor(f.image, CPU), flow,
                             stylizer.flow_distances, history)
    with Prefetch(source) as frames, Committer(work.commit_frame) as committer:
        t_io = time.perf_counter()
        for frame, flows, ahead in frames:
            check_stop()
            content = to_tensor(frame.image, device)
            decode = time.perf_counter() - t_io
            output, record = stylizer.frame(content, frame.index, flows)
            t_commit = time.perf_counter()
            out = resize(output, task.out_size) if task.out_size != task.size else output
            image = to_uint8(out)
            # Copies: the commit runs in another thread while the next frame is optimised.
            state = {k: v.copy() for k, v in stylizer.state().items()}
            record = replace(record, pts=frame.pts, flow_ahead_seconds=ahead,
                             io_seconds=decode + time.perf_counter() - t_commit)
            records.append(vars(record))
            committer.submit(frame.index, image, state, list(records), previous)
            t_io = time.perf_counter()
            previous = frame.index
            computed += 1
            if on_frame is not None:
                on_frame(task, record)
    if done + computed != shot.frames:
        raise StrotssError(f"{task.input.name}: shot {shot.index} should have {shot.frames} frames "
                           f"but {done + computed} were decoded; the file may have changed since "
                           "the run started: run again with --fresh")
    work.finish_shot(shot.index, records, shot.end_frame - 1)
    return ShotOutcome(task.job, shot.index, shot.frames, computed, time.perf_counter() - t0,
                       weights_source, str(task.work), torch.get_num_threads())


# ------------------------------------------------------------------------------- assembly

def job_records(plan: JobPlan) -> list[dict[str, Any]]:
    """Every frame's record, in order (all shots must be finished)."""
    out: list[dict[str, Any]] = []
    for shot in plan.shots:
        out.extend(plan.work.shot_records(shot.index) or [])
    return out


def assemble(plan: JobPlan, *, overwrite: bool = False, progress: bool = False,
             preview_sheet: Path | None = None) -> int:
    """Encode the finished frames of every shot, in order, with the source's pts, durations and
    audio, to a temporary file moved onto the output when complete (without ``overwrite``, only
    if no output appeared meanwhile). Returns the frame count."""
    spec, cfg = plan.spec, plan.config
    first, last = spec.start, spec.end
    expected = plan.total_frames
    sheet_at = set(np.linspace(plan.shots[0].start_frame, plan.shots[-1].end_frame - 1,
                               SHEET_FRAMES).round().astype(int).tolist()) \
        if preview_sheet is not None else set()
    sheet: list[tuple[np.ndarray, np.ndarray]] = []
    writer: VideoWriter | None = None
    oh, ow = plan.out_size
    count = 0
    try:
        for frame in read_frames(spec.input, first, last, size=plan.size):
            image = plan.work.read_frame(frame.index)
            if image is None or image.shape[:2] != (oh, ow):
                raise _lost_frame(plan, frame.index)
            if writer is None and spec.output is not None:
                offset = frame.pts if first is not None else 0
                window = (frame.time, None) if first is not None or last is not None else None
                info = plan.info
                writer = VideoWriter(spec.output, width=ow, height=oh, time_base=info.time_base,
                                     average_rate=info.average_rate, codec=cfg.video.codec,
                                     crf=cfg.video.crf, preset=cfg.video.encoder_preset,
                                     audio_source=spec.input if cfg.video.audio and
                                     info.audio_streams else None,
                                     audio_window=window, pts_offset=offset,
                                     overwrite=overwrite)
                writer.__enter__()
            if writer is not None:
                writer.write(image, frame.pts, frame.duration)
            if frame.index in sheet_at:
                small = image if (oh, ow) == plan.size else to_uint8(resize(
                    to_tensor(image, torch.device("cpu")), plan.size))
                sheet.append((frame.image, small))
            count += 1
        if count != expected:
            raise StrotssError(f"{spec.input.name}: decoded {count} frames but the shots cover "
                               f"{expected}; the file may have changed: run again with --fresh")
        if writer is not None:
            try:
                writer.close()  # encodes to a temporary file, moved into place when complete
            except FileExistsError:
                raise StrotssError(f"output {spec.output} appeared while this run was working; "
                                   "pass --overwrite to replace it (the finished frames are "
                                   "kept: that run only encodes)") from None
            writer = None
    except BaseException as exc:
        if writer is not None:
            writer.__exit__(type(exc), exc, exc.__traceback__)
        raise
    if preview_sheet is not None and sheet:
        write_contact_sheet(preview_sheet, sheet)
    return count


def _lost_frame(plan: JobPlan, index: int) -> StrotssError:
    """The error for a finished frame found unreadable while encoding (it passed the checks on
    resume, so it broke since): it is removed and its shot reopened, so that running the same
    command again computes it instead of failing the same way."""
    shot = next((s for s in plan.shots if s.start_frame <= index < s.end_frame), None)
    if shot is not None:
        plan.work.reopen_shot(shot.index)
        plan.work.discard_frames(index, shot.end_frame)
    return StrotssError(f"frame {index} in the work directory {plan.work.path} is missing or "
                        "damaged; it was removed: run the same command again to compute it")


def finish_job(plan: JobPlan, keep_work: bool) -> None:
    """Mark the job done; free the frames unless asked to keep them."""
    out = plan.spec.output
    info: dict[str, Any] = {"output": str(out.resolve()) if out else None, "time": time.time()}
    if out is not None and out.exists():
        st = out.stat()
        info.update(size=st.st_size, mtime_ns=st.st_mtime_ns)
    plan.work.mark_done(info)
    if not keep_work:
        plan.work.remove_frames()


def job_is_done(work: WorkDir, output: Path | None) -> bool:
    """Whether a previous run finished this job and its output is still the one it wrote."""
    info = work.done_info()
    if info is None or output is None or not output.exists():
        return False
    st = output.stat()
    return info.get("size") == st.st_size and info.get("mtime_ns") == st.st_mtime_ns


def threads_per_worker(workers: int) -> int:
    """Each of ``workers`` processes gets an equal share of this machine's cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // max(1, workers))
