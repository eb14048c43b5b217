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
 * processed in parallel. Needs VIPS_INIT done by the caller.
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

typedef struct ts_mask {
  int w, h;                /* mask size in px */
  double scale_x, scale_y; /* level-0 px per mask px */
  double mpp;              /* um per mask px (x) */
  int level;               /* slide level the mask was computed from */
  int threshold;           /* Otsu threshold used (saturation 0..255) */
  uint8_t *data;           /* w*h, 0 or 255 */
  uint8_t *thumb_rgb;      /* w*h*3 thumbnail the mask was computed from (for QC) */
} ts_mask;

void ts_tissue_params_default(ts_tissue_params *p);
/* Compute the mask (caller frees with ts_mask_clear; p NULL = defaults). Needs a resolved
 * mpp on s (else SLIDE_NO_MPP). Errors: SLIDE_UNREADABLE, TISSUE_TOO_LARGE (mask over 2^28
 * px: target_mpp far too fine), VIPS, ENOMEM. On error *out is cleared. */
int ts_tissue_mask(ts_slide *s, const ts_tissue_params *p, ts_mask *out);
void ts_mask_clear(ts_mask *m);

/* Otsu threshold of a 256-bin histogram (exposed for tests): the t maximising the
 * between-class variance of [0, t] vs [t+1, 255]; tissue is value > t. 0 for an empty one. */
int ts_otsu_threshold(const uint64_t hist[256]);
/* size×size median of a uint8 image with replicated borders (size is made odd and at most the
 * image side); in and out must not overlap. Exposed for tests. */
int ts_median_filter(const uint8_t *in, int w, int h, int size, uint8_t *out);

/* Save / load the mask as HDF5: dataset "mask" (h×w uint8, chunked, deflate) with
 * attributes scale_x, scale_y, mpp (f64), level, threshold (i64). Saved atomically (tmp name,
 * fsync, rename) and byte-reproducibly (no object timestamps). Tokens H5_WRITE / H5_READ. */
int ts_mask_save_h5(const ts_mask *m, const char *path);
int ts_mask_load_h5(const char *path, ts_mask *out); /* thumb_rgb from "thumbnail" when present */

/* QC PNG at mask resolution: thumbnail (grey mask when thumb_rgb is NULL) with the tile
 * squares (level-0 coords, side tile_l0 px) in blue and the mask outline on top in green.
 * Written atomically, metadata stripped. Token QC_PNG. */
int ts_qc_png(const ts_mask *m, const int64_t *coords, int64_t n_tiles, double tile_l0, const char *path);

#endif
