"""What the serve tests share: the served process's settings, clip writers and request helpers."""

from __future__ import annotations

import base64
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx

API_KEY = "test-key-7f3a"
MODEL = "salmonn-o1-mini"
MAX_VIDEO_SECONDS = 30
MAX_REQUEST_MB = 2
MAX_BATCH_SIZE = 16
TOKENS = {"max_new_tokens": 24, "answer_max_new_tokens": 24}  # short answers keep the suite quick
STARTUP_TIMEOUT_S = 120


@dataclass(frozen=True)
class Clip:
    path: Path
    question: str
    options: list[str]

    def data_url(self) -> str:
        return "data:video/mp4;base64," + base64.b64encode(self.path.read_bytes()).decode()


@dataclass
class Server:
    base_url: str
    media_dir: Path
    log: Path
    process: subprocess.Popen

    def health(self) -> dict:
        response = httpx.get(f"{self.base_url}/health", timeout=10)
        response.raise_for_status()
        return response.json()

    def client(self, **options):
        from openai import OpenAI

        return OpenAI(base_url=f"{self.base_url}/v1", api_key=API_KEY, max_retries=0, timeout=120, **options)

    def post(self, body, key: str | None = API_KEY, **options) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        if not isinstance(body, dict):  # raw bytes, text or a generator of chunks
            return httpx.post(f"{self.base_url}/v1/chat/completions", content=body, timeout=120,
                              headers={**headers, "Content-Type": "application/json"}, **options)
        return httpx.post(f"{self.base_url}/v1/chat/completions", json=body, headers=headers, timeout=120, **options)


def write_avr_clip(path: Path, index: int, audio: bool = True) -> Clip:
    """AVR-Synth test item `index` as an mp4 (4 fps, 64x64: small, and sampled at 2 fps anyway)."""
    from salmonn_o1.data.synthetic.dataset import generate_item
    from salmonn_o1.data.synthetic.render import frame_times, render_audio, render_frames
    from salmonn_o1.data.synthetic.video_io import write_mp4

    sample = generate_item("test", index)
    fps = 4
    frames = render_frames(sample.timeline, frame_times(sample.timeline.duration, fps), 64)
    write_mp4(path, frames, fps, render_audio(sample.timeline) if audio else None)
    return Clip(path, sample.item.question, list(sample.item.options))


def user_message(clip: Clip | None = None, url: str | None = None, text: str | None = None, **extra) -> list[dict]:
    """One user turn: the clip as a video_url (its data: URL unless `url` is given) and its question."""
    content: list[dict] = []
    if clip is not None or url is not None:
        content.append({"type": "video_url", "video_url": {"url": url if url is not None else clip.data_url()}})
    content.append({"type": "text", "text": text if text is not None else clip.question})
    return [{"role": "user", "content": content, **extra}]
