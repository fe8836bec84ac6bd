#!/usr/bin/env python3
"""Independent check of an export: model.json schema, safetensors contents
(float16, torchvision names, no num_batches_tracked), and that a float32
model loaded from the f16 file reproduces reference/reference_logits.json
from the *_gray.npy arrays (and from the fixture JPEGs) within 1e-4.

    .venv/bin/python weights/training/check_export.py [weights/]
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train import build_model, load_gray  # noqa: E402


def main():
    d = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1])
    mj = json.loads((d / "model.json").read_text())
    keys = {"name", "weights", "architecture", "classes", "positive_class", "input", "dropout",
            "threshold", "temperature", "training"}
    assert set(mj) == keys, set(mj) ^ keys
    assert mj["classes"] == ["NORMAL", "PNEUMONIA"] and mj["positive_class"] == "PNEUMONIA"
    assert mj["architecture"] == {"family": "resnet-bottleneck", "layers": [3, 4, 6, 3], "width": 64,
                                  "head_hidden": 256}
    assert set(mj["training"]) == {"interim", "epochs", "input_size", "device", "val_auc", "val_accuracy", "date"}
    S = mj["input"]["width"]
    assert mj["input"]["height"] == S and mj["input"]["channels"] == 3 and mj["input"]["resize"] == "squash"
    wf = d / mj["weights"]
    with safe_open(str(wf), "pt") as f:
        names = list(f.keys())
    sd = load_file(str(wf))
    assert all(v.dtype == torch.float16 for v in sd.values()), "not all float16"
    assert not any("num_batches_tracked" in k for k in names)
    assert all(v.is_contiguous() for v in sd.values())
    assert {"fc.1.weight", "fc.1.bias", "fc.4.weight", "fc.4.bias"} <= set(names)
    model = build_model(mj["dropout"])
    missing, unexpected = model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
    model.eval()
    m, s = mj["input"]["mean"][0], mj["input"]["std"][0]
    ref = json.loads((d / "reference" / "reference_logits.json").read_text())
    worst = 0.0
    assert len(ref) == 4 and all(set(r) == {"logits", "prob_pneumonia_calibrated"} for r in ref.values())
    for stem, r in ref.items():
        gray = np.load(d / "reference" / f"{stem}_gray.npy")
        assert gray.dtype == np.float32 and gray.shape == (S, S)
        jpg = next((d / "reference").glob(stem + ".*[gG]"))
        g2 = load_gray(jpg, S).astype(np.float32) / np.float32(255.0)
        assert np.array_equal(gray, g2), stem
        x = ((torch.from_numpy(gray) - m) / s)[None, None].expand(1, 3, S, S).contiguous()
        with torch.no_grad():
            z = model(x)[0].double().numpy()
        diff = float(np.abs(z - np.array(r["logits"])).max())
        p = float(torch.softmax(torch.from_numpy(z) / mj["temperature"], 0)[1])
        worst = max(worst, diff, abs(p - r["prob_pneumonia_calibrated"]))
        print(f"{stem:28s} logits {np.round(z, 5)} p_cal {p:.5f} (ref {r['prob_pneumonia_calibrated']:.5f}) "
              f"max|dlogit| {diff:.2e}  -> {'PNEUMONIA' if p >= mj['threshold'] else 'NORMAL'}")
    assert worst < 1e-4, worst
    print(f"OK: {wf.name} ({len(names)} tensors, f16), model.json schema, parity max diff {worst:.2e}")


if __name__ == "__main__":
    main()
