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
# The CUDA 13 user-space libraries the binaries link come with the image's PyTorch (pip's nvidia-*),
# cuDNN 9 among them.
libs=$(python3 - <<'PY'
import glob, os, site
dirs = set()
for root in site.getsitepackages():
    for name in ("libcublas.so.13", "libcublasLt.so.13", "libcurand.so.10", "libcudart.so.13",
                 "libcudnn.so.9"):
        dirs.update(os.path.dirname(p) for p in glob.glob(f"{root}/nvidia/**/{name}", recursive=True))
print(":".join(sorted(dirs)))
PY
)
export LD_LIBRARY_PATH=$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
ldd "$BIN" | grep -E "cuda|cublas|curand|cudnn|not found"
films=("$G"/films/*)
[ -e "${films[0]}" ] || films=(assets/samples/*.jpeg)
timeout 150 "$BIN" analyze "${films[@]}" --device cpu --out "$T/cpu"
# A `--features cudnn` build runs twice: with cuDNN's convolutions, and with CXR_VIEWER_CUDNN=0
# (candle's own kernels, what a `--features cuda` build runs), as the baseline on the same card.
for v in ${VARIANTS:-candle cudnn}; do
  export CXR_VIEWER_CUDNN=$([ "$v" = cudnn ] && echo 1 || echo 0)
  step "$v: bench --device cuda, defaults (whole study)"
  timeout 150 "$BIN" bench --device cuda --runs 20 --ig-reference-steps 256
  step "$v: bench --device cuda --no-faithfulness --ig-steps 40 (the CPU side by side's settings)"
  timeout 100 "$BIN" bench --device cuda --runs 20 --no-faithfulness --ig-steps 40
  step "$v: analyze on the GPU, parity with the CPU"
  timeout 100 "$BIN" analyze "${films[@]}" --device cuda --out "$T/$v"
  python3 scripts/gpu_parity.py "$T/cpu" "$T/$v"
done
step "analyze on the GPU under compute-sanitizer memcheck, and parity again"
# The sanitizer slows every kernel down, which exposes work that is not ordered between threads
# (how the per-thread-stream bug showed itself: wrong results, no memory error).
if command -v compute-sanitizer >/dev/null; then
  timeout 200 compute-sanitizer --tool memcheck --print-limit 4 "$BIN" analyze \
    "${films[@]:0:${SANITIZER_FILMS:-8}}" --device cuda --no-faithfulness --out "$T/cuda-memcheck"
  python3 scripts/gpu_parity.py "$T/cpu" "$T/cuda-memcheck"
fi
tar -C "$T" -czf "$OUT/analyze.tar.gz" --exclude='overlay_*' cpu ${VARIANTS:-candle cudnn}
step "side by side with PyTorch + captum on the GPU"
if python3 -m pip install -q --no-index --no-deps --no-compile --target "$T/site" "$G"/whl/*.whl; then
  PYTHONPATH=$T/site PYTHONUNBUFFERED=1 timeout 150 python3 scripts/bench_python.py --device cuda \
    --model weights/model.json --cxr-viewer "$BIN" --runs 10 -- --no-faithfulness --ig-steps 40
fi
if [ -n "${NCU:-}" ] && command -v ncu >/dev/null; then
  # One row per kernel launch (--csv); summed per kernel name here afterwards. Last, since ncu
  # serialises every launch.
  step "GPU time per kernel (ncu), one study, 8 IG steps, no faithfulness"
  timeout "${NCU_TIMEOUT:-100}" ncu --clock-control none --csv --metrics gpu__time_duration.sum \
    "$BIN" analyze "${films[0]}" --device cuda --no-faithfulness --ig-steps 8 --out "$T/ncu" \
    > "$OUT/ncu.csv" 2> "$OUT/ncu.err"
  echo "ncu: rc=$? $(wc -l < "$OUT/ncu.csv") lines"
fi
step done
