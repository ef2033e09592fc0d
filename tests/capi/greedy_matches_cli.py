#!/usr/bin/env python3
"""Greedy ids through the C API (capi_simple) equal `bitnet run --greedy`'s on one model."""
import json
import os
import subprocess
import sys
import tempfile

cli, simple, model, prompt, n = sys.argv[1:6]
with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "run.json")
    subprocess.run([cli, "run", "-m", model, "-p", prompt, "-n", n, "--greedy", "--json-out", out],
                   check=True, stdout=subprocess.DEVNULL)
    with open(out) as f:
        expected = json.load(f)["generated_ids"]
r = subprocess.run([simple, "-m", model, "-n", n, prompt], check=True, capture_output=True, text=True)
ids_line = [line for line in r.stderr.splitlines() if line.startswith("ids:")]
got = [int(t) for t in ids_line[0].split()[1:]] if ids_line else None
# bitnet run lists the end-of-generation token it stopped at; simple.c stops before printing it.
if got is None or not (expected == got or (expected[:-1] == got and len(expected) <= int(n))):
    print(f"C API greedy ids differ from bitnet run's on {model}:\n  cli: {expected}\n  C:   {got}")
    sys.exit(1)
print(f"{os.path.basename(model)}: {len(got)} greedy ids equal")
