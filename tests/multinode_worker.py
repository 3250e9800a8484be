"""``python multinode_worker.py SEEN_DIR finetune ...`` under torchrun or accelerate launch:
the ``whisper-tune`` CLI, plus a record of what this process trained on.

Each training batch's label ids (the targets, without ignored positions) are appended to
``SEEN_DIR/rank<RANK>.jsonl``, one line per sample, so a test can tell which utterances each
rank saw. Used by tests/test_multinode.py; not part of the product.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from whisper_tune.cli import main
from whisper_tune.data.targets import IGNORE
from whisper_tune.train.distill import DistillingTrainer


def record_training_batches(seen: Path) -> None:
    step = DistillingTrainer.training_step

    def recording(self, model, inputs, *args, **kwargs):
        with open(seen / f"rank{os.environ['RANK']}.jsonl", "a", encoding="utf-8") as out:
            for row in inputs["labels"]:
                out.write(json.dumps([int(t) for t in row if t != IGNORE]) + "\n")
        return step(self, model, inputs, *args, **kwargs)

    DistillingTrainer.training_step = recording


if __name__ == "__main__":
    record_training_batches(Path(sys.argv[1]))
    main(sys.argv[2:])
