#!/usr/bin/env bash
# Here (a machine without cuDNN), before `cargo build --release --features cudnn`: a link-time
# stand-in for libcudnn.so.9 in $CUDA_HOME/lib, beside the libcuda stub that
# ../shared/tools/cuda-build-env.sh makes. Every entry point cudarc declares returns an error code;
# the real library (PyTorch's nvidia-cudnn-cu13 on the GPU machine; scripts/gpu_check.sh puts its
# folder on LD_LIBRARY_PATH) is loaded at run time through the soname.
#
#   source ../shared/tools/cuda-build-env.sh && bash scripts/cudnn_stub.sh
set -euo pipefail
: "${CUDA_HOME:?source ../shared/tools/cuda-build-env.sh first}"
src=$(ls -d ~/.cargo/registry/src/*/cudarc-*/src/cudnn/sys/mod.rs 2>/dev/null | tail -n1)
[ -n "$src" ] || { echo "cudnn_stub: run 'cargo fetch' first (cudarc's sources)" >&2; exit 1; }
mkdir -p "$CUDA_HOME/lib"
grep -oE "^pub unsafe fn (cudnn[A-Za-z0-9_]+)" "$src" | awk '{print $4}' | sort -u \
  | awk '{print "int " $1 "(void){return 999;}"}' > "$CUDA_HOME/libcudnn_stub.c"
gcc -shared -fPIC -o "$CUDA_HOME/lib/libcudnn.so" -Wl,-soname,libcudnn.so.9 "$CUDA_HOME/libcudnn_stub.c"
echo "cudnn_stub: $CUDA_HOME/lib/libcudnn.so ($(wc -l < "$CUDA_HOME/libcudnn_stub.c") entry points)"
