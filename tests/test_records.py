"""salmonn_o1.records: the resumable JSONL store of `infer` and the pDPO stages."""

from __future__ import annotations

import pytest

from salmonn_o1.errors import DataError
from salmonn_o1.records import RecordWriter, read_records, record_ids, scan_records, set_aside_lines


def test_writer_appends_and_a_cut_line_is_dropped(tmp_path):
    path = tmp_path / "out.jsonl"
    writer = RecordWriter(path)
    assert not path.exists()  # created by the first write
    writer.write([{"id": "a", "x": "é"}, {"id": "b"}])
    assert read_records(path) == [{"id": "a", "x": "é"}, {"id": "b"}]
    path.write_text(path.read_text() + '{"id": "c", "x": [')  # a kill mid-line
    assert record_ids(read_records(path)) == {"a", "b"}  # readers ignore it
    RecordWriter(path).write([{"id": "c"}])  # a writer cuts it first
    assert path.read_text().splitlines() == ['{"id": "a", "x": "é"}', '{"id": "b"}', '{"id": "c"}']


def test_a_broken_line_inside_the_file_is_an_error(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text('{"id": 1}\n{oops\n{"id": 2}\n')
    with pytest.raises(DataError, match="line 2"):
        read_records(path)
    assert read_records(tmp_path / "missing.jsonl") == []


def test_scan_keeps_every_readable_record_and_names_the_bad_lines(tmp_path):
    path = tmp_path / "pred.jsonl"
    path.write_text('{"id": 1}\n{oops\n[1, 2]\n{"id": "b"}\n{"id": "half')
    scan = scan_records(path)
    assert [r["id"] for r in scan.records] == [1, "b"] and scan.record_lines == [1, 4]
    assert scan.bad_lines == [2, 3] and scan.other_json_lines == [3]
    assert scan.interrupted == b'{"id": "half'
    assert scan_records(tmp_path / "none.jsonl").records == []


def test_set_aside_moves_the_bad_lines_to_a_side_file_and_keeps_the_rest(tmp_path):
    path = tmp_path / "pred.jsonl"
    path.write_text('{"id": 1}\n{oops\n{"id": "b"}\n{"id": "half')
    aside = set_aside_lines(path, [2])
    assert path.read_text() == '{"id": 1}\n{"id": "b"}\n'
    assert aside.parent == tmp_path and aside.name.startswith("pred.jsonl.bad-lines.")
    assert aside.read_text() == '{oops\n{"id": "half\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["pred.jsonl", aside.name])  # no temp file left
