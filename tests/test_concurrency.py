"""One run per job, and no path that loses a user's file, through the real CLI.

Two processes on one job or one output (a run stopped with SIGSTOP still holds its locks): the
second refuses at once in one line naming the first, and the first finishes with the output an
undisturbed run gives. An output that appears while a run works is never replaced; jobs that
differ only in their output get their own work directories; an input replaced by other content
(same size, same mtime) restarts its job; killed writers' temporary files are removed, live
ones kept; ``work list|clean`` reports and removes job directories, never a running one's.
Bad paths caught before any work (stats, sandbox, encoder preset) are rows of the matrix in
test_reliability.py."""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clitools import REPO, assert_one_line_error, run_cli, snapshot
from conftest import pattern_image, save_rgb
from media import make_clip

from strotss_video.io.reader import read_frames
from strotss_video.pipeline.layout import LAYOUT_VERSION, input_fingerprint
from strotss_video.pipeline.manifest import preflight_batch
from strotss_video.pipeline.workroot import clean, list_jobs

FAST = ["--preset", "test", "--max-size", "64", "--scales", "1", "--iters", "2",
        "--warm-iters", "1", "--threads", "1", "--quiet"]
MANIFEST_DEFAULTS = {"preset": "test", "max_size": 64, "scales": 1, "iters": 2, "warm_iters": 1}
LONG = 24  # frames of the clip a run is stopped in: enough to still be running when stopped

pytestmark = pytest.mark.weights


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("concurrency-media")
    make_clip(root / "clip.mp4", frames=4, size=(66, 50))
    make_clip(root / "long.mp4", frames=LONG, size=(66, 50))
    save_rgb(root / "style.png", pattern_image(64, 64, seed=2))
    save_rgb(root / "style2.png", pattern_image(64, 64, seed=7))
    return root


@pytest.fixture
def case(media: Path, tmp_path: Path) -> Path:
    """A fresh folder holding copies of the media (a test may replace or delete them)."""
    for p in media.iterdir():
        shutil.copy2(p, tmp_path / p.name)
    return tmp_path


def video(case: Path, clip: str = "long.mp4", style: str = "style.png", out: str = "out.mp4",
          *extra: str, work: str = "work") -> list[str]:
    return [clip, style, out, *FAST, "--work-dir", work, *extra]


def spawn(case: Path, args: list[str]) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    env.pop("STROTSS_VGG_WEIGHTS", None)
    return subprocess.Popen([sys.executable, "-m", "strotss_video", *args], cwd=case, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def cli(case: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=case, extra_env={"OMP_NUM_THREADS": "1"})


def frames_done(work: Path) -> int:
    return sum(1 for _ in work.glob("*/frames/*.png"))


def stop_when_working(proc: subprocess.Popen[str], work: Path) -> None:
    """SIGSTOP ``proc`` as soon as it has finished a frame (it then holds its locks)."""
    deadline = time.monotonic() + 240
    while frames_done(work) < 1:
        assert proc.poll() is None, f"the run ended early: {proc.communicate()[1]}"
        assert time.monotonic() < deadline, "no frame finished in time"
        time.sleep(0.005)
    proc.send_signal(signal.SIGSTOP)
    assert frames_done(work) < LONG, "the run finished before it could be stopped"


@pytest.fixture
def stopped(case: Path) -> Iterator[subprocess.Popen[str]]:
    """A run of ``video(case)`` stopped after its first frame; killed if a test leaves it."""
    proc = spawn(case, video(case))
    try:
        stop_when_working(proc, case / "work")
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
            proc.communicate()


@pytest.fixture(scope="module")
def reference(media: Path, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes an undisturbed run of ``video(case)`` writes (encoding is reproducible)."""
    case = tmp_path_factory.mktemp("concurrency-reference")
    for p in media.iterdir():
        shutil.copy2(p, case / p.name)
    proc = cli(case, *video(case))
    assert proc.returncode == 0, proc.stderr
    return (case / "out.mp4").read_bytes()


def outside_work(root: Path) -> dict[str, bytes | None]:
    return {k: v for k, v in snapshot(root).items() if not k.startswith("work")}


def work_list(case: Path) -> list[dict[str, Any]]:
    proc = cli(case, "work", "list", "--work-dir", "work", "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["jobs"]


def job_paths(case: Path) -> dict[str, str]:
    """Output file name -> job directory, for every job directory under ``case/work``."""
    jobs = work_list(case)
    assert all(j["state"] == "finished" for j in jobs), jobs
    assert len({j["output"] for j in jobs}) == len(jobs), jobs
    return {Path(j["output"]).name: j["path"] for j in jobs}


def write_manifest(path: Path, jobs: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"defaults": MANIFEST_DEFAULTS, "jobs": jobs}))  # JSON is YAML
    return path


# --------------------------------------------------------------------------- two processes


def test_second_run_of_a_job_or_output_refuses_while_the_first_holds_it(
        case: Path, stopped: subprocess.Popen[str], reference: bytes) -> None:
    """The same command, a batch of the same job, and a run of another style to the same
    output each refuse at once while the first run is stopped; resumed, it finishes with the
    output of an undisturbed run (its frames untouched)."""
    write_manifest(case / "m.yaml", [{"input": "long.mp4", "style": "style.png",
                                      "output": "out.mp4"}])
    before = outside_work(case)
    done = frames_done(case / "work")
    pid = f"another run (pid {stopped.pid})"
    for args, needle in [(video(case), "is working on this job"),
                         (["batch", "m.yaml", "--work-dir", "work", "--threads", "1", "--quiet"],
                          "is working on this job"),
                         (video(case, style="style2.png"), "is writing out.mp4")]:
        line = assert_one_line_error(cli(case, *args), 1)
        assert pid in line and needle in line, line
    assert outside_work(case) == before
    assert frames_done(case / "work") == done
    stopped.send_signal(signal.SIGCONT)
    _, err = stopped.communicate(timeout=300)
    assert stopped.returncode == 0, err
    assert (case / "out.mp4").read_bytes() == reference


def test_two_runs_started_together_one_proceeds(case: Path, reference: bytes) -> None:
    procs = [spawn(case, video(case)) for _ in range(2)]
    results = [(p.wait(timeout=300), p.communicate()[1]) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes[0] == 0 and codes[1] in (1, 2), results
    refused = next(err for code, err in results if code)
    # Refused while the other ran (a lock), or after it finished (the output exists).
    assert refused.count("\n") == 1 and "Traceback" not in refused, refused
    assert "another run (pid" in refused or "exists" in refused, refused
    assert (case / "out.mp4").read_bytes() == reference


def test_output_that_appears_meanwhile_is_never_replaced(
        case: Path, stopped: subprocess.Popen[str], reference: bytes) -> None:
    """Without --overwrite the output is published only if absent; the finished frames stay,
    so the same command with --overwrite only encodes."""
    (case / "out.mp4").write_bytes(b"someone else's video")
    stopped.send_signal(signal.SIGCONT)
    _, err = stopped.communicate(timeout=300)
    assert stopped.returncode == 1, err
    assert err.count("\n") == 1 and "appeared while this run was working" in err, err
    assert (case / "out.mp4").read_bytes() == b"someone else's video"
    assert not list(case.glob(".*.part"))
    assert frames_done(case / "work") == LONG
    again = cli(case, *[a for a in video(case, "long.mp4", "style.png", "out.mp4", "--overwrite")
                        if a != "--quiet"])
    assert again.returncode == 0, again.stderr
    assert f"resuming: {LONG} of {LONG} frames" in again.stderr
    assert (case / "out.mp4").read_bytes() == reference


# --------------------------------------------------------------------------- job identity


def test_jobs_differing_only_in_output_each_write_theirs(case: Path) -> None:
    """Each gets its own work directory; --threads (per shot task) is what the tasks use. A
    later --fresh run to one output removes that output's other job directories only."""
    write_manifest(case / "m.yaml", [
        {"input": "clip.mp4", "style": "style.png", "output": "a.mp4"},
        {"input": "clip.mp4", "style": "style.png", "output": "b.mp4"}])
    threads = len(os.sched_getaffinity(0)) + 1  # never the default (cores / workers)
    proc = cli(case, "batch", "m.yaml", "--work-dir", "work", "--quiet", "--threads",
               str(threads), "--stats", "stats.json", "--keep-work")
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((case / "stats.json").read_text())
    assert stats["finished_jobs"] == ["clip.mp4", "clip.mp4"]
    assert stats["threads_per_task"] == [threads]
    a, b = ([f.image for f in read_frames(case / n)] for n in ("a.mp4", "b.mp4"))
    assert len(a) == len(b) == 4
    assert all((x == y).all() for x, y in zip(a, b, strict=True))
    before = job_paths(case)
    assert sorted(before) == ["a.mp4", "b.mp4"]

    proc = cli(case, *video(case, "clip.mp4", "style2.png", "a.mp4", "--fresh", "--overwrite"))
    assert proc.returncode == 0, proc.stderr
    after = job_paths(case)
    assert sorted(after) == ["a.mp4", "b.mp4"]  # one job directory per output
    assert after["b.mp4"] == before["b.mp4"] and after["a.mp4"] != before["a.mp4"]


def _same_size(path: Path, size: int) -> None:
    """Pad an MP4 to ``size`` bytes with a trailing ``free`` box (players skip it)."""
    pad = size - path.stat().st_size
    assert pad >= 8
    with open(path, "ab") as fh:
        fh.write(struct.pack(">I4s", pad, b"free") + bytes(pad - 8))


def test_input_replaced_with_same_size_and_mtime_restarts_its_job(case: Path) -> None:
    clip = case / "clip.mp4"
    other = make_clip(case / "other.mp4", frames=4, size=(66, 50), seed=5, shift=(1, 2)).path
    for path in (clip, other):
        _same_size(path, 32 << 10)
    first = cli(case, *video(case, "clip.mp4", "style.png", "out.mp4", "--keep-work"))
    assert first.returncode == 0, first.stderr
    stat = clip.stat()
    os.replace(other, clip)
    os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    again = cli(case, *video(case, "clip.mp4", "style.png", "out.mp4", "--overwrite"))
    assert again.returncode == 0, again.stderr
    assert again.stderr == (f"strotss-video: warning: {clip.resolve()} changed since this job's "
                            "work directory was made; starting the job over (4 finished frames "
                            "discarded)\n")
    # The same frames as a run that never saw the old content.
    fresh = cli(case, *video(case, "clip.mp4", "style.png", "fresh.mp4", work="work2"))
    assert fresh.returncode == 0, fresh.stderr
    assert (case / "out.mp4").read_bytes() == (case / "fresh.mp4").read_bytes()
    assert len(work_list(case)) == 1  # the same directory, started over: nothing orphaned


# --------------------------------------------------------------------------- leftovers


def test_killed_writers_part_files_are_removed_live_ones_kept(case: Path) -> None:
    stale = case / ".out.mp4.deadbeef.part"  # the writer's naming: .NAME.<8 hex>.part
    live = case / ".out.mp4.cafe0123.part"
    unrelated = case / ".out.mp4.notes.part"
    for p in (stale, live, unrelated):
        p.write_bytes(b"half a video")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'rb+'); "
         "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(300)", str(live)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        proc = cli(case, *video(case, "clip.mp4"))
        assert proc.returncode == 0, proc.stderr
    finally:
        holder.kill()
        holder.wait()
    assert not stale.exists() and live.exists() and unrelated.exists()
    assert len(list(read_frames(case / "out.mp4"))) == 4


def test_work_list_and_clean(case: Path, stopped: subprocess.Popen[str]) -> None:
    """clean removes finished and orphaned job directories, never the running one; a killed
    run's directory is partial (its stale lock blocks nothing) and stays."""
    proc = cli(case, *video(case, "clip.mp4", "style.png", "o1.mp4", "--keep-work"))
    assert proc.returncode == 0, proc.stderr

    def states() -> dict[str, tuple[str, str]]:
        return {Path(j["output"]).name: (j["state"], j["why"]) for j in work_list(case)}

    assert states() == {"out.mp4": ("running", "matches"), "o1.mp4": ("finished", "matches")}
    table = cli(case, "work", "list", "--work-dir", "work").stdout
    assert f"running (pid {stopped.pid})" in table and "2 job directories" in table
    cleaned = cli(case, "work", "clean", "--work-dir", "work", "--older-than", "0")
    assert cleaned.returncode == 0, cleaned.stderr
    assert "(finished," in cleaned.stdout and "removed 1 job directory" in cleaned.stdout
    assert states() == {"out.mp4": ("running", "matches")}

    stopped.kill()
    stopped.communicate()
    assert states() == {"out.mp4": ("partial", "matches")}
    assert cli(case, "work", "clean", "--work-dir", "work").returncode == 0
    assert states() == {"out.mp4": ("partial", "matches")}
    with open(case / "long.mp4", "ab") as fh:  # the input edited since: never resumable
        fh.write(b"\0" * 8)
    assert states() == {"out.mp4": ("orphaned", "changed")}
    cleaned = cli(case, "work", "clean", "--work-dir", "work")
    assert "(input changed," in cleaned.stdout, cleaned.stdout
    assert states() == {}
    assert not (case / "work" / ".locks").exists()


def test_clean_older_than_removes_only_stale_partial_jobs(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", frames=2, size=(32, 32), audio=False).path
    job = tmp_path / "work" / "clip-0123456789abcdef"
    (job / "frames").mkdir(parents=True)
    (job / "frames" / "00000000.png").write_bytes(b"a frame")
    (job / "job.json").write_text(json.dumps({
        "layout": LAYOUT_VERSION, "input": str(clip), "fingerprint": input_fingerprint(clip),
        "output": str(tmp_path / "out.mp4")}))
    two_days_ago = time.time() - 2 * 86400
    for p in [job, *job.rglob("*")]:
        os.utime(p, (two_days_ago, two_days_ago))
    assert [j.state for j in list_jobs(tmp_path / "work")] == ["partial"]
    assert clean(tmp_path / "work") == [] and clean(tmp_path / "work", 3) == []
    removed = clean(tmp_path / "work", 1)
    assert [why for _, why in removed] == ["unchanged for over 1 days"]
    assert not job.exists() and not list_jobs(tmp_path / "work")


def test_sandbox_allows_preset_names_and_files_inside(case: Path) -> None:
    (case / "c.yaml").write_text("temporal: {weight: 7}\n")
    manifest = write_manifest(case / "m.yaml", [
        {"input": "clip.mp4", "style": "style.png", "output": "out.mp4",
         "options": {"preset": "test", "config": "c.yaml"}}])
    specs = preflight_batch(manifest, sandbox=True)
    assert specs[0].config.temporal.weight == 7
    with pytest.raises(Exception, match="outside the manifest's folder"):
        preflight_batch(manifest, sandbox=True, work_root=case.parent / "elsewhere")
