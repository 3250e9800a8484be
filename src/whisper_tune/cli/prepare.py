"""``whisper-tune prepare``: corpora → JSONL manifests, checks, shards (the seed's aishell.py)."""

from __future__ import annotations

import argparse

from whisper_tune.cli._args import add, add_bool, add_config_options, config_from_args

COMMAND = "prepare"
HELP = "prepare training data: AIShell, WenetSpeech, common layouts, check, shards"
DESCRIPTION = """\
Turn a corpus into the seed's JSONL manifests (one utterance per line), check a manifest
before training, or pack one into tar shards that training streams with bounded memory.
Input files and archives are only read; outputs are written atomically, and a re-run skips
finished work (existing manifests, extracted archives, written shards).
"""


def register(parser: argparse.ArgumentParser) -> None:
    subparsers = parser.add_subparsers(dest="source", metavar="SOURCE")
    for name, help_text, build in _SOURCES:
        sub = subparsers.add_parser(
            name,
            help=help_text,
            description=help_text,
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        build(sub)
    parser.set_defaults(run=lambda _args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _print(report) -> int:
    print(report.summary())
    return 0


def _common(parser: argparse.ArgumentParser, output_help: str = "folder for the JSONL manifests"):
    add(parser, "--annotation_dir", default="dataset/", help=output_help)
    add_bool(parser, "--overwrite", False, "rebuild manifests that already exist")


def _aishell(parser: argparse.ArgumentParser) -> None:
    add(
        parser,
        "--filepath",
        default=None,
        help="your data_aishell.tgz (read only, never deleted); without it an extracted "
        "<target_dir>/data_aishell is used, else the archive is downloaded (resumable)",
    )
    add(parser, "--target_dir", default="dataset/audio/", help="folder to extract the audio into")
    add(
        parser,
        "--annotation_text",
        default="dataset/",
        help="folder for train.jsonl, dev.jsonl, test.jsonl",
    )
    add(
        parser,
        "--punctuated_text",
        default=None,
        help="optional 'ID text' file of punctuated transcripts that replace the plain ones",
    )
    add_bool(
        parser,
        "--timestamps",
        False,
        "add the seed's 'sentences' field (one span, 0 to the utterance's duration)",
    )
    add_bool(parser, "--overwrite", False, "rebuild manifests that already exist")
    parser.set_defaults(run=_run_aishell)


def _run_aishell(args: argparse.Namespace) -> int:
    from whisper_tune.data.prepare.aishell import prepare_aishell

    return _print(
        prepare_aishell(
            args.filepath,
            args.target_dir,
            args.annotation_text,
            args.punctuated_text,
            args.timestamps,
            args.overwrite,
        )
    )


def _wenetspeech(parser: argparse.ArgumentParser) -> None:
    add(parser, "--wenetspeech_json", required=True, help="the corpus' WenetSpeech.json")
    add(
        parser,
        "--audio_dir",
        default=None,
        help="folder the JSON's audio paths are relative to (default: the JSON's folder)",
    )
    _common(parser, "folder for train_l.jsonl, dev.jsonl, test_net.jsonl, ...")
    add(
        parser,
        "--subsets",
        default="L,DEV,TEST_NET,TEST_MEETING",
        help="comma-separated subsets, one manifest each: S, M, L, W, DEV, TEST_NET, TEST_MEETING",
    )
    add(
        parser,
        "--min_confidence",
        type=float,
        default=0.95,
        help="drop segments whose label confidence is below this",
    )
    add_bool(
        parser,
        "--timestamps",
        False,
        "merge consecutive segments into windows with per-segment 'sentences' timestamps",
    )
    add(
        parser,
        "--max_duration",
        type=float,
        default=30.0,
        help="longest merged window in seconds (with --timestamps)",
    )
    parser.set_defaults(run=_run_wenetspeech)


def _run_wenetspeech(args: argparse.Namespace) -> int:
    from whisper_tune.data.prepare.wenetspeech import prepare_wenetspeech

    return _print(
        prepare_wenetspeech(
            args.wenetspeech_json,
            args.audio_dir,
            args.annotation_dir,
            args.subsets,
            args.min_confidence,
            args.timestamps,
            args.max_duration,
            args.overwrite,
        )
    )


def _audiofolder(parser: argparse.ArgumentParser) -> None:
    add(parser, "--folder", required=True, help="folder with metadata.csv or metadata.jsonl")
    _common(parser, "folder for <split>.jsonl (train, test, validation ...)")
    add(
        parser,
        "--text_column",
        default=None,
        help="column holding the text (default: transcription, sentence or text)",
    )
    add(
        parser,
        "--language",
        default=None,
        help="language of every line (code or name) unless a 'language' column says otherwise",
    )
    parser.set_defaults(run=_run_audiofolder)


def _run_audiofolder(args: argparse.Namespace) -> int:
    from whisper_tune.data.prepare.audiofolder import prepare_audiofolder

    return _print(
        prepare_audiofolder(
            args.folder, args.annotation_dir, args.text_column, args.language, args.overwrite
        )
    )


def _ljspeech(parser: argparse.ArgumentParser) -> None:
    add(parser, "--folder", required=True, help="LJSpeech folder (metadata.csv and wavs/)")
    _common(parser, "folder for train.jsonl and test.jsonl")
    add(
        parser,
        "--test_ratio",
        type=float,
        default=0.1,
        help="share of utterances drawn at random into test.jsonl (0: none)",
    )
    add(parser, "--seed", type=int, default=0, help="random seed of the test draw")
    add_bool(
        parser,
        "--normalized_text",
        False,
        "use the third column (numbers spelled out) instead of the text as written",
    )
    add(parser, "--language", default="en", help="language of the corpus (code or name)")
    parser.set_defaults(run=_run_ljspeech)


def _run_ljspeech(args: argparse.Namespace) -> int:
    from whisper_tune.data.prepare.ljspeech import prepare_ljspeech

    return _print(
        prepare_ljspeech(
            args.folder,
            args.annotation_dir,
            args.test_ratio,
            args.seed,
            args.normalized_text,
            args.language,
            args.overwrite,
        )
    )


def _commonvoice(parser: argparse.ArgumentParser) -> None:
    add(
        parser,
        "--tsv",
        nargs="+",
        required=True,
        help="Common Voice TSV file(s), e.g. cv/zh-CN/train.tsv cv/zh-CN/test.tsv",
    )
    add(parser, "--clips_dir", default=None, help="audio folder (default: clips/ beside the TSV)")
    _common(parser, "folder for <tsv name>.jsonl")
    add(
        parser,
        "--language",
        default=None,
        help="language of every line (default: from the 'locale' column)",
    )
    parser.set_defaults(run=_run_commonvoice)


def _run_commonvoice(args: argparse.Namespace) -> int:
    from whisper_tune.data.prepare.commonvoice import prepare_commonvoice

    return _print(
        prepare_commonvoice(
            args.tsv, args.clips_dir, args.annotation_dir, args.language, args.overwrite
        )
    )


def _kaldi(parser: argparse.ArgumentParser) -> None:
    add(
        parser,
        "--data_dir",
        required=True,
        help="Kaldi data directory with wav.scp and text (and segments, if any)",
    )
    _common(parser, "folder for <data_dir name>.jsonl")
    add(
        parser,
        "--audio_root",
        default=".",
        help="folder that relative paths in wav.scp start from (the recipe folder)",
    )
    add(parser, "--language", default=None, help="language of every line (code or name)")
    parser.set_defaults(run=_run_kaldi)


def _run_kaldi(args: argparse.Namespace) -> int:
    from whisper_tune.data.prepare.kaldi import prepare_kaldi

    return _print(
        prepare_kaldi(
            args.data_dir, args.annotation_dir, args.audio_root, args.language, args.overwrite
        )
    )


def _subtitles(parser: argparse.ArgumentParser) -> None:
    add(
        parser,
        "--audio_dir",
        required=True,
        help="folder of recordings, each with a .srt or .vtt of the same name beside it",
    )
    _common(parser, "folder for <name>.jsonl")
    add(parser, "--name", default="train", help="manifest name")
    add(parser, "--language", default=None, help="language of every line (code or name)")
    add_bool(
        parser,
        "--timestamps",
        False,
        "merge neighbouring cues into windows with per-cue 'sentences' timestamps",
    )
    add(
        parser,
        "--max_duration",
        type=float,
        default=30.0,
        help="longest merged window in seconds (with --timestamps)",
    )
    parser.set_defaults(run=_run_subtitles)


def _run_subtitles(args: argparse.Namespace) -> int:
    from whisper_tune.data.prepare.subtitles import prepare_subtitles

    return _print(
        prepare_subtitles(
            args.audio_dir,
            args.annotation_dir,
            args.name,
            args.language,
            args.timestamps,
            args.max_duration,
            args.overwrite,
        )
    )


def _check(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "manifest",
        help="JSONL manifest to check, or a datasets source (save_to_disk folder, "
        ".parquet/.arrow files, audiofolder, hf://datasets/NAME)",
    )
    add_bool(
        parser,
        "--decode",
        True,
        "decode every audio file (finds corrupt audio; off: only check the files exist)",
    )
    _dataset_options(parser)
    parser.set_defaults(run=_run_check)


def _run_check(args: argparse.Namespace) -> int:
    from whisper_tune.data.hf_datasets import is_dataset_source
    from whisper_tune.data.prepare.check import check_dataset, check_manifest

    if is_dataset_source(args.manifest):
        report = check_dataset(args.manifest, _dataset_config(args), args.decode)
    else:
        report = check_manifest(args.manifest, args.decode)
    print(report.summary())
    return 0 if report.ok else 1


def _from_datasets(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source",
        help="save_to_disk folder, .parquet/.arrow file(s), audiofolder or hf://datasets/NAME",
    )
    add(parser, "--output", required=True, help="the JSONL manifest to write")
    add(
        parser,
        "--audio_dir",
        default=None,
        help="where audio held in the dataset is written as wav (default: <output>_audio/)",
    )
    add_bool(parser, "--overwrite", False, "rebuild the manifest if it exists")
    _dataset_options(parser)
    parser.set_defaults(run=_run_from_datasets)


def _run_from_datasets(args: argparse.Namespace) -> int:
    from whisper_tune.data.prepare.from_datasets import prepare_from_datasets

    return _print(
        prepare_from_datasets(
            args.source, args.output, _dataset_config(args), args.audio_dir, args.overwrite
        )
    )


def _dataset_options(parser: argparse.ArgumentParser) -> None:
    from whisper_tune.data.hf_datasets import DatasetOptions

    add_config_options(parser, DatasetOptions)


def _dataset_config(args: argparse.Namespace):
    from whisper_tune.data.hf_datasets import DatasetOptions

    return config_from_args(DatasetOptions, args)


def _shard(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", help="JSONL manifest to pack")
    add(parser, "--output_dir", required=True, help="folder for shard-*.tar and index.json")
    add(parser, "--samples_per_shard", type=int, default=1000, help="utterances per tar shard")
    add(
        parser,
        "--audio_format",
        default="flac",
        choices=["flac", "wav", "opus"],
        help="how audio is stored: flac/wav are lossless 16-bit, opus is ~10x smaller",
    )
    add_bool(
        parser,
        "--shuffle",
        True,
        "write recordings in a seeded random order (slices of one file stay together)",
    )
    add(parser, "--seed", type=int, default=0, help="random seed of the shuffle")
    add_bool(
        parser,
        "--skip_bad",
        False,
        "leave out malformed lines and undecodable audio (listed) instead of stopping",
    )
    add_bool(parser, "--overwrite", False, "rewrite shards that already exist")
    parser.set_defaults(run=_run_shard)


def _run_shard(args: argparse.Namespace) -> int:
    from whisper_tune.data.prepare.sharding import write_shards

    return _print(
        write_shards(
            args.manifest,
            args.output_dir,
            args.samples_per_shard,
            args.audio_format,
            args.shuffle,
            args.seed,
            args.skip_bad,
            args.overwrite,
        )
    )


def _unshard(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shards", help="sharded corpus folder (with index.json)")
    add(
        parser,
        "--output_dir",
        required=True,
        help="folder for audio/<shard>/<key>.<ext> and the manifest",
    )
    add(parser, "--name", default="manifest", help="manifest name (<output_dir>/<name>.jsonl)")
    parser.set_defaults(run=_run_unshard)


def _run_unshard(args: argparse.Namespace) -> int:
    from whisper_tune.data.prepare.sharding import unshard

    return _print(unshard(args.shards, args.output_dir, args.name))


def _seed_binary(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("header", help="the seed's <name>.header (its <name>.data beside it)")
    add(parser, "--output", required=True, help="JSONL manifest to write")
    add(
        parser,
        "--audio_root",
        default=None,
        help="folder relative audio paths start from (the seed's lists: the folder it ran in; "
        "default: the header's folder)",
    )
    parser.set_defaults(run=_run_seed_binary)


def _run_seed_binary(args: argparse.Namespace) -> int:
    from whisper_tune.data.seed_binary import seed_binary_to_jsonl

    count = seed_binary_to_jsonl(args.header, args.output, args.audio_root)
    print(f"wrote {args.output}: {count} utterances")
    return 0


_SOURCES = (
    ("aishell", "AIShell-1 archive → train/dev/test JSONL (the seed's aishell.py)", _aishell),
    ("wenetspeech", "WenetSpeech.json → one JSONL of slices per subset", _wenetspeech),
    ("audiofolder", "Hugging Face audiofolder (metadata.csv + audio) → JSONL", _audiofolder),
    ("ljspeech", "LJSpeech layout (metadata.csv id|text|normalized, wavs/) → JSONL", _ljspeech),
    ("commonvoice", "Common Voice TSV + clips/ → JSONL", _commonvoice),
    ("kaldi", "Kaldi data dir (wav.scp, text, segments) → JSONL", _kaldi),
    ("subtitles", "recordings with SRT/VTT subtitles → JSONL of cue slices", _subtitles),
    ("from-datasets", "Hugging Face datasets source → JSONL (+ its audio as wav)", _from_datasets),
    ("check", "validate a manifest: hours, durations, languages, missing/corrupt audio", _check),
    ("shard", "pack a JSONL manifest into tar shards for streaming training", _shard),
    ("unshard", "unpack tar shards back into audio files and a JSONL manifest", _unshard),
    ("seed-binary", "convert the seed's .header/.data binary list to JSONL", _seed_binary),
)
