#!/usr/bin/env bash
# Set up a fresh Debian/Ubuntu machine for whisper-tune: system packages, then the CPU build of
# PyTorch (installed first, so pip never pulls a multi-GB CUDA build), then the project.
# Usage: bash scripts/setup.sh            (run as root, or with sudo available)
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi
if command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # espeak-ng: Mandarin/other-language speech for the demo and tests; xvfb + x11-apps: GUI tests;
  # chromium: browser test of the web page; libportaudio2: microphone recording; cmake/g++:
  # building whisper.cpp (pywhispercpp) for the GGML check.
  $SUDO apt-get install -y -qq --no-install-recommends \
    espeak-ng xvfb x11-apps xdotool chromium libportaudio2 cmake g++ >/dev/null
fi

PYTHON="${PYTHON:-python3}"
"$PYTHON" -m pip install -q --upgrade pip
if ! "$PYTHON" -c "import torch" 2>/dev/null; then
  # On machines with a local wheel this takes it; elsewhere the CPU index keeps it small.
  "$PYTHON" -m pip install -q "torch==2.13.0" || \
    "$PYTHON" -m pip install -q torch --index-url https://download.pytorch.org/whl/cpu
fi
"$PYTHON" -m pip install -q -e ".[dev,gui,ggml]"
echo "whisper-tune installed: $("$PYTHON" -m whisper_tune.cli --version)"
