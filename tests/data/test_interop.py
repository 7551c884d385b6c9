"""Importers (LLaMA-Factory, ms-swift, video-SALMONN 2, via JSON/JSONL/parquet/saved datasets) and
exporters (TRL preference and stepwise supervision) on records written here in each tool's shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from salmonn_o1.cli import main
from salmonn_o1.data.interop import CONVERSATION, export_file, export_records, import_records, write_imported
from salmonn_o1.data.schema import Item, read_items
from salmonn_o1.errors import DataError


def write_json(path: Path, records) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records))
    return path


def write_jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def touch(folder: Path, *names: str) -> None:
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"")


LF_SFT = [  # LLaMA-Factory mllm_video_audio_demo shape, one record multi-turn
    {"messages": [{"role": "user", "content": "<video><audio>What is the video describing?"},
                  {"role": "assistant", "content": "A girl is playing the guitar."},
                  {"role": "user", "content": "What colour is the guitar?"},
                  {"role": "assistant", "content": "Red."}],
     "videos": ["media/4.mp4"], "audios": ["media/4.mp3"]},
    {"conversations": [{"from": "human", "value": "Who speaks? <audio>"}, {"from": "gpt", "value": "A man."}],
     "system": "You are a careful listener.", "audios": ["media/a.wav"]},
    {"messages": [{"role": "user", "content": "<image>What is shown?"},
                  {"role": "assistant", "content": "A cat."}], "images": ["media/c.png"]},
]


def test_llamafactory_sft_records_become_items_with_their_conversations(tmp_path):
    path = write_json(tmp_path / "lf" / "data.json", LF_SFT)
    items = import_records(path, "llamafactory")
    assert all(isinstance(i, Item) for i in items)
    video, audio, image = items
    assert video.video == str((tmp_path / "lf" / "media/4.mp4").resolve())
    assert video.extras["ignored_audio"].endswith("4.mp3")  # the video's own track is used
    assert video.question == "What is the video describing?" and video.answer == "Red."
    assert video.extras[CONVERSATION] == [
        {"role": "user", "content": "<image>What is the video describing?"},
        {"role": "assistant", "content": "A girl is playing the guitar."},
        {"role": "user", "content": "What colour is the guitar?"}, {"role": "assistant", "content": "Red."}]
    assert audio.video.endswith("media/a.wav") and audio.extras["media_kind"] == "audio"
    assert audio.extras[CONVERSATION][0] == {"role": "system", "content": "You are a careful listener."}
    assert audio.extras[CONVERSATION][1]["content"] == "Who speaks? <image>"
    assert image.extras["media_kind"] == "image"

    out = tmp_path / "out" / "items.jsonl"
    write_imported(items, out)
    again = read_items(out, require_answer=True)  # the file `train sft` reads, paths relative to it
    assert [str(Path(i.video).resolve()) for i in again] == [i.video for i in items]
    assert [i.extras[CONVERSATION] for i in again] == [i.extras[CONVERSATION] for i in items]


def test_llamafactory_alpaca_shape(tmp_path):
    records = [{"instruction": "<audio>What is said?", "input": "Answer briefly.", "output": "Hello.",
                "history": [["Is there speech?", "Yes."]], "audios": ["s.wav"]}]
    item = import_records(write_json(tmp_path / "alpaca.json", records), "llamafactory")[0]
    assert [m["content"] for m in item.extras[CONVERSATION]] == [
        "Is there speech?", "Yes.", "<image>What is said?\nAnswer briefly.", "Hello."]
    pair = import_records(write_json(tmp_path / "alpaca_dpo.json", [
        {"instruction": "Say yes.", "chosen": "Yes.", "rejected": "No."}]), "llamafactory")[0]
    assert (pair["prompt"], pair["chosen"]["text"], pair["rejected"]["text"]) == ("Say yes.", "Yes.", "No.")
    with pytest.raises(DataError, match=r"alpaca_bad.json record 0: field 'history' entry 0"):
        import_records(write_json(tmp_path / "alpaca_bad.json", [{"instruction": "q", "output": "a",
                                                                  "history": ["q0"]}]), "llamafactory")


def test_separate_audio_can_be_refused_and_media_rules_name_the_field(tmp_path):
    path = write_json(tmp_path / "data.json", LF_SFT[:1])
    with pytest.raises(DataError, match=r"data.json record 0: fields 'videos' and 'audios' are both given"):
        import_records(path, "llamafactory", separate_audio="error")
    two = write_json(tmp_path / "two.json", [{**LF_SFT[0], "videos": ["a.mp4", "b.mp4"], "audios": []}])
    with pytest.raises(DataError, match=r"two.json record 0: field 'videos' has 2 entries"):
        import_records(two, "llamafactory")
    untagged = [{"messages": [{"role": "user", "content": "<video>hi"}, {"role": "assistant", "content": "x"}]}]
    with pytest.raises(DataError, match=r"t.json record 0: field 'messages' has 1 <video> tag\(s\) for 0 file"):
        import_records(write_json(tmp_path / "t.json", untagged), "llamafactory")


@pytest.mark.parametrize("record, message", [
    ({"messages": [{"role": "user", "content": "q"}]}, r"record 1: field 'messages' must end with an assistant"),
    ({"messages": [{"role": "tool", "content": "q"}]}, r"record 1: field 'messages' turn 0: role 'tool'"),
    ({"messages": [{"role": "user", "content": 3}]}, r"record 1: field 'messages' turn 0: 'content'"),
    ({"videos": ["a.mp4"]}, r"record 1: missing field 'messages'"),
    ({"conversations": [{"from": "human", "value": "q"}], "chosen": {"from": "gpt", "value": "a"}},
     r"record 1: missing field 'rejected'"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
      "images": [3]}, r"record 1: field 'images' must be a path"),
])
def test_errors_name_file_record_and_field(tmp_path, record, message):
    good = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    path = write_json(tmp_path / "bad.json", [good, record])
    with pytest.raises(DataError, match="bad.json " + message):
        import_records(path, "llamafactory")
    assert main(["data", "import", "--format", "llamafactory", str(path), str(tmp_path / "o.jsonl")]) == 2


LF_DPO = [{"conversations": [{"from": "human", "value": "<video>Which colour flashes first?"}],
           "chosen": {"from": "gpt", "value": "1. Red flashes at 0 s.\nThe answer is A."},
           "rejected": {"from": "gpt", "value": "1. Blue flashes at 0 s.\nThe answer is B."},
           "videos": ["clip.mp4"]},
          {"messages": [{"role": "user", "content": "Say yes."}],
           "chosen": {"role": "assistant", "content": "Yes."}, "rejected": {"role": "assistant", "content": "No."}}]


def test_preference_records_become_full_path_pairs_and_round_trip_through_trl(tmp_path):
    path = write_json(tmp_path / "dpo.json", LF_DPO)
    pairs = import_records(path, "llamafactory")
    first = pairs[0]
    assert first["kind"] == "path" and first["prefix"] == [] and first["label"] == 1.0
    assert first["prompt"] == "<image>Which colour flashes first?"
    assert first["media"] == {"path": str((tmp_path / "clip.mp4").resolve())}
    assert first["chosen"] == {"text": "1. Red flashes at 0 s.\nThe answer is A.", "ends_turn": True, "value": None}
    assert pairs[1]["media"] is None and pairs[1]["prompt"] == "Say yes."

    write_imported(pairs, tmp_path / "pairs.jsonl")
    assert export_file(tmp_path / "pairs.jsonl", "trl-preference", tmp_path / "trl.jsonl") == 2
    rows = [json.loads(line) for line in (tmp_path / "trl.jsonl").read_text().splitlines()]
    assert rows[0]["prompt"] == [{"role": "user", "content": "<video>Which colour flashes first?"}]
    assert rows[0]["videos"] == [first["media"]["path"]] and "videos" not in rows[1]
    # TRL's conversational preference rows are LLaMA-Factory/ms-swift-shaped enough to import again
    back = [{"messages": r["prompt"], "chosen": r["chosen"][0], "rejected": r["rejected"][0],
             **{k: r[k] for k in ("videos",) if k in r}} for r in rows]
    again = import_records(write_json(tmp_path / "back.json", back), "llamafactory")
    for a, b in zip(again, pairs):
        assert (a["prompt"], a["chosen"], a["rejected"], a["media"]) == (b["prompt"], b["chosen"], b["rejected"],
                                                                         b["media"])


def test_ms_swift_sft_and_rejected_response(tmp_path):
    records = [{"messages": [{"role": "system", "content": "Be brief."},
                             {"role": "user", "content": "<audio>What is the sound?"},
                             {"role": "assistant", "content": "A dog barking."}],
                "audios": "sounds/dog.wav"},
               {"messages": [{"role": "user", "content": "<video>Is it raining?"},
                             {"role": "assistant", "content": "YES"}],
                "videos": ["rain.mp4"], "rejected_response": "NO"}]
    sft = import_records(write_jsonl(tmp_path / "swift.jsonl", records[:1]), "ms-swift")
    assert sft[0].video.endswith("sounds/dog.wav") and sft[0].extras[CONVERSATION][0]["role"] == "system"
    pairs = import_records(write_json(tmp_path / "swift_dpo.json", records[1:]), "ms-swift")
    assert pairs[0]["chosen"]["text"] == "YES" and pairs[0]["rejected"]["text"] == "NO"
    assert pairs[0]["prompt"] == "<image>Is it raining?"
    with pytest.raises(DataError, match=r"swift_mixed.json record 1: is a preference record after SFT"):
        import_records(write_json(tmp_path / "swift_mixed.json", records), "ms-swift")


def test_video_salmonn2_sft_and_reject_gpt(tmp_path):
    records = [{"video": "v/1.mp4", "audio": "v/1.wav",
                "conversations": [{"from": "human", "value": "<image>\nPlease describe the video in detail."},
                                  {"from": "gpt", "value": "A man plays piano while it rains."}]},
               {"video": "v/2.mp4",
                "conversations": [{"from": "human", "value": "<image>\nDescribe the video."},
                                  {"from": "gpt", "value": "A red car drives by."},
                                  {"from": "reject_gpt", "value": "A blue bus stops."}]}]
    sft = import_records(write_json(tmp_path / "vs2.json", records[:1]), "video-salmonn2")
    assert sft[0].video.endswith("v/1.mp4") and sft[0].extras["ignored_audio"].endswith("v/1.wav")
    assert sft[0].question == "Please describe the video in detail."
    pairs = import_records(write_json(tmp_path / "vs2_dpo.json", records[1:]), "video-salmonn2")
    assert (pairs[0]["chosen"]["text"], pairs[0]["rejected"]["text"]) == ("A red car drives by.", "A blue bus stops.")
    bad = [{**records[1], "conversations": [*records[1]["conversations"][:1], records[1]["conversations"][2]]}]
    with pytest.raises(DataError, match=r"vs2_bad.json record 0: field 'conversations': one 'reject_gpt' turn"):
        import_records(write_json(tmp_path / "vs2_bad.json", bad), "video-salmonn2")


def test_hugging_face_datasets_parquet_and_saved_folder(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = [{"messages": r["messages"], "images": r["images"]} for r in LF_SFT[2:]]
    dataset = datasets.Dataset.from_list(rows)
    dataset.to_parquet(str(tmp_path / "d.parquet"))
    dataset.save_to_disk(str(tmp_path / "saved"))
    touch(tmp_path, "media/c.png")
    from_parquet = import_records(tmp_path / "d.parquet", "llamafactory")
    from_disk = import_records(tmp_path / "saved", "llamafactory", media_dir=tmp_path)
    from_memory = import_records(dataset, "llamafactory", media_dir=tmp_path)
    assert from_parquet[0].video == from_disk[0].video == from_memory[0].video == str(tmp_path / "media/c.png")
    assert from_parquet[0].extras[CONVERSATION] == from_disk[0].extras[CONVERSATION]
    # a parquet of mixed-shape rows: columns a row lacks come back as None
    mixed = datasets.Dataset.from_list([{**LF_SFT[1], "messages": None, "images": None},
                                        {**LF_SFT[2], "conversations": None, "system": None, "audios": None}])
    mixed.to_parquet(str(tmp_path / "mixed.parquet"))
    audio, image = import_records(tmp_path / "mixed.parquet", "llamafactory")
    assert audio.extras["media_kind"] == "audio" and image.extras["media_kind"] == "image"
    assert import_records(datasets.DatasetDict({"train": dataset}), "llamafactory")[0].answer == "A cat."
    with pytest.raises(DataError, match="not a dataset folder"):
        import_records(tmp_path / "media", "llamafactory")


LABEL_RECORD = {  # one label-stage record (pdpo label.jsonl), as the stage writes it
    "id": "q1", "question": "Which first?", "options": ["red", "blue"], "reference": "A",
    "prompt": "Which first?\nA. red\nB. blue", "media": {"path": "/data/clip.mp4"}, "selection": "contrastive",
    "cost": {}, "steps": [
        {"path": 0, "path_correct": False, "step_index": 1, "kl": 0.3, "prefix": ["1. Red shows at 0 s.<step>\n"],
         "original": {"text": "2. Blue shows at 0 s.<step>\n", "ends_turn": False, "value": 0.0},
         "alternative": {"text": "2. Blue shows at 2 s.<step>\n", "ends_turn": False, "value": 0.5}},
        {"path": 1, "path_correct": False, "step_index": 1, "kl": 0.1, "prefix": ["1. Nothing.<step>\n"],
         "original": {"text": "2. Guess.<step>\n", "ends_turn": False, "value": 0.0},
         "alternative": {"text": "2. Guess again.<step>\n", "ends_turn": False, "value": 0.0}},
        {"path": 2, "path_correct": True, "step_index": 0, "kl": None, "prefix": [],
         "original": {"text": "1. Red at 0 s.<step>\n", "ends_turn": False, "value": 1.0}, "alternative": None}]}


def test_stepwise_export_labels_steps_by_value(tmp_path):
    rows = export_records([LABEL_RECORD], "trl-stepwise", "label.jsonl")
    by_id = {r["id"]: r for r in rows}
    assert len(rows) == 5
    original, alternative = by_id["q1/0-1/original"], by_id["q1/0-1/alternative"]
    assert original["prompt"] == "<video>Which first?\nA. red\nB. blue" and original["videos"] == ["/data/clip.mp4"]
    assert original["completions"] == ["1. Red shows at 0 s.<step>", "2. Blue shows at 0 s.<step>"]
    assert original["labels"] == [True, False] and alternative["labels"] == [True, True]
    unknown = by_id["q1/1-1/original"]  # neither branch reached the answer: the prefix is context, not a step
    assert unknown["completions"] == ["2. Guess.<step>"] and unknown["labels"] == [False]
    assert unknown["prompt"].endswith("1. Nothing.<step>")
    assert by_id["q1/2-0/original"]["labels"] == [True]
    assert all(len(r["completions"]) == len(r["labels"]) for r in rows)
    strict = export_records([LABEL_RECORD], "trl-stepwise", threshold=0.5)
    assert {r["id"]: r["labels"][-1] for r in strict}["q1/0-1/alternative"] is False

    path = tmp_path / "label.jsonl"
    path.write_text(json.dumps(LABEL_RECORD) + "\n" + json.dumps({"id": "q2", "prompt": "x"}) + "\n")
    with pytest.raises(DataError, match=r"label.jsonl record 1: missing field 'steps'"):
        export_file(path, "trl-stepwise", tmp_path / "out.jsonl")
    assert main(["data", "export", "--format", "trl-stepwise", str(path), str(tmp_path / "o.jsonl")]) == 2


def test_preference_export_folds_a_step_prefix_into_both_responses():
    pair = {"pair_id": "q1/step/0-1", "kind": "step", "prompt": "Which first?", "media": None,
            "prefix": ["1. Red.<step>\n"], "chosen": {"text": "2. Blue.<step>\n", "ends_turn": False},
            "rejected": {"text": "2. Green.<step>\n", "ends_turn": False}, "label": 0.73}
    row = export_records([pair], "trl-preference")[0]
    assert row["chosen"][0]["content"] == "1. Red.<step>\n2. Blue.<step>\n"
    assert row["rejected"][0]["content"] == "1. Red.<step>\n2. Green.<step>\n" and row["label"] == 0.73
    rendered = {**pair, "media": {"_component_": "pkg.render", "index": 3}}
    with pytest.raises(DataError, match=r"records record 0: field 'media'"):
        export_records([rendered], "trl-preference")


def test_cli_import_and_export(tmp_path, capsys):
    path = write_json(tmp_path / "dpo.json", LF_DPO)
    assert main(["data", "import", "--format", "llamafactory", str(path), str(tmp_path / "pairs.jsonl")]) == 0
    assert "wrote 2 preference pairs" in capsys.readouterr().out
    assert main(["data", "export", "--format", "trl-preference", str(tmp_path / "pairs.jsonl"),
                 str(tmp_path / "trl.jsonl")]) == 0
    assert len((tmp_path / "trl.jsonl").read_text().splitlines()) == 2
    assert main(["data", "import", "--format", "llamafactory", str(tmp_path / "missing.json"),
                 str(tmp_path / "x.jsonl")]) == 2
    assert "missing.json: no such file" in capsys.readouterr().err
