#!/usr/bin/env bash
# Prepares, HERE (no device time), what tools/gpu_train.sh needs on the lent GPU machine, in git-ignored folders
# of the repo root that the `run` call carries (carry: [".whl", ".cache/gpu"]):
#   .cache/gpu/emoji64.npz.xz    the emoji data as one xz-compressed array file (latentscape.train.data.pack)
#   .cache/gpu/eval_shipped.json the shipped model's eval, the recipe's --baseline (when SHIPPED_EVAL exists)
#   .whl/diffusers-0.42.1-*.whl   diffusers is not installed there (its other needs are)
# and checks that the working tree plus these fit the 64 MiB a call may carry. Run it from the repo root
# of the checkout the session was started in; rerunning reuses what is there.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
PY=${PYTHON:-python3}
SRC=${DATA:-$HOME/.cache/latentscape/emoji/emoji64.npz}
SHIPPED_EVAL=${SHIPPED_EVAL:-/work/runs/v3/eval_shipped.json}
mkdir -p .cache/gpu .whl
{ git check-ignore -q .cache/gpu/x && git check-ignore -q .whl/x; } || { echo "gpu_prep: .cache/ or .whl/ is not git-ignored here" >&2; exit 1; }
if [ ! -f .cache/gpu/emoji64.npz.xz ]; then
  echo "gpu_prep: packing $SRC (about 90 s, niced)"
  PYTHONPATH="$PWD/src" nice -n 19 "$PY" -c "import sys; from latentscape.train.data import pack; pack(sys.argv[1], sys.argv[2])" \
    "$SRC" .cache/gpu/emoji64.npz.xz
fi
[ -f "$SHIPPED_EVAL" ] && cp "$SHIPPED_EVAL" .cache/gpu/eval_shipped.json
ls .whl/diffusers-0.42.1-*.whl >/dev/null 2>&1 || "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .whl diffusers==0.42.1
total=$( { git ls-files -coz --exclude-standard; find .whl .cache/gpu -type f -print0; } | du -cb --files0-from=- | tail -1 | cut -f1)
echo "gpu_prep: $total bytes travel ($((total / 1048576)) MiB of 64): $(du -sh .cache/gpu .whl | tr '\n' ' ')"
[ "$total" -le $((64 * 1048576)) ] || { echo "gpu_prep: over the 64 MiB a device call carries" >&2; exit 1; }
