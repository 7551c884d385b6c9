"""salmonn_o1.records: the resumable JSONL store of `infer` and the pDPO stages."""

from __future__ import annotations

import pytest

from salmonn_o1.errors import DataError
from salmonn_o1.records import RecordWriter, done_ids, read_records, record_ids


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


def test_done_ids_keeps_the_readable_head_and_cuts_the_rest(tmp_path):
    path = tmp_path / "pred.jsonl"
    path.write_text('{"id": 1}\n{"id": "b"}\n{"id": "half')
    assert done_ids(path) == {"1", "b"}
    assert path.read_text() == '{"id": 1}\n{"id": "b"}\n'
    assert done_ids(tmp_path / "none.jsonl") == set()
