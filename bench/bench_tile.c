/* bench_tile.c SLIDE [REPEATS] — tessera's per-slide tissue + tiling work, in-process:
 * open the slide, compute the tissue mask, lay the 256 px grid at level 0 (the grid of CLAM's
 * TCGA preset), write tiles/<slide>.h5 and the QC PNG. Prints the median wall time and the tile
 * count as a line bench/bench_tile.sh reads: "tessera SECONDS TILES". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <vips/vips.h>

#include "ts_io.h"
#include "ts_slide.h"
#include "ts_tiles.h"
#include "ts_tissue.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bench_tile SLIDE [REPEATS]\n");
    return 2;
  }
  if (VIPS_INIT(argv[0])) return 2;
  int reps = argc > 2 ? atoi(argv[2]) : 5;
  char dir[] = "/tmp/ts_bench_tile_XXXXXX";
  if (!mkdtemp(dir)) return 2;
  char h5[512], png[512];
  snprintf(h5, sizeof h5, "%s/tiles.h5", dir);
  snprintf(png, sizeof png, "%s/qc.png", dir);
  double t[64];
  int64_t tiles = 0;
  if (reps > 64) reps = 64;
  for (int r = 0; r < reps; r++) {
    double t0 = now();
    ts_slide *s = NULL;
    ts_mask m;
    ts_grid g;
    memset(&m, 0, sizeof m);
    memset(&g, 0, sizeof g);
    if (ts_slide_open(argv[1], "bench", &s) < 0 || ts_slide_resolve_mpp(s, 0, 0) < 0 ||
        ts_tissue_mask(s, NULL, &m) < 0) {
      fprintf(stderr, "%s\n", ts_error_message());
      return 1;
    }
    int64_t w0, h0;
    ts_slide_level_dims(s, 0, &w0, &h0);
    ts_grid_params gp = {.size = 256, .mpp = ts_slide_mpp(s), .overlap = 0, .min_tissue = 0.25};
    ts_tiles_meta meta = {.slide_id = "bench", .slide_path = argv[1], .quickhash = ts_slide_quickhash(s),
                          .mpp_source = "file", .config_hash = "", .version = "bench", .mpp0 = ts_slide_mpp(s),
                          .objective_power = ts_slide_objective_power(s), .w0 = w0, .h0 = h0,
                          .read_level = 0, .read_downsample = 1, .read_w = w0, .read_h = h0};
    if (ts_grid_build(w0, h0, ts_slide_mpp(s), &m, &gp, &g) < 0 || ts_tiles_write_h5(h5, &g, &gp, &meta) < 0 ||
        ts_qc_png(&m, g.coords, g.n, g.tile_l0, png) < 0) {
      fprintf(stderr, "%s\n", ts_error_message());
      return 1;
    }
    tiles = g.n;
    ts_grid_clear(&g);
    ts_mask_clear(&m);
    ts_slide_free(&s);
    t[r] = now() - t0;
  }
  qsort(t, (size_t)reps, sizeof t[0], cmp);
  printf("tessera %.6f %lld\n", t[reps / 2], (long long)tiles);
  unlink(h5);
  unlink(png);
  rmdir(dir);
  return 0;
}
