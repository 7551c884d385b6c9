"""`salmonn-o1 serve` under load: 16 concurrent clients x 4 requests vs the same 64 requests one at a time.

A real server process (the shipped model, CPU, `--threads`) on a loopback port answers chat
completions with a `video_url` (a data: URL of one of four AVR-Synth clips) through the `openai`
client. Each round sends the 64 requests sequentially and concurrently (the order alternates
from round to round, so drift on a shared machine falls on both); throughput is requests per
second of wall time, latency is per request. The clips are asked about once before timing, so
both modes read their features from the server's media cache, as repeated clips would in use.
Every answer is checked against the sequential answer to the same request (greedy decoding).

Prints a table and writes JSON (default benchmarks/results/bench_serve.json).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from openai import OpenAI

MODEL = "salmonn-o1-mini"
CLIP_INDICES = (1, 4, 6, 7)  # AVR-Synth test items: two counting, one sound-order, one alignment question


def write_clips(folder: Path) -> list[dict]:
    from salmonn_o1.data.synthetic.dataset import generate_item
    from salmonn_o1.data.synthetic.render import frame_times, render_audio, render_frames
    from salmonn_o1.data.synthetic.video_io import write_mp4

    clips = []
    for index in CLIP_INDICES:
        sample = generate_item("test", index)
        path = write_mp4(folder / f"avr-test-{index}.mp4",
                         render_frames(sample.timeline, frame_times(sample.timeline.duration, 4), 64), 4,
                         render_audio(sample.timeline))
        clips.append({"url": "data:video/mp4;base64," + base64.b64encode(path.read_bytes()).decode(),
                      "question": sample.item.question, "options": sample.item.options})
    return clips


def start_server(port: int, threads: int, max_batch_size: int, log: Path) -> subprocess.Popen:
    source = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": str(threads)}
    command = [sys.executable, "-m", "salmonn_o1", "serve", "--port", str(port), "--threads", str(threads),
               "--max-batch-size", str(max_batch_size), "--quiet", "--log-level", "warning"]
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited:\n{log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit(f"the server did not start:\n{log.read_text()}")


def ask(client: OpenAI, clip: dict, max_tokens: int) -> tuple[float, str]:
    started = time.perf_counter()
    response = client.chat.completions.create(
        model=MODEL, temperature=0, max_tokens=max_tokens, extra_body={"options": clip["options"]},
        messages=[{"role": "user", "content": [{"type": "video_url", "video_url": {"url": clip["url"]}},
                                               {"type": "text", "text": clip["question"]}]}])
    message = response.choices[0].message
    text = f"{(message.model_extra or {}).get('reasoning_content')}\n{message.content}"
    return time.perf_counter() - started, text


def run_sequential(base_url: str, requests: list[dict], max_tokens: int) -> tuple[float, list[tuple[float, str]]]:
    client = OpenAI(base_url=base_url, api_key="none", max_retries=0, timeout=600)
    started = time.perf_counter()
    answers = [ask(client, clip, max_tokens) for clip in requests]
    return time.perf_counter() - started, answers


def run_concurrent(base_url: str, requests: list[dict], clients: int, max_tokens: int):
    share = [requests[i::clients] for i in range(clients)]  # client i sends requests i, i + clients, ...

    def one_client(mine: list[dict]) -> list[tuple[float, str]]:
        client = OpenAI(base_url=base_url, api_key="none", max_retries=0, timeout=600)
        return [ask(client, clip, max_tokens) for clip in mine]

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        per_client = list(pool.map(one_client, share))
    wall = time.perf_counter() - started
    answers: list = [None] * len(requests)
    for i, rows in enumerate(per_client):
        for j, row in enumerate(rows):
            answers[i + j * clients] = row
    return wall, answers


def summary(name: str, walls: list[float], latencies: list[float], count: int) -> dict:
    wall = float(np.sum(walls))
    return {"mode": name, "requests": count * len(walls), "wall_s": wall, "requests_per_s": count * len(walls) / wall,
            "p50_latency_s": float(np.percentile(latencies, 50)), "p95_latency_s": float(np.percentile(latencies, 95))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests-per-client", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=32, help="tokens per turn (few: a quick run)")
    parser.add_argument("--rounds", type=int, default=2, help="A/B rounds (the order alternates)")
    parser.add_argument("--threads", type=int, default=1,
                        help="the server's torch threads (default 1: on a 2-core box the 16 clients and the "
                             "HTTP work need the other core)")
    parser.add_argument("--out", default="benchmarks/results/bench_serve.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        clips = write_clips(Path(folder))
        total = args.clients * args.requests_per_client
        requests = [clips[i % len(clips)] for i in range(total)]
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        log = Path(folder) / "serve.log"
        server = start_server(port, args.threads, args.clients, log)
        base_url = f"http://127.0.0.1:{port}/v1"
        try:
            warm = OpenAI(base_url=base_url, api_key="none", max_retries=0, timeout=600)
            reference = {id(clip): ask(warm, clip, args.max_tokens)[1] for clip in clips}  # fills the media cache
            walls: dict[str, list[float]] = {"sequential": [], "concurrent": []}
            latencies: dict[str, list[float]] = {"sequential": [], "concurrent": []}
            wrong = 0
            for round_index in range(args.rounds):
                order = ["sequential", "concurrent"] if round_index % 2 == 0 else ["concurrent", "sequential"]
                for mode in order:
                    if mode == "sequential":
                        wall, answers = run_sequential(base_url, requests, args.max_tokens)
                    else:
                        wall, answers = run_concurrent(base_url, requests, args.clients, args.max_tokens)
                    walls[mode].append(wall)
                    latencies[mode] += [latency for latency, _ in answers]
                    wrong += sum(text != reference[id(clip)] for clip, (_, text) in zip(requests, answers))
                    print(f"round {round_index + 1} {mode:>10}: {wall:6.2f} s", flush=True)
            health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).json()
        finally:
            server.terminate()
            server.wait(timeout=30)

    rows = [summary(mode, walls[mode], latencies[mode], total) for mode in ("sequential", "concurrent")]
    speedup = rows[1]["requests_per_s"] / rows[0]["requests_per_s"]
    print(f"\n{total} requests ({args.clients} clients x {args.requests_per_client} vs one at a time), "
          f"max_tokens {args.max_tokens}, server --threads {args.threads}, {args.rounds} rounds, {os.cpu_count()} CPUs")
    print(f"{'mode':<12}{'req/s':>8}{'p50 s':>8}{'p95 s':>8}")
    for row in rows:
        print(f"{row['mode']:<12}{row['requests_per_s']:>8.2f}{row['p50_latency_s']:>8.2f}{row['p95_latency_s']:>8.2f}")
    print(f"throughput, concurrent / sequential: {speedup:.2f}x; answers differing from the reference: {wrong}; "
          f"batches {health['batches']}, largest {health['largest_batch']} rows")
    out = {"args": vars(args), "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
           "rows": rows, "speedup": speedup, "wrong_answers": wrong,
           "server": {key: health[key] for key in ("batches", "requests", "rows", "largest_batch")}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
