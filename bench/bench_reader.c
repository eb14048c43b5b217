/* bench_reader.c — tiles/s of the tessera tile reader against a plain openslide_read_region loop
 * over the same tiles (same level-0 coordinates, same level), measured in the same run.
 *
 *     bench_reader [SLIDE] [--tiles N] [--size PX] [--keep]
 *
 * Without SLIDE it writes a synthetic 20000 x 20000 slide at 0.25 um/px into a temporary
 * directory (libvips: Perlin-noise colour fields plus fine Perlin texture, pyramidal TIFF,
 * 256 px JPEG tiles at Q 80, Aperio-style description, as `tessera synth` writes them) and
 * deletes it afterwards unless --keep. Tiles: size px (default 224) at the slide's own mpp
 * (level 0, no resize), a row-major grid with step = size over the whole slide (the tile
 * stage's order), at most N tiles (default all: 7921 for 20000^2 / 224).
 *
 * Timed: openslide_open + the loop of openslide_read_region (ARGB, no conversion); the reader
 * with 1 decoding thread and with 2 (open + start + every batch consumed; the consumer only
 * touches each batch). The file is read once beforehand so that all three see a warm page cache.
 * Printed: tiles/s of each and the ratios reader / OpenSlide. Goal (issue 3): >= 3x.
 */
#include <openslide/openslide.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <vips/vips.h>

#include "ts_reader.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double cpu_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* CPU seconds of the last measured phase (all threads of the process). */
static double last_cpu;

static int make_slide(const char *path, int side) {
  VipsImage *t[8] = {0};
  int rc = -1;
  /* Colour fields (cells of 512 px) and texture (8 px cells), both lazy: memory stays small. */
  if (vips_perlin(&t[0], side, side, "cell_size", 512, "seed", 11, NULL) ||
      vips_perlin(&t[1], side, side, "cell_size", 8, "seed", 12, NULL) ||
      vips_perlin(&t[2], side, side, "cell_size", 3, "seed", 13, NULL))
    goto out;
  double a1[3] = {-60, -90, -40}, b1[3] = {200, 150, 200};
  double a2[3] = {-25, -30, -20}, a3[3] = {18, 18, 18};
  if (vips_linear(t[0], &t[3], a1, b1, 3, NULL) ||
      vips_linear(t[1], &t[4], a2, (double[]){0, 0, 0}, 3, NULL) ||
      vips_linear(t[2], &t[5], a3, (double[]){0, 0, 0}, 3, NULL) ||
      vips_sum((VipsImage *[]){t[3], t[4], t[5]}, &t[6], 3, NULL) || vips_cast_uchar(t[6], &t[7], NULL))
    goto out;
  char desc[256];
  snprintf(desc, sizeof desc,
           "Aperio Image Library v10.0.0\r\n%dx%d [0,0 %dx%d] (256x256) JPEG/RGB Q=80|AppMag = 40|MPP = 0.25",
           side, side, side, side);
  vips_image_set_string(t[7], "image-description", desc);
  if (vips_tiffsave(t[7], path, "tile", TRUE, "tile_width", 256, "tile_height", 256, "pyramid", TRUE,
                    "compression", VIPS_FOREIGN_TIFF_COMPRESSION_JPEG, "Q", 80, NULL))
    goto out;
  rc = 0;
out:
  if (rc) fprintf(stderr, "bench_reader: making the slide: %s\n", vips_error_buffer());
  for (int i = 0; i < 8; i++)
    if (t[i]) g_object_unref(t[i]);
  return rc;
}

static void warm(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return;
  static char buf[1 << 20];
  while (fread(buf, 1, sizeof buf, f) == sizeof buf) {
  }
  fclose(f);
}

/* tiles/s through openslide_read_region; -1 on error. */
static double bench_openslide(const char *path, const int64_t *xy, int64_t n, int size) {
  double t0 = now(), c0 = cpu_now();
  openslide_t *osr = openslide_open(path);
  if (!osr || openslide_get_error(osr)) {
    fprintf(stderr, "openslide_open failed\n");
    return -1;
  }
  uint32_t *buf = malloc((size_t)size * size * 4);
  unsigned sink = 0;
  for (int64_t i = 0; i < n; i++) {
    openslide_read_region(osr, buf, xy[2 * i], xy[2 * i + 1], 0, size, size);
    sink += buf[(size_t)(i % size) * size];
  }
  const char *err = openslide_get_error(osr);
  double dt = now() - t0;
  last_cpu = cpu_now() - c0;
  if (err) fprintf(stderr, "openslide: %s\n", err);
  openslide_close(osr);
  free(buf);
  if (sink == 0xdeadbeef) puts("");
  return err ? -1 : (double)n / dt;
}

static double bench_reader(const char *path, double mpp0, const int64_t *xy, int64_t n, int size, int threads,
                           const char **backend) {
  double t0 = now(), c0 = cpu_now();
  ts_reader_opts o;
  ts_reader_opts_default(&o);
  o.threads = threads;
  o.batch = 32;
  o.queue = 2 * threads + 1;
  ts_reader *r = NULL;
  if (ts_reader_open(path, "bench", mpp0, mpp0, size, &o, &r) < 0 || ts_reader_start(r, xy, n) < 0) {
    fprintf(stderr, "reader: %s\n", ts_error_message());
    ts_reader_free(&r);
    return -1;
  }
  *backend = ts_reader_backend_name(r);
  ts_reader_batch *b;
  int64_t got = 0, bad = 0;
  unsigned sink = 0;
  while (ts_reader_next(r, &b) == 0 && b) {
    got += b->n;
    bad += b->n_bad;
    sink += b->pixels[0];
    ts_reader_release(r, &b);
  }
  double dt = now() - t0;
  last_cpu = cpu_now() - c0;
  ts_reader_free(&r);
  if (sink == 0xdeadbeef) puts("");
  if (got != n || bad) {
    fprintf(stderr, "reader: %lld of %lld tiles, %lld bad\n", (long long)got, (long long)n, (long long)bad);
    return -1;
  }
  return (double)n / dt;
}

int main(int argc, char **argv) {
  const char *path = NULL;
  int64_t max_tiles = -1;
  int size = 224;
  bool keep = false;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--tiles") && i + 1 < argc)
      max_tiles = atoll(argv[++i]);
    else if (!strcmp(argv[i], "--size") && i + 1 < argc)
      size = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--keep"))
      keep = true;
    else if (argv[i][0] != '-')
      path = argv[i];
    else {
      fprintf(stderr, "usage: %s [SLIDE] [--tiles N] [--size PX] [--keep]\n", argv[0]);
      return 2;
    }
  }
  if (VIPS_INIT(argv[0])) return 1;
  char dir[] = "/tmp/ts_bench_reader_XXXXXX", tmp_path[128] = "";
  if (!path) {
    if (!mkdtemp(dir)) return 1;
    snprintf(tmp_path, sizeof tmp_path, "%s/synth-20000.tiff", dir);
    double t0 = now();
    if (make_slide(tmp_path, 20000)) return 1;
    fprintf(stderr, "wrote %s in %.1f s\n", tmp_path, now() - t0);
    path = tmp_path;
  }
  ts_slide *s = NULL;
  if (ts_slide_open(path, "bench", &s) < 0 || ts_slide_resolve_mpp(s, 0, 0.25) < 0) {
    fprintf(stderr, "%s\n", ts_error_message());
    return 1;
  }
  double mpp0 = ts_slide_mpp(s);
  int64_t w, h;
  ts_slide_level_dims(s, 0, &w, &h);
  ts_slide_free(&s);
  int64_t n = 0, cap = (w / size) * (h / size);
  if (max_tiles >= 0 && max_tiles < cap) cap = max_tiles;
  int64_t *xy = malloc(sizeof *xy * 2 * (size_t)(cap > 0 ? cap : 1));
  for (int64_t y = 0; y + size <= h && n < cap; y += size)
    for (int64_t x = 0; x + size <= w && n < cap; x += size) {
      xy[2 * n] = x;
      xy[2 * n + 1] = y;
      n++;
    }
  warm(path);
  printf("slide %s: %lld x %lld at %.4f um/px; %lld tiles of %d px at level 0\n", path, (long long)w,
         (long long)h, mpp0, (long long)n, size);
  const char *be = "?";
  /* Wall-clock tiles/s, and tiles per CPU-second (robust to other load on the machine). */
  double os = bench_openslide(path, xy, n, size), os_c = (double)n / last_cpu;
  double r1 = bench_reader(path, mpp0, xy, n, size, 1, &be), r1_c = (double)n / last_cpu;
  double r2 = bench_reader(path, mpp0, xy, n, size, 2, &be), r2_c = (double)n / last_cpu;
  printf("openslide_read_region loop : %8.0f tiles/s  %8.0f tiles/cpu-s\n", os, os_c);
  printf("tessera reader, 1 thread   : %8.0f tiles/s  %8.0f tiles/cpu-s  (%s)  ratio %.2fx (cpu %.2fx)\n", r1,
         r1_c, be, r1 / os, r1_c / os_c);
  printf("tessera reader, 2 threads  : %8.0f tiles/s  %8.0f tiles/cpu-s  (%s)  ratio %.2fx (cpu %.2fx)\n", r2,
         r2_c, be, r2 / os, r2_c / os_c);
  printf("BENCH name=reader_1_thread value=%.1f unit=tiles/s baseline=%.1f ratio=%.3f better=higher\n", r1, os, r1 / os);
  printf("BENCH name=reader_2_threads value=%.1f unit=tiles/s baseline=%.1f ratio=%.3f better=higher\n", r2, os, r2 / os);
  printf("goal >= 3x: %s\n", r1 / os >= 3.0   ? "met with 1 thread"
                             : r2 / os >= 3.0 ? "met with 2 threads"
                                              : "NOT met");
  free(xy);
  if (tmp_path[0] && !keep) {
    unlink(tmp_path);
    rmdir(dir);
  }
  vips_shutdown();
  return (os > 0 && r1 > 0 && r2 > 0) ? 0 : 1;
}
