#!/usr/bin/env bash
# The GPU path in one command (issue 10, item 7): every model family for a few hundred steps with trainer=gpu, then
# the overhead benchmark on the GPU (dlf's Lightning loop against a plain PyTorch loop), printed as one table.
#
#   scripts/gpu_check.sh                 # on a CUDA machine (< 5 min on one H100-class GPU)
#   scripts/gpu_check.sh --cpu           # dry run on CPU: same commands, a few steps each (tests/test_gpu_check.py)
#   scripts/gpu_check.sh --download      # here, with a registry: fetch the wheels a bare device image lacks
#
# A device machine may reach no package registry and its image may lack hydra-core, omegaconf,
# antlr4-python3-runtime and mnist1d (and scikit-learn, matplotlib). Whatever is missing is installed with
# `pip install --no-index --find-links $DLF_WHEELS` from a wheel folder carried along (default: wheels/, git-ignored),
# filled beforehand by `--download` (Python 3.12, manylinux x86-64). Generated data (MNIST-1D) is made on the spot
# under data/ (or carried: data/ is git-ignored too). Other arguments go to scripts/gpu_check.py (see its --help).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=${DLF_WHEELS:-wheels}
# import name -> distribution name; the first four are the ones the device image is known to lack
MODULES="hydra:hydra-core omegaconf:omegaconf antlr4:antlr4-python3-runtime==4.9.3 mnist1d:mnist1d sklearn:scikit-learn matplotlib:matplotlib"

if [ "${1:-}" = "--download" ]; then
  shift
  mkdir -p "$WHEELS"
  # antlr4 4.9.3 (what omegaconf 2.3 pins) exists only as a source archive: build its pure-Python wheel here
  "$PY" -m pip wheel -q --no-deps -w "$WHEELS" antlr4-python3-runtime==4.9.3
  "$PY" -m pip download -q -d "$WHEELS" --find-links "$WHEELS" --only-binary=:all: --python-version "${DLF_PY:-3.12}" \
    --implementation cp --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux_2_28_x86_64 hydra-core omegaconf antlr4-python3-runtime==4.9.3 mnist1d scikit-learn \
    matplotlib "$@"
  rm -f "$WHEELS"/numpy-* "$WHEELS"/torch-*  # the image has torch and numpy; keep the folder under the carry limit
  du -sh "$WHEELS"
  exit 0
fi

missing=""
for pair in $MODULES; do
  mod=${pair%%:*}
  "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$mod') is None)" || missing="$missing ${pair#*:}"
done
if [ -n "$missing" ]; then
  if [ ! -d "$WHEELS" ]; then
    echo "gpu_check: missing$missing and no wheel folder $WHEELS: run scripts/gpu_check.sh --download where a" \
         "registry is reachable and carry $WHEELS along (or set DLF_WHEELS)" >&2
    exit 2
  fi
  echo "gpu_check: installing$missing from $WHEELS (no index)"
  "$PY" -m pip install -q --no-index --find-links "$WHEELS" $missing
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" scripts/gpu_check.py "$@"
