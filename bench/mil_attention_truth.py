#!/usr/bin/env python3
# bench/mil_attention_truth.py COHORT_DIR MODELS [RUN_DIR] [-v] — does attention find the tumour?
# For every positive test slide of a finished mil run (RUN_DIR, default COHORT_DIR/run, of a `tessera
# synth` cohort with truth/<slide>.tumour.png), the AUC of the raw attention scores of
# mil/<model>/fold<k>/attention.h5 for "the tile overlaps the tumour mask" (one mask pixel is
# enough). Prints per model the AUCs, their minimum and median, and the same with the border tiles
# (0 < tumour share of the tile < 10%) left out: how much the one-pixel definition costs. -v: one
# line per slide (tiles, tumour tiles, border tiles, both AUCs).
# The tile footprint comes from tiles/<slide>.h5 (coords attrs patch_size_level0, level0_width,
# level0_height); mask pixel (i, j) covers level-0 [i ds, (i + 1) ds) x [j ds, (j + 1) ds) with
# ds = truth_downsample, so a tile covers mask columns floor(x0 / ds) .. ceil((x0 + ts) / ds) - 1.
# tests/it_mil_attention.sh asserts the same measure (>= 0.9) at the settings it documents.
# Run with Debian's /usr/bin/python3 (h5py, PIL, sklearn).
import csv, glob, math, os, sys

import h5py
import numpy as np
from PIL import Image
from sklearn.metrics import roc_auc_score

args = [a for a in sys.argv[1:] if a != "-v"]
verbose = "-v" in sys.argv[1:]
if len(args) < 2:
    sys.exit("usage: mil_attention_truth.py COHORT_DIR MODELS [RUN_DIR] [-v]")
cohort, models = args[0], args[1].split(",")
run = args[2] if len(args) > 2 else os.path.join(cohort, "run")
truth = {r["slide_id"]: r for r in csv.DictReader(open(os.path.join(cohort, "truth", "slides.csv")))}


def tumour_share(s, xy):
    """Per tile, the share of its mask pixels in the tumour."""
    with h5py.File(os.path.join(run, "tiles", s + ".h5"), "r") as tf:
        a = tf["coords"].attrs
        ts, W0, H0 = int(a["patch_size_level0"]), int(a["level0_width"]), int(a["level0_height"])
        if not np.array_equal(tf["coords"][:], xy):
            print(f"  warning: {s}: attention coords differ from tiles/{s}.h5", file=sys.stderr)
    m = np.asarray(Image.open(os.path.join(cohort, "truth", s + ".tumour.png"))) > 0
    ds = int(truth[s]["truth_downsample"]) if s in truth else round(W0 / m.shape[1])
    assert m.shape == (math.ceil(H0 / ds), math.ceil(W0 / ds)), (s, m.shape, ds)
    return np.array([m[int(y0) // ds:-(-(int(y0) + ts) // ds), int(x0) // ds:-(-(int(x0) + ts) // ds)].mean()
                     for x0, y0 in xy])


for model in models:
    aucs, aucs_nb = [], []
    for fp in sorted(glob.glob(f"{run}/mil/{model}/fold*/attention.h5")):
        fold = fp.split("/")[-2]
        with h5py.File(fp, "r") as f:
            for s in f:
                g = f[s]
                if g.attrs["label"] != 1:
                    continue
                att, xy = g["attention"][0], g["coords"][:]
                fr = tumour_share(s, xy)
                y = fr > 0
                if y.all() or not y.any():
                    print(f"  {model} {fold} {s}: {y.sum()} of {len(y)} tiles on the tumour: no AUC")
                    continue
                keep = (fr == 0) | (fr >= 0.1)
                aucs.append(roc_auc_score(y, att))
                aucs_nb.append(roc_auc_score(y[keep], att[keep]))
                if verbose:
                    print(f"  {model} {fold} {s}: tiles {len(y)} tumour {int(y.sum())} border {int(((fr > 0) & (fr < 0.1)).sum())}"
                          f" AUC {aucs[-1]:.3f} without border {aucs_nb[-1]:.3f}")
    if not aucs:
        print(model, "no positive test slide with both kinds of tiles")
        continue
    print(model, "slides", len(aucs), "AUCs", np.round(aucs, 3), "min %.3f median %.3f" % (min(aucs), np.median(aucs)),
          "| border tiles left out: min %.3f median %.3f" % (min(aucs_nb), np.median(aucs_nb)))
