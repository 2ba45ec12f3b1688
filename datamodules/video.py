"""One interface for reading video: decord (default), PyAV, and folders of frames.

``open_video(path)`` returns a reader with ``len(reader)`` (decodable frames), ``reader.fps`` and
``reader.get_frames(indices) -> uint8 (T, H, W, 3)`` RGB, resized while decoding when ``size=(H, W)``
is given. decord is used the way that avoids its known bugs: the native reader is made lazily in the
process that decodes (so inside each DataLoader worker, never shared across a fork), with
``num_threads=1``; indices are clamped to the decodable length (containers may announce a frame more
than they decode); the reader is released by ``close()`` or the ``with`` block.
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from zoo.errors import VideoReadError

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
BACKENDS = ("decord", "pyav")


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__


class VideoReader(ABC):
    """A random-access reader of RGB frames."""

    def __init__(self, path: str | os.PathLike, size: tuple[int, int] | None = None) -> None:
        self.path = Path(path)
        self.size = size

    @abstractmethod
    def __len__(self) -> int: ...

    @property
    @abstractmethod
    def fps(self) -> float: ...

    @abstractmethod
    def _read(self, indices: np.ndarray) -> np.ndarray: ...

    def get_frames(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Frames at ``indices`` (any order, repeats allowed), clamped to the decodable range."""
        n = len(self)
        if n == 0:
            raise VideoReadError(f"{self.path}: no decodable frames")
        idx = np.clip(np.asarray(indices, dtype=np.int64).reshape(-1), 0, n - 1)
        return self._read(idx)

    def close(self) -> None:  # noqa: B027  (readers without native resources have nothing to release)
        """Release decoder resources; the reader reopens itself if used again."""

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, frames={len(self)}, fps={self.fps:.3f})"


def _stream_end_seconds(path: Path) -> float | None:
    """The end time of the first video stream from container metadata (no decoding), if known."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if stream.duration is None or stream.time_base is None:
                return None
            return float((stream.duration + (stream.start_time or 0)) * stream.time_base)
    except (av.FFmpegError, IndexError, OSError):
        return None


class DecordReader(VideoReader):
    """decord backend, one native reader per process, ``num_threads=1``."""

    def __init__(self, path: str | os.PathLike, size: tuple[int, int] | None = None) -> None:
        super().__init__(path, size)
        self._vr = None
        self._pid = -1
        self._len: int | None = None
        self._fps: float | None = None
        if not self.path.is_file():
            raise VideoReadError(f"{self.path}: video file not found")

    def _reader(self):  # noqa: ANN202
        if self._vr is None or self._pid != os.getpid():
            import decord

            kwargs = {"num_threads": 1, "ctx": decord.cpu(0)}
            if self.size is not None:
                kwargs.update(height=int(self.size[0]), width=int(self.size[1]))
            try:
                self._vr = decord.VideoReader(str(self.path), **kwargs)
            except (RuntimeError, decord.DECORDError) as e:
                raise VideoReadError(f"{self.path}: cannot open video ({_first_line(e)})") from None
            self._pid = os.getpid()
        return self._vr

    def _probe(self) -> None:
        vr = self._reader()
        n = len(vr)
        self._fps = float(vr.get_avg_fps())
        end = _stream_end_seconds(self.path)
        if end is not None and n > 0:
            starts = vr.get_frame_timestamp(np.arange(n))[:, 0]
            decodable = int(np.sum(starts < end - 1e-6))
            if n - 2 <= decodable < n:  # a frame the container counts but never decodes
                n = decodable
        self._len = n

    def __len__(self) -> int:
        if self._len is None:
            self._probe()
        return self._len

    @property
    def fps(self) -> float:
        if self._fps is None:
            self._probe()
        return self._fps

    def _read(self, indices: np.ndarray) -> np.ndarray:
        import decord

        try:
            return self._reader().get_batch(indices.tolist()).asnumpy()
        except (RuntimeError, decord.DECORDError) as e:
            raise VideoReadError(f"{self.path}: cannot decode frames ({_first_line(e)})") from None

    def close(self) -> None:
        self._vr = None


class PyAVReader(VideoReader):
    """PyAV backend: frame index -> presentation time from demuxed packets, seek, decode what is asked."""

    def __init__(self, path: str | os.PathLike, size: tuple[int, int] | None = None) -> None:
        super().__init__(path, size)
        if not self.path.is_file():
            raise VideoReadError(f"{self.path}: video file not found")
        self._pts: list[int] | None = None
        self._fps = 0.0

    def _open(self):  # noqa: ANN202
        import av

        try:
            return av.open(str(self.path))
        except (av.FFmpegError, OSError) as e:
            raise VideoReadError(f"{self.path}: cannot open video ({_first_line(e)})") from None

    def _probe(self) -> None:
        import av

        with self._open() as container:
            if not container.streams.video:
                raise VideoReadError(f"{self.path}: no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or Fraction(25)
            self._fps = float(rate)
            try:
                pts = sorted(p.pts for p in container.demux(stream) if p.size > 0 and p.pts is not None)
            except av.FFmpegError as e:
                raise VideoReadError(f"{self.path}: cannot read packets ({_first_line(e)})") from None
            if stream.duration is not None:
                end = stream.duration + (stream.start_time or 0)
                kept = [p for p in pts if p < end]
                pts = kept if len(pts) - 2 <= len(kept) else pts
        self._pts = pts

    def __len__(self) -> int:
        if self._pts is None:
            self._probe()
        return len(self._pts)

    @property
    def fps(self) -> float:
        if self._pts is None:
            self._probe()
        return self._fps

    def _to_array(self, frame) -> np.ndarray:  # noqa: ANN001
        if self.size is None:
            return frame.to_ndarray(format="rgb24")
        return frame.to_ndarray(format="rgb24", height=int(self.size[0]), width=int(self.size[1]))

    def _read(self, indices: np.ndarray) -> np.ndarray:
        import av

        len(self)
        wanted = {self._pts[i]: i for i in np.unique(indices)}
        got: dict[int, np.ndarray] = {}
        last = max(wanted)
        with self._open() as container:
            stream = container.streams.video[0]
            try:
                container.seek(min(wanted), stream=stream, backward=True, any_frame=False)
                for frame in container.decode(stream):
                    if frame.pts in wanted:
                        got[wanted[frame.pts]] = self._to_array(frame)
                    if frame.pts is not None and frame.pts >= last:
                        break
            except av.FFmpegError as e:
                raise VideoReadError(f"{self.path}: cannot decode frames ({_first_line(e)})") from None
        missing = sorted(set(wanted.values()) - set(got))
        if missing:
            raise VideoReadError(f"{self.path}: frames {missing[:5]} could not be decoded (truncated file?)")
        return np.stack([got[i] for i in indices.tolist()])


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """One image file as RGB uint8 (H, W, 3); an unreadable file names itself."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise VideoReadError(f"{path}: cannot read image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _natural_key(path: Path) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name))


class FrameFolderReader(VideoReader):
    """A folder of numbered images (``0001.jpg``, ``%05d.jpg``, ``%08d.jpg``...) read as one video."""

    def __init__(self, path: str | os.PathLike, size: tuple[int, int] | None = None, fps: float = 30.0) -> None:
        super().__init__(path, size)
        if not self.path.is_dir():
            raise VideoReadError(f"{self.path}: frame folder not found")
        self.files = sorted(
            (p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS), key=_natural_key
        )
        self._fps = fps

    def __len__(self) -> int:
        return len(self.files)

    @property
    def fps(self) -> float:
        return self._fps

    def _read(self, indices: np.ndarray) -> np.ndarray:
        frames = []
        for i in indices.tolist():
            image = read_rgb(self.files[i])
            if self.size is not None and image.shape[:2] != tuple(self.size):
                image = cv2.resize(image, (int(self.size[1]), int(self.size[0])), interpolation=cv2.INTER_AREA)
            frames.append(image)
        return np.stack(frames)


def open_video(
    path: str | os.PathLike, backend: str = "decord", size: tuple[int, int] | None = None
) -> VideoReader:
    """A reader for a video file (``backend`` decord or pyav) or a folder of frames."""
    path = Path(path)
    if path.is_dir():
        return FrameFolderReader(path, size=size)
    if backend == "decord":
        return DecordReader(path, size=size)
    if backend == "pyav":
        return PyAVReader(path, size=size)
    raise ValueError(f"unknown video backend {backend!r}; choose one of {', '.join(BACKENDS)}")
