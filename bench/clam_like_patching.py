#!/usr/bin/python3
"""clam_like_patching.py SLIDE PATCH_SIZE [OUT_DIR] — the baseline of bench/bench_tile.sh.

A re-implementation (written for this benchmark, not CLAM's code) of the algorithm of CLAM's
`create_patches_fp.py` with its TCGA preset, as CLAM users run it: OpenCV segmentation on the
pyramid level nearest downsample 64 (HSV saturation, median blur 7, threshold 8, closing 4,
contours with area filter a_t=16 x 512^2 px and holes a_h=4), then for every contour a level-0
grid of PATCH_SIZE px with step PATCH_SIZE, each candidate checked with the 'four_pt' rule
(centre +- size/4, any point inside the contour and not in a hole) in a multiprocessing pool.
With OUT_DIR it also writes what CLAM writes per slide, timed as CLAM times it: the
segmentation mask picture (masks/<slide>.jpg: the segmentation level with the contours drawn,
as WholeSlideImage.visWSI), the coordinates (patches/<slide>.h5, dataset coords with CLAM's
attributes, as save_hdf5) and the stitched picture (stitches/<slide>.jpg: the patches drawn on
the level nearest downsample 64, as StitchCoords).
Prints: tiles, seconds (from opening the slide to the last output; imports excluded), then the
segmentation, patching and stitching seconds, CLAM's own three timers.
"""
import multiprocessing as mp
import os
import sys
import time

import cv2
import numpy as np
import openslide

REF = 512  # CLAM's ref_patch_size for area thresholds


def segment(slide):
    level = slide.get_best_level_for_downsample(64)
    ds = slide.level_downsamples[level]
    img = np.array(slide.read_region((0, 0), level, slide.level_dimensions[level]).convert("RGB"))
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
    sat = cv2.medianBlur(hsv[:, :, 1], 7)
    _, bw = cv2.threshold(sat, 8, 255, cv2.THRESH_BINARY)
    bw = cv2.morphologyEx(bw, cv2.MORPH_CLOSE, np.ones((4, 4), np.uint8))
    contours, hier = cv2.findContours(bw, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    if hier is None:
        return [], []
    hier = hier[0]
    scaled_ref = REF * REF / (ds * ds)
    tissue, holes = [], []
    for i, c in enumerate(contours):
        if hier[i][3] != -1:
            continue
        area = cv2.contourArea(c)
        kids = [contours[j] for j in range(len(contours)) if hier[j][3] == i]
        area -= sum(cv2.contourArea(k) for k in kids)
        if area <= 16 * scaled_ref:
            continue
        tissue.append((c * ds).astype(np.int32))
        hs = [k for k in kids if cv2.contourArea(k) > 4 * scaled_ref]
        hs = sorted(hs, key=cv2.contourArea, reverse=True)[:8]
        holes.append([(h * ds).astype(np.int32) for h in hs])
    return tissue, holes


_CONT = None
_HOLES = None
_SIZE = 0


def _init(cont, holes, size):
    global _CONT, _HOLES, _SIZE
    _CONT, _HOLES, _SIZE = cont, holes, size


def _check(pt):
    x, y = pt
    s = _SIZE
    cx, cy = x + s // 2, y + s // 2
    d = s // 4
    inside = False
    for px, py in ((cx - d, cy - d), (cx + d, cy + d), (cx + d, cy - d), (cx - d, cy + d)):
        if cv2.pointPolygonTest(_CONT, (float(px), float(py)), False) >= 0:
            inside = True
            break
    if not inside:
        return None
    for h in _HOLES:
        if cv2.pointPolygonTest(h, (float(cx), float(cy)), False) > 0:
            return None
    return (x, y)


def main():
    path, size = sys.argv[1], int(sys.argv[2])
    out = sys.argv[3] if len(sys.argv) > 3 else None
    name = os.path.splitext(os.path.basename(path))[0]
    t0 = time.perf_counter()
    slide = openslide.OpenSlide(path)
    w, h = slide.dimensions
    tissue, holes = segment(slide)
    if out:  # CLAM: seg + the mask picture (visWSI at the segmentation level)
        level = slide.get_best_level_for_downsample(64)
        ds = slide.level_downsamples[level]
        img = np.array(slide.read_region((0, 0), level, slide.level_dimensions[level]).convert("RGB"))
        cv2.drawContours(img, [(c / ds).astype(np.int32) for c in tissue], -1, (0, 255, 0), 2)
        for hs in holes:
            cv2.drawContours(img, [(c / ds).astype(np.int32) for c in hs], -1, (0, 0, 255), 2)
        os.makedirs(os.path.join(out, "masks"), exist_ok=True)
        cv2.imwrite(os.path.join(out, "masks", name + ".jpg"), img[:, :, ::-1])
    t_seg = time.perf_counter() - t0
    coords = []
    with mp.Pool(2) as pool:
        for cont, hs in zip(tissue, holes):
            x0, y0, cw, ch = cv2.boundingRect(cont)
            xs = range(x0, min(x0 + cw, w - size + 1), size)
            ys = range(y0, min(y0 + ch, h - size + 1), size)
            cand = [(x, y) for y in ys for x in xs]
            pool_init = (cont, hs, size)
            _init(*pool_init)
            res = pool.starmap(_check_with, [(pool_init, c) for c in cand], chunksize=256)
            coords.extend(r for r in res if r is not None)
    if out:  # CLAM's save_hdf5: coords (N x 2 int64), chunked, maxshape (None, 2), attributes
        import h5py
        os.makedirs(os.path.join(out, "patches"), exist_ok=True)
        with h5py.File(os.path.join(out, "patches", name + ".h5"), "w") as f:
            a = np.array(coords, dtype=np.int64).reshape(-1, 2)
            d = f.create_dataset("coords", data=a, maxshape=(None, 2), chunks=(max(1, min(len(a), 1024)), 2))
            d.attrs.update(patch_size=size, patch_level=0, downsample=(1.0, 1.0), downsampled_level_dim=(w, h),
                           level_dim=(w, h), name=name, save_path=out)
    t_patch = time.perf_counter() - t0 - t_seg
    if out:  # CLAM's StitchCoords: the patches drawn on the level nearest downsample 64
        level = slide.get_best_level_for_downsample(64)
        ds = slide.level_downsamples[level]
        canvas = np.array(slide.read_region((0, 0), level, slide.level_dimensions[level]).convert("RGB"))
        ps = max(1, int(round(size / ds)))
        for x, y in coords:
            cv2.rectangle(canvas, (int(x / ds), int(y / ds)), (int(x / ds) + ps, int(y / ds) + ps), (0, 0, 255), 1)
        os.makedirs(os.path.join(out, "stitches"), exist_ok=True)
        cv2.imwrite(os.path.join(out, "stitches", name + ".jpg"), canvas[:, :, ::-1])
    t_stitch = time.perf_counter() - t0 - t_seg - t_patch
    print(len(coords), time.perf_counter() - t0, t_seg, t_patch, t_stitch)


def _check_with(init, pt):
    if _CONT is None or _CONT is not init[0]:
        _init(*init)
    return _check(pt)


if __name__ == "__main__":
    main()
