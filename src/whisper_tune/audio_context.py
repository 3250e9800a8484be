"""Dynamic audio context: encode a short clip at its own length instead of a padded 30 s window.

Whisper pads every window to 30 s (3000 log-mel frames, 1500 encoder positions). A model
fine-tuned with ``finetune --dynamic_audio_ctx`` works with the encoder run on the clip's own
frames, rounded up to a multiple of :data:`MULTIPLE` positions with a floor of :data:`FLOOR`;
whisper-tune writes a marker saying so beside the model (:data:`MARKER_FILE` in a model dir,
``<file>.whisper_tune.json`` beside a GGML file), which merge, convert and export-ggml carry.

``--audio_ctx`` (one option, :func:`whisper_tune.engine_settings.audio_ctx_option`):
``auto`` encodes a marked model's windows at their own length and a stock model's at 30 s,
``full`` always 30 s, ``N`` at least N encoder positions (whisper.cpp's ``-ac N``: 20 ms each).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

from whisper_tune.errors import WhisperTuneError

log = logging.getLogger("whisper_tune.inference")

MARKER_FILE = "whisper_tune.json"
HOP_SAMPLES = 160  # samples per log-mel frame (16 kHz, 10 ms)
FULL_POSITIONS = 1500  # encoder positions of a 30 s window (whisper.cpp's n_audio_ctx)
FRAMES_PER_POSITION = 2  # the encoder's second convolution has stride 2
SECONDS_PER_POSITION = 0.02
FULL_FRAMES = FULL_POSITIONS * FRAMES_PER_POSITION
MULTIPLE = 50  # positions: a context is rounded up to whole seconds
FLOOR = 100  # positions: never below 2 s
AUDIO_CTX_MODES = ("auto", "full")
# what a short context does to a model not trained for it (issue 24, tiny.en int8, 48 clips)
UNTRAINED_RISK = (
    "transcripts drifted 18 % WER from the full-window ones at 1000 frames (500 positions) "
    "and looped at 600 frames on stock tiny.en"
)


@dataclass(frozen=True)
class ContextRule:
    """How a window's encoder context is chosen: its content rounded up to ``multiple``
    positions, at least ``floor``, at most the full 1500."""

    floor: int = FLOOR
    multiple: int = MULTIPLE

    def positions(self, content_frames: int) -> int:
        """Encoder positions for a window whose audio fills ``content_frames`` mel frames."""
        needed = math.ceil(content_frames / FRAMES_PER_POSITION)
        rounded = math.ceil(needed / self.multiple) * self.multiple
        return min(FULL_POSITIONS, max(self.floor, rounded))

    def frames(self, content_frames: int) -> int:
        """Mel frames the encoder gets for such a window (an even number, at most 3000)."""
        return self.positions(content_frames) * FRAMES_PER_POSITION


FULL = ContextRule(floor=FULL_POSITIONS)  # every window at 30 s, as Whisper was trained


def frames_of(samples: int) -> int:
    """Log-mel frames of ``samples`` of 16 kHz audio (as Whisper's feature extractors count)."""
    return samples // HOP_SAMPLES + 1


def check_audio_ctx(value: str) -> str:
    """``value`` if it is ``auto``, ``full`` or a whole number of positions in [1, 1500]."""
    if value in AUDIO_CTX_MODES:
        return value
    if value.isdigit() and 1 <= int(value) <= FULL_POSITIONS:
        return value
    raise WhisperTuneError(
        f"--audio_ctx {value!r}: use auto, full or a number of encoder positions from 1 to "
        f"{FULL_POSITIONS} (20 ms each)"
    )


def marker_path(model_path: str | Path) -> Path:
    """Where the marker of a model dir (inside it) or a model file (beside it) lives."""
    path = Path(model_path).expanduser()
    return path.with_name(path.name + "." + MARKER_FILE) if path.is_file() else path / MARKER_FILE


def read_marker(model_path: str | Path) -> ContextRule | None:
    """The context rule a model was trained for, or None for a model without the marker."""
    path = marker_path(model_path)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if not record.get("dynamic_audio_ctx"):
            return None
        return ContextRule(
            floor=int(record["audio_ctx_floor"]), multiple=int(record["audio_ctx_multiple"])
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise WhisperTuneError(f"{path}: not a whisper-tune marker ({exc})") from None


def write_marker(model_path: str | Path, rule: ContextRule = ContextRule()) -> Path:
    """Mark a model dir (or a model file) as trained for dynamic audio context."""
    path = marker_path(model_path)
    record = {
        "dynamic_audio_ctx": True,
        "audio_ctx_floor": rule.floor,
        "audio_ctx_multiple": rule.multiple,
    }
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return path


def copy_marker(source: str | Path, target: str | Path) -> bool:
    """Carry ``source``'s marker to ``target`` (a dir or file), or remove a stale one from an
    earlier export to the same place; whether ``source`` had one."""
    rule = read_marker(source)
    if rule is not None:
        write_marker(target, rule)
    else:
        marker_path(target).unlink(missing_ok=True)
    return rule is not None


def context_rule(
    audio_ctx: str, trained: ContextRule | None, model: str = "the model"
) -> ContextRule:
    """The rule ``--audio_ctx`` asks for on a model trained for ``trained`` (None: stock).

    ``auto`` is the trained rule, or 30 s windows for a stock model; ``full`` 30 s windows;
    ``N`` a floor of N positions (rounded as trained). A short context on a stock model is
    allowed with a warning: it was not trained for it.
    """
    audio_ctx = check_audio_ctx(audio_ctx)
    if audio_ctx == "full" or (audio_ctx == "auto" and trained is None):
        return FULL
    if audio_ctx == "auto":
        return trained
    rule = ContextRule(floor=int(audio_ctx), multiple=(trained or ContextRule()).multiple)
    if trained is None and rule.floor < FULL_POSITIONS:
        log.warning(
            "--audio_ctx %s: %s was not fine-tuned for a short audio context "
            "(finetune --dynamic_audio_ctx); %s",
            audio_ctx,
            model,
            UNTRAINED_RISK,
        )
    return rule
