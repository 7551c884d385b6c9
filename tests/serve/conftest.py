"""A real `salmonn-o1 serve` process on a free loopback port, the shipped model, and real clips.

One server per test session (per xdist worker), started as `python -m salmonn_o1 serve` from the
sources under test, with an API key, a media folder for file:// URLs and small limits the error
tests run into. The clips are AVR-Synth items written as H.264 + AAC mp4 files (what the shipped
model was trained on, so its answers are its real ones).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import salmonn_o1

from local_server import free_port, stop, wait_until_ready
from serving import (
    API_KEY,
    MAX_BATCH_SIZE,
    MAX_REQUEST_MB,
    MAX_VIDEO_SECONDS,
    STARTUP_TIMEOUT_S,
    Clip,
    Server,
    write_avr_clip,
)


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("served-media")


@pytest.fixture(scope="session")
def counting_clip(media_dir) -> Clip:
    return write_avr_clip(media_dir / "counting.mp4", 1)


@pytest.fixture(scope="session")
def sound_clip(media_dir) -> Clip:
    return write_avr_clip(media_dir / "sounds.mp4", 4)


@pytest.fixture(scope="session")
def server(tmp_path_factory, media_dir, request) -> Server:
    log = tmp_path_factory.mktemp("server") / "serve.log"
    port = free_port()
    source = str(Path(salmonn_o1.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "salmonn_o1", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--api-key", API_KEY, "--allowed-local-media-path", str(media_dir),
               "--max-video-seconds", str(MAX_VIDEO_SECONDS), "--max-request-mb", str(MAX_REQUEST_MB),
               "--max-batch-size", str(MAX_BATCH_SIZE), "--batch-wait-ms", "20", "--threads", "1",
               "--quiet", "--log-level", "warning"]
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    served = Server(f"http://127.0.0.1:{port}", media_dir, log, process)
    request.getfixturevalue("pipeline")  # loads in this process while the server starts in its own
    def healthy() -> bool:
        try:
            return served.health()["status"] == "ok"
        except httpx.HTTPError:
            return False

    wait_until_ready(process, healthy, log, "the server", STARTUP_TIMEOUT_S)
    yield served
    stop(process)
    text = log.read_text()
    assert "Traceback" not in text, f"the server logged a traceback:\n{text}"


@pytest.fixture(scope="session")
def pipeline():
    """The same shipped model in this process: what the server's answers must equal."""
    from salmonn_o1.inference import SalmonnO1Pipeline

    return SalmonnO1Pipeline.from_pretrained(device="cpu")


@pytest.fixture(scope="session")
def reference(pipeline):
    """`reference(path, question, options, **generation)`: the in-process pipeline's answer, each file decoded
    once, on one thread (the server runs beside it on a small shared machine: two threads each would
    oversubscribe the cores, and torch's spinning threads then run many times slower)."""
    import torch

    features = {}

    def ask(path: Path, question: str, options: list[str] | None = None, **generation):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            if path not in features:
                features[path] = pipeline.features(path)
            return pipeline.ask(features[path], question, options, **generation)
        finally:
            torch.set_num_threads(threads)

    return ask
