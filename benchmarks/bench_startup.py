"""Start-up cost and short-clip `ask` with 1 vs 2 threads: what a user waits for on one question.

Measured in fresh subprocesses (each import is a process's first): wall seconds of
`import salmonn_o1`, `import salmonn_o1.inference`, `salmonn-o1 ask --help`, and
`salmonn-o1 ask` end to end on a short generated AVR-Synth clip with the shipped model at
`--threads 1` and `--threads 2` (interleaved, A/B/A/B), with the decode rate its --json reports.
One `-X importtime` run splits `import salmonn_o1.inference` by package. Prints a table and
writes JSON (default benchmarks/results/bench_startup.json).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_startup.py [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    return {**env, "PYTHONPATH": f"{SRC}{os.pathsep}{env.get('PYTHONPATH', '')}".rstrip(os.pathsep)}


def wall(command: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=environment(), check=True)
    return time.perf_counter() - start, done.stdout


def import_breakdown(module: str) -> dict[str, float]:
    """Cumulative import seconds of the big packages under `module` (-X importtime, one run)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], capture_output=True,
                          text=True, env=environment(), check=True)
    wanted = {"torch", "transformers", "salmonn_o1.model.modeling", "numpy", module}
    seconds: dict[str, float] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        _, cumulative, name = line.split("|")
        name = name.strip()
        if name in wanted:
            seconds[name] = max(seconds.get(name, 0.0), int(cumulative) / 1e6)
    return {name: round(value, 3) for name, value in sorted(seconds.items(), key=lambda kv: -kv[1])}


def write_clip(folder: Path) -> tuple[Path, dict]:
    sys.path.insert(0, str(SRC))
    from salmonn_o1.data.synthetic import generate_item, write_sample_mp4

    sample = generate_item("test", 0)
    path = folder / "clip.mp4"
    write_sample_mp4(sample, path)
    return path, {"question": sample.item.question, "options": sample.item.options}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", default="1,2", help="thread counts for the `ask` runs (default 1,2)")
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--out", default="benchmarks/results/bench_startup.json")
    args = parser.parse_args()
    python = sys.executable
    rows = []

    def timed(label: str, command: list[str], repeats: int) -> None:
        seconds = [wall(command)[0] for _ in range(repeats)]
        rows.append({"what": label, "wall_s": round(statistics.median(seconds), 3),
                     "runs": [round(s, 3) for s in seconds]})
        print(json.dumps(rows[-1]), flush=True)

    timed("python -c pass", [python, "-c", "pass"], args.repeats + 1)
    timed("import salmonn_o1", [python, "-c", "import salmonn_o1"], args.repeats + 1)
    timed("salmonn-o1 ask --help", [python, "-m", "salmonn_o1", "ask", "--help"], args.repeats + 1)
    timed("import torch", [python, "-c", "import torch"], args.repeats)
    timed("import salmonn_o1.inference", [python, "-c", "import salmonn_o1.inference"], args.repeats)
    breakdown = import_breakdown("salmonn_o1.inference")
    print(json.dumps({"import salmonn_o1.inference, cumulative s": breakdown}), flush=True)

    counts = [int(t) for t in args.threads.split(",")]
    asks: dict[int, list[dict]] = {t: [] for t in counts}
    with tempfile.TemporaryDirectory() as folder:
        clip, item = write_clip(Path(folder))
        for _ in range(args.repeats):
            for threads in counts:  # interleaved: each count sees the same machine load
                seconds, out = wall([python, "-m", "salmonn_o1", "ask", str(clip), item["question"], "--options",
                                     *item["options"], "--json", "--quiet", "--threads", str(threads),
                                     "--max-new-tokens", str(args.max_new_tokens), "--answer-max-new-tokens", "16"])
                result = json.loads(out)
                tokens = result["tokens"]["reasoning"] + result["tokens"]["answer"]
                decode_s = result["timings"]["reasoning_s"] + result["timings"]["answer_s"]
                asks[threads].append({"wall_s": seconds, "ready_s": result["runtime"]["load_s"],
                                      "generate_s": result["timings"]["total_s"], "tokens": tokens,
                                      "decode_tokens_per_s": tokens / decode_s,
                                      "torch_threads": result["runtime"]["threads"]})
                print(json.dumps({"threads": threads, **asks[threads][-1]}), flush=True)
    for threads in counts:
        runs = asks[threads]
        rows.append({"what": f"ask, --threads {threads}",
                     "wall_s": round(statistics.median(r["wall_s"] for r in runs), 3),
                     "ready_s": round(statistics.median(r["ready_s"] for r in runs), 3),
                     "generate_s": round(statistics.median(r["generate_s"] for r in runs), 3),
                     "decode_tokens_per_s": round(statistics.median(r["decode_tokens_per_s"] for r in runs), 1),
                     "runs": [{k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()} for r in runs]})

    print(f"\n{'what':30} {'wall s':>7} {'ready s':>8} {'generate s':>10} {'decode tok/s':>12}")
    for row in rows:
        print(f"{row['what']:30} {row['wall_s']:7} {row.get('ready_s', ''):>8} {row.get('generate_s', ''):>10} "
              f"{row.get('decode_tokens_per_s', ''):>12}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": platform.platform(), "cpu_count": os.cpu_count(),
                               "load_average_at_end": os.getloadavg(), "repeats": args.repeats,
                               "max_new_tokens": args.max_new_tokens, "rows": rows,
                               "import_salmonn_o1_inference_cumulative_s": breakdown,
                               "note": "ready_s: the model load, torch and transformers imports included"},
                              indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
