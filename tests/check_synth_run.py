#!/usr/bin/python3
"""check_synth_run.py COHORT_DIR RUN_DIR — check a run on a synthetic cohort against the
generator's recorded ground truth (independent of tessera's code: h5py, numpy, PIL).

- every non-blank slide: tiles/<id>.h5 opens with h5py; coords N x 2 int, N > 0, inside the
  slide; the CLAM/TRIDENT/tessera attributes are there and consistent with the slide size;
- tissue IoU between tissue/<id>.h5 and truth/<id>.tissue.png >= 0.95 on every non-blank slide;
- the blank slide has no tiles;
- every tile's centre lies on true tissue (a tile of pure background would be a grid bug).
"""
import csv, sys
import h5py, numpy as np
from PIL import Image

cohort, run = sys.argv[1], sys.argv[2]
truth = {r["slide_id"]: r for r in csv.DictReader(open(f"{cohort}/truth/slides.csv"))}
assert truth, "no slides in truth/slides.csv"
CLAM = ["patch_size", "patch_level", "downsample", "downsampled_level_dim", "level_dim", "name"]
TRIDENT = ["patch_size_level0", "level0_magnification", "target_magnification", "overlap",
           "level0_width", "level0_height"]
OURS = ["mpp_level0", "target_mpp", "mpp_source", "config_hash", "tessera_version", "slide_quickhash"]
bad = []
for sid, t in sorted(truth.items()):
    blank = t["blank"] in ("1", "true", "True")
    ds = float(t["truth_downsample"])
    w0, h0 = int(t["width"]), int(t["height"])
    tm = np.array(Image.open(f"{cohort}/truth/{sid}.tissue.png").convert("L")) > 127
    with h5py.File(f"{run}/tiles/{sid}.h5", "r") as f:
        c = f["coords"]
        a = dict(c.attrs)
        xy = c[:]
    missing = [k for k in CLAM + TRIDENT + OURS if k not in a]
    if missing:
        bad.append(f"{sid}: missing attributes {missing}")
    if c.ndim != 2 or (xy.shape[0] and xy.shape[1] != 2):
        bad.append(f"{sid}: coords shape {xy.shape}")
    if (int(a["level0_width"]), int(a["level0_height"])) != (w0, h0):
        bad.append(f"{sid}: level0 size {a['level0_width']}x{a['level0_height']} != truth {w0}x{h0}")
    side = float(a["patch_size_level0"])
    if blank:
        if xy.shape[0] != 0:
            bad.append(f"{sid}: blank slide has {xy.shape[0]} tiles")
        print(f"{sid}: blank, {xy.shape[0]} tiles")
        continue
    if xy.shape[0] == 0:
        bad.append(f"{sid}: no tiles")
        continue
    if (xy < 0).any() or (xy[:, 0] + side > w0).any() or (xy[:, 1] + side > h0).any():
        bad.append(f"{sid}: tiles outside the slide")
    # tile centres on true tissue
    cx = np.clip(((xy[:, 0] + side / 2) / ds).astype(int), 0, tm.shape[1] - 1)
    cy = np.clip(((xy[:, 1] + side / 2) / ds).astype(int), 0, tm.shape[0] - 1)
    on = tm[cy, cx].mean()
    # IoU on the truth grid: our mask looked up at each truth pixel's centre
    with h5py.File(f"{run}/tissue/{sid}.h5", "r") as f:
        m = f["mask"][:] > 0
        sx, sy = float(f["mask"].attrs["scale_x"]), float(f["mask"].attrs["scale_y"])
    jj, ii = np.meshgrid((np.arange(tm.shape[1]) + 0.5) * ds, (np.arange(tm.shape[0]) + 0.5) * ds)
    mi = np.clip((ii / sy).astype(int), 0, m.shape[0] - 1)
    mj = np.clip((jj / sx).astype(int), 0, m.shape[1] - 1)
    ours = m[mi, mj]
    inter, union = (ours & tm).sum(), (ours | tm).sum()
    iou = inter / union if union else 1.0
    print(f"{sid}: {xy.shape[0]} tiles, {on:.3f} of tile centres on true tissue, tissue IoU {iou:.4f}")
    if iou < 0.95:
        bad.append(f"{sid}: tissue IoU {iou:.4f} < 0.95")
    if on < 0.9:
        bad.append(f"{sid}: only {on:.3f} of tile centres on tissue")
for b in bad:
    print("FAIL -", b)
sys.exit(1 if bad else 0)
