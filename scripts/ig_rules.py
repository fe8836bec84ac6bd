"""Integrated Gradients: Gauss–Legendre, the midpoint rule and the graded midpoint rule at equal
numbers of gradients.

Usage (the venv of `scripts/requirements-reference.txt`):
    python scripts/ig_rules.py FILM... [--model weights/model.json] [--steps 24 32 36 40 50]
    python scripts/ig_rules.py --profile FILM...   # where along the path the gradient map moves

For each film, through the PyTorch copy of the model (`bench_python.build`; its IG matches the
viewer's, `tests/engine_reference.rs`), black baseline, target = the predicted class: the map's
relative L2 error against a 256-node Gauss–Legendre map and the completeness gap as % of
|F(x) − F(x′)|, for both rules. `--profile` prints, from 512 midpoint gradients, the map's
variation between neighbouring points per unit of α and its mean norm, by stretch of the path,
and (`--deciles`, from 50 midpoint gradients per film) each film's variation per tenth of the path
divided by its mean and the geometric mean over the films: the profile behind
`PATH_VARIATION_PROFILE` in `src/explain/quadrature.rs` (14 validation films of
`weights/training/split.csv`, listed in the README). The README's tables (Performance, "the
midpoint rule" and "the graded midpoint rule") come from this script.
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import bench_python as b  # noqa: E402


def gauss_legendre(n):
    t, w = np.polynomial.legendre.leggauss(n)
    return (t + 1) / 2, w / 2


def midpoint(n):
    return (np.arange(n) + 0.5) / n, np.full(n, 1 / n)


# src/explain/quadrature.rs: PATH_VARIATION_PROFILE and graded_midpoint, the same arithmetic.
PROFILE = np.array([0.07, 0.2, 0.48, 0.68, 1.09, 1.74, 1.93, 1.56, 0.92, 0.61])


def graded(n):
    density = PROFILE ** (2 / 3)
    cdf = np.concatenate([[0.0], np.cumsum(density)]) / density.sum()
    def boundary(t):
        i = min(int(np.searchsorted(cdf, t, side="right")) - 1, len(density) - 1)
        return (i + min(max((t - cdf[i]) / (cdf[i + 1] - cdf[i]), 0.0), 1.0)) / len(density)
    edges = np.array([0.0] + [boundary(j / n) for j in range(1, n)] + [1.0])
    return (edges[1:] + edges[:-1]) / 2, np.diff(edges)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("films", nargs="+", type=Path)
    ap.add_argument("--model", type=Path, default=Path("weights/model.json"))
    ap.add_argument("--steps", type=int, nargs="+", default=[24, 32, 36, 40, 50])
    ap.add_argument("--reference-steps", type=int, default=256)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--deciles", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(2)
    model, cfg = b.build(args.model)
    mean = torch.tensor(cfg["input"]["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(cfg["input"]["std"]).view(1, 3, 1, 1)
    decile_rows = []
    for film in args.films:
        x = b.preprocess(film, cfg)
        with torch.no_grad():
            target = int(model(x).argmax(1))
        base = ((torch.zeros_like(x[:, :1]) - mean) / std).expand_as(x).contiguous()
        diff = x - base
        with torch.no_grad():
            span = float(model(x)[0, target]) - float(model(base)[0, target])

        def maps(alphas):
            out = []
            for i in range(0, len(alphas), 8):
                a = torch.tensor(np.asarray(alphas[i:i + 8]), dtype=torch.float32).view(-1, 1, 1, 1)
                point = (base + a * diff).requires_grad_(True)
                (g,) = torch.autograd.grad(model(point)[:, target].sum(), point)
                out.append((g * diff).sum(1).detach().numpy())
            return np.concatenate(out)

        if args.deciles:
            alphas = (np.arange(50) + 0.5) / 50
            m = maps(list(alphas))
            v = np.linalg.norm(np.diff(m, axis=0).reshape(49, -1), axis=1) / 0.02
            centres = (alphas[1:] + alphas[:-1]) / 2
            row = np.array([v[(centres > k / 10) & (centres <= (k + 1) / 10)].mean() for k in range(10)])
            decile_rows.append(row / row.mean())
            print(film.name, " ".join(f"{r:.2f}" for r in decile_rows[-1]))
            continue
        if args.profile:
            alphas = (np.arange(512) + 0.5) / 512
            m = maps(list(alphas))
            norm = np.linalg.norm(m.mean(0))
            moves = np.linalg.norm(np.diff(m, axis=0).reshape(511, -1), axis=1) / norm
            print(film.name)
            for lo, hi in [(0, .02), (.02, .05), (.05, .1), (.1, .2), (.2, .4), (.4, .7), (.7, 1)]:
                inside = (alphas[1:] > lo) & (alphas[1:] <= hi)
                size = np.linalg.norm(m[(alphas > lo) & (alphas <= hi)].reshape(-1, m[0].size), axis=1)
                print(f"  α {lo:.2f}–{hi:.2f}: variation per unit α {moves[inside].sum() / (hi - lo):.2f}, "
                      f"mean |map| {size.mean() / norm:.3f} (of |IG|)")
            continue

        def integrate(rule):
            nodes, weights = rule
            return np.tensordot(weights, maps(list(nodes)), axes=1)

        reference = integrate(gauss_legendre(args.reference_steps))
        error = lambda m: np.linalg.norm(m - reference) / np.linalg.norm(reference)
        gap = lambda m: 100 * abs(m.sum() - span) / abs(span)
        cells = []
        for n in args.steps:
            g, m, d = integrate(gauss_legendre(n)), integrate(midpoint(n)), integrate(graded(n))
            cells.append(f"{n}: Gauss–Legendre {error(g):.4f} (gap {gap(g):.1f} %), "
                         f"midpoint {error(m):.4f} (gap {gap(m):.1f} %), "
                         f"graded {error(d):.4f} (gap {gap(d):.1f} %)")
        print(f"{film.name}  F(x) − F(x′) = {span:.3f}, reference gap {gap(reference):.2f} %")
        for c in cells:
            print("  " + c)
    if decile_rows:
        profile = np.exp(np.log(np.array(decile_rows)).mean(0))
        print("geometric mean over the films:", " ".join(f"{p:.2f}" for p in profile))


if __name__ == "__main__":
    main()
