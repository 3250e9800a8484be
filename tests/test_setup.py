"""scripts/setup.sh on a copy of the checkout: a virtual environment, never the interpreter's own
site-packages, and a `whisper-tune` command that a new shell with a clean PATH finds.

CI's .ci/run runs the same script with Debian's externally managed /usr/bin/python3; this test
runs it with an interpreter that is not externally managed (PYTHON=...), then re-runs it inside
the activated environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache", "runs", "output"
)

pytestmark = pytest.mark.slow


def _externally_managed(python: str) -> bool:
    stdlib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return (Path(stdlib) / "EXTERNALLY-MANAGED").exists()


def _unmanaged_python() -> str | None:
    """An interpreter of the running Python's version (so the same wheels serve) that is not
    externally managed: the one this venv was made from, else pyenv's; or None."""
    version = sysconfig.get_python_version()
    candidates = [Path(sys.base_prefix) / "bin" / f"python{version}"]
    candidates += sorted(Path.home().glob(f".pyenv/versions/{version}.*/bin/python{version}"))
    for candidate in candidates:
        if candidate.is_file() and not _externally_managed(str(candidate)):
            return str(candidate)
    return None


def _run(cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, (
        f"{cmd} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


def test_setup_with_unmanaged_python_then_new_shell(tmp_path: Path) -> None:
    python = _unmanaged_python()
    if python is None:
        pytest.skip("no interpreter without EXTERNALLY-MANAGED on this machine")
    checkout = tmp_path / "checkout"
    shutil.copytree(ROOT, checkout, ignore=COPY_IGNORE)
    bin_dir = tmp_path / "bin"
    env = {
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "PATH": CLEAN_PATH,
        "PYTHON": python,
        "WHISPER_TUNE_SKIP_APT": "1",
        "WHISPER_TUNE_BIN_DIR": str(bin_dir),
        "PIP_NO_COMPILE": "1",  # byte-compiling torch and transformers is a third of the time
    }
    setup = _run(["bash", "scripts/setup.sh"], env, checkout)
    venv = checkout / ".venv"
    assert "creating the virtual environment" in setup.stdout
    # The environment was made by the interpreter asked for, and whisper-tune lives in it.
    pyvenv = (venv / "pyvenv.cfg").read_text()
    assert f"home = {Path(python).parent}" in pyvenv
    assert (bin_dir / "whisper-tune").resolve() == (venv / "bin" / "whisper-tune").resolve()
    where = _run(
        [str(venv / "bin" / "python"), "-c", "import whisper_tune; print(whisper_tune.__file__)"],
        env,
        tmp_path,
    )
    assert where.stdout.strip().startswith(str(checkout / "src"))

    # A new login shell with a clean PATH (plus the link folder) runs the command.
    shell_env = {"HOME": env["HOME"], "PATH": f"{bin_dir}:{CLEAN_PATH}"}
    version = _run(["bash", "-lc", "whisper-tune --version"], shell_env, tmp_path)
    assert version.stdout.startswith("whisper-tune ")

    # Re-running inside the activated environment uses it as it is and installs nothing.
    again = _run(
        ["bash", "scripts/setup.sh"],
        {**env, "VIRTUAL_ENV": str(venv), "PATH": f"{venv / 'bin'}:{CLEAN_PATH}"},
        checkout,
    )
    assert f"using the activated virtual environment {venv}" in again.stdout
    assert "creating the virtual environment" not in again.stdout
    assert "nothing to install" in again.stdout
