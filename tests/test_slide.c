/* test_slide.c — ts_slide on the real public test slides in tests/data/slides (origins and
 * licences in tests/data/README.md):
 * the token each failure case gives, properties of the good ones, read zeroing and stickiness
 * on a corrupt tile, level choice and the mpp resolution order. */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <vips/vips.h>

#include "ts_slide.h"
#include "ts_test_util.h"

static char slides_dir[4096];

static const char *slide_path(const char *name) {
  static char p[4200];
  snprintf(p, sizeof p, "%s/%s", slides_dir, name);
  return p;
}

static int suite_init(void) {
  if (VIPS_INIT("test_slide")) return -1;
  const char *src = getenv("TS_SOURCE_DIR"); /* ctest sets it; the macro is a fallback */
#ifdef TS_SOURCE_DIR
  if (!src || !*src) src = TS_SOURCE_DIR;
#endif
  if (!src || !*src) src = ".";
  snprintf(slides_dir, sizeof slides_dir, "%s/tests/data/slides", src);
  FILE *f = fopen(slide_path("CMU-1-Small-Region.svs"), "rb");
  if (!f) {
    fprintf(stderr, "test_slide: test slides not found in %s (tests/data/slides of the repository)\n",
            slides_dir);
    return -1;
  }
  fclose(f);
  return ts_test_tmpdir_make("test_slide");
}

/* Open and expect failure with `token`; returns nothing, asserts. */
static void expect_open_token(const char *name, const char *token) {
  ts_slide *s = (ts_slide *)0x1;
  int rc = ts_slide_open(slide_path(name), name, &s);
  CU_ASSERT(rc < 0);
  CU_ASSERT_PTR_NULL(s);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), token);
  /* The message starts with the token and names the slide. */
  CU_ASSERT(strncmp(ts_error_message(), token, strlen(token)) == 0);
  CU_ASSERT(strstr(ts_error_message(), name) != NULL);
  if (rc >= 0) ts_slide_free(&s);
}

static void test_slide_failure_tokens(void) {
  expect_open_token("not-a-slide.svs", "SLIDE_NOT_A_SLIDE");
  expect_open_token("unopenable.tiff", "SLIDE_UNOPENABLE");
  expect_open_token("no-such-file.svs", "SLIDE_MISSING");
  /* OpenSlide's own reason is in the message. */
  ts_slide *s = NULL;
  CU_ASSERT(ts_slide_open(slide_path("unopenable.tiff"), "u", &s) < 0);
  CU_ASSERT(strstr(ts_error_message(), "ompression") != NULL);
}

static void test_slide_cmu_properties(void) {
  ts_slide *s = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_slide_open(slide_path("CMU-1-Small-Region.svs"), "cmu", &s), 0);
  CU_ASSERT_STRING_EQUAL(ts_slide_vendor(s), "aperio");
  CU_ASSERT_STRING_EQUAL(ts_slide_id(s), "cmu");
  CU_ASSERT_DOUBLE_EQUAL(ts_slide_file_mpp(s), 0.499, 1e-9);
  CU_ASSERT_DOUBLE_EQUAL(ts_slide_objective_power(s), 20.0, 1e-9);
  CU_ASSERT_EQUAL(strlen(ts_slide_quickhash(s)), 64);
  CU_ASSERT_EQUAL(ts_slide_level_count(s), 1);
  int64_t w, h;
  ts_slide_level_dims(s, 0, &w, &h);
  CU_ASSERT_EQUAL(w, 2220);
  CU_ASSERT_EQUAL(h, 2967);
  CU_ASSERT_EQUAL(ts_slide_resolve_mpp(s, 0.3, 0.2), 0);
  CU_ASSERT_STRING_EQUAL(ts_slide_mpp_source(s), "file");
  CU_ASSERT_DOUBLE_EQUAL(ts_slide_mpp(s), 0.499, 1e-9);
  /* A read of tissue is not blank and not all white. */
  uint8_t *rgb = malloc(64 * 64 * 3);
  CU_ASSERT_EQUAL(ts_slide_read_rgb(s, 0, 1000, 1000, 64, 64, rgb), 0);
  long sum = 0;
  for (int i = 0; i < 64 * 64 * 3; i++)
    sum += rgb[i];
  CU_ASSERT(sum > 0 && sum < 255L * 64 * 64 * 3);
  /* Outside the slide OpenSlide gives transparent pixels: composited over white. */
  CU_ASSERT_EQUAL(ts_slide_read_rgb(s, 0, 5000, 5000, 8, 8, rgb), 0);
  CU_ASSERT_EQUAL(rgb[0], 255);
  CU_ASSERT_EQUAL(rgb[8 * 8 * 3 - 1], 255);
  free(rgb);
  ts_slide_free(&s);
  CU_ASSERT_PTR_NULL(s);
  ts_slide_free(&s); /* NULL is fine */
}

static void test_slide_small_ones_open(void) {
  static const struct {
    const char *name, *vendor;
    int has_mpp;
  } cases[] = {{"small.svs", "aperio", 1},
               {"boxes.tiff", "generic-tiff", 0},
               {"he_levels.tiff", "generic-tiff", 0}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    ts_slide *s = NULL;
    int rc = ts_slide_open(slide_path(cases[i].name), cases[i].name, &s);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc < 0) {
      fprintf(stderr, "%s: %s\n", cases[i].name, ts_error_message());
      continue;
    }
    CU_ASSERT_STRING_EQUAL(ts_slide_vendor(s), cases[i].vendor);
    CU_ASSERT_EQUAL(ts_slide_file_mpp(s) > 0, cases[i].has_mpp);
    uint8_t rgb[16 * 16 * 3];
    CU_ASSERT_EQUAL(ts_slide_read_rgb(s, 0, 0, 0, 16, 16, rgb), 0);
    ts_slide_free(&s);
  }
}

static void test_slide_unreadable_zeroes_and_sticks(void) {
  ts_slide *s = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_slide_open(slide_path("unreadable.svs"), "bad", &s), 0);
  CU_ASSERT_STRING_EQUAL(ts_slide_vendor(s), "aperio");
  int64_t w, h;
  ts_slide_level_dims(s, 0, &w, &h);
  uint8_t *rgb = malloc((size_t)(w * h * 3));
  memset(rgb, 0xAB, (size_t)(w * h * 3));
  int rc = ts_slide_read_rgb(s, 0, 0, 0, (int)w, (int)h, rgb);
  CU_ASSERT(rc < 0);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "SLIDE_UNREADABLE");
  int nonzero = 0;
  for (int64_t i = 0; i < w * h * 3; i++)
    nonzero |= rgb[i];
  CU_ASSERT_EQUAL(nonzero, 0);
  /* Sticky: even a 1-px read fails now, and zeroes. */
  uint8_t px[3] = {1, 2, 3};
  CU_ASSERT(ts_slide_read_rgb(s, 0, 0, 0, 1, 1, px) < 0);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "SLIDE_UNREADABLE");
  CU_ASSERT(px[0] == 0 && px[1] == 0 && px[2] == 0);
  /* Reopen clears it; the corrupt tile fails again. */
  CU_ASSERT_EQUAL(ts_slide_reopen(s), 0);
  CU_ASSERT(ts_slide_read_rgb(s, 0, 0, 0, (int)w, (int)h, rgb) < 0);
  free(rgb);
  ts_slide_free(&s);
}

static void test_slide_best_level(void) {
  ts_slide *s = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_slide_open(slide_path("boxes.tiff"), "boxes", &s), 0);
  CU_ASSERT(ts_slide_level_count(s) == 4);
  CU_ASSERT_EQUAL(ts_slide_resolve_mpp(s, 0, 0.25), 0);
  CU_ASSERT_STRING_EQUAL(ts_slide_mpp_source(s), "config");
  /* Level mpps are 0.25 * downsample; the pick is the coarsest at or below the target. */
  for (double t = 0.1; t < 10; t *= 1.37) {
    int l = ts_slide_best_level(s, t);
    double m = 0.25 * ts_slide_level_downsample(s, l);
    if (l > 0) CU_ASSERT(m <= t * (1 + 1e-6));
    if (l + 1 < ts_slide_level_count(s)) CU_ASSERT(0.25 * ts_slide_level_downsample(s, l + 1) > t || l == 0);
  }
  CU_ASSERT_EQUAL(ts_slide_best_level(s, 0.1), 0); /* finer than level 0 -> level 0 */
  CU_ASSERT_EQUAL(ts_slide_best_level(s, 0.25), 0);
  CU_ASSERT_EQUAL(ts_slide_best_level(s, 0.25 * ts_slide_level_downsample(s, 1)), 1);
  CU_ASSERT_EQUAL(ts_slide_best_level(s, 1000), 3);
  ts_slide_free(&s);

  CU_ASSERT_EQUAL_FATAL(ts_slide_open(slide_path("he_levels.tiff"), "he", &s), 0);
  CU_ASSERT_EQUAL(ts_slide_resolve_mpp(s, 0.5, 0), 0);
  CU_ASSERT_STRING_EQUAL(ts_slide_mpp_source(s), "cohort");
  int n = ts_slide_level_count(s);
  CU_ASSERT(n >= 2);
  for (int l = 1; l < n; l++) {
    double d = ts_slide_level_downsample(s, l);
    /* just above a level's mpp picks it; just below picks a finer one */
    CU_ASSERT_EQUAL(ts_slide_best_level(s, 0.5 * d * 1.001), l);
    CU_ASSERT(ts_slide_best_level(s, 0.5 * d * 0.999) < l);
  }
  ts_slide_free(&s);
}

static void test_slide_resolve_mpp_order(void) {
  ts_slide *s = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_slide_open(slide_path("boxes.tiff"), "boxes", &s), 0);
  CU_ASSERT_EQUAL(ts_slide_resolve_mpp(s, 0.3, 0.2), 0);
  CU_ASSERT_STRING_EQUAL(ts_slide_mpp_source(s), "cohort");
  CU_ASSERT_DOUBLE_EQUAL(ts_slide_mpp(s), 0.3, 0);
  CU_ASSERT_EQUAL(ts_slide_resolve_mpp(s, 0, 0.2), 0);
  CU_ASSERT_STRING_EQUAL(ts_slide_mpp_source(s), "config");
  CU_ASSERT_EQUAL(ts_slide_mpp_source_enum(s), TS_MPP_CONFIG);
  CU_ASSERT(ts_slide_resolve_mpp(s, 0, 0) < 0);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "SLIDE_NO_MPP");
  CU_ASSERT(strstr(ts_error_message(), "boxes") != NULL);
  /* both ways to supply it, by their names */
  CU_ASSERT(strstr(ts_error_message(), "cohort.mpp") != NULL);
  CU_ASSERT(strstr(ts_error_message(), "cohort CSV's mpp column") != NULL);
  CU_ASSERT_STRING_EQUAL(ts_slide_mpp_source(s), "none");
  ts_slide_free(&s);
  /* file wins over cohort and config */
  CU_ASSERT_EQUAL_FATAL(ts_slide_open(slide_path("small.svs"), "small", &s), 0);
  CU_ASSERT_EQUAL(ts_slide_resolve_mpp(s, 9, 9), 0);
  CU_ASSERT_STRING_EQUAL(ts_slide_mpp_source(s), "file");
  CU_ASSERT(ts_slide_mpp(s) > 0 && ts_slide_mpp(s) < 9);
  ts_slide_free(&s);
}

/* Open path, expect SLIDE_NOT_A_SLIDE whose message has every one of the NULL-terminated
 * strings in want. */
static void expect_not_a_slide(const char *path, const char *const *want) {
  ts_slide *s = NULL;
  CU_ASSERT(ts_slide_open(path, "x", &s) < 0);
  CU_ASSERT_PTR_NULL(s);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "SLIDE_NOT_A_SLIDE");
  for (const char *const *w = want; *w; w++)
    if (!strstr(ts_error_message(), *w)) {
      fprintf(stderr, "\n  %s: message '%s' lacks '%s'\n", path, ts_error_message(), *w);
      CU_FAIL("reason missing from SLIDE_NOT_A_SLIDE");
    }
  ts_slide_free(&s);
}

static int save_tiff(const char *path, bool tiled, bool bigtiff) {
  static uint8_t px[64 * 48 * 3];
  for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)(i * 7);
  VipsImage *im = vips_image_new_from_memory(px, sizeof px, 64, 48, 3, VIPS_FORMAT_UCHAR);
  if (!im) return -1;
  int rc = vips_tiffsave(im, path, "tile", tiled, "tile_width", 16, "tile_height", 16,
                         "bigtiff", bigtiff, NULL);
  g_object_unref(im);
  return rc;
}

/* A DICOM WSI (one file, or a folder of .dcm instances) and a strip TIFF: the message says why
 * OpenSlide 3.4.1 does not take them and what to do. */
static void test_slide_not_a_slide_reasons(void) {
  char p[4096];
  const char *dicom[] = {"DICOM", "OpenSlide 3.4.1", "4.0", "vips", "tiled pyramidal TIFF", NULL};
  /* 128-byte preamble, "DICM", then a File Meta group element (enough to be DICOM) */
  ts_test_path(p, sizeof p, "wsi.dcm");
  FILE *f = fopen(p, "wb");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  static const unsigned char meta[] = {0x02, 0x00, 0x00, 0x00, 'U', 'L', 4, 0, 0, 0, 0, 0};
  for (int i = 0; i < 128; i++) fputc(0, f);
  fputs("DICM", f);
  fwrite(meta, 1, sizeof meta, f);
  fclose(f);
  expect_not_a_slide(p, dicom);
  CU_ASSERT(strstr(ts_error_message(), "'DICM' at byte 128") != NULL);
  /* a folder of instances, as DICOM WSI usually come */
  ts_test_path(p, sizeof p, "dicomdir");
  CU_ASSERT_EQUAL_FATAL(mkdir(p, 0755), 0);
  ts_test_path(p, sizeof p, "dicomdir/level-0.DCM");
  f = fopen(p, "wb");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fclose(f);
  ts_test_path(p, sizeof p, "dicomdir");
  expect_not_a_slide(p, dicom);
  CU_ASSERT(strstr(ts_error_message(), "directory of DICOM") != NULL);
  /* an empty directory is still just missing */
  ts_test_path(p, sizeof p, "emptydir");
  CU_ASSERT_EQUAL_FATAL(mkdir(p, 0755), 0);
  ts_slide *s = NULL;
  CU_ASSERT(ts_slide_open(p, "e", &s) < 0);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "SLIDE_MISSING");

  const char *strips[] = {"strips", "vips tiffsave IN OUT.tif --tile --pyramid --compression jpeg "
                          "--tile-width 256 --tile-height 256", NULL};
  ts_test_path(p, sizeof p, "strips.tif");
  CU_ASSERT_EQUAL_FATAL(save_tiff(p, false, false), 0);
  expect_not_a_slide(p, strips);
  ts_test_path(p, sizeof p, "strips-big.tif");
  CU_ASSERT_EQUAL_FATAL(save_tiff(p, false, true), 0);
  expect_not_a_slide(p, strips);
  /* control: the same pixels tiled are a slide (OpenSlide's generic-tiff) */
  ts_test_path(p, sizeof p, "tiled.tif");
  CU_ASSERT_EQUAL_FATAL(save_tiff(p, true, false), 0);
  CU_ASSERT_EQUAL(ts_slide_open(p, "t", &s), 0);
  if (s) CU_ASSERT_STRING_EQUAL(ts_slide_vendor(s), "generic-tiff");
  ts_slide_free(&s);
  /* anything else keeps the plain message */
  const char *plain[] = {"does not recognise", NULL};
  expect_not_a_slide(slide_path("not-a-slide.svs"), plain);
}

int ts_test_register(void) {
  CU_pSuite su = CU_add_suite("slide", suite_init, ts_test_tmpdir_remove);
  if (!su) return -1;
  if (!CU_add_test(su, "test_slide_failure_tokens", test_slide_failure_tokens) ||
      !CU_add_test(su, "test_slide_cmu_properties", test_slide_cmu_properties) ||
      !CU_add_test(su, "test_slide_small_ones_open", test_slide_small_ones_open) ||
      !CU_add_test(su, "test_slide_unreadable_zeroes_and_sticks", test_slide_unreadable_zeroes_and_sticks) ||
      !CU_add_test(su, "test_slide_best_level", test_slide_best_level) ||
      !CU_add_test(su, "test_slide_resolve_mpp_order", test_slide_resolve_mpp_order) ||
      !CU_add_test(su, "test_slide_not_a_slide_reasons", test_slide_not_a_slide_reasons))
    return -1;
  return 0;
}
