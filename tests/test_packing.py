"""Short clips packed into shared windows (--pack_clips): each clip gets its own text back,
in order, with times from its own start; what cannot be handed back is decoded alone."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from whisper_tune.audio import SAMPLE_RATE, load_audio
from whisper_tune.cli import main
from whisper_tune.inference import TranscribeOptions
from whisper_tune.inference.batching import group_full, transcribe_short
from whisper_tune.inference.packing import (
    GAP_SECONDS,
    PACKED_SECONDS,
    STRADDLE_SECONDS,
    plan_packs,
    unpack,
)
from whisper_tune.inference.types import Segment, TranscriptionInfo, Word

SENTENCES = (
    "I left my umbrella on the bus this morning.",
    "Please remember to lock the front door when you leave.",
    "The train to the city leaves at half past eight.",
    "My sister is learning to play the piano.",
    "The library closes at six on Saturdays.",
    "Could you pass me the salt and pepper, please?",
)


def test_clips_are_laid_in_order_one_gap_apart_and_windows_never_overflow():
    packs = plan_packs([3.0, 4.0, 21.0, 2.5, 29.0])
    assert [p.clips for p in packs] == [(0, 1), (2, 3), (4,)]
    assert packs[0].offsets == (0.0, 3.0 + GAP_SECONDS)
    assert packs[1].offsets == (0.0, 21.0 + GAP_SECONDS)
    for pack in packs:
        assert pack.offsets[-1] + pack.durations[-1] <= max(PACKED_SECONDS, pack.durations[0])
    audios = [np.full(round(s * SAMPLE_RATE), i + 1, np.float32) for i, s in enumerate((1, 2))]
    window = plan_packs([1.0, 2.0])[0].audio(audios)
    assert window[0] == 1 and window[round(1.5 * SAMPLE_RATE)] == 0 and window[-2] == 2


def _segment(start: float, end: float, text: str, avg_logprob: float = -0.2) -> Segment:
    return Segment(start, end, text, words=(Word(start, end, text, 0.9),), avg_logprob=avg_logprob)


def test_segments_go_back_to_their_clip_and_doubtful_clips_are_decoded_alone():
    pack = plan_packs([3.0, 3.0, 3.0, 3.0])[0]  # clips at 0, 4, 8 and 12 s
    info = TranscriptionInfo("en", 1.0, 15.0)
    late_end = 4.0 + STRADDLE_SECONDS - 0.1  # end timestamps run into the next clip a little
    segments = (
        _segment(0.0, late_end, "one."),
        _segment(3.3, 7.0, "two."),  # starts early, in the gap: still clip 1's
        _segment(8.0, 13.5, "three and four."),  # holds words of clips 2 and 3
        _segment(12.5, 14.0, "four again", avg_logprob=-3.0),
    )
    result = unpack(pack, (segments, info), lambda s: s.avg_logprob < -1.0)
    assert result[0][0][0].text == "one." and result[0][0][0].end == 3.0
    shifted = result[1][0][0]
    assert (shifted.start, shifted.end, shifted.words[0].start) == (0.0, 3.0, 0.0)
    assert result[1][1].duration == 3.0 and result[1][1].language == "en"
    assert result[2] is None and result[3] is None
    assert unpack(pack, ((), info), lambda s: False) == dict.fromkeys(range(4))


def test_a_packed_group_is_full_when_it_fills_its_windows():
    assert group_full(4, 12.0, 4, pack=False) and not group_full(3, 90.0, 4, pack=False)
    assert not group_full(30, 4 * PACKED_SECONDS - 1, 4, pack=True)
    assert group_full(30, 4 * PACKED_SECONDS, 4, pack=True)


@pytest.fixture(scope="module")
def packing_clips(speech_dir):
    from whisper_tune.synth import synthesize_to_file

    return [
        synthesize_to_file(speech_dir / f"pack{i}.wav", text, "en", seed=20 + i)
        for i, text in enumerate(SENTENCES)
    ]


@pytest.mark.slow
def test_packed_clips_share_one_window_and_keep_their_own_text(tiny_en_transcriber, packing_clips):
    """Six 3 s clips go through the encoder as one window; each comes back with its own
    sentence, timed within itself, as decoding it alone would give it."""
    audios = [load_audio(path) for path in packing_clips]
    windows: list[float] = []
    decode = tiny_en_transcriber.transcribe

    def recording(audio, options):
        windows.append(len(audio) / SAMPLE_RATE)
        return decode(audio, options)

    tiny_en_transcriber.transcribe = recording
    try:
        options = TranscribeOptions(language="en", beam_size=2, timestamps=False)
        packed = transcribe_short(tiny_en_transcriber, audios, options, pack=True)
    finally:
        del tiny_en_transcriber.transcribe
    assert len(windows) == 1 and windows[0] > sum(len(a) for a in audios) / SAMPLE_RATE
    alone = transcribe_short(tiny_en_transcriber, audios, options)
    for (segments, info), (single, _), audio in zip(packed, alone, audios, strict=True):
        assert " ".join(s.text for s in segments) == " ".join(s.text for s in single)
        assert info.duration == len(audio) / SAMPLE_RATE
        assert all(0 <= s.start <= s.end <= info.duration for s in segments)


@pytest.mark.slow
def test_transcribe_and_evaluate_pack_clips(capsys, tmp_path, packing_clips):
    """The CLI packs a folder and a manifest: lines in file order, each file's own text."""
    with pytest.raises(SystemExit) as done:
        main(["transcribe", "--audio_path", *map(str, packing_clips), "--pack_clips"])
    assert done.value.code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["audio_path"] for line in lines] == [str(p) for p in packing_clips]
    for line, text in zip(lines, SENTENCES, strict=True):
        assert text.split()[-1].lower().strip("?.") in line["text"].lower()
    manifest = tmp_path / "test.jsonl"
    rows = [
        {"audio": {"path": str(p)}, "sentence": t}
        for p, t in zip(packing_clips, SENTENCES, strict=True)
    ]
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    report = tmp_path / "report"
    with pytest.raises(SystemExit) as done:
        main(
            [
                *("evaluate", "--test_data", str(manifest), "--model_path", "tiny.en"),
                *("--num_workers", "0", "--pack_clips", "--output_dir", str(report)),
            ]
        )
    assert done.value.code == 0
    with open(report / "utterances.csv", encoding="utf-8") as handle:
        scored = list(csv.DictReader(handle))
    assert [row["reference"][:6] for row in scored] == [s.lower()[:6] for s in SENTENCES]
    summary = json.loads((report / "summary.json").read_text())
    assert summary["score"] <= 0.1 and summary["options"]["pack_clips"] is True
