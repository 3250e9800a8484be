"""Decoder targets for Whisper training: prompt tokens, text, timestamps, no-speech.

Each sample becomes ``decoder_input_ids`` and ``labels`` of equal length (labels are the inputs
shifted left). Two details the seed got wrong are handled here:

* A no-speech sample (empty sentence) is trained both to put the no-speech token first after
  ``<|startoftranscript|>`` — the position Whisper reads its no-speech probability from — and to
  end the transcript immediately, so silence decodes to nothing.
* With timestamps on, a share of samples keeps plain ``<|notimestamps|>`` targets and the rest
  gets ``<|t0|> text <|t1|>`` targets, so the model keeps both skills.
* The language token after ``<|startoftranscript|>`` is what language detection reads; trained
  on a one-language set it teaches the model to hear that language in everything (a Mandarin
  fine-tune then writes English speech as Chinese), so it can be left out of the loss
  (``language_id=False``).

A sample may also start with a previous-text prompt, ``<|startofprev|> prompt tokens``, before
``<|startoftranscript|>``, as Whisper was trained and as ``--initial_prompt`` decodes; the prompt
is context only, so its label positions are ignored (``IGNORE``).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from whisper_tune.data.manifest import TimedText, Utterance

TIME_PRECISION = 0.02
MAX_TIMESTAMP = 30.0
MAX_TARGET_TOKENS = 448
# openai/whisper keeps the last n_text_ctx // 2 - 1 prompt tokens
MAX_PROMPT_TOKENS = MAX_TARGET_TOKENS // 2 - 1
IGNORE = -100  # label of a position the loss skips (prompt, padding)


@dataclass(frozen=True)
class SpecialTokens:
    """Ids of Whisper's special tokens for one tokenizer."""

    sot: int
    eot: int
    prev: int
    no_timestamps: int
    no_speech: int
    timestamp_begin: int
    transcribe: int | None
    translate: int | None
    multilingual: bool

    @classmethod
    def from_tokenizer(cls, tokenizer) -> SpecialTokens:
        vocab = tokenizer.get_vocab()

        def token_id(*names: str) -> int | None:
            return next((vocab[name] for name in names if name in vocab), None)

        timestamp_begin = token_id("<|0.00|>")
        if timestamp_begin is None:
            raise ValueError("the tokenizer has no timestamp tokens (<|0.00|> ...)")
        return cls(
            sot=token_id("<|startoftranscript|>"),
            eot=token_id("<|endoftext|>"),
            prev=token_id("<|startofprev|>"),
            no_timestamps=token_id("<|notimestamps|>"),
            no_speech=token_id("<|nospeech|>", "<|nocaptions|>"),
            timestamp_begin=timestamp_begin,
            transcribe=token_id("<|transcribe|>"),
            translate=token_id("<|translate|>"),
            # openai/whisper's rule: English-only vocabularies have 51864 tokens
            multilingual=len(tokenizer) >= 51865,
        )

    def timestamp(self, seconds: float) -> int:
        clamped = min(max(seconds, 0.0), MAX_TIMESTAMP)
        return self.timestamp_begin + int(round(clamped / TIME_PRECISION))


@dataclass(frozen=True)
class Target:
    decoder_input_ids: list[int]
    labels: list[int]
    truncated: bool = False


class TargetBuilder:
    """Turns an utterance into decoder inputs and labels for one tokenizer."""

    def __init__(
        self, tokenizer, language: str | None, task: str = "transcribe", language_id: bool = True
    ) -> None:
        self.tokenizer = tokenizer
        self.special = SpecialTokens.from_tokenizer(tokenizer)
        self.language = language
        self.task = task
        self.language_id = language_id  # the language token's label is in the loss

    def prompt(self, language: str | None, timestamps: bool) -> list[int]:
        """``<|startoftranscript|> [<|lang|> <|task|>] [<|notimestamps|>]``."""
        tokens = [self.special.sot]
        if self.special.multilingual:
            code = language or self.language
            if code is None:
                raise ValueError("a multilingual model needs a language (--language or per line)")
            tokens.append(self.tokenizer.convert_tokens_to_ids(f"<|{code}|>"))
            tokens.append(
                self.special.translate if self.task == "translate" else self.special.transcribe
            )
        if not timestamps:
            tokens.append(self.special.no_timestamps)
        return tokens

    def build(
        self,
        utterance: Utterance,
        timestamps: bool,
        audio_seconds: float,
        previous_text: str | None = None,
    ) -> Target:
        """The target of ``utterance``, after a ``previous_text`` prompt when one is given."""
        target = self._transcript(utterance, timestamps, audio_seconds)
        return self._with_prompt(target, previous_text) if previous_text else target

    def _with_prompt(self, target: Target, text: str) -> Target:
        """``<|startofprev|>`` + the prompt's last tokens (as many as fit) before ``target``."""
        room = min(MAX_PROMPT_TOKENS, MAX_TARGET_TOKENS - len(target.decoder_input_ids) - 1)
        tokens = self._text(text)[-room:] if room > 0 else []
        if not tokens:
            return target
        prefix = [self.special.prev, *tokens]
        return Target(
            prefix + target.decoder_input_ids,
            [IGNORE] * len(prefix) + target.labels,
            target.truncated,
        )

    def _transcript(self, utterance: Utterance, timestamps: bool, audio_seconds: float) -> Target:
        language = utterance.language or self.language
        if utterance.is_no_speech:
            prompt = self.prompt(language, timestamps=False)
            labels = prompt[1:] + [self.special.eot]
            labels[0] = self.special.no_speech
            return Target(prompt, labels)
        prompt = self.prompt(language, timestamps)
        body = (
            self._timed_body(utterance, audio_seconds)
            if timestamps
            else self._text(utterance.sentence)
        )
        tokens = prompt + body + [self.special.eot]
        truncated = len(tokens) > MAX_TARGET_TOKENS + 1
        if truncated:
            tokens = tokens[:MAX_TARGET_TOKENS] + [self.special.eot]
        labels = tokens[1:]
        if self.special.multilingual and not self.language_id:
            labels[0] = IGNORE  # the language token: context, not a target
        return Target(tokens[:-1], labels, truncated)

    def _timed_body(self, utterance: Utterance, audio_seconds: float) -> list[int]:
        pieces = utterance.sentences or (TimedText(0.0, audio_seconds, utterance.sentence),)
        body: list[int] = []
        for piece in pieces:
            body.append(self.special.timestamp(piece.start))
            body.extend(self._text(piece.text))
            body.append(self.special.timestamp(min(piece.end, audio_seconds)))
        return body

    def _text(self, text: str) -> list[int]:
        text = text.strip()
        if text and _spaced_script(text[0]):
            text = " " + text
        return self.tokenizer.encode(text, add_special_tokens=False)


def _spaced_script(char: str) -> bool:
    """Whisper starts text with a space in scripts that separate words by spaces."""
    name = unicodedata.name(char, "")
    return not any(script in name for script in ("CJK", "HIRAGANA", "KATAKANA", "HANGUL", "THAI"))
