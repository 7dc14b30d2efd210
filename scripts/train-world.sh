#!/usr/bin/env bash
# The training chain of the shipped model (issue 8), resumable: kill it at any point and run it again
# (the same session or the next) and each stage continues from its last checkpoint (every 50 steps,
# written atomically; `--resume` repeats the uninterrupted run exactly).
#
#   npm run build && bash scripts/train-world.sh RUN_DIR [OUT_DIR]
#
# Cost on 2 cores, wasm, one thread (measured 2026-11-27): VAE ~1.1 s/step → 3,000 steps ≈ 1 h; prepare
# ≈ 5 min; DiT ~0.8 s/step (batch 4) → 8,000 steps ≈ 1.8 h (2.3 h with a second job on the other core); eval ≈ 9 s a caption set (3 modes) ≈ 15 min.
# Stage 2 (2026-12-05): prepare ≈ 7 min, DiT fine-tune 4,000 steps ≈ 1.2 h (1.0–1.1 s/step beside another job).
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
# stage 1 exported to RUN/base; stage 2 fine-tunes it (issue 18) in RUN/finetune and ships that
base="$run/base"
[ -f "$base/model_index.json" ] || "${cli[@]}" train export --run "$run" --out "$base" --force --stochastic-sampling --commands "npm run build && bash scripts/train-world.sh runs/world"

# stage 2 (issue 18): the DiT continues from the stage-1 model with the character weight faded out at
# high σ (--fg-sigma-max) and logit-normal σ. The VAE is taken in as it is (--steps 0: an edge-term
# fine-tune of the decoder did not bring the shape back, README "Training"), so the latents are stage 1's.
ft="$run/finetune"
[ -f "$ft/vae/checkpoint.safetensors" ] || "${cli[@]}" train vae --run "$ft" --init "$base" --freeze-encoder --steps 0 --quiet
[ -f "$ft/latents.safetensors" ] || "${cli[@]}" train prepare --run "$ft" --clips 2000
# shellcheck disable=SC2046
"${cli[@]}" train dit --run "$ft" --init "$base" --steps 4000 --lr 2e-4 --warmup 100 --fg-weight 12 --fg-sigma-max 0.6 --sigma-sampling logit-normal --prediction sample $(resume "$ft/dit")
"${cli[@]}" train export --run "$ft" --out "$out" --force --stochastic-sampling --commands "npm run build && bash scripts/train-world.sh runs/world"
"${cli[@]}" eval --model "$out" --sets 100 --steps 20 --out "$run/eval.json" --force   # the table for the README
