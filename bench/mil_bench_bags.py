#!/usr/bin/python3
"""bench/mil_bench_bags.py DIR SLIDES TILES DIM [--dtype float32|float16] [--seed S] [--fast]
[--vary F] — a synthetic cohort of feature files for the mil stage's benchmarks
(bench_mil_scaling.sh, bench_mil_rss.sh), in the layout `mil.features` reads (stages/mil.c,
read_bag):

  DIR/features/<slide_id>.h5   `features` N x DIM (float32, or float16: tessera reads it as
                               float32), `coords` N x 2 int64 (a grid of 256 px tiles; no
                               patch_size_level0 attribute, so the stage draws no heatmap)
  DIR/cohort.csv               slide_id,patient_id,path,label: one slide per patient, labels
                               0/1 alternating; `path` names a slide that does not exist (the mil
                               stage never opens it when the coords carry no tile size)
  DIR/done                     written last: the cohort is complete

Signal, so that training is a real one: every tile is N(0, 1) noise; in a positive bag
(label 1) 10 % of the tiles are shifted by 1.5 along one random unit direction (the same for
the whole cohort: the "tumour" direction the attention has to find).

Bag sizes: TILES each, or uniform in TILES x [1 - F, 1 + F] with --vary F.
--fast (for the RSS benchmark, whose files are large): one random block of TILES x DIM drawn
once; each file is that block rolled by a random number of rows (plus the signal): real HDF5
files of the full size, written at disk speed instead of at the random generator's.
"""
import argparse
import csv
import os
import sys

import h5py
import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("slides", type=int)
    ap.add_argument("tiles", type=int)
    ap.add_argument("dim", type=int)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--fast", action="store_true")
    ap.add_argument("--vary", type=float, default=0.0)
    a = ap.parse_args()
    if a.slides < 2 or a.tiles < 1 or a.dim < 1 or not 0 <= a.vary < 1:
        sys.exit("mil_bench_bags.py: need SLIDES >= 2, TILES >= 1, DIM >= 1, 0 <= --vary < 1")
    dt = np.dtype(a.dtype)
    rng = np.random.default_rng(a.seed)
    u = rng.standard_normal(a.dim)
    u = (1.5 * u / np.linalg.norm(u)).astype(dt)
    feat_dir = os.path.join(a.dir, "features")
    os.makedirs(feat_dir, exist_ok=True)
    block = rng.standard_normal((a.tiles, a.dim), dtype=np.float32).astype(dt) if a.fast else None
    side = int(np.ceil(np.sqrt(a.tiles * (1 + a.vary))))
    grid = np.stack(np.divmod(np.arange(side * side), side)[::-1], 1).astype(np.int64) * 256
    rows = []
    for i in range(a.slides):
        sid, label = f"S{i:05d}", i % 2
        n = a.tiles if a.vary == 0 else max(1, int(round(a.tiles * rng.uniform(1 - a.vary, 1 + a.vary))))
        if a.fast:
            x = np.roll(block, int(rng.integers(a.tiles)), axis=0)[:n]
        else:
            x = rng.standard_normal((n, a.dim), dtype=np.float32).astype(dt)
        if label:
            k = max(1, n // 10)
            x[rng.choice(n, k, replace=False)] += u
        with h5py.File(os.path.join(feat_dir, sid + ".h5"), "w") as f:
            f.create_dataset("features", data=x)
            f.create_dataset("coords", data=grid[:n])
        rows.append((sid, "P" + sid[1:], f"slides/{sid}.svs", label))
    with open(os.path.join(a.dir, "cohort.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(("slide_id", "patient_id", "path", "label"))
        w.writerows(rows)
    open(os.path.join(a.dir, "done"), "w").close()


if __name__ == "__main__":
    main()
