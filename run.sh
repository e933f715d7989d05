#!/usr/bin/env bash
# One entry point for set-up + the main jobs:
#   ./run.sh demo   create/reuse .venv, install the core and the video extra, run the demo on the embedded default
#   ./run.sh test   create/reuse .venv, install what the tests need too (train, depth, dev), run the test suite
#   ./run.sh CMD    any other unihand command in that environment (train adds the train extra)
set -euo pipefail
cd "$(dirname "$0")"
VENV=${UNIHAND_VENV:-.venv}
PY=${PYTHON:-python3}
cmd=${1:-demo}; shift || true
case "$cmd" in
  test) extras="video,train,depth,dev" ;;
  train) extras="video,train" ;;
  *) extras="video" ;;
esac
stamp="$VENV/.unihand-installed"  # holds the extras installed so far, one per line
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
missing=""
for e in ${extras//,/ }; do
  if [ ! -f "$stamp" ] || ! grep -qx "$e" "$stamp"; then missing="$missing $e"; fi
done
if [ -n "$missing" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  have=$( [ -f "$stamp" ] && tr '\n' ',' < "$stamp" || true )
  all=$(echo "${have}${extras}" | tr ',' '\n' | sed '/^$/d' | sort -u | paste -sd, -)
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # torch first, pinned: the local CPU wheel; constraints keep every later step on it.
  "$VENV/bin/python" -m pip install -q -c constraints.txt torch
  # The package with the extras the command needs (and those installed before). The filter drops
  # setuptools' "Editable installation" note, which every editable install prints.
  PYTHONWARNINGS="ignore:Editable installation" \
    "$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[$all]"
  # MediaPipe (0.10.21, the last wheel that bundles its hand models) last and without its
  # declared dependencies: those are jax, jaxlib, opencv-contrib-python, sentencepiece,
  # sounddevice and numpy<2, which its hand solution does not import. It has to be the last
  # install: pip checks an install against every package that depends on what it installs, so
  # any later install of one of MediaPipe's dependencies would report them as conflicts (pip
  # check always will; see README).
  "$VENV/bin/python" -m pip install -q -c constraints.txt --no-deps mediapipe
  echo "$all" | tr ',' '\n' > "$stamp"
fi
case "$cmd" in
  demo) exec "$VENV/bin/unihand" demo "$@" ;;
  test) exec "$VENV/bin/python" -m pytest "$@" ;;
  *) exec "$VENV/bin/unihand" "$cmd" "$@" ;;
esac
