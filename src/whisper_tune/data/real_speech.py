"""Real recorded speech shipped with the package: a small "general" set for regression checks.

Twelve English clips (48 s, from four sources, more than one speaker) in ``recordings/``,
converted to 16 kHz mono FLAC from files that ship in public packages; the manifest is a
seed-format one (``whisper-tune evaluate --test_data`` reads it as is) whose lines also say
where each clip comes from (``source``) and under which terms (``licence``). Transcripts are
as the sources give them.
"""

from __future__ import annotations

from pathlib import Path

from whisper_tune.data.manifest import Utterance, read_manifest, write_manifest

REAL_SPEECH_MANIFEST = Path(__file__).with_name("recordings") / "manifest.jsonl"


def real_speech(max_clips: int | None = None) -> list[Utterance]:
    """The recorded clips; ``max_clips`` of them spread evenly from the shortest to the longest
    (the shortest alone are all card names)."""
    utterances, _ = read_manifest(REAL_SPEECH_MANIFEST)
    if max_clips is None or max_clips >= len(utterances):
        return utterances
    ordered = sorted(utterances, key=lambda u: u.duration or 0.0)
    step = len(ordered) / max_clips
    return [ordered[int(i * step)] for i in range(max_clips)]


def write_real_speech(path: str | Path, max_clips: int | None = None) -> Path:
    """Write the clips as a manifest at ``path`` (audio stays in the package; each line says
    "en": ``evaluate --detect_language`` scores a model's language identification on it)."""
    write_manifest(path, real_speech(max_clips))
    return Path(path)
