"""``push``: a fine-tuned model, its CTranslate2/GGML variants and a model card → the Hub.

The upload folder holds the model as ``merge`` wrote it (or a LoRA checkpoint), ``ct2/`` and
``ggml-model.bin`` when asked, and ``README.md``: a model card whose metadata names the base
model, languages, task, training data and the pushed model's scores from ``evaluate``
reports as ``model-index`` (the Hub renders them), and whose text states the training data's
size, the training config (``run_config.json``) and every model of the reports (the base
model's "before" beside this one's "after"). ``--dry_run`` stops before the upload; the upload
is ``huggingface_hub.upload_folder`` (network and a token; not runnable offline).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from whisper_tune.data.hf_datasets import HUB_PREFIX
from whisper_tune.errors import WhisperTuneError
from whisper_tune.fsutil import atomic_dir
from whisper_tune.options import option
from whisper_tune.train.config import RUN_CONFIG, read_run_config

CARD = "README.md"
TASK = "automatic-speech-recognition"
# training settings worth a reader's eye, in this order (the whole config follows in JSON)
CARD_SETTINGS = (
    "base_model", "train_data", "test_data", "language", "task", "use_adalora", "lora_r",
    "lora_alpha", "learning_rate", "num_train_epochs", "max_steps", "total_steps",
    "per_device_train_batch_size", "timestamps", "seed",
)  # fmt: skip


@dataclass
class PushConfig:
    """Options of ``whisper-tune push``."""

    model_path: str = option(
        help="the model to share: a merged Hugging Face model dir (whisper-tune merge), or a "
        "LoRA checkpoint (finetune's checkpoint-best)"
    )
    repo_id: str = option(help="Hub repository, user/name")
    eval_report: tuple[str, ...] = option(
        (),
        help="evaluate report folders (summary.json): every model's score goes into a "
        "before/after table of the card, the pushed model's also into its model-index metadata "
        "(the row naming --model_path or a convert output of it, else the report's last model)",
    )
    ct2: bool = option(False, help="also convert to CTranslate2 (faster-whisper) into ct2/")
    ct2_quantization: str = option("float16", help="weight type of the ct2/ variant")
    ggml: bool = option(False, help="also export whisper.cpp's ggml-model.bin")
    output_dir: str | None = option(
        None, help="where the upload folder is written (default: hub/<name of --repo_id>)"
    )
    dry_run: bool = option(
        False, help="write the folder and card and print what would be uploaded; upload nothing"
    )
    private: bool = option(False, help="create the repository as private")
    local_files_only: bool = option(True, help="never download a model from the hub")


@dataclass
class PushResult:
    folder: Path
    files: list[str] = field(default_factory=list)
    url: str | None = None


def push(config: PushConfig) -> PushResult:
    """Write the upload folder (model, variants, card); upload it unless ``dry_run``."""
    if config.repo_id.count("/") != 1 or not all(config.repo_id.split("/")):
        raise WhisperTuneError(f"--repo_id {config.repo_id!r}: expected user/name")
    folder = Path(config.output_dir or Path("hub") / config.repo_id.split("/")[1])
    write_folder(config, folder)
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    result = PushResult(folder, files)
    if not config.dry_run:
        result.url = upload(folder, config.repo_id, config.private)
    return result


def write_folder(config: PushConfig, folder: Path) -> None:
    """The upload folder: the model's files, its variants and ``README.md``."""
    source = Path(config.model_path)
    if not (source / "config.json").is_file() and not (source / "adapter_config.json").is_file():
        raise WhisperTuneError(
            f"{source}: not a Hugging Face model or LoRA checkpoint folder (no config.json)"
        )
    with atomic_dir(folder) as tmp:
        shutil.copytree(source, tmp, dirs_exist_ok=True)
        variants = []
        if config.ct2:
            from whisper_tune.convert.ct2_export import convert_to_ct2

            convert_to_ct2(
                str(source),
                tmp / "ct2",
                config.ct2_quantization,
                local_files_only=config.local_files_only,
            )
            variants.append("ct2")
        if config.ggml:
            from whisper_tune.convert.ggml import export_ggml

            export_ggml(source, tmp / "ggml-model.bin", local_files_only=config.local_files_only)
            variants.append("ggml")
        reports = [read_eval_report(path) for path in config.eval_report]
        card = model_card(source, config.repo_id, reports, variants)
        (tmp / CARD).write_text(card, encoding="utf-8")


def upload(folder: Path, repo_id: str, private: bool = False) -> str:
    """Create ``repo_id`` if needed and upload ``folder`` in one commit; the repo's URL."""
    from huggingface_hub import create_repo, upload_folder

    try:
        url = create_repo(repo_id, private=private, exist_ok=True)
        upload_folder(repo_id=repo_id, folder_path=folder, commit_message="whisper-tune push")
    except Exception as exc:  # network, token, permission: one line, not a traceback
        raise WhisperTuneError(f"upload to {repo_id} failed: {exc}") from None
    return str(url)


def read_eval_report(path: str | Path) -> dict:
    """An ``evaluate`` report folder's ``summary.json`` (or the file itself)."""
    summary = Path(path)
    if summary.is_dir():
        summary = summary / "summary.json"
    try:
        return json.loads(summary.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise WhisperTuneError(f"{summary}: not an evaluate summary.json ({exc})") from None


def training_config(model_dir: Path) -> dict:
    """The ``run_config.json`` a checkpoint holds, or the one ``merge`` kept."""
    if (model_dir / RUN_CONFIG).is_file():
        return read_run_config(model_dir)
    info = model_dir / "merge_info.json"
    if info.is_file():
        return json.loads(info.read_text(encoding="utf-8")).get("run_config", {})
    return {}


def model_card(model_dir: Path, repo_id: str, reports: list[dict], variants: list[str]) -> str:
    """The ``README.md`` of the upload: metadata (YAML) and text."""
    from huggingface_hub import ModelCard, ModelCardData

    run = training_config(model_dir)
    adapter = (model_dir / "adapter_config.json").is_file()
    datasets = [
        spec[len(HUB_PREFIX) :]
        for spec in (run.get("train_data"), run.get("test_data"))
        if isinstance(spec, str) and spec.startswith(HUB_PREFIX)
    ]
    rows = [row for report in reports for row in report.get("models", [report])]
    mine = _pushed_rows(reports, model_dir)
    data = ModelCardData(
        base_model=hub_model_id(run.get("base_model")),
        language=[run["language"]] if run.get("language") else None,
        library_name="peft" if adapter else "transformers",
        pipeline_tag=TASK,
        tags=["whisper", "whisper-tune", "lora" if adapter else "fine-tuned", *variants],
        datasets=datasets or None,
        model_name=repo_id,
        eval_results=[_eval_result(row) for row in mine] or None,
    )
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n" + _card_text(repo_id, run, rows, adapter)))


def hub_model_id(reference: str | None) -> str | None:
    """The Hub id of a base model reference: a bundled name's OpenAI original, a hub id as
    it is; None for a local folder (the card's text still names it)."""
    from whisper_tune.zoo import BUNDLED_MODELS

    if not reference:
        return None
    if reference in BUNDLED_MODELS:
        return f"openai/whisper-{reference}"
    if reference.count("/") == 1 and not Path(reference).exists():
        return reference
    return None


def _eval_result(row: dict):
    from huggingface_hub import EvalResult

    test_data = str(row.get("test_data", "test"))
    hub = test_data.startswith(HUB_PREFIX)
    return EvalResult(
        task_type=TASK,
        dataset_type=test_data[len(HUB_PREFIX) :] if hub else test_data,
        dataset_name=test_data[len(HUB_PREFIX) :] if hub else Path(test_data).stem,
        metric_type=row["metric"],
        metric_value=round(100 * row["score"], 2),
        metric_name=f"{row['metric'].upper()} (%)",
    )


def _pushed_rows(reports: list[dict], model_dir: Path) -> list[dict]:
    """Each report's row of the pushed model: the row naming ``model_dir`` or a CTranslate2
    conversion of it (its ``conversion_report.json`` names ``model_dir``), else the report's
    last model (``evaluate --model_path BASE TUNED``)."""
    chosen = []
    for report in reports:
        rows = report.get("models", [report])
        mine = [row for row in rows if _same_model(str(row.get("model", "")), model_dir)]
        chosen += mine or rows[-1:]
    return chosen


def _same_model(reference: str, model_dir: Path) -> bool:
    path = Path(reference)
    if not path.exists():
        return False
    if path.resolve() == model_dir.resolve():
        return True
    from whisper_tune.convert.ct2_export import REPORT_NAME

    conversion = path / REPORT_NAME
    if not conversion.is_file():
        return False
    source = json.loads(conversion.read_text(encoding="utf-8")).get("model_path", "")
    return Path(source).resolve() == model_dir.resolve()


def _card_text(repo_id: str, run: dict, rows: list[dict], adapter: bool) -> str:
    lines = [f"# {repo_id.split('/')[1]}", ""]
    base = run.get("base_model", "a Whisper model")
    kind = "a LoRA adapter" if adapter else "LoRA, merged into the model"
    lines.append(
        f"A fine-tune of `{base}` for {run.get('task', 'transcribe')} "
        f"({run.get('language') or 'language from the data'}), made with whisper-tune "
        f"({kind})."
    )
    if run.get("train_data"):
        size = f", {run['train_samples']} utterances" if run.get("train_samples") else ""
        lines += ["", "## Training data", "", f"`{run['train_data']}`{size}."]
    if rows:
        lines += [
            "",
            "## Evaluation",
            "",
            "| model | test data | metric | score |",
            "|---|---|---|---|",
        ]
        for row in rows:
            lines.append(
                f"| `{row.get('model')}` | `{row.get('test_data')}` | {row['metric'].upper()} "
                f"| {100 * row['score']:.2f} % |"
            )
    if run:
        lines += ["", "## Training", ""]
        lines += [f"- {key}: `{run[key]}`" for key in CARD_SETTINGS if run.get(key) is not None]
        shown = {k: v for k, v in run.items() if k not in ("eval_history",)}
        lines += ["", "<details><summary>run_config.json</summary>", "", "```json"]
        lines += [json.dumps(shown, indent=2, ensure_ascii=False), "```", "", "</details>"]
    return "\n".join(lines) + "\n"
