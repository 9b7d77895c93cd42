"""Every number `pipe compare --json` prints, recomputed independently with scipy and statsmodels.

Usage: python benches/compare_vs_scipy.py PIPE TABLE [pipe compare options...]
e.g.   python benches/compare_vs_scipy.py target/debug/pipe results/results.parquet \
           --metric auc --baseline 'method=radius,mu2=0'

For each comparison pipe prints, the cell's and the baseline's rows are selected from the Parquet
table by the coordinates pipe reports (pyarrow), paired on the replicate column, and recomputed:
mean and sample std (numpy, ddof=1), the paired difference's mean, its Student-t 95% interval
(scipy.stats.t.ppf), the paired t-test (scipy.stats.ttest_rel), the Wilcoxon signed-rank test
where pipe gives one (scipy.stats.wilcoxon, exact or normal approximation as pipe says), and
Holm's adjustment over each family pipe names (statsmodels multipletests, method='holm').
Prints the largest absolute difference per quantity and whether every value agrees to the digits
pipe's table prints (4 decimals: |difference| < 5e-5); exits 1 if any does not.
Needs numpy, scipy, statsmodels, pyarrow (not needed by pipe or its tests).
"""

import json
import subprocess
import sys
from collections import defaultdict

import numpy as np
import pyarrow.parquet as pq
from scipy import stats
from statsmodels.stats.multitest import multipletests


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    pipe, table, opts = sys.argv[1], sys.argv[2], sys.argv[3:]
    out = subprocess.run([pipe, "compare", table, "--json", *opts], check=True, capture_output=True, text=True).stdout
    rows = json.loads(out)
    df = pq.read_table(table).to_pylist()

    def select(coords, metric, replicate):
        got = {}
        for r in df:
            if all(r.get(k) == v for k, v in coords.items()) and r.get(metric) is not None:
                got[r[replicate]] = float(r[metric])
        return got

    err = defaultdict(float)
    count = defaultdict(int)

    def check(name, mine, theirs):
        if mine is None and theirs is None:
            return
        if mine is None or theirs is None:
            err[name] = float("inf")
            print(f"MISSING {name}: pipe {mine} vs scipy {theirs}")
            return
        d = abs(mine - theirs)
        err[name] = max(err[name], d)
        count[name] += 1

    families = defaultdict(list)
    for i, c in enumerate(rows):
        metric, replicate = c["metric"], c["replicate"]
        a = select(c["cell"], metric, replicate)
        b = select(c["baseline"], metric, replicate)
        av, bv = np.array(list(a.values())), np.array(list(b.values()))
        check("mean", c["mean"], av.mean())
        check("std", c["std"], av.std(ddof=1) if len(av) > 1 else None)
        check("baseline mean", c["baseline_mean"], bv.mean())
        keys = sorted(set(a) & set(b))
        x, y = np.array([a[k] for k in keys]), np.array([b[k] for k in keys])
        d = x - y
        n = len(d)
        assert n == c["pairs"], f"pairs: pipe {c['pairs']} vs {n} ({c['cell']})"
        check("diff mean", c["diff_mean"], d.mean())
        if n >= 2:
            se = d.std(ddof=1) / np.sqrt(n)
            q = stats.t.ppf(0.5 + c["ci_level"] / 2, n - 1)
            check("CI low", c["ci_low"], d.mean() - q * se)
            check("CI high", c["ci_high"], d.mean() + q * se)
            check("p (t)", c["p_t"], stats.ttest_rel(x, y).pvalue)
        if c["p_wilcoxon"] is not None:
            method = "exact" if c["wilcoxon_method"] == "exact" else "approx"
            w = stats.wilcoxon(x, y, method=method)
            check("p (Wilcoxon)", c["p_wilcoxon"], w.pvalue)
        if c["p_holm"] is not None:
            families[c["holm_family"]].append(i)

    for fam, idx in families.items():
        ps = [rows[i]["p_t"] for i in idx]
        assert len(idx) == rows[idx[0]]["holm_family_size"], f"family {fam}: size"
        adj = multipletests(ps, method="holm")[1]
        for i, p in zip(idx, adj):
            check("p (Holm)", rows[i]["p_holm"], p)
            want = "better" if p < 0.05 and ((rows[i]["diff_mean"] > 0) != rows[i]["lower_is_better"]) else (
                "worse" if p < 0.05 else "no difference shown")
            if rows[i]["verdict"] != want:
                err["verdict"] = float("inf")
                print(f"VERDICT {rows[i]['cell']}: pipe {rows[i]['verdict']} vs {want}")

    ok = all(v < 5e-5 for v in err.values())
    print(f"{len(rows)} comparisons, {len(families)} Holm families; largest |pipe - scipy| per quantity:")
    for k in err:
        print(f"  {k:14} {err[k]:.1e} over {count[k]} values")
    print("every printed digit agrees" if ok else "DISAGREEMENT at the printed digits")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
