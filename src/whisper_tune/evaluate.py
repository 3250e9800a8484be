"""``evaluate``: CER/WER of one or more Whisper models on a manifest, side by side.

Every model runs through the same :class:`~whisper_tune.inference.types.Transcriber` that
``transcribe``, ``serve`` and the GUI use (Hugging Face dir, CTranslate2 dir, GGML file,
bundled name or hub id), with the same decoding options, so a score is the score of what is
deployed. Transcripts are normalised as the field reports scores: Whisper's English normaliser
for English, case-folding and punctuation removal otherwise; the metric defaults by language.

Writes to the report folder:

* ``summary.json``: the first model's figures at the top level (metric, score, utterances,
  audio/wall seconds, RTF = processing seconds / audio seconds, lower is faster) and every
  model's under ``models``;
* ``comparison.md`` and ``comparison.json``: one row per model (metric, RTF, peak RSS, size on
  disk, normalisation; with ``--detect_language`` the language ID count);
* ``utterances.csv``: id, audio, reference, duration, reference length, then a hypothesis and
  an errors column per model (``hypothesis`` and ``errors`` for a single model, the seed's CSV;
  with ``--detect_language`` a ``language`` column too: what the model heard);
* ``report.html`` with ``--report html`` (see :mod:`whisper_tune.evaluate_html`).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import gc
import io
import json
import resource
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from whisper_tune.audio import SAMPLE_RATE
from whisper_tune.data.dataset import ManifestDataset, read_utterances
from whisper_tune.data.hf_datasets import DatasetOptions
from whisper_tune.data.manifest import Utterance
from whisper_tune.errors import ManifestError, ModelError, WhisperTuneError
from whisper_tune.eval_config import EvalConfig
from whisper_tune.evaluate_html import REPORT_FILE, render_report
from whisper_tune.fsutil import atomic_dir, check_writable_dir
from whisper_tune.inference import TranscribeOptions, load_transcriber
from whisper_tune.inference.batching import group_full, is_short, transcribe_short
from whisper_tune.inference.postprocess import join_text
from whisper_tune.languages import check_task, default_metric, language_code
from whisper_tune.models import model_name, resolve_ct2_model
from whisper_tune.options import check_ranges
from whisper_tune.resolve import resolve_hf_model
from whisper_tune.text import (
    error_rate,
    normalization_name,
    score_transcript,
    scoring_options,
)


@dataclass
class UtteranceResult:
    id: str
    audio: str
    reference: str
    hypothesis: str
    errors: int
    reference_length: int
    duration: float
    language: str | None = None  # what the model decoded in (with --detect_language)


@dataclass
class EvalReport:
    """One model's score on the manifest."""

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
    engine: str = ""
    compute_type: str = ""  # what the engine computes in ("default" resolved)
    normalization: str = ""
    # --detect_language: clips whose detected language is the named one, "correct/named"
    language_id: str | None = None
    peak_rss_mb: float | None = None
    size_mb: float | None = None
    options: dict = field(default_factory=dict)
    rows: list[UtteranceResult] = field(default_factory=list, repr=False)
    report_dir: str | None = None

    def summary(self) -> dict:
        record = asdict(self)
        record.pop("rows")
        return record


@dataclass
class _Decoded:
    """One model's raw transcripts (by utterance index) and what running it cost."""

    model: str
    engine: str
    compute_type: str
    texts: dict[int, str]
    languages: dict[int, str]
    seconds: dict[int, float]
    wall_seconds: float
    peak_rss_mb: float | None
    size_mb: float | None


def _audio(utterance: Utterance, audio, index: int) -> dict:
    return {"index": index, "audio": audio, "seconds": len(audio) / SAMPLE_RATE}


def _collate(samples: list[dict]) -> list[dict]:
    return samples


def evaluate(config: EvalConfig, progress: bool = True) -> EvalReport:
    """Score the one model of ``config`` (see :func:`evaluate_models` for several)."""
    if len(config.model_path) != 1:
        raise WhisperTuneError("evaluate() scores one model; use evaluate_models() for several")
    return evaluate_models(config, progress)[0]


def evaluate_models(config: EvalConfig, progress: bool = True) -> list[EvalReport]:
    """Transcribe every utterance of ``config.test_data`` with each model and score it; write
    the report folder (see the module docstring) and return one report per model."""
    check_task(config.task)
    check_ranges(config, report_worst=config.report_worst >= 0)
    check_writable_dir(_report_folder(config), "report")
    language = language_code(config.language)
    utterances, stats, audio = read_utterances(
        config.test_data,
        "eval",
        DatasetOptions.of(config),
        config.min_audio_len,
        config.max_audio_len,
        config.skip_bad,
    )
    if progress:
        print(f"test data {config.test_data}: {stats.summary()}")
    asked = None if config.detect_language else language
    decoded = [
        _decode(reference, utterances, audio, asked, config, progress)
        for reference in config.model_path
    ]
    reports = _score(decoded, utterances, language, config)
    _write_report(reports, config)
    return reports


def _decode(
    reference: str,
    utterances: list[Utterance],
    audio,
    language: str | None,
    config: EvalConfig,
    progress,
) -> _Decoded:
    """Run one model over the manifest; RTF counts decoding (and audio reading), not loading."""
    gc.collect()
    _reset_peak_rss()
    transcriber = load_transcriber(
        reference,
        engine=config.engine,
        compute_type=config.compute_type,
        local_files_only=config.local_files_only,
        audio_ctx=config.audio_ctx,
    )
    _check_vocabulary(transcriber, reference, utterances, language, config)
    options = TranscribeOptions(
        task=config.task,
        beam_size=config.num_beams,
        batch_size=config.batch_size,
        timestamps=config.timestamps,
        initial_prompt=config.initial_prompt,
        hotwords=config.hotwords,
        hallucination_guard=config.hallucination_guard,
        temperature=TranscribeOptions.temperature if config.temperature_fallback else 0.0,
    )
    loader = torch.utils.data.DataLoader(
        ManifestDataset(utterances, _audio, audio),
        batch_size=1,
        num_workers=config.num_workers,
        collate_fn=_collate,
    )
    texts: dict[int, str] = {}
    languages: dict[int, str] = {}
    seconds: dict[int, float] = {}
    started = time.perf_counter()
    label = model_name(reference)
    bar = tqdm(total=len(utterances), desc=label, unit="utt", disable=not progress)
    for group in _groups(loader, config, bar):
        for sample, (segments, info) in _transcribe_samples(
            transcriber, group, utterances, language, options, config
        ):
            texts[sample["index"]] = join_text(segments, info.language)
            languages[sample["index"]] = info.language
            seconds[sample["index"]] = sample["seconds"]
        bar.update(len(group))
    bar.close()
    wall = time.perf_counter() - started
    engine = transcriber.engine
    compute_type = getattr(transcriber, "compute_type", config.compute_type)
    del transcriber
    return _Decoded(
        model=reference,
        engine=engine,
        compute_type=compute_type,
        texts=texts,
        languages=languages,
        seconds=seconds,
        wall_seconds=wall,
        peak_rss_mb=_peak_rss_mb(),
        size_mb=_size_mb(reference, engine, config.local_files_only),
    )


def _groups(loader, config: EvalConfig, bar) -> Iterator[list[dict]]:
    """The readable samples in groups of ``config.batch_size`` clips, or with
    ``config.pack_clips`` of enough audio to fill that many windows (unreadable ones
    counted)."""
    pending: list[dict] = []
    for batch in loader:
        good = _drop_bad(batch, config.skip_bad, bar)
        bar.update(len(batch) - len(good))
        pending.extend(good)
        seconds = sum(sample["seconds"] for sample in pending)
        if group_full(len(pending), seconds, config.batch_size, config.pack_clips):
            yield pending
            pending = []
    if pending:
        yield pending


def _transcribe_samples(
    transcriber,
    samples: list[dict],
    utterances: list[Utterance],
    language,
    options,
    config: EvalConfig,
):
    """Each sample with its (segments, info): short clips asking for one language decoded
    together (:func:`~whisper_tune.inference.batching.transcribe_short`, packed with
    ``config.pack_clips``), a clip longer than a window alone; with
    ``config.detect_language`` no clip asks for one."""
    asked = [
        None if config.detect_language else utterances[s["index"]].language or language
        for s in samples
    ]
    decoded: dict[int, tuple] = {}
    for wanted in dict.fromkeys(asked):
        group = [i for i, s in enumerate(samples) if asked[i] == wanted and is_short(s["audio"])]
        wanted_options = dataclasses.replace(options, language=wanted)
        found = transcribe_short(
            transcriber, [samples[i]["audio"] for i in group], wanted_options, config.pack_clips
        )
        decoded.update(zip(group, found, strict=True))
    for i, sample in enumerate(samples):
        if i not in decoded:
            decoded[i] = transcriber.transcribe(
                sample["audio"], dataclasses.replace(options, language=asked[i])
            )
    return [(sample, decoded[i]) for i, sample in enumerate(samples)]


def _check_vocabulary(
    transcriber, reference: str, utterances: list[Utterance], language, config: EvalConfig
) -> None:
    """An English-only model cannot transcribe a manifest in another language."""
    if transcriber.is_multilingual or config.task == "translate":
        return
    foreign = sorted({u.language or language for u in utterances} - {None, "en"})
    if foreign:
        raise ModelError(
            f"{reference} is an English-only model (its vocabulary has no language tokens) but "
            f"{config.test_data} is in {', '.join(foreign)}: use a multilingual model"
        )


def _score(
    decoded: list[_Decoded], utterances: list[Utterance], language: str | None, config: EvalConfig
) -> list[EvalReport]:
    """Score every model's transcripts with one metric and one normalisation per utterance,
    chosen from its language (the manifest's, --language, else what the first model heard)."""
    first = decoded[0]
    indices = sorted(first.texts)
    spoken = {i: utterances[i].language or language or first.languages[i] for i in indices}
    if config.task == "translate":
        spoken = dict.fromkeys(indices, "en")
    metric = config.metric or default_metric(_most_common(spoken.values()))
    if metric not in ("cer", "wer"):
        raise WhisperTuneError(f"unknown metric {metric!r}: use cer or wer")
    text_options = {
        i: scoring_options(
            spoken[i], config.remove_pun, config.to_simple, config.english_normalizer
        )
        for i in indices
    }
    normalization = " / ".join(
        sorted({normalization_name(options) for options in text_options.values()})
    )
    audio_seconds = sum(first.seconds.values())
    reports = []
    for run in decoded:
        rows = []
        for i in indices:
            utterance = utterances[i]
            scored = score_transcript(utterance.sentence, run.texts[i], metric, text_options[i])
            rows.append(
                UtteranceResult(
                    id=utterance.source.rsplit(":", 1)[-1],
                    audio=utterance.audio_path,
                    reference=scored.reference,
                    hypothesis=scored.hypothesis,
                    errors=scored.errors,
                    reference_length=scored.reference_length,
                    duration=round(run.seconds[i], 3),
                    language=run.languages[i] if config.detect_language else None,
                )
            )
        errors = sum(r.errors for r in rows)
        units = sum(r.reference_length for r in rows)
        reports.append(
            EvalReport(
                metric=metric,
                score=error_rate(errors, units),
                utterances=len(rows),
                errors=errors,
                reference_units=units,
                audio_seconds=round(audio_seconds, 3),
                wall_seconds=round(run.wall_seconds, 3),
                rtf=round(run.wall_seconds / audio_seconds, 4) if audio_seconds else 0.0,
                model=run.model,
                test_data=config.test_data,
                engine=run.engine,
                compute_type=run.compute_type,
                normalization=normalization,
                language_id=_language_id(rows, utterances, indices, language)
                if config.detect_language
                else None,
                peak_rss_mb=run.peak_rss_mb,
                size_mb=run.size_mb,
                options=asdict(config),
                rows=rows,
                report_dir=str(_report_folder(config)),
            )
        )
    return reports


def _most_common(values) -> str | None:
    counts = Counter(values)
    return counts.most_common(1)[0][0] if counts else None


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


def token_budget(seconds: float) -> int:
    """Generous room for real speech (15 tokens/s), a stop for runaway repetition loops."""
    return min(440, int(15 * seconds) + 16)


def _reset_peak_rss() -> None:
    """Start a new peak-RSS measurement (Linux: reset ``VmHWM``; elsewhere the peak is the
    process's so far)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_rss_mb() -> float | None:
    """Peak resident memory of this process since :func:`_reset_peak_rss`, in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _language_id(
    rows: list[UtteranceResult], utterances: list[Utterance], indices: list[int], language
) -> str:
    """ "correct/named": clips whose detected language is the one the manifest (or
    --language) names, out of the clips that name one."""
    named = [
        (row.language, utterances[i].language or language)
        for row, i in zip(rows, indices, strict=True)
        if utterances[i].language or language
    ]
    return f"{sum(found == expected for found, expected in named)}/{len(named)}"


def _size_mb(reference: str, engine: str, local_files_only: bool) -> float | None:
    """Size on disk of the model files the engine loaded (None for a hub id not on disk)."""
    if engine == "ct2":
        path = Path(resolve_ct2_model(reference, local_files_only))
    elif engine == "transformers":
        path = Path(resolve_hf_model(reference, local_files_only))
    else:
        path = Path(reference).expanduser()
    if not path.exists():
        return None
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return round(sum(p.stat().st_size for p in files) / 2**20, 1)


def _report_folder(config: EvalConfig) -> Path:
    return Path(
        config.output_dir
        or Path("eval_results")
        / f"{model_name(config.model_path[0])}_{Path(config.test_data).stem}"
    )


def comparison_rows(reports: list[EvalReport]) -> list[dict]:
    """One row per model: what the side-by-side table shows."""
    return [
        {
            "model": r.model,
            "engine": r.engine,
            r.metric: round(r.score, 4),
            "rtf": r.rtf,
            "peak_rss_mb": r.peak_rss_mb,
            "size_mb": r.size_mb,
            "utterances": r.utterances,
            "normalization": r.normalization,
        }
        | ({"language_id": r.language_id} if r.language_id is not None else {})
        for r in reports
    ]


def comparison_markdown(reports: list[EvalReport]) -> str:
    """The side-by-side table as Markdown."""
    return rows_markdown(comparison_rows(reports))


def rows_markdown(rows: list[dict]) -> str:
    """:func:`comparison_rows` as a Markdown table."""
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(row[key]) for key in header) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _cell(value) -> str:
    return "n/a" if value is None else str(value)


def _column_labels(reports: list[EvalReport]) -> list[str]:
    """utterances.csv column suffixes: none for one model, else each model's short name
    (numbered where two share one)."""
    if len(reports) == 1:
        return [""]
    names = [model_name(r.model) for r in reports]
    return [
        f"_{name}" if names.count(name) == 1 else f"_{i + 1}_{name}" for i, name in enumerate(names)
    ]


def _write_report(reports: list[EvalReport], config: EvalConfig) -> None:
    first = reports[0]
    models = [{k: v for k, v in r.summary().items() if k != "options"} for r in reports]
    summary = first.summary() | {"models": models}
    labels = _column_labels(reports)
    fields = ["id", "audio", "reference", "duration", "reference_length"]
    detected = config.detect_language
    for label in labels:
        fields += [f"hypothesis{label}", f"errors{label}"]
        fields += [f"language{label}"] if detected else []
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    for rows in zip(*(r.rows for r in reports), strict=True):
        line = {key: getattr(rows[0], key) for key in fields[:5]}
        for label, row in zip(labels, rows, strict=True):
            line |= {f"hypothesis{label}": row.hypothesis, f"errors{label}": row.errors}
            line |= {f"language{label}": row.language} if detected else {}
        writer.writerow(line)
    with atomic_dir(first.report_dir) as tmp:
        (tmp / "summary.json").write_text(
            json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8"
        )
        (tmp / "comparison.json").write_text(
            json.dumps(comparison_rows(reports), indent=2, ensure_ascii=False), encoding="utf-8"
        )
        (tmp / "comparison.md").write_text(comparison_markdown(reports), encoding="utf-8")
        (tmp / "utterances.csv").write_text(buffer.getvalue(), encoding="utf-8")
        if config.report == "html":
            page = render_report(reports, comparison_rows(reports), config.report_worst)
            (tmp / REPORT_FILE).write_text(page, encoding="utf-8")
