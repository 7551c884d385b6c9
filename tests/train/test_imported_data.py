"""`train sft` and `train pdpo` on data imported from LLaMA-Factory's format, with real mp4 clips."""

from __future__ import annotations

import json

from salmonn_o1.chat import IGNORE_INDEX, encode_conversation
from salmonn_o1.cli import main
from salmonn_o1.data.interop import import_records, write_imported
from salmonn_o1.data.schema import read_items
from salmonn_o1.data.synthetic import generate_item, write_sample_mp4
from salmonn_o1.tokenizer import load_tokenizer
from salmonn_o1.train.recipe import load_recipe
from salmonn_o1.train.sft import run_sft
from salmonn_o1.train.sft_data import sft_conversation


def write_clips(folder, indices):
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for index in indices:
        sample = generate_item("train", index)
        write_sample_mp4(sample, folder / f"{sample.item.id}.mp4", fps=4, size=32)
        samples.append(sample.item)
    return samples


def test_train_sft_on_imported_multi_turn_llamafactory_data(tmp_path):
    items = write_clips(tmp_path / "lf" / "clips", [0, 7])
    records = [{"messages": [{"role": "user", "content": f"<video><audio>{item.question}"},
                             {"role": "assistant", "content": f"The answer is {item.answer}."},
                             {"role": "user", "content": "Which clip is this?"},
                             {"role": "assistant", "content": f"Clip {item.id}."}],
                "videos": [f"clips/{item.id}.mp4"], "audios": [f"clips/{item.id}.wav"]} for item in items]
    (tmp_path / "lf" / "train.json").write_text(json.dumps(records))
    out = tmp_path / "imported" / "items.jsonl"
    assert main(["data", "import", "--format", "llamafactory", str(tmp_path / "lf" / "train.json"), str(out)]) == 0

    # every assistant turn of the imported conversation is a target, in either mode
    item = read_items(out, require_answer=True)[0]
    for reasoning in (True, False):
        encoded = encode_conversation(load_tokenizer(), sft_conversation(item, reasoning), media_token_count=4,
                                      add_generation_prompt=False)
        target = load_tokenizer().decode([t for t in encoded.labels if t != IGNORE_INDEX])
        assert f"The answer is {items[0].answer}." in target and f"Clip {items[0].id}." in target
        assert "Which clip" not in target

    recipe = load_recipe(None, ["model.source=tiny", f"data.sources=[{{path: {out}}}]", "optim.max_steps=24",
                                "optim.lr=5e-3", "optim.batch_size=2", "optim.warmup_steps=2", "run.save_every=100",
                                "run.eval_every=0", f"run.out_dir={tmp_path / 'run'}", "data.length_grouping=false",
                                "data.cache_media=4"])
    losses = [h["loss"] for h in run_sft(recipe).history]
    print("sft losses", [round(x, 3) for x in losses])
    assert sum(losses[-4:]) / 4 < 0.5 * sum(losses[:4]) / 4, losses


def test_train_pdpo_on_imported_preference_pairs(tmp_path):
    items = write_clips(tmp_path / "lf" / "clips", [0, 7, 14])
    records = [{"conversations": [{"from": "human", "value": f"<video>{item.question}"}],
                "chosen": {"from": "gpt", "value": f"The answer is {item.answer}."},
                "rejected": {"from": "gpt", "value": "I cannot tell."},
                "videos": [f"clips/{item.id}.mp4"]} for item in items]
    (tmp_path / "lf" / "dpo.json").write_text(json.dumps(records))
    pairs_path = tmp_path / "pairs.jsonl"
    write_imported(import_records(tmp_path / "lf" / "dpo.json", "llamafactory"), pairs_path)
    recipe = tmp_path / "pdpo.yaml"
    recipe.write_text(f"""stage: pdpo
model: {{source: tiny, train: [aligners, llm]}}
data: {{max_length: 2048, length_grouping: false}}
optim: {{lr: 2.0e-3, schedule: constant, batch_size: 3, max_steps: 6, warmup_steps: 0}}
run: {{out_dir: {tmp_path / 'run'}, save_every: 100, eval_every: 0}}
pdpo: {{pairs: {pairs_path}, beta: 0.1}}
""")
    assert main(["train", "pdpo", "--config", str(recipe)]) == 0
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    print("pdpo", [(round(m["loss"], 4), round(m["reward_margin"], 4)) for m in metrics])
    assert not (tmp_path / "run" / "stages" / "rollout.jsonl").exists()  # the stages were not run
    assert metrics[0]["reward_margin"] == 0.0 or abs(metrics[0]["reward_margin"]) < 1e-4  # policy == reference
    assert metrics[-1]["reward_margin"] > 0.05 and metrics[-1]["loss"] < metrics[0]["loss"], metrics
