"""Do test normals score like the held-out normals the thresholds were cut on? Per threshold node of a store.

Usage: python benches/score_shift.py STORE
e.g.   python benches/score_shift.py ~/.cache/pipe/all-classes-store

For every `fit_threshold` node in STORE (its node record names its outputs), reads its scores table
(split, label, score per image) and its threshold, and measures on that model's scores:
  - the test false-positive rate: the share of test NORMAL images (label 0) scoring above the
    threshold, and the share of held-out images above it (4.83% for the conformal cut on 600);
  - the shift: the probability that a test normal scores above a held-out normal (the
    Mann-Whitney U statistic over n_test x n_holdout; 0.5 when the two are exchangeable, its
    standard deviation sqrt((n1 + n2 + 1) / (12 n1 n2)), 0.015 for 1,000 vs 600), and the share of
    nodes whose two-sample Kolmogorov-Smirnov p is below 0.05 (about 0.05 without a shift).
Prints the mean per (dataset, mu2, method) and, for the baseline under the radius, per normal class.
Needs numpy, scipy, pyarrow (not needed by pipe or its tests).
"""

import collections
import glob
import json
import re
import sys

import numpy as np
import pyarrow.parquet as pq
from scipy import stats


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    store = sys.argv[1]

    def obj(h, ext):
        return f"{store}/objects/{h[:2]}/{h}.{ext}"

    rows = []
    for f in glob.glob(f"{store}/nodes/*.json"):
        d = json.load(open(f))
        if d["fingerprint"]["kind"] != "fit_threshold":
            continue
        o = d["outputs"]
        t = pq.read_table(obj(o["scores"]["hash"], "parquet"), columns=["split", "label", "score"]).to_pydict()
        th = pq.read_table(obj(o["threshold"]["hash"], "parquet")).to_pydict()["threshold"][0]
        split, label, score = np.array(t["split"]), np.array(t["label"]), np.array(t["score"])
        held = score[split == "holdout"]
        normal = score[(split == "test") & (label == 0)]
        shift = stats.mannwhitneyu(normal, held).statistic / (len(normal) * len(held))
        ks = stats.ks_2samp(normal, held).pvalue
        m = dict(re.findall(r"(\w+)=([\w.-]+)", d["node"]))
        rows.append((m["dataset"], int(m.get("normal_class", 0)), float(m.get("mu2", 0)), m["method"],
                     (normal > th).mean(), (held > th).mean(), shift, ks))

    groups = collections.defaultdict(list)
    for r in rows:
        groups[r[0], r[2], r[3]].append(r[4:])
    print(f"{'dataset':14} {'mu2':>4} {'method':12} {'nodes':>5} {'test FPR':>8} {'held-out':>8}  shift P(test > held-out) [min, max]  KS p < 0.05")
    for (ds, mu2, method), v in sorted(groups.items()):
        a = np.array(v)
        print(f"{ds:14} {mu2:4.1f} {method:12} {len(a):5} {a[:, 0].mean():8.4f} {a[:, 1].mean():8.4f}  "
              f"{a[:, 2].mean():.4f} [{a[:, 2].min():.3f}, {a[:, 2].max():.3f}]{'':14}{(a[:, 3] < 0.05).mean():.2f}")
    classes = collections.defaultdict(list)
    for r in rows:
        if r[2] == 0 and r[3] == "radius":
            classes[r[0], r[1]].append(r[4:])
    print("\nbaseline, radius threshold, per normal class (mean over seeds): test FPR, shift")
    for (ds, c), v in sorted(classes.items()):
        a = np.array(v)
        print(f"{ds:14} class {c}: {a[:, 0].mean():.4f}  {a[:, 2].mean():.4f}  ({len(a)} seeds)")


if __name__ == "__main__":
    main()
