"""checkpoint-best by the real metric (greedy generation), guarded by a regression set.

The selection rule is checked on eval curves recorded from a real run of this code.
"""

from __future__ import annotations

from whisper_tune.train.selection import EvalRecord, choose_best, records_from_log

# Evaluations recorded from a real run (trainer_state.json's log_history, eval entries only):
# the tiny random Whisper of conftest (tiny.en tokenizer) fine-tuned 12 steps at lr 1e-2 on
# test_finetune's three clips, evaluated on the same clips every 3 steps. The eval loss keeps
# falling while the generated WER is best at the first eval: the drift users reported.
RECORDED_LOG = [
    {"eval_loss": 10.305303573608398, "step": 3},
    {"eval_regression_wer": 1.0, "eval_wer": 1.0, "step": 3},
    {"eval_loss": 10.135822296142578, "step": 6},
    {"eval_regression_wer": 29.5, "eval_wer": 29.5, "step": 6},
    {"eval_loss": 10.075800895690918, "step": 9},
    {"eval_regression_wer": 6.583333333333333, "eval_wer": 6.583333333333333, "step": 9},
    {"eval_loss": 10.050018310546875, "step": 12},
    {"eval_regression_wer": 9.5, "eval_wer": 9.5, "step": 12},
    {"loss": 10.1, "step": 12},
]


def test_recorded_curves_merge_into_one_record_per_eval():
    records = records_from_log(RECORDED_LOG, "wer")
    assert [r.step for r in records] == [3, 6, 9, 12]
    assert records[1] == EvalRecord(6, 10.135822296142578, 29.5, 29.5)


def test_wer_and_loss_pick_different_checkpoints_on_a_recorded_run():
    records = records_from_log(RECORDED_LOG, "wer")
    by_loss = choose_best(records, "loss", None, 0.01)
    by_wer = choose_best(records, "metric", None, 0.01)
    assert by_loss.record.step == 12  # the old rule: lowest eval loss
    assert by_wer.record.step == 3 and by_wer.value == 1.0
    # only saved steps are candidates (save_steps 6: steps 6 and 12)
    saved = choose_best(records, "metric", None, 0.01, saved=lambda step: step % 6 == 0)
    assert saved.record.step == 12


def test_regression_bound_rejects_the_best_domain_checkpoint():
    # the recorded domain curve, with a regression set scored beside it: step 3 (best domain
    # WER) forgot general speech, step 9 kept it within 0.01 of the base model's 0.20
    records = [
        EvalRecord(r.step, r.loss, r.metric, regression)
        for r, regression in zip(
            records_from_log(RECORDED_LOG, "wer"), (0.45, 0.20, 0.205, 0.35), strict=True
        )
    ]
    choice = choose_best(records, "metric", 0.20, 0.01)
    assert choice.record.step == 9 and choice.qualified
    assert "within base 0.2000 + 0.01" in choice.describe("wer", 0.20, 0.01)
    # nothing qualifies: the best by domain metric, and the description says so
    fallback = choose_best(records, "metric", 0.10, 0.01)
    assert fallback.record.step == 3 and not fallback.qualified
    assert "no checkpoint kept the regression metric" in fallback.describe("wer", 0.10, 0.01)
