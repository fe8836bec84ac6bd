#!/usr/bin/env bash
# Here, before the GPU check (issue 13): put into .data/gpu/ what the GPU machine needs and the
# repository's tracked files do not bring within the device tool's 64 MiB limit: the stripped
# `--features cuda` binary and the weights (both xz-compressed; see scripts/shuffle_bytes.py),
# the eight sample films of ../shared/samples (or SAMPLES=DIR), and captum as a wheel (the
# machine's PyTorch image lacks it; pip downloads it here from PyPI).
#
#   source ../shared/tools/cuda-build-env.sh
#   CARGO_TARGET_DIR=/tmp/cuda-target cargo build --release --features cuda
#   BIN=/tmp/cuda-target/release/cxr-viewer bash scripts/gpu_pack.sh
#
# Then the tracked weights must leave the working tree for the call (README "GPU" has the
# whole procedure); scripts/gpu_check.sh runs there.
set -euo pipefail
BIN=${BIN:-/tmp/cuda-target/release/cxr-viewer}
SAMPLES=${SAMPLES:-../shared/samples}
PY=${PY:-python3}
G=.data/gpu
rm -rf "$G" && mkdir -p "$G/films" "$G/whl"
strip -o "$G/cxr-viewer-cuda" "$BIN"
xz -9 -T0 -f "$G/cxr-viewer-cuda"
weights=$($PY -c 'import json; print(json.load(open("weights/model.json"))["weights"])')
scope=$($PY -c 'import json; print(json.load(open("weights/model.json")).get("scope", ""))')
dtype_width() {  # bytes per value of the file's first tensor (f16 → 2, f32 → 4)
  $PY - "$1" <<'PY'
import json, struct, sys
b = open(sys.argv[1], "rb").read(8 + 1 << 20)
header = json.loads(b[8:8 + struct.unpack("<Q", b[:8])[0]])
dtype = next(v["dtype"] for k, v in header.items() if k != "__metadata__")
print({"F16": 2, "BF16": 2, "F32": 4, "F64": 8}.get(dtype, 4))
PY
}
for w in $weights $scope; do
  $PY scripts/shuffle_bytes.py enc "$(dtype_width "weights/$w")" "weights/$w" "$G/$w.shuf.xz"
done
cp "$SAMPLES"/*.jpeg "$SAMPLES"/*.png "$G/films/" 2>/dev/null || true
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 -d "$G/whl" captum==0.9.0
du -sh "$G"/* | sed 's/^/gpu_pack: /'
