#!/usr/bin/env python3
"""Builds data/bundled/{mnist,fashion-mnist}: the first 6,000 train and 2,000 test images of the
official releases as gzipped IDX (mtime 0, so the bytes are reproducible) with SHA256SUMS of the
decompressed files. Usage: scripts/make_bundled_data.py ../shared/data"""
import gzip, hashlib, os, struct, sys

src = sys.argv[1] if len(sys.argv) > 1 else "../shared/data"
out = os.path.join(os.path.dirname(__file__), "..", "data", "bundled")
for ds in ["mnist", "fashion-mnist"]:
    os.makedirs(os.path.join(out, ds), exist_ok=True)
    sums = []
    for split, n in [("train", 6000), ("t10k", 2000)]:
        img = gzip.open(f"{src}/{ds}/{split}-images-idx3-ubyte.gz").read()
        lab = gzip.open(f"{src}/{ds}/{split}-labels-idx1-ubyte.gz").read()
        rows, cols = struct.unpack(">II", img[8:16])
        img2 = struct.pack(">IIII", 0x803, n, rows, cols) + img[16:16 + n * rows * cols]
        lab2 = struct.pack(">II", 0x801, n) + lab[8:8 + n]
        for name, data in [(f"{split}-images-idx3-ubyte", img2), (f"{split}-labels-idx1-ubyte", lab2)]:
            with open(os.path.join(out, ds, name + ".gz"), "wb") as f:
                f.write(gzip.compress(data, mtime=0))
            sums.append(f"{hashlib.sha256(data).hexdigest()}  {name}")
    with open(os.path.join(out, ds, "SHA256SUMS"), "w") as f:
        f.write("\n".join(sums) + "\n")
