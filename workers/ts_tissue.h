/* ts_tissue.h — tissue segmentation on a downsampled view of a slide (CLAM-like).
 *
 * Pipeline (libvips): read a level near `target_mpp` (about 8–16 um/px) → RGB → saturation
 * channel (HSV) → median blur → Otsu threshold → morphological closing → remove connected
 * objects smaller than min_area_um2 and fill holes smaller than min_hole_um2. Strongly
 * green/blue hues (pen marks) are excluded.
 *
 * Resolution: the coarsest level with mpp <= target_mpp is read in row strips and
 * box-averaged by k = floor(target_mpp / level_mpp), so the mask pixel is at most target_mpp
 * (and more than half of it) and memory stays bounded even when only level 0 exists.
 *
 * The mask is row-major uint8 (0 or 255), mask pixel (i, j) covers level-0 pixels
 * [j*scale_x, (j+1)*scale_x) × [i*scale_y, (i+1)*scale_y) (the last row/column may reach
 * past the slide edge).
 *
 * Thread safety: ts_tissue_mask reads through the slide handle; different slides may be
 * processed in parallel.
 */
#ifndef TS_TISSUE_H
#define TS_TISSUE_H

#include <stdint.h>

#include "ts_slide.h"

typedef struct ts_tissue_params {
  double target_mpp;   /* mask pixel size, um/px; default 8 */
  int median_px;       /* median filter size in mask px (odd); default 7 */
  int close_px;        /* closing structuring element in mask px; default 5 */
  double min_area_um2; /* smallest tissue object kept; default 20000 (CLAM a_t scaled) */
  double min_hole_um2; /* largest hole filled; default 8000 */
  int sat_floor;       /* Otsu threshold never below this (0..255); default 15 */
} ts_tissue_params;

/* Where ts_tissue_mask's time went (ms), in ts_mask.prof_ms (wall clock) and prof_cpu_ms
 * (process CPU: on a shared machine the wall clock measures the neighbours too): for
 * benchmarks and profiles; never part of a result. */
enum { TS_TISSUE_NPROF = 7 };
#define TS_TISSUE_PROF_NAMES "read", "colour", "median", "pen", "otsu", "close", "components"

typedef struct ts_mask {
  int w, h;                /* mask size in px */
  double scale_x, scale_y; /* level-0 px per mask px */
  double mpp;              /* um per mask px (x) */
  int level;               /* slide level the mask was computed from */
  int threshold;           /* Otsu threshold used (saturation 0..255) */
  uint8_t *data;           /* w*h, 0 or 255 */
  uint8_t *thumb_rgb;      /* w*h*3 thumbnail the mask was computed from (for QC) */
  double prof_ms[TS_TISSUE_NPROF];     /* wall time per step of ts_tissue_mask (TS_TISSUE_PROF_NAMES) */
  double prof_cpu_ms[TS_TISSUE_NPROF]; /* process CPU time per step (all threads: the reader's too) */
  void *arena; /* when set, data and thumb_rgb live in this ts__huge_alloc block (ts_mask_clear) */
} ts_mask;

void ts_tissue_params_default(ts_tissue_params *p);
/* Compute the mask (caller frees with ts_mask_clear; p NULL = defaults). Needs a resolved
 * mpp on s (else SLIDE_NO_MPP). Errors: SLIDE_UNREADABLE, TISSUE_TOO_LARGE (mask over 2^28
 * px: target_mpp far too fine), VIPS, ENOMEM. On error *out is cleared. */
int ts_tissue_mask(ts_slide *s, const ts_tissue_params *p, ts_mask *out);
/* Frees data and thumb_rgb (or the arena holding them) and zeroes *m. A mask built by hand
 * with malloc'ed data and thumb_rgb (arena NULL) may be cleared too. */
void ts_mask_clear(ts_mask *m);

/* Otsu threshold of a 256-bin histogram (exposed for tests): the t maximising the
 * between-class variance of [0, t] vs [t+1, 255]; tissue is value > t. 0 for an empty one. */
int ts_otsu_threshold(const uint64_t hist[256]);
/* size×size median of a uint8 image with replicated borders (size is made odd and at most the
 * image side); in and out must not overlap. Exposed for tests. */
int ts_median_filter(const uint8_t *in, int w, int h, int size, uint8_t *out);

/* Save / load the mask as HDF5: dataset "mask" (h×w uint8, chunked 256², deflate 1) with
 * attributes scale_x, scale_y, mpp (f64), level, threshold (i64), and "thumbnail" (h×w×3
 * uint8, contiguous, raw: the view the mask was computed on) when thumb_rgb is set. Saved
 * atomically (tmp name, fsync, rename) and byte-reproducibly (no object timestamps). Tokens
 * H5_WRITE / H5_READ. */
int ts_mask_save_h5(const ts_mask *m, const char *path);
/* The same file written to exactly `tmp`, neither synced nor renamed: for a unit that commits
 * all its outputs at once (ts_outputs_commit). */
int ts_mask_save_h5_to_tmp(const ts_mask *m, const char *tmp);
int ts_mask_load_h5(const char *path, ts_mask *out); /* thumb_rgb from "thumbnail" when present */

/* QC PNG: thumbnail (grey mask when thumb_rgb is NULL) with the tile squares (level-0 coords,
 * side tile_l0 px) in blue and the mask outline on top in green, at mask resolution divided by
 * the smallest integer that brings the long side to <= TS_QC_MAX_PX (box average; a QC pixel
 * is tissue when half its mask pixels are). 8-bit RGB, no ancillary chunks (reproducible).
 * Written atomically. Token QC_PNG. */
#define TS_QC_MAX_PX 1024
int ts_qc_png(const ts_mask *m, const int64_t *coords, int64_t n_tiles, double tile_l0, const char *path);
/* The same picture written to exactly `tmp`, neither synced nor renamed (ts_outputs_commit). */
int ts_qc_png_to_tmp(const ts_mask *m, const int64_t *coords, int64_t n_tiles, double tile_l0, const char *tmp);

/* Commit n files written under temporary names: fsync each tmp[i], rename it to path[i], then
 * fsync each distinct directory once (ts_io_commit per file would sync the directory per
 * file; an fsync is a journal commit, ~5 ms on the development VM). On failure the tmp files
 * not yet renamed are removed; token IO_COMMIT. (Belongs in base/ts_io.h as ts_io_commit_many;
 * here until base takes it.) */
int ts_outputs_commit(const char *const *tmp, const char *const *path, int n);

/* Zero-filled buffers of a few MB on 2 MiB-aligned, huge-page-advised anonymous memory (one page
 * fault per 2 MiB instead of one per 4 KiB: ~40x less time to first touch on the development
 * VM); shared-internal to workers/. NULL when out of memory. */
void *ts__huge_alloc(size_t n);
void ts__huge_free(void *p);

#endif
