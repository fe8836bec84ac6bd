"""Side by side: the Python reference stack (PyTorch + captum) and `cxr-viewer bench`, on the same
weights and film, in one run, so the README compares like with like on one machine.

Usage (a venv with torch, torchvision, captum, safetensors, pillow, numpy):
    cargo build --release
    python scripts/bench_python.py --model weights/model.json [--image FILE] [--runs 5] \
        [--cxr-viewer target/release/cxr-viewer] [--reference-steps 256] [--rounds 1] [--bf16] \
        [--device cpu|cuda] [--ig-batch N] [--channels-last]

`--device cuda` runs both stacks on the GPU (PyTorch on `cuda:0`, a `--features cuda` build of
cxr-viewer with `--device cuda`); each timed call then ends with `torch.cuda.synchronize()`, IG
batches default to 32 path points on both sides, and the memory row is the GPU's peak allocation
of PyTorch (cxr-viewer's row stays its host RSS: candle does not report device memory).

For each round it times the PyTorch stack (forward, Grad-CAM, MC dropout on the head, captum IG
with 32 and 50 Gauss–Legendre steps, batches of `--ig-batch`), then runs `cxr-viewer bench
--device DEVICE --ig-batch B --ig-reference-steps N` on the same film. Accuracy of an IG map =
relative L2 distance of the map (summed over channels) to a 256-node Gauss–Legendre map of the
*same* stack, model, film and baseline; both stacks' errors and completeness gaps are printed. The
"full study" of the Python stack is forward + Grad-CAM + MC dropout + IG at captum 50 steps (the
reference user setting); cxr-viewer's is its `total` row (decode included). Peak memory: the
Python process's peak RSS before the reference map (which is not part of a study) and cxr-viewer's
own VmHWM line. Medians over `--runs` per stage; with `--rounds R` the whole comparison repeats R
times and the table shows the median of the per-round medians; the full study's ratio of each
round is printed below it, to show the spread.

`--channels-last` also times the PyTorch stack with the model and the tensors in NHWC memory
(`torch.channels_last`, where oneDNN takes its channels-last convolution kernels), a one-line change
that a performance-minded PyTorch user can make, and adds its column and ratio to the table; its
50-step map is checked against the NCHW reference (the same accuracy).
"""
import argparse
import copy
import json
import re
import resource
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from captum.attr import IntegratedGradients
from PIL import Image
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


def sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def median_ms(fn, runs: int) -> float:
    fn()  # warm-up
    sync()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        sync()  # a GPU call returns before its kernels finish
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def grad_cam(model: torch.nn.Module, x: torch.Tensor, target: int) -> torch.Tensor:
    """Grad-CAM on layer4 (what pytorch-grad-cam computes): its own forward and backward."""
    store = {}
    handle = model.layer4.register_forward_hook(lambda m, i, o: store.setdefault("a", o))
    try:
        logits = model(x)
        a = store["a"]
        (g,) = torch.autograd.grad(logits[0, target], a)
        cam = torch.relu((g.mean((2, 3), keepdim=True) * a).sum(1))
        return cam.detach()
    finally:
        handle.remove()


def rel_l2(a: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(a - ref) / max(np.linalg.norm(ref), 1e-30))


def time_stack(args, model, x, baseline, target, runs_ig) -> dict:
    """Times of one configuration of the PyTorch stack (forward, Grad-CAM, MC dropout, captum IG
    at 32 and 50 steps) and the IG maps it made, keyed as the table reads them."""
    out = {}
    with torch.no_grad():
        out["forward"] = median_ms(lambda: model(x), args.runs)
    out["Grad-CAM"] = median_ms(lambda: grad_cam(model, x, target), args.runs)
    backbone = torch.nn.Sequential(*list(model.children())[:-1])

    def mc():
        with torch.no_grad():
            f = backbone(x).flatten(1).expand(20, -1)
            model.fc.train()
            torch.softmax(model.fc(f), 1)
            model.fc.eval()

    out["MC uncertainty (20 samples)"] = median_ms(mc, args.runs)
    maps, gaps = {}, {}
    for steps in runs_ig:
        def run(steps=steps):
            maps[steps], gaps[steps] = attribute(args, model, x, baseline, target, steps)
        out[f"IG {steps}"] = median_ms(run, max(1, args.runs // 2))
    out["full study"] = out["forward"] + out["Grad-CAM"] + out["MC uncertainty (20 samples)"] + out["IG 50"]
    return out, maps, gaps


def attribute(args, model, x, baseline, target, steps, bf16=False):
    # bf16: PyTorch's CPU autocast (oneDNN's AVX512-BF16 kernels where the CPU has them), to
    # see whether the narrower arithmetic keeps the map as accurate (issue 13's bf16 lever).
    ig = IntegratedGradients(model)
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        attr, delta = ig.attribute(x, baselines=baseline, target=target, n_steps=steps,
                                   method="gausslegendre", internal_batch_size=args.ig_batch,
                                   return_convergence_delta=True)
    return attr.float().sum(1)[0].detach().cpu().numpy(), float(delta.abs())


def python_round(args, model, cfg, x) -> dict:
    with torch.no_grad():
        target = int(model(x).argmax(1))
    mean = torch.tensor(cfg["input"]["mean"], device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(cfg["input"]["std"], device=x.device).view(1, 3, 1, 1)
    baseline = ((torch.zeros_like(x[:, :1]) - mean) / std).expand_as(x).contiguous()
    out, maps, gaps = time_stack(args, model, x, baseline, target, (32, 50))
    out["peak MiB"] = (torch.cuda.max_memory_allocated() / 2**20 if x.is_cuda
                       else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    with torch.no_grad():
        f_x = float(model(x)[0, target])
        f_b = float(model(baseline)[0, target])
    reference, _ = attribute(args, model, x, baseline, target, args.reference_steps)
    span = max(abs(f_x - f_b), 1e-12)
    for steps in (32, 50):
        out[f"IG {steps} error"] = rel_l2(maps[steps], reference)
        out[f"IG {steps} gap %"] = 100 * gaps[steps] / span
    if args.bf16:
        for steps in (32, 50):
            def run_bf16(steps=steps):
                maps[steps] = attribute(args, model, x, baseline, target, steps, bf16=True)[0]
            out[f"bf16 IG {steps}"] = median_ms(run_bf16, max(1, args.runs // 2))
            out[f"bf16 IG {steps} error"] = rel_l2(maps[steps], reference)
    if args.channels_last:
        # The same weights and film in NHWC memory, where oneDNN picks its channels-last
        # convolution kernels: a one-line change a performance-minded PyTorch user can make.
        # The map is checked against the NCHW reference, so the speed is at the same accuracy.
        cl = lambda t: t.contiguous(memory_format=torch.channels_last)
        model_cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
        times, maps_cl, _ = time_stack(args, model_cl, cl(x), cl(baseline), target, (50,))
        for key, value in times.items():
            out[f"cl {key}"] = value
        out["cl IG 50 error"] = rel_l2(maps_cl[50], reference)
    return out


def rust_round(args) -> dict:
    cmd = [str(args.cxr_viewer), "bench", "--device", args.device, "--runs", str(args.runs),
           "--model", str(args.model), "--input", str(args.image),
           "--ig-reference-steps", str(args.reference_steps), *args.rust_args]
    if "--ig-batch" not in args.rust_args:
        cmd += ["--ig-batch", str(args.ig_batch)]
    if "--ig-baseline" not in args.rust_args:
        # The black baseline captum is given above (`bench`'s default too, said here so that the
        # comparison does not rest on a default).
        cmd += ["--ig-baseline", "black"]
    text = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    out = {"text": text}
    for line in text.splitlines():
        m = re.match(r"\| (.+?) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    if m := re.search(r"peak resident memory of this process: ([\d.]+) MiB", text):
        out["peak MiB"] = float(m.group(1))
    if m := re.search(r"IG completeness gap: \S+ \(([\d.]+) %", text):
        out["gap %"] = float(m.group(1))
    if m := re.search(r"reference: ([\d.]+)", text):
        out["error"] = float(m.group(1))
    return out


def pick(d: dict, prefix: str):
    return next((v for k, v in d.items() if k.startswith(prefix)), None)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=Path("weights/model.json"))
    ap.add_argument("--image", type=Path, default=Path("assets/samples/person45_bacteria_221.jpeg"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reference-steps", type=int, default=256)
    ap.add_argument("--bf16", action="store_true",
                    help="also time captum's IG under bf16 autocast and print its map error")
    ap.add_argument("--channels-last", action="store_true",
                    help="also time the PyTorch stack with NHWC (channels_last) tensors and model")
    ap.add_argument("--cxr-viewer", type=Path, default=Path("target/release/cxr-viewer"))
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                    help="where both stacks run (cuda: needs a --features cuda build of cxr-viewer)")
    ap.add_argument("--ig-batch", type=int, default=None,
                    help="IG path points per batch on both sides (default: 8 on cpu, 32 on cuda)")
    ap.add_argument("rust_args", nargs="*", help="extra `cxr-viewer bench` flags (after --)")
    args = ap.parse_args()
    if args.ig_batch is None:
        args.ig_batch = 32 if args.device == "cuda" else 8
    torch.set_num_threads(args.threads)
    model, cfg = build(args.model)
    model = model.to(args.device)
    x = preprocess(args.image, cfg).to(args.device)
    py_rounds, rs_rounds = [], []
    for _ in range(args.rounds):
        py_rounds.append(python_round(args, model, cfg, x))
        rs_rounds.append(rust_round(args))
    med = lambda rounds, key: statistics.median(r[key] for r in rounds) if all(
        r.get(key) is not None for r in rounds) else None
    rs_key = lambda prefix: next(k for k in rs_rounds[0] if k.startswith(prefix))
    where = torch.cuda.get_device_name(0) if args.device == "cuda" else f"{args.threads} threads"
    print(f"PyTorch {torch.__version__} + captum on {where}, IG batch {args.ig_batch}; cxr-viewer "
          f"{args.cxr_viewer}; model {cfg['name']}, film {args.image.name}, {args.runs} runs per "
          f"stage, {args.rounds} round(s)\n")
    print(rs_rounds[-1]["text"])
    def pytorch(prefix: str) -> list:
        """PyTorch's column: its plain runs (prefix "") or its channels_last runs ("cl ");
        a stage a configuration did not time stays empty."""
        m = lambda key: med(py_rounds, prefix + key)
        both = lambda a, b: a + b if a is not None and b is not None else None
        return [m("forward"), m("Grad-CAM"), both(m("forward"), m("Grad-CAM")),
                m("MC uncertainty (20 samples)"), m("IG 50"), m("IG 32"), m("full study")]

    rows = [
        ("forward", med(rs_rounds, "forward")),
        ("Grad-CAM", med(rs_rounds, "Grad-CAM")),
        ("prediction + Grad-CAM (after decode)", med(rs_rounds, "prediction + Grad-CAM after decode")),
        ("MC uncertainty (20 samples)", med(rs_rounds, rs_key("MC uncertainty"))),
        (f"IG: cxr-viewer `{rs_key('IG')}` vs captum 50 GL steps", med(rs_rounds, rs_key("IG"))),
        ("(captum 32 GL steps)", None),
        ("full study (cxr-viewer: `total`, decode included)", med(rs_rounds, "total")),
    ]
    columns = [pytorch("")] + ([pytorch("cl ")] if args.channels_last else [])
    print("| stage | cxr-viewer ms | PyTorch ms | ratio |"
          + (" PyTorch channels_last ms | ratio |" if args.channels_last else "")
          + "\n|---|---:|---:|---:|" + ("---:|---:|" if args.channels_last else ""))
    fmt = lambda v: "" if v is None else f"{v:.1f}"
    ratio = lambda a, b: f"{a / b:.2f}×" if a is not None and b else ""
    for i, (name, rs) in enumerate(rows):
        print(f"| {name} | {fmt(rs)} |" + "".join(f" {fmt(c[i])} | {ratio(rs, c[i])} |" for c in columns))
    if args.device == "cuda":
        print(f"| peak memory, MiB (cxr-viewer: host RSS; PyTorch: GPU allocation, not comparable) | "
              f"{med(rs_rounds, 'peak MiB'):.0f} | {med(py_rounds, 'peak MiB'):.0f} | |")
    else:
        print(f"| peak memory, MiB | {med(rs_rounds, 'peak MiB'):.0f} | {med(py_rounds, 'peak MiB'):.0f} | "
              f"{med(rs_rounds, 'peak MiB') / med(py_rounds, 'peak MiB'):.2f}× |")
    print(f"\nIG accuracy (relative L2 error of the map vs the stack's own {args.reference_steps}-node "
          f"Gauss–Legendre map; |gap| as % of |F(x) − F(x′)|), medians over rounds:")
    print(f"- cxr-viewer: error {med(rs_rounds, 'error'):.4f}, gap {med(rs_rounds, 'gap %'):.2f} %")
    for steps in (32, 50):
        print(f"- captum {steps} steps: error {med(py_rounds, f'IG {steps} error'):.4f}, "
              f"gap {med(py_rounds, f'IG {steps} gap %'):.2f} %")
    if args.channels_last:
        print(f"- captum 50 steps, channels_last: error {med(py_rounds, 'cl IG 50 error'):.4f} "
              f"against the NCHW reference")
    if args.bf16:
        for steps in (32, 50):
            print(f"- captum {steps} steps under bf16 autocast: {med(py_rounds, f'bf16 IG {steps}'):.1f} ms "
                  f"(fp32: {med(py_rounds, f'IG {steps}'):.1f} ms), error "
                  f"{med(py_rounds, f'bf16 IG {steps} error'):.4f} against the fp32 reference")
    per_round = ", ".join(f"{r['total'] / p['full study']:.2f}×" for r, p in zip(rs_rounds, py_rounds))
    print(f"\nfull study, cxr-viewer / PyTorch, each round: {per_round}")
    if args.channels_last:
        per_round = ", ".join(f"{r['total'] / p['cl full study']:.2f}×"
                              for r, p in zip(rs_rounds, py_rounds))
        print(f"full study, cxr-viewer / PyTorch channels_last, each round: {per_round}")


if __name__ == "__main__":
    main()
