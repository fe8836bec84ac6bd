#!/usr/bin/env bash
# On the GPU machine, from the repository root, with .data/gpu/ from scripts/gpu_pack.sh carried
# (README "GPU"): issue 13's GPU checks in one call.
#  1. `cxr-viewer bench --device cuda` with the defaults (whole study, faithfulness included),
#     without faithfulness, and with the 256-node reference for the IG map error;
#  2. `analyze` of the sample films on the GPU and on the CPU, and scripts/gpu_parity.py; again
#     on the GPU under compute-sanitizer;
#  3. the side by side against PyTorch + captum on the same GPU (scripts/bench_python.py
#     --device cuda).
# Everything it prints goes to $OUT/gpu_check.log; the analyze folders (maps and reports) to
# $OUT/analyze.tar.gz.
set -u
OUT=${OUT:-/tmp/gpu-check-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_check.log") 2>&1
G=.data/gpu
T=$(mktemp -d)
step() { echo; echo "=== $* ($(date -u +%T))"; }
step machine
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
nproc; python3 -c 'import torch; print("torch", torch.__version__, torch.version.cuda)'
step unpack
for f in "$G"/*.shuf.xz; do python3 scripts/shuffle_bytes.py dec "$f" "weights/$(basename "$f" .shuf.xz)"; done
python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
  "$G/cxr-viewer-cuda.xz" "$T/cxr-viewer"
chmod +x "$T/cxr-viewer"
BIN=$T/cxr-viewer
# The CUDA 13 user-space libraries the binary links come with the image's PyTorch (pip's nvidia-*).
libs=$(python3 - <<'PY'
import glob, os, site
dirs = set()
for root in site.getsitepackages():
    for name in ("libcublas.so.13", "libcublasLt.so.13", "libcurand.so.10", "libcudart.so.13"):
        dirs.update(os.path.dirname(p) for p in glob.glob(f"{root}/nvidia/**/{name}", recursive=True))
print(":".join(sorted(dirs)))
PY
)
export LD_LIBRARY_PATH=$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
ldd "$BIN" | grep -E "cuda|cublas|curand|not found"
step "bench --device cuda, defaults (whole study)"
timeout 150 "$BIN" bench --device cuda --runs 20 --ig-reference-steps 256
step "bench --device cuda --no-faithfulness --ig-steps 40 (the CPU side by side's settings)"
timeout 100 "$BIN" bench --device cuda --runs 20 --no-faithfulness --ig-steps 40
step "analyze on the GPU and on the CPU"
films=("$G"/films/*)
[ -e "${films[0]}" ] || films=(assets/samples/*.jpeg)
timeout 100 "$BIN" analyze "${films[@]}" --device cuda --out "$T/cuda"
timeout 150 "$BIN" analyze "${films[@]}" --device cpu --out "$T/cpu"
python3 scripts/gpu_parity.py "$T/cpu" "$T/cuda"
step "analyze on the GPU under compute-sanitizer memcheck, and parity again"
# The sanitizer slows every kernel down, which exposes work that is not ordered between threads
# (how the per-thread-stream bug showed itself: wrong results, no memory error).
if command -v compute-sanitizer >/dev/null; then
  timeout 200 compute-sanitizer --tool memcheck --print-limit 4 "$BIN" analyze "${films[@]}" \
    --device cuda --no-faithfulness --out "$T/cuda-memcheck"
  python3 scripts/gpu_parity.py "$T/cpu" "$T/cuda-memcheck"
fi
tar -C "$T" -czf "$OUT/analyze.tar.gz" --exclude='overlay_*' cpu cuda
step "side by side with PyTorch + captum on the GPU"
if python3 -m pip install -q --no-index --no-deps --no-compile --target "$T/site" "$G"/whl/*.whl; then
  PYTHONPATH=$T/site PYTHONUNBUFFERED=1 timeout 150 python3 scripts/bench_python.py --device cuda \
    --model weights/model.json --cxr-viewer "$BIN" --runs 10 -- --no-faithfulness --ig-steps 40
fi
step done
