/* ts_heatmap.h — attention heatmaps of one slide: percentiles of the tiles' scores drawn over
 * the tile footprints on a slide thumbnail, and the top tiles as a strip (issue 11, item 4).
 *
 *     ts_heatmap_opts o;
 *     ts_heatmap_opts_default(&o);            // 1024 px thumbnail, alpha 0.5, top 8 at 128 px
 *     // coords: n x 2 level-0 top-left corners (tiles/<slide>.h5), scores: n raw attention
 *     // scores (pre-softmax, the order of coords), tissue: the tissue stage's mask or NULL
 *     if (ts_heatmap_png(slide, &mask, coords, n, 512, scores, &o,
 *                        "mil/abmil/heatmaps/S0001.png", "mil/abmil/heatmaps/S0001.top.png") < 0)
 *       fprintf(stderr, "%s\n", ts_error_message());   // e.g. HEATMAP_BAD_SCORE: ...
 *
 * What is drawn (CLAM's heatmaps, Lu et al. 2021, create_heatmaps.py / WholeSlideImage
 * .visHeatmap, simplified to one pass over a thumbnail):
 *  1. Scores become percentiles over the slide's tiles (ts_heatmap_percentiles): the colour says
 *     "this tile is among the x% most attended of this slide", which is comparable between
 *     slides and models whatever the scale of the raw scores.
 *  2. Thumbnail: the slide scaled so that its long side is opts.max_px (never upscaled: a slide
 *     smaller than that is drawn at level 0), read from the coarsest pyramid level at least
 *     that fine and area-averaged down. Thumbnail pixel (i, j) covers level-0 pixels
 *     [j*sx, (j+1)*sx) x [i*sy, (i+1)*sy), sx = width0 / thumb_w, sy = height0 / thumb_h.
 *  3. A thumbnail pixel belongs to a tile when its centre ((j+0.5)*sx, (i+0.5)*sy) lies in the
 *     tile [x, x+tile_l0) x [y, y+tile_l0); where tiles overlap their percentiles are averaged.
 *     With a tissue mask, only pixels whose centre falls on a tissue mask pixel (mask pixel
 *     floor(cx / scale_x), floor(cy / scale_y)) are coloured; all others keep the thumbnail.
 *  4. Colour: viridis (perceptually uniform; van der Walt, Smith & Firing 2015), matplotlib's
 *     256-entry table, percentile p -> entry min(255, floor(p * 256)) as matplotlib's
 *     Colormap.__call__ indexes it; out = (1 - alpha) * thumbnail + alpha * 255 * viridis,
 *     rounded to nearest.
 *  5. opts.legend adds a band of 24 white rows below the thumbnail with a colour bar
 *     (percentile 0 at the left, 1 at the right); the thumbnail area is never drawn on.
 *  6. The strip: the top_k tiles by raw score (descending, ties by lower index first; fewer when
 *     n < top_k), each read from the coarsest level at least as fine as strip_tile_px per tile
 *     and area-averaged to strip_tile_px x strip_tile_px, left to right, separated by
 *     strip_gap_px white columns. Cell c starts at x = c * (strip_tile_px + strip_gap_px).
 *
 * Output: PNG, 8-bit RGB, metadata stripped (reproducible bytes), fast deflate (opts.png_level,
 * default 1: this runs for every test slide of every fold). Each file is written atomically
 * (encoded in memory, then tmp + fsync + rename, base/ts_io.h): a reader sees the old file or the
 * new one; on failure no temporary is left. The heatmap is written before the strip; if the strip
 * then fails the heatmap stays (the unit fails and a redo overwrites both).
 *
 * Errors (negative TS_E* status, message "TOKEN: ..."):
 *   HEATMAP_NO_TILES    TS_EINPUT: n == 0 (nothing is written)
 *   HEATMAP_BAD_SCORE   TS_EINPUT: a score is NaN or infinite; the message names the first such
 *                       index ("attention score 5 of 8 is NaN ...")
 *   HEATMAP_BAD_OPTION  TS_EINVAL: an option or tile_l0 out of range (the message names it)
 *   EINVAL              TS_EINVAL: a NULL pointer where one is required, a mask without data
 *   SLIDE_UNREADABLE    TS_EINPUT: reading the slide failed (the handle is then in error)
 *   VIPS, ENOMEM        TS_EINTERNAL / TS_ENOMEM: libvips or an allocation failed
 *   IO_WRITE, IO_COMMIT TS_EIO: the PNG could not be written or renamed (ts_io.h)
 * Nothing is written unless every check passed and the whole image was computed.
 *
 * Thread safety: no global state; different slides may be drawn from different threads (reads
 * go through the slide handle, which is thread-safe). Needs VIPS_INIT done by the caller.
 * Memory: the thumbnail (about 11 x max_px^2 bytes with the per-pixel sums) and one band of the
 * level being read (~32 MiB), whatever the slide size. Time: the level read dominates; a slide
 * without a pyramid is read whole at level 0 (bounded memory, but slow on a gigapixel scan).
 * Measured: 1000 tiles on a 32768^2 synthetic Aperio-style slide, 1024 px: 0.3-0.6 s, heatmap
 * ~0.7 MB, strip ~45 kB (png_level 1-3).
 */
#ifndef TS_HEATMAP_H
#define TS_HEATMAP_H

#include <stdbool.h>
#include <stdint.h>

#include "ts_slide.h"
#include "ts_tissue.h"

typedef struct ts_heatmap_opts {
  int max_px;        /* long side of the thumbnail in px, 16..16384; default 1024 */
  double alpha;      /* opacity of the colour over the thumbnail, 0..1; default 0.5 */
  int top_k;         /* tiles in the strip, 1..1024; default 8 */
  int strip_tile_px; /* side of one strip cell in px, 8..2048; default 128 */
  int strip_gap_px;  /* white columns between strip cells, 0..64; default 4 */
  int png_level;     /* deflate level of both PNGs, 0..9; default 1 (fast) */
  bool legend;       /* colour bar band below the thumbnail; default true */
} ts_heatmap_opts;

void ts_heatmap_opts_default(ts_heatmap_opts *o);

/* Percentiles of scores over the n tiles: out[i] = r_i / (n - 1), r_i the 0-based rank of
 * scores[i] in ascending order, tied scores sharing the mean of their ranks; so the lowest
 * score gets 0 and the highest 1 (n == 1: 1.0). CLAM's to_percentiles is
 * rankdata(scores, 'average') / n * 100, i.e. (r_i + 1) / n in percent: the same order and
 * ties, rescaled so that the range is exactly [0, 1] whatever n.
 * out may alias scores. Errors: EINVAL (NULL, n < 0), HEATMAP_NO_TILES (n == 0),
 * HEATMAP_BAD_SCORE (NaN or infinite score; out is left untouched), ENOMEM. */
int ts_heatmap_percentiles(const float *scores, int64_t n, float *out);

/* Draw the heatmap of one slide into png_path and, when strip_path is not NULL, the strip of
 * its top tiles into strip_path (see the top of this file for what each pixel is).
 *   s        open slide (not const: a failed read puts the handle in error, ts_slide.h)
 *   tissue   mask of the tissue stage (ts_mask_load_h5), or NULL to colour every tile
 *   coords   n x 2 int64, tile top-left corners in level-0 px (x, y), row-major
 *   tile_l0  tile side in level-0 px (> 0)
 *   scores   n raw attention scores (pre-softmax), the order of coords
 *   o        options, NULL for the defaults
 * The caller keeps ownership of everything passed. Errors: see the top of this file. */
int ts_heatmap_png(ts_slide *s, const ts_mask *tissue, const int64_t *coords, int64_t n, int64_t tile_l0,
                   const float *scores, const ts_heatmap_opts *o, const char *png_path, const char *strip_path);

/* The colour of percentile p (clamped to [0, 1]) as matplotlib's viridis table holds it (floats
 * 0..1, entry min(255, floor(p * 256))). Exposed for tests and for legends drawn elsewhere. */
void ts_heatmap_viridis(double p, float rgb_out[3]);

#endif
