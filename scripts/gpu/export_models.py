#!/usr/bin/env python3
"""Export kiln's real-model test set with PyTorch's own ONNX exporters.

Each model is built with random weights from a fixed seed (no hub downloads) and exported through
both of PyTorch's exporters:
  ts      torch.onnx.export(..., dynamo=False)  TorchScript tracing, opset 17 by default
  dynamo  torch.onnx.export(..., dynamo=True)   torch.export + onnxscript, opset 18 by default
Weights are always stored inline (one self-contained .onnx per export). Every file is checked with
onnx.checker and run with onnxruntime (CPU) against PyTorch's own output on the example inputs and on
a second set of inputs; the results, the op types of each graph and the exporter/opset/inputs go to
<out>/summary.json. A failed export is recorded there and does not stop the others (exit status 1
at the end if any failed).

Models (input shapes fixed, batch 1):
  mobilenet_v2  torchvision mobilenet_v2(width_mult=0.5, num_classes=10); input [1,3,64,64] float32
  resnet-tiny   a ResNet built from torchvision's BasicBlock, widths 16-32-64-128, one block per stage
  bert-tiny     transformers BertModel (2 layers, hidden 64, 2 heads, vocab 1000, eager attention);
                input_ids and attention_mask [1,16] int64; pure-torch BERT-style encoder if
                transformers is missing or fails
  gpt-tiny      a pure-torch GPT-style decoder (pre-LayerNorm, causal + padding mask, GELU MLP, tied LM
                head); input_ids and attention_mask [1,16] int64

BatchNorm statistics are calibrated on random data (train mode, cumulative average) and every
normalization's affine parameters are perturbed, so no layer is an identity.
"""
import argparse
import collections
import json
import math
import os
import sys
import time
import traceback

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MODELS = ["mobilenet_v2", "resnet-tiny", "bert-tiny", "gpt-tiny"]
EXPORTERS = ["ts", "dynamo"]
SEQ = 16
VOCAB = 1000


def log(*a):
    print(*a, flush=True)


# ----------------------------------------------------------------------------------------------- models


def perturb_norms(model, gen):
    """Gives every BatchNorm/LayerNorm non-trivial affine parameters."""
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)) and m.weight is not None:
            with torch.no_grad():
                m.weight.copy_(1.0 + 0.2 * (torch.rand(m.weight.shape, generator=gen) - 0.5))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))


def calibrate_bn(model, shape, gen, steps=4):
    """Fills BatchNorm running statistics from random inputs (cumulative average), then eval()."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        for _ in range(steps):
            model(torch.randn((8,) + tuple(shape[1:]), generator=gen))
    model.eval()


class TinyResNet(nn.Module):
    """ResNet-18-style network at small width, from torchvision's BasicBlock."""

    def __init__(self, widths=(16, 32, 64, 128), num_classes=10):
        super().__init__()
        from torchvision.models.resnet import BasicBlock

        self.stem = nn.Sequential(
            nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1))
        blocks, cin = [], widths[0]
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            down = None
            if stride != 1 or cin != w:
                down = nn.Sequential(nn.Conv2d(cin, w, 1, stride, bias=False), nn.BatchNorm2d(w))
            blocks.append(BasicBlock(cin, w, stride, down))
            cin = w
        self.layers = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(self.pool(x), 1))


class TorchBlock(nn.Module):
    """One transformer layer: multi-head attention with an additive mask, GELU MLP, LayerNorms."""

    def __init__(self, d, heads, ff, pre_norm):
        super().__init__()
        self.h, self.pre = heads, pre_norm
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln1, self.ln2 = nn.LayerNorm(d, eps=1e-5), nn.LayerNorm(d, eps=1e-5)
        self.fc1, self.fc2 = nn.Linear(d, ff), nn.Linear(ff, d)

    def attn(self, x, bias):
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)
        q, k, v = (z.reshape(b, t, self.h, d // self.h).transpose(1, 2) for z in (q, k, v))
        s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d // self.h) + bias
        o = torch.matmul(torch.softmax(s, dim=-1), v)
        return self.proj(o.transpose(1, 2).reshape(b, t, d))

    def mlp(self, x):
        return self.fc2(F.gelu(self.fc1(x)))

    def forward(self, x, bias):
        if self.pre:
            x = x + self.attn(self.ln1(x), bias)
            return x + self.mlp(self.ln2(x))
        x = self.ln1(x + self.attn(x, bias))
        return self.ln2(x + self.mlp(x))


class TorchTransformer(nn.Module):
    """Pure-torch BERT-style encoder (causal=False, post-LN, tanh pooler) or GPT-style decoder
    (causal=True, pre-LN, final LN, LM head tied to the token embedding)."""

    def __init__(self, causal, vocab=VOCAB, d=64, layers=2, heads=2, ff=128, max_pos=64):
        super().__init__()
        self.causal = causal
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(max_pos, d)
        self.emb_ln = None if causal else nn.LayerNorm(d, eps=1e-5)
        self.blocks = nn.ModuleList(TorchBlock(d, heads, ff, pre_norm=causal) for _ in range(layers))
        self.final_ln = nn.LayerNorm(d, eps=1e-5) if causal else None
        self.pooler = None if causal else nn.Linear(d, d)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.05)
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.bias, std=0.02)

    def forward(self, input_ids, attention_mask):
        t = input_ids.shape[1]
        pos = torch.arange(t, device=input_ids.device).unsqueeze(0)
        x = self.tok(input_ids) + self.pos(pos)
        if self.emb_ln is not None:
            x = self.emb_ln(x)
        keep = attention_mask[:, None, None, :].to(torch.bool)
        if self.causal:
            causal = torch.ones(t, t, dtype=torch.bool, device=input_ids.device).tril()
            keep = keep & causal[None, None]
        bias = torch.zeros(keep.shape, dtype=x.dtype).masked_fill(~keep, -1e4)
        for blk in self.blocks:
            x = blk(x, bias)
        if self.causal:
            x = self.final_ln(x)
            return (torch.matmul(x, self.tok.weight.t()),)
        return x, torch.tanh(self.pooler(x[:, 0]))


class HFBert(nn.Module):
    """transformers' BertModel with positional (input_ids, attention_mask) and tuple outputs."""

    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids, attention_mask):
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask, return_dict=True)
        return out.last_hidden_state, out.pooler_output


def make_hf_bert():
    import transformers
    from transformers import BertConfig, BertModel

    cfg = BertConfig(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=128, max_position_embeddings=64, type_vocab_size=2,
                     hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    try:
        cfg._attn_implementation = "eager"
    except Exception:
        pass
    try:
        bert = BertModel(cfg, add_pooling_layer=True, attn_implementation="eager")
    except TypeError:
        bert = BertModel(cfg, add_pooling_layer=True)
    return HFBert(bert), f"transformers {transformers.__version__} BertModel(eager attention)"


def token_inputs(gen, pad):
    ids = torch.randint(0, VOCAB, (1, SEQ), generator=gen, dtype=torch.int64)
    mask = torch.ones(1, SEQ, dtype=torch.int64)
    if pad:
        mask[:, SEQ - pad:] = 0
    return ids, mask


def build(name, seed):
    """Returns (module in eval mode, example inputs, second inputs, input names, output names, source)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    if name in ("mobilenet_v2", "resnet-tiny"):
        if name == "mobilenet_v2":
            import torchvision

            m = torchvision.models.mobilenet_v2(weights=None, width_mult=0.5, num_classes=10)
            src = f"torchvision {torchvision.__version__} mobilenet_v2(width_mult=0.5, num_classes=10)"
        else:
            m = TinyResNet()
            src = "torchvision BasicBlock ResNet, widths 16-32-64-128, blocks 1-1-1-1, 10 classes"
        shape = (1, 3, 64, 64)
        calibrate_bn(m, shape, gen)
        perturb_norms(m, gen)
        x1 = torch.randn(shape, generator=gen)
        x2 = torch.randn(shape, generator=gen)
        return m.eval(), (x1,), (x2,), ["input"], ["logits"], src
    if name == "bert-tiny":
        try:
            m, src = make_hf_bert()
        except Exception as e:  # noqa: BLE001 - any failure falls back to the pure-torch encoder
            log(f"[bert-tiny] transformers BertModel unavailable ({type(e).__name__}: {e}); using the pure-torch encoder")
            m, src = TorchTransformer(causal=False), "pure-torch BERT-style encoder (post-LN, tanh pooler)"
        perturb_norms(m, gen)
        outs = ["last_hidden_state", "pooler_output"]
    elif name == "gpt-tiny":
        m, src = TorchTransformer(causal=True), "pure-torch GPT-style decoder (pre-LN, causal, tied LM head)"
        perturb_norms(m, gen)
        outs = ["logits"]
    else:
        raise ValueError(f"unknown model {name}")
    return m.eval(), token_inputs(gen, pad=4), token_inputs(gen, pad=7), ["input_ids", "attention_mask"], outs, src


# --------------------------------------------------------------------------------------------- export


def export_ts(m, args, path, inames, onames, opset):
    torch.onnx.export(m, args, path, dynamo=False, opset_version=opset, input_names=inames,
                      output_names=onames, do_constant_folding=True)


def export_dynamo(m, args, path, inames, onames, opset):
    kw = dict(dynamo=True, opset_version=opset, input_names=inames, output_names=onames)
    try:
        prog = torch.onnx.export(m, args, None, external_data=False, optimize=True, **kw)
    except TypeError as e:  # an exporter without these keywords
        log(f"  dynamo export without external_data/optimize keywords ({e})")
        prog = torch.onnx.export(m, args, None, **kw)
    try:
        prog.save(path, external_data=False)
    except TypeError:
        prog.save(path)


def inline_weights(path):
    """Rewrites the file with every initializer inline and removes external data files."""
    import onnx

    model = onnx.load(path, load_external_data=True)
    locs = {e.value for t in model.graph.initializer for e in t.external_data if e.key == "location"}
    for t in model.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            t.data_location = onnx.TensorProto.DEFAULT
            del t.external_data[:]
    onnx.save_model(model, path, save_as_external_data=False)
    for loc in locs:
        f = os.path.join(os.path.dirname(path), loc)
        if os.path.exists(f):
            os.remove(f)
    return model


def count_ops(graph, counts):
    import onnx

    for n in graph.node:
        key = n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}:{n.op_type}"
        counts[key] += 1
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                count_ops(a.g, counts)
            for g in a.graphs:
                count_ops(g, counts)


def value_info(v):
    t = v.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]
    import onnx

    return {"name": v.name, "dtype": onnx.TensorProto.DataType.Name(t.elem_type).lower(), "shape": dims}


def check(path, m, input_sets, inames):
    """onnx.checker + onnxruntime (CPU) against PyTorch on each input set."""
    import onnx
    import onnxruntime as ort

    onnx.checker.check_model(path, full_check=True)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    results = []
    for args in input_sets:
        with torch.no_grad():
            ref = m(*args)
        ref = [ref] if torch.is_tensor(ref) else list(ref)
        got = sess.run(None, {n: a.numpy() for n, a in zip(inames, args)})
        outs = []
        for r, g in zip(ref, got):
            r = r.detach().numpy().astype(np.float64)
            g = np.asarray(g, dtype=np.float64)
            rel = float(np.linalg.norm(g - r) / max(np.linalg.norm(r), 1e-30)) if r.shape == g.shape else None
            outs.append({"shape": list(g.shape), "rel_l2": rel, "max_abs": float(np.max(np.abs(g - r))) if rel is not None else None})
        results.append(outs)
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.environ.get("OUT", "out"), help="output folder (default: $OUT, else ./out)")
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {','.join(MODELS)}")
    ap.add_argument("--exporters", default=",".join(EXPORTERS), help="comma-separated subset of ts,dynamo")
    ap.add_argument("--seed", type=int, default=1234, help="seed for weights and inputs (default 1234)")
    ap.add_argument("--ts-opset", type=int, default=17, help="opset for the TorchScript exporter (default 17)")
    ap.add_argument("--dynamo-opset", type=int, default=18, help="opset for the dynamo exporter (default 18)")
    ap.add_argument("--max-mb", type=float, default=20.0, help="fail if all files together exceed this (default 20)")
    a = ap.parse_args(argv)

    import onnx

    os.makedirs(a.out, exist_ok=True)
    torch.set_grad_enabled(False)
    env = {"torch": torch.__version__, "onnx": onnx.__version__, "python": sys.version.split()[0]}
    for mod in ("onnxruntime", "onnxscript", "torchvision", "transformers"):
        try:
            env[mod] = __import__(mod).__version__
        except Exception as e:  # noqa: BLE001
            env[mod] = f"missing ({type(e).__name__})"
    log("environment:", json.dumps(env))
    summary = {"seed": a.seed, "environment": env, "files": [], "failures": []}
    total = 0
    for name in a.models.split(","):
        for exp in a.exporters.split(","):
            fname = f"{name}-{exp}.onnx"
            path = os.path.join(a.out, fname)
            opset = a.ts_opset if exp == "ts" else a.dynamo_opset
            t0 = time.time()
            try:
                m, args, args2, inames, onames, src = build(name, a.seed)
                (export_ts if exp == "ts" else export_dynamo)(m, args, path, inames, onames, opset)
                model = inline_weights(path)
                counts = collections.Counter()
                count_ops(model.graph, counts)
                checks = check(path, m, [args, args2], inames)
                size = os.path.getsize(path)
                total += size
                rec = {
                    "file": fname, "model": name, "source": src,
                    "exporter": "torch.onnx.export(dynamo=False) TorchScript" if exp == "ts" else "torch.onnx.export(dynamo=True)",
                    "opset_requested": opset,
                    "opset_imports": {(o.domain or "ai.onnx"): o.version for o in model.opset_import},
                    "ir_version": model.ir_version, "producer": f"{model.producer_name} {model.producer_version}",
                    "inputs": [value_info(v) for v in model.graph.input],
                    "outputs": [value_info(v) for v in model.graph.output],
                    "initializers": len(model.graph.initializer), "functions": len(model.functions),
                    "nodes": sum(counts.values()), "op_types": dict(sorted(counts.items())),
                    "bytes": size, "ort_vs_torch": checks, "seconds": round(time.time() - t0, 1),
                }
                summary["files"].append(rec)
                worst = max((o["rel_l2"] or 0.0) for c in checks for o in c)
                log(f"[ok] {fname}: {size / 1e6:.2f} MB, opset {rec['opset_imports']}, {rec['nodes']} nodes, "
                    f"ort vs torch rel L2 <= {worst:.2e}; ops {rec['op_types']}")
            except Exception as e:  # noqa: BLE001 - record and go on with the other exports
                tb = traceback.format_exc()
                log(f"[FAILED] {fname}: {type(e).__name__}: {e}\n{tb}")
                summary["failures"].append({"file": fname, "error": f"{type(e).__name__}: {e}", "traceback": tb[-4000:]})
                if os.path.exists(path):
                    os.remove(path)
    summary["total_bytes"] = total
    with open(os.path.join(a.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    log(f"{len(summary['files'])} exported, {len(summary['failures'])} failed, {total / 1e6:.2f} MB in all")
    if total > a.max_mb * 1e6:
        log(f"total size {total / 1e6:.2f} MB exceeds --max-mb {a.max_mb}")
        return 1
    return 1 if summary["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
