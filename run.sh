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
  "$VENV/bin/python" -m pip install -q -c constraints.txt torch
  # The package with what the video path (the [video] extra) and the tests need. The
  # filter drops setuptools' "Editable installation" note, which every editable install prints.
  PYTHONWARNINGS="ignore:Editable installation" \
    "$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[video,dev]"
  # MediaPipe (0.10.21, the last wheel that bundles its hand models) last and without its
  # declared dependencies: those are jax, jaxlib, opencv-contrib-python, sentencepiece,
  # sounddevice and numpy<2, which its hand solution does not import. It has to be the last
  # install: pip checks an install against every package that depends on what it installs, so
  # any later install of one of MediaPipe's dependencies would report them as conflicts (pip
  # check always will; see README).
  "$VENV/bin/python" -m pip install -q -c constraints.txt --no-deps mediapipe
  touch "$stamp"
fi
cmd=${1:-demo}; shift || true
case "$cmd" in
  demo) exec "$VENV/bin/unihand" demo "$@" ;;
  test) exec "$VENV/bin/python" -m pytest "$@" ;;
  *) exec "$VENV/bin/unihand" "$cmd" "$@" ;;
esac
