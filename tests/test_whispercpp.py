"""The whisper.cpp engine: a GGML file behind the Transcriber interface (real whisper.cpp)."""

from __future__ import annotations

import json
import threading

import pytest

from whisper_tune.audio import load_audio
from whisper_tune.cli import main
from whisper_tune.convert.ggml import export_ggml
from whisper_tune.convert.parity import REFERENCE_CLIP
from whisper_tune.errors import ModelError
from whisper_tune.inference import TranscribeOptions, load_transcriber
from whisper_tune.inference.ggml_format import F32_HINT
from whisper_tune.text import normalize_english

pytest.importorskip("pywhispercpp")


@pytest.fixture(scope="module")
def ggml_tiny_en(tmp_path_factory):
    """Bundled tiny.en exported as a q5_0 GGML file (what the Android app runs)."""
    out = tmp_path_factory.mktemp("ggml") / "ggml-tiny.en-q5_0.bin"
    export_ggml("tiny.en", out, quantize="q5_0")
    return out


def test_ggml_file_transcribes_with_timestamps(ggml_tiny_en):
    transcriber = load_transcriber(str(ggml_tiny_en))
    assert transcriber.engine == "whispercpp" and not transcriber.is_multilingual
    audio = load_audio(REFERENCE_CLIP)
    segments, info = transcriber.transcribe(audio, TranscribeOptions(beam_size=1))
    segments = list(segments)
    text = " ".join(s.text for s in segments)
    assert "quick brown fox jumps over the lazy dog" in normalize_english(text)
    assert info.language == "en" and info.duration == pytest.approx(len(audio) / 16000)
    assert all(0 <= s.start < s.end <= info.duration for s in segments)
    assert all(s.avg_logprob < 0 for s in segments), "token probabilities come through"

    # beam search and the user's text options run too; a cancelled decode yields nothing
    beam, _ = transcriber.transcribe(audio, TranscribeOptions(beam_size=5, remove_pun=True))
    assert "," not in " ".join(s.text for s in beam)
    cancel = threading.Event()
    cancel.set()
    cancelled, _ = transcriber.transcribe(audio, TranscribeOptions(cancel=cancel))
    assert list(cancelled) == []


def test_transcribe_cli_runs_a_ggml_file(ggml_tiny_en, capsys):
    with pytest.raises(SystemExit) as done:
        main(["transcribe", "--audio_path", str(REFERENCE_CLIP), "--model_path", str(ggml_tiny_en)])
    assert done.value.code == 0
    result = json.loads(capsys.readouterr().out)
    assert "lazy dog" in result["text"].lower()
    assert result["results"] and result["results"][0]["end"] > result["results"][0]["start"]


def test_bad_ggml_files_are_clear_errors(tiny_whisper_en_4x, tmp_path):
    not_ggml = tmp_path / "model.bin"
    not_ggml.write_bytes(b"\0" * 64)
    with pytest.raises(ModelError, match="not a whisper.cpp GGML model"):
        load_transcriber(str(not_ggml))
    with pytest.raises(ModelError, match="bad magic"):
        load_transcriber(str(not_ggml), engine="whispercpp")

    f32 = tmp_path / "f32.bin"
    export_ggml(tiny_whisper_en_4x, f32, dtype="f32")
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(f32.read_bytes()[:-100])
    with pytest.raises(ModelError, match="truncated"):
        load_transcriber(str(truncated))
    # whisper.cpp would abort the process on an f32 file: refused before it is loaded
    with pytest.raises(ModelError) as refused:
        load_transcriber(str(f32))
    assert str(refused.value).endswith(F32_HINT)
