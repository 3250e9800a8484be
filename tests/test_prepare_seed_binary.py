"""The seed's .header/.data binary lists: byte layout, reading, conversion to JSONL."""

from __future__ import annotations

import json
import struct

import pytest

from whisper_tune.audio import write_wav
from whisper_tune.cli import main
from whisper_tune.data.manifest import read_manifest
from whisper_tune.data.seed_binary import iter_seed_binary, write_seed_binary
from whisper_tune.errors import ManifestError


@pytest.fixture
def utterances(tmp_path, tone):
    (tmp_path / "dataset" / "audio").mkdir(parents=True)
    for index in range(3):
        write_wav(tmp_path / "dataset" / "audio" / f"{index}.wav", tone(0.5 + index))
    (tmp_path / "dataset" / "train.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "audio": {"path": f"audio/{i}.wav"},
                    "sentence": f"第{i}句",
                    "duration": 0.5 + i,
                    "language": "zh",
                },
                ensure_ascii=False,
            )
            + "\n"
            for i in range(3)
        ),
        encoding="utf-8",
    )
    return read_manifest(tmp_path / "dataset" / "train.jsonl")[0]


def test_layout_matches_the_seed(utterances, tmp_path):
    assert write_seed_binary(tmp_path / "dataset" / "train", utterances) == 3
    data = (tmp_path / "dataset" / "train.data").read_bytes()
    header = (tmp_path / "dataset" / "train.header").read_text("ascii").splitlines()
    # record 0: uint32 key length, key "0", uint32 value length, the JSON line
    assert struct.unpack("<I", data[:4])[0] == 1 and data[4:5] == b"0"
    length = struct.unpack("<I", data[5:9])[0]
    assert header[0] == f"0\t9\t{length}"
    record = json.loads(data[9 : 9 + length].decode("utf-8"))
    assert record == {
        "audio": {"path": "audio/0.wav"},
        "sentence": "第0句",
        "duration": 0.5,
        "language": "zh",
    }
    key, offset, size = header[2].split("\t")
    assert key == "2" and int(offset) + int(size) == len(data)


def test_read_and_convert(utterances, tmp_path, capsys):
    write_seed_binary(tmp_path / "dataset" / "train", utterances)
    read = list(iter_seed_binary(tmp_path / "dataset" / "train.header"))
    assert [(u.audio_path, u.sentence, u.duration) for u in read] == [
        (u.audio_path, u.sentence, u.duration) for u in utterances
    ]
    assert read[1].source.endswith("train.header:2")

    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "prepare",
                "seed-binary",
                str(tmp_path / "dataset" / "train.header"),
                "--output",
                str(tmp_path / "converted" / "train.jsonl"),
            ]
        )
    assert exit_info.value.code == 0
    assert "3 utterances" in capsys.readouterr().out
    converted, _ = read_manifest(tmp_path / "converted" / "train.jsonl")
    assert [u.audio_path for u in converted] == [u.audio_path for u in utterances]

    # the seed's own lists hold paths relative to the folder it ran in
    moved = list(iter_seed_binary(tmp_path / "dataset" / "train", base_dir=tmp_path / "x"))
    assert moved[0].audio_path == str(tmp_path / "x" / "audio" / "0.wav")


def test_broken_pairs_are_named(utterances, tmp_path):
    prefix = tmp_path / "dataset" / "train"
    write_seed_binary(prefix, utterances)
    data = (tmp_path / "dataset" / "train.data").read_bytes()
    (tmp_path / "dataset" / "train.data").write_bytes(data[: len(data) - 10])  # truncated
    with pytest.raises(ManifestError, match=r"train.header:3: offset .* is outside train.data"):
        list(iter_seed_binary(prefix))
    write_seed_binary(tmp_path / "other", utterances[:1])  # paths relative to another folder
    (tmp_path / "dataset" / "train.data").write_bytes((tmp_path / "other.data").read_bytes())
    with pytest.raises(ManifestError, match=r"train.header:1: .* do not belong together"):
        list(iter_seed_binary(prefix))
    header = prefix.with_suffix(".header")
    header.write_text("0\t9\n", encoding="ascii")
    with pytest.raises(
        ManifestError, match=r"train.header:1: expected 'key<TAB>offset<TAB>length'"
    ):
        list(iter_seed_binary(prefix))
    (tmp_path / "dataset" / "train.data").unlink()
    with pytest.raises(ManifestError, match="needs both"):
        list(iter_seed_binary(prefix))
