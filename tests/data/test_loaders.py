"""Benchmark loaders: local copies of RivaBench, Video-MME, NExT-QA and the demo
format become items; every error names the file, the line (or entry) and the field."""

from __future__ import annotations

import json

import pytest

from salmonn_o1.data.benchmarks import load_benchmark
from salmonn_o1.data.loaders import (
    answer_to_letter,
    load_demo,
    load_nextqa,
    load_rivabench,
    load_videomme,
    parse_inline_question,
)
from salmonn_o1.data.schema import Item, read_items, write_items
from salmonn_o1.errors import DataError

RIVA_HUMAN = (
    "<image>\nWhy did the speaker pause? Choose from:\nA. To drink water\nB. For laughter\n"
    "C. Lost notes\nD. A question\nAnswer the question step by step. Output each thinking step."
)
NEXTQA_HEADER = "video,frame_count,width,height,question,answer,qid,type,a0,a1,a2,a3,a4"


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_rivabench(tmp_path):
    data = [
        {"id": "acad-1", "video": "a.mp4",
         "conversations": [{"from": "human", "value": RIVA_HUMAN}, {"from": "gpt", "value": "B"}]},
        {"video": "b.mp4", "conversations": [
            {"from": "human", "value": "<image>\nIs the given video AI generated? Answer YES or NO."},
            {"from": "gpt", "value": "yes."}]},
    ]
    path = _write(tmp_path / "SynthDec.json", json.dumps(data))
    first, second = load_rivabench(path, video_dir="/videos")
    assert first.id == "acad-1" and first.video == "/videos/a.mp4"
    assert first.question == "Why did the speaker pause?"
    assert first.options == ["To drink water", "For laughter", "Lost notes", "A question"]
    assert first.answer == "B" and first.category == "synthdec" and first.source == "rivabench"
    assert second.id == "synthdec-00001" and second.answer == "YES" and second.kind == "yes_no"
    assert load_rivabench(path)[0].video == str(tmp_path / "a.mp4")

    bad = [{"video": "a.mp4", "conversations": [{"from": "human", "value": RIVA_HUMAN}, {"from": "gpt", "value": "F"}]}]
    with pytest.raises(DataError, match=r"bad\.json entry 0: field 'conversations': answer 'F'"):
        load_rivabench(_write(tmp_path / "bad.json", json.dumps(bad)))
    with pytest.raises(DataError, match=r"nogpt\.json entry 0: field 'conversations' has no gpt turn"):
        load_rivabench(_write(tmp_path / "nogpt.json",
                              json.dumps([{"video": "a", "conversations": [{"from": "human", "value": "q?"}]}])))
    with pytest.raises(DataError, match=r"novideo\.json entry 0: missing field 'video'"):
        load_rivabench(_write(tmp_path / "novideo.json", json.dumps([{"conversations": []}])))
    with pytest.raises(DataError, match=r"broken\.json line 2: invalid JSON"):
        load_rivabench(_write(tmp_path / "broken.json", '[\n{"video": }\n]'))


def test_videomme(tmp_path):
    lines = [
        {"videoID": "fFjv93ACGo8", "question_id": "001-1", "duration": "short", "domain": "Knowledge",
         "task_type": "Counting Problem", "question": "How many red socks?",
         "options": ["A. 1.", "B. 2.", "C. 3.", "D. 4."], "answer": "C"},
        {"videoID": "fFjv93ACGo8", "question_id": "001-2", "task_type": "Object Recognition",
         "question": "What is shown?", "options": ["A. cat", "B. dog", "C. bird", "D. fish"], "answer": "dog"},
    ]
    path = _write(tmp_path / "videomme.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n")
    first, second = load_videomme(path, video_dir="/data/mme")
    assert first.id == "001-1" and first.video == "/data/mme/fFjv93ACGo8.mp4"
    assert first.options == ["1.", "2.", "3.", "4."] and first.answer == "C"
    assert first.category == "Counting Problem" and first.extras["domain"] == "Knowledge"
    assert second.answer == "B"
    lines[1]["answer"] = "E"
    bad = _write(tmp_path / "bad.jsonl", "\n".join(json.dumps(x) for x in lines))
    with pytest.raises(DataError, match=r"bad\.jsonl line 2: field 'answer'"):
        load_videomme(bad)
    del lines[1]["options"]
    with pytest.raises(DataError, match=r"bad2\.jsonl line 2: missing field 'options'"):
        load_videomme(_write(tmp_path / "bad2.jsonl", "\n".join(json.dumps(x) for x in lines)))


def test_nextqa(tmp_path):
    csv = (f"{NEXTQA_HEADER}\n4010069381,369,640,480,why did the boy smile,2,6,CW,he fell,he saw a dog,"
           "his mum waved,it rained,he ate\n")
    path = _write(tmp_path / "val.csv", csv)
    (item,) = load_nextqa(path, video_map={"4010069381": "1025/4010069381"}, video_dir="/nextqa")
    assert item.id == "4010069381_6" and item.video == "/nextqa/1025/4010069381.mp4"
    assert item.question == "why did the boy smile?" and item.answer == "C" and len(item.options) == 5
    assert item.category == "causal" and item.source == "nextqa"
    bad = _write(tmp_path / "bad.csv", csv + "4010069381,369,640,480,what next,x,7,TN,a,b,c,d,e\n")
    with pytest.raises(DataError, match=r"bad\.csv line 3: field 'answer' is 'x'"):
        load_nextqa(bad)
    with pytest.raises(DataError, match=r"cols\.csv line 1: missing column\(s\) a4"):
        load_nextqa(_write(tmp_path / "cols.csv", "video,qid,question,answer,a0,a1,a2,a3\n"))


def test_demo_format(tmp_path):
    lines = [
        {"video": "fire.mp4", "question": "What element appears? Choose from: A. Water B. Fire C. Earth D. Wind",
         "answer": "B. Fire"},
        {"video": "x.mp4", "question": "Is this real? Answer YES or NO.", "answer": "no", "category": "synth"},
    ]
    path = _write(tmp_path / "demo.jsonl", "\n".join(json.dumps(x) for x in lines))
    first, second = load_demo(path)
    assert first.options == ["Water", "Fire", "Earth", "Wind"] and first.answer == "B"
    assert first.question == "What element appears?" and first.id == "demo-0000"
    assert second.answer == "NO" and second.category == "synth" and second.video == str(tmp_path / "x.mp4")
    bad = _write(tmp_path / "bad.jsonl", json.dumps({"question": "Q? Choose from:\nA. x\nC. y", "answer": "A"}))
    with pytest.raises(DataError, match=r"bad\.jsonl line 1: field 'question'/'answer': options are not lettered"):
        load_demo(bad)


def test_inline_question_forms():
    assert parse_inline_question("Q? Choose from:\nA. x \\\nB. y \\\n") == ("Q?", ["x", "y"])
    assert parse_inline_question("Q? Choose from: (A) x (B) y") == ("Q?", ["x", "y"])
    assert parse_inline_question("Just a question?\nPlease answer briefly.") == ("Just a question?", [])
    assert answer_to_letter("(B)", ["x", "y"]) == "B" and answer_to_letter("Y", ["x", "y"]) == "B"


def test_items_round_trip_and_load_benchmark(tmp_path):
    items = [Item("a", "v/a.mp4", "Q?", ["x", "y"], "B", ["s1"], "cat", "src", {"k": 1})]
    write_items(tmp_path / "items.jsonl", items)
    (back,) = load_benchmark(tmp_path / "items.jsonl")
    assert back.video == str(tmp_path / "v/a.mp4") and back.extras == {"k": 1} and back.steps == ["s1"]
    with pytest.raises(DataError, match="unknown format"):
        load_benchmark(tmp_path / "items.jsonl", fmt="mmlu")
    _write(tmp_path / "dup.jsonl", '{"id": "a", "question": "q", "answer": "x"}\n{"id": "a", "question": "q", "answer": "y"}\n')
    with pytest.raises(DataError, match=r"dup\.jsonl line 2: field 'id' 'a' duplicates line 1"):
        read_items(tmp_path / "dup.jsonl")
    _write(tmp_path / "noq.jsonl", '{"id": "a", "answer": "x"}\n')
    with pytest.raises(DataError, match=r"noq\.jsonl line 1: missing field 'question'"):
        read_items(tmp_path / "noq.jsonl")
