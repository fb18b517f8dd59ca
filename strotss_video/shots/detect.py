"""Cut detection with PySceneDetect, mapped onto our frame indices.

PySceneDetect 0.7's PyAV backend reports positions as timestamps (normalised to the stream's
``start_time``) and derives ``frame_num`` from them at the *nominal* rate, which is wrong on
variable-rate video. So its frame numbers are never used: a recording wrapper around the
detector numbers the frames it is fed in decode order (what :func:`read_frames` calls
``Frame.index``), and each reported cut is mapped back through that record, checked against
the timeline's exact timestamps."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import scenedetect
from scenedetect import (
    AdaptiveDetector,
    ContentDetector,
    FrameTimecode,
    SceneDetector,
    SceneManager,
)
from scenedetect.stats_manager import StatsManager
from scenedetect.video_stream import FrameRateUnavailable, VideoOpenFailure

from ..config import ShotsConfig
from ..errors import InputError
from ..io.timeline import Timeline

__all__ = ["detect_cuts"]

# Failures reach the user as one InputError line; without a handler, Python's last-resort
# handler would also print PySceneDetect's own warnings and tracebacks to stderr.
logging.getLogger("pyscenedetect").addHandler(logging.NullHandler())


class _Recorder(SceneDetector):
    """Wraps a detector: numbers the frames it sees and stops decoding past the range."""

    def __init__(self, inner: SceneDetector, manager: SceneManager, stop_after: int,
                 bar: Any) -> None:
        super().__init__()
        self.inner = inner
        self.manager = manager
        self.stop_after = stop_after  # decode-order index of the last frame needed
        self.bar = bar
        self.seen: list[FrameTimecode] = []  # position of every frame fed, in decode order
        self.by_id: dict[int, int] = {}
        self.cuts: list[FrameTimecode] = []

    @property
    def event_buffer_length(self) -> int:
        return self.inner.event_buffer_length

    @property
    def stats_manager(self) -> StatsManager | None:
        return self.inner.stats_manager

    @stats_manager.setter
    def stats_manager(self, value: StatsManager | None) -> None:
        self.inner.stats_manager = value

    def get_metrics(self) -> list[str]:
        return self.inner.get_metrics()

    def process_frame(self, timecode: FrameTimecode,
                      frame_img: np.ndarray) -> list[FrameTimecode]:
        self.by_id[id(timecode)] = len(self.seen)
        self.seen.append(timecode)
        cuts = self.inner.process_frame(timecode, frame_img)
        self.cuts.extend(cuts)
        if self.bar is not None:
            self.bar.update(1)
        if len(self.seen) > self.stop_after:
            # detect_scenes(end_time=...) compares nominal-rate frame numbers, which drift on
            # variable-rate video; counting decoded frames is exact.
            self.manager.stop()
        return cuts

    def post_process(self, timecode: FrameTimecode) -> list[FrameTimecode]:
        cuts = self.inner.post_process(timecode)
        self.cuts.extend(cuts)
        return cuts

    def index_of(self, cut: FrameTimecode, timeline: Timeline) -> int | None:
        """Decode-order index of a reported cut (which is one of the positions fed)."""
        k = self.by_id.get(id(cut))
        if k is None:  # a detector that builds new timecodes: match the timestamp instead
            k = next((i for i, tc in enumerate(self.seen) if tc.pts == cut.pts), None)
        if k is None:
            return None
        # Both sides count decoded frames, so they agree unless frames were lost to damage,
        # which read_frames counts and PySceneDetect skips: then trust the timestamps.
        t = _seconds(cut) - _seconds(self.seen[0])
        if timeline.first <= k < timeline.end and timeline.time(k) == t:
            return k
        k_time = timeline.index_at(t)
        if k_time < timeline.end and timeline.time(k_time) == t:
            return k_time
        return k


def _seconds(tc: FrameTimecode) -> Fraction:
    return Fraction(tc.pts) * Fraction(tc.time_base)


def _make_detector(config: ShotsConfig) -> SceneDetector:
    if config.detector == "content":
        return ContentDetector(threshold=config.content_threshold,
                               min_scene_len=config.min_shot_frames)
    return AdaptiveDetector(adaptive_threshold=config.adaptive_threshold,
                            min_scene_len=config.min_shot_frames)


def _open(path: Path, timeline: Timeline) -> scenedetect.VideoStreamAv:
    """PyAV stream of ``path`` (never the OpenCV fallback open_video would try)."""
    # suppress_output keeps PyAV's global FFmpeg log callback as the rest of the tool set it.
    try:
        try:
            return scenedetect.VideoStreamAv(str(path), suppress_output=True)
        except FrameRateUnavailable:
            # The rate only scales min_scene_len; the timeline's mean rate is as good.
            return scenedetect.VideoStreamAv(str(path), frame_rate=_mean_rate(timeline),
                                             suppress_output=True)
    except (VideoOpenFailure, OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"shot detection cannot open {path} ({reason}); pass --shots none "
                         "or a cuts file") from None


def _mean_rate(timeline: Timeline) -> Fraction:
    span = timeline.end_time() - timeline.time(timeline.first)
    return Fraction(len(timeline)) / span if span > 0 else Fraction(30)


def detect_cuts(path: Path, config: ShotsConfig, timeline: Timeline, progress: bool) -> list[int]:
    """See :func:`strotss_video.shots.detect_cuts`."""
    video = _open(path, timeline)
    detector = _make_detector(config)
    manager = SceneManager()
    manager.auto_downscale = True
    # Cuts reach the detector's output up to event_buffer_length frames late (AdaptiveDetector
    # needs its window after the cut), so decode that far past the range to see them all.
    stop_after = timeline.end - 1 + detector.event_buffer_length
    bar = None
    if progress:
        from tqdm.auto import tqdm

        total = timeline.end if timeline.at_stream_end else stop_after + 1
        bar = tqdm(total=total, unit="frame", desc="detecting shots", leave=False)
    recorder = _Recorder(detector, manager, stop_after, bar)
    manager.add_detector(recorder)
    try:
        # Frames before the range are decoded too: the detectors' state (last cut, rolling
        # average) is what a whole-video run would have at the range start.
        manager.detect_scenes(video=video, show_progress=False)
    except InputError:
        raise
    except Exception as exc:  # scenedetect re-raises whatever its decode thread hit
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"shot detection failed on {path} ({reason}); pass --shots none or "
                         "a cuts file") from None
    finally:
        if bar is not None:
            bar.close()
    indices = {recorder.index_of(cut, timeline) for cut in recorder.cuts}
    return sorted(i for i in indices if i is not None and timeline.first < i < timeline.end)
