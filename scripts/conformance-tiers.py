#!/usr/bin/env python3
"""Pass rate of the conformance summary over the ops of Tier 1 + Tier 2 (../shared/research/onnx-ops-by-importance.md),
direct and expanded tests, leaving out tests whose inputs or outputs are not tensors. Usage:
  python3 scripts/conformance-tiers.py [conformance-summary.json] [shared dir]"""
import json, re, sys
from collections import Counter

summary = sys.argv[1] if len(sys.argv) > 1 else 'conformance-summary.json'
shared = sys.argv[2] if len(sys.argv) > 2 else '../shared'
doc = open(f'{shared}/research/onnx-ops-by-importance.md').read()
tier = lambda t: re.findall(r'^\| `([^`]+)` \|', doc.split(f'### Tier {t}')[1].split('###')[0], re.M)
ops = set(tier(1) + tier(2))
lines = open(f'{shared}/onnx-conformance/ops.tsv').read().strip().split('\n')
cols = lines[0].split('\t')
rows = [dict(zip(cols, l.split('\t'))) for l in lines[1:]]
s = json.load(open(summary))
notpass = {f['test']: f['reason'] for k in ('failures', 'skips') for f in s[k]}
sel = [r for r in rows if r['primary_op'] in ops and not re.search(r'seq\(|opt\(', r['input_types'] + r['output_types'])]
passed = [r for r in sel if r['test'] not in notpass]
print(f"overall: {s['passed']} passed, {s['failed']} failed, {s['skipped']} skipped of {s['total']}")
print(f'tier 1+2 ({len(ops)} ops), tensor I/O: {len(passed)} of {len(sel)} pass = {100 * len(passed) / len(sel):.1f}%')
for reason, n in Counter(notpass[r['test']][:90] for r in sel if r['test'] in notpass).most_common():
    print(f'  {n} x {reason}')
