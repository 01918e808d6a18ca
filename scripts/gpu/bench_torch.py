#!/usr/bin/env python3
"""The benchmark models, exported for kiln and timed in PyTorch on the same GPU, in one run.

For each model (random weights, fixed seed, no hub downloads) this exports an ONNX file with a
symbolic batch dim through the TorchScript exporter (opset 17) into --out, then times PyTorch on the
GPU for each precision (fp32, fp16) and batch (1, 32):
  torch-eager      model(x) under torch.inference_mode()
  torch-cudagraph  the same forward captured once in a CUDA graph and replayed
Times are CUDA-event milliseconds per forward (warm-up, then --iters runs; p50/p90/p99), inputs and
outputs on the device; peak device memory from torch.cuda.max_memory_allocated. One JSON object per
measurement is appended to --results (the bench/results/gpu.jsonl schema, see bench/README.md).

Models: resnet50, mobilenet_v2, googlenet (torchvision; [B,3,224,224]) and bert_base (transformers
BertModel with BertConfig() defaults, sequence 128: input_ids and attention_mask [B,128] int64).
"""
import argparse
import datetime
import json
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


def build(name):
    torch.manual_seed(1234)
    if name == "bert_base":
        model = Bert()
    else:
        import torchvision

        kw = {"aux_logits": False, "init_weights": True} if name == "googlenet" else {}
        model = getattr(torchvision.models, name)(weights=None, **kw)
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
    rows = []
    with torch.inference_mode():
        torch.cuda.reset_peak_memory_stats()
        eager = time_fn(lambda: m(*args), iters)
        peak = torch.cuda.max_memory_allocated() / 2**20
        rows.append(("torch-eager", eager, peak))
        try:
            rows.append(("torch-cudagraph", cudagraph(m, args, iters), torch.cuda.max_memory_allocated() / 2**20))
        except Exception as e:  # e.g. a model that copies from the host inside forward (transformers' masks)
            print(f"{name}: torch-cudagraph not measured: {str(e).splitlines()[0]}", flush=True)
            if name == "bert_base":
                # transformers builds its padding mask from a host scalar inside forward, which a CUDA graph
                # cannot capture: replay without the mask (all positions attended; the same GEMMs and
                # attention, minus one broadcast add) and say so in the runner's name
                try:
                    rows.append(("torch-cudagraph-nomask", cudagraph(m, args[:1], iters), torch.cuda.max_memory_allocated() / 2**20))
                except Exception as e2:
                    print(f"{name}: torch-cudagraph-nomask not measured: {str(e2).splitlines()[0]}", flush=True)
    m.float().cpu()
    return rows


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
                for runner, times, peak in bench(name, model, precision, batch, a.iters):
                    p50 = percentile(times, 50)
                    row = {"date": date, "gpu": gpu, "model": name, "runner": runner, "precision": precision, "batch": batch,
                           "p50_ms": round(p50, 4), "p90_ms": round(percentile(times, 90), 4), "p99_ms": round(percentile(times, 99), 4),
                           "throughput": round(batch * 1000 / p50, 1), "peak_mem_mb": round(peak, 1), "torch": torch.__version__}
                    with open(a.results, "a") as f:
                        f.write(json.dumps(row) + "\n")
                    print(f"{name:12s} {runner:16s} {precision} b{batch:<3d} p50 {p50:8.3f} ms", flush=True)


if __name__ == "__main__":
    main()
