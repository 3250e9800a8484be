"""Real recorded speech shipped with the package: a small "general" set for regression checks.

Twelve English clips (48 s, from four sources, more than one speaker) in ``recordings/``,
converted to 16 kHz mono FLAC from files that ship in public packages; the manifest is a
seed-format one (``whisper-tune evaluate --test_data`` reads it as is) whose lines also say
where each clip comes from (``source``) and under which terms (``licence``). Transcripts are
as the sources give them.
"""

from __future__ import annotations

from dataclasses import replace
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


def write_real_speech(
    path: str | Path, max_clips: int | None = None, detect_language: bool = False
) -> Path:
    """Write the clips as a manifest at ``path`` (audio stays in the package).

    ``detect_language`` drops each line's language, so an evaluation lets the model detect it
    (a per-line language would win over the model's guess).
    """
    utterances = real_speech(max_clips)
    if detect_language:
        utterances = [replace(u, language=None) for u in utterances]
    write_manifest(path, utterances)
    return Path(path)
