"""Encoding frames to a video file with their exact source timestamps, plus copied audio.

Writing goes to a hidden temporary file beside the target that is renamed into place only when
:meth:`VideoWriter.close` succeeds, so a failed run never leaves a partial video; the writer
holds a ``flock`` on it meanwhile, so a cleaner can tell a killed writer's leftover from a live
one's. The same
frames written with the same settings give a byte-identical file (see ``io.encoding`` for the
encoder side; the muxers run bit-exact, so Matroska writes no random segment id)."""

from __future__ import annotations

import os
import uuid
import warnings
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import av
import av.error
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, VideoReformatter

from ..errors import OutputError
from ..files import create_held, publish
from .audio import AudioCopy, Window
from .encoding import check_encoder, check_pix_fmt, codec_options, configure_threads

__all__ = ["CONTAINER_FORMATS", "VideoWriter"]

# Output extension -> FFmpeg muxer. Only containers that hold H.264/H.265/VP9 and copied audio.
CONTAINER_FORMATS: dict[str, str] = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}
# Negative timestamps stay as they are (copied AAC priming); no random ids or version strings.
_MUXER_OPTIONS = {"avoid_negative_ts": "disabled", "fflags": "+bitexact"}


class VideoWriter:
    """Encode frames to a video file, stream-copying audio from a source; a context manager.

    ``with VideoWriter(out, width=W, height=H, time_base=tb, average_rate=r) as w:
    w.write(rgb, pts)``. Frame ``pts`` are in ``time_base`` and must strictly increase; the
    file gets ``pts - pts_offset``. The video goes to a hidden temporary file beside ``path``
    that replaces ``path`` only when :meth:`close` succeeds; an exception inside the ``with``
    block deletes it. Without ``overwrite``, :meth:`close` never replaces a ``path`` that
    appeared meanwhile: it raises FileExistsError and deletes the temporary file.

    Audio: every audio stream of ``audio_source`` is copied packet for packet. Only packets
    overlapping ``audio_window=(start_s, end_s or None)`` (seconds on the source clock) are
    kept, shifted so ``start_s`` lands on 0; with no window, the window is
    ``(pts_offset * time_base, None)``, i.e. the same shift as the video."""

    def __init__(self, path: str | os.PathLike[str], *, width: int, height: int,
                 time_base: Fraction, average_rate: Fraction | None,
                 codec: str = "libx264", crf: int = 18, preset: str = "medium",
                 pix_fmt: str = "yuv420p", audio_source: Path | None = None,
                 audio_window: Window | None = None, pts_offset: int = 0,
                 overwrite: bool = True) -> None:
        self.path = Path(path)
        ext = self.path.suffix.lower()
        _check_target(self.path)
        self.width, self.height = int(width), int(height)
        if self.width <= 0 or self.height <= 0:
            raise OutputError(f"invalid video size {width}x{height}")
        self.time_base = Fraction(time_base)
        self.pts_offset = int(pts_offset)
        self.pix_fmt = pix_fmt
        self.codec = codec
        self.overwrite = overwrite
        self._fmt = check_pix_fmt(pix_fmt, self.width, self.height)
        check_encoder(codec, pix_fmt)

        # The random part only keeps concurrent writers apart; it never reaches the file.
        self._tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.part")
        self._tmp_held: int | None = None
        self._last_pts: int | None = None
        self._pending: tuple[Any, int] | None = None  # held one frame to learn its duration
        self._given_duration: int | None = None
        self._durations: dict[int, int] = {}  # output pts -> duration, for encoder packets
        self._held: Any = None  # the newest video packet, muxed when the next one comes
        self._video_end: int | None = None  # max(pts + duration) of the packets so far
        self._first_stamps: tuple[int, int] | None = None  # (pts, dts) of the first packet
        self._last_gap: int | None = None
        self._frames = 0
        self._closed = False
        self._audio: AudioCopy | None = None
        self._reformatter = VideoReformatter()

        # The file exists from here on (FFmpeg writes into it, same inode, lock kept); any
        # failure up to the header (_start, the last step) deletes it again, so a refused setup
        # leaves nothing on disk.
        try:
            self._tmp_held = create_held(self._tmp)
        except OSError as exc:
            raise OutputError(f"cannot write to {self.path.parent}: {exc.strerror}; choose a "
                              "writable output directory") from None
        try:
            self._container = av.open(str(self._tmp), mode="w", format=CONTAINER_FORMATS[ext],
                                      container_options=_MUXER_OPTIONS)
            self._stream = self._add_video_stream(codec, crf, preset, average_rate)
            if audio_source is not None:
                if audio_window is None and self.pts_offset:
                    audio_window = (self.pts_offset * self.time_base, None)
                self._audio = AudioCopy(self._container, Path(audio_source), audio_window,
                                        self.path)
            self._start()
        except BaseException:
            self._abort()
            raise

    # ----------------------------------------------------------------- setup

    def _add_video_stream(self, codec: str, crf: int, preset: str,
                          average_rate: Fraction | None) -> Any:
        try:
            stream: Any = self._container.add_stream(codec, rate=average_rate or None)
        except ValueError:  # the container cannot hold this codec
            other = "another --codec" if self.path.suffix.lower() == ".mkv" else (
                ".mkv or another --codec")
            raise OutputError(f"{self.path.suffix} files cannot hold {codec} video; use "
                              f"{other}") from None
        ctx = stream.codec_context
        if not average_rate:
            ctx.framerate = Fraction(0, 1)  # PyAV would default to 24 fps
        stream.width, stream.height = self.width, self.height
        stream.pix_fmt = self.pix_fmt
        # Frames are stamped in the source time base; the muxer may refine it (mp4), never
        # coarsen it (except Matroska's fixed milliseconds, checked when the header is out).
        stream.time_base = self.time_base
        ctx.time_base = self.time_base
        if not self._fmt.is_rgb:
            # Tag what _to_frame converts with, so players do not guess BT.601 vs BT.709.
            ctx.colorspace = 1  # AVCOL_SPC_BT709
            ctx.color_primaries = 1
            ctx.color_trc = 1
            ctx.color_range = 1  # limited (MPEG)
        if codec == "libx265" and self.path.suffix.lower() in (".mp4", ".mov"):
            ctx.codec_tag = "hvc1"  # Apple players need hvc1, not hev1
        configure_threads(ctx, codec)
        ctx.options = codec_options(codec, crf, preset)
        try:
            ctx.open()  # fail now on bad options/time base, not mid-run
        except (av.error.FFmpegError, ValueError) as exc:
            raise OutputError(f"cannot start the {codec} encoder ({exc}); check --codec, "
                              "--crf and --encoder-preset") from None
        return stream

    def _start(self) -> None:
        """Write the header now: some codec/container pairs pass FFmpeg's codec query and
        are refused only here (e.g. FLAC in .mov), and that must surface before any work."""
        try:
            self._container.start_encoding()
        except (av.error.FFmpegError, ValueError) as exc:
            reason = str(exc).split("last error log: ")[-1].strip() if "last error log" in \
                str(exc) else getattr(exc, "strerror", None) or str(exc)
            audio = sorted({s.codec_context.name for s in self._container.streams.audio})
            what = f"{self.codec} video" + (f" with {', '.join(audio)} audio" if audio else "")
            fix = "write .mkv, use --no-audio or another --codec" if audio else (
                "use another --codec or .mkv")
            raise OutputError(f"cannot write {what} to {self.path.suffix} ({reason}); "
                              f"{fix}") from None
        out_tb = Fraction(self._stream.time_base)
        if (self.time_base / out_tb).denominator != 1:
            warnings.warn(f"{self.path.suffix} stores times in units of {out_tb} s, so frame times "
                          f"(units of {self.time_base} s) are rounded; write .mp4 or .mov to keep "
                          "them exact", RuntimeWarning, stacklevel=3)

    # ----------------------------------------------------------------- writing

    def write(self, image: np.ndarray, pts: int, duration: int | None = None) -> None:
        """Queue one uint8 RGB (H, W, 3) frame at source ``pts`` (strictly increasing).

        ``duration`` (time-base units), when the source knows it, is used for the last frame;
        otherwise the last frame lasts as long as the gap before it."""
        if self._closed:
            raise ValueError("write() on a closed VideoWriter")
        if isinstance(pts, bool) or not isinstance(pts, (int, np.integer)):
            raise TypeError(f"pts must be an int, not {type(pts).__name__}")
        pts = int(pts)
        if self._last_pts is not None and pts <= self._last_pts:
            raise ValueError(f"pts must strictly increase: got {pts} after {self._last_pts}")
        if pts < self.pts_offset:
            raise ValueError(f"pts {pts} is before pts_offset {self.pts_offset}")
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.shape != (self.height, self.width, 3):
            raise ValueError(f"expected uint8 RGB ({self.height}, {self.width}, 3), got "
                             f"{image.dtype} {image.shape}")
        frame = self._to_frame(image)  # copies, so the caller may reuse its buffer
        if self._pending is not None:
            prev, prev_pts = self._pending
            self._encode(prev, prev_pts, pts - prev_pts)
        self._pending = (frame, pts)
        self._last_pts = pts
        self._given_duration = int(duration) if duration else None

    def _to_frame(self, image: np.ndarray) -> Any:
        rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        if self._fmt.name == "rgb24":
            return rgb
        if self._fmt.is_rgb:
            return self._reformatter.reformat(rgb, format=self.pix_fmt)
        return self._reformatter.reformat(rgb, format=self.pix_fmt,
                                          dst_colorspace=Colorspace.ITU709,
                                          dst_color_range=ColorRange.MPEG)

    def _encode(self, frame: Any, pts: int, duration: int) -> None:
        out_pts = pts - self.pts_offset
        frame.pts = out_pts
        frame.time_base = self.time_base
        frame.duration = duration
        self._durations[out_pts] = duration
        self._last_gap = duration
        try:
            packets = self._stream.encode(frame)
        except av.error.FFmpegError as exc:
            raise OutputError(f"encoding {self.path} failed: {exc}") from None
        self._frames += 1
        for packet in packets:
            self._mux_video(packet)

    def _mux_video(self, packet: Any) -> None:
        """Mux the packet held back before this one, and hold this one (see _mux_last)."""
        # Encoders with delay (x264) may drop a frame's duration or give a packet another
        # frame's; each packet gets its own frame's duration.
        if packet.pts is not None:
            duration = self._durations.pop(packet.pts, None)
            if duration:
                packet.duration = duration
            self._video_end = max(self._video_end or 0, packet.pts + (packet.duration or 0))
            if self._first_stamps is None and packet.dts is not None:
                self._first_stamps = (packet.pts, packet.dts)
        if self._held is not None:
            self._mux_held()
        self._held = packet

    def _mux_held(self) -> None:
        packet, self._held = self._held, None
        stamp = packet.dts if packet.dts is not None else packet.pts
        if stamp is not None:
            # Audio up to this video time goes first, so the muxer's interleaving queue
            # (and our memory) stays small.
            self._pump_audio(stamp * self.time_base)
        self._mux(packet)

    def _mux_last(self) -> None:
        """Mux the last packet in decode order with the duration that ends the track where
        the last frame ends. MP4/MOV store durations as decode-time steps and take the track's
        length from the last packet's, but with B-frames that packet is not the last frame
        shown (which one it is depends on the encoder's reordering, i.e. on the content):
        its own duration would make a variable-rate stream one gap too long or short."""
        packet = self._held
        if packet is None:
            return
        if self._first_stamps is not None and packet.dts is not None and self._video_end:
            first_pts, first_dts = self._first_stamps
            span = self._video_end - first_pts - (packet.dts - first_dts)
            if span > 0:
                packet.duration = span
        self._mux_held()

    def _pump_audio(self, until: Fraction | None) -> None:
        if self._audio is not None:
            for packet in self._audio.until(until):
                self._mux(packet)

    def _mux(self, packet: Any) -> None:
        """Hand one packet to the muxer (single choke point; tests spy on it)."""
        try:
            self._container.mux(packet)
        except av.error.FFmpegError as exc:
            raise OutputError(f"writing {self.path} failed: {exc}") from None

    # ----------------------------------------------------------------- closing

    def close(self) -> None:
        """Flush the encoder and remaining audio, finish the file and move it into place."""
        if self._closed:
            return
        try:
            # A range's audio stops where its video does (the window only knows its start
            # when the end is a frame index).
            video_end = None
            if self._audio is not None and self._audio.window is not None \
                    and self._last_pts is not None:
                video_end = (self._last_pts - self.pts_offset + self._last_duration()) \
                    * self.time_base
            self._flush_video()
            self._pump_audio(video_end)
            try:
                self._container.close()
            except av.error.FFmpegError as exc:
                raise OutputError(f"finishing {self.path} failed: {exc}") from None
            publish(self._tmp, self.path, self.overwrite)
            self._release_tmp()
        except BaseException:
            self._abort()
            raise
        finally:
            self._closed = True
            if self._audio is not None:
                self._audio.close()

    def _flush_video(self) -> None:
        """Encode the held frame, drain the encoder and mux every remaining video packet."""
        if self._pending is not None:
            frame, pts = self._pending
            self._pending = None
            self._encode(frame, pts, self._last_duration())
        if self._frames == 0:
            raise OutputError(f"no frames were written to {self.path}; nothing to save")
        try:
            packets = self._stream.encode(None)
        except av.error.FFmpegError as exc:
            raise OutputError(f"encoding {self.path} failed: {exc}") from None
        for packet in packets:
            self._mux_video(packet)
        self._mux_last()

    def _last_duration(self) -> int:
        """Duration of the final frame: as given, else the previous gap, else one frame."""
        if self._given_duration:
            return self._given_duration
        if self._last_gap is not None:
            return self._last_gap
        rate = self._stream.codec_context.framerate
        if rate:
            return max(1, round(1 / (Fraction(rate) * self.time_base)))
        return 1

    def _abort(self) -> None:
        """Drop everything: close the container quietly and delete the partial file."""
        self._closed = True
        try:
            self._container.close()
        except Exception:  # noqa: BLE001 - the file is being thrown away anyway
            pass
        self._tmp.unlink(missing_ok=True)
        self._release_tmp()
        if self._audio is not None:
            try:
                self._audio.close()
            except Exception:  # noqa: BLE001
                pass

    def _release_tmp(self) -> None:
        if self._tmp_held is not None:
            os.close(self._tmp_held)
            self._tmp_held = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort()


def _check_target(path: Path) -> None:
    """Refuse an output path the writer cannot create (OutputError, one line)."""
    ext = path.suffix.lower()
    if ext not in CONTAINER_FORMATS:
        raise OutputError(f"cannot write video {path}: unsupported extension "
                          f"{ext or '(none)'}; use .mp4, .mov or .mkv")
    if not path.parent.is_dir():
        raise OutputError(f"output directory {path.parent} does not exist; create it first")
    if path.is_dir():
        raise OutputError(f"output {path} is a directory; pass a file name")
