#!/usr/bin/env bash
# Build what a GPU run on the `device` machine needs into .devpack/ (git-ignored, < 64 MiB to carry):
# that machine has no Node and no registry, so it gets this machine's node binary, the project bundled
# by esbuild (one file per entry; placed two folders down so `../../` paths still reach the repo root),
# and Dawn (npm `webgpu`, linux-x64 only). The Vulkan loader debs go to .gl/ (the device README's recipe).
#
#   bash benchmarks/device/pack.sh      then, through the device tool:
#   carry [".devpack", ".gl"], command "bash benchmarks/device/run.sh"
set -euo pipefail
cd "$(dirname "$0")/../.."
git_dir=$(git rev-parse --git-dir)
mkdir -p "$git_dir/info"
for p in /.devpack/ /.gl/; do grep -qx "$p" "$git_dir/info/exclude" 2>/dev/null || echo "$p" >>"$git_dir/info/exclude"; done

rm -rf .devpack && mkdir -p .devpack/stage/b .devpack/stage/node_modules/webgpu/dist/linux-x64 .devpack/stage/bin
cat >.devpack/banner.js <<'JS'
import { createRequire as __cr } from 'node:module'; import { fileURLToPath as __fu } from 'node:url'; import { dirname as __dn } from 'node:path';
const require = __cr(import.meta.url); const __filename = __fu(import.meta.url); const __dirname = __dn(__filename);
JS
node_modules/.bin/esbuild src/cli/main.ts benchmarks/realsize.ts benchmarks/run.ts scripts/make-synthetic-pipeline.ts \
  --bundle --platform=node --format=esm --target=node20 --outdir=.devpack/stage/b --entry-names='[name]' \
  --external:webgpu --external:@ffmpeg-installer/ffmpeg --ignore-annotations \
  "--banner:js=$(cat .devpack/banner.js)" --log-level=error
cp node_modules/webgpu/index.js node_modules/webgpu/package.json .devpack/stage/node_modules/webgpu/
cp node_modules/webgpu/dist/linux-x64/dawn.node .devpack/stage/node_modules/webgpu/dist/linux-x64/
cp "$(command -v node)" .devpack/stage/bin/node
tar -C .devpack/stage -cf - . | xz -T2 -6 >.devpack/pack.tar.xz
rm -rf .devpack/stage .devpack/banner.js

if ! ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then
  mkdir -p .gl /tmp/amd64/partial
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  apt-get $o update -qq && (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
fi
du -sh .devpack .gl
