#!/usr/bin/env python3
"""Make a real quantizer-written Q/DQ model for kiln's int8 tests (run on the GPU machine: onnxruntime
1.30, onnx 1.23, torch 2.11; no network).

A small CNN (plain torch, no torchvision: Conv-BN-ReLU stem, two residual blocks with a stride-2
downsample, global average pool, Linear) with random weights from a fixed seed is exported with
torch.onnx.export (TorchScript exporter, opset 17), then quantized by
onnxruntime.quantization.quantize_static in QDQ format with per-channel int8 weights and uint8
activations (onnxruntime's defaults), calibrated on seeded N(0, 1) images (MinMax). Written to <out>:
  cnn-fp32.onnx            the float model
  cnn-qdq.onnx             the Q/DQ model onnxruntime's quantizer wrote
  input-<i>.f32            raw little-endian float32 inputs [1,3,32,32] not used for calibration
  output-fp32-<i>.f32      onnxruntime's output [1,10] of the float model on input i
  output-qdq-<i>.f32       onnxruntime's output [1,10] of the Q/DQ model on input i
  summary.json             shapes, op-type counts, and the Q/DQ vs fp32 cosine per input
Usage: python3 scripts/gpu/quantize_models.py [--out models/int8] [--inputs 4]
"""
import argparse
import collections
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

SHAPE = (1, 3, 32, 32)


class Block(torch.nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = torch.nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = torch.nn.BatchNorm2d(cout)
        self.c2 = torch.nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = torch.nn.BatchNorm2d(cout)
        self.skip = None if stride == 1 and cin == cout else torch.nn.Sequential(torch.nn.Conv2d(cin, cout, 1, stride, bias=False), torch.nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.b1(self.c1(x)))
        y = self.b2(self.c2(y))
        return torch.relu(y + (x if self.skip is None else self.skip(x)))


class SmallCnn(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, 1, 1, bias=False), torch.nn.BatchNorm2d(16), torch.nn.ReLU())
        self.blocks = torch.nn.Sequential(Block(16, 16, 1), Block(16, 32, 2))
        self.fc = torch.nn.Linear(32, 10)

    def forward(self, x):
        y = self.blocks(self.stem(x))
        return self.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(y, 1), 1))


def images(n, seed):
    rs = np.random.RandomState(seed)
    return [rs.standard_normal(SHAPE).astype(np.float32) for _ in range(n)]


class Reader(CalibrationDataReader):
    def __init__(self, name, data):
        self.it = iter([{name: d} for d in data])

    def get_next(self):
        return next(self.it, None)


def make_model(path):
    torch.manual_seed(0)
    m = SmallCnn()
    # BatchNorm statistics from random data, affine parameters perturbed: no layer is an identity
    m.train()
    with torch.no_grad():
        for x in images(16, 1):
            m(torch.from_numpy(x))
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.weight.mul_(1 + 0.2 * torch.randn_like(mod.weight))
                mod.bias.add_(0.1 * torch.randn_like(mod.bias))
    m.eval()
    torch.onnx.export(m, (torch.from_numpy(images(1, 2)[0]),), path, input_names=["input"], output_names=["output"], opset_version=17, dynamo=False)


def run(path, x):
    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x})[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="models/int8")
    ap.add_argument("--inputs", type=int, default=4)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    fp32 = os.path.join(a.out, "cnn-fp32.onnx")
    qdq = os.path.join(a.out, "cnn-qdq.onnx")
    make_model(fp32)
    onnx.checker.check_model(fp32)
    quantize_static(fp32, qdq, Reader("input", images(64, 3)), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    onnx.checker.check_model(qdq)
    summary = {"input": list(SHAPE), "output": [1, 10], "ops": {}, "cosine": []}
    for name, p in (("fp32", fp32), ("qdq", qdq)):
        summary["ops"][name] = dict(collections.Counter(n.op_type for n in onnx.load(p).graph.node))
    for i, x in enumerate(images(a.inputs, 1000)):
        x.tofile(os.path.join(a.out, f"input-{i}.f32"))
        yf, yq = run(fp32, x), run(qdq, x)
        yf.astype(np.float32).tofile(os.path.join(a.out, f"output-fp32-{i}.f32"))
        yq.astype(np.float32).tofile(os.path.join(a.out, f"output-qdq-{i}.f32"))
        summary["cosine"].append(float(np.dot(yf.ravel(), yq.ravel()) / (np.linalg.norm(yf) * np.linalg.norm(yq))))
    with open(os.path.join(a.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
