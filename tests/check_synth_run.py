#!/usr/bin/python3
"""check_synth_run.py COHORT_DIR RUN_DIR — check a run on a synthetic cohort against the
generator's recorded ground truth (independent of tessera's code: h5py, numpy, PIL).

- every non-blank slide: tiles/<id>.h5 opens with h5py; coords N x 2 int, N > 0, inside the
  slide; the CLAM/TRIDENT/tessera attributes are there and consistent with the slide size;
- tissue IoU between tissue/<id>.h5 and truth/<id>.tissue.png >= 0.95 on every non-blank slide;
- the blank slide has no tiles;
- the grid against the truth: kept tiles have true tissue (>= 0.9 of them have a true tissue
  fraction of at least min_tissue - 0.1) and grid positions that are mostly true tissue
  (fraction >= 0.6) are kept (>= 0.95 of them).
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


def kept_grid(w0, h0, side, step):
    """Every grid position the tile stage considers: top-left at multiples of step, inside."""
    ys = [round(i * step) for i in range(int(h0 / step) + 1) if round(i * step) + side <= h0]
    xs = [round(i * step) for i in range(int(w0 / step) + 1) if round(i * step) + side <= w0]
    return [(x, y) for y in ys for x in xs]


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
    if xy.ndim != 2 or xy.shape[1] != 2:
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
    # true tissue fraction of each kept tile and of every grid position, on the truth grid
    step = (float(a["tile_size_px"]) - float(a["tile_overlap_px"])) * float(a["target_mpp"]) / float(a["mpp_level0"])
    min_t = float(a["min_tissue"])
    integ = np.pad(tm.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    def frac(x, y):
        x0, y0 = int(round(x / ds)), int(round(y / ds))
        x1, y1 = int(round((x + side) / ds)), int(round((y + side) / ds))
        x1, y1 = min(x1, tm.shape[1]), min(y1, tm.shape[0])
        n = max((x1 - x0) * (y1 - y0), 1)
        return (integ[y1, x1] - integ[y0, x1] - integ[y1, x0] + integ[y0, x0]) / n
    kept = {(int(x), int(y)) for x, y in xy}
    precision = np.mean([frac(x, y) >= min_t - 0.1 for x, y in xy])
    full = [(x, y) for x, y in kept_grid(w0, h0, side, step) if frac(x, y) >= 0.6]
    recall = np.mean([(x, y) in kept for x, y in full]) if full else 1.0
    on = precision
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
    print(f"{sid}: {xy.shape[0]} tiles, {precision:.3f} of them on true tissue, "
          f"{recall:.3f} of {len(full)} mostly-tissue grid positions kept, tissue IoU {iou:.4f}")
    if iou < 0.95:
        bad.append(f"{sid}: tissue IoU {iou:.4f} < 0.95")
    if precision < 0.9:
        bad.append(f"{sid}: only {precision:.3f} of the tiles have true tissue")
    if recall < 0.95:
        bad.append(f"{sid}: only {recall:.3f} of the mostly-tissue grid positions were kept")
for b in bad:
    print("FAIL -", b)
sys.exit(1 if bad else 0)
