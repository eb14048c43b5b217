/* bench_tile.c — tessera's per-slide tissue + tiling work, in-process, and the benchmark slide.
 *
 *   bench_tile SLIDE [REPEATS [TILE_PX]]
 *     open the slide, compute the tissue mask (tissue defaults: 8 um/px), lay a TILE_PX grid
 *     (default 256) at the slide's own level-0 mpp (the grid of CLAM's TCGA preset at
 *     patch_level 0), write the mask HDF5, the tile HDF5 and both QC PNGs, exactly what the
 *     tissue and tile stages write, with their commits (fsync, rename, directory fsync). Prints the median wall time, the tile count and the median
 *     of each step (ms) as lines bench/bench_tile.sh reads: the median and the minimum of the
 *     wall time over REPEATS, then the median process CPU time (all threads):
 *       tessera SECONDS TILES MIN_SECONDS CPU_SECONDS
 *       step NAME MS MIN_MS CPU_MS
 *
 *   bench_tile make-slide SRC OUT [SIZE [MPP]]
 *     the benchmark slide of issue 15: SRC (any slide OpenSlide reads, level 0) replicated
 *     until it covers SIZE² (default 20000), cropped to SIZE², saved as a tiled (256²) JPEG
 *     (Q 75) pyramidal TIFF with an Aperio description giving MPP (default 0.5) and 20x, so
 *     that OpenSlide reads it as an Aperio slide with a pyramid (downsamples 2, 4, ...) and a
 *     pixel size, like a scanner's SVS. Same recipe as `vips openslideload` + replicate + crop
 *     + tiffsave, done through the libvips API because the vips CLI cannot set the
 *     description.
 */
#include <math.h>
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

static double cpu_now(void) { /* every thread of the process: libvips' and the reader's too */
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static int make_slide(const char *src, const char *out, int size, double mpp) {
  VipsImage *in = NULL, *flat = NULL, *rep = NULL, *crop = NULL;
  int rc = 1;
  if (vips_openslideload(src, &in, "level", 0, NULL)) goto out;
  if (vips_flatten(in, &flat, "background", vips_array_double_newv(3, 255.0, 255.0, 255.0), NULL)) goto out;
  int ax = (size + flat->Xsize - 1) / flat->Xsize, ay = (size + flat->Ysize - 1) / flat->Ysize;
  if (vips_replicate(flat, &rep, ax, ay, NULL)) goto out;
  if (vips_crop(rep, &crop, 0, 0, size, size, NULL)) goto out;
  char desc[512];
  snprintf(desc, sizeof desc,
           "Aperio Image Library v12.0.0\r\n%dx%d [0,0 %dx%d] (256x256) JPEG/RGB Q=75|"
           "AppMag = 20|MPP = %.4f|Source = %s replicated %dx%d, cropped",
           size, size, size, size, mpp, src, ax, ay);
  vips_image_set_string(crop, "image-description", desc);
  if (vips_tiffsave(crop, out, "tile", TRUE, "tile_width", 256, "tile_height", 256, "pyramid", TRUE,
                    "compression", VIPS_FOREIGN_TIFF_COMPRESSION_JPEG, "Q", 75, "bigtiff", TRUE, NULL))
    goto out;
  printf("made %s: %dx%d, %dx%d copies of %s (%dx%d), MPP %.4f\n", out, size, size, ax, ay, src, flat->Xsize,
         flat->Ysize, mpp);
  rc = 0;
out:
  if (rc) fprintf(stderr, "make-slide: %s\n", vips_error_buffer());
  if (crop) g_object_unref(crop);
  if (rep) g_object_unref(rep);
  if (flat) g_object_unref(flat);
  if (in) g_object_unref(in);
  return rc;
}

enum { N_STEPS = TS_TISSUE_NPROF + 9 };

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bench_tile SLIDE [REPEATS [TILE_PX]] | bench_tile make-slide SRC OUT [SIZE [MPP]]\n");
    return 2;
  }
  if (VIPS_INIT(argv[0])) return 2;
  if (!strcmp(argv[1], "make-slide")) {
    if (argc < 4) return 2;
    return make_slide(argv[2], argv[3], argc > 4 ? atoi(argv[4]) : 20000, argc > 5 ? atof(argv[5]) : 0.5);
  }
  int reps = argc > 2 ? atoi(argv[2]) : 5;
  int tile_px = argc > 3 ? atoi(argv[3]) : 256;
  char dir[] = "/tmp/ts_bench_tile_XXXXXX";
  if (!mkdtemp(dir)) return 2;
  char mask_h5[512], mask_png[512], h5[512], png[512];
  snprintf(mask_h5, sizeof mask_h5, "%s/mask.h5", dir);
  snprintf(mask_png, sizeof mask_png, "%s/mask.png", dir);
  snprintf(h5, sizeof h5, "%s/tiles.h5", dir);
  snprintf(png, sizeof png, "%s/qc.png", dir);
  static const char *names[N_STEPS] = {TS_TISSUE_PROF_NAMES, "open",      "tissue_png", "tissue_h5",
                                       "tissue_commit",      "load_mask", "grid",       "tile_png",
                                       "tile_h5",            "tile_commit"};
  char t_mask_h5[600], t_mask_png[600], t_h5[600], t_png[600];
  ts_io_tmp_path(mask_h5, t_mask_h5, sizeof t_mask_h5);
  ts_io_tmp_path(mask_png, t_mask_png, sizeof t_mask_png);
  ts_io_tmp_path(h5, t_h5, sizeof t_h5);
  ts_io_tmp_path(png, t_png, sizeof t_png);
  double t[64], steps[N_STEPS][64], csteps[N_STEPS][64], tcpu[64];
  int64_t tiles = 0;
  if (reps > 64) reps = 64;
  if (reps < 1) reps = 1;
  for (int r = 0; r < reps; r++) {
    double t0 = now(), c0 = cpu_now(), ts[10], cs[10];
    ts_slide *s = NULL;
    ts_mask m, m2;
    ts_grid g;
    memset(&m, 0, sizeof m);
    memset(&m2, 0, sizeof m2);
    memset(&g, 0, sizeof g);
    /* the tissue stage */
    if (ts_slide_open(argv[1], "bench", &s) < 0 || ts_slide_resolve_mpp(s, 0, 0) < 0) goto fail;
    ts[0] = now();
    cs[0] = cpu_now();
    if (ts_tissue_mask(s, NULL, &m) < 0) goto fail;
    ts[1] = now();
    cs[1] = cpu_now();
    if (ts_qc_png_to_tmp(&m, NULL, 0, 0, t_mask_png) < 0) goto fail;
    ts[2] = now();
    cs[2] = cpu_now();
    if (ts_mask_save_h5_to_tmp(&m, t_mask_h5) < 0) goto fail;
    ts[3] = now();
    cs[3] = cpu_now();
    if (ts_outputs_commit((const char *const[]){t_mask_h5, t_mask_png}, (const char *const[]){mask_h5, mask_png}, 2) < 0)
      goto fail;
    ts[4] = now();
    cs[4] = cpu_now();
    /* the tile stage: from the saved mask, as stages/tile.c */
    if (ts_mask_load_h5(mask_h5, &m2) < 0) goto fail;
    ts[5] = now();
    cs[5] = cpu_now();
    int64_t w0, h0;
    ts_slide_level_dims(s, 0, &w0, &h0);
    ts_grid_params gp = {.size = tile_px, .mpp = ts_slide_mpp(s), .overlap = 0, .min_tissue = 0.25};
    int lvl = ts_slide_best_level(s, gp.mpp);
    int64_t lw, lh;
    ts_slide_level_dims(s, lvl, &lw, &lh);
    ts_tiles_meta meta = {.slide_id = "bench", .slide_path = argv[1], .quickhash = ts_slide_quickhash(s),
                          .mpp_source = "file", .config_hash = "", .version = "bench", .mpp0 = ts_slide_mpp(s),
                          .objective_power = ts_slide_objective_power(s), .w0 = w0, .h0 = h0,
                          .read_level = lvl, .read_downsample = ts_slide_level_downsample(s, lvl),
                          .read_w = lw, .read_h = lh};
    if (ts_grid_build(w0, h0, ts_slide_mpp(s), &m2, &gp, &g) < 0) goto fail;
    ts[6] = now();
    cs[6] = cpu_now();
    if (ts_qc_png_to_tmp(&m2, g.coords, g.n, g.tile_l0, t_png) < 0) goto fail;
    ts[7] = now();
    cs[7] = cpu_now();
    if (ts_tiles_write_h5_to_tmp(h5, t_h5, &g, &gp, &meta) < 0) goto fail;
    ts[8] = now();
    cs[8] = cpu_now();
    if (ts_outputs_commit((const char *const[]){t_h5, t_png}, (const char *const[]){h5, png}, 2) < 0) goto fail;
    ts[9] = now();
    cs[9] = cpu_now();
    tiles = g.n;
    for (int k = 0; k < TS_TISSUE_NPROF; k++) {
      steps[k][r] = m.prof_ms[k];
      csteps[k][r] = m.prof_cpu_ms[k];
    }
    steps[TS_TISSUE_NPROF][r] = 1e3 * (ts[0] - t0);
    csteps[TS_TISSUE_NPROF][r] = 1e3 * (cs[0] - c0);
    for (int k = 1; k < 9; k++) {
      steps[TS_TISSUE_NPROF + k][r] = 1e3 * (ts[k + 1] - ts[k]);
      csteps[TS_TISSUE_NPROF + k][r] = 1e3 * (cs[k + 1] - cs[k]);
    }
    ts_grid_clear(&g);
    ts_mask_clear(&m);
    ts_mask_clear(&m2);
    ts_slide_free(&s);
    t[r] = now() - t0;
    tcpu[r] = cpu_now() - c0;
    continue;
  fail:
    fprintf(stderr, "%s\n", ts_error_message());
    return 1;
  }
  /* median (what a run sees on this machine) and minimum (the cost without the other
   * processes of a shared machine) */
  qsort(t, (size_t)reps, sizeof t[0], cmp);
  qsort(tcpu, (size_t)reps, sizeof tcpu[0], cmp);
  printf("tessera %.6f %lld %.6f %.6f\n", t[reps / 2], (long long)tiles, t[0], tcpu[reps / 2]);
  double sum[3] = {0, 0, 0};
  for (int k = 0; k < N_STEPS; k++) {
    qsort(steps[k], (size_t)reps, sizeof steps[k][0], cmp);
    qsort(csteps[k], (size_t)reps, sizeof csteps[k][0], cmp);
    printf("step %s %.2f %.2f %.2f\n", names[k], steps[k][reps / 2], steps[k][0], csteps[k][reps / 2]);
    sum[0] += steps[k][reps / 2];
    sum[1] += steps[k][0];
    sum[2] += csteps[k][reps / 2];
  }
  printf("step sum %.2f %.2f %.2f\n", sum[0], sum[1], sum[2]);
  unlink(mask_h5);
  unlink(mask_png);
  unlink(h5);
  unlink(png);
  rmdir(dir);
  return 0;
}
