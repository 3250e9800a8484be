"""``evaluate``: CER/WER of a Whisper model on a manifest, with a per-utterance report.

Writes ``summary.json`` (metric, score, utterances, audio/wall seconds, RTF = processing
seconds / audio seconds, lower is faster) and ``utterances.csv`` (id, audio, reference,
hypothesis, errors, reference length, duration) — the CSV the seed's users asked for.
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from whisper_tune.audio import SAMPLE_RATE
from whisper_tune.data.dataset import ManifestDataset, check_audio_files
from whisper_tune.data.manifest import Utterance, read_manifest
from whisper_tune.errors import ManifestError, WhisperTuneError
from whisper_tune.eval_config import EvalConfig
from whisper_tune.fsutil import atomic_dir
from whisper_tune.languages import check_task, language_code
from whisper_tune.models import load_processor, load_whisper, model_name
from whisper_tune.resolve import resolve_hf_model
from whisper_tune.text import TextOptions, error_rate, score_transcript


@dataclass
class UtteranceResult:
    id: str
    audio: str
    reference: str
    hypothesis: str
    errors: int
    reference_length: int
    duration: float


@dataclass
class EvalReport:
    metric: str
    score: float
    utterances: int
    errors: int
    reference_units: int
    audio_seconds: float
    wall_seconds: float
    rtf: float
    model: str
    test_data: str
    options: dict = field(default_factory=dict)
    rows: list[UtteranceResult] = field(default_factory=list, repr=False)
    report_dir: str | None = None

    def summary(self) -> dict:
        record = asdict(self)
        record.pop("rows")
        return record


class _Features:
    """Sample maker for evaluation: log-mel features only."""

    def __init__(self, feature_extractor) -> None:
        self.feature_extractor = feature_extractor

    def __call__(self, utterance: Utterance, audio, index: int) -> dict:
        features = self.feature_extractor(
            audio, sampling_rate=SAMPLE_RATE, return_tensors="np"
        ).input_features[0]
        return {"index": index, "input_features": features, "seconds": len(audio) / SAMPLE_RATE}


def _collate(samples: list[dict]) -> list[dict]:
    return samples


def evaluate(config: EvalConfig, progress: bool = True) -> EvalReport:
    """Transcribe every utterance of ``config.test_data`` and score it."""
    if config.metric not in ("cer", "wer"):
        raise WhisperTuneError(f"unknown metric {config.metric!r}: use cer or wer")
    check_task(config.task)
    language = language_code(config.language)
    utterances, stats = read_manifest(
        config.test_data, config.min_audio_len, config.max_audio_len, config.skip_bad
    )
    utterances = check_audio_files(utterances, config.skip_bad)
    if progress:
        print(f"test data {config.test_data}: {stats.summary()}")
    reference = resolve_hf_model(config.model_path, config.local_files_only)
    processor = load_processor(reference, config.local_files_only)
    model = load_whisper(reference, config.local_files_only).eval()
    multilingual = bool(getattr(model.generation_config, "is_multilingual", False))
    text_options = TextOptions(config.remove_pun, config.to_simple, config.english_normalizer)

    loader = torch.utils.data.DataLoader(
        ManifestDataset(utterances, _Features(processor.feature_extractor)),
        batch_size=config.batch_size,
        num_workers=config.num_workers,
        collate_fn=_collate,
    )
    rows: list[UtteranceResult] = []
    audio_seconds = 0.0
    started = time.perf_counter()
    bar = tqdm(total=len(utterances), desc="evaluating", unit="utt", disable=not progress)
    for batch in loader:
        good = _drop_bad(batch, config.skip_bad, bar)
        if not good:
            continue
        texts = _transcribe_batch(
            model, processor, good, utterances, language, config, multilingual
        )
        for sample, hypothesis in zip(good, texts, strict=True):
            utterance = utterances[sample["index"]]
            scored = score_transcript(utterance.sentence, hypothesis, config.metric, text_options)
            rows.append(
                UtteranceResult(
                    id=utterance.source.rsplit(":", 1)[-1],
                    audio=utterance.audio_path,
                    reference=scored.reference,
                    hypothesis=scored.hypothesis,
                    errors=scored.errors,
                    reference_length=scored.reference_length,
                    duration=round(sample["seconds"], 3),
                )
            )
            audio_seconds += sample["seconds"]
        bar.update(len(batch))
    bar.close()
    wall = time.perf_counter() - started
    errors = sum(r.errors for r in rows)
    units = sum(r.reference_length for r in rows)
    report = EvalReport(
        metric=config.metric,
        score=error_rate(errors, units),
        utterances=len(rows),
        errors=errors,
        reference_units=units,
        audio_seconds=round(audio_seconds, 3),
        wall_seconds=round(wall, 3),
        rtf=round(wall / audio_seconds, 4) if audio_seconds else 0.0,
        model=config.model_path,
        test_data=config.test_data,
        options=asdict(config),
        rows=rows,
        report_dir=str(_report_folder(config)),
    )
    _write_report(report)
    return report


def _drop_bad(batch: list[dict], skip_bad: bool, bar) -> list[dict]:
    good = []
    for sample in batch:
        if "bad" in sample:
            if not skip_bad:
                raise ManifestError(sample["bad"] + " (use --skip_bad to skip such files)")
            bar.write(f"skipped: {sample['bad']}")
        else:
            good.append(sample)
    return good


@torch.inference_mode()
def _transcribe_batch(model, processor, samples, utterances, language, config, multilingual):
    features = torch.from_numpy(np.stack([s["input_features"] for s in samples]))
    features = features.to(model.device, model.dtype)
    longest = max(s["seconds"] for s in samples)
    kwargs: dict = {
        "num_beams": config.num_beams,
        "return_timestamps": config.timestamps,
        "max_new_tokens": token_budget(longest),
    }
    if multilingual:
        languages = [utterances[s["index"]].language or language for s in samples]
        if all(languages):
            kwargs["language"] = languages if len(set(languages)) > 1 else languages[0]
        kwargs["task"] = config.task
    tokens = model.generate(features, **kwargs)
    if not isinstance(tokens, torch.Tensor):
        tokens = tokens["sequences"]
    return processor.tokenizer.batch_decode(tokens, skip_special_tokens=True)


def token_budget(seconds: float) -> int:
    """Generous room for real speech (15 tokens/s), a stop for runaway repetition loops."""
    return min(440, int(15 * seconds) + 16)


def _report_folder(config: EvalConfig) -> Path:
    return Path(
        config.output_dir
        or Path("eval_results") / f"{model_name(config.model_path)}_{Path(config.test_data).stem}"
    )


def _write_report(report: EvalReport) -> None:
    with atomic_dir(report.report_dir) as tmp:
        (tmp / "summary.json").write_text(
            json.dumps(report.summary(), indent=2, ensure_ascii=False), encoding="utf-8"
        )
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(UtteranceResult.__dataclass_fields__))
        writer.writeheader()
        for row in report.rows:
            writer.writerow(asdict(row))
        (tmp / "utterances.csv").write_text(buffer.getvalue(), encoding="utf-8")
