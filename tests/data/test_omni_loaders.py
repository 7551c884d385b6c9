"""Loaders for WorldSense, Daily-Omni, Video-Holmes, AV-Odyssey, OmniBench and Video-MME with
subtitles, each on a file written in the benchmark's published format; errors name the field."""

from __future__ import annotations

import json

import pytest

from salmonn_o1.cli import main
from salmonn_o1.data.benchmarks import FORMATS, load_benchmark
from salmonn_o1.data.omni_loaders import NO_SUBTITLES, SUBTITLE_PROMPT, read_srt
from salmonn_o1.data.schema import read_items
from salmonn_o1.errors import DataError


def write_json(path, data):
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_worldsense(tmp_path):
    record = {"index": 17, "video_path": "videos/abc.mp4", "question": "What does the dog do when the bell rings?",
              "candidates": ["A. It barks.", "B. It sits.", "C. It runs.", "D. It sleeps."], "answer": "C",
              "task_type": "Audio Counting", "task_domain": "Sports", "duration": "1-2min",
              "audio_class": ["Speech", "Event"]}
    path = write_json(tmp_path / "worldsense.json", [record])
    (item,) = load_benchmark(path, "worldsense")
    assert (item.id, item.answer, item.category, item.source) == ("17", "C", "Audio Counting", "worldsense")
    assert item.options == ["It barks.", "It sits.", "It runs.", "It sleeps."]
    assert item.video == str(tmp_path / "videos/abc.mp4")
    assert item.extras["audio_class"] == ["Speech", "Event"] and item.extras["task_domain"] == "Sports"
    with pytest.raises(DataError, match=r"worldsense.json entry 0: field 'answer'.*'E'"):
        load_benchmark(write_json(path, [{**record, "answer": "E"}]), "worldsense")


def test_daily_omni(tmp_path):
    record = {"Question": "What sound follows the door closing?", "Choice": ["A. A dog", "B. A bell", "C. Rain",
              "D. Music"], "Answer": "B", "video_id": "xYz_01", "Type": "AV Event Alignment",
              "video_duration": "30s", "content_parent_category": "Lifestyle", "video_category": "Vlog"}
    path = write_json(tmp_path / "qa.json", [record, {**record, "Answer": "D", "Type": "Reasoning"}])
    first, second = load_benchmark(path, "daily-omni")
    assert first.video == str(tmp_path / "Videos" / "xYz_01" / "xYz_01_video.mp4")
    assert first.extras["audio"] == str(tmp_path / "Videos" / "xYz_01" / "xYz_01_audio.wav")
    assert (first.answer, first.options[1], first.category, second.answer) == ("B", "A bell", "AV Event Alignment", "D")
    assert first.id != second.id
    assert first.extras["video_duration"] == "30s"
    with pytest.raises(DataError, match=r"qa.json entry 0: missing field 'Question'"):
        load_benchmark(write_json(path, [{k: v for k, v in record.items() if k != "Question"}]), "daily-omni")


def test_video_holmes(tmp_path):
    record = {"video ID": "241", "Question ID": "241_3", "Question Type": "TCI",
              "Question": "Why does the man return to the room?",
              "Options": {"A": "He forgot his keys", "B": "He heard a scream", "C": "He was called",
                          "D": "To hide", "E": "To sleep", "F": "None of the above"},
              "Answer": "B", "Explanation": "The scream is heard at 0:41."}
    path = write_json(tmp_path / "test_Video-Holmes.json", [record])
    (item,) = load_benchmark(path, "video-holmes")
    assert item.video == str(tmp_path / "videos" / "241.mp4")
    assert (item.id, item.answer, item.category, len(item.options)) == ("241_3", "B", "TCI", 6)
    assert item.options[5] == "None of the above" and item.extras["explanation"].startswith("The scream")
    bad = {**record, "Options": {"A": "x", "C": "y"}}
    with pytest.raises(DataError, match=r"field 'Options' keys are AC"):
        load_benchmark(write_json(path, [bad]), "video-holmes")


def test_av_odyssey(tmp_path):
    record = {"question_id": "Timbre_1", "subfield": "Timbre", "task_name": "Instrument Recognition",
              "data_type": "video", "question": "Which video shows the instrument playing in [audio1]? [video1] [video2]",
              "options": ["A: the first", "B: the second", "C: neither", "D: both"], "answer": "B",
              "video_path": ["videos/v1.mp4", "videos/v2.mp4"], "image_path": [], "audio_path": ["audios/a1.wav"]}
    path = write_json(tmp_path / "av_odyssey.json", [record])
    (item,) = load_benchmark(path, "av-odyssey")
    assert item.question == "Which video shows the instrument playing in ?"
    assert item.options == ["the first", "the second", "neither", "both"] and item.answer == "B"
    assert item.video == str(tmp_path / "videos/v1.mp4")
    assert item.extras["audio_paths"] == [str(tmp_path / "audios/a1.wav")] and len(item.extras["video_paths"]) == 2


def test_omnibench_answer_is_option_text(tmp_path):
    record = {"index": 3, "task type": "Causal Inference", "audio type": "speech",
              "question": "Why is the woman laughing?", "options": ["She fell", "A joke", "She won", "A dog barked"],
              "answer": "A joke", "audio_path": "audio/3.wav", "image_path": "image/3.jpg",
              "audio content": "and then he said...", "image content": "A woman at a table."}
    path = tmp_path / "omnibench.jsonl"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    (item,) = load_benchmark(path, "omnibench")
    assert (item.answer, item.video, item.extras["audio"]) == ("B", str(tmp_path / "image/3.jpg"),
                                                             str(tmp_path / "audio/3.wav"))
    with pytest.raises(DataError, match=r"omnibench.jsonl line 1: field 'answer'.*'A cat'"):
        path.write_text(json.dumps({**record, "answer": "A cat"}) + "\n", encoding="utf-8")
        load_benchmark(path, "omnibench")


SRT = """1
00:00:01,000 --> 00:00:03,500
<font color="white" size=".72c">Welcome back to the kitchen.</font>

2
00:00:04,000 --> 00:00:06,000
<font color="white" size=".72c">Today we bake bread.</font>

"""


def test_videomme_with_subtitles(tmp_path):
    rows = [{"video_id": "001", "duration": "short", "domain": "Knowledge", "sub_category": "Cooking",
             "videoID": "fFjv93ACGo8", "question_id": "001-1", "task_type": "Action Recognition",
             "question": "What is being made?", "options": ["A. Soup", "B. Bread", "C. Salad", "D. Pie"], "answer": "B"},
            {"video_id": "002", "duration": "short", "domain": "Knowledge", "sub_category": "News",
             "videoID": "noSubs", "question_id": "002-1", "task_type": "OCR",
             "question": "What is written?", "options": ["A. x", "B. y", "C. z", "D. w"], "answer": "A"}]
    path = write_json(tmp_path / "videomme.json", rows)
    (tmp_path / "subtitle").mkdir()
    (tmp_path / "subtitle" / "fFjv93ACGo8.srt").write_text(SRT, encoding="utf-8")
    with_subs, without = load_benchmark(path, "videomme-subtitles")
    assert with_subs.question == (f"{SUBTITLE_PROMPT}\nWelcome back to the kitchen.\nToday we bake bread.\n"
                                  "What is being made?")
    assert without.question == f"{SUBTITLE_PROMPT}\n{NO_SUBTITLES}\nWhat is written?"
    assert with_subs.answer == "B" and with_subs.video == str(tmp_path / "fFjv93ACGo8.mp4")
    assert read_srt(tmp_path / "subtitle" / "fFjv93ACGo8.srt")[1][:2] == (4.0, 6.0)
    # the plain loader leaves the question alone
    assert load_benchmark(path, "videomme")[0].question == "What is being made?"


def test_infer_and_eval_take_every_format(tmp_path, capsys):
    """`eval --items-format` reads a new benchmark the way it reads the old ones."""
    assert {"worldsense", "daily-omni", "video-holmes", "av-odyssey", "omnibench", "videomme-subtitles"} <= set(FORMATS)
    record = {"video ID": "7", "Question ID": "7_1", "Question Type": "SR", "Question": "Who speaks first?",
              "Options": {"A": "the man", "B": "the woman"}, "Answer": "A"}
    items = write_json(tmp_path / "holmes.json", [record])
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text(json.dumps({"id": "7_1", "answer": "A"}) + "\n", encoding="utf-8")
    assert main(["eval", "--items", str(items), "--items-format", "video-holmes", "--predictions", str(predictions),
                 "--bootstrap", "10"]) == 0
    assert "100.0" in capsys.readouterr().out
    from salmonn_o1.commands.infer import benchmark_items

    written = benchmark_items(str(items), "video-holmes", str(tmp_path / "out.jsonl"))
    (item,) = read_items(written)
    assert item.id == "7_1" and item.video.endswith("videos/7.mp4")
