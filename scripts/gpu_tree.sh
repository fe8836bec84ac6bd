#!/usr/bin/env bash
# Around a device call (README "GPU"): the device tool sends the tracked files plus the carried
# paths, 64 MiB at most, and the tracked weights alone are 52.6 MiB. `slim` takes every tracked
# file the GPU check does not need out of both the index and the working tree (whether the tool
# counts one or the other was not settled), keeping .gitignore so that ignored folders stay
# ignored; it refuses while anything is uncommitted, so nothing can be lost. `restore` brings
# HEAD's files back.
#
#   bash scripts/gpu_tree.sh slim      # then the device call, carrying .data/gpu
#   bash scripts/gpu_tree.sh restore
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
keep='^(scripts/|weights/model\.json$|assets/samples/|\.gitignore$)'
case "${1:-}" in
  slim)
    if ! git diff --quiet HEAD || [ -n "$(git status --porcelain --untracked-files=all | grep '^??' || true)" ]; then
      echo "gpu_tree: commit (or stash) every change and untracked file first" >&2
      exit 1
    fi
    mkdir -p .data
    git ls-files | grep -vE "$keep" > .data/gpu-tree-out.txt
    tr '\n' '\0' < .data/gpu-tree-out.txt | xargs -0 rm -f --
    tr '\n' '\0' < .data/gpu-tree-out.txt | xargs -0 git rm -q --cached --
    stay=$(git ls-files -z | xargs -0 du -bc | tail -n1 | cut -f1)
    echo "gpu_tree: $(wc -l < .data/gpu-tree-out.txt) tracked files out; ${stay} bytes stay," \
      "plus .data/gpu: $(du -sb .data/gpu 2>/dev/null | cut -f1) bytes"
    ;;
  restore)
    git reset -q
    git checkout -- .
    rm -f .data/gpu-tree-out.txt
    echo "gpu_tree: $(git ls-files | wc -l) tracked files back"
    ;;
  *)
    echo "usage: bash scripts/gpu_tree.sh slim|restore" >&2
    exit 2
    ;;
esac
