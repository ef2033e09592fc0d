#!/usr/bin/env python3
"""libllama.so exports exactly what llama.h, ggml.h and ggml-backend.h declare: every
declared function is implemented (a program never links against a missing symbol) and no
engine symbol leaks out."""
import re
import subprocess
import sys

library, include_dir = sys.argv[1:3]
declared = set()
for header in ("llama.h", "ggml.h", "ggml-backend.h"):
    with open(f"{include_dir}/{header}") as f:
        text = re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)
    # Declarations start with the export macro; the name is the identifier before '('.
    for decl in re.findall(r"(?:LLAMA_API|GGML_API)[^;{]*?;", text, flags=re.S):
        names = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(", decl)
        names = [n for n in names if n not in ("DEPRECATED", "GGML_ATTRIBUTE_FORMAT", "__attribute__", "deprecated", "format", "noreturn")]
        if names:
            declared.add(names[0])
nm = subprocess.run(["nm", "-D", "--defined-only", library], check=True, capture_output=True, text=True).stdout
exported = {line.split()[-1] for line in nm.splitlines() if line.split()[1:2] == ["T"]}
others = {line.split()[-1] for line in nm.splitlines() if line.split()[1:2] != ["T"]}
missing = sorted(declared - exported)
extra = sorted(exported - declared)
leaked = sorted(s for s in others if not s.startswith(("llama_", "ggml_")))
if missing or extra or leaked:
    print("declared but not exported:", missing)
    print("exported but not declared:", extra)
    print("other exported symbols:", leaked)
    sys.exit(1)
print(f"{len(declared)} functions declared, all exported, nothing else")
