#!/usr/bin/env python3
"""The hub's record linkage against splink on the same synthetic exports: pairwise
precision, recall and F1 of the clusters each produces (every pair of records put in one
person, against the truth file), wall time and peak memory, side by side. Exits non-zero
when the hub's F1 is below splink's.

Both link at the same match probability (--link-threshold, default 0.9), both estimate
their model from the data alone (u from random pairs, m by EM in one session on the birth
date and one on surname+name unordered), both block on the same keys. Neither sees the
truth. Records that either side could not read are left out of both scores.

    compare.py --sigess target/release/sigess --splink-python venv/bin/python --persons 2000
"""
import argparse
import collections
import csv
import itertools
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MEASURE = ("import resource, subprocess, sys\n"
           "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
           "print('maxrss_kib', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
           "sys.exit(r.returncode)")


def run_measured(cmd):
    """Runs cmd; returns (seconds, peak RSS in MiB)."""
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", MEASURE, *cmd], stderr=subprocess.PIPE, text=True)
    secs = time.perf_counter() - t0
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        raise SystemExit(f"{cmd[0]} failed with exit code {r.returncode}")
    kib = next(int(l.split()[1]) for l in r.stderr.splitlines() if l.startswith("maxrss_kib"))
    return secs, kib / 1024


def read_clusters(path):
    with open(path, encoding="utf-8") as f:
        return {(r["ufficio_origine"], r["id_persona"]): r["cluster"] for r in csv.DictReader(f, delimiter=";")}


def pairs(assign, keys):
    groups = collections.defaultdict(list)
    for k in keys:
        groups[assign[k]].append(k)
    out = set()
    for members in groups.values():
        out.update(itertools.combinations(sorted(members), 2))
    return out


def scores(pred, truth):
    tp = len(pred & truth)
    p = tp / len(pred) if pred else 0.0
    r = tp / len(truth) if truth else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sigess", required=True)
    ap.add_argument("--splink-python", required=True)
    ap.add_argument("--persons", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--link-threshold", type=float, default=0.9)
    ap.add_argument("--data", help="existing export folder (skips generation)")
    ap.add_argument("--hub-only", action="store_true",
                    help="score the hub alone, for sizes splink cannot run here (its memory grows "
                         "faster than the records: 170 MiB at 2,000 persons, 12 GiB at 100,000)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = a.data or os.path.join(tmp, "offices")
        if not a.data:
            subprocess.run([sys.executable, os.path.join(HERE, "gen_offices.py"), "--persons", str(a.persons),
                            "--seed", str(a.seed), "--out", data], check=True)
        ours_csv, splink_csv = os.path.join(tmp, "ours.csv"), os.path.join(tmp, "splink.csv")
        ours_t, ours_mem = run_measured([a.sigess, "linkage", data, "--clusters-out", ours_csv,
                                         "--link-threshold", str(a.link_threshold), "--review-threshold", str(min(0.5, a.link_threshold))])
        if a.hub_only:
            spl_t = spl_mem = None
        else:
            spl_t, spl_mem = run_measured([a.splink_python, os.path.join(HERE, "run_splink.py"), data,
                                           "--clusters-out", splink_csv, "--link-threshold", str(a.link_threshold)])
        truth = {}
        with open(os.path.join(data, "truth.csv"), encoding="utf-8") as f:
            for r in csv.DictReader(f, delimiter=";"):
                truth[(r["ufficio_origine"], r["id_persona"])] = r["persona_vera"]
        ours = read_clusters(ours_csv)
        spl = ours if a.hub_only else read_clusters(splink_csv)
    keys = sorted(set(ours) & set(spl) & set(truth))
    if a.hub_only:
        o = scores(pairs(ours, keys), pairs(truth, keys))
        print(f"records scored: {len(keys)} (hub read {len(ours)}); hub only")
        print(f"{'':8} {'precision':>9} {'recall':>7} {'F1':>7} {'wall s':>7} {'peak MiB':>9}")
        print(f"{'hub':8} {o[0]:9.4f} {o[1]:7.4f} {o[2]:7.4f} {ours_t:7.2f} {ours_mem:9.1f}")
        return 0
    true_pairs = pairs(truth, keys)
    o, s = scores(pairs(ours, keys), true_pairs), scores(pairs(spl, keys), true_pairs)
    print(f"records scored: {len(keys)} (hub read {len(ours)}, splink read {len(spl)}); true duplicate pairs: {len(true_pairs)}")
    print(f"{'':8} {'precision':>9} {'recall':>7} {'F1':>7} {'wall s':>7} {'peak MiB':>9}")
    print(f"{'hub':8} {o[0]:9.4f} {o[1]:7.4f} {o[2]:7.4f} {ours_t:7.2f} {ours_mem:9.1f}")
    print(f"{'splink':8} {s[0]:9.4f} {s[1]:7.4f} {s[2]:7.4f} {spl_t:7.2f} {spl_mem:9.1f}")
    print(f"ratios hub/splink: F1 {o[2] / s[2]:.3f}  wall time {ours_t / spl_t:.3f}  memory {ours_mem / spl_mem:.3f}")
    if o[2] < s[2]:
        print("FAIL: the hub's F1 is below splink's")
        return 1
    print("1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
