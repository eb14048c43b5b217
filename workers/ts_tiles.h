/* ts_tiles.h — the tile grid in physical units and the tiles/<slide>.h5 writer.
 *
 * A tile is `size` px at `mpp` um/px, i.e. size*mpp/mpp0 level-0 px wide. The grid starts at
 * level-0 (0,0) and steps by (size - overlap)*mpp/mpp0 level-0 px; a tile is kept when the
 * fraction of its area that the tissue mask marks is >= min_tissue, and it lies fully inside
 * the slide (x + size_l0 <= w0). Grid positions are round(i * step_l0). Coordinates are
 * level-0 top-left pixels, row-major order (y then x).
 *
 * Tissue fraction is exact area weighting: the mask is taken as piecewise constant on the
 * level-0 plane and the tissue area under the size_l0 × size_l0 tile is integrated with a
 * summed-area table (mask pixels partly under the tile count by their overlap). Tile area
 * outside the mask counts as no tissue.
 */
#ifndef TS_TILES_H
#define TS_TILES_H

#include <stdint.h>

#include "ts_slide.h"
#include "ts_tissue.h"

typedef struct ts_grid_params {
  int size;          /* tile side in px at target mpp */
  double mpp;        /* target um/px */
  int overlap;       /* px at target mpp shared by neighbours (0 <= overlap < size) */
  double min_tissue; /* 0..1 */
} ts_grid_params;

typedef struct ts_grid {
  int64_t n;       /* tiles kept */
  int64_t *coords; /* n*2: x, y level-0 */
  double tile_l0;  /* tile side in level-0 px (float) */
  double step_l0;  /* grid step in level-0 px (float) */
  int64_t size_l0; /* tile side in level-0 px, rounded (what readers use) */
} ts_grid;

/* Build the grid from the slide's level-0 size and mpp and its mask (mask NULL: no tissue
 * filter, every tile that fits). Caller frees with ts_grid_clear. Token TILE_BAD_PARAMS for
 * size <= 0, overlap outside [0, size), mpp <= 0, min_tissue outside [0, 1]. */
int ts_grid_build(int64_t w0, int64_t h0, double mpp0, const ts_mask *mask, const ts_grid_params *p,
                  ts_grid *out);
void ts_grid_clear(ts_grid *g);

/* Provenance written as attributes next to coords. */
typedef struct ts_tiles_meta {
  const char *slide_id, *slide_path, *quickhash, *mpp_source, *config_hash, *version;
  double mpp0, objective_power;
  int64_t w0, h0;
  int read_level; /* level the reader uses (best level for the target mpp) */
  double read_downsample;
  int64_t read_w, read_h; /* dims of read_level */
} ts_tiles_meta;

/* Write tiles/<slide>.h5: dataset coords (N×2 int64, chunks of min(N,1024)×2 rows, maxshape
 * (unlimited, 2); N = 0 gives a valid empty (0, 2) dataset) with CLAM's and TRIDENT's
 * attributes and tessera's provenance (list and semantics in tiles.c). `patch_size` is the
 * tile side in px of `patch_level` = read_level, as CLAM's reader needs; TRIDENT's
 * target_magnification is written consistently with it (level0_mag * patch_size /
 * patch_size_level0), so both tools cut exactly the tessera tile. Written to a tmp name,
 * fsynced, renamed; byte-identical for the same input. Tokens H5_WRITE, IO_COMMIT. */
int ts_tiles_write_h5(const char *path, const ts_grid *g, const ts_grid_params *p, const ts_tiles_meta *m);
/* The file that would be `path`, written to exactly `tmp`, neither synced nor renamed (the
 * caller commits it, with the unit's other outputs: ts_outputs_commit). */
int ts_tiles_write_h5_to_tmp(const char *path, const char *tmp, const ts_grid *g, const ts_grid_params *p,
                             const ts_tiles_meta *m);

#endif
