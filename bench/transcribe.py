"""Transcription speed and memory: whisper-tune's engines against the libraries beneath them.

On the bundled tiny.en and synthetic English speech, side by side in one run:

* whisper-tune's CTranslate2 engine vs faster-whisper's ``WhisperModel`` called directly with
  the same options (the wrapper's overhead),
* CTranslate2 int8 vs float32 vs the transformers engine in float32,
* short clips (one call per clip) and a long file (at least 5 minutes): sequential, batched
  (``batch_size=8``; against faster-whisper's ``BatchedInferencePipeline`` at the same batch
  size, with its own VAD chunking, and timestamps decoded as whisper-tune decodes them) and
  with the VAD filter,
* RTF = processing seconds / audio seconds (lower is faster) and word error rate,
* peak RSS of each configuration in a fresh process, of the ``whisper-tune transcribe`` CLI,
  and of a 1-minute vs a 10-minute file (memory must not grow with the audio),
* many short clips (``--many``, default 48): ``whisper-tune transcribe <folder>`` as a whole
  process against a whole process running a faster-whisper loop (``WhisperModel.transcribe``
  per file, same model dir, compute type, beam and language), and the loop part alone.

Usage: ``python -m bench.transcribe [--smoke] [--output FILE]``.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.harness import (
    BenchError,
    answer_probe,
    bench_parser,
    finish,
    machine,
    markdown_table,
    parse_args,
    require_positive,
    run_probe,
    side_by_side,
)

NAME = "transcribe"
MODEL = "tiny.en"
BEAM_SIZE = 5
LANGUAGE = "en"


@dataclass(frozen=True)
class Config:
    """One way of transcribing: which code, which precision, batched or not, VAD or not."""

    key: str
    engine: str  # whisper-tune (its ct2 engine), faster-whisper (direct) or transformers
    compute_type: str
    batch_size: int = 1
    vad_filter: bool = False

    @property
    def label(self) -> str:
        name = {
            "whisper-tune": "whisper-tune ct2",
            "faster-whisper": "faster-whisper direct",
            "faster-whisper-batched": "faster-whisper BatchedInferencePipeline",
            "transformers": "whisper-tune transformers",
        }[self.engine]
        extra = f", batch {self.batch_size}" if self.batch_size > 1 else ""
        extra += ", VAD" if self.vad_filter else ""
        return f"{name} {self.compute_type}{extra}"


WT_INT8 = Config("wt-int8", "whisper-tune", "int8")
FW_INT8 = Config("fw-int8", "faster-whisper", "int8")
WT_F32 = Config("wt-f32", "whisper-tune", "float32")
HF_F32 = Config("hf-f32", "transformers", "float32")
WT_INT8_BATCHED = Config("wt-int8-b8", "whisper-tune", "int8", batch_size=8)
WT_INT8_VAD = Config("wt-int8-vad", "whisper-tune", "int8", vad_filter=True)
WT_INT8_BATCHED_VAD = Config("wt-int8-b8-vad", "whisper-tune", "int8", 8, vad_filter=True)
FW_INT8_BATCHED = Config("fw-int8-b8", "faster-whisper-batched", "int8", 8, vad_filter=True)
SHORT_CONFIGS = (WT_INT8, FW_INT8, WT_F32, HF_F32)
LONG_CONFIGS = (
    WT_INT8,
    FW_INT8,
    WT_F32,
    WT_INT8_BATCHED,
    WT_INT8_BATCHED_VAD,
    FW_INT8_BATCHED,
    WT_INT8_VAD,
)


def load_model(config: Config):
    """The engine object for ``config`` (whisper-tune Transcriber or faster-whisper model)."""
    from whisper_tune import zoo

    if config.engine.startswith("faster-whisper"):
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        model = WhisperModel(
            str(zoo.bundled_ct2_dir(MODEL)),
            device="cpu",
            compute_type=config.compute_type,
            local_files_only=True,
        )
        return BatchedInferencePipeline(model) if config.batch_size > 1 else model
    from whisper_tune.inference import load_transcriber
    from whisper_tune.resolve import bundled_hf_dir

    if config.engine == "transformers":
        return load_transcriber(
            str(bundled_hf_dir(MODEL)), engine="transformers", compute_type=config.compute_type
        )
    return load_transcriber(
        str(zoo.bundled_ct2_dir(MODEL)), engine="ct2", compute_type=config.compute_type
    )


def transcribe(model, config: Config, audio) -> str:
    """The whole transcript of ``audio``: every segment decoded, as a user would consume it.

    faster-whisper gets the options whisper-tune passes it for ``TranscribeOptions(language,
    beam_size)``; the rest of those (temperature fallback, no-speech threshold 0.6,
    timestamps on) are faster-whisper's own defaults too, except in its batched pipeline,
    which decodes no timestamps unless told to.
    """
    if config.engine.startswith("faster-whisper"):
        batched = {"batch_size": config.batch_size} if config.batch_size > 1 else {}
        segments, _ = model.transcribe(
            audio,
            language=LANGUAGE,
            beam_size=BEAM_SIZE,
            vad_filter=config.vad_filter,
            without_timestamps=False,
            **batched,
        )
        return " ".join(s.text.strip() for s in segments)
    from whisper_tune.inference import TranscribeOptions

    options = TranscribeOptions(
        language=LANGUAGE,
        beam_size=BEAM_SIZE,
        batch_size=config.batch_size,
        vad_filter=config.vad_filter,
    )
    segments, _ = model.transcribe(audio, options)
    return " ".join(s.text for s in segments)


def probe(spec: dict) -> dict:
    """In a fresh process: transcribe the given wav files once (library or CLI)."""
    import time

    from whisper_tune.audio import audio_duration, load_audio

    started = time.perf_counter()
    texts: list[str] = []
    if "cli" in spec:
        from whisper_tune.cli import main as cli_main

        with tempfile.TemporaryDirectory() as out, contextlib.redirect_stdout(io.StringIO()):
            try:
                cli_main([*spec["cli"], "--output_dir", out])
            except SystemExit as exc:
                if exc.code:
                    command = " ".join(spec["cli"])
                    raise BenchError(f"whisper-tune {command} exited {exc.code}") from None
            chars = sum(p.stat().st_size for p in Path(out).rglob("*") if p.is_file())
            texts = [_cli_text(Path(out), path) for path in spec["audio"]]
        loop_seconds = None
    else:
        config = Config(**spec["config"])
        model = load_model(config)
        loop_started = time.perf_counter()
        texts = [transcribe(model, config, load_audio(path)) for path in spec["audio"]]
        loop_seconds = time.perf_counter() - loop_started
        chars = sum(len(t) for t in texts)
    seconds = sum(audio_duration(p) for p in spec["audio"])
    return {
        "cold_seconds": time.perf_counter() - started,
        "audio_seconds": seconds,
        "chars": chars,
        "loop_seconds": loop_seconds,
        "texts": texts,
    }


def _cli_text(out: Path, audio: str) -> str:
    """The transcript ``whisper-tune transcribe`` wrote for ``audio`` (its json, else txt)."""
    stem = Path(audio).stem
    if (out / f"{stem}.json").exists():
        return json.loads((out / f"{stem}.json").read_text(encoding="utf-8"))["text"]
    return (out / f"{stem}.txt").read_text(encoding="utf-8")


def measure_many(files: list[str], texts: list[str], repeats: int, warmup: int) -> list[dict]:
    """Many short clips, each case a whole fresh process, side by side: ``whisper-tune
    transcribe`` on the folder (defaults: int8, files batched) vs a faster-whisper loop."""
    import time

    from bench.speech import word_error_rate

    folder = str(Path(files[0]).parent)
    cli = ["transcribe", "--audio_path", folder, "--model_path", MODEL]
    cli += ["--language", LANGUAGE, "--beam_size", str(BEAM_SIZE)]
    specs = {
        "cli-folder": {"cli": cli, "audio": files},
        "cli-folder-packed": {"cli": [*cli, "--pack_clips"], "audio": files},
        "fw-loop": {"config": asdict(FW_INT8), "audio": files},
    }

    def case(spec: dict):
        def run() -> dict:
            started = time.perf_counter()
            result = run_probe(f"bench.{NAME}", spec)
            return result | {"process_seconds": time.perf_counter() - started}

        return run

    timings = side_by_side({k: case(v) for k, v in specs.items()}, repeats, warmup, f"{NAME} many")
    audio_seconds = timings["fw-loop"].output["audio_seconds"]
    rows = []
    for key, timing in timings.items():
        out = timing.output
        rows.append(
            {
                "set": f"many-{len(files)}",
                "config": key,
                "label": MANY_LABELS[key],
                "audio_seconds": round(audio_seconds, 2),
                **timing.summary(),
                "loop_s_last": round(out["loop_seconds"], 3) if out["loop_seconds"] else None,
                "peak_rss_mib": out["peak_rss_mib"],
                "wer": round(word_error_rate(" ".join(texts), " ".join(out["texts"])), 4),
            }
        )
    return rows


MANY_LABELS = {
    "cli-folder": "whisper-tune transcribe <folder> (defaults: int8, batch 4)",
    "cli-folder-packed": "whisper-tune transcribe <folder> --pack_clips",
    "fw-loop": "faster-whisper loop, WhisperModel.transcribe per file, int8",
}


def measure_speed(sets: dict, repeats: int, warmup: int) -> list[dict]:
    """RTF and WER of every configuration on every audio set, side by side per set."""
    from bench.speech import word_error_rate

    configs = {c.key: c for c in (*SHORT_CONFIGS, *LONG_CONFIGS)}
    models = {key: load_model(config) for key, config in configs.items()}
    rows = []
    for set_name, (speeches, keys) in sets.items():
        # warm up on the first 35 s, enough to load every lazy part (VAD, batching)
        warm = {
            k: _runner(models[k], configs[k], [s.audio[: 35 * 16000] for s in speeches])
            for k in keys
        }
        for _ in range(warmup):
            for run in warm.values():
                run()
        cases = {k: _runner(models[k], configs[k], [s.audio for s in speeches]) for k in keys}
        timings = side_by_side(cases, repeats, warmup=0, label=f"{NAME} {set_name}")
        audio_seconds = sum(s.seconds for s in speeches)
        reference = " ".join(s.text for s in speeches)
        for key, timing in timings.items():
            hypothesis = " ".join(timing.output)
            rows.append(
                {
                    "set": set_name,
                    "config": key,
                    "label": configs[key].label,
                    **asdict(configs[key]),
                    "audio_seconds": round(audio_seconds, 2),
                    **timing.summary(),
                    "rtf_median": round(timing.median / audio_seconds, 5),
                    "rtf_min": round(timing.min / audio_seconds, 5),
                    "wer": round(word_error_rate(reference, hypothesis), 4),
                    "transcript_chars": len(hypothesis),
                }
            )
    return rows


def _runner(model, config: Config, audios: Sequence):
    return lambda: [transcribe(model, config, audio) for audio in audios]


def measure_memory(files: dict[str, list[str]], plan: Sequence[tuple[str, object]]) -> list[dict]:
    """Peak RSS of each (set, config or CLI flags) in its own fresh process."""
    rows = []
    for set_name, what in plan:
        if isinstance(what, Config):
            spec = {"config": asdict(what), "audio": files[set_name]}
            key, label = what.key, what.label
        else:
            cli = ["transcribe", "--audio_path", *files[set_name], "--model_path", MODEL, *what]
            spec = {"cli": cli, "audio": files[set_name]}
            key = "cli" + "".join(what)
            label = "whisper-tune transcribe " + (" ".join(what) or "(defaults)")
        print(f"  {NAME}: peak RSS of {label} on {set_name}", file=sys.stderr, flush=True)
        result = run_probe(f"bench.{NAME}", spec)
        rows.append(
            {
                "set": set_name,
                "config": key,
                "label": label,
                "peak_rss_mib": result["peak_rss_mib"],
                "cold_seconds": round(result["cold_seconds"], 2),
                "audio_seconds": round(result["audio_seconds"], 2),
                "chars": result["chars"],
            }
        )
    return rows


# (what, audio set, numerator, denominator, comparison, target): ratio of median seconds
RATIO_GOALS = (
    ("ct2 engine overhead vs faster-whisper direct", "short", "wt-int8", "fw-int8", "<=", 1.03),
    ("ct2 engine overhead vs faster-whisper direct", "long", "wt-int8", "fw-int8", "<=", 1.03),
    ("ct2 int8 speed-up vs transformers fp32", "short", "hf-f32", "wt-int8", ">=", 4.0),
    ("batched (8) speed-up vs sequential", "long", "wt-int8", "wt-int8-b8", ">=", 2.0),
    (
        "batched (8) vs faster-whisper's BatchedInferencePipeline (8, its VAD)",
        "long",
        "wt-int8-b8",
        "fw-int8-b8",
        "<=",
        1.05,
    ),
    (
        "batched (8) with VAD vs faster-whisper's BatchedInferencePipeline (8, its VAD)",
        "long",
        "wt-int8-b8-vad",
        "fw-int8-b8",
        "<=",
        1.05,
    ),
    ("ct2 int8 speed-up vs float32", "short", "wt-f32", "wt-int8", None, None),
    ("ct2 int8 speed-up vs float32", "long", "wt-f32", "wt-int8", None, None),
    ("VAD speed-up vs no VAD", "long", "wt-int8", "wt-int8-vad", None, None),
)
RSS_LIMIT_MIB = 500
FLATNESS_LIMIT = 1.5


def goals(speed: list[dict], memory: list[dict], flats: Sequence[str]) -> list[dict]:
    """The issue's targets (and a few informative ratios) with the measured values."""
    rows = {(r["set"], r["config"]): r for r in speed}
    found = []
    for what, set_name, numerator, denominator, comparison, target in RATIO_GOALS:
        a, b = rows.get((set_name, numerator)), rows.get((set_name, denominator))
        if a is None or b is None:
            continue
        median, least = a["median_s"] / b["median_s"], a["min_s"] / b["min_s"]
        met = None
        if comparison:
            met = median <= target if comparison == "<=" else median >= target
        found.append(
            {
                "goal": f"{what} ({set_name})",
                "value": round(median, 3),
                "min_ratio": round(least, 3),
                "target": f"{comparison} {target:g}" if comparison else "(info)",
                "met": met,
            }
        )
    ours = [r for r in memory if r["config"].startswith(("wt-", "cli"))]
    worst = max(r["peak_rss_mib"] for r in ours)
    found.append(
        {
            "goal": "peak RSS of tiny.en transcription, MiB (worst whisper-tune ct2 run)",
            "value": worst,
            "target": f"< {RSS_LIMIT_MIB}",
            "met": worst < RSS_LIMIT_MIB,
        }
    )
    flat = sorted((r["audio_seconds"], r["peak_rss_mib"]) for r in memory if r["set"] in flats)
    if len(flat) == 2:
        ratio = flat[1][1] / flat[0][1]
        found.append(
            {
                "goal": "peak RSS, longer / shorter file (memory flatness)",
                "value": round(ratio, 3),
                "target": f"<= {FLATNESS_LIMIT:g}",
                "met": ratio <= FLATNESS_LIMIT,
            }
        )
    return found


def many_goals(rows: list[dict]) -> list[dict]:
    """The many-files targets, for the folder with and without ``--pack_clips``:
    whole-process speed-up over the faster-whisper loop (>= 1.3) and WER no worse by more
    than 0.5 point."""
    by = {r["config"]: r for r in rows}
    loop = by["fw-loop"]
    goals = []
    for key, what in (("cli-folder", "folder"), ("cli-folder-packed", "folder --pack_clips")):
        ours = by[key]
        speedup = loop["median_s"] / ours["median_s"]
        worse = 100 * (ours["wer"] - loop["wer"])
        goals += [
            {
                "goal": f"{ours['set']}: {what} speed-up vs faster-whisper loop (whole processes)",
                "value": round(speedup, 3),
                "min_ratio": round(loop["min_s"] / ours["min_s"], 3),
                "target": ">= 1.3",
                "met": speedup >= 1.3,
            },
            {
                "goal": f"{ours['set']}: {what} WER points worse than the loop",
                "value": round(worse, 2),
                "target": "<= 0.5",
                "met": worse <= 0.5,
            },
        ]
    return goals


def check(record: dict) -> None:
    """Smoke checks: every number positive and finite, every transcript non-empty."""
    for row in record["speed"]:
        where = f"{row['set']}/{row['config']}"
        require_positive(row, ["median_s", "min_s", "rtf_median", "transcript_chars"], where)
    for row in record["memory"]:
        require_positive(row, ["peak_rss_mib", "cold_seconds", "chars"], row["label"])
    for row in record["many"]:
        require_positive(row, ["median_s", "peak_rss_mib"], row["label"])


def main(argv: Sequence[str] | None = None) -> dict | None:
    parser = bench_parser(NAME, __doc__.splitlines()[0])
    parser.add_argument(
        "--many", type=int, default=48, help="short clips in the many-files comparison"
    )
    parser.add_argument(
        "--only_many", action="store_true", help="run the many-files comparison alone"
    )
    parser.add_argument(
        "--only_long",
        action="store_true",
        help="run the long-file cases alone (speed and peak RSS of each configuration)",
    )
    parser.add_argument(
        "--flat_minutes",
        type=float,
        nargs=2,
        default=(1.0, 10.0),
        help="lengths of the two files compared for memory flatness",
    )
    args = parse_args(parser, argv, NAME)
    if args.probe:
        answer_probe(probe(json.loads(args.probe)))
        return None

    from bench.speech import long_speech, spoken
    from whisper_tune.corpus_text import ENGLISH_DOMAIN, ENGLISH_GENERAL
    from whisper_tune.synth import save_wav

    record = {"name": NAME, "machine": machine(), "model": MODEL}
    record["options"] = {"language": LANGUAGE, "beam_size": BEAM_SIZE}
    record["many"] = []
    if not args.only_long:
        many = spoken((ENGLISH_GENERAL + ENGLISH_DOMAIN)[: 2 if args.smoke else args.many], seed=7)
        with tempfile.TemporaryDirectory() as folder:
            paths = [
                str(save_wav(Path(folder) / f"clip{i:03d}.wav", s.audio))
                for i, s in enumerate(many)
            ]
            texts = [s.text for s in many]
            record["many"] = measure_many(paths, texts, args.repeats, args.warmup)
    if args.only_many:
        record["speed"], record["memory"], record["goals"] = [], [], many_goals(record["many"])
        return finish(args, NAME, record, tables(record))
    sentences = spoken(ENGLISH_GENERAL[: 9 if args.smoke else len(ENGLISH_GENERAL)])
    short = sentences[: 1 if args.smoke else 8]
    long = long_speech(sentences, 30.5 if args.smoke else 300)
    flat_minutes = (0.1, 0.3) if args.smoke else args.flat_minutes
    flats = {f"flat-{m:g}min": long_speech(sentences, m * 60) for m in flat_minutes}
    record["audio"] = {
        "short_clips": len(short),
        "short_seconds": round(sum(s.seconds for s in short), 2),
        "long_seconds": round(long.seconds, 2),
        **{f"{k}_seconds": round(v.seconds, 2) for k, v in flats.items()},
    }
    skipped_in_smoke = (WT_F32, WT_INT8_VAD, WT_INT8_BATCHED_VAD)
    long_configs = [c for c in LONG_CONFIGS if not (args.smoke and c in skipped_in_smoke)]
    sets = {} if args.only_long else {"short": (short, [c.key for c in SHORT_CONFIGS])}
    sets["long"] = ([long], [c.key for c in long_configs])
    record["speed"] = measure_speed(sets, args.repeats, args.warmup)

    with tempfile.TemporaryDirectory() as folder:
        files = {
            "short": [
                str(save_wav(Path(folder) / f"short{i}.wav", s.audio)) for i, s in enumerate(short)
            ],
            "long": [str(save_wav(Path(folder) / "long.wav", long.audio))],
            **{k: [str(save_wav(Path(folder) / f"{k}.wav", v.audio))] for k, v in flats.items()},
        }
        if args.smoke:  # the CLI and the library probe once each
            plan = [("short", ()), (next(iter(flats)), WT_INT8)]
        elif args.only_long:
            plan = [("long", c) for c in LONG_CONFIGS] + [("long", ())]
        else:
            plan = [("short", c) for c in SHORT_CONFIGS] + [("long", c) for c in LONG_CONFIGS]
            plan += [("long", ()), ("long", ("--use_int8",))]
            plan += [(k, WT_INT8) for k in flats]
        record["memory"] = measure_memory(files, plan)
    record["goals"] = goals(record["speed"], record["memory"], list(flats))
    record["goals"] += many_goals(record["many"]) if record["many"] else []
    if args.smoke:
        check(record)
    return finish(args, NAME, record, tables(record))


def tables(record: dict) -> list[str]:
    speed = record["speed"] and markdown_table(
        ["set", "configuration", "audio s", "median s", "min s", "RTF median", "RTF min", "WER"],
        [
            [
                r["set"],
                r["label"],
                r["audio_seconds"],
                r["median_s"],
                r["min_s"],
                r["rtf_median"],
                r["rtf_min"],
                r["wer"],
            ]
            for r in record["speed"]
        ],
    )
    memory = record["memory"] and markdown_table(
        ["set", "configuration", "audio s", "peak RSS MiB", "cold process s"],
        [
            [r["set"], r["label"], r["audio_seconds"], r["peak_rss_mib"], r["cold_seconds"]]
            for r in record["memory"]
        ],
    )
    goal_table = markdown_table(
        ["goal", "measured (median)", "min ratio", "target", "met"],
        [
            [g["goal"], g["value"], g.get("min_ratio"), g["target"], _met(g["met"])]
            for g in record["goals"]
        ],
    )
    many = record["many"] and markdown_table(
        [
            "set",
            "configuration",
            "audio s",
            "process s median",
            "min s",
            "loop s",
            "RSS MiB",
            "WER",
        ],
        [
            [
                r["set"],
                r["label"],
                r["audio_seconds"],
                r["median_s"],
                r["min_s"],
                r["loop_s_last"],
                r["peak_rss_mib"],
                r["wer"],
            ]
            for r in record["many"]
        ],
    )
    return [table for table in (speed, memory, many, goal_table) if table]


def _met(met: bool | None) -> str:
    return "" if met is None else "yes" if met else "NO"


if __name__ == "__main__":
    main()
