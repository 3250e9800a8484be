"""The real metric during fine-tuning: greedy transcripts scored like ``evaluate`` scores them.

At every evaluation the model in training decodes the first ``--eval_max_samples`` utterances
of the eval set (and of ``--regression_data``), batched and greedy, and the transcripts are
scored with :func:`whisper_tune.text.score_transcript`, the one scoring definition ``evaluate``
uses too. :class:`SelectingTrainer` logs the scores next to the eval loss (TensorBoard,
``trainer_state.json``) and keeps ``checkpoint-best`` by :func:`choose_best`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import GenerationMixin, Trainer

from whisper_tune.data.manifest import Utterance
from whisper_tune.data.targets import TargetBuilder
from whisper_tune.evaluate import token_budget
from whisper_tune.text import TextOptions, error_rate, score_transcript
from whisper_tune.train.selection import Choice, choose_best, records_from_log


class GenerationScorer:
    """Greedy transcripts of one set's first utterances, scored with ``metric``.

    ``dataset[i]`` is the model input of ``utterances[i]`` (log-mel features, or the cached
    frozen-encoder states); the inputs are built once, here.
    """

    def __init__(
        self,
        dataset,
        utterances: list[Utterance],
        *,
        targets: TargetBuilder,
        metric: str,
        options: TextOptions,
        batch_size: int,
    ) -> None:
        self.samples = [dataset[i] for i in range(len(dataset))]
        self.utterances = utterances[: len(self.samples)]
        self.targets = targets
        self.metric = metric
        self.options = options
        self.batch_size = batch_size

    @torch.inference_mode()
    def score(self, model) -> float:
        """The error rate of ``model`` (a PeftModel or a plain Whisper) on this set."""
        whisper = model.get_base_model() if hasattr(model, "get_base_model") else model
        was_training = whisper.training
        whisper.eval()
        errors = units = 0
        for start in range(0, len(self.samples), self.batch_size):
            pairs = [
                (sample, utterance)
                for sample, utterance in zip(
                    self.samples[start : start + self.batch_size],
                    self.utterances[start : start + self.batch_size],
                    strict=True,
                )
                if "bad" not in sample
            ]
            if not pairs:
                continue
            samples, utterances = zip(*pairs, strict=True)
            texts = self._decode(whisper, samples, utterances)
            for utterance, text in zip(utterances, texts, strict=True):
                scored = score_transcript(utterance.sentence, text, self.metric, self.options)
                errors += scored.errors
                units += scored.reference_length
        whisper.train(was_training)
        return error_rate(errors, units)

    def _decode(self, whisper, samples, utterances) -> list[str]:
        """Greedy decode after the training prompt (``<|sot|> [lang task] <|notimestamps|>``).

        transformers' generic ``generate`` on the encoder output: Whisper's own ``generate``
        needs log-mel input (its long-form loop), and the frozen-encoder cache holds states.
        """
        parameter = next(whisper.parameters())
        features = torch.stack([torch.as_tensor(s["input_features"]) for s in samples])
        encoded = whisper.get_encoder()(features.to(parameter.device, parameter.dtype))
        prompts = torch.tensor(
            [self.targets.prompt(u.language, timestamps=False) for u in utterances],
            device=parameter.device,
        )
        tokens = GenerationMixin.generate(
            whisper,
            encoder_outputs=encoded,
            decoder_input_ids=prompts,
            max_new_tokens=token_budget(max(s["seconds"] for s in samples)),
            num_beams=1,
            do_sample=False,
            use_cache=True,
        )
        return self.targets.tokenizer.batch_decode(tokens, skip_special_tokens=True)


@dataclass
class CheckpointRule:
    """What each evaluation scores and how ``checkpoint-best`` is chosen from the records."""

    metric: str
    by: str  # "metric" or "loss"
    max_regression: float
    domain: GenerationScorer | None = None
    regression: GenerationScorer | None = None
    base_regression: float | None = None
    choice: Choice | None = field(default=None, init=False)

    def measure_base(self, model) -> None:
        """Score the base model (adapters off) on the regression set, once, before training."""
        if self.regression is not None:
            with model.disable_adapter():
                self.base_regression = self.regression.score(model)
            print(f"base model {self.metric} on --regression_data: {self.base_regression:.4f}")

    def scores(self, model) -> dict[str, float]:
        values = {}
        if self.domain is not None:
            values[f"eval_{self.metric}"] = self.domain.score(model)
        if self.regression is not None:
            values[f"eval_regression_{self.metric}"] = self.regression.score(model)
        return values

    def describe(self) -> str | None:
        if self.choice is None:
            return None
        by = self.metric if self.by == "metric" else "eval loss"
        return self.choice.describe(by, self.base_regression, self.max_regression)


class SelectingTrainer(Trainer):
    """A Trainer whose evaluations add :class:`CheckpointRule`'s scores, and whose best
    checkpoint (kept from rotation, copied to ``checkpoint-best``) is :func:`choose_best`'s.
    transformers' own best-metric rule stays off (no ``metric_for_best_model``)."""

    def __init__(self, *args, rule: CheckpointRule, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.rule = rule

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        if eval_dataset is not None or metric_key_prefix != "eval":
            return metrics
        scores = self.rule.scores(self.model)
        if scores:
            self.log(scores)
            metrics.update(scores)
        self._choose()
        return metrics

    def _choose(self) -> None:
        save_steps, last = self.args.save_steps, self.state.max_steps

        def saved(step: int) -> bool:
            return step % save_steps == 0 or step == last

        records = records_from_log(self.state.log_history, self.rule.metric)
        choice = choose_best(
            records, self.rule.by, self.rule.base_regression, self.rule.max_regression, saved
        )
        self.rule.choice = choice
        if choice is not None:
            self.state.best_global_step = choice.record.step
            self.state.best_metric = choice.value
