#!/usr/bin/env bash
# The training chain of the shipped model (issue 8), resumable: kill it at any point and run it again
# (the same session or the next) and each stage continues from its last checkpoint (every 50 steps,
# written atomically; `--resume` repeats the uninterrupted run exactly).
#
#   npm run build && bash scripts/train-world.sh RUN_DIR [OUT_DIR]
#
# Cost on 2 cores, wasm, one thread (measured 2026-11-27): VAE ~1.1 s/step → 3,000 steps ≈ 1 h; prepare
# ≈ 5 min; DiT ~0.8 s/step (batch 4) → 8,000 steps ≈ 1.8 h (2.3 h with a second job on the other core); eval ≈ 9 s a caption set (3 modes) ≈ 15 min.
# One thread leaves the other core free and is as fast as two for these small models (README, Backends).
set -euo pipefail
run=${1:?usage: bash scripts/train-world.sh RUN_DIR [OUT_DIR]}
root=$(cd "$(dirname "$0")/.." && pwd)
run=$(realpath -m "$run")
out=$(realpath -m "${2:-$root/weights/mask2dit-world}")
cd "$root"
export MASK2DIT_THREADS="${MASK2DIT_THREADS:-1}"
cli=(node dist/cli/main.js)
resume() { if [ -f "$1/checkpoint.safetensors" ]; then echo --resume; fi; }

# shellcheck disable=SC2046
"${cli[@]}" train vae --run "$run" --steps 3000 --batch 1 --lr 1.5e-3 --warmup 30 --temporal-compression 2 --fg-weight 10 $(resume "$run/vae")
[ -f "$run/latents.safetensors" ] || "${cli[@]}" train prepare --run "$run" --clips 2000
# shellcheck disable=SC2046
"${cli[@]}" train dit --run "$run" --steps 8000 --fg-weight 12 --prediction sample $(resume "$run/dit")
"${cli[@]}" train export --run "$run" --out "$out" --force --stochastic-sampling --commands "npm run build && bash scripts/train-world.sh runs/world"
"${cli[@]}" eval --model "$out" --sets 100 --steps 20 --out "$run/eval.json" --force   # the table for the README
