"""`salmonn_o1.runtime.configure_threads`: the count it picks is the one torch uses, once per process;
`--threads` on the commands; `--help` stays free of torch.

Each case runs in a fresh interpreter: the setting is process-wide and made once, and
OMP_NUM_THREADS is read by OpenMP only when torch loads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from salmonn_o1.cli import main
from salmonn_o1.runtime import SMALL_MODEL_PARAMETERS, available_cores, configure_threads, default_threads

SRC = str(Path(__file__).resolve().parents[1] / "src")


def run_python(code: str, omp: str | None = None) -> dict:
    """`code` (which sets `result`) in a fresh interpreter; OMP_NUM_THREADS as given (None: unset)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = SRC
    if omp is not None:
        env["OMP_NUM_THREADS"] = omp
    wrapped = f"import json, sys\n{code}\nprint(json.dumps(result))"
    done = subprocess.run([sys.executable, "-c", wrapped], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


CONFIGURE = """
from salmonn_o1.runtime import configure_threads, thread_setting
chosen = configure_threads({threads}, num_parameters={parameters}, device={device!r})
import torch
result = {{"chosen": chosen, "torch": torch.get_num_threads(), "reason": thread_setting().reason}}
"""


def configure(threads=None, parameters=None, device="cpu", omp=None) -> dict:
    return run_python(CONFIGURE.format(threads=threads, parameters=parameters, device=device), omp)


def test_a_small_model_on_cpu_gets_one_thread():
    result = configure(parameters=SMALL_MODEL_PARAMETERS // 10)
    assert result["chosen"] == result["torch"] == 1
    assert "default" in result["reason"]


def test_a_big_model_on_cpu_gets_every_core():
    result = configure(parameters=SMALL_MODEL_PARAMETERS * 10)
    assert result["chosen"] == result["torch"] == available_cores()


def test_an_explicit_count_wins_over_omp_num_threads():
    result = configure(threads=1, parameters=SMALL_MODEL_PARAMETERS * 10, omp="2")
    assert result["chosen"] == result["torch"] == 1 and result["reason"] == "--threads"
    result = configure(threads=2, parameters=10, omp="1")
    assert result["chosen"] == result["torch"] == 2


def test_the_user_s_omp_num_threads_is_respected():
    result = configure(parameters=10, omp="2")  # a small model would get 1 by default
    assert result["chosen"] == result["torch"] == 2 and result["reason"] == "OMP_NUM_THREADS"


def test_on_cuda_the_default_leaves_torch_alone():
    result = run_python("import torch\nbefore = torch.get_num_threads()\n"
                        + CONFIGURE.format(threads=None, parameters=10, device="cuda:0")
                        + "\nresult['before'] = before")
    assert result["chosen"] == result["torch"] == result["before"]


def test_the_first_call_decides_and_later_calls_return_its_count():
    result = run_python("from salmonn_o1.runtime import configure_threads\nimport torch\n"
                        "first = configure_threads(1)\nsecond = configure_threads(2)\n"
                        "third = configure_threads(None, num_parameters=10**10)\n"
                        "result = [first, second, third, torch.get_num_threads()]")
    assert result == [1, 1, 1, 1]


def test_before_torch_loads_it_exports_omp_num_threads_for_openmp_and_children():
    result = run_python("import os\nfrom salmonn_o1.runtime import configure_threads\n"
                        "loaded = 'torch' in sys.modules\nconfigure_threads(1)\n"
                        "result = [loaded, os.environ.get('OMP_NUM_THREADS')]", omp=None)
    assert result == [False, "1"]


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_a_bad_count_is_refused(bad):
    with pytest.raises(ValueError, match="threads must be an integer >= 1"):
        configure_threads(bad)


def test_the_default_rule():
    assert default_threads(SMALL_MODEL_PARAMETERS - 1) == 1
    assert default_threads(SMALL_MODEL_PARAMETERS) == available_cores()
    assert default_threads(None) == available_cores()


@pytest.mark.parametrize("argv", [["salmonn-o1", "--help"], ["salmonn-o1", "ask", "--help"],
                                  ["salmonn-o1", "infer", "--help"], ["salmonn-o1", "train", "--help"]])
def test_help_does_not_import_torch(argv):
    result = run_python(
        "import contextlib, io\nfrom salmonn_o1.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    try:\n"
        f"        main({argv[1:]!r})\n"
        "    except SystemExit:\n"
        "        pass\n"
        "result = {'heavy': [m for m in ('torch', 'transformers', 'av', 'numpy') if m in sys.modules], "
        "'help': out.getvalue()}")
    assert result["heavy"] == []
    assert argv[1] == "--help" or "--threads N" in result["help"]


COMMANDS_WITH_THREADS = [
    ["ask", "clip.mp4", "what?"],
    ["infer", "--data", "items.jsonl", "--out", "out.jsonl"],
    ["train", "sft", "--config", "recipe.yaml"],
    ["pdpo", "rollout", "--out", "folder", "--synthetic-split", "dev"],
    ["demo"],
    ["ui"],
]


@pytest.mark.parametrize("command", COMMANDS_WITH_THREADS, ids=lambda c: c[0])
@pytest.mark.parametrize("value, message", [("0", "must be >= 1, got 0"), ("-1", "must be >= 1, got -1"),
                                            ("two", "expected an integer, got 'two'")])
def test_a_bad_threads_value_is_one_usage_error(command, value, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--threads", value])
    assert exit_.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and f"argument --threads: {message}" in errors[0]


def test_training_tells_the_model_size_before_building_it(tmp_path):
    """`train` builds its model late; its thread default comes from the recipe's model source."""
    from salmonn_o1.commands.common import parameters_before_loading

    tiny = parameters_before_loading("tiny")
    assert tiny == 300_608  # counted on the meta device: no weights allocated
    assert parameters_before_loading("video-salmonn-o1-7b") > SMALL_MODEL_PARAMETERS * 10
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 4000)
    assert parameters_before_loading(str(tmp_path)) == 1000
    assert parameters_before_loading(str(tmp_path / "missing")) is None and parameters_before_loading(None) is None


def test_ask_ends_without_the_interpreter_s_teardown_and_loses_no_output(tmp_path):
    """`ask` ends with os._exit after flushing: its last line still arrives, through a pipe too."""
    from salmonn_o1.data.synthetic import generate_item, write_sample_mp4

    sample = generate_item("test", 1)
    write_sample_mp4(sample, tmp_path / "clip.mp4")
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "salmonn_o1", "ask", str(tmp_path / "clip.mp4"), sample.item.question,
                           "--options", *sample.item.options, "--quiet", "--max-new-tokens", "32",
                           "--answer-max-new-tokens", "8"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith("Answer: ")
