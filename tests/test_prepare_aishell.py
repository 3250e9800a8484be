"""AIShell-1: a tiny archive with the real nested layout, run through the real preparer."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import tarfile
import threading
from pathlib import Path

import pytest

from whisper_tune.audio import load_audio
from whisper_tune.cli import main
from whisper_tune.data.manifest import read_manifest
from whisper_tune.data.prepare.aishell import prepare_aishell
from whisper_tune.data.prepare.download import download, file_digest
from whisper_tune.errors import WhisperTuneError
from whisper_tune.synth import synthesize

# speaker -> split, as in AIShell-1 (S0002-S0723 train, S0724-S0763 dev, S0764-S0916 test)
# tarfile's extraction filter exists from Python 3.11.4 (Debian 12 ships 3.11.2).
SAFE_EXTRACT = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
SPEAKERS = {"S0002": "train", "S0003": "train", "S0724": "dev", "S0764": "test"}
TEXTS = ["而 对 楼市 成交 抑制 作用 最 大 的 限 购", "也 成为 地方 政府 的 眼中 钉"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def build_aishell(root: Path) -> Path:
    """data_aishell.tgz holding wav/<speaker>.tar.gz archives and the transcript file."""
    import soundfile

    transcript = []
    outer_path = root / "data_aishell.tgz"
    with tarfile.open(outer_path, "w:gz") as outer:
        for number, (speaker, split) in enumerate(SPEAKERS.items()):
            inner_bytes = io.BytesIO()
            with tarfile.open(fileobj=inner_bytes, mode="w:gz") as inner:
                for index, text in enumerate(TEXTS):
                    utt = f"BAC009{speaker}W{121 + index:04d}"
                    audio = synthesize(text.replace(" ", ""), "zh", speed=1.5, seed=number)
                    wav = io.BytesIO()
                    soundfile.write(wav, audio, 16000, format="WAV", subtype="PCM_16")
                    _add_bytes(inner, f"{split}/{speaker}/{utt}.wav", wav.getvalue())
                    transcript.append(f"{utt} {text}")
                if speaker == "S0002":  # a recording the transcript does not cover
                    _add_bytes(inner, f"{split}/{speaker}/BAC009S0002W0999.wav", wav.getvalue())
            _add_bytes(outer, f"data_aishell/wav/{speaker}.tar.gz", inner_bytes.getvalue())
        _add_bytes(
            outer,
            "data_aishell/transcript/aishell_transcript_v0.8.txt",
            ("\n".join(transcript) + "\n").encode("utf-8"),
        )
    return outer_path


@pytest.fixture(scope="module")
def aishell_archive(tmp_path_factory) -> Path:
    return build_aishell(tmp_path_factory.mktemp("aishell_src"))


def test_aishell_archive_to_manifests(aishell_archive, tmp_path, capsys):
    before = sha256(aishell_archive)
    dataset = tmp_path / "dataset"
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "prepare",
                "aishell",
                "--filepath",
                str(aishell_archive),
                "--target_dir",
                str(dataset / "audio"),
                "--annotation_text",
                str(dataset),
            ]
        )
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "BAC009S0002W0999.wav: no transcript for BAC009S0002W0999" in out
    assert sha256(aishell_archive) == before  # the user's archive is untouched and still there

    counts = {"train": 4, "dev": 2, "test": 2}
    for split, count in counts.items():
        lines = (dataset / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
        assert len(lines) == count
        record = json.loads(lines[0])
        assert record["language"] == "zh"
        assert record["sentence"] in ("而对楼市成交抑制作用最大的限购", "也成为地方政府的眼中钉")
        assert not Path(record["audio"]["path"]).is_absolute()
        utterances, _ = read_manifest(dataset / f"{split}.jsonl")
        for utterance in utterances:
            seconds = len(load_audio(utterance.audio_path)) / 16000
            assert utterance.duration == pytest.approx(seconds, abs=0.01)
            assert f"/{split}/" in utterance.audio_path


def test_aishell_rerun_skips_and_options(aishell_archive, tmp_path):
    target, annotations = tmp_path / "audio", tmp_path / "dataset"
    prepare_aishell(aishell_archive, target, annotations)
    wav = next((target / "data_aishell" / "wav" / "train").rglob("*.wav"))
    stamp = wav.stat().st_mtime_ns
    wav_dir = target / "data_aishell" / "wav"
    assert not list(wav_dir.glob("*.tar.gz"))  # our own unpacked copies are not kept
    assert len(list(wav_dir.glob(".*.extracted"))) == 4

    again = prepare_aishell(aishell_archive, target, annotations)
    assert sorted(Path(p).name for p in again.skipped) == ["dev.jsonl", "test.jsonl", "train.jsonl"]
    assert not again.outputs
    assert wav.stat().st_mtime_ns == stamp  # nothing was extracted again

    punctuated = tmp_path / "punctuated.txt"
    punctuated.write_text("BAC009S0724W0121 而对楼市成交，抑制作用最大的限购。\n", encoding="utf-8")
    rebuilt = prepare_aishell(
        None, target, annotations, punctuated_text=punctuated, timestamps=True, overwrite=True
    )
    assert len(rebuilt.outputs) == 3
    assert wav.stat().st_mtime_ns == stamp
    dev = [json.loads(line) for line in (annotations / "dev.jsonl").read_text("utf-8").splitlines()]
    first = next(r for r in dev if r["audio"]["path"].endswith("BAC009S0724W0121.wav"))
    assert first["sentence"] == "而对楼市成交，抑制作用最大的限购。"
    assert first["sentences"] == [
        {"start": 0.0, "end": first["duration"], "text": first["sentence"]}
    ]


def test_aishell_keeps_archives_of_a_folder_the_user_extracted(aishell_archive, tmp_path):
    import shutil

    with tarfile.open(aishell_archive) as tar:
        tar.extractall(tmp_path / "mine", **SAFE_EXTRACT)
    speaker_archives = sorted((tmp_path / "mine" / "data_aishell" / "wav").glob("*.tar.gz"))
    report = prepare_aishell(None, tmp_path / "mine", tmp_path / "lists")
    assert report.outputs[str(tmp_path / "lists" / "train.jsonl")] == 4
    assert all(path.is_file() for path in speaker_archives)
    shutil.rmtree(tmp_path / "mine" / "data_aishell" / "wav" / "train")
    with pytest.raises(WhisperTuneError, match="train: folder not found"):
        prepare_aishell(None, tmp_path / "mine", tmp_path / "lists", overwrite=True)


def test_aishell_refuses_path_traversal(tmp_path):
    archive = tmp_path / "data_aishell.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        _add_bytes(tar, "data_aishell/transcript/aishell_transcript_v0.8.txt", b"")
        _add_bytes(tar, "data_aishell/../../escaped.txt", b"gotcha")
    with pytest.raises(WhisperTuneError, match="unsafe member path"):
        prepare_aishell(archive, tmp_path / "out" / "audio", tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path / "out" / "audio" / "data_aishell").exists()

    linked = tmp_path / "linked.tgz"
    with tarfile.open(linked, "w:gz") as tar:
        info = tarfile.TarInfo("data_aishell/wav/evil")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(WhisperTuneError, match="links and devices"):
        prepare_aishell(linked, tmp_path / "out2", tmp_path / "out2")


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``payload`` at any path, honouring ``Range: bytes=N-``."""

    payload = b""
    ranges: list = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        requested = self.headers.get("Range")
        type(self).ranges.append(requested)
        start = int(requested.split("=")[1].rstrip("-")) if requested else 0
        body = self.payload[start:]
        self.send_response(206 if requested else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def archive_server(aishell_archive):
    _RangeHandler.payload = aishell_archive.read_bytes()
    _RangeHandler.ranges = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/resources/33/data_aishell.tgz"
    server.shutdown()
    thread.join()


def test_download_resumes_and_checks_md5(archive_server, aishell_archive, tmp_path):
    md5 = file_digest(aishell_archive)
    part = tmp_path / "data_aishell.tgz.part"
    part.write_bytes(_RangeHandler.payload[:1000])  # an interrupted earlier download
    path = download(archive_server, tmp_path, md5)
    assert _RangeHandler.ranges == ["bytes=1000-"]
    assert path.read_bytes() == _RangeHandler.payload and not part.exists()
    assert download(archive_server, tmp_path, md5) == path  # finished file reused
    assert _RangeHandler.ranges == ["bytes=1000-"]

    with pytest.raises(WhisperTuneError, match="checksum mismatch"):
        download(archive_server, tmp_path / "other", "0" * 32)
    assert (tmp_path / "other" / "data_aishell.tgz.part.bad").is_file()


def test_aishell_downloads_when_no_archive_given(archive_server, aishell_archive, tmp_path):
    report = prepare_aishell(
        None, tmp_path / "audio", tmp_path, url=archive_server, md5=file_digest(aishell_archive)
    )
    assert (tmp_path / "audio" / "data_aishell.tgz").is_file()  # the download is kept
    assert report.outputs[str(tmp_path / "train.jsonl")] == 4


def test_download_without_network_says_what_to_do(tmp_path):
    with pytest.raises(WhisperTuneError, match="--filepath"):
        download("http://127.0.0.1:9/data_aishell.tgz", tmp_path, timeout=2)
