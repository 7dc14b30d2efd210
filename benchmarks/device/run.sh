#!/usr/bin/env bash
# The GPU run on the `device` machine (an NVIDIA H200 when lent), in two calls that keep it warm:
#   bash benchmarks/device/run.sh check   set-up, the adapter, fixture parity on webgpu; starts writing the
#                                         full-size synthetic pipeline folder in the background (setsid)
#   bash benchmarks/device/run.sh bench   npm run bench on webgpu (+ the PyTorch reference on CUDA), then
#                                         benchmarks/realsize.ts on that folder
# Needs .devpack/ and .gl/ carried (benchmarks/device/pack.sh). Logs and JSON lines go to $OUT.
# MASK2DIT_DEVICE_BACKEND=cpu runs the same commands here (a dry run of the script).
set -uo pipefail
cd "$(dirname "$0")/../.."
stage=${1:-check}
OUT=${OUT:-/tmp/device-out}; mkdir -p "$OUT"
BE=${MASK2DIT_DEVICE_BACKEND:-webgpu}
SYN=${SYN:-/tmp/synthetic-mask2dit}

if [ ! -x .devpack/bin/node ]; then tar -C .devpack -xJf .devpack/pack.tar.xz || exit 3; fi
export PATH="$PWD/.devpack/bin:$PATH" MASK2DIT_WEBGPU_BACKEND=vulkan
M2D=".devpack/b/main.js"
if [ "$BE" = webgpu ] && ! ldconfig -p | grep -q libvulkan.so.1; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
fi
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -f "$icd" ] && ! ls /usr/share/vulkan/icd.d/nvidia* /etc/vulkan/icd.d/nvidia* >/dev/null 2>&1; then
  export VK_DRIVER_FILES=$icd __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
fi

log() { echo "== $* ($(date +%T))"; }
fwd() { # component fixture [--compare file | --py] [extra args]: forward on $BE, compared with the fixture's reference outputs
  local comp=$1 fx=test/fixtures/$2 cmp=$3; shift 3
  local out=/tmp/fwd-$comp.safetensors
  log "parity $comp $fx $*"
  if [ "$cmp" = --py ]; then
    timeout 120 node "$M2D" --backend "$BE" forward "$comp" --model "$fx" --inputs "$fx/io.safetensors" --out "$out" "$@" 2>&1 | tail -3
    python3 -c '
import sys; from safetensors.numpy import load_file
ours, ref = load_file(sys.argv[1]), load_file(sys.argv[2])
for k in sorted(set(ours) & set(ref)):
    a, b = ours[k].astype("float64"), ref[k].astype("float64")
    print(f"  {k:40s} max|ours-ref| {abs(a-b).max():.3e}  max|ref| {abs(b).max():.3e}")
' "$out" "$fx/io.safetensors" 2>&1 | tail -6
  else
    timeout 120 node "$M2D" --backend "$BE" forward "$comp" --model "$fx" --inputs "$fx/io.safetensors" --compare "$fx/$cmp" --out "$out" "$@" 2>&1 | tail -4
  fi
}

case "$stage" in
check)
  log "machine"; nvidia-smi -L 2>&1; node --version; ls /usr/local/nvidia/share/vulkan/icd.d/ 2>&1; echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-}"
  if [ ! -s "$SYN/model_index.json" ]; then # writing 21 GB takes minutes: let it run on between calls
    setsid nohup node .devpack/b/make-synthetic-pipeline.js --out "$SYN" --scale full >/tmp/synthetic.log 2>&1 </dev/null &
  fi
  for fx in transformer_5b_rope_single transformer_2b_single mask2dit_multiscene mask2dit_conditional; do
    fwd transformer $fx io.safetensors --weights test/fixtures/$fx/weights.safetensors
  done
  fwd transformer mask2dit_multiscene io.bf16.safetensors --weights test/fixtures/mask2dit_multiscene/weights.bf16.safetensors
  fwd vae-decode vae_decode --py --weights test/fixtures/vae_decode/weights.safetensors
  fwd vae-encode vae_encode --py --weights test/fixtures/vae_encode/weights.safetensors
  fwd text-encoder t5_encoder_tiny io.safetensors --weights test/fixtures/t5_encoder_tiny/weights.safetensors
  log "synthetic folder so far"; tail -3 /tmp/synthetic.log 2>/dev/null; du -sh "$SYN" 2>/dev/null
  ;;
bench)
  log "bench"
  timeout 240 node --expose-gc .devpack/b/run.js --backends "$BE" --reference --python python3 --reference-device cuda 2>&1 | tee "$OUT/bench.log" | tail -60
  log "waiting for the synthetic folder"
  for _ in $(seq 1 60); do pgrep -f make-synthetic-pipeline >/dev/null || break; sleep 5; done
  tail -3 /tmp/synthetic.log; cp /tmp/synthetic.log "$OUT/" 2>/dev/null
  log "realsize: 3 scenes x 1 frame at 480x720, CFG 6"
  timeout 200 node --expose-gc .devpack/b/realsize.js --model "$SYN" --backend "$BE" --frames 1 --height 480 --width 720 --guidance 6 2>&1 | tee "$OUT/realsize-1frame.log" | tail -30
  left=$((530 - SECONDS))
  if [ "$left" -gt 60 ]; then
    log "realsize: 3 scenes x 13 frames at 480x720, no CFG (timeout ${left} s)"
    timeout "$left" node --expose-gc .devpack/b/realsize.js --model "$SYN" --backend "$BE" --frames 13 --height 480 --width 720 --guidance 1 2>&1 | tee "$OUT/realsize-13frames.log" | tail -30
  fi
  ;;
*) echo "usage: run.sh check|bench"; exit 2 ;;
esac
log "done"
