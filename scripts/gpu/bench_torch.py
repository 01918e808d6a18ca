#!/usr/bin/env python3
"""The benchmark models, exported for kiln and timed in PyTorch on the same GPU, in one run.

For each model (random weights, fixed seed, no hub downloads) this exports an ONNX file with a
symbolic batch dim through the TorchScript exporter (opset 17) into --out, then times PyTorch on the
GPU for each precision (fp32, fp16) and batch (1, 32):
  torch-eager      model(x) under torch.inference_mode()
  torch-cudagraph  the same forward captured once in a CUDA graph and replayed
The CNNs' random weights are made usable for accuracy comparisons first (recalibrate()): every
BatchNorm's running statistics are re-estimated on smooth synthetic images (train-mode passes, a
cumulative average), so each layer's activations are normalized as a trained network's are (with the
default statistics GoogLeNet's output is the classifier bias and MobileNetV2's logits are ~1e-8), and
the last Linear is scaled so the logits' std is about 3; a line per model prints the logits' std/mean.
BERT: when transformers' mask building cannot be captured (it copies a host scalar to the device inside
forward), torch-cudagraph replays the embeddings + encoder with the additive padding mask precomputed
outside the graph (row "note" says so); failing that, torch-cudagraph-nomask replays the model called
with attention_mask=None (no padding mask). A variant that cannot be captured prints "not measured".
Times are CUDA-event milliseconds per forward (warm-up, then --iters runs; p50/p90/p99), inputs and
outputs on the device; peak device memory from torch.cuda.max_memory_allocated. One JSON object per
measurement is appended to --results (the bench/results/gpu.jsonl schema, see bench/README.md).

Models: resnet50, mobilenet_v2, googlenet (torchvision; [B,3,224,224]) and bert_base (transformers
BertModel with BertConfig() defaults, sequence 128: input_ids and attention_mask [B,128] int64).
"""
import argparse
import datetime
import json
import math
import os
import time

import torch

SEQ = 128


class Bert(torch.nn.Module):
    """BertModel with positional (input_ids, attention_mask) and the last hidden state as the output."""

    def __init__(self):
        super().__init__()
        from transformers import BertConfig, BertModel

        cfg = BertConfig()
        cfg._attn_implementation = "eager"
        self.bert = BertModel(cfg)

    def forward(self, input_ids, attention_mask):
        return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    @staticmethod
    def extended_mask(attention_mask, dtype):
        """The additive padding mask BertModel builds from a [B,S] 0/1 mask: [B,1,1,S], 0 where attended and
        dtype's minimum where padded (transformers' get_extended_attention_mask / eager mask)."""
        return (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min

    def encode(self, input_ids, extended_mask):
        """BertModel.forward without its mask building (done once, outside, by extended_mask) and its pooler
        (not in the exported output): embeddings, then the encoder with a prepared additive mask; the last
        hidden state, as forward returns it."""
        hidden = self.bert.embeddings(input_ids=input_ids)
        return self.bert.encoder(hidden, attention_mask=extended_mask)[0]


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def smooth_images(n, g, size=224):
    """n smooth [3,size,size] images, ImageNet-normalized: per channel a random gradient plus three
    low-frequency sinusoids (at most 3 cycles across the image), rescaled into a random sub-range of [0,1]."""
    t = torch.linspace(0.0, 1.0, size)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    u = torch.rand(n, 3, 16, 1, 1, generator=g)
    img = (u[:, :, 0] - 0.5) * 2 * xx + (u[:, :, 1] - 0.5) * 2 * yy
    for k in range(3):
        amp, fx, fy, phase = u[:, :, 2 + 4 * k], u[:, :, 3 + 4 * k] * 3, u[:, :, 4 + 4 * k] * 3, u[:, :, 5 + 4 * k]
        img = img + amp * torch.sin(2 * math.pi * (fx * xx + fy * yy + phase))
    lo, hi = img.amin(dim=(2, 3), keepdim=True), img.amax(dim=(2, 3), keepdim=True)
    img = (img - lo) / (hi - lo + 1e-6)
    img = u[:, :, 14] * 0.3 + img * (0.7 + u[:, :, 15] * 0.3 - u[:, :, 14] * 0.3)  # into [a, b], a <= 0.3, b >= 0.7
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (img - mean) / std


def recalibrate(name, model, batches=4, batch=16, logit_std=3.0):
    """Random-weight CNN -> normalized activations: re-estimate every BatchNorm's running mean/var on smooth
    synthetic images (train-mode forwards under no_grad, cumulative average: momentum=None), then scale the
    last Linear's weight so the logits' std over those images is logit_std. Deterministic (fixed seeds,
    cuDNN's deterministic algorithms); runs on the GPU when there is one; returns the model on the CPU, eval."""
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    g = torch.Generator().manual_seed(4321)
    images = [smooth_images(batch, g) for _ in range(batches)]
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    saved = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    try:
        model.to(dev)
        momenta = [bn.momentum for bn in bns]
        for bn in bns:
            bn.momentum = None
            bn.reset_running_stats()
        model.train()
        with torch.no_grad():
            for x in images:
                model(x.to(dev))
        for bn, mom in zip(bns, momenta):
            bn.momentum = mom
        model.eval()

        def logits():
            with torch.no_grad():
                return torch.cat([model(x.to(dev)).float() for x in images])

        before = logits()
        fc = linears[-1]  # the classifier: resnet50 fc, mobilenet_v2 classifier[1], googlenet fc
        with torch.no_grad():
            raw = before - fc.bias.float() if fc.bias is not None else before
            fc.weight.mul_(logit_std / max(raw.std().item(), 1e-30))
        out = logits()
        print(f"recalibrated {name}: {len(bns)} BatchNorms on {batches}x{batch} synthetic images; logits std "
              f"{out.std().item():.3f} mean {out.mean().item():.4f} (before the {fc.out_features}-way Linear's scaling: "
              f"std {before.std().item():.3g}); {len(set(out.argmax(1).tolist()))} distinct top-1 classes over "
              f"{out.shape[0]} images", flush=True)
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved
        model.cpu()
    return model.eval()


def build(name):
    torch.manual_seed(1234)
    if name == "bert_base":
        model = Bert()
    else:
        import torchvision

        kw = {"aux_logits": False, "init_weights": True} if name == "googlenet" else {}
        model = getattr(torchvision.models, name)(weights=None, **kw)
        model = recalibrate(name, model)
    return model.eval()


def inputs(name, batch, device, dtype=torch.float32):
    g = torch.Generator().manual_seed(7)
    if name == "bert_base":
        ids = torch.randint(0, 30522, (batch, SEQ), generator=g)
        mask = torch.ones(batch, SEQ, dtype=torch.int64)
        mask[:, SEQ - 8 :] = 0
        return (ids.to(device), mask.to(device))
    return (torch.randn(batch, 3, 224, 224, generator=g).to(device=device, dtype=dtype),)


def export(name, model, out):
    path = os.path.join(out, f"{name}.onnx")
    args = inputs(name, 1, "cpu")
    names = ["input_ids", "attention_mask"] if name == "bert_base" else ["input"]
    dyn = {n: {0: "batch"} for n in names}
    torch.onnx.export(model, args, path, input_names=names, output_names=["output"] if name != "bert_base" else None,
                      dynamic_axes=dyn, opset_version=17, dynamo=False)
    return path


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def time_fn(fn, iters, warmup=10):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(iters):
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return times


def bench(name, model, precision, batch, iters):
    dev = "cuda"
    m = model.to(dev)
    if precision == "fp16":
        m = m.half()
    args = inputs(name, batch, dev, torch.float16 if precision == "fp16" else torch.float32)
    rows = []  # (runner, times, peak MiB, note or None)
    with torch.inference_mode():
        torch.cuda.reset_peak_memory_stats()
        eager = time_fn(lambda: m(*args), iters)
        peak = torch.cuda.max_memory_allocated() / 2**20
        rows.append(("torch-eager", eager, peak, None))
        try:
            note = "full forward captured (mask building inside the graph)" if name == "bert_base" else None
            rows.append(("torch-cudagraph", cudagraph(m, args, iters), torch.cuda.max_memory_allocated() / 2**20, note))
        except Exception as e:  # e.g. a model that copies from the host inside forward (transformers' masks)
            print(f"{name}: torch-cudagraph not measured (full forward): {first_line(e)}", flush=True)
            if name == "bert_base":
                rows += bert_cudagraph(name, m, args, iters)
    m.float().cpu()
    return rows


def first_line(e):
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0] if lines else ''}"


def bert_cudagraph(name, m, args, iters):
    """transformers builds its padding mask inside forward from a host scalar (torch.tensor(0.0, device=...)),
    which capture refuses. Variants, the first that captures is recorded:
      torch-cudagraph          embeddings + encoder captured, the additive [B,1,1,S] padding mask computed once
                               before capture (what BertModel.forward computes, minus the mask building
                               (one small elementwise op) and the pooler, which the exported output omits)
      torch-cudagraph-nomask   the model called with attention_mask=None: every position attended (the same
                               GEMMs and attention; with new transformers no mask at all, with old ones an
                               all-ones mask built on the device)"""
    ids, mask = args
    dtype = next(m.parameters()).dtype
    variants = [
        ("torch-cudagraph", "embeddings+encoder captured; padding mask precomputed outside the graph (additive [B,1,1,S]); pooler not run",
         lambda: cudagraph(m.encode, (ids, Bert.extended_mask(mask, dtype)), iters)),
        ("torch-cudagraph-nomask", "model(input_ids, attention_mask=None): no padding mask, all positions attended",
         lambda: cudagraph(lambda i: m(i, None), (ids,), iters)),
    ]
    for runner, note, run in variants:
        try:
            times = run()
        except Exception as e:
            print(f"{name}: {runner} not measured ({note}): {first_line(e)}", flush=True)
            continue
        print(f"{name}: {runner} measured: {note}", flush=True)
        return [(runner, times, torch.cuda.max_memory_allocated() / 2**20, note)]
    return []


def cudagraph(m, args, iters):
    with torch.inference_mode():
        static = [a.clone() for a in args]
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                m(*static)
        torch.cuda.current_stream().wait_stream(s)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            m(*static)
        return time_fn(graph.replay, iters)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder for the exported .onnx files")
    ap.add_argument("--results", required=True, help="JSON-lines file the measurements are appended to")
    ap.add_argument("--models", default="resnet50,mobilenet_v2,googlenet,bert_base")
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--no-time", action="store_true", help="export only")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    gpu = torch.cuda.get_device_name(0)
    date = datetime.datetime.now(datetime.timezone.utc).isoformat()
    torch.backends.cudnn.benchmark = True
    for name in a.models.split(","):
        t0 = time.time()
        try:
            model = build(name)
            path = export(name, model, a.out)
        except Exception as e:
            print(f"{name}: export failed: {e}", flush=True)
            continue
        print(f"exported {name} -> {path} ({os.path.getsize(path) / 2**20:.1f} MiB, {time.time() - t0:.1f} s)", flush=True)
        if a.no_time:
            continue
        for precision in ("fp32", "fp16"):
            for batch in (1, 32):
                for runner, times, peak, note in bench(name, model, precision, batch, a.iters):
                    p50 = percentile(times, 50)
                    row = {"date": date, "gpu": gpu, "model": name, "runner": runner, "precision": precision, "batch": batch,
                           "p50_ms": round(p50, 4), "p90_ms": round(percentile(times, 90), 4), "p99_ms": round(percentile(times, 99), 4),
                           "throughput": round(batch * 1000 / p50, 1), "peak_mem_mb": round(peak, 1), "torch": torch.__version__}
                    if note:
                        row["note"] = note
                    with open(a.results, "a") as f:
                        f.write(json.dumps(row) + "\n")
                    print(f"{name:12s} {runner:22s} {precision} b{batch:<3d} p50 {p50:8.3f} ms", flush=True)


if __name__ == "__main__":
    main()
