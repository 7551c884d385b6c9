"""Media URLs of a request to the model's features: `data:` (base64) and `file://` under one folder.

Nothing is fetched from the network: a server that downloads whatever URL a request names can be
turned against its own network, and the model needs no more than the bytes. `file://` paths are
served only from the folder `--allowed-local-media-path` names, after resolving symlinks and `..`,
as vLLM does. The bytes are decoded by `salmonn_o1.media` (PyAV) through the processor, so a
served answer sees exactly the frames and audio `salmonn-o1 ask` would.

Features are cached by content (the bytes' hash; a file's path, size and modification time), so
the same clip asked about again is neither decoded nor featurised again, and the requests about it
in one batch share one encoding (vLLM keeps a multimodal processor cache for the same reason).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import mimetypes
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np

from salmonn_o1.errors import MediaError
from salmonn_o1.media_types import SAMPLE_RATE, DecodedMedia
from salmonn_o1.model.media_batch import MediaFeatures
from salmonn_o1.serve.errors import APIError


@dataclass(frozen=True)
class MediaRef:
    """One media item of a request: what it is, its URL (or base64 data), and where it sits in the request."""

    kind: str  # "video", "image" or "audio"
    url: str  # a data: or file:// URL; for input_audio a data: URL built from its data and format
    param: str  # e.g. messages[0].content[1].video_url.url, for error messages


@dataclass(frozen=True)
class MediaLimits:
    allowed_dir: Path | None = None  # file:// URLs only under this folder; None: refused
    max_seconds: float | None = None  # longer media is refused before it is decoded


def audio_data_url(data: str, audio_format: str) -> str:
    """An `input_audio` item as the data: URL it amounts to."""
    return f"data:audio/{audio_format.strip().lower() or 'wav'};base64,{data}"


class MediaResolver:
    """URLs -> `MediaFeatures` (thread-safe: the server calls it from a thread pool)."""

    def __init__(self, processor, limits: MediaLimits, cache_bytes: int = 256 << 20):
        self.processor = processor
        self.limits = limits
        self.cache_bytes = cache_bytes
        self._cache: OrderedDict[tuple, MediaFeatures] = OrderedDict()
        self._cached_bytes = 0
        self._lock = threading.Lock()
        self.decoded = 0  # media decoded and featurised (cache misses), for /health and tests

    def features(self, media: MediaRef | None, audio: MediaRef | None = None,
                 use_audio_in_video: bool = True) -> MediaFeatures | None:
        """The features of a request's media: `audio` replaces a video's own track (or is the input)."""
        if media is None:
            media, audio = audio, None
        if media is None:
            return None
        sources = [Source.of(ref, self.limits) for ref in (media, audio) if ref is not None]
        cache_key = (media.kind, *(source.key for source in sources), use_audio_in_video)
        cached = self._get(cache_key)
        if cached is not None:
            return cached
        with ExitStack() as stack:
            decoded = [self._decode(source.ref, stack.enter_context(source.local_path())) for source in sources]
        picture = decoded[0]
        if audio is not None and picture.kind != "video":
            raise APIError(f"{_label(audio)}: a separate audio track goes with a video only, not with an "
                           f"{picture.kind}", param=audio.param, code="invalid_media")
        if audio is not None:
            picture = with_audio(picture, decoded[1], pad=bool(self.processor.config.pad_audio_to_video))
        elif not use_audio_in_video and picture.kind == "video":
            picture = picture.without_audio()
        features = self.processor.media_features(picture)
        self._put(cache_key, features)
        return features

    # ---- decoding ----
    def _decode(self, ref: MediaRef, path: Path) -> DecodedMedia:
        label = _label(ref)
        try:
            if ref.kind != "image" and self.limits.max_seconds is not None:
                self._check_duration(ref, path, probe_seconds(path))
            decoded = self.processor.load_media(path, kind=ref.kind)
        except MediaError as error:
            raise APIError(str(error).replace(str(path), label), param=ref.param, code="invalid_media") from None
        self._check_duration(ref, path, decoded.duration)
        return decoded

    def _check_duration(self, ref: MediaRef, path: Path, seconds: float | None) -> None:
        limit = self.limits.max_seconds
        if limit is not None and seconds is not None and seconds > limit:
            raise APIError(f"{_label(ref)}: {seconds:.1f} s of media, more than this server takes "
                           f"(--max-video-seconds {limit:g})", param=ref.param, code="media_too_long")

    # ---- cache ----
    def _get(self, key: tuple) -> MediaFeatures | None:
        with self._lock:
            found = self._cache.get(key)
            if found is not None:
                self._cache.move_to_end(key)
            return found

    def _put(self, key: tuple, features: MediaFeatures | None) -> None:
        size = feature_bytes(features)
        with self._lock:
            self.decoded += 1
            if features is None or size > self.cache_bytes or key in self._cache:
                return
            self._cache[key] = features
            self._cached_bytes += size
            while self._cached_bytes > self.cache_bytes:
                _, dropped = self._cache.popitem(last=False)
                self._cached_bytes -= feature_bytes(dropped)


def feature_bytes(features: MediaFeatures | None) -> int:
    if features is None:
        return 0
    return sum(t.numel() * t.element_size() for t in (features.pixel_values, features.input_features)
               if t is not None)


def with_audio(video: DecodedMedia, audio: DecodedMedia, pad: bool = True) -> DecodedMedia:
    """The video's frames with another audio track, cut to the video's length (and padded with
    silence to it when `pad`, as the model's config reads a video's own short track)."""
    length = int(round(video.duration * SAMPLE_RATE))
    track = np.asarray(audio.audio, np.float32)[:length]
    if pad and len(track) < length:
        track = np.concatenate([track, np.zeros(length - len(track), np.float32)])
    return replace(video, audio=track, has_audio=True)


def probe_seconds(path: Path) -> float | None:
    """The container's declared duration, read without decoding (None when it declares none or
    cannot be opened: the decoder then reports what is wrong)."""
    import av

    try:
        with av.open(str(path)) as container:
            if container.duration:
                return container.duration / av.time_base
            durations = [float(s.duration * s.time_base) for s in container.streams if s.duration and s.time_base]
            return max(durations) if durations else None
    except (av.error.FFmpegError, OSError, UnicodeDecodeError, ValueError):
        return None


# ---- URLs ----
def _label(ref: MediaRef) -> str:
    """How an error names the item: its place in the request (a data: URL has no name of its own)."""
    return ref.param.removesuffix(".url")


@dataclass(frozen=True)
class Source:
    """An item's bytes (a data: URL's) or file (a file:// URL's), and the key the cache knows it by."""

    ref: MediaRef
    key: tuple
    data: bytes | None = None
    path: Path | None = None

    @classmethod
    def of(cls, ref: MediaRef, limits: MediaLimits) -> Source:
        scheme = urlsplit(ref.url).scheme.lower() if ":" in ref.url else ""
        if scheme == "file":
            path = allowed_file(ref, limits.allowed_dir)
            try:
                stat = path.stat()
            except OSError:
                raise APIError(f"{_label(ref)}: {path}: no such file", param=ref.param,
                               code="invalid_media") from None
            if not path.is_file():
                raise APIError(f"{_label(ref)}: {path}: not a file", param=ref.param, code="invalid_media")
            return cls(ref, ("file", str(path), stat.st_size, stat.st_mtime_ns), path=path)
        if scheme != "data":
            shown = ref.url if len(ref.url) <= 80 else ref.url[:77] + "..."
            raise APIError(f"{_label(ref)}: {shown!r}: only data: URLs (base64) and file:// URLs are accepted "
                           "(this server fetches nothing from the network)", param=ref.param, code="invalid_url")
        mime, data = parse_data_url(ref)
        return cls(ref, ("data", mime, hashlib.sha256(data).hexdigest()), data=data)

    @contextmanager
    def local_path(self) -> Iterator[Path]:
        """The file to decode: the named one, or the data written to a temporary file (removed afterwards)."""
        if self.path is not None:
            yield self.path
            return
        handle, name = tempfile.mkstemp(prefix="salmonn-o1-serve-", suffix=mimetypes.guess_extension(self.key[1]) or "")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(self.data)
            yield Path(name)
        finally:
            os.unlink(name)


def parse_data_url(ref: MediaRef) -> tuple[str, bytes]:
    """`data:<mime>;base64,<data>` -> (mime, bytes)."""
    head, comma, payload = ref.url.partition(",")
    if not comma:
        raise APIError(f"{_label(ref)}: a data: URL needs a comma before its data", param=ref.param,
                       code="invalid_url")
    parts = head[len("data:"):].split(";")
    if "base64" not in [p.strip().lower() for p in parts[1:]]:
        raise APIError(f"{_label(ref)}: only base64 data: URLs are accepted (data:<type>;base64,...)",
                       param=ref.param, code="invalid_url")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise APIError(f"{_label(ref)}: the data: URL's data is not valid base64", param=ref.param,
                       code="invalid_url") from None
    if not data:
        raise APIError(f"{_label(ref)}: the data: URL holds no data", param=ref.param, code="invalid_media")
    return parts[0].strip().lower(), data


def allowed_file(ref: MediaRef, allowed_dir: Path | None) -> Path:
    """The file a file:// URL names, if it lies under `allowed_dir` (after symlinks and `..` are resolved)."""
    if allowed_dir is None:
        raise APIError(f"{_label(ref)}: file:// URLs are refused: this server was started without "
                       "--allowed-local-media-path", param=ref.param, code="file_url_refused")
    parts = urlsplit(ref.url)
    if parts.netloc not in ("", "localhost"):
        raise APIError(f"{_label(ref)}: a file:// URL names a file on this machine (file:///path), "
                       f"not on {parts.netloc!r}", param=ref.param, code="invalid_url")
    path = Path(unquote(parts.path))
    if not path.is_absolute():
        raise APIError(f"{_label(ref)}: a file:// URL needs an absolute path", param=ref.param, code="invalid_url")
    resolved = path.resolve()
    root = allowed_dir.resolve()
    if resolved != root and root not in resolved.parents:
        raise APIError(f"{_label(ref)}: {path} is outside the folder this server may read "
                       "(--allowed-local-media-path)", param=ref.param, code="file_url_refused")
    return resolved
