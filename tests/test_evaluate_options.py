"""``whisper-tune evaluate``: the decoding flags reach the decoder (bundled tiny.en, CT2)."""

from __future__ import annotations

import json

import pytest

from whisper_tune.cli import main


def test_num_beams_and_timestamps_reach_the_decoder(english_clip, tmp_path, monkeypatch):
    """faster-whisper's decode step sees the beam size and timestamp mode the flags ask for
    (greedy without timestamps by default), and the score stays that of a real decode."""
    from faster_whisper.transcribe import WhisperModel

    seen = []
    decode = WhisperModel.generate_with_fallback

    def recording(self, encoder_output, prompt, tokenizer, options):
        seen.append((options.beam_size, options.without_timestamps))
        return decode(self, encoder_output, prompt, tokenizer, options)

    monkeypatch.setattr(WhisperModel, "generate_with_fallback", recording)
    path, text = english_clip
    manifest = tmp_path / "test.jsonl"
    manifest.write_text(json.dumps({"audio": {"path": str(path)}, "sentence": text}) + "\n")
    for flags, expected in (([], (1, True)), (["--num_beams", "3", "--timestamps"], (3, False))):
        seen.clear()
        report = tmp_path / f"report{len(flags)}"
        with pytest.raises(SystemExit) as done:
            main(
                [
                    *("evaluate", "--test_data", str(manifest), "--model_path", "tiny.en"),
                    *("--metric", "wer", "--num_workers", "0", "--output_dir", str(report)),
                    *flags,
                ]
            )
        assert done.value.code == 0
        assert seen and set(seen) == {expected}, (flags, seen)
        summary = json.loads((report / "summary.json").read_text())
        assert summary["utterances"] == 1 and summary["score"] < 0.2, summary
