"""``finetune``: manifest (or shards) + base model → LoRA/AdaLoRA checkpoints.

The recipe reads top to bottom: check the request, load data, load the model, attach the
adapter, train with the transformers Trainer, then write ``checkpoint-final`` and
``checkpoint-best`` atomically, each with its ``run_config.json``. ``checkpoint-best`` is the
lowest ``--metric`` by generation (or eval loss) among checkpoints that kept the
``--regression_data`` score (see :mod:`whisper_tune.train.metric_eval` and ``selection``).
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from whisper_tune.audio_context import ContextRule, write_marker
from whisper_tune.data.dataset import (
    Collator,
    DatasetStream,
    ManifestDataset,
    ReplayMix,
    SampleMaker,
    ShardStream,
    read_utterances,
)
from whisper_tune.data.hf_datasets import DatasetOptions, is_dataset_source
from whisper_tune.data.manifest import Utterance
from whisper_tune.data.prompts import PromptPicker
from whisper_tune.data.targets import TargetBuilder
from whisper_tune.errors import WhisperTuneError
from whisper_tune.fsutil import atomic_dir
from whisper_tune.languages import check_task, default_metric, language_code
from whisper_tune.models import load_processor, load_whisper, model_name
from whisper_tune.options import check_ranges
from whisper_tune.resolve import resolve_hf_model
from whisper_tune.text import scoring_options
from whisper_tune.train.adapters import attach_adapter
from whisper_tune.train.callbacks import (
    AdaLoraBudgetCallback,
    PlainProgress,
    RunConfigCallback,
    tracking_locations,
)
from whisper_tune.train.config import FinetuneConfig
from whisper_tune.train.distill import DistillingTrainer
from whisper_tune.train.encoder_cache import (
    EncoderStateCache,
    cache_size_bytes,
    run_from_cached_states,
)
from whisper_tune.train.metric_eval import CheckpointRule, GenerationScorer
from whisper_tune.train.resume import check_resume
from whisper_tune.train.selection import records_from_log


@dataclass
class FinetuneResult:
    run_dir: Path
    final_checkpoint: Path
    best_checkpoint: Path
    steps: int
    first_loss: float | None
    last_loss: float | None
    best_eval_loss: float | None
    train_seconds: float
    train_samples_per_second: float
    skipped_audio: int
    world_size: int
    wrote_checkpoints: bool  # this process wrote them (rank 0, or each node's first process)
    metric: str | None
    best_step: int | None
    selection: str | None
    best_metric: float | None = None
    tracking: dict[str, str] = field(default_factory=dict)  # tracker -> where its logs are


def finetune(config: FinetuneConfig) -> FinetuneResult:
    """Fine-tune ``config.base_model`` and return where the checkpoints are."""
    _check_hardware(config)
    language = language_code(config.language)
    check_task(config.task)
    reference = resolve_hf_model(config.base_model, config.local_files_only)
    processor = load_processor(reference, config.local_files_only)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if config.resume_from_checkpoint:
        check_resume(config, reference, world_size)

    make_sample = SampleMaker(
        feature_extractor=processor.feature_extractor,
        targets=TargetBuilder(processor.tokenizer, language, config.task),
        timestamps=config.timestamps,
        timestamp_ratio=config.timestamp_ratio,
        augment=_load_augmenter(config.augment_config_path),
        seed=config.seed,
    )
    train_set, train_size = _training_data(config, make_sample, rank, world_size)
    make_sample.targets.language_id = _trains_language_id(
        config, train_set, language, make_sample.targets, rank
    )
    eval_set = _eval_data(config.test_data, config, make_sample) if config.test_data else None
    regression_set = (
        _eval_data(config.regression_data, config, make_sample, config.eval_max_samples)
        if config.regression_data
        else None
    )
    for dataset in (eval_set, regression_set):
        _check_languages(make_sample.targets, train_set, dataset, language)

    per_step = config.per_device_train_batch_size * config.gradient_accumulation_steps * world_size
    total_steps = (
        config.max_steps
        if config.max_steps > 0
        else max(1, math.ceil(config.num_train_epochs * math.ceil(train_size / per_step)))
    )

    from transformers import set_seed

    # the adapters' random initialisation follows --seed, not what the process ran before
    set_seed(config.seed)
    model = load_whisper(reference, config.local_files_only, **_load_kwargs(config))
    model.generation_config.forced_decoder_ids = None
    model.config.use_cache = False
    model = attach_adapter(model, config, total_steps)
    frozen = config.frozen_encoder_layers(model.config.encoder_layers)
    if frozen and _can_cache_encoder(config, train_set, eval_set, model.config):
        encoder = model.get_base_model().get_encoder()
        batch, workers = config.per_device_eval_batch_size, config.num_workers
        train_set = EncoderStateCache(train_set, encoder, frozen, batch, workers)
        if eval_set is not None:
            eval_set = EncoderStateCache(eval_set, encoder, frozen, batch, workers)
        if regression_set is not None:
            regression_set = EncoderStateCache(regression_set, encoder, frozen, batch, workers)
        run_from_cached_states(encoder, frozen)
    if rank == 0:
        model.print_trainable_parameters()

    run_dir = Path(config.output_dir) / model_name(config.base_model)
    collator = Collator(
        processor.tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        config.skip_bad,
        with_frames=config.dynamic_audio_ctx,
    )
    facts = {
        "resolved_base_model": reference,
        "world_size": world_size,
        "total_steps": total_steps,
        "train_samples": train_size,
    }
    callbacks = [RunConfigCallback(config, facts)]
    if not sys.stdout.isatty():
        callbacks.append(PlainProgress())
    if config.use_adalora:
        callbacks.append(AdaLoraBudgetCallback())
    rule = _checkpoint_rule(config, eval_set, regression_set, make_sample.targets, language)
    rule.measure_base(model)
    if rule.base_regression is not None:
        facts[f"base_regression_{rule.metric}"] = rule.base_regression

    trainer = DistillingTrainer(
        model=model,
        args=_training_arguments(
            config,
            run_dir,
            total_steps,
            eval_set is not None,
            world_size,
            isinstance(train_set, ShardStream),
        ),
        train_dataset=train_set,
        eval_dataset=eval_set,
        data_collator=collator,
        callbacks=callbacks,
        rule=rule,
        kl_weight=config.kl_weight,
        audio_context=ContextRule() if config.dynamic_audio_ctx else None,
        audio_ctx_weight=config.audio_ctx_weight,
        audio_ctx_teacher=config.audio_ctx_teacher,
    )
    if not sys.stdout.isatty():
        from transformers import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # its raw log dicts: PlainProgress' lines instead
    started = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=config.resume_from_checkpoint)
    seconds = time.perf_counter() - started

    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    records = records_from_log(trainer.state.log_history, rule.metric)
    facts["eval_history"] = [asdict(record) for record in records]
    selection = rule.describe()
    if selection:
        print(selection)
        facts["selection"] = selection
    best_record = rule.choice.record if rule.choice else None
    final = run_dir / "checkpoint-final"
    best = run_dir / "checkpoint-best"
    if trainer.args.should_save:
        _save_checkpoint(trainer, processor, final, config, facts)
        best_source = trainer.state.best_model_checkpoint
        if best_record and best_source and Path(best_source).is_dir():
            _copy_checkpoint(Path(best_source), best, processor)
            config.save(best, global_step=best_record.step, **facts)
        else:
            _copy_checkpoint(final, best, processor)
        if config.dynamic_audio_ctx:
            write_marker(best)
    if config.push_to_hub and trainer.is_world_process_zero():
        _push(config, best, run_dir)
    if world_size > 1:
        _report_rank_checksum(trainer.model, rank)
    return FinetuneResult(
        run_dir=run_dir,
        final_checkpoint=final,
        best_checkpoint=best,
        steps=trainer.state.global_step,
        first_loss=losses[0] if losses else None,
        last_loss=losses[-1] if losses else None,
        best_eval_loss=best_record.loss if best_record else None,
        train_seconds=seconds,
        train_samples_per_second=output.metrics.get("train_samples_per_second", 0.0),
        skipped_audio=len(collator.skipped),
        world_size=world_size,
        wrote_checkpoints=trainer.args.should_save,
        metric=rule.metric if eval_set is not None else None,
        best_step=best_record.step if best_record else None,
        selection=selection,
        best_metric=best_record.metric if best_record else None,
        tracking=tracking_locations(trainer),
    )


def _check_hardware(config: FinetuneConfig) -> None:
    if not config.train_data:
        raise WhisperTuneError("finetune needs --train_data (or --dataset_name)")
    cuda = torch.cuda.is_available()
    if config.fp16 and not cuda:
        raise WhisperTuneError(
            "--fp16 needs a CUDA GPU and none is available; leave it off on CPU "
            "(or use --bf16 where the CPU supports bfloat16)"
        )
    if config.use_8bit:
        if not cuda:
            raise WhisperTuneError("--use_8bit needs a CUDA GPU and none is available")
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise WhisperTuneError(
                "--use_8bit needs bitsandbytes: pip install bitsandbytes"
            ) from None
    _check_trackers(config.report_to)
    if config.push_to_hub and not config.hub_model_id:
        raise WhisperTuneError("--push_to_hub needs --hub_model_id (e.g. user/whisper-tiny-zh)")
    check_ranges(
        config,
        eval_max_samples=config.eval_max_samples >= 1,
        max_regression=config.max_regression >= 0,
        warmup_ratio=0 <= config.warmup_ratio < 1,
        warmup_steps=(config.warmup_steps or 0) >= 0,
        prompt_ratio=0 <= config.prompt_ratio <= 1,
        kl_weight=config.kl_weight >= 0,
        audio_ctx_weight=config.audio_ctx_weight >= 0,
        replay_ratio=0 <= config.replay_share() < 1,
        freeze_encoder_layers=(config.freeze_encoder_layers or 0) >= 0,
    )
    if config.replay_share() > 0 and not config.replay_data:
        raise WhisperTuneError(
            f"--replay_ratio {config.replay_ratio} mixes general speech into training: "
            "it needs --replay_data (a manifest)"
        )
    if config.dynamic_audio_ctx and config.kl_weight:
        raise WhisperTuneError(
            "--kl_weight and --dynamic_audio_ctx: the audio-context loss already pulls the "
            "model towards the base model (its KL); weigh it with --audio_ctx_weight"
        )
    if config.regression_data and not config.test_data:
        raise WhisperTuneError("--regression_data is scored at each eval: it needs --test_data")
    if config.test_data and config.save_steps % config.eval_steps:
        raise WhisperTuneError(
            f"--save_steps ({config.save_steps}) must be a multiple of --eval_steps "
            f"({config.eval_steps}) so the best checkpoint by eval loss is saved"
        )


def _check_trackers(report_to: tuple[str, ...]) -> None:
    """``--report_to``: ``none`` alone, and each tracker's package installed."""
    import importlib.util

    if "none" in report_to and len(report_to) > 1:
        raise WhisperTuneError(f"--report_to {' '.join(report_to)}: 'none' goes alone")
    packages = {"mlflow": "'whisper-tune[track]'", "wandb": "wandb"}
    for name in report_to:
        if name in packages and importlib.util.find_spec(name) is None:
            raise WhisperTuneError(f"--report_to {name} needs {name}: pip install {packages[name]}")


def _load_augmenter(path: str | None):
    if not path:
        return None
    from whisper_tune.data.augment import load_augmenter

    return load_augmenter(path)


def _training_data(config: FinetuneConfig, make_sample: SampleMaker, rank: int, world: int):
    from whisper_tune.data.shards import is_sharded_corpus

    sharded = is_sharded_corpus(config.train_data)
    if sharded or (config.streaming and is_dataset_source(config.train_data)):
        what = "shards" if sharded else "a --streaming dataset"
        if config.max_steps <= 0:
            raise WhisperTuneError(f"training from {what} streams the corpus: set --max_steps")
        if config.replay_data:
            raise WhisperTuneError(
                "--replay_data mixes a manifest into a manifest training set; "
                f"with {what}, add the general speech to the corpus instead"
            )
        per_process = (
            config.max_steps
            * config.per_device_train_batch_size
            * config.gradient_accumulation_steps
        )
        streamed = _with_prompts(make_sample, [], config)  # streamed: the lines' own prompts
        if sharded:  # each process reads its own shards
            stream = ShardStream(
                config.train_data,
                streamed,
                per_process,
                config.min_audio_len,
                config.max_audio_len,
                config.shuffle_buffer,
                rank,
                world,
            )
        else:  # read by the main process, its batches dispatched to the others
            stream = DatasetStream(
                config.train_data,
                DatasetOptions.of(config),
                streamed,
                per_process * world,
                (config.min_audio_len, config.max_audio_len, config.skip_bad),
                config.shuffle_buffer,
            )
        return stream, config.max_steps * config.per_device_train_batch_size
    utterances, audio = _read_utterances(config.train_data, config, "train")
    domain = ManifestDataset(utterances, _with_prompts(make_sample, utterances, config), audio)
    if not config.replay_data:
        return domain, len(domain)
    general, general_audio = _read_utterances(config.replay_data, config, "replay")
    replay = ManifestDataset(general, _with_prompts(make_sample, general, config), general_audio)
    mixed = ReplayMix(domain, replay, config.replay_share(), config.seed)
    print(f"training on {len(domain)} domain + {len(mixed) - len(domain)} replay samples")
    return mixed, len(mixed)


def _with_prompts(
    make_sample: SampleMaker, utterances: list[Utterance], config: FinetuneConfig
) -> SampleMaker:
    """``make_sample`` giving ``--prompt_ratio`` of the samples a previous-text prompt."""
    if not config.prompt_ratio:
        return make_sample
    return replace(make_sample, prompts=PromptPicker(utterances, config.prompt_ratio))


def _read_utterances(path: str, config: FinetuneConfig, role: str, limit: int | None = None):
    """A manifest's or dataset's utterances (its first ``limit``) whose audio exists, and how
    to read their audio; none is an error."""
    utterances, stats, audio = read_utterances(
        path,
        role,
        DatasetOptions.of(config),
        config.min_audio_len,
        config.max_audio_len,
        config.skip_bad,
        limit,
    )
    print(f"{role} data {path}: {stats.summary()}")
    if not utterances:
        raise WhisperTuneError(f"{path}: no utterances left in the {role} data")
    return utterances, audio


def _eval_data(
    path: str, config: FinetuneConfig, make_sample: SampleMaker, limit: int | None = None
) -> ManifestDataset:
    """An evaluation manifest (its first ``limit`` utterances) with plain targets."""
    utterances, audio = _read_utterances(path, config, "eval", limit)
    plain = SampleMaker(make_sample.feature_extractor, make_sample.targets, seed=config.seed)
    return ManifestDataset(utterances, plain, audio)


def _checkpoint_rule(
    config: FinetuneConfig, eval_set, regression_set, targets: TargetBuilder, language: str | None
) -> CheckpointRule:
    """What each eval scores by generation: the eval set's first ``--eval_max_samples``
    (when checkpoint-best goes by the metric) and the regression set."""
    utterances = eval_set.utterances if eval_set is not None else []
    first_language = next((u.language for u in utterances if u.language), None)
    spoken = language or first_language or (None if targets.special.multilingual else "en")
    metric = config.metric or default_metric(spoken)
    options = scoring_options(
        spoken, config.remove_pun, config.to_simple, config.english_normalizer
    )

    def scorer(dataset, manifest_utterances) -> GenerationScorer:
        return GenerationScorer(
            dataset,
            manifest_utterances,
            targets=targets,
            metric=metric,
            options=options,
            batch_size=config.per_device_eval_batch_size,
        )

    rule = CheckpointRule(metric, config.metric_for_best_model, config.max_regression)
    if eval_set is not None and config.metric_for_best_model == "metric":
        count = min(config.eval_max_samples, len(eval_set))
        rule.domain = scorer(torch.utils.data.Subset(eval_set, range(count)), utterances)
    if regression_set is not None:
        rule.regression = scorer(regression_set, regression_set.utterances)
    return rule


def _trains_language_id(
    config: FinetuneConfig, train_set, language: str | None, targets: TargetBuilder, rank: int
) -> bool:
    """Whether the language token is in the loss (``--language_id_loss``); 'auto': when the
    training utterances hold more than one language (or, in a stream, may: no --language)."""
    if not targets.special.multilingual:
        return True  # an English-only model has no language token
    if config.language_id_loss != "auto":
        return config.language_id_loss == "on"
    listed = getattr(train_set, "utterances", None)
    if listed is None:  # a stream: one language when --language names it, else unknown
        if language is None:
            return True
        languages = {language}
    else:
        languages = {language_code(u.language) or language for u in listed if not u.is_no_speech}
        if len(languages) > 1:
            return True
    if rank == 0:
        print(
            f"language token not trained: the training data are in one language "
            f"({', '.join(sorted(map(str, languages)))}); --language_id_loss on trains it"
        )
    return False


def _check_languages(targets: TargetBuilder, train_set, eval_set, language: str | None) -> None:
    """A multilingual model needs a language for every utterance; say so before training."""
    if not targets.special.multilingual or language:
        return
    for dataset in (train_set, eval_set):
        for utterance in getattr(dataset, "utterances", []):
            if not utterance.language and not utterance.is_no_speech:
                raise WhisperTuneError(
                    f"{utterance.source}: no language for this utterance; a multilingual model "
                    "needs --language (e.g. Chinese) or a 'language' field on each line"
                )


def _can_cache_encoder(config: FinetuneConfig, train_set, eval_set, model_config) -> bool:
    """Encode each clip once when the audio is fixed between epochs and the cache fits."""
    if not config.cache_encoder_outputs or config.dynamic_audio_ctx:
        return False  # audio-context training encodes each clip at two lengths
    if config.augment_config_path or not isinstance(train_set, (ManifestDataset, ReplayMix)):
        return False
    clips = len(train_set) + (len(eval_set) if eval_set is not None else 0)
    needed = cache_size_bytes(clips, model_config)
    if needed > config.encoder_cache_gb * 2**30:
        print(
            f"encoder cache would need {needed / 2**30:.1f} GiB > --encoder_cache_gb; "
            "encoding on the fly"
        )
        return False
    return True


def _load_kwargs(config: FinetuneConfig) -> dict:
    if config.use_8bit:
        from transformers import BitsAndBytesConfig

        return {
            "quantization_config": BitsAndBytesConfig(load_in_8bit=True),
            "device_map": {"": int(os.environ.get("LOCAL_RANK", "0"))},
        }
    return {}


def _training_arguments(
    config: FinetuneConfig,
    run_dir: Path,
    total_steps: int,
    has_eval: bool,
    world_size: int,
    rank_split: bool,
):
    """``rank_split``: the training stream splits itself between the processes (shards), so
    each process loads its own batches instead of the main one dispatching them."""
    from transformers import TrainingArguments

    cuda = torch.cuda.is_available()
    fp16 = cuda if config.fp16 is None else config.fp16
    return TrainingArguments(
        output_dir=str(run_dir),
        per_device_train_batch_size=config.per_device_train_batch_size,
        per_device_eval_batch_size=config.per_device_eval_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        warmup_steps=config.warmup_for(total_steps),
        num_train_epochs=config.num_train_epochs,
        max_steps=total_steps,
        logging_steps=config.logging_steps,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=config.eval_steps if has_eval else None,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        save_on_each_node=config.save_on_each_node,
        # checkpoint-best: SelectingTrainer's rule, not transformers' metric_for_best_model
        fp16=fp16,
        bf16=config.bf16,
        torch_compile=config.use_compile,
        activation_checkpointing=config.gradient_checkpointing,
        dataloader_num_workers=config.num_workers,
        remove_unused_columns=False,
        label_names=["labels"],
        report_to=[name for name in config.report_to if name != "none"] or "none",
        disable_tqdm=not sys.stdout.isatty(),  # a log file gets PlainProgress' lines instead
        use_cpu=not cuda,
        ddp_backend=("nccl" if cuda else "gloo") if world_size > 1 else None,
        ddp_find_unused_parameters=False if world_size > 1 else None,
        accelerator_config={"dispatch_batches": False} if rank_split else None,
        # --push_to_hub uploads checkpoint-best once at the end (_push), not at every save
        seed=config.seed,
    )


def _save_checkpoint(trainer, processor, target: Path, config: FinetuneConfig, facts: dict):
    with atomic_dir(target) as tmp:
        trainer.save_model(str(tmp))
        processor.save_pretrained(str(tmp))
        config.save(tmp, global_step=trainer.state.global_step, **facts)
        if config.dynamic_audio_ctx:
            write_marker(tmp)


def _copy_checkpoint(source: Path, target: Path, processor) -> None:
    with atomic_dir(target) as tmp:
        shutil.copytree(
            source,
            tmp,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns(
                "optimizer.pt", "scheduler.pt", "rng_state*.pth", "scaler.pt"
            ),
        )
        processor.save_pretrained(str(tmp))


def _push(config: FinetuneConfig, best: Path, run_dir: Path) -> None:
    """Upload checkpoint-best with a model card, once (``whisper-tune push`` does the same
    for a merged model)."""
    from whisper_tune.hub import PushConfig, push

    result = push(
        PushConfig(str(best), config.hub_model_id, output_dir=str(run_dir / "hub-upload"))
    )
    print(f"uploaded {best} to {result.url}")


def _report_rank_checksum(model, rank: int) -> None:
    """Print a checksum of the trainable weights, so a launcher can see all ranks agree."""
    total = sum(float(p.detach().double().sum()) for p in model.parameters() if p.requires_grad)
    print(f"rank {rank}: trainable weight checksum {total:.10e}", flush=True)
