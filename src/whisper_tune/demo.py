"""``demo``: the whole path on a bundled model and speech synthesised here.

1. synthesise a domain-adaptation corpus (rare invented terms + general sentences + no-speech
   clips), split so no test sentence is trained on;
2. evaluate the stock model; 3. fine-tune LoRA adapters on the CPU (decoder only for English;
   decoder + base's top four encoder layers for the robotic Mandarin voice; the frozen encoder
   part runs once per clip); 4. merge;
5. convert to CTranslate2 int8 (parity-checked) and transcribe a held-out clip with timestamps;
6. evaluate that int8 model, as it ships, on the same sets, and on recorded English speech
   (``data/recordings``, the language left to the model: WER and how many it heard as
   English); then stock, merged, CTranslate2 int8 and GGML q5_0 (whisper.cpp, with the ``ggml``
   extra) side by side on the held-out domain sentences;
7. check a silent clip decodes to nothing; write ``report.md`` / ``report.json``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from whisper_tune import corpus_text, synth
from whisper_tune.audio import write_wav
from whisper_tune.data.manifest import Utterance, write_manifest
from whisper_tune.data.real_speech import write_real_speech
from whisper_tune.evaluate import EvalConfig, comparison_rows, evaluate_models, rows_markdown
from whisper_tune.fsutil import atomic_write_text
from whisper_tune.languages import default_metric, language_code
from whisper_tune.merge import merge_lora
from whisper_tune.train.config import FinetuneConfig
from whisper_tune.train.trainer import finetune


@dataclass(frozen=True)
class Recipe:
    """What differs between the English and the Mandarin demo."""

    language: str
    base_model: str
    metric: str
    general: tuple[str, ...]
    domain: tuple[str, ...]
    terms: tuple[str, ...]
    learning_rate: float
    epochs: float
    # encoder layers left without adapters (cached once per clip); None: the whole encoder.
    # New vocabulary needs only the decoder; a new voice (the robotic Mandarin one) needs the
    # top encoder layers too.
    frozen_encoder_layers: int | None = None


RECIPES = {
    "en": Recipe(
        "en",
        "tiny.en",
        "wer",
        corpus_text.ENGLISH_GENERAL,
        corpus_text.ENGLISH_DOMAIN,
        corpus_text.ENGLISH_TERMS,
        learning_rate=1e-3,
        epochs=6,
    ),
    "zh": Recipe(
        "zh",
        "base",
        "cer",
        corpus_text.MANDARIN_GENERAL,
        corpus_text.MANDARIN_DOMAIN,
        corpus_text.MANDARIN_TERMS,
        learning_rate=1e-3,
        epochs=4,
        frozen_encoder_layers=2,  # of base's 6
    ),
}


QUICK_REAL_SPEECH_CLIPS = 6  # recorded clips (21 s, short to long) scored in a quick run


@dataclass
class DemoConfig:
    output_dir: str = "demo_output"
    language: str = "en"
    base_model: str | None = None  # default: the recipe's bundled model
    epochs: float | None = None
    batch_size: int = 8
    test_fraction: float = 0.3
    no_speech_clips: int = 6
    seed: int = 0
    # a third of the sentences, 2 epochs, the whole encoder frozen: a smoke run of every step
    quick: bool = False


@dataclass
class DemoReport:
    language: str
    base_model: str
    metric: str
    train_utterances: int
    test_domain_utterances: int
    test_general_utterances: int
    test_real_utterances: int
    before: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)
    train_seconds: float = 0.0
    train_steps: int = 0
    loss: tuple[float | None, float | None] = (None, None)
    # recorded English clips the model detected as English, "correct/clips", before and after
    language_id: dict = field(default_factory=dict)
    # stock, merged, CTranslate2 int8 (and GGML q5_0) on the held-out domain sentences
    side_by_side: list[dict] = field(default_factory=list)
    ct2_parity: dict = field(default_factory=dict)
    ct2_parity_ok: bool = False  # the conversion's parity check passed (convert.parity)
    held_out_clip: dict = field(default_factory=dict)
    silence_text: str | None = None
    timestamps_ok: bool = False
    total_seconds: float = 0.0
    artefacts: dict = field(default_factory=dict)

    def table(self) -> str:
        name = self.metric.upper()
        rows = [
            f"| test set | stock {self.base_model} | fine-tuned | change |",
            "|---|---|---|---|",
        ]
        sets = (
            (name, "domain", "domain sentences"),
            (name, "general", "general sentences"),
            ("WER", "real", "recorded English speech (language detected)"),
        )
        for metric, key, label in sets:
            before, after = self.before[key], self.after[key]
            rows.append(
                f"| {metric} on {label} | {before:.4f} | {after:.4f} | {_relative(before, after)} |"
            )
        rows.append(
            "| recorded English speech detected as English | "
            f"{self.language_id['before']} | {self.language_id['after']} | |"
        )
        rows.append(
            f"| training time | | {self.train_seconds:.0f} s ({self.train_steps} steps) | |"
        )
        return "\n".join(rows)


def run_demo(config: DemoConfig) -> DemoReport:
    """Run every step, printing progress; artefacts and the report land in ``output_dir``."""
    started = time.perf_counter()
    language = language_code(config.language)
    if language not in RECIPES:
        raise ValueError(f"no demo recipe for language {config.language!r} (use en or zh)")
    recipe = RECIPES[language]
    base_model = config.base_model or recipe.base_model
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)

    _step(1, "synthesising the corpus")
    manifests = build_corpus(recipe, out / "data", config)
    manifests["test_real"] = write_real_speech(
        out / "data" / "test_real.jsonl",
        QUICK_REAL_SPEECH_CLIPS if config.quick else None,
    )
    report = DemoReport(
        language=language,
        base_model=base_model,
        metric=recipe.metric,
        train_utterances=_count(manifests["train"]),
        test_domain_utterances=_count(manifests["test_domain"]),
        test_general_utterances=_count(manifests["test_general"]),
        test_real_utterances=_count(manifests["test_real"]),
    )

    _step(2, f"evaluating the stock {base_model}")
    report.before = _evaluate_sets(base_model, manifests, recipe, out / "eval" / "stock")
    ((report.before["real"], report.language_id["before"]),) = evaluate_real(
        [base_model], manifests["test_real"], out / "eval" / "stock"
    )

    _step(3, "fine-tuning with LoRA")
    result = finetune(
        FinetuneConfig(
            train_data=str(manifests["train"]),
            base_model=base_model,
            output_dir=str(out / "train"),
            language=language,
            timestamps=True,
            freeze_encoder=config.quick or recipe.frozen_encoder_layers is None,
            freeze_encoder_layers=recipe.frozen_encoder_layers or 0,
            num_train_epochs=config.epochs or (2 if config.quick else recipe.epochs),
            per_device_train_batch_size=config.batch_size,
            learning_rate=recipe.learning_rate,
            warmup_steps=5,
            logging_steps=1 if config.quick else 5,
            save_steps=100_000,
            num_workers=1,
            seed=config.seed,
        )
    )
    report.train_seconds = round(result.train_seconds, 1)
    report.train_steps = result.steps
    report.loss = (result.first_loss, result.last_loss)

    _step(4, "merging the adapter")
    merged = merge_lora(result.final_checkpoint, out / "models")

    _step(5, "converting to CTranslate2 and transcribing a held-out clip")
    from whisper_tune.convert.ct2_export import convert_to_ct2
    from whisper_tune.convert.parity import parity_passed

    held_out = _first_audio(manifests["test_domain"])
    ct2_dir = out / "models" / f"{merged.name}-ct2"
    parity = convert_to_ct2(
        str(merged), str(ct2_dir), quantization="int8", audio_path=str(held_out)
    )
    report.ct2_parity = _as_dict(parity)
    report.ct2_parity_ok = parity_passed(report.ct2_parity["parity"])
    report.held_out_clip, report.timestamps_ok = _transcribe(ct2_dir, held_out, language)

    _step(6, "evaluating the fine-tuned model as it ships (CTranslate2 int8), then side by side")
    deployed = [base_model, str(merged), str(ct2_dir), *_ggml_q5(merged, out / "models")]
    report.side_by_side = _side_by_side(deployed, manifests["test_domain"], recipe, out / "eval")
    (shipped,) = [row for row in report.side_by_side if row["model"] == str(ct2_dir)]
    report.after = {"domain": shipped[recipe.metric]}  # scored once, in the side-by-side run
    report.after |= _evaluate_sets(
        str(ct2_dir), manifests, recipe, out / "eval" / "finetuned", ("general",)
    )
    ((report.after["real"], report.language_id["after"]),) = evaluate_real(
        [str(ct2_dir)], manifests["test_real"], out / "eval" / "finetuned"
    )

    _step(7, "checking that silence stays silent")
    report.silence_text = _transcribe(ct2_dir, manifests["silence"], language)[0]["text"]

    report.total_seconds = round(time.perf_counter() - started, 1)
    report.artefacts = {
        "data": str(out / "data"),
        "checkpoint": str(result.final_checkpoint),
        "merged_model": str(merged),
        "ct2_model": str(ct2_dir),
        "evaluations": str(out / "eval"),
    }
    _write_report(report, out)
    return report


def build_corpus(recipe: Recipe, folder: Path, config: DemoConfig) -> dict[str, Path]:
    """Synthesise train / held-out test manifests (+ a silent clip) in ``folder``."""
    rng = np.random.default_rng(config.seed)
    share = 3 if config.quick else 1
    domain_train, domain_test = corpus_text.train_test_split(
        recipe.domain[: len(recipe.domain) // share],
        config.test_fraction,
        config.seed,
        recipe.terms,
    )
    general_train, general_test = corpus_text.train_test_split(
        recipe.general[: len(recipe.general) // share], config.test_fraction, config.seed
    )
    plan = (
        [("train", s) for s in domain_train]
        + [("train", s) for s in general_train]
        + [("test_domain", s) for s in domain_test]
        + [("test_general", s) for s in general_test]
    )
    sets: dict[str, list[Utterance]] = {"train": [], "test_domain": [], "test_general": []}
    sets |= synth.spoken_sets(plan, recipe.language, folder, rng, config.seed)
    sets["train"] += synth.no_speech_clips(
        config.no_speech_clips, recipe.language, folder, rng, config.seed
    )
    silence_path = folder / "wav" / "held_out_silence.wav"
    write_wav(silence_path, synth.noise_clip(3.0, seed=config.seed + 2000))
    manifests = {}
    for split, utterances in sets.items():
        manifests[split] = folder / f"{split}.jsonl"
        write_manifest(manifests[split], utterances)
    manifests["silence"] = silence_path
    return manifests


def scoring(
    language: str,
    manifest: Path,
    models: list[str],
    folder: Path,
    detect_language: bool = False,
) -> EvalConfig:
    """How the demo scores ``models`` on a held-out set in ``language``: its metric (CER for
    Mandarin), punctuation removed, its normalisation; the language given to the model, or
    with ``detect_language`` left to it (and the language ID counted)."""
    return EvalConfig(
        test_data=str(manifest),
        model_path=tuple(models),
        metric=default_metric(language),
        language=language,
        detect_language=detect_language,
        remove_pun=True,
        to_simple=language == "zh",
        english_normalizer=language == "en",
        batch_size=8,
        num_workers=0,
        output_dir=str(folder),
    )


def _evaluate_sets(
    model: str,
    manifests: dict[str, Path],
    recipe: Recipe,
    folder: Path,
    keys: tuple[str, ...] = ("domain", "general"),
) -> dict:
    """``model``'s score on each held-out set named in ``keys``, printed as it comes."""
    scores = {}
    for key in keys:
        manifest = manifests[f"test_{key}"]
        (report,) = evaluate_models(scoring(recipe.language, manifest, [model], folder / key))
        scores[key] = round(report.score, 4)
        print(f"    {recipe.metric.upper()} on {key} sentences: {report.score:.4f}")
    return scores


def _ggml_q5(merged: Path, folder: Path) -> list[str]:
    """The merged model as a whisper.cpp q5_0 file, or nothing without the ``ggml`` extra."""
    import importlib.util

    if importlib.util.find_spec("pywhispercpp") is None:
        print("    (no GGML file: pip install 'whisper-tune[ggml]' for whisper.cpp)")
        return []
    from whisper_tune.convert.ggml import export_ggml

    path = folder / f"{merged.name}-q5_0.bin"
    export_ggml(str(merged), path, quantize="q5_0", local_files_only=True)
    return [str(path)]


def _side_by_side(models: list[str], manifest: Path, recipe: Recipe, folder: Path) -> list[dict]:
    """Every form of the model scored on the held-out domain sentences in one evaluate run."""
    reports = evaluate_models(scoring(recipe.language, manifest, models, folder / "side_by_side"))
    rows = comparison_rows(reports)
    print(rows_markdown(rows))
    return rows


def evaluate_real(models: list[str], manifest: Path, folder: Path) -> list[tuple[float, str]]:
    """Each model's WER and language ID ("correct/clips") on the recorded English clips, the
    language left to the model (a tuned multilingual model must still detect it); the demo
    scores CTranslate2 models (the bundled stock one, the converted int8 one)."""
    reports = evaluate_models(
        EvalConfig(
            test_data=str(manifest),
            model_path=tuple(models),
            metric="wer",
            detect_language=True,
            remove_pun=True,
            english_normalizer=True,
            num_workers=0,
            output_dir=str(folder / "real"),
        )
    )
    for report in reports:
        print(
            f"    WER on recorded English speech: {report.score:.4f} "
            f"(detected as English: {report.language_id})"
        )
    return [(round(report.score, 4), report.language_id) for report in reports]


def _transcribe(ct2_dir: Path, audio_path: Path, language: str) -> tuple[dict, bool]:
    from whisper_tune.audio import load_audio
    from whisper_tune.inference import load_transcriber
    from whisper_tune.inference.types import TranscribeOptions

    transcriber = load_transcriber(str(ct2_dir), compute_type="int8")
    # beam search at temperature 0 only: the fallback's sampled re-decodes are random (a quick
    # model looping on a held-out clip got a different sample on every machine); the guard cuts
    # a loop back to the speech before it
    options = TranscribeOptions(language=language, beam_size=5, temperature=0.0)
    segments, info = transcriber.transcribe(load_audio(audio_path), options)
    segments = list(segments)
    timed = bool(segments) and all(s.end > s.start for s in segments)
    text = "".join(s.text for s in segments).strip()
    return (
        {
            "audio": str(audio_path),
            "text": text,
            "segments": [{"start": s.start, "end": s.end, "text": s.text} for s in segments],
        },
        timed,
    )


def _write_report(report: DemoReport, out: Path) -> None:
    atomic_write_text(out / "report.json", json.dumps(asdict(report), indent=2, ensure_ascii=False))
    clip = report.held_out_clip
    lines = [
        f"# whisper-tune demo ({report.language}, {report.base_model})",
        "",
        report.table(),
        "",
        "Held-out domain sentences, every form of the model (stock, merged, CTranslate2 int8, "
        "GGML q5_0):",
        "",
        rows_markdown(report.side_by_side),
        f"- train utterances: {report.train_utterances} (incl. no-speech clips); held-out "
        f"domain: {report.test_domain_utterances}, general: {report.test_general_utterances}, "
        f"recorded: {report.test_real_utterances}",
        f"- training loss: {report.loss[0]:.4f} → {report.loss[1]:.4f}",
        f"- CTranslate2 parity {'passed' if report.ct2_parity_ok else 'FAILED'}: "
        f"{json.dumps(report.ct2_parity, ensure_ascii=False)}",
        f"- held-out clip ({clip.get('audio')}): {clip.get('text')!r}",
        f"- segment timestamps after fine-tuning: {'yes' if report.timestamps_ok else 'NO'}",
        f"- silent clip transcribed as: {report.silence_text!r}",
        f"- total time: {report.total_seconds:.0f} s",
    ]
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")


def _relative(before: float, after: float) -> str:
    if before == 0:
        return f"{after - before:+.4f}"
    return f"{(after - before) / before * 100:+.0f}%"


def _as_dict(value) -> dict:
    if isinstance(value, dict):
        return value
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    return {"result": str(value)}


def _first_audio(manifest: Path) -> Path:
    record = json.loads(manifest.read_text(encoding="utf-8").splitlines()[0])
    return (manifest.parent / record["audio"]["path"]).resolve()


def _count(manifest: Path) -> int:
    return sum(1 for line in manifest.read_text(encoding="utf-8").splitlines() if line.strip())


def _step(number: int, what: str) -> None:
    print(f"[{number}/7] {what} ...", flush=True)
