"""``transcribe --ray`` on a real two-node Ray cluster on this machine (Ray's cluster utilities:
a head and a second node, one CPU each), with the bundled tiny.en over 40+ short clips.

The clips are copies of three synthesised sentences (synthesis is slow); each copy's Ray
transcript must equal the local ``transcribe`` transcript of its sentence. The cluster is
started once for the module and removed at its end.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from whisper_tune.cli import main
from whisper_tune.errors import WhisperTuneError
from whisper_tune.inference.files import JOB_LOG
from whisper_tune.inference.job_log import read_entries
from whisper_tune.inference.ray_runner import import_ray

COPIES = 14  # of each of 3 sentences: 42 clips
SENTENCES = (
    "I left my umbrella on the bus this morning.",
    "The train to the city leaves at half past eight.",
)


@pytest.fixture(scope="module")
def ray_address():
    """Host:port of a two-node local Ray cluster (head + a node with a resource of its own)."""
    pytest.importorskip("ray.data")
    from ray._common.utils import get_default_ray_temp_dir
    from ray.cluster_utils import Cluster

    temp_dir = tempfile.mkdtemp(prefix="wt-ray-")  # short: Ray's socket paths live under it
    # Cluster writes the head's address under <system temp>/ray even with its own temp_dir,
    # and a fresh machine has no such folder
    os.makedirs(get_default_ray_temp_dir(), exist_ok=True)
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False, "temp_dir": temp_dir},
    )
    try:
        cluster.add_node(num_cpus=1, resources={"second_node": 1}, temp_dir=temp_dir)
        yield cluster.address
    finally:
        cluster.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def clips(english_clip, tmp_path_factory):
    """``(folder, {clip name: its sentence's wav})``: 42 copies of 3 sentences plus a
    file that is not audio (``broken.wav``)."""
    from whisper_tune.synth import synthesize_to_file

    sources_dir = tmp_path_factory.mktemp("sentences")
    sources = [english_clip[0]] + [
        synthesize_to_file(sources_dir / f"s{i}.wav", text, "en", seed=i)
        for i, text in enumerate(SENTENCES, 1)
    ]
    folder = tmp_path_factory.mktemp("clips")
    source_of = {}
    for i in range(COPIES * len(sources)):
        name = f"clip{i:02d}.wav"
        shutil.copy(sources[i % len(sources)], folder / name)
        source_of[name] = Path(sources[i % len(sources)])
    (folder / "broken.wav").write_bytes(b"RIFF this is not a wav file")
    return folder, source_of


@pytest.fixture(scope="module")
def local_texts(clips, tmp_path_factory):
    """The local ``transcribe`` JSON of each sentence, by its wav's stem, each file in its own
    window as Ray's actors decode them (no --pack_clips)."""
    _, source_of = clips
    sources = sorted(set(source_of.values()))
    out = tmp_path_factory.mktemp("local")
    command = ["transcribe", "--audio_path", *map(str, sources), "--output_dir", str(out)]
    assert _cli([*command, "--language", "en", "--pack_clips", "false"]) == 0
    return {p.stem: _transcript(out / f"{p.stem}.json") for p in sources}


def _transcript(path: Path) -> tuple[str, list]:
    document = json.loads(path.read_text(encoding="utf-8"))
    return document["text"], document["results"]


def _cli(command: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(command)
    return exit_info.value.code


def _transcribe_on_ray(folder, out, address, *extra) -> int:
    command = ["transcribe", "--audio_path", str(folder), "--output_dir", str(out)]
    return _cli([*command, "--language", "en", "--ray", address, "--num_actors", "2", *extra])


def _check_every_clip_once(out: Path, clips, local_texts) -> list:
    folder, source_of = clips
    entries = read_entries(out / JOB_LOG)
    done = [e for e in entries if e.ok]
    assert sorted(Path(e.key.audio_path).name for e in done) == sorted(source_of)  # each once
    for name, source in source_of.items():
        assert _transcript(out / f"{Path(name).stem}.json") == local_texts[source.stem], name
    for entry in done:
        assert (
            entry.result["text"] == local_texts[source_of[Path(entry.key.audio_path).name].stem][0]
        )
    return entries


@pytest.mark.slow
def test_transcribe_on_ray_writes_each_clip_once_as_local_and_resumes(
    ray_address, clips, local_texts, tmp_path, capsys
):
    folder, source_of = clips
    out = tmp_path / "out"
    assert _transcribe_on_ray(folder, out, ray_address) == 2
    error = capsys.readouterr().err
    assert f"1 of {len(source_of) + 1} files failed" in error and "broken.wav" in error
    assert "Traceback" not in error
    entries = _check_every_clip_once(out, clips, local_texts)
    assert len(entries) == len(source_of) + 1
    (failed,) = [e for e in entries if not e.ok]
    assert Path(failed.key.audio_path).name == "broken.wav" and "cannot decode" in failed.error
    assert len({e.worker for e in entries}) == 2  # one actor on each node
    written = {p.name: p.stat().st_mtime_ns for p in out.glob("clip*.json")}

    # a rerun decodes only the file that failed (and fails it again)
    assert _transcribe_on_ray(folder, out, ray_address) == 2
    again = read_entries(out / JOB_LOG)
    assert again[: len(entries)] == entries and len(again) == len(entries) + 1
    assert Path(again[-1].key.audio_path).name == "broken.wav" and not again[-1].ok
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("clip*.json")} == written


@pytest.mark.slow
def test_a_killed_actor_is_restarted_and_its_batch_done_again(
    ray_address, clips, local_texts, tmp_path
):
    folder, source_of = clips
    out = tmp_path / "out"
    killed: list[tuple[int, int]] = []  # (pid, files done when it was killed)

    def kill_one_actor_once_results_come():
        deadline = time.monotonic() + 120
        while not killed and time.monotonic() < deadline:
            done = [e for e in read_entries(out / JOB_LOG) if e.ok] if out.exists() else []
            if len(done) >= 4:
                host, pid = done[-1].worker.rsplit(":", 1)
                assert host == socket.gethostname()  # an actor of this test's cluster
                os.kill(int(pid), signal.SIGKILL)
                killed.append((int(pid), len(done)))
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one_actor_once_results_come)
    killer.start()
    code = _transcribe_on_ray(folder, out, ray_address, "--batch_size", "2")
    killer.join()
    assert code == 2 and killed  # only broken.wav failed
    assert killed[0][1] < len(source_of) - 4  # killed mid-run, with batches to go
    entries = _check_every_clip_once(out, clips, local_texts)
    # the killed actor came back as a new process and did the batch it was killed in
    assert len({e.worker for e in entries}) >= 3


def test_a_dead_address_fails_fast_naming_it(tmp_path, english_clip):
    pytest.importorskip("ray.data")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"127.0.0.1:{port}"
    command = [sys.executable, "-m", "whisper_tune", "transcribe", "--audio_path"]
    command += [str(english_clip[0]), "--output_dir", str(tmp_path), "--ray", address]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert f"no Ray cluster at {address}" in done.stderr and "Traceback" not in done.stderr
    assert time.monotonic() - started < 60


def test_ray_needs_an_output_dir_and_says_how_to_install_it(english_clip, monkeypatch, capsys):
    assert _cli(["transcribe", "--audio_path", str(english_clip[0]), "--ray"]) == 2
    assert "--ray writes files: give --output_dir" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(WhisperTuneError, match=r"pip install 'whisper-tune\[ray\]'"):
        import_ray()


@pytest.mark.slow
def test_label_on_ray_writes_the_manifest_label_writes_here(ray_address, clips, tmp_path, capsys):
    """``label --ray`` over the three sentences and the broken file on the two-node cluster
    writes the manifest that labelling here writes, and names the broken file."""
    folder, source_of = clips
    few = tmp_path / "few"
    few.mkdir()
    for source in sorted(set(source_of.values())):
        shutil.copy(source, few / source.name)
    shutil.copy(folder / "broken.wav", few / "broken.wav")
    manifests = {}
    for where, extra in (("here", []), ("ray", ["--ray", ray_address, "--num_actors", "2"])):
        output = tmp_path / where / "pseudo.jsonl"
        command = ["label", "--audio_path", str(few), "--output", str(output), *extra]
        assert _cli([*command, "--language", "en", "--beam_size", "1"]) == 2
        error = capsys.readouterr().err
        assert "1 of 4 files failed" in error and "broken.wav" in error
        assert "Traceback" not in error
        manifests[where] = output.read_text(encoding="utf-8")
    assert manifests["ray"] == manifests["here"]
    assert len(manifests["here"].splitlines()) == 3  # one record per sentence
