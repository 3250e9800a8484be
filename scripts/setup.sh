#!/usr/bin/env bash
# Set up whisper-tune on a fresh Debian/Ubuntu machine: system packages, then a virtual
# environment (never the system Python: PEP 668), the CPU build of PyTorch installed into it
# first (so pip never pulls a multi-GB CUDA build), then the project, and a `whisper-tune`
# command on the PATH of a new shell.
#
# Usage: bash scripts/setup.sh            (as root, or with sudo available for apt-get)
#   PYTHON=/path/to/python3   interpreter that creates the environment (default: python3)
#   WHISPER_TUNE_VENV=DIR     where the environment lives (default: .venv in this checkout);
#                             an activated virtual environment ($VIRTUAL_ENV) is used as it is
#   WHISPER_TUNE_BIN_DIR=DIR  where the `whisper-tune` link goes (default: /usr/local/bin for
#                             root, ~/.local/bin otherwise)
#   WHISPER_TUNE_SKIP_APT=1   skip the system packages
# Re-running is fast: packages already present and an unchanged project are not reinstalled.
# To remove: rm -rf .venv and the whisper-tune link the last line of output names.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi

# espeak-ng: Mandarin/other-language speech for the demo and tests; xvfb + x11-apps + xdotool:
# GUI tests; chromium: browser test of the web page; libportaudio2: microphone recording;
# cmake/g++: building whisper.cpp (pywhispercpp) for the GGML check; python3-venv: the
# environment below on Debian's Python; python3-tk: the GUI (Debian's Python ships tkinter apart).
APT_PACKAGES=(espeak-ng xvfb x11-apps xdotool chromium libportaudio2 cmake g++ python3-venv python3-tk)
if [ "${WHISPER_TUNE_SKIP_APT:-0}" != 1 ] && command -v apt-get >/dev/null; then
  missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

if [ -n "${VIRTUAL_ENV:-}" ] && [ -z "${WHISPER_TUNE_VENV:-}" ]; then
  VENV="$VIRTUAL_ENV"
  echo "using the activated virtual environment $VENV"
else
  VENV="${WHISPER_TUNE_VENV:-$ROOT/.venv}"
  if [ ! -x "$VENV/bin/python" ]; then
    PYTHON="${PYTHON:-python3}"
    if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      echo "error: $PYTHON is not Python >= 3.11 (transformers 5 needs it); set PYTHON=/path/to/python3.11+" >&2
      exit 1
    fi
    echo "creating the virtual environment $VENV with $("$PYTHON" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
    if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
      # Debian/Ubuntu ship venv without ensurepip unless python3.X-venv is installed.
      rm -rf "$VENV"
      version="$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
      $SUDO apt-get install -y -qq --no-install-recommends "python${version}-venv" >/dev/null
      "$PYTHON" -m venv "$VENV"
    fi
  fi
fi
VPY="$VENV/bin/python"

# Install (again) only when the project's requirements changed since the last run here.
STAMP="$VENV/.whisper-tune-setup"
WANT="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1) $ROOT"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ] || ! "$VPY" -c "import whisper_tune" 2>/dev/null; then
  "$VPY" -m pip install -q --upgrade pip
  if ! "$VPY" -c "import torch" 2>/dev/null; then
    # On machines with a local wheel this takes it; elsewhere the CPU index keeps it small.
    "$VPY" -m pip install -q "torch==2.13.0" || \
      "$VPY" -m pip install -q torch --index-url https://download.pytorch.org/whl/cpu
  fi
  "$VPY" -m pip install -q -e ".[dev,gui,ggml,demo,hub,track,ray]"
  echo "$WANT" > "$STAMP"
else
  echo "requirements unchanged since the last setup: nothing to install"
fi

# A `whisper-tune` command for new shells, pipx-style: a link to the environment's script.
if [ "$(id -u)" -eq 0 ]; then BIN_DEFAULT=/usr/local/bin; else BIN_DEFAULT="$HOME/.local/bin"; fi
BIN_DIR="${WHISPER_TUNE_BIN_DIR:-$BIN_DEFAULT}"
mkdir -p "$BIN_DIR"
ln -sfn "$VENV/bin/whisper-tune" "$BIN_DIR/whisper-tune"
case ":$PATH:" in
  *":$BIN_DIR:"*) ;;
  *) echo "note: $BIN_DIR is not on PATH; add it (e.g. in ~/.profile) to run whisper-tune" ;;
esac
echo "whisper-tune $("$VPY" -m whisper_tune.cli --version | awk '{print $NF}') installed in $VENV; command: $BIN_DIR/whisper-tune"
