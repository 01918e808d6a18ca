#!/usr/bin/env python3
"""A trained model with realistic inputs, for kiln's INT8 / best accuracy rows (no hub downloads here).

Trains torchvision's ResNet-18 or ResNet-50 (--arch; 10 classes) on "shapes10": 64x64 (--size) RGB images of one of ten shapes
(circle, square, triangle, diamond, cross, ring, ellipse, star, L, two dots) at a random position,
size, rotation and colour over a smooth coloured background with pixel noise, generated on the GPU from a
seed (so the training set is unbounded and the held-out set is images the model never saw). Then:
  OUT/shapes_ARCH.onnx          the trained model, symbolic batch, input 'input' [N,3,SIZE,SIZE] (ImageNet-normalized)
  OUT/calib.npy                 64 calibration images (float32 NCHW, their own seed)
  OUT/holdout.npy               512 held-out images, OUT/holdout_labels.npy their classes (int64)
  OUT/train.json                steps, seconds, held-out top-1 accuracy of the PyTorch model (fp32)
bench/gpu.js --data OUT reads the .npy files (calibration, held-out accuracy against the labels).
Usage: python3 scripts/gpu/train_shapes.py --out DIR [--arch resnet18|resnet50] [--size 64] [--seconds 90] [--seed 7]
"""
import argparse
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

SIZE = 64
CLASSES = ["circle", "square", "triangle", "diamond", "cross", "ring", "ellipse", "star", "L", "two-dots"]
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def shapes(n, gen, device):
    """n images [n,3,SIZE,SIZE] (normalized) and their labels [n], from the generator `gen` (on device)."""
    r = lambda *s: torch.rand(*s, generator=gen, device=device)
    labels = torch.randint(0, len(CLASSES), (n,), generator=gen, device=device)
    lin = torch.linspace(-1, 1, SIZE, device=device)
    yy, xx = torch.meshgrid(lin, lin, indexing="ij")
    cx, cy = (r(n) - 0.5) * 0.8, (r(n) - 0.5) * 0.8
    rad = 0.3 + 0.35 * r(n)
    ang = r(n) * 2 * math.pi
    x = xx[None] - cx[:, None, None]
    y = yy[None] - cy[:, None, None]
    c, s = torch.cos(ang)[:, None, None], torch.sin(ang)[:, None, None]
    u = (x * c + y * s) / rad[:, None, None]
    v = (-x * s + y * c) / rad[:, None, None]
    rho2 = u * u + v * v
    theta = torch.atan2(v, u)
    masks = torch.stack([
        rho2 < 1,                                                              # circle
        torch.maximum(u.abs(), v.abs()) < 0.8,                                 # square
        (v < 0.7) & (v > -0.6) & (u.abs() < (0.7 - v) * 0.75),                 # triangle
        u.abs() + v.abs() < 1,                                                 # diamond
        ((u.abs() < 0.25) & (v.abs() < 0.9)) | ((v.abs() < 0.25) & (u.abs() < 0.9)),  # cross
        (rho2 > 0.45) & (rho2 < 1),                                            # ring
        u * u + (v / 0.45) ** 2 < 1,                                           # ellipse
        rho2.sqrt() < 0.55 + 0.35 * torch.cos(5 * theta),                      # star
        ((u > -0.9) & (u < -0.4) & (v.abs() < 0.9)) | ((v > 0.4) & (v < 0.9) & (u > -0.9) & (u < 0.9)),  # L
        ((u - 0.5) ** 2 + v * v < 0.16) | ((u + 0.5) ** 2 + v * v < 0.16),   # two dots
    ])  # [10, n, H, W]
    m = masks.permute(1, 0, 2, 3)[torch.arange(n, device=device), labels].float()[:, None]  # [n,1,H,W]
    # background: per channel a gradient and two low-frequency waves, in a random sub-range of [0, 1]
    bg = torch.zeros(n, 3, SIZE, SIZE, device=device)
    for _ in range(2):
        fx, fy, ph = (r(n, 3, 1, 1) * 3 + 0.5), (r(n, 3, 1, 1) * 3 + 0.5), r(n, 3, 1, 1) * 2 * math.pi
        bg = bg + torch.sin(math.pi * (fx * xx + fy * yy) + ph)
    bg = bg + (r(n, 3, 1, 1) - 0.5) * 2 * xx + (r(n, 3, 1, 1) - 0.5) * 2 * yy
    lo, hi = bg.amin(dim=(2, 3), keepdim=True), bg.amax(dim=(2, 3), keepdim=True)
    a, b = 0.1 + 0.3 * r(n, 3, 1, 1), 0.5 + 0.4 * r(n, 3, 1, 1)
    bg = a + (bg - lo) / (hi - lo + 1e-6) * (b - a)
    fg = r(n, 3, 1, 1)
    img = bg * (1 - m) + fg * m + 0.04 * (r(n, 3, SIZE, SIZE) - 0.5)
    img = img.clamp(0, 1)
    return (img - MEAN.to(device)) / STD.to(device), labels


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=float, default=90.0, help="training time budget")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--arch", choices=["resnet18", "resnet50"], default="resnet18")
    ap.add_argument("--size", type=int, default=64, help="image side in pixels")
    args = ap.parse_args()
    global SIZE
    SIZE = args.size
    os.makedirs(args.out, exist_ok=True)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(args.seed)
    model = getattr(torchvision.models, args.arch)(num_classes=len(CLASSES)).to(dev).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=5e-4)
    gen = torch.Generator(device=dev).manual_seed(args.seed)
    t0, step = time.time(), 0
    budget = args.seconds
    # one-cycle-ish: linear warm-up, then cosine decay over the time budget
    model.train()
    while time.time() - t0 < budget:
        frac = (time.time() - t0) / budget
        lr = 2e-3 * min(1.0, step / 100) * (0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        x, yl = shapes(args.batch, gen, dev)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=dev == "cuda"):
            loss = F.cross_entropy(model(x.contiguous(memory_format=torch.channels_last)), yl)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % 200 == 0:
            print(f"step {step} loss {loss.item():.4f} lr {lr:.2e} {time.time() - t0:.0f} s", flush=True)
    train_s = time.time() - t0
    model.eval().float()
    # calibration and held-out sets: their own seeds, never seen in training
    cal, _ = shapes(64, torch.Generator(device=dev).manual_seed(args.seed + 1000), dev)
    hold, hold_labels = shapes(512, torch.Generator(device=dev).manual_seed(args.seed + 2000), dev)
    with torch.no_grad():
        pred = torch.cat([model(hold[i:i + 128]).argmax(1) for i in range(0, 512, 128)])
    acc = (pred == hold_labels).float().mean().item()
    print(f"trained {step} steps in {train_s:.0f} s; held-out top-1 {acc:.4f} (PyTorch fp32)", flush=True)
    np.save(os.path.join(args.out, "calib.npy"), cal.cpu().numpy().astype(np.float32))
    np.save(os.path.join(args.out, "holdout.npy"), hold.cpu().numpy().astype(np.float32))
    np.save(os.path.join(args.out, "holdout_labels.npy"), hold_labels.cpu().numpy().astype(np.int64))
    path = os.path.join(args.out, f"shapes_{args.arch}.onnx")
    model_cpu = model.cpu()
    torch.onnx.export(model_cpu, (torch.zeros(1, 3, SIZE, SIZE),), path, input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, opset_version=17, dynamo=False)
    with open(os.path.join(args.out, "train.json"), "w") as f:
        json.dump({"model": f"shapes_{args.arch}", "size": SIZE, "classes": CLASSES, "steps": step, "train_s": round(train_s, 1),
                   "batch": args.batch, "holdout_top1_torch_fp32": acc, "holdout": 512, "calib": 64,
                   "torch": torch.__version__}, f)


if __name__ == "__main__":
    main()
