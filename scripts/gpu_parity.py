"""CPU/GPU parity of `cxr-viewer analyze`: the same films analysed with `--device cpu` and
`--device cuda` must give the same prediction and the same maps (issue 13's GPU check).

Usage (numpy only):
    python scripts/gpu_parity.py CPU_OUT CUDA_OUT

Each argument is an `analyze --out` folder (one sub-folder per film with report.json and the
maps as .npy). For every film it prints the largest logit difference, the probability and scope
score differences, and for each map Pearson's r and the relative L2 difference (CUDA against
CPU). The bars are those of the PyTorch reference tests (README "Tests"), applied between our two
back ends: same label, |Δ logit| ≤ 1e-3 (cuBLAS and our CPU kernels sum in different orders;
1e-4 is the bar against PyTorch on one back end), Grad-CAM r ≥ 0.999, IG r ≥ 0.99, the MC
dropout maps r ≥ 0.99 (their masks come from the same seeded host generator on both). Exits 1
if any film misses a bar or is missing on one side.
"""
import json
import sys
from pathlib import Path

import numpy as np

MAPS = {"gradcam": 0.999, "ig": 0.99, "uncertainty_mean": 0.99, "uncertainty_std": 0.99}
LOGIT_BAR = 1e-3


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else float(np.array_equal(a, b))


def rel_l2(a: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(a - ref) / max(np.linalg.norm(ref), 1e-30))


def main() -> int:
    if len(sys.argv) != 3:
        print("usage: " + __doc__.strip().splitlines()[4].strip(), file=sys.stderr)
        return 2
    cpu_dir, gpu_dir = Path(sys.argv[1]), Path(sys.argv[2])
    for d in (cpu_dir, gpu_dir):
        if not d.is_dir():
            print(f"not a folder: {d}", file=sys.stderr)
            return 2
    films = sorted(p.name for p in cpu_dir.iterdir() if (p / "report.json").is_file())
    if not films:
        print(f"no analysed films in {cpu_dir}", file=sys.stderr)
        return 2
    failures = []
    header = ["film", "label cpu/cuda", "max |Δ logit|", "|Δ P|", "|Δ scope|", "|Δ MC mean|"]
    header += [f"{m} r / rel L2" for m in MAPS]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for film in films:
        if not (gpu_dir / film / "report.json").is_file():
            failures.append(f"{film}: no CUDA report")
            continue
        cpu = json.loads((cpu_dir / film / "report.json").read_text())
        gpu = json.loads((gpu_dir / film / "report.json").read_text())
        if gpu.get("device") != "cuda":
            failures.append(f"{film}: the CUDA report says device {gpu.get('device')!r}")
        labels = (cpu["prediction"]["label"], gpu["prediction"]["label"])
        d_logit = max(abs(a - b) for a, b in zip(cpu["prediction"]["logits"], gpu["prediction"]["logits"]))
        d_prob = abs(cpu["prediction"]["positive_probability"] - gpu["prediction"]["positive_probability"])
        d_scope = abs(cpu["scope"]["score"] - gpu["scope"]["score"])
        d_mc = abs(cpu["uncertainty"]["mean"] - gpu["uncertainty"]["mean"])
        if labels[0] != labels[1]:
            failures.append(f"{film}: label {labels[0]} on the CPU, {labels[1]} on the GPU")
        if d_logit > LOGIT_BAR:
            failures.append(f"{film}: logits differ by {d_logit:.2e} (> {LOGIT_BAR})")
        cells = [film, "/".join(labels), f"{d_logit:.1e}", f"{d_prob:.1e}", f"{d_scope:.1e}", f"{d_mc:.1e}"]
        for name, bar in MAPS.items():
            a, b = cpu_dir / film / f"{name}.npy", gpu_dir / film / f"{name}.npy"
            if not (a.is_file() and b.is_file()):
                cells.append("missing")
                failures.append(f"{film}: {name}.npy missing")
                continue
            ref, got = np.load(a), np.load(b)
            if ref.shape != got.shape:
                cells.append(f"shape {got.shape} vs {ref.shape}")
                failures.append(f"{film}: {name} shape differs")
                continue
            r = pearson(got, ref)
            cells.append(f"{r:.6f} / {rel_l2(got, ref):.1e}")
            if not r >= bar:
                failures.append(f"{film}: {name} r = {r:.6f} (< {bar})")
        print("| " + " | ".join(cells) + " |")
    print()
    if failures:
        print("PARITY FAILED:\n- " + "\n- ".join(failures))
        return 1
    print(f"PARITY OK: {len(films)} films, same labels, logits within {LOGIT_BAR}, every map above its bar")
    return 0


if __name__ == "__main__":
    sys.exit(main())
