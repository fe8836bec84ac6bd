#!/usr/bin/env python3
"""How much a deletion-AOPC ratio depends on the protocol: reads the fine deletion curves that
`cargo run --release --example faithfulness_sweep -- FOLDER 32 > curves.jsonl` writes (one JSON
line per film: the curve of each map and the mean curve of the random orderings, at k/S of the
cells for k = 0…S) and prints, for several ways of averaging the same curves, the ratio
mean AOPC(map) / mean AOPC(random) over the films (a ratio of means, as `eval --faithfulness`).

    python3 scripts/faithfulness_protocols.py curves.jsonl

AOPC over a set of points P of the curve = mean over k in P of (d_0 − d_k). Standard library only.
"""
import json
import sys

MAPS = ["gradcam", "ig", "uncertainty"]


def protocols(s):
    """(description, points) on a curve with s steps; fractions rounded to the nearest step."""
    at = lambda fracs: sorted({min(s, round(f * s)) for f in fracs})
    out = [
        ("the shipped points: 0, 1/4, 1/2, 3/4 (4 steps, L = 3)", at([0, 1 / 4, 2 / 4, 3 / 4])),
        ("5 steps, L = 4", at([i / 5 for i in range(5)])),
        ("6 steps, L = 5", at([i / 6 for i in range(6)])),
        ("8 steps, L = 7", at([i / 8 for i in range(8)])),
        ("8 steps, last point included (the protocol before)", at([i / 8 for i in range(9)])),
        ("4 steps, last point included", at([i / 4 for i in range(5)])),
    ]
    for part in (1 / 4, 1 / 2):
        out.append((f"every step up to {part:g} of the cells", list(range(0, round(part * s) + 1))))
    out.append(("every step, whole range, last point included", list(range(0, s + 1))))
    return out


def aopc(curve, points):
    return sum(curve[0] - curve[k] for k in points) / len(points)


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    steps = len(rows[0]["random"]) - 1
    print(f"{len(rows)} films, curves at {steps} steps")
    print("| AOPC averaged over | " + " | ".join(MAPS) + " |")
    print("|---|" + "---:|" * len(MAPS))
    for name, points in protocols(steps):
        cells = []
        for m in MAPS:
            a = sum(aopc(r[m]["del"], points) for r in rows) / len(rows)
            rnd = sum(aopc(r["random"], points) for r in rows) / len(rows)
            cells.append(f"{a / rnd:.2f}×" if rnd > 1e-9 else "n/a")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
