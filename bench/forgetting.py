"""Fine-tuning without forgetting (issue 16): plain LoRA vs each knowledge-keeping option vs the
default, side by side on the same data in one run.

Two cases, each on the data the demo synthesises (its sentence lists and voices; held-out
domain sentences are never trained on):

* ``en``: the bundled tiny.en learns the English domain terms (English-only: no other
  language to keep, no language ID to score);
* ``zh``: the bundled multilingual base learns Mandarin (domain sentences plus some general
  Mandarin ones); the other language is English with the language left to the model.

Variants, each one ``whisper-tune finetune`` run from the same data and seed:

* ``plain``: the seed's recipe: no KL, no replay, no prompts, the seed's fixed warm-up of 50
  steps (capped below the run's length, so a short run ends at the peak learning rate),
  adapters in every encoder layer, the language token in the loss;
* ``+replay``, ``+kl``, ``+prompt``, ``+warmup_ratio``, ``+language_id_loss_auto``,
  ``+freeze_half``, ``+freeze_encoder``: one technique on top of plain (replay: general
  English speech disjoint from the general test set, at the default --replay_ratio;
  language_id_loss auto: the language token out of the loss on a one-language set);
* ``default``: the options ``whisper-tune finetune`` uses when none are given;
* ``default+replay+kl``: a candidate default;
* ``default+dynamic_audio_ctx``: the default with ``--dynamic_audio_ctx`` (issue 24), scored
  at its own short audio contexts (``--audio_ctx auto``) against ``default``'s 30 s windows;
  ``+base_teacher``: the same with ``--audio_ctx_teacher base``.

Each tuned model is merged and converted to CTranslate2 int8 (as the demo ships it), then every
model of a case, the stock one first, is scored in one evaluate run per test set, the way the
demo scores (:func:`whisper_tune.demo.scoring`, :func:`whisper_tune.demo.evaluate_real`):
domain WER/CER (language given), general WER (synthetic general English, language given),
recorded-speech WER (``data/recordings``, language detected), and for ``zh`` English WER with
the language detected and the language-ID accuracy (English clips heard as "en", Mandarin
ones as "zh"). Training time is the trainer's own wall time.

Usage: ``python -m bench.forgetting [--smoke] [--cases en zh] [--variants ...]
[--domain_sentences N] [--work_dir DIR] [--output FILE]``.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench.harness import (
    BenchError,
    bench_parser,
    finish,
    machine,
    markdown_table,
    parse_args,
    require_positive,
    write_json,
)

NAME = "forgetting"
SEED = 0
TEST_FRACTION = 0.3  # of the domain sentences, held out
KL_WEIGHT = 1.0
# the seed's recipe; None: the finetune default
PLAIN = {
    "kl_weight": 0.0,
    "prompt_ratio": 0.0,
    "warmup_steps": 50,
    "freeze_encoder_layers": 0,
    "language_id_loss": "on",
}


@dataclass(frozen=True)
class Variant:
    options: dict  # FinetuneConfig options; none: the finetune defaults
    replay: bool = False  # mix in the general English replay set (--replay_data)


def _finetune_defaults():
    from whisper_tune.train.config import FinetuneConfig

    return FinetuneConfig()


DEFAULT = _finetune_defaults()
VARIANTS = {
    "plain": Variant(PLAIN),
    "+replay": Variant(PLAIN, replay=True),
    "+kl": Variant(PLAIN | {"kl_weight": KL_WEIGHT}),
    "+prompt": Variant(PLAIN | {"prompt_ratio": DEFAULT.prompt_ratio}),
    "+warmup_ratio": Variant(PLAIN | {"warmup_steps": DEFAULT.warmup_steps}),
    "+language_id_loss_auto": Variant(PLAIN | {"language_id_loss": DEFAULT.language_id_loss}),
    "+freeze_half": Variant(PLAIN | {"freeze_encoder_layers": DEFAULT.freeze_encoder_layers}),
    "+freeze_encoder": Variant(PLAIN | {"freeze_encoder": True}),
    "default": Variant({}),
    "default+replay+kl": Variant({"kl_weight": KL_WEIGHT}, replay=True),
    # issue 24: the domain fine-tune and the audio-context one in one run, scored (as every
    # row) with evaluate's --audio_ctx auto: its short clips at their own length
    "default+dynamic_audio_ctx": Variant({"dynamic_audio_ctx": True}),
    "default+dynamic_audio_ctx+base_teacher": Variant(
        {"dynamic_audio_ctx": True, "audio_ctx_teacher": "base"}
    ),
}


@dataclass(frozen=True)
class Case:
    language: str  # tuned on
    other_language: str | None  # kept, scored with the language detected (None: English-only)
    domain_sentences: int  # of the demo recipe's domain list, before the held-out split
    extra_train: int  # general sentences of the tuned language added to training
    epochs: float
    batch_size: int


@dataclass(frozen=True)
class Scale:
    cases: dict[str, Case] = field(
        default_factory=lambda: {
            "en": Case("en", None, domain_sentences=24, extra_train=0, epochs=2, batch_size=8),
            # the size of issue 16's measurement (60 clips, 3 epochs; 45 steps at batch 4):
            # one epoch of 17 clips neither learned the domain nor forgot any English
            "zh": Case("zh", "en", domain_sentences=24, extra_train=40, epochs=3, batch_size=4),
        }
    )
    general_test: int = 12  # synthetic general English sentences scored
    replay: int = 16  # others, spoken for the replay set
    real_clips: int | None = None  # recorded clips scored (None: all 12)
    no_speech: int = 3  # noise clips with an empty transcript in each training set
    max_steps: int = -1


SMOKE = Scale(
    cases={
        "en": Case("en", None, domain_sentences=17, extra_train=0, epochs=1, batch_size=8),
        "zh": Case("zh", "en", domain_sentences=7, extra_train=1, epochs=1, batch_size=4),
    },
    general_test=1,
    replay=1,
    real_clips=1,
    no_speech=1,
    max_steps=2,
)


# --- data -----------------------------------------------------------------------------------


def general_english(scale: Scale, folder: Path) -> dict[str, Path]:
    """Synthetic general English: a test set and a disjoint replay set; the recorded clips."""
    import numpy as np

    from whisper_tune import corpus_text, synth
    from whisper_tune.data.real_speech import write_real_speech

    total = scale.general_test + scale.replay
    replay, test = corpus_text.train_test_split(
        corpus_text.ENGLISH_GENERAL[:total], scale.general_test / total, SEED
    )
    plan = [("replay", s) for s in replay] + [("test_general", s) for s in test]
    sets = synth.spoken_sets(plan, "en", folder, np.random.default_rng(SEED), SEED)
    manifests = _manifests(sets, folder)
    manifests["test_real"] = write_real_speech(folder / "test_real.jsonl", scale.real_clips)
    return manifests


def domain_data(case: Case, scale: Scale, folder: Path) -> dict[str, Path]:
    """The demo recipe's domain sentences split into train / held-out test, spoken; the train
    set gets ``extra_train`` general sentences of the language and the no-speech clips."""
    import numpy as np

    from whisper_tune import corpus_text, synth
    from whisper_tune.demo import RECIPES

    recipe = RECIPES[case.language]
    train, test = corpus_text.train_test_split(
        recipe.domain[: case.domain_sentences], TEST_FRACTION, SEED, recipe.terms
    )
    train += list(recipe.general[: case.extra_train])
    plan = [("train", s) for s in train] + [("test_domain", s) for s in test]
    rng = np.random.default_rng(SEED)
    sets = synth.spoken_sets(plan, case.language, folder, rng, SEED)
    sets["train"] += synth.no_speech_clips(scale.no_speech, case.language, folder, rng, SEED)
    return _manifests(sets, folder)


def _manifests(sets: dict, folder: Path) -> dict[str, Path]:
    """Each split's utterances written as ``folder/<split>.jsonl``."""
    from whisper_tune.data.manifest import write_manifest

    for split, utterances in sets.items():
        write_manifest(folder / f"{split}.jsonl", utterances)
    return {split: folder / f"{split}.jsonl" for split in sets}


# --- training -------------------------------------------------------------------------------


def train_variant(
    name: str, case: Case, scale: Scale, model: str, data: dict[str, Path], folder: Path
) -> dict:
    """Fine-tune ``model`` with the variant's options; merge and convert to CTranslate2 int8
    (the intermediate folders removed); the trainer's facts and the int8 model's path."""
    from whisper_tune.convert.ct2_export import convert_to_ct2
    from whisper_tune.demo import RECIPES
    from whisper_tune.merge import merge_lora
    from whisper_tune.train.config import FinetuneConfig
    from whisper_tune.train.trainer import finetune

    variant = VARIANTS[name]
    replay = {"replay_data": str(data["replay"])} if variant.replay else {}
    config = FinetuneConfig(
        train_data=str(data["train"]),
        base_model=model,
        output_dir=str(folder / "train"),
        language=case.language,
        timestamps=True,
        num_train_epochs=case.epochs,
        max_steps=scale.max_steps,
        per_device_train_batch_size=case.batch_size,
        learning_rate=RECIPES[case.language].learning_rate,
        logging_steps=1,
        save_steps=100_000,
        num_workers=0,
        report_to=("none",),
        local_files_only=True,
        seed=SEED,
        **(variant.options | replay),
    )
    print(f"  {NAME} {case.language}: training {name}", file=sys.stderr, flush=True)
    result = finetune(config)
    merged = merge_lora(result.final_checkpoint, folder / "merged", local_files_only=True)
    ct2 = folder / "ct2"
    convert_to_ct2(str(merged), ct2, quantization="int8", check=False, local_files_only=True)
    shutil.rmtree(folder / "train")
    shutil.rmtree(folder / "merged")
    return {
        "variant": name,
        "model": str(ct2),
        "options": variant.options | replay,
        "train_seconds": round(result.train_seconds, 1),
        "steps": result.steps,
        "warmup_steps": config.warmup_for(result.steps),
        "first_loss": result.first_loss,
        "last_loss": result.last_loss,
    }


# --- scoring --------------------------------------------------------------------------------


def score(case: Case, models: dict[str, str], data: dict[str, Path], folder: Path) -> dict:
    """Every model of ``models`` (row name -> model) scored side by side, one evaluate run per
    test set, as the demo scores."""
    from whisper_tune.demo import evaluate_real, scoring
    from whisper_tune.evaluate import evaluate_models

    paths = list(models.values())
    scores: dict[str, dict] = {name: {} for name in models}

    def run(key: str, language: str, manifest: Path, detect: bool = False) -> None:
        print(f"  {NAME} {case.language}: scoring {key}", file=sys.stderr, flush=True)
        reports = evaluate_models(scoring(language, manifest, paths, folder / key, detect))
        for name, report in zip(models, reports, strict=True):
            scores[name][key] = round(report.score, 4)
            if detect:
                scores[name][f"{key}_language_id"] = report.language_id

    run("domain", case.language, data["test_domain"])
    run("general", "en", data["test_general"])
    if case.other_language:
        run("other", case.other_language, data["test_general"], detect=True)
        run("domain_detected", case.language, data["test_domain"], detect=True)
    real = evaluate_real(paths, data["test_real"], folder)
    for name, (wer, language_id) in zip(models, real, strict=True):
        scores[name] |= {"real": wer, "real_language_id": language_id}
        if case.other_language:
            scores[name]["language_id"] = language_id_share(scores[name])
    return scores


def language_id_share(row: dict) -> float:
    """Share of the clips whose detected language is the one they are in, over every
    language-ID count of the row ("correct/clips")."""
    counts = [row[k].split("/") for k in row if k.endswith("_language_id")]
    return round(sum(int(c) for c, _ in counts) / max(1, sum(int(n) for _, n in counts)), 4)


# --- the run --------------------------------------------------------------------------------


def run_case(
    case: Case, scale: Scale, model: str, variants: Sequence[str], data: dict, folder: Path
) -> dict:
    trained = [
        train_variant(name, case, scale, model, data, folder / name.replace("+", "plus_"))
        for name in variants
    ]
    models = {"stock": model} | {t["variant"]: t["model"] for t in trained}
    scores = score(case, models, data, folder / "eval")
    rows = [{"variant": "stock", "train_seconds": None, **scores["stock"]}]
    rows += [t | scores[t["variant"]] for t in trained]
    for row in rows:
        row["domain_cut"] = round(1 - row["domain"] / scores["stock"]["domain"], 4)
        row["goal"] = goal(case, row, rows[0]) if row is not rows[0] else ""
    return {
        "model": model,
        "metric": "cer" if case.language == "zh" else "wer",
        "case": vars(case),
        "clips": {split: _count(path) for split, path in data.items()},
        "rows": rows,
    }


GOAL_CUT = {"en": 0.8, "zh": 0.7}  # issue 16: domain error cut by the default
GOAL_SLACK = 0.005  # general, recorded and other-language WER: at most 0.5 point above stock


def goal(case: Case, row: dict, stock: dict) -> str:
    """ "met", or what of issue 16's goal the row misses."""
    missed = []
    if row["domain_cut"] < GOAL_CUT[case.language]:
        missed.append(f"domain cut {row['domain_cut']:.0%} < {GOAL_CUT[case.language]:.0%}")
    for key in ("general", "real", "other"):
        if key in row and row[key] > stock[key] + GOAL_SLACK:
            missed.append(f"{key} +{100 * (row[key] - stock[key]):.1f} pt")
    if "language_id" in row and row["language_id"] < stock["language_id"]:
        missed.append("LID dropped")
    return "; ".join(missed) or "met"


def main(argv: Sequence[str] | None = None) -> dict:
    parser = bench_parser(NAME, __doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=("en", "zh"), default=["en", "zh"])
    parser.add_argument("--variants", nargs="+", choices=tuple(VARIANTS), default=list(VARIANTS))
    parser.add_argument(
        "--model",
        nargs=2,
        action="append",
        default=[],
        metavar=("CASE", "MODEL"),
        help="another base model for a case (default: the demo's, tiny.en and base)",
    )
    parser.add_argument(
        "--work_dir",
        type=Path,
        default=None,
        help="keep the clips and models here (clips already there are reused; default: a "
        "temporary folder)",
    )
    parser.add_argument(
        "--domain_sentences",
        type=int,
        default=None,
        help="domain sentences per case before the held-out split (default: the case's, 24; "
        "the demo recipe has 60: more held-out words for a finer comparison)",
    )
    args = parse_args(parser, argv, NAME)
    from whisper_tune.demo import RECIPES

    scale = SMOKE if args.smoke else Scale()
    models = {c: RECIPES[c].base_model for c in args.cases} | dict(args.model)
    record = {"name": NAME, "machine": machine(), "variants": {}, "cases": {}}
    record["variants"] = {name: vars(VARIANTS[name]) for name in args.variants}
    record["scale"] = {k: v for k, v in vars(scale).items() if k != "cases"}
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work_dir or Path(tmp)
        general = general_english(scale, work / "general")
        for language in args.cases:
            case = scale.cases[language]
            if args.domain_sentences:
                case = replace(case, domain_sentences=args.domain_sentences)
            data = general | domain_data(case, scale, work / language / "data")
            record["cases"][language] = run_case(
                case, scale, models[language], args.variants, data, work / language
            )
            check(record["cases"][language])
            write_json(args.output, record)  # each case as it is done
    return finish(args, NAME, record, tables(record))


def check(result: dict) -> None:
    for row in result["rows"]:
        if row["variant"] != "stock":
            require_positive(row, ["train_seconds", "steps"], row["variant"])
        for key in ("domain", "general", "real"):
            if not 0 <= row[key] < 10:
                raise BenchError(f"{row['variant']}: {key} = {row[key]} is not an error rate")


def tables(record: dict) -> list[str]:
    out = []
    for language, result in record["cases"].items():
        metric = result["metric"].upper()
        headers = [
            f"{language}: {Path(result['model']).name}",
            f"domain {metric}",
            "domain cut",
            "general WER",
            "recorded WER",
            "other-language WER (detected)",
            "language ID",
            "train s (steps)",
            "issue 16 goal",
        ]
        rows = [
            [
                row["variant"],
                row["domain"],
                f"{row['domain_cut']:.0%}",
                row["general"],
                row["real"],
                row.get("other", "n/a"),
                _language_id_cell(row),
                _train_cell(row),
                row["goal"],
            ]
            for row in result["rows"]
        ]
        out.append(markdown_table(headers, rows))
    return out


def _train_cell(row: dict) -> str:
    return "" if row["train_seconds"] is None else f"{row['train_seconds']:.0f} ({row['steps']})"


def _language_id_cell(row: dict) -> str:
    if "language_id" not in row:
        return "n/a"
    return (
        f"{row['language_id']:.2f} (en {row['other_language_id']}, zh "
        f"{row['domain_detected_language_id']}, rec. {row['real_language_id']})"
    )


def _count(manifest: Path) -> int:
    from whisper_tune.data.manifest import read_manifest

    return len(read_manifest(manifest)[0])


if __name__ == "__main__":
    main()
