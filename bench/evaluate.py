"""Evaluation throughput and log-mel feature extraction speed.

* utterances/s of :func:`whisper_tune.evaluate.evaluate` (transformers tiny.en, greedy) on
  synthetic English clips: batch 1, and the seed's batch 16 with and without DataLoader
  workers — next to a plain loop over whisper-tune's CTranslate2 engine (int8, greedy) for
  scale;
* ``evaluate`` of the bundled CTranslate2 tiny.en with today's defaults (int8, clips decoded
  4 at a time) against the earlier defaults (float32, one clip at a time);
* log-mel features of 30 s of audio: ``WhisperFeatureExtractor``'s numpy path, its torch path
  on ``device="cpu"`` (what its ``__call__`` uses whenever torch is installed), the public
  ``__call__`` (padding + torch path), and faster-whisper's ``FeatureExtractor``; one clip
  and a batch of 16.

Usage: ``python -m bench.evaluate [--smoke] [--output FILE]``.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.harness import (
    bench_parser,
    finish,
    machine,
    markdown_table,
    parse_args,
    require_positive,
    side_by_side,
)

NAME = "evaluate"
MODEL = "tiny.en"
WINDOW_SECONDS = 30
SAMPLE_RATE = 16000


@dataclass(frozen=True)
class EvalCase:
    key: str
    batch_size: int
    num_workers: int
    engine: str = "transformers"
    compute_type: str = "default"
    pack_clips: bool = False

    @property
    def label(self) -> str:
        what = f"{self.engine} {self.compute_type}, " if self.engine != "transformers" else ""
        packed = "--pack_clips, " if self.pack_clips else ""
        return f"evaluate, {what}{packed}batch {self.batch_size}, {self.num_workers} workers"


EVAL_CASES = (EvalCase("b1-w0", 1, 0), EvalCase("b16-w0", 16, 0), EvalCase("b16-w2", 16, 2))
# evaluate's CTranslate2 defaults before and after issue 17 (the DataLoader's 2 workers both)
CT2_CASES = (
    EvalCase("ct2-old-defaults", 1, 2, "ct2", "float32"),
    EvalCase("ct2-defaults", 4, 2, "ct2", "int8"),
    EvalCase("ct2-packed", 4, 2, "ct2", "int8", pack_clips=True),
)


def write_manifest(folder: Path, speeches) -> Path:
    """A JSONL manifest over the clips, written as wav files in ``folder``."""
    from whisper_tune.synth import save_wav

    lines = []
    for i, speech in enumerate(speeches):
        path = save_wav(folder / f"utt{i}.wav", speech.audio)
        record = {"audio": {"path": str(path)}, "sentence": speech.text}
        lines.append(json.dumps(record | {"duration": round(speech.seconds, 3)}))
    manifest = folder / "test.jsonl"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return manifest


def evaluation_cases(
    manifest: Path, folder: Path, speeches, chosen: Sequence[EvalCase]
) -> dict[str, Callable[[], dict]]:
    """``evaluate`` per case, and the CTranslate2 reference loop; each returns its figures."""
    from whisper_tune.audio import load_audio
    from whisper_tune.evaluate import EvalConfig, evaluate
    from whisper_tune.inference import TranscribeOptions, load_transcriber

    def run(case: EvalCase) -> dict:
        config = EvalConfig(
            test_data=str(manifest),
            model_path=MODEL,
            engine=case.engine,
            compute_type=case.compute_type,
            metric="wer",
            batch_size=case.batch_size,
            pack_clips=case.pack_clips,
            num_workers=case.num_workers,
            remove_pun=True,
            to_simple=False,
            english_normalizer=True,
            output_dir=str(folder / f"report-{case.key}"),
        )
        report = evaluate(config, progress=False)
        return {"score": report.score, "loop_s": report.wall_seconds, "n": report.utterances}

    engine = load_transcriber(MODEL, compute_type="int8")
    paths = [
        json.loads(line)["audio"]["path"] for line in manifest.read_text().splitlines() if line
    ]

    def ct2_loop() -> dict:
        from bench.speech import word_error_rate

        options = TranscribeOptions(language="en", beam_size=1)
        texts = []
        for path in paths:
            segments, _ = engine.transcribe(load_audio(path), options)
            texts.append(" ".join(s.text for s in segments))
        reference = " ".join(s.text for s in speeches)
        return {"score": word_error_rate(reference, " ".join(texts)), "n": len(texts)}

    cases: dict[str, Callable[[], dict]] = {c.key: (lambda c=c: run(c)) for c in chosen}
    if EVAL_CASES[0] in chosen:
        cases["ct2-int8-loop"] = ct2_loop
    return cases


def feature_cases(clips: int) -> dict[str, Callable[[], np.ndarray]]:
    """Log-mel features of ``clips`` × 30 s of audio by each extractor."""
    from faster_whisper.feature_extractor import FeatureExtractor
    from transformers import WhisperFeatureExtractor

    from whisper_tune.resolve import bundled_hf_dir

    hf = WhisperFeatureExtractor.from_pretrained(str(bundled_hf_dir(MODEL)))
    fw = FeatureExtractor()
    rng = np.random.default_rng(0)
    batch = (0.1 * rng.standard_normal((clips, WINDOW_SECONDS * SAMPLE_RATE))).astype(np.float32)
    return {
        "transformers numpy path": lambda: hf._np_extract_fbank_features(batch, "cpu"),
        "transformers torch path (cpu)": lambda: hf._torch_extract_fbank_features(batch, "cpu"),
        "transformers __call__": lambda: (
            hf(list(batch), sampling_rate=SAMPLE_RATE, return_tensors="np").input_features
        ),
        "faster-whisper FeatureExtractor": lambda: np.stack([fw(clip) for clip in batch]),
    }


def main(argv: Sequence[str] | None = None) -> dict:
    parser = bench_parser(NAME, __doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=48, help="clips in the manifest")
    parser.add_argument(
        "--ct2_only", action="store_true", help="only the CTranslate2 old-vs-new defaults"
    )
    args = parse_args(parser, argv, NAME)
    from bench.speech import spoken
    from whisper_tune.corpus_text import ENGLISH_DOMAIN, ENGLISH_GENERAL

    record = {"name": NAME, "machine": machine(), "model": MODEL}
    sentences = (ENGLISH_GENERAL + ENGLISH_DOMAIN)[: 2 if args.smoke else args.utterances]
    speeches = spoken(sentences, seed=7)
    chosen = CT2_CASES if args.ct2_only else (*EVAL_CASES, *CT2_CASES)
    audio_seconds = sum(s.seconds for s in speeches)
    record["audio"] = {"utterances": len(speeches), "seconds": round(audio_seconds, 2)}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        manifest = write_manifest(folder, speeches)
        cases = evaluation_cases(manifest, folder, speeches, chosen)
        timings = side_by_side(cases, args.repeats, args.warmup, label="evaluate")
    record["evaluation"] = []
    for key, timing in timings.items():
        n = timing.output["n"]
        row = {"case": key, "utterances": n, **timing.summary()}
        row["utterances_per_s_median"] = round(n / timing.median, 3)
        row["utterances_per_s_best"] = round(n / timing.min, 3)
        row["rtf_median"] = round(timing.median / audio_seconds, 4)
        row["wer"] = round(timing.output["score"], 4)
        record["evaluation"].append(row)

    if "ct2-old-defaults" in timings:
        old = timings["ct2-old-defaults"]
        record["goals"] = [
            {
                "goal": f"evaluate speed-up, ct2 tiny.en {what} vs earlier defaults",
                "value": round(old.median / timings[key].median, 3),
                "min_ratio": round(old.min / timings[key].min, 3),
                "target": ">= 3",
                "met": old.median / timings[key].median >= 3,
            }
            for key, what in (("ct2-defaults", "defaults"), ("ct2-packed", "--pack_clips"))
        ]
    record["features"] = []
    for clips in () if args.ct2_only else (1, 4 if args.smoke else 16):
        found = side_by_side(feature_cases(clips), args.repeats, args.warmup, f"features x{clips}")
        for label, timing in found.items():
            row = {"extractor": label, "clips": clips, **timing.summary()}
            row["ms_per_clip_median"] = round(1000 * timing.median / clips, 3)
            row["realtime_x"] = round(clips * WINDOW_SECONDS / timing.median, 1)
            row["shape"] = list(np.shape(timing.output))
            record["features"].append(row)
    if args.smoke:
        check(record)
    return finish(args, NAME, record, tables(record))


def check(record: dict) -> None:
    for row in record["evaluation"]:
        require_positive(row, ["median_s", "utterances_per_s_median", "utterances"], row["case"])
    for row in record["features"]:
        require_positive(row, ["median_s", "ms_per_clip_median"], row["extractor"])


def tables(record: dict) -> list[str]:
    labels = {c.key: c.label for c in (*EVAL_CASES, *CT2_CASES)} | {
        "ct2-int8-loop": "reference: ct2 int8 transcribe loop (not evaluate)"
    }
    evaluation = markdown_table(
        ["case", "utt", "median s", "utt/s median", "utt/s best", "RTF median", "WER"],
        [
            [
                labels[r["case"]],
                r["utterances"],
                r["median_s"],
                r["utterances_per_s_median"],
                r["utterances_per_s_best"],
                r["rtf_median"],
                r["wer"],
            ]
            for r in record["evaluation"]
        ],
    )
    features = record["features"] and markdown_table(
        ["extractor", "clips of 30 s", "median ms/clip", "min s (all clips)", "x realtime"],
        [
            [
                r["extractor"],
                r["clips"],
                r["ms_per_clip_median"],
                r["min_s"],
                r["realtime_x"],
            ]
            for r in record["features"]
        ],
    )
    goals = record.get("goals") and markdown_table(
        ["goal", "measured (median)", "min ratio", "target", "met"],
        [
            [g["goal"], g["value"], g["min_ratio"], g["target"], "yes" if g["met"] else "NO"]
            for g in record.get("goals", [])
        ],
    )
    return [table for table in (evaluation, features, goals) if table]


if __name__ == "__main__":
    main()
