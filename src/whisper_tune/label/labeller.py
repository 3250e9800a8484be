"""Label one audio file: teacher decode, filters, manifest records.

:class:`Labeller` loads its models once and is then called once per file, so the same object
serves a local loop (:func:`whisper_tune.label.run.label_files`) or a worker process or actor
of a cluster runner; its arguments and results are plain picklable records.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from whisper_tune.audio import SAMPLE_RATE, load_audio, slice_audio
from whisper_tune.data.manifest import Utterance
from whisper_tune.data.prepare.common import join_texts, merge_timed
from whisper_tune.engine_settings import FILE_BATCH_SIZE, EngineSettings
from whisper_tune.inference.batching import transcribe_short
from whisper_tune.inference.chunks import WINDOW_SECONDS
from whisper_tune.inference.loader import load_transcriber
from whisper_tune.inference.types import TranscribeOptions, Transcriber
from whisper_tune.label.filters import LabelFilters, Verdict


@dataclass(frozen=True)
class FileLabels:
    """What labelling one file gave: every decoded segment's verdict, and the training
    records of the kept ones."""

    path: str  # absolute
    duration: float  # seconds of audio in the file
    language: str
    verdicts: tuple[Verdict, ...]  # every decoded segment, kept or not, in time order

    @property
    def records(self) -> list[Utterance]:
        """Manifest records of the kept segments: each run of consecutive kept segments
        merged into windows of at most 30 s."""
        records: list[Utterance] = []
        run: list[Utterance] = []
        for verdict in [*self.verdicts, None]:
            if verdict is not None and verdict.kept:
                run.append(
                    Utterance(
                        audio_path=self.path,
                        sentence=verdict.text,
                        start_time=verdict.start,
                        end_time=verdict.end,
                        duration=round(verdict.end - verdict.start, 3),
                        language=self.language,
                    )
                )
            elif run:
                records += merge_timed(run, max_duration=WINDOW_SECONDS)
                run = []
        return records

    def to_json(self) -> dict:
        """JSON-ready data (as a per-file job log stores it); :meth:`from_json` reads it."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> FileLabels:
        verdicts = tuple(Verdict(**verdict) for verdict in data["verdicts"])
        return cls(data["path"], data["duration"], data["language"], verdicts)


class Labeller:
    """Decode a file with the teacher (timestamps, and VAD when ``options.vad_filter``), judge
    each segment with ``filters`` and turn the kept ones into manifest records.

    Records (:attr:`FileLabels.records`) point at the original file with ``audio.start_time``
    and ``end_time`` (the data loader cuts them out) and hold consecutive kept segments, at
    most 30 s and 1 s apart, with their times in ``sentences`` (for ``finetune
    --timestamps``); a dropped segment ends a record, so no record holds speech without its
    text.
    """

    def __init__(
        self, engine: EngineSettings, options: TranscribeOptions, filters: LabelFilters
    ) -> None:
        self.options = dataclasses.replace(options, timestamps=True, word_timestamps=False)
        self.filters = filters
        self.teacher = load_transcriber(engine)
        self.checker: Transcriber | None = None
        if filters.agreement_model:
            self.checker = load_transcriber(engine, model_path=filters.agreement_model)
        elif filters.agreement == "beam":
            self.checker = self.teacher
        # the second decode: one window per segment, text only, so short clips batch
        beams = 1 if options.beam_size > 1 else TranscribeOptions.beam_size
        self.check_options = dataclasses.replace(
            self.options,
            beam_size=beams if filters.agreement == "beam" else options.beam_size,
            vad_filter=False,
            timestamps=False,
            batch_size=1,
        )

    def __call__(self, path: str | Path) -> FileLabels:
        """Label the file at ``path``; raises :class:`~whisper_tune.errors.AudioError` when it
        cannot be read."""
        audio = load_audio(path)
        segments, info = self.teacher.transcribe(audio, self.options)
        verdicts = [self.filters.verdict(segment) for segment in segments]
        if self.checker is not None:
            verdicts = self._check_agreement(self.checker, audio, verdicts, info.language)
        source = str(Path(path).resolve())
        return FileLabels(
            path=source,
            duration=len(audio) / SAMPLE_RATE,
            language=info.language,
            verdicts=tuple(verdicts),
        )

    def _check_agreement(
        self, checker: Transcriber, audio: np.ndarray, verdicts: list[Verdict], language: str
    ) -> list[Verdict]:
        """Decode each segment that passed the thresholds again (``FILE_BATCH_SIZE`` at a
        time, batched where the engine can) and drop those whose texts disagree."""
        options = dataclasses.replace(self.check_options, language=language)
        todo = [i for i, verdict in enumerate(verdicts) if verdict.kept]
        judged = list(verdicts)
        for first in range(0, len(todo), FILE_BATCH_SIZE):
            batch = todo[first : first + FILE_BATCH_SIZE]
            clips = [slice_audio(audio, verdicts[i].start, verdicts[i].end) for i in batch]
            decoded = transcribe_short(checker, clips, options)
            for i, (segments, _) in zip(batch, decoded, strict=True):
                other = join_texts(segment.text for segment in segments)
                rate = self.filters.disagreement(verdicts[i].text, other, language)
                dropped = "disagreement" if rate > self.filters.max_disagreement else None
                judged[i] = dataclasses.replace(
                    verdicts[i], dropped_by=dropped, disagreement=round(rate, 4)
                )
        return judged
