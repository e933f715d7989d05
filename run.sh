#!/usr/bin/env bash
# One entry point for set-up + the main jobs:
#   ./run.sh demo   create/reuse .venv, install, run the demo on the embedded default
#   ./run.sh test   create/reuse .venv, install, run the test suite
set -euo pipefail
cd "$(dirname "$0")"
VENV=${UNIHAND_VENV:-.venv}
PY=${PYTHON:-python3}
stamp="$VENV/.unihand-installed"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # torch first, pinned: the local CPU wheel; constraints keep every later step on it.
  "$VENV/bin/python" -m pip install -q torch==2.13.0
  "$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[dev]"
  # MediaPipe 0.10.21 is the last wheel that bundles its hand models; its declared
  # dependencies would pull jax/opencv-contrib, so it goes in without them.
  "$VENV/bin/python" -m pip install -q -c constraints.txt --no-deps mediapipe==0.10.21
  "$VENV/bin/python" -m pip install -q -c constraints.txt absl-py "protobuf<5" flatbuffers
  touch "$stamp"
fi
cmd=${1:-demo}; shift || true
case "$cmd" in
  demo) exec "$VENV/bin/unihand" demo "$@" ;;
  test) exec "$VENV/bin/python" -m pytest "$@" ;;
  *) exec "$VENV/bin/unihand" "$cmd" "$@" ;;
esac
