"""``whisper-tune serve`` as a user runs it: a separate process on a loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_bad_model_path_is_a_one_line_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "whisper_tune", "serve", "--model_path", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("whisper-tune serve: error: ")
    assert "Traceback" not in result.stderr


def test_bad_numbers_are_refused():
    result = subprocess.run(
        [sys.executable, "-m", "whisper_tune", "serve", "--num_workers", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "--num_workers 0" in result.stderr


@pytest.mark.slow
def test_serve_command_answers_with_the_api_key_from_the_environment(tmp_path):
    port = _free_port()
    env = {**os.environ, "WHISPER_TUNE_API_KEY": "k3y"}
    command = [sys.executable, "-m", "whisper_tune", "serve", "--port", str(port)]
    command += ["--num_workers", "1", "--use_int8"]
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                health = httpx.get(f"{base}/health", timeout=2).json()
                break
            except httpx.TransportError:
                assert server.poll() is None, (tmp_path / "serve.log").read_text()
                assert time.monotonic() < deadline, "server did not come up"
                time.sleep(0.5)
        assert health == {"status": "ok"}  # without the key: liveness only
        key = {"Authorization": "Bearer k3y"}
        health = httpx.get(f"{base}/health", headers=key).json()
        assert health["auth"] is True and health["workers"] == 1
        assert httpx.get(f"{base}/v1/models").status_code == 401
        models = httpx.get(f"{base}/v1/models", headers=key)
        assert models.json()["data"][0]["id"] == "tiny.en"
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells of it
    assert server.returncode in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in (tmp_path / "serve.log").read_text()
