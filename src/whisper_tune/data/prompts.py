"""Previous-text prompts for training samples (``--prompt_ratio``).

Whisper was trained with the text said before a window as a ``<|startofprev|>`` prompt, which
is how ``--initial_prompt`` and ``--hotwords`` steer it. A fine-tune whose targets never hold a
prompt unlearns that. :class:`PromptPicker` gives a share of samples a prompt, from the first
source that has one:

1. the manifest line's own ``prompt`` field;
2. the previous utterance of the same recording: lines that cut one audio file by
   ``audio.start_time`` are that recording's utterances, in time order;
3. another line's sentence, drawn from the set.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from whisper_tune.data.manifest import Utterance

DRAWS = 4  # tries to draw a sentence other than the sample's own


def previous_utterances(utterances: Sequence[Utterance]) -> dict[Utterance, str]:
    """Each segment of a recording → the text of the segment before it (when it has speech)."""
    recordings: dict[str, list[Utterance]] = defaultdict(list)
    for utterance in utterances:
        if utterance.start_time is not None:
            recordings[utterance.audio_path].append(utterance)
    previous = {}
    for segments in recordings.values():
        segments.sort(key=lambda u: u.start_time)
        for before, after in zip(segments, segments[1:], strict=False):
            if not before.is_no_speech and before.start_time < after.start_time:
                previous[after] = before.sentence
    return previous


class PromptPicker:
    """``picker(utterance, rng)``: a prompt text for ``ratio`` of the calls, else None."""

    def __init__(self, utterances: Sequence[Utterance], ratio: float) -> None:
        self.ratio = ratio
        self.previous = previous_utterances(utterances)
        self.sentences = [u.sentence for u in utterances if not u.is_no_speech]

    def __call__(self, utterance: Utterance, rng: np.random.Generator) -> str | None:
        if rng.random() >= self.ratio:
            return None
        if utterance.prompt:
            return utterance.prompt
        if utterance in self.previous:
            return self.previous[utterance]
        return self._other_sentence(utterance, rng)

    def _other_sentence(self, utterance: Utterance, rng: np.random.Generator) -> str | None:
        """A sentence of the set that is not this sample's transcript (a prompt equal to the
        transcript would teach the model to copy its prompt)."""
        if not self.sentences:
            return None
        for _ in range(DRAWS):
            text = self.sentences[rng.integers(len(self.sentences))]
            if text != utterance.sentence:
                return text
        return None
