"""The recorded speech shipped in the package: it loads, decodes, and is speech of its text."""

import csv
import json

import pytest

from whisper_tune.audio import SAMPLE_RATE, load_audio
from whisper_tune.data.manifest import read_manifest
from whisper_tune.data.real_speech import REAL_SPEECH_MANIFEST, real_speech, write_real_speech
from whisper_tune.evaluate import EvalConfig, evaluate

# stock tiny.en (bundled CTranslate2, int8, greedy) scored 0.085 on all twelve clips
TINY_EN_WER_BOUND = 0.2


def test_every_clip_decodes_to_its_declared_length_with_a_source_and_licence():
    clips = real_speech()
    assert len(clips) == 12
    records = [json.loads(line) for line in REAL_SPEECH_MANIFEST.read_text().splitlines()]
    for clip, record in zip(clips, records, strict=True):
        audio = load_audio(clip.audio_path)
        assert abs(len(audio) / SAMPLE_RATE - clip.duration) < 0.01, clip.source
        assert 0.01 < abs(audio).max() <= 1.0, clip.source  # not silent, not clipped past 1
        assert clip.language == "en" and len(clip.sentence.split()) >= 1
        assert len(clip.sentence.split()) / clip.duration < 5  # words per second a voice says
        assert record["source"] and record["licence"]
    assert 40 < sum(c.duration for c in clips) < 60


def test_a_written_subset_spans_short_to_long_and_names_its_language(tmp_path):
    path = write_real_speech(tmp_path / "real.jsonl", max_clips=3)
    written, _ = read_manifest(path)
    durations = sorted(c.duration for c in real_speech())
    assert [c.duration for c in written] == durations[::4]
    assert all(c.language == "en" for c in written)
    assert all(load_audio(c.audio_path).size for c in written)


@pytest.mark.slow
def test_stock_tiny_en_transcribes_the_recordings(tmp_path):
    report = evaluate(
        EvalConfig(
            test_data=str(REAL_SPEECH_MANIFEST),
            model_path="tiny.en",
            compute_type="int8",
            num_workers=0,
            output_dir=str(tmp_path),
        )
    )
    assert report.metric == "wer" and len(report.rows) == 12
    assert report.score < TINY_EN_WER_BOUND, [(r.reference, r.hypothesis) for r in report.rows]


@pytest.mark.slow
def test_detect_language_scores_language_identification(tmp_path):
    """Multilingual base hears two recorded English clips as English whatever the manifest
    says: with --detect_language the clip labelled German counts as misidentified (1/2), and
    each clip's detected language is in utterances.csv."""
    from whisper_tune.cli import main

    clips = real_speech(2)
    lines = [
        {"audio": {"path": c.audio_path}, "sentence": c.sentence, "language": language}
        for c, language in zip(clips, ("en", "de"), strict=True)
    ]
    manifest = tmp_path / "labelled.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "report"
    args = ["evaluate", "--test_data", str(manifest), "--model_path", "base"]
    with pytest.raises(SystemExit) as done:
        main([*args, "--detect_language", "--num_workers", "0", "--output_dir", str(out)])
    assert done.value.code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["language_id"] == "1/2" and summary["score"] < 0.3, summary
    with (out / "utterances.csv").open() as handle:
        assert [row["language"] for row in csv.DictReader(handle)] == ["en", "en"]
    assert "language_id" in (out / "comparison.md").read_text()
