#!/usr/bin/env bash
# Issue 14's prepared GPU run: `latentscape train recipe` (VAE -> sharpened decoder -> UNet + text encoder ->
# fp16 export -> eval) on a lent machine, inside ONE device command of at most 10 minutes.
#
# 1. Here, no device time:   bash tools/gpu_prep.sh
#    (data -> .cache/gpu/emoji64.npz.xz, the diffusers wheel -> .whl/, the shipped model's eval as the baseline,
#    and a check that what travels fits 64 MiB; both folders are git-ignored)
# 2. The one device call (the `run` tool), from the root of the checkout the session was started in:
#      command:   bash tools/gpu_train.sh
#      carry:     [".whl", ".cache/gpu"]
#      timeout_s: 600
#    then give_back at once. Device time: ~1-2 min start + ~9.5 min command + transfers: ~12 of the 15 min.
# 3. Here: cat /work/.device/.../model.tar.* | tar -x -C DIR   (DIR/model is the exported pipeline), and read
#    eval.json / recipe.json / log.txt; score it on this CPU as the README's numbers are
#    (`latentscape train eval --model DIR/model --baseline ...`) before anything replaces the shipped weights.
#
# Sizes (measured 2026-12-01): working tree 46.0 MB (the shipped model is 42 MB of it) + data 12.2 MB (xz of the
# uncompressed emoji64.npz; the deflated .npz is 18.6 MB and would not fit) + diffusers 0.42.1 wheel 6.4 MB
# = 64.6 MB = 61.6 MiB of the 64 MiB. The machine has torch, transformers, safetensors, accelerate, tqdm.
# Back in $OUT (<= 8 files, each < 16 MiB, <= 64 MiB): model.tar.00.. (the model folder in 15 MiB parts, 3-4 of
# them for <= 60 MB), eval.json, recipe.json, log.txt.
#
# Settings (environment): BUDGET minutes for the recipe (default 8; its clock starts after the imports), SMOKE=1
# first runs the whole recipe at toy size on the same device (~30 s: a broken GPU code path fails in seconds, not
# after minutes; if only its eval fails, the real run is scored on the CPU), FULL_EVAL=1 scores all caption sets
# and the CFG sweep too, LIMIT seconds for everything (default 575), DATA, PYTHON, WORK, RECIPE_FLAGS (extra
# recipe flags). On a CPU (rehearsal, test): OUT=/tmp/o PYTHON=python FULL_EVAL=0 RECIPE_FLAGS="--device cpu" ...
# A failed command (rc != 0) still returns log.txt and whatever model was exported.
set -uo pipefail
OUT=${OUT:?OUT names the folder whose files come back (the device tool sets it)}
PY=${PYTHON:-python3}; BUDGET=${BUDGET:-8}; LIMIT=${LIMIT:-575}; WORK=${WORK:-/tmp/latentscape-recipe}
DATA=${DATA:-.cache/gpu/emoji64.npz.xz}; BASELINE=${BASELINE:-.cache/gpu/eval_shipped.json}
LOG="$OUT/log.txt"; mkdir -p "$OUT"; : >"$LOG"
say() { echo "gpu_train: $*" | tee -a "$LOG"; }
if ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    >>"$LOG" 2>&1 || { say "installing the carried wheels failed"; exit 3; }
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 OMP_WAIT_POLICY=PASSIVE
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >>"$LOG" 2>&1
[ -f "$DATA" ] || { say "no data file $DATA (run tools/gpu_prep.sh and carry .cache/gpu)"; exit 4; }
case "$DATA" in *.xz)  # unpacked once: every stage reads the data, a plain .npz in a fraction of a second
  "$PY" -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" "$DATA" \
    "$WORK.npz" && DATA="$WORK.npz" || { say "could not unpack $DATA"; exit 4; } ;;
esac
cmd=("$PY" -m latentscape.interfaces.train_cli train recipe --data "$DATA" --no-progress)
read -ra extra <<<"${RECIPE_FLAGS:-}"
[ "${FULL_EVAL:-1}" = 1 ] && cmd+=(--full-eval)  # the README's whole table: seconds on a GPU
if [ "${SMOKE:-1}" = 1 ]; then
  rm -rf "$WORK-smoke"
  timeout 120 "${cmd[@]}" --tiny --budget-minutes 0.25 --eval-captions 4 --coarse-prompts 2 --out "$WORK-smoke" \
    "${extra[@]}" 2>&1 | tee -a "$LOG"
  if [ "${PIPESTATUS[0]}" != 0 ]; then
    [ -f "$WORK-smoke/model/model_index.json" ] || { say "the toy-size smoke run failed in training: no real run"; exit 5; }
    say "the smoke run trained and exported but its eval failed: the real run scores on the CPU, a minute shorter"
    cmd+=(--eval-device cpu); BUDGET=$(awk "BEGIN { print $BUDGET - 1 }")
  fi
fi
[ -f "$BASELINE" ] && cmd+=(--baseline "$BASELINE")
left=$((LIMIT - SECONDS - 10))
say "real run: --budget-minutes $BUDGET, stopped after $left s at the latest"
rm -rf "$WORK"
timeout "$left" "${cmd[@]}" --budget-minutes "$BUDGET" --out "$WORK" "${extra[@]}" 2>&1 | tee -a "$LOG"
rc=${PIPESTATUS[0]}
for f in eval.json recipe.json; do [ -f "$WORK/$f" ] && cp "$WORK/$f" "$OUT/"; done
[ -d "$WORK/model" ] && tar -C "$WORK" -cf - model | split -b 15M -d - "$OUT/model.tar."
say "exit $rc after $SECONDS s; back in \$OUT: $(cd "$OUT" && ls | tr '\n' ' ')"
exit "$rc"
