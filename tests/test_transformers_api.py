"""transformers' Auto classes load salmonn-o1 checkpoints: after `import salmonn_o1`, or through `auto_map`
with `trust_remote_code=True` in a process that never imports salmonn_o1 itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModelForImageTextToText, AutoModelForMultimodalLM, AutoProcessor

import salmonn_o1
from salmonn_o1.config import SalmonnO1Config
from salmonn_o1.model import SalmonnO1ForConditionalGeneration
from salmonn_o1.processor import SalmonnO1Processor
from salmonn_o1.remote_code import AUTO_MAP, SHIMS

sys.path.insert(0, str(Path(__file__).resolve().parent / "inference"))
from clips import colour_clip, write_tiny_checkpoint  # noqa: E402

MINI = Path(salmonn_o1.__file__).parent / "assets" / "mini"
SRC = str(Path(salmonn_o1.__file__).resolve().parents[1])
QUESTION = "What colour is the screen?"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "model")


def messages(media=None) -> list[dict]:
    content = [{"type": "text", "text": QUESTION}]
    if media is not None:
        content.insert(0, {"type": "video", "video": media})
    return [{"role": "user", "content": content}]


@pytest.mark.parametrize("which", ["mini", "tiny"])
def test_auto_classes_load_a_checkpoint_and_match_the_native_path(which, tiny_dir):
    path = MINI if which == "mini" else tiny_dir
    config = AutoConfig.from_pretrained(path)
    model = AutoModelForMultimodalLM.from_pretrained(path).eval()
    processor = AutoProcessor.from_pretrained(path)
    assert isinstance(config, SalmonnO1Config) and isinstance(processor, SalmonnO1Processor)
    assert isinstance(model, SalmonnO1ForConditionalGeneration)
    assert isinstance(AutoModelForImageTextToText.from_pretrained(path), SalmonnO1ForConditionalGeneration)

    native_model = SalmonnO1ForConditionalGeneration.from_pretrained(path).eval()
    native_processor = SalmonnO1Processor.from_pretrained(path)
    clip = colour_clip(2.0, (0, 0, 255))
    inputs = processor.apply_chat_template(messages(clip), tokenize=True, return_dict=True, return_tensors="pt",
                                           add_generation_prompt=True)
    native = native_processor(text=QUESTION, videos=clip)
    assert torch.equal(inputs["input_ids"], native["input_ids"])
    with torch.no_grad():
        logits = model(**inputs).logits
        native_logits = native_model(input_ids=native["input_ids"], attention_mask=native["attention_mask"],
                                     media=native["media"]).logits
    assert torch.equal(logits, native_logits)
    out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert torch.equal(out, native_model.generate(input_ids=native["input_ids"], attention_mask=native["attention_mask"],
                                                  media=native["media"], max_new_tokens=4, do_sample=False))


def test_a_saved_directory_carries_auto_map_and_its_shims(tiny_dir):
    saved = json.loads((tiny_dir / "config.json").read_text())
    assert saved["auto_map"] == AUTO_MAP
    for module, source in SHIMS.items():
        assert (tiny_dir / f"{module}.py").read_text() == source
    assert "auto_map" not in json.loads((MINI / "config.json").read_text())  # the shipped model: as shipped


def run_fresh(code: str, tmp_path: Path) -> str:
    """Python in a new process with the package importable (as installed) and transformers' module cache in tmp."""
    env = {**os.environ, "PYTHONPATH": SRC, "HF_MODULES_CACHE": str(tmp_path / "modules"), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]
    return run.stdout


def test_trust_remote_code_loads_a_saved_directory_without_importing_salmonn_o1(tiny_dir, tmp_path):
    out = run_fresh(f"""
        import json, os, sys
        import torch
        from transformers import AutoConfig, AutoModelForMultimodalLM, AutoProcessor
        path, again = {str(tiny_dir)!r}, {str(tmp_path / "again")!r}
        assert "salmonn_o1" not in sys.modules
        config = AutoConfig.from_pretrained(path, trust_remote_code=True)
        model = AutoModelForMultimodalLM.from_pretrained(path, trust_remote_code=True).eval()
        processor = AutoProcessor.from_pretrained(path, trust_remote_code=True)
        inputs = processor.apply_chat_template([{{"role": "user", "content": [{{"type": "text", "text": "Hi"}}]}}],
                                               tokenize=True, return_dict=True, add_generation_prompt=True)
        out = model.generate(**inputs, max_new_tokens=3, do_sample=False)
        model.save_pretrained(again)  # the classes loaded through auto_map save shims, not copies of our source
        print(json.dumps({{"classes": [type(o).__module__ + "." + type(o).__name__ for o in (config, model, processor)],
                          "new_tokens": out.shape[1], "files": sorted(os.listdir(again)),
                          "auto_map": json.load(open(os.path.join(again, "config.json")))["auto_map"]}}))
    """, tmp_path)
    result = json.loads(out.strip().splitlines()[-1])
    assert result["classes"] == ["salmonn_o1.config.SalmonnO1Config",
                                 "salmonn_o1.model.modeling.SalmonnO1ForConditionalGeneration",
                                 "salmonn_o1.processor.SalmonnO1Processor"]
    assert 1 <= result["new_tokens"] <= 3 and result["auto_map"] == AUTO_MAP
    assert {f"{module}.py" for module in SHIMS} <= set(result["files"])
    assert not {"config.py", "modeling.py", "processor.py"} & set(result["files"])


def test_registration_works_whether_transformers_or_salmonn_o1_is_imported_first(tmp_path):
    out = run_fresh(f"""
        import sys
        from transformers import AutoConfig, AutoModelForMultimodalLM, AutoProcessor
        AutoModelForMultimodalLM.from_config, AutoProcessor.register  # the Auto modules are loaded
        import salmonn_o1
        path = {str(MINI)!r}
        model = AutoModelForMultimodalLM.from_pretrained(path)
        print(type(AutoConfig.from_pretrained(path)).__name__, type(model).__name__,
              type(AutoProcessor.from_pretrained(path)).__name__)
    """, tmp_path)
    assert out.split() == ["SalmonnO1Config", "SalmonnO1ForConditionalGeneration", "SalmonnO1Processor"]


def test_without_salmonn_o1_or_trust_remote_code_transformers_does_not_know_the_model(tmp_path):
    out = run_fresh(f"""
        import sys
        from transformers import AutoConfig
        try:
            AutoConfig.from_pretrained({str(MINI)!r})
        except ValueError as error:
            print("refused" if "salmonn_o1" in str(error) else error)
        print("salmonn_o1" in sys.modules)
    """, tmp_path)
    assert out.split() == ["refused", "False"]
