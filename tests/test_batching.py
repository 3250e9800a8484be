"""Many files, one batch: short clips of different files decoded together (CT2 engine) give
each file its own transcript, in order, equal to decoding them one by one."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from whisper_tune.audio import load_audio
from whisper_tune.cli import main
from whisper_tune.engine_settings import EngineSettings
from whisper_tune.inference import TranscribeOptions
from whisper_tune.inference.loader import ct2_compute_type

SENTENCES = (
    "I left my umbrella on the bus this morning.",
    "Please remember to lock the front door when you leave.",
    "The train to the city leaves at half past eight.",
)


@pytest.fixture(scope="module")
def clips(speech_dir, english_clip):
    """Four English clips (wav paths) and their texts: three sentences and the shared clip."""
    from whisper_tune.synth import synthesize_to_file

    paths = [
        synthesize_to_file(speech_dir / f"batch{i}.wav", text, "en", seed=i)
        for i, text in enumerate(SENTENCES)
    ]
    return [*paths, english_clip[0]], [*SENTENCES, english_clip[1]]


def test_default_compute_type_is_int8_on_a_cpu_and_float16_on_a_gpu():
    assert ct2_compute_type(EngineSettings()) == "int8"
    assert ct2_compute_type(EngineSettings(device="cuda")) == "float16"
    assert ct2_compute_type(EngineSettings(device="cuda", use_int8=True)) == "int8_float16"
    assert ct2_compute_type(EngineSettings(compute_type="float32", use_int8=True)) == "float32"


@pytest.mark.slow
@pytest.mark.parametrize("timestamps", [True, False])
def test_batch_equals_one_by_one(tiny_en_transcriber, clips, timestamps):
    """Every segment (text, times, scores, tokens) of each clip decoded in one batch equals
    the clip decoded alone; the compute type is CPU int8 by default."""
    audios = [load_audio(path) for path in clips[0]]
    options = TranscribeOptions(language="en", beam_size=2, timestamps=timestamps)
    batched = tiny_en_transcriber.transcribe_batch(audios, options)
    alone = [tuple(tiny_en_transcriber.transcribe(audio, options)[0]) for audio in audios]
    assert [segments for segments, _ in batched] == alone
    for (segments, info), text, audio in zip(batched, clips[1], audios, strict=True):
        assert text.split()[1].lower() in " ".join(s.text for s in segments).lower()
        assert info.language == "en" and info.duration == len(audio) / 16000
    assert tiny_en_transcriber.compute_type.startswith("int8")


@pytest.mark.slow
def test_language_detected_per_clip_in_a_batch(english_clip, chinese_clip):
    """A multilingual model detects each clip's own language inside one batch, as it does
    for the clip alone (base hears the synthetic Mandarin as Thai either way)."""
    from whisper_tune.inference import load_transcriber

    base = load_transcriber("base", local_files_only=True)
    audios = [load_audio(english_clip[0]), load_audio(chinese_clip[0])]
    options = TranscribeOptions(beam_size=1, timestamps=False)
    decode_alone = base.transcribe
    redecoded = []
    base.transcribe = lambda audio, opts: redecoded.append(opts) or decode_alone(audio, opts)
    batched = base.transcribe_batch(audios, options)
    assert not redecoded  # each clip decoded in the batch, in its own language
    alone = [decode_alone(audio, options) for audio in audios]
    languages = [info.language for _, info in batched]
    assert (
        languages == [info.language for _, info in alone] and languages[0] == "en" != languages[1]
    )
    assert [segments for segments, _ in batched] == [tuple(s) for s, _ in alone]


def _transcribe(capsys, *args: str) -> tuple[int, list[dict], str]:
    with pytest.raises(SystemExit) as done:
        main(["transcribe", "--beam_size", "2", *args])
    captured = capsys.readouterr()
    return done.value.code, [json.loads(line) for line in captured.out.splitlines()], captured.err


@pytest.mark.slow
def test_folder_in_one_batch_keeps_order_and_skips_a_corrupt_file(capsys, tmp_path, clips):
    """A folder decoded in one batch larger than the number of files prints the same lines,
    in file order, as one file at a time; a corrupt file among them is named and skipped."""
    folder = tmp_path / "in"
    folder.mkdir()
    names = ["a.wav", "b.wav", "d.wav", "e.wav"]
    for name, path in zip(names, clips[0], strict=True):
        shutil.copy(path, folder / name)
    (folder / "c.wav").write_bytes(b"RIFF not really a wav")
    code, batched, err = _transcribe(capsys, "--audio_path", str(folder), "--batch_size", "16")
    assert code == 2 and "1 of 5 files could not be read" in err and "c.wav" in err
    assert [line["audio_path"] for line in batched] == [str(folder / n) for n in names]
    for line, text in zip(batched, clips[1], strict=True):
        assert text.split()[1].lower() in line["text"].lower()
    code, alone, _ = _transcribe(capsys, "--audio_path", str(folder), "--batch_size", "1")
    assert code == 2 and alone == batched


@pytest.mark.slow
def test_evaluate_batched_scores_as_one_by_one(tmp_path, clips):
    """evaluate's default batch gives the same hypotheses and errors as --batch_size 1 and
    records the compute type it decoded in."""
    manifest = tmp_path / "test.jsonl"
    lines = [{"audio": {"path": str(p)}, "sentence": t} for p, t in zip(*clips, strict=True)]
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    rows = {}
    for batch in ("1", "4"):
        report = tmp_path / f"report{batch}"
        with pytest.raises(SystemExit) as done:
            main(
                [
                    *("evaluate", "--test_data", str(manifest), "--model_path", "tiny.en"),
                    *("--num_workers", "0", "--batch_size", batch, "--output_dir", str(report)),
                ]
            )
        assert done.value.code == 0
        with open(report / "utterances.csv", encoding="utf-8") as handle:
            rows[batch] = list(csv.DictReader(handle))
        summary = json.loads((report / "summary.json").read_text())
        assert summary["compute_type"] == "int8_float32"
    assert rows["4"] == rows["1"] and len(rows["1"]) == 4
