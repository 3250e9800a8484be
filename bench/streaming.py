"""Live transcription: commit lag and WER of ``StreamingTranscriber`` on the bundled tiny.en.

Synthesised English sentences (0.8 s apart) are played in at real-time speed by 1 and by 4
concurrent streams (threads sharing one model loaded as the server loads it: int8 on a CPU,
2 workers). Each stream feeds whatever audio has arrived since its last call, as the server's
decoder does, so a slow decode takes in more audio the next time. For every committed word,
the commit lag is the wall time of its commit minus the moment the word had been played (its
end time in the stream, as the model timed it). Reported per level: median and p95 lag over
all words of all streams, and the WER of the committed text against the offline transcript of
the same audio (same model, whole file) and against the synthesised text.

Usage: ``python -m bench.streaming [--smoke] [--output FILE]``.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from collections.abc import Sequence

import numpy as np

from bench.harness import (
    BenchError,
    bench_parser,
    finish,
    machine,
    markdown_table,
    parse_args,
    require_positive,
)
from bench.speech import word_error_rate
from whisper_tune.audio import SAMPLE_RATE
from whisper_tune.corpus_text import ENGLISH_GENERAL
from whisper_tune.inference import TranscribeOptions, load_transcriber
from whisper_tune.inference.streaming import StreamingTranscriber
from whisper_tune.synth import concatenate, synthesize

NAME = "streaming"
MODEL = "tiny.en"
WORKERS = 2  # the server's model workers
POLL_SECONDS = 0.05  # how often a stream with nothing new looks again


def speech(sentences: int) -> tuple[np.ndarray, str]:
    texts = list(ENGLISH_GENERAL)[:sentences]
    clips = [synthesize(text, "en", 1.0, seed=i) for i, text in enumerate(texts)]
    return concatenate(clips, 0.8), " ".join(texts)


def play(transcriber, audio: np.ndarray, options: TranscribeOptions, start: threading.Barrier):
    """Play ``audio`` in at real-time speed; the commit lag of each word and the text."""
    stream = StreamingTranscriber(transcriber, options)
    lags: list[float] = []
    turns: list[str] = []
    start.wait()
    began = time.monotonic()

    def note(updates) -> None:
        now = time.monotonic() - began
        for update in updates:
            lags.extend(now - word.end for word in update.committed)
            if update.turn is not None:
                turns.append(update.turn.text)

    fed = 0
    while fed < len(audio):
        arrived = min(len(audio), int((time.monotonic() - began) * SAMPLE_RATE))
        if arrived - fed < POLL_SECONDS * SAMPLE_RATE and arrived < len(audio):
            time.sleep(POLL_SECONDS)
            continue
        note(stream.process(audio[fed:arrived]))
        fed = arrived
    note([stream.end_turn()])
    return lags, " ".join(turns)


def measure(transcriber, audio, offline: str, reference: str, streams: int, beam: int) -> dict:
    options = TranscribeOptions(beam_size=beam)
    start = threading.Barrier(streams)
    results: list = [None] * streams

    def run(index: int) -> None:
        results[index] = play(transcriber, audio, options, start)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(streams)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    lags = sorted(float(lag) for stream_lags, _ in results for lag in stream_lags)
    if not lags:
        raise BenchError(f"{streams} stream(s), beam {beam}: nothing was committed")
    texts = [text for _, text in results]
    row = {
        "streams": streams,
        "beam_size": beam,
        "words": len(lags),
        "median_lag_s": round(statistics.median(lags), 3),
        "p95_lag_s": round(lags[min(len(lags) - 1, int(0.95 * len(lags)))], 3),
        "max_lag_s": round(lags[-1], 3),
        "wer_vs_offline": round(statistics.mean(word_error_rate(offline, t) for t in texts), 4),
        "wer_vs_text": round(statistics.mean(word_error_rate(reference, t) for t in texts), 4),
        "wall_s": round(wall, 2),
        "texts_off_offline": [t for t in texts if word_error_rate(offline, t)],  # what went wrong
        "audio_s": round(len(audio) / SAMPLE_RATE, 2),
    }
    require_positive(row, ("median_lag_s", "p95_lag_s"), f"{streams} stream(s)")
    return row


def main(argv: Sequence[str] | None = None) -> dict:
    parser = bench_parser(NAME, __doc__.split("\n\n")[0])
    args = parse_args(parser, argv, NAME)
    sentences, levels = (1, [(1, 1), (2, 1)]) if args.smoke else (
        6, [(1, 5), (4, 5), (1, 1), (4, 1)]
    )  # fmt: skip
    record = {"benchmark": NAME, "machine": machine(), "model": MODEL, "levels": []}
    audio, reference = speech(sentences)
    transcriber = load_transcriber(MODEL, num_workers=WORKERS)
    record["compute_type"] = getattr(transcriber, "compute_type", "?")
    offline = " ".join(s.text for s in transcriber.transcribe(audio, TranscribeOptions())[0])
    record["offline_wer_vs_text"] = round(word_error_rate(reference, offline), 4)
    for streams, beam in levels:
        row = measure(transcriber, audio, offline, reference, streams, beam)
        print(f"{streams} stream(s), beam {beam}: {row}", file=sys.stderr)
        record["levels"].append(row)
    columns = ["streams", "beam_size", "words", "median_lag_s", "p95_lag_s", "max_lag_s"]
    columns += ["wer_vs_offline", "wer_vs_text", "audio_s", "wall_s"]
    table = markdown_table(columns, [[r[c] for c in columns] for r in record["levels"]])
    return finish(args, NAME, record, [table])


if __name__ == "__main__":
    main()
