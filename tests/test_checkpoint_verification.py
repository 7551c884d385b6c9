"""A damaged safetensors file is refused on load, naming the file, instead of answering garbage."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest

import salmonn_o1
from salmonn_o1.checkpoints import (
    CHECKSUMS,
    load_model_and_processor,
    save_model_and_processor,
    verify_checksums,
    write_checksums,
)
from salmonn_o1.cli import main
from salmonn_o1.errors import CheckpointError

ASSETS = Path(salmonn_o1.__file__).parent / "assets"
SHIPPED = ASSETS / "mini"


def header(path: Path) -> tuple[int, dict]:
    data = path.read_bytes()
    size = int.from_bytes(data[:8], "little")
    return size, json.loads(data[8:8 + size])


def first_float_tensor(path: Path) -> tuple[int, int]:
    """(file offset, byte length) of the first float32 tensor's data."""
    size, entries = header(path)
    name = next(n for n, e in entries.items() if n != "__metadata__" and e["dtype"] == "F32")
    begin, end = entries[name]["data_offsets"]
    return 8 + size + begin, end - begin


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    """A tiny checkpoint of ours, saved without a checksum listing."""
    model, processor = load_model_and_processor("tiny")
    return save_model_and_processor(model, processor, tmp_path_factory.mktemp("ckpt") / "model")


def damaged_copy(source: Path, target: Path, damage) -> Path:
    shutil.copytree(source, target)
    weights = target / "model.safetensors"
    data = bytearray(weights.read_bytes())
    damage(data)
    weights.write_bytes(bytes(data))
    return target


def test_the_shipped_model_lists_its_checksum_and_matches_it():
    assert (SHIPPED / CHECKSUMS).read_text().split()[1:] == ["model.safetensors"]
    assert verify_checksums(SHIPPED) is True


def test_flipped_bytes_in_the_shipped_model_are_refused_with_exit_2(tmp_path, capsys):
    offset, length = first_float_tensor(SHIPPED / "model.safetensors")

    def flip(data: bytearray) -> None:  # bit rot in the weights: every value stays finite
        for i in range(offset, offset + min(length, 64)):
            data[i] ^= 0xFF

    model = damaged_copy(SHIPPED, tmp_path / "mini", flip)
    code = main(["ask", str(ASSETS / "sample" / "clip.mp4"), "What is shown?", "--model", str(model),
                 "--max-new-tokens", "2", "--answer-max-new-tokens", "2"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"{model / 'model.safetensors'}: its sha256 differs" in err and "Traceback" not in err


@pytest.mark.parametrize("damage,message", [
    (lambda data: data.__setitem__(slice(12, 16), b"\xff\xfe\x00\x01"), "header is not valid JSON"),
    (lambda data: data.__delitem__(slice(len(data) - 100, len(data))), "the tensors end at data byte"),
    (lambda data: data.__setitem__(slice(0, 8), (10**9).to_bytes(8, "little")), "header length"),
])
def test_a_damaged_file_without_checksum_is_refused(saved, tmp_path, damage, message):
    model = damaged_copy(saved, tmp_path / "model", damage)
    with pytest.raises(CheckpointError, match=message) as caught:
        load_model_and_processor(model)
    assert str(model / "model.safetensors") in str(caught.value)


def test_non_finite_weights_are_refused(saved, tmp_path):
    offset, _ = first_float_tensor(saved / "model.safetensors")
    model = damaged_copy(saved, tmp_path / "model",
                         lambda data: data.__setitem__(slice(offset, offset + 4), struct.pack("<f", float("nan"))))
    with pytest.raises(CheckpointError, match="holds NaN or infinite values"):
        load_model_and_processor(model)


def test_a_dtype_that_does_not_match_the_sizes_is_refused(saved, tmp_path):
    size, entries = header(saved / "model.safetensors")
    name = next(n for n, e in entries.items() if n != "__metadata__" and e["dtype"] == "F32")
    old = json.dumps(entries[name]).encode()
    new = old.replace(b'"F32"', b'"F16"')

    def relabel(data: bytearray) -> None:  # same length: the header stays the same size
        at = data.index(b'"' + name.encode() + b'"', 8, 8 + size)
        at = data.index(b'"F32"', at)
        data[at:at + 5] = b'"F16"'

    assert len(new) == len(old)
    model = damaged_copy(saved, tmp_path / "model", relabel)
    with pytest.raises(CheckpointError, match=f"tensor '{name}' spans"):
        load_model_and_processor(model)


def test_saving_over_a_checksummed_directory_drops_the_stale_listing(saved, tmp_path):
    target = tmp_path / "model"
    shutil.copytree(saved, target)
    write_checksums(target)
    assert verify_checksums(target)
    model, processor = load_model_and_processor("tiny", seed=1)  # other weights
    save_model_and_processor(model, processor, target)
    assert not (target / CHECKSUMS).exists()
    load_model_and_processor(target)
