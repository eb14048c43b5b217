/* test_reader.c — the tile reader (workers/reader.c): the libvips fast path and OpenSlide give
 * the same bytes for the same tile (synthetic pyramid: level 0, an exact level, a level that
 * needs a resize, the slide's edge; and the real CMU-1-Small-Region.svs); a tile read alone
 * equals the same tile in a batch; batch content does not depend on the thread count; a corrupt
 * slide gives bad tiles with their token, not a crash.
 *
 * The synthetic slide is made here with libvips (pyramidal, 256 px JPEG tiles, Q 80, an
 * Aperio-style description so that OpenSlide calls it "aperio" with mpp 0.25): 1600 x 1200, so
 * the last JPEG tile column is partial (1600 = 6 * 256 + 64) and the downsamples 2, 4, 8 are
 * exact (see ts_reader.h: OpenSlide is only bitwise-comparable on integral level origins).
 */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <vips/vips.h>

#include "ts_reader.h"

static char slides_dir[4096];
static char tmp_dir[4096];
static char synth_path[4200];
static char corrupt_path[4200];

#define SW 1600
#define SH 1200

static const char *slide_path(const char *name) {
  static char p[4200];
  snprintf(p, sizeof p, "%s/%s", slides_dir, name);
  return p;
}

/* Tissue-like content: smooth colour fields plus per-pixel hash noise (varied JPEG blocks). */
static int make_synth(const char *path) {
  uint8_t *px = malloc((size_t)SW * SH * 3);
  if (!px) return -1;
  for (int y = 0; y < SH; y++)
    for (int x = 0; x < SW; x++) {
      uint32_t h = (uint32_t)x * 2654435761u ^ (uint32_t)y * 2246822519u;
      h ^= h >> 15;
      h *= 2246822519u;
      h ^= h >> 13;
      int n = (int)(h & 31) - 16;
      double a = 0.5 + 0.5 * sin(x * 0.013) * cos(y * 0.021);
      uint8_t *p = px + ((size_t)y * SW + x) * 3;
      p[0] = (uint8_t)VIPS_CLIP(0, (int)(200 - 80 * a) + n, 255);
      p[1] = (uint8_t)VIPS_CLIP(0, (int)(120 + 60 * a) + n / 2, 255);
      p[2] = (uint8_t)VIPS_CLIP(0, (int)(180 + 40 * a) - n, 255);
    }
  VipsImage *im = vips_image_new_from_memory(px, (size_t)SW * SH * 3, SW, SH, 3, VIPS_FORMAT_UCHAR);
  char desc[256];
  snprintf(desc, sizeof desc,
           "Aperio Image Library v10.0.0\r\n%dx%d [0,0 %dx%d] (256x256) JPEG/RGB Q=80|AppMag = 40|MPP = 0.25",
           SW, SH, SW, SH);
  vips_image_set_string(im, "image-description", desc);
  int rc = vips_tiffsave(im, path, "tile", TRUE, "tile_width", 256, "tile_height", 256, "pyramid", TRUE,
                         "compression", VIPS_FOREIGN_TIFF_COMPRESSION_JPEG, "Q", 80, NULL);
  if (rc) fprintf(stderr, "test_reader: tiffsave: %s\n", vips_error_buffer());
  g_object_unref(im);
  free(px);
  return rc ? -1 : 0;
}

/* Copy src to dst with the `which`-th JPEG stream (SOI FF D8 FF) broken: the length of its
 * second marker becomes 1, which libjpeg rejects ("Bogus marker length"). */
static int corrupt_copy(const char *src, const char *dst, int which) {
  FILE *f = fopen(src, "rb");
  if (!f) return -1;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *b = malloc((size_t)n);
  if (!b || fread(b, 1, (size_t)n, f) != (size_t)n) return -1;
  fclose(f);
  int seen = 0, rc = -1;
  for (long i = 8; i + 6 < n; i++)
    if (b[i] == 0xff && b[i + 1] == 0xd8 && b[i + 2] == 0xff && ++seen == which) {
      b[i + 4] = 0;
      b[i + 5] = 1;
      rc = 0;
      break;
    }
  f = fopen(dst, "wb");
  if (!f || fwrite(b, 1, (size_t)n, f) != (size_t)n) rc = -1;
  if (f) fclose(f);
  free(b);
  return rc;
}

static int suite_init(void) {
  if (VIPS_INIT("test_reader")) return -1;
  const char *src = getenv("TS_SOURCE_DIR"); /* ctest sets it; the macro is a fallback */
#ifdef TS_SOURCE_DIR
  if (!src || !*src) src = TS_SOURCE_DIR;
#endif
  if (!src || !*src) src = ".";
  snprintf(slides_dir, sizeof slides_dir, "%s/tests/data/slides", src);
  if (access(slide_path("CMU-1-Small-Region.svs"), R_OK) != 0) {
    fprintf(stderr, "test_reader: test slides not found in %s (tests/data/slides of the repository)\n",
            slides_dir);
    return -1;
  }
  snprintf(tmp_dir, sizeof tmp_dir, "/tmp/ts_test_reader_XXXXXX");
  if (!mkdtemp(tmp_dir)) return -1;
  snprintf(synth_path, sizeof synth_path, "%s/synth.tiff", tmp_dir);
  snprintf(corrupt_path, sizeof corrupt_path, "%s/corrupt.tiff", tmp_dir);
  if (make_synth(synth_path)) return -1;
  return corrupt_copy(synth_path, corrupt_path, 9);
}

static int suite_clean(void) {
  unlink(synth_path);
  unlink(corrupt_path);
  rmdir(tmp_dir);
  return 0;
}

static ts_reader *open_reader(const char *path, double mpp0, double mpp, int size, enum ts_reader_backend be,
                              int threads, int batch) {
  ts_reader_opts o;
  ts_reader_opts_default(&o);
  o.backend = be;
  o.threads = threads;
  o.batch = batch;
  ts_reader *r = NULL;
  int rc = ts_reader_open(path, "t", mpp0, mpp, size, &o, &r);
  if (rc < 0) fprintf(stderr, "\nopen %s: %s\n", path, ts_error_message());
  return r;
}

/* Compare the two backends on n tiles; returns the number of tiles that differ. */
static int compare_backends(const char *path, double mpp0, double mpp, int size, const int64_t *xy, int n,
                            int expect_level, int expect_resize) {
  ts_reader *a = open_reader(path, mpp0, mpp, size, TS_READER_VIPS_TIFF, 1, 4);
  ts_reader *b = open_reader(path, mpp0, mpp, size, TS_READER_OPENSLIDE, 1, 4);
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  CU_ASSERT_STRING_EQUAL(ts_reader_backend_name(a), "vips-tiff");
  CU_ASSERT_STRING_EQUAL(ts_reader_backend_name(b), "openslide");
  if (expect_level >= 0) CU_ASSERT_EQUAL(ts_reader_level(a), expect_level);
  if (expect_resize >= 0) CU_ASSERT_EQUAL(ts_reader_resizes(a), expect_resize);
  size_t tb = (size_t)size * size * 3;
  uint8_t *pa = malloc(tb), *pb = malloc(tb);
  int bad = 0;
  for (int i = 0; i < n; i++) {
    CU_ASSERT_EQUAL(ts_reader_read_tile(a, xy[2 * i], xy[2 * i + 1], pa), 0);
    CU_ASSERT_EQUAL(ts_reader_read_tile(b, xy[2 * i], xy[2 * i + 1], pb), 0);
    if (memcmp(pa, pb, tb)) {
      int maxd = 0;
      size_t nd = 0;
      for (size_t k = 0; k < tb; k++) {
        int d = abs((int)pa[k] - (int)pb[k]);
        if (d) nd++;
        if (d > maxd) maxd = d;
      }
      fprintf(stderr, "\n%s mpp %g size %d tile (%lld, %lld): %zu bytes differ, max %d\n", path, mpp, size,
              (long long)xy[2 * i], (long long)xy[2 * i + 1], nd, maxd);
      bad++;
    }
  }
  free(pa);
  free(pb);
  ts_reader_free(&a);
  ts_reader_free(&b);
  return bad;
}

static void test_reader_same_pixels_synthetic(void) {
  /* Interior, JPEG-tile corners, the partial last tile column and tiles past the slide edge. */
  const int64_t xy[] = {0, 0, 200, 300, 250, 250, 700, 500, 1376, 976, 1500, 1100, 1590, 10, 1000, 1190};
  int n = (int)(sizeof xy / sizeof xy[0] / 2);
  CU_ASSERT_EQUAL(compare_backends(synth_path, 0.25, 0.25, 224, xy, n, 0, 0), 0); /* level 0 */
  CU_ASSERT_EQUAL(compare_backends(synth_path, 0.25, 0.5, 100, xy, n, 1, 0), 0);  /* exact level 1 */
  CU_ASSERT_EQUAL(compare_backends(synth_path, 0.25, 0.6, 100, xy, n, 1, 1), 0);  /* level 1 resized */
  CU_ASSERT_EQUAL(compare_backends(synth_path, 0.25, 0.3, 64, xy, n, 0, 1), 0);   /* level 0 resized */
  CU_ASSERT_EQUAL(compare_backends(synth_path, 0.25, 2.5, 32, xy, n, 3, 1), 0);   /* level 3 (ds 8) */
  /* The edge tile is white outside the slide in both: (1500, 1100) at level 0 reaches 1724. */
  ts_reader *r = open_reader(synth_path, 0.25, 0.25, 224, TS_READER_AUTO, 1, 4);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_STRING_EQUAL(ts_reader_backend_name(r), "vips-tiff");
  CU_ASSERT_EQUAL(ts_reader_region_px(r), 224);
  uint8_t *p = malloc(224 * 224 * 3);
  CU_ASSERT_EQUAL(ts_reader_read_tile(r, 1500, 1100, p), 0);
  CU_ASSERT_EQUAL(p[(223 * 224 + 223) * 3], 255);
  CU_ASSERT_EQUAL(p[(0 * 224 + 150) * 3 + 1], 255);
  CU_ASSERT_NOT_EQUAL(p[0] & p[1] & p[2], 255);
  free(p);
  ts_reader_free(&r);
}

static void test_reader_same_pixels_cmu(void) {
  /* Real Aperio (240 px JPEG tiles, 2220 x 2967, mpp 0.499): interior and the partial edges. */
  const char *path = slide_path("CMU-1-Small-Region.svs");
  const int64_t xy[] = {0, 0, 1000, 1000, 470, 1930, 2000, 2700, 2100, 100, 700, 2900};
  int n = (int)(sizeof xy / sizeof xy[0] / 2);
  CU_ASSERT_EQUAL(compare_backends(path, 0.499, 0.499, 224, xy, n, 0, 0), 0);
  CU_ASSERT_EQUAL(compare_backends(path, 0.499, 1.0, 112, xy, n, 0, 1), 0);
  /* Tissue, not glass: the mean of a central tile is well below white. */
  ts_reader *r = open_reader(path, 0.499, 0.5, 224, TS_READER_AUTO, 1, 4);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_STRING_EQUAL(ts_reader_backend_name(r), "vips-tiff");
  CU_ASSERT_STRING_EQUAL(ts_slide_vendor(ts_reader_slide(r)), "aperio");
  uint8_t *p = malloc(224 * 224 * 3);
  CU_ASSERT_EQUAL(ts_reader_read_tile(r, 1000, 1000, p), 0);
  double s = 0;
  for (int i = 0; i < 224 * 224 * 3; i++)
    s += p[i];
  CU_ASSERT(s / (224.0 * 224 * 3) < 230);
  free(p);
  ts_reader_free(&r);
}

/* Every tile of a grid over the synthetic slide, step 150 (overlapping JPEG tiles, edge). */
static int64_t *grid(int64_t *n_out) {
  int64_t n = 0, *xy = malloc(sizeof *xy * 2 * 200);
  for (int64_t y = 0; y + 100 <= SH; y += 150)
    for (int64_t x = 0; x + 100 <= SW; x += 150) {
      xy[2 * n] = x;
      xy[2 * n + 1] = y;
      n++;
    }
  *n_out = n;
  return xy;
}

/* Run all batches; append pixels/status into one buffer. Returns tiles seen. */
static int64_t run_all(ts_reader *r, const int64_t *xy, int64_t n, uint8_t *pix, int *status, int hold2) {
  CU_ASSERT_EQUAL_FATAL(ts_reader_start(r, xy, n), 0);
  size_t tb = (size_t)ts_reader_tile_size(r) * ts_reader_tile_size(r) * 3;
  int64_t seen = 0, expect_index = 0;
  ts_reader_batch *b = NULL, *prev = NULL;
  while (ts_reader_next(r, &b) == 0 && b) {
    CU_ASSERT_EQUAL(b->index, expect_index);
    CU_ASSERT_EQUAL(b->first, seen);
    for (int i = 0; i < b->n; i++) {
      CU_ASSERT_EQUAL(b->coords[2 * i], xy[2 * (seen + i)]);
      CU_ASSERT_EQUAL(b->coords[2 * i + 1], xy[2 * (seen + i) + 1]);
      status[seen + i] = b->status[i];
    }
    memcpy(pix + (size_t)seen * tb, b->pixels, (size_t)b->n * tb);
    seen += b->n;
    expect_index++;
    if (hold2) { /* the consumer may hold two batches at once */
      ts_reader_release(r, &prev);
      prev = b;
    } else {
      ts_reader_release(r, &b);
    }
  }
  ts_reader_release(r, &prev);
  return seen;
}

static void batch_checks(enum ts_reader_backend be, double mpp, int size) {
  int64_t n;
  int64_t *xy = grid(&n);
  size_t tb = (size_t)size * size * 3;
  uint8_t *p1 = malloc(tb * (size_t)n), *p3 = malloc(tb * (size_t)n), *one = malloc(tb);
  int *s1 = calloc((size_t)n, sizeof *s1), *s3 = calloc((size_t)n, sizeof *s3);
  ts_reader *r1 = open_reader(synth_path, 0.25, mpp, size, be, 1, 5);
  ts_reader *r3 = open_reader(synth_path, 0.25, mpp, size, be, 3, 5);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r3);
  CU_ASSERT_EQUAL(run_all(r1, xy, n, p1, s1, 0), n);
  CU_ASSERT_EQUAL(run_all(r3, xy, n, p3, s3, 1), n);
  CU_ASSERT_EQUAL(memcmp(p1, p3, tb * (size_t)n), 0);
  CU_ASSERT_EQUAL(memcmp(s1, s3, sizeof *s1 * (size_t)n), 0);
  /* A second run on the same reader gives the same again. */
  memset(p3, 0, tb * (size_t)n);
  CU_ASSERT_EQUAL(run_all(r3, xy, n, p3, s3, 0), n);
  CU_ASSERT_EQUAL(memcmp(p1, p3, tb * (size_t)n), 0);
  /* Tile alone == tile in batch. */
  int differ = 0;
  for (int64_t i = 0; i < n; i++) {
    CU_ASSERT_EQUAL(s1[i], 0);
    CU_ASSERT_EQUAL(ts_reader_read_tile(r1, xy[2 * i], xy[2 * i + 1], one), 0);
    if (memcmp(one, p1 + (size_t)i * tb, tb)) differ++;
  }
  CU_ASSERT_EQUAL(differ, 0);
  ts_reader_free(&r1);
  ts_reader_free(&r3);
  free(xy);
  free(p1);
  free(p3);
  free(one);
  free(s1);
  free(s3);
}

static void test_reader_batches_deterministic(void) {
  batch_checks(TS_READER_VIPS_TIFF, 0.25, 128);
  batch_checks(TS_READER_VIPS_TIFF, 0.6, 64); /* resized */
  batch_checks(TS_READER_OPENSLIDE, 0.25, 128);
  /* Zero tiles: no batch. Stop in the middle, then a new run. */
  ts_reader *r = open_reader(synth_path, 0.25, 0.25, 64, TS_READER_AUTO, 2, 2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  ts_reader_batch *b = (ts_reader_batch *)0x1;
  CU_ASSERT_EQUAL(ts_reader_start(r, NULL, 0), 0);
  CU_ASSERT_EQUAL(ts_reader_next(r, &b), 0);
  CU_ASSERT_PTR_NULL(b);
  int64_t n;
  int64_t *xy = grid(&n);
  CU_ASSERT_EQUAL(ts_reader_start(r, xy, n), 0);
  CU_ASSERT_EQUAL(ts_reader_next(r, &b), 0);
  CU_ASSERT_PTR_NOT_NULL(b);
  CU_ASSERT_EQUAL(ts_reader_start(r, xy, n), TS_EINVAL); /* still running */
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "READER_BUSY");
  ts_reader_release(r, &b);
  ts_reader_stop(r);
  CU_ASSERT_EQUAL(ts_reader_start(r, xy, 3), 0);
  CU_ASSERT_EQUAL(ts_reader_next(r, &b), 0);
  CU_ASSERT_EQUAL_FATAL(b != NULL, 1);
  CU_ASSERT_EQUAL(b->n, 2);
  ts_reader_release(r, &b);
  CU_ASSERT_EQUAL(ts_reader_next(r, &b), 0);
  CU_ASSERT_EQUAL_FATAL(b != NULL, 1);
  CU_ASSERT_EQUAL(b->n, 1);
  CU_ASSERT_EQUAL(b->first, 2);
  ts_reader_release(r, &b);
  CU_ASSERT_EQUAL(ts_reader_next(r, &b), 0);
  CU_ASSERT_PTR_NULL(b);
  free(xy);
  ts_reader_free(&r);
  ts_reader_free(&r); /* NULL accepted */
}

/* unreadable.svs opens but its JPEG tile is corrupt ("Bogus marker length"). */
static void bad_tiles(enum ts_reader_backend be, int threads) {
  const char *path = slide_path("unreadable.svs");
  ts_reader *r = open_reader(path, 0.5, 0.5, 16, be, threads, 3);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  const char *tok = ts_reader_backend(r) == TS_READER_VIPS_TIFF ? "TILE_DECODE" : "SLIDE_UNREADABLE";
  uint8_t px[16 * 16 * 3];
  memset(px, 7, sizeof px);
  CU_ASSERT(ts_reader_read_tile(r, 0, 0, px) < 0);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), tok);
  CU_ASSERT(strstr(ts_error_message(), "'t'") != NULL);
  int nz = 0;
  for (size_t i = 0; i < sizeof px; i++)
    nz += px[i] != 0;
  CU_ASSERT_EQUAL(nz, 0);
  /* The reader goes on: a second read fails the same way (reopened handle, same corrupt tile). */
  CU_ASSERT(ts_reader_read_tile(r, 0, 0, px) < 0);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), tok);
  const int64_t xy[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  CU_ASSERT_EQUAL_FATAL(ts_reader_start(r, xy, 7), 0);
  ts_reader_batch *b;
  int seen = 0;
  while (ts_reader_next(r, &b) == 0 && b) {
    CU_ASSERT_EQUAL(b->n_bad, b->n);
    CU_ASSERT(strncmp(b->first_error, tok, strlen(tok)) == 0);
    for (int i = 0; i < b->n; i++) {
      CU_ASSERT(b->status[i] < 0);
      CU_ASSERT_STRING_EQUAL(b->token[i], tok);
      for (int k = 0; k < 16 * 16 * 3; k++)
        if (b->pixels[(size_t)i * 16 * 16 * 3 + k]) {
          CU_FAIL("bad tile not zeroed");
          break;
        }
    }
    seen += b->n;
    ts_reader_release(r, &b);
  }
  CU_ASSERT_EQUAL(seen, 7);
  CU_ASSERT_EQUAL(ts_reader_bad_tiles(r), 9);
  ts_reader_free(&r);
}

static void test_reader_bad_tiles(void) {
  bad_tiles(TS_READER_OPENSLIDE, 1);
  bad_tiles(TS_READER_OPENSLIDE, 3);
  bad_tiles(TS_READER_AUTO, 2);
}

/* One corrupt JPEG tile in an otherwise good slide: exactly the tiles that touch it are bad, in
 * both backends and with any thread count, and the other tiles are the good slide's pixels.
 * Run twice on the same reader: the second run meets libvips' blacked-out cache tile and must
 * still call those tiles bad, not black. */
static void test_reader_corrupt_tile(void) {
  int64_t n;
  int64_t *xy = grid(&n);
  const int size = 128;
  size_t tb = (size_t)size * size * 3;
  uint8_t *good = malloc(tb * (size_t)n), *pix = malloc(tb * (size_t)n);
  int *sg = calloc((size_t)n, sizeof *sg), *so = calloc((size_t)n, sizeof *so),
      *sv = calloc((size_t)n, sizeof *sv);
  ts_reader *r = open_reader(synth_path, 0.25, 0.25, size, TS_READER_AUTO, 2, 4);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  run_all(r, xy, n, good, sg, 0);
  ts_reader_free(&r);

  r = open_reader(corrupt_path, 0.25, 0.25, size, TS_READER_OPENSLIDE, 1, 4);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  run_all(r, xy, n, pix, so, 0);
  ts_reader_free(&r);
  int nbad = 0;
  for (int64_t i = 0; i < n; i++) {
    if (so[i] < 0)
      nbad++;
    else if (memcmp(pix + (size_t)i * tb, good + (size_t)i * tb, tb))
      CU_FAIL("openslide: a good tile of the corrupt slide differs");
  }
  CU_ASSERT(nbad > 0 && nbad <= 9); /* a 256 px JPEG tile meets at most 3 x 3 tiles at step 150 */
  for (int threads = 1; threads <= 3; threads += 2) {
    r = open_reader(corrupt_path, 0.25, 0.25, size, TS_READER_AUTO, threads, 4);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_STRING_EQUAL(ts_reader_backend_name(r), "vips-tiff");
    for (int run = 0; run < 2; run++) {
      memset(sv, 0, sizeof *sv * (size_t)n);
      run_all(r, xy, n, pix, sv, 0);
      for (int64_t i = 0; i < n; i++) {
        CU_ASSERT_EQUAL(sv[i] < 0, so[i] < 0);
        if (sv[i] == 0 && memcmp(pix + (size_t)i * tb, good + (size_t)i * tb, tb))
          CU_FAIL("vips: a good tile of the corrupt slide differs");
      }
    }
    /* Bad tiles alone: same verdict. */
    uint8_t *one = malloc(tb);
    for (int64_t i = 0; i < n; i++)
      if (so[i] < 0) {
        CU_ASSERT(ts_reader_read_tile(r, xy[2 * i], xy[2 * i + 1], one) < 0);
        CU_ASSERT_STRING_EQUAL(ts_error_token(), "TILE_DECODE");
      }
    free(one);
    ts_reader_free(&r);
  }
  fprintf(stderr, "\n[%d of %lld tiles touch the corrupt JPEG tile] ", nbad, (long long)n);
  free(xy);
  free(good);
  free(pix);
  free(sg);
  free(so);
  free(sv);
}

static void test_reader_open_errors(void) {
  ts_reader *r = (ts_reader *)0x1;
  CU_ASSERT(ts_reader_open(slide_path("no-such.svs"), "x", 0.25, 0.5, 224, NULL, &r) < 0);
  CU_ASSERT_PTR_NULL(r);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "SLIDE_MISSING");
  CU_ASSERT(ts_reader_open(synth_path, "x", 0.25, 0.5, 0, NULL, &r) < 0);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "READER_BAD_PARAMS");
  CU_ASSERT(ts_reader_open(synth_path, "x", 0.0, 0.5, 224, NULL, &r) < 0);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "READER_BAD_PARAMS");
  ts_reader_opts o;
  ts_reader_opts_default(&o);
  o.threads = 0;
  CU_ASSERT(ts_reader_open(synth_path, "x", 0.25, 0.5, 224, &o, &r) < 0);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "READER_BAD_PARAMS");
  /* A slide OpenSlide reads but that is not one tiled TIFF directory per level. */
  ts_reader_opts_default(&o);
  o.backend = TS_READER_VIPS_TIFF;
  int rc = ts_reader_open(slide_path("boxes.tiff"), "boxes", 0.25, 0.5, 64, &o, &r);
  if (rc < 0) {
    CU_ASSERT_STRING_EQUAL(ts_error_token(), "READER_NO_FAST_PATH");
  } else {
    ts_reader_free(&r);
  }
}

int ts_test_register(void) {
  CU_pSuite s = CU_add_suite("reader", suite_init, suite_clean);
  if (!s) return -1;
  if (!CU_add_test(s, "test_reader_same_pixels_synthetic", test_reader_same_pixels_synthetic) ||
      !CU_add_test(s, "test_reader_same_pixels_cmu", test_reader_same_pixels_cmu) ||
      !CU_add_test(s, "test_reader_batches_deterministic", test_reader_batches_deterministic) ||
      !CU_add_test(s, "test_reader_bad_tiles", test_reader_bad_tiles) ||
      !CU_add_test(s, "test_reader_corrupt_tile", test_reader_corrupt_tile) ||
      !CU_add_test(s, "test_reader_open_errors", test_reader_open_errors))
    return -1;
  return 0;
}
