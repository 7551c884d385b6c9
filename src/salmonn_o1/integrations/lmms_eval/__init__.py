"""salmonn-o1 inside lmms-eval, without forking it.

- The model: `salmonn_o1` (`model.SalmonnO1`), registered through lmms-eval's
  `lmms_eval.models` entry-point group (`manifest`), so `lmms-eval --model salmonn_o1`
  finds it once this package is installed.
- The tasks: `avr_synth` and `rivabench`, YAML files shipped in `tasks/`; pass
  `--include_path` the folder `python -m salmonn_o1.integrations.lmms_eval --include-path`
  prints. Their data location comes from environment variables (`task_utils`).

Nothing here imports lmms-eval at module level: the package works without it.
"""

from __future__ import annotations

from pathlib import Path

TASKS_DIR = Path(__file__).parent / "tasks"
MODEL_NAME = "salmonn_o1"


def manifest():
    """The `lmms_eval.models` entry point: lmms-eval calls it while building its model registry."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id=MODEL_NAME, simple_class_path="salmonn_o1.integrations.lmms_eval.model.SalmonnO1")
