"""Media decoding speed: the seek-based decoder against decoding every frame.

Generates H.264 + AAC videos of several durations (640x360, 25 fps, a scrolling
texture so that frames cost something to decode), then for each one measures

- "seek": `salmonn_o1.media.load_media` (2 fps / at most 60 frames by timestamp,
  seeking when the next frame is far ahead), then the features
  (SigLIP pixel values at 384, Whisper 128-mel log-mel chunks);
- "full": the naive way, decoding every frame to RGB and keeping the sampled
  indices afterwards (what decoding a whole video and subsampling does), plus
  the same audio decode and features. Only the kept frames stay in memory, so
  this is a lower bound on the naive cost.

Reported per video: wall time of decode and of features, frames decoded and
decoded frames/s. The goal: the 10-minute video costs less than 3x the 60 s one
(seek), at the usual 2 s keyframe interval; --gop can add the x264 default of
250 frames (10 s) to see what long GOPs cost.

Prints a table and writes JSON (default benchmarks/results/bench_media.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

import salmonn_o1.media as media
from salmonn_o1.features import audio_to_features, frames_to_pixel_values
from salmonn_o1.media_types import SAMPLE_RATE

FPS = 25


def texture(width: int, height: int, margin: int) -> np.ndarray:
    """A smooth, detailed RGB pattern larger than the frame (sum of sinusoids plus mild noise)."""
    y, x = np.mgrid[0:height + margin, 0:width + margin].astype(np.float32)
    rng = np.random.default_rng(0)
    image = np.zeros(y.shape + (3,), np.float32)
    for c in range(3):
        for _ in range(6):
            fx, fy, phase = rng.uniform(0.005, 0.08), rng.uniform(0.005, 0.08), rng.uniform(0, 6.3)
            image[..., c] += np.sin(fx * x + fy * y + phase)
    image = (image - image.min()) / (image.max() - image.min()) * 220 + 16
    image += rng.normal(0, 4, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_clip(path: Path, seconds: float, width: int, height: int, gop: int) -> float:
    """Scrolling texture + a moving bar at 25 fps (libx264 veryfast), 440 Hz mono AAC at 48 kHz."""
    start = time.perf_counter()
    margin = 200
    base = texture(width, height, margin)
    frames = int(round(seconds * FPS))
    per_frame = 48_000 // FPS
    t = np.arange(per_frame) / 48_000
    with av.open(str(path), "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "veryfast", "crf": "23", "g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"}
        sound = out.add_stream("aac", rate=48_000, layout="mono")
        for i in range(frames):
            ox, oy = (3 * i) % margin, (i // 2) % margin
            image = np.ascontiguousarray(base[oy:oy + height, ox:ox + width])
            bar = (7 * i) % (width - 40)
            image[:, bar:bar + 40] = 255 - image[:, bar:bar + 40]
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            for packet in video.encode(frame):
                out.mux(packet)
            wave = (0.3 * np.sin(2 * np.pi * 440 * (t + i / FPS))).astype(np.float32)[None]
            chunk = av.AudioFrame.from_ndarray(wave, format="flt", layout="mono")
            chunk.sample_rate, chunk.pts = 48_000, i * per_frame
            for packet in sound.encode(chunk):
                out.mux(packet)
        for stream in (video, sound):
            for packet in stream.encode(None):
                out.mux(packet)
    return time.perf_counter() - start


class FrameCounter:
    """Counts the frames the seek-based decoder pulls out of the codec."""

    def __init__(self):
        self.count = 0
        self._next = media._Seekable.__next__

    def __enter__(self):
        counter, original = self, self._next

        def counting(source):
            item = original(source)
            counter.count += 1
            return item

        media._Seekable.__next__ = counting
        return self

    def __exit__(self, *exc):
        media._Seekable.__next__ = self._next


def features(frames: np.ndarray, audio: np.ndarray, duration: float) -> tuple[torch.Tensor, torch.Tensor]:
    pixels = frames_to_pixel_values(frames, 384)
    mels = audio_to_features(audio[: int(round(duration * SAMPLE_RATE))], num_mel_bins=128)
    return pixels, mels


def run_seek(path: Path) -> dict:
    with FrameCounter() as counter:
        start = time.perf_counter()
        decoded = media.load_media(path)
        decode_s = time.perf_counter() - start
    start = time.perf_counter()
    pixels, mels = features(decoded.frames, decoded.audio, decoded.duration)
    return {"decode_s": decode_s, "features_s": time.perf_counter() - start, "frames_decoded": counter.count,
            "frames_kept": decoded.num_frames, "chunks": int(mels.shape[0]), "times": decoded.frame_times}


def run_full(path: Path) -> dict:
    start = time.perf_counter()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        native = float(stream.average_rate)
        duration = float(stream.duration * stream.time_base)
        wanted = set((media.sample_frame_times(duration, native) * native).round().astype(int).tolist())
        kept, times, count = [], [], 0
        for index, frame in enumerate(container.decode(stream)):
            image = frame.to_ndarray(format="rgb24")  # decode-all-then-subsample converts every frame
            count += 1
            if index in wanted:
                kept.append(image)
                times.append(frame.time)
        audio = media._decode_audio(container, path)
    decode_s = time.perf_counter() - start
    start = time.perf_counter()
    pixels, mels = features(np.stack(kept), audio, duration)
    return {"decode_s": decode_s, "features_s": time.perf_counter() - start, "frames_decoded": count,
            "frames_kept": len(kept), "chunks": int(mels.shape[0]), "times": np.asarray(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--durations", type=float, nargs="+", default=[10.0, 60.0, 600.0])
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--gop", type=int, nargs="+", default=[50], help="keyframe interval(s) in frames")
    parser.add_argument("--workdir", default=None, help="where to write the videos (default: a temp dir)")
    parser.add_argument("--out", default="benchmarks/results/bench_media.json")
    args = parser.parse_args()
    torch.set_num_threads(2)
    width, height = (int(v) for v in args.size.split("x"))
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_media_"))
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    header = (f"{'video':>13} {'gop':>4} {'method':>6} {'decode s':>9} {'feat s':>7} {'total s':>8} "
              f"{'decoded':>8} {'frames/s':>9} {'kept':>5}")
    print(header)
    print("-" * len(header))
    for gop in args.gop:
        for seconds in args.durations:
            path = workdir / f"clip_{int(seconds)}s_{width}x{height}_g{gop}.mp4"
            encode_s = write_clip(path, seconds, width, height, gop) if not path.exists() else None
            seek, full = run_seek(path), run_full(path)
            same = bool(np.allclose(seek.pop("times"), full.pop("times"), atol=1e-3))
            for method, result in (("seek", seek), ("full", full)):
                total = result["decode_s"] + result["features_s"]
                row = {"video_s": seconds, "size": args.size, "fps": FPS, "gop_frames": gop, "method": method,
                       **result, "total_s": total, "decoded_frames_per_s": result["frames_decoded"] / result["decode_s"],
                       "same_frames_as_other_method": same, "encode_s": encode_s,
                       "file_mb": path.stat().st_size / 1e6}
                rows.append(row)
                print(f"{seconds:>12.0f}s {gop:>4} {method:>6} {result['decode_s']:>9.2f} {result['features_s']:>7.2f} "
                      f"{total:>8.2f} {result['frames_decoded']:>8} {row['decoded_frames_per_s']:>9.0f} "
                      f"{result['frames_kept']:>5}")
    summary = {}
    for gop in args.gop:
        seek = {r["video_s"]: r["total_s"] for r in rows if r["method"] == "seek" and r["gop_frames"] == gop}
        if 60.0 in seek and 600.0 in seek:
            ratio = seek[600.0] / seek[60.0]
            summary[f"gop{gop}_600s_over_60s"] = ratio
            print(f"GOP {gop}: 10-minute / 60 s (seek, decode + features) = {ratio:.2f}x (goal < 3x)")
    result = {
        "args": vars(args),
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_avg": os.getloadavg(), "torch_threads": torch.get_num_threads(), "av": av.__version__},
        "rows": rows,
        "summary": summary,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
