"""One decoding policy: both engines follow it, record it, and the JSON writers write it."""

from __future__ import annotations

import json

import pytest

from whisper_tune.audio import SAMPLE_RATE, load_audio
from whisper_tune.inference import TranscribeOptions, load_transcriber
from whisper_tune.inference.guards import hallucination_reason
from whisper_tune.inference.hf import _Decoded
from whisper_tune.inference.policy import DecodingPolicy
from whisper_tune.inference.types import Segment
from whisper_tune.resolve import bundled_hf_dir


@pytest.fixture(scope="module")
def engines():
    """Both engines on the bundled tiny.en (one torch thread, as in test_inference)."""
    import torch

    threads = torch.get_num_threads()
    yield {
        "ct2": load_transcriber("tiny.en", use_int8=True),
        "transformers": load_transcriber(str(bundled_hf_dir("tiny.en")), cpu_threads=1),
    }
    torch.set_num_threads(threads)


def test_options_make_the_policy_with_one_set_of_defaults():
    assert TranscribeOptions().policy() == DecodingPolicy()
    policy = TranscribeOptions(temperature=0.3, condition_on_previous_text=False).policy()
    assert policy.temperature == (0.3,) and not policy.condition_on_previous_text
    assert policy.compression_ratio_threshold == DecodingPolicy().compression_ratio_threshold


def test_the_guard_reads_the_policy_thresholds():
    weak = Segment(0, 2, "You", avg_logprob=-0.9, no_speech_prob=0.7)
    assert hallucination_reason(weak) is None  # log-prob above openai/whisper's -1.0
    strict = DecodingPolicy(log_prob_threshold=-0.5)
    assert hallucination_reason(weak, policy=strict).startswith("no speech")


def test_a_looping_window_is_decoded_again_by_the_transformers_engine():
    loop = "静饮赛肯定是肯定" + "肯" * 30
    decoded = _Decoded([], loop, -0.2, 0.01, 1.9, 0.0)  # likely tokens, ratio under 2.4
    assert decoded.needs_fallback(DecodingPolicy())
    assert not decoded.needs_fallback(DecodingPolicy(hallucination_guard=False))
    fine = _Decoded([], "我们明天早上九点在北京开会。", -0.2, 0.01, 0.8, 0.0)
    assert not fine.needs_fallback(DecodingPolicy())


@pytest.mark.parametrize("engine", ["ct2", "transformers"])
def test_both_engines_record_the_policy_they_used(engines, english_clip, engine):
    audio = load_audio(english_clip[0])
    options = TranscribeOptions(
        beam_size=1,
        temperature=(0.0, 0.4),
        condition_on_previous_text=False,
        initial_prompt="Weather news.",
    )
    segments, info = engines[engine].transcribe(audio, options)
    assert "snow" in " ".join(s.text for s in segments).lower()
    assert info.transcription_options == options.policy()
    assert info.transcription_options.initial_prompt == "Weather news."

    batched = TranscribeOptions(beam_size=1, batch_size=2)
    segments, info = engines[engine].transcribe(audio, batched)
    assert list(segments)
    used = info.transcription_options
    assert used.temperature == (0.0,) and not used.condition_on_previous_text


def _prompts(transcriber, monkeypatch) -> list:
    """Record the decoder prompt of every ``generate`` call (the real one runs)."""
    calls = []
    generate = transcriber.model.generate

    def spy(*args, **kwargs):
        calls.append(kwargs.get("prompt_ids"))
        return generate(*args, **kwargs)

    monkeypatch.setattr(transcriber.model, "generate", spy)
    return calls


@pytest.mark.slow
def test_the_transformers_engine_conditions_on_previous_text(
    engines, long_english_file, monkeypatch
):
    transcriber = engines["transformers"]
    tokenizer = transcriber.processor.tokenizer
    audio = load_audio(long_english_file[0])[: 45 * SAMPLE_RATE]  # two windows
    calls = _prompts(transcriber, monkeypatch)

    options = TranscribeOptions(beam_size=1, hotwords="Quillon")
    segments = list(transcriber.transcribe(audio, options)[0])
    assert segments[-1].end > 30
    first_window = [s.text for s in segments if s.end <= 30]
    prompts = [tokenizer.decode(p[1:].tolist()).strip() for p in calls]  # after startofprev
    assert prompts[0] == "Quillon"
    later = [p for p in prompts if p != "Quillon"]  # (re-decodes of a window share its prompt)
    assert later and later[0].startswith("Quillon")  # hotwords first, then the history
    assert first_window[0] in later[0] and first_window[-1] in later[0]

    calls.clear()
    options = TranscribeOptions(beam_size=1, hotwords="Quillon", condition_on_previous_text=False)
    unconditioned = list(transcriber.transcribe(audio, options)[0])
    assert len(calls) >= 2 and unconditioned
    for prompt in calls:
        assert tokenizer.decode(prompt[1:].tolist()).strip() == "Quillon"


def test_json_and_verbose_json_record_the_options(english_clip, tmp_path, capsys):
    from whisper_tune.cli import main

    args = ["transcribe", "--audio_path", str(english_clip[0]), "--beam_size", "1"]
    with pytest.raises(SystemExit) as done:
        main(args)
    assert done.value.code == 0
    options = json.loads(capsys.readouterr().out)["transcription_options"]
    assert options == json.loads(json.dumps(DecodingPolicy().as_dict()))

    with pytest.raises(SystemExit) as done:
        main([*args, "--output_dir", str(tmp_path), "--output_format", "verbose_json"])
    assert done.value.code == 0
    written = json.loads((tmp_path / "english.verbose.json").read_text(encoding="utf-8"))
    assert written["transcription_options"]["no_speech_threshold"] == 0.6
    assert written["transcription_options"]["temperature"] == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
