"""Time the Python reference stack (PyTorch + pytorch-grad-cam + captum) on the same model and
image as `cxr-viewer bench`, so the README compares like with like on one machine.

Usage: .venv/bin/python scripts/bench_python.py --model weights/model.json [--image FILE] [--runs 5]
Prints a markdown table of median milliseconds and IG completeness gaps.
"""
import argparse
import json
import resource
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from captum.attr import IntegratedGradients
from PIL import Image
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from safetensors.torch import load_file


def build(config_path: Path) -> tuple[torch.nn.Module, dict]:
    cfg = json.loads(config_path.read_text())
    arch = cfg["architecture"]
    assert arch["layers"] == [3, 4, 6, 3] and arch["width"] == 64, "benchmark expects ResNet-50"
    model = torchvision.models.resnet50(weights=None)
    p = cfg["dropout"]
    model.fc = torch.nn.Sequential(
        torch.nn.Dropout(p), torch.nn.Linear(2048, arch["head_hidden"]), torch.nn.ReLU(inplace=True),
        torch.nn.Dropout(p), torch.nn.Linear(arch["head_hidden"], len(cfg["classes"])),
    )
    state = {k: v.float() for k, v in load_file(config_path.parent / cfg["weights"]).items()}
    model.load_state_dict(state, strict=False)
    return model.eval(), cfg


def preprocess(image: Path, cfg: dict) -> torch.Tensor:
    spec = cfg["input"]
    gray = Image.open(image).convert("L").resize((spec["width"], spec["height"]), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(gray, dtype=np.float32) / 255.0)
    x = x.expand(3, -1, -1)
    mean = torch.tensor(spec["mean"]).view(3, 1, 1)
    std = torch.tensor(spec["std"]).view(3, 1, 1)
    return ((x - mean) / std).unsqueeze(0).contiguous()


def median_ms(fn, runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=Path("weights/model.json"))
    ap.add_argument("--image", type=Path, default=Path("assets/samples/person45_bacteria_221.jpeg"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, cfg = build(args.model)
    x = preprocess(args.image, cfg)
    with torch.no_grad():
        target = int(model(x).argmax(1))
    rows = []
    with torch.no_grad():
        rows.append(("predict (forward)", median_ms(lambda: model(x), args.runs)))
    cam = GradCAM(model=model, target_layers=[model.layer4[-1]])
    rows.append(("Grad-CAM", median_ms(lambda: cam(x, targets=[ClassifierOutputTarget(target)]), args.runs)))

    # MC dropout the cheap way too: backbone once, 20 head samples in a batch.
    backbone = torch.nn.Sequential(*list(model.children())[:-1])

    def mc():
        with torch.no_grad():
            f = backbone(x).flatten(1).expand(20, -1)
            model.fc.train()
            torch.softmax(model.fc(f), 1)
            model.fc.eval()

    rows.append(("MC dropout (20 samples, head only)", median_ms(mc, args.runs)))
    ig = IntegratedGradients(model)
    baseline = ((torch.zeros_like(x[:, :1]) - torch.tensor(cfg["input"]["mean"]).view(1, 3, 1, 1))
                / torch.tensor(cfg["input"]["std"]).view(1, 3, 1, 1)).expand_as(x).contiguous()
    gaps = {}
    for steps in (32, 50):
        def run_ig(steps=steps):
            attr, delta = ig.attribute(x, baselines=baseline, target=target, n_steps=steps,
                                       method="gausslegendre", internal_batch_size=8,
                                       return_convergence_delta=True)
            gaps[steps] = float(delta.abs())
        rows.append((f"IG ({steps} steps, batch 8)", median_ms(run_ig, max(1, args.runs // 2))))
    with torch.no_grad():
        f_x = float(model(x)[0, target])
        f_b = float(model(baseline)[0, target])
    print(f"PyTorch {torch.__version__}, {args.threads} threads, model {cfg['name']}, image {args.image.name}\n")
    print("| stage | median ms |\n|---|---:|")
    for name, ms in rows:
        print(f"| {name} | {ms:.1f} |")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory of this process: {peak:.0f} MiB")
    for steps, gap in gaps.items():
        print(f"IG {steps} steps: |gap| = {gap:.4f} ({100 * gap / max(abs(f_x - f_b), 1e-12):.2f} % of |F(x)-F(x')|)")


if __name__ == "__main__":
    main()
