/* test_heatmap.c — attention heatmaps (workers/heatmap.c): percentiles against a direct O(n^2)
 * count (ties, n = 1, reversed order, aliasing), viridis against matplotlib's table, and whole
 * PNGs on a synthetic pyramidal slide checked by an independent oracle in Debian's python3
 * (OpenSlide's own read of the level, area averaging as a weight matrix in numpy, scipy's rankdata): every pixel of the
 * heatmap is the thumbnail's own or the blend of it with viridis(percentile) of the tiles whose
 * footprint holds the pixel centre, inside the mask only; the strip holds the top-k tiles in
 * descending score order, each equal to the tile read directly. Errors: NaN / infinite score,
 * no tiles, options, unwritable paths (IO token, no file and no temporary left). */
#include <CUnit/Basic.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <vips/vips.h>

#include "ts_heatmap.h"
#include "ts_test_util.h"

/* Synthetic slide: 4096 x 2048 level 0, pyramid 2048, 1024, 512, ... (vips, 256 px JPEG tiles). */
enum { SW = 4096, SH = 2048 };
static char slide_path[512];

static int make_slide(const char *path) {
  uint8_t *px = malloc((size_t)SW * SH * 3);
  if (!px) return -1;
  for (int y = 0; y < SH; y++)
    for (int x = 0; x < SW; x++) {
      uint8_t *p = px + ((size_t)y * SW + x) * 3;
      int block = ((x / 320) + (y / 200)) & 1; /* edges that a misplaced read would show */
      p[0] = (uint8_t)(40 + 180 * x / SW);
      p[1] = (uint8_t)(40 + 160 * y / SH);
      p[2] = (uint8_t)(block ? 210 : 70);
    }
  VipsImage *im = vips_image_new_from_memory(px, (size_t)SW * SH * 3, SW, SH, 3, VIPS_FORMAT_UCHAR);
  char desc[256];
  snprintf(desc, sizeof desc,
           "Aperio Image Library v10.0.0\r\n%dx%d [0,0 %dx%d] (256x256) JPEG/RGB Q=90|AppMag = 40|MPP = 0.25", SW,
           SH, SW, SH);
  vips_image_set_string(im, "image-description", desc);
  int rc = vips_tiffsave(im, path, "tile", TRUE, "tile_width", 256, "tile_height", 256, "pyramid", TRUE,
                         "compression", VIPS_FOREIGN_TIFF_COMPRESSION_JPEG, "Q", 90, NULL);
  if (rc) fprintf(stderr, "test_heatmap: tiffsave: %s\n", vips_error_buffer());
  g_object_unref(im);
  free(px);
  return rc ? -1 : 0;
}

static int suite_init(void) {
  if (VIPS_INIT("test_heatmap")) return -1;
  if (ts_test_tmpdir_make("ts_test_heatmap")) return -1;
  ts_test_path(slide_path, sizeof slide_path, "synth.tiff");
  return make_slide(slide_path);
}

/* TS_TEST_KEEP=1 keeps the directory (the PNGs and the oracle's inputs) for a look. */
static int suite_clean(void) {
  if (getenv("TS_TEST_KEEP")) {
    fprintf(stderr, "test_heatmap: kept %s\n", ts_test_tmpdir);
    return 0;
  }
  return ts_test_tmpdir_remove();
}

static int count_tmp_files(void) {
  DIR *d = opendir(ts_test_tmpdir);
  int k = 0;
  if (!d) return -1;
  for (struct dirent *e; (e = readdir(d));)
    if (strstr(e->d_name, ".tmp.")) k++;
  closedir(d);
  return k;
}

static bool exists(const char *name) {
  char p[512];
  ts_test_path(p, sizeof p, name);
  return access(p, F_OK) == 0;
}

/* ---- percentiles ------------------------------------------------------------------------- */

/* The definition, directly: (#below + (#equal - 1) / 2) / (n - 1). */
static double direct_pct(const float *s, int64_t n, int64_t i) {
  if (n == 1) return 1.0;
  int64_t below = 0, equal = 0;
  for (int64_t k = 0; k < n; k++) {
    below += s[k] < s[i];
    equal += s[k] == s[i];
  }
  return (below + (equal - 1) / 2.0) / (double)(n - 1);
}

static void check_pct(const float *s, int64_t n) {
  float *out = malloc((size_t)n * sizeof *out);
  CU_ASSERT_EQUAL_FATAL(ts_heatmap_percentiles(s, n, out), 0);
  double worst = 0;
  for (int64_t i = 0; i < n; i++) worst = fmax(worst, fabs(out[i] - direct_pct(s, n, i)));
  CU_ASSERT(worst < 1e-6);
  free(out);
}

static void test_heatmap_percentiles(void) {
  const float ties[] = {3, 1, 3, 2, 3, -0.5f, 1};
  check_pct(ties, 7);
  float out[7];
  CU_ASSERT_EQUAL(ts_heatmap_percentiles(ties, 7, out), 0);
  CU_ASSERT_DOUBLE_EQUAL(out[0], 5.0 / 6.0, 1e-6); /* the three 3s: ranks 4, 5, 6 -> 5 / 6 */
  CU_ASSERT_DOUBLE_EQUAL(out[5], 0.0, 1e-7);
  CU_ASSERT_DOUBLE_EQUAL(out[1], 1.5 / 6.0, 1e-6);
  const float one = -7.0f;
  check_pct(&one, 1);
  CU_ASSERT_EQUAL(ts_heatmap_percentiles(&one, 1, out), 0);
  CU_ASSERT_EQUAL(out[0], 1.0f);
  float rev[10], all_eq[5] = {2, 2, 2, 2, 2};
  for (int i = 0; i < 10; i++) rev[i] = (float)(10 - i);
  float rout[10];
  CU_ASSERT_EQUAL(ts_heatmap_percentiles(rev, 10, rout), 0);
  for (int i = 0; i < 10; i++) CU_ASSERT_DOUBLE_EQUAL(rout[i], (9 - i) / 9.0, 1e-6);
  check_pct(all_eq, 5);
  /* many ties among 2000 scores, and out aliasing the scores */
  int64_t n = 2000;
  float *s = malloc((size_t)n * sizeof *s), *copy = malloc((size_t)n * sizeof *copy);
  uint32_t r = 7;
  for (int64_t i = 0; i < n; i++) {
    r = r * 1664525u + 1013904223u;
    s[i] = (float)((r >> 8) % 97) / 8.0f - 3.0f;
    copy[i] = s[i];
  }
  check_pct(s, n);
  CU_ASSERT_EQUAL(ts_heatmap_percentiles(s, n, s), 0);
  double worst = 0;
  for (int64_t i = 0; i < n; i++) worst = fmax(worst, fabs(s[i] - direct_pct(copy, n, i)));
  CU_ASSERT(worst < 1e-6);
  free(s);
  free(copy);
}

static void test_heatmap_percentiles_errors(void) {
  float s[8] = {1, 2, 3, 4, 5, NAN, 7, 8}, out[8];
  CU_ASSERT_EQUAL(ts_heatmap_percentiles(s, 8, out), TS_EINPUT);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "HEATMAP_BAD_SCORE");
  CU_ASSERT_PTR_NOT_NULL(strstr(ts_error_message(), "score 5 of 8 is NaN"));
  s[5] = -INFINITY;
  CU_ASSERT_EQUAL(ts_heatmap_percentiles(s, 8, out), TS_EINPUT);
  CU_ASSERT_PTR_NOT_NULL(strstr(ts_error_message(), "score 5 of 8 is infinite"));
  CU_ASSERT_EQUAL(ts_heatmap_percentiles(s, 0, out), TS_EINPUT);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "HEATMAP_NO_TILES");
  CU_ASSERT_EQUAL(ts_heatmap_percentiles(NULL, 3, out), TS_EINVAL);
}

/* matplotlib: viridis(0.0), (0.25), (0.5), (255/256), (1.0) from _cm_listed.py entries 0, 64,
 * 128, 255, 255; 0.4999 is entry 127. */
static void test_heatmap_viridis(void) {
  const struct {
    double p;
    float rgb[3];
  } cases[] = {{0.0, {0.267004f, 0.004874f, 0.329415f}}, {0.25, {0.229739f, 0.322361f, 0.545706f}},
               {0.5, {0.127568f, 0.566949f, 0.550556f}}, {0.4999, {0.128729f, 0.563265f, 0.551229f}},
               {0.999, {0.993248f, 0.906157f, 0.143936f}}, {1.0, {0.993248f, 0.906157f, 0.143936f}},
               {-3.0, {0.267004f, 0.004874f, 0.329415f}},  {NAN, {0.267004f, 0.004874f, 0.329415f}}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    float got[3];
    ts_heatmap_viridis(cases[c].p, got);
    for (int k = 0; k < 3; k++) CU_ASSERT_DOUBLE_EQUAL(got[k], cases[c].rgb[k], 1e-7);
  }
}

/* ---- whole images against the python oracle --------------------------------------------- */

static const char *ORACLE =
    "import sys, numpy as np, openslide\n"
    "from PIL import Image\n"
    "from scipy.stats import rankdata\n"
    "case = sys.argv[1]\n"
    "cfg = dict(l.split('=', 1) for l in open(case + '.cfg').read().split())\n"
    "tw, th, thumb_level = int(cfg['tw']), int(cfg['th']), int(cfg['thumb_level'])\n"
    "alpha, T, legend = float(cfg['alpha']), int(cfg['tile']), int(cfg['legend'])\n"
    "k, cell, gap, strip_level = int(cfg['k']), int(cfg['cell']), int(cfg['gap']), int(cfg['strip_level'])\n"
    "tiles = np.loadtxt(case + '.tiles', ndmin=2)\n"
    "xy, s = tiles[:, :2].astype(np.int64), tiles[:, 2].astype(np.float32)\n"
    "n = len(s)\n"
    "lut = np.loadtxt('viridis.txt')\n"
    "assert lut.shape == (256, 3)\n"
    "sl = openslide.OpenSlide('synth.tiff')\n"
    "W, H = sl.dimensions\n"
    "lw, lh = sl.level_dimensions[thumb_level]\n"
    "lev = np.asarray(sl.read_region((0, 0), thumb_level, (lw, lh)).convert('RGB'))\n"
    "def area(n_out, n_in, f):  # exact area weights: out j = mean of [j f, (j + 1) f) of the input\n"
    "    j, k = np.arange(n_out)[:, None], np.arange(n_in)[None, :]\n"
    "    w = np.clip(np.minimum(k + 1, (j + 1) * f) - np.maximum(k, j * f), 0, None)\n"
    "    return w / w.sum(axis=1, keepdims=True)\n"
    "def resize(img, w_out, h_out, fx, fy):\n"
    "    ax, ay = area(w_out, img.shape[1], fx), area(h_out, img.shape[0], fy)\n"
    "    return np.round(np.stack([ay @ img[..., c].astype(np.float64) @ ax.T for c in range(3)], axis=2))\n"
    "ds_t = sl.level_downsamples[thumb_level]\n"
    "thumb = resize(lev, tw, th, W / tw / ds_t, H / th / ds_t)\n"
    "png = np.asarray(Image.open(case + '.png').convert('RGB')).astype(np.float64)\n"
    "assert png.shape == (th + (24 if legend else 0), tw, 3), png.shape\n"
    "png = png[:th]\n"
    "pct = (rankdata(s, 'average') - 1) / (n - 1) if n > 1 else np.ones(1)\n"
    "sx, sy = W / tw, H / th\n"
    "cx, cy = (np.arange(tw) + 0.5) * sx, (np.arange(th) + 0.5) * sy\n"
    "acc, cnt = np.zeros((th, tw)), np.zeros((th, tw))\n"
    "for (x, y), p in zip(xy, pct):\n"
    "    m = np.outer((cy >= y) & (cy < y + T), (cx >= x) & (cx < x + T))\n"
    "    acc += m * p; cnt += m\n"
    "col = cnt > 0\n"
    "if 'mask' in cfg:\n"
    "    mw, mh, msc = int(cfg['mask_w']), int(cfg['mask_h']), float(cfg['mask_scale'])\n"
    "    mask = np.fromfile(cfg['mask'], np.uint8).reshape(mh, mw)\n"
    "    mi, mj = np.floor(cy / msc).astype(int), np.floor(cx / msc).astype(int)\n"
    "    inside = np.outer((mi >= 0) & (mi < mh), (mj >= 0) & (mj < mw))\n"
    "    m = np.zeros((th, tw), bool)\n"
    "    m[inside] = mask[np.clip(mi, 0, mh - 1)][:, np.clip(mj, 0, mw - 1)][inside] > 0\n"
    "    col &= m\n"
    "idx = np.minimum(255, np.floor(np.where(cnt > 0, acc / np.maximum(cnt, 1), 0) * 256).astype(int))\n"
    "want = np.where(col[..., None], np.round((1 - alpha) * thumb + alpha * 255 * lut[idx]), thumb)\n"
    "d = np.abs(png - want)\n"
    "tol_plain, tol_col = float(cfg['tol_plain']), float(cfg['tol_col'])\n"
    "dp, dc = d[~col].max(initial=0), d[col].max(initial=0)\n"
    "rep = open(case + '.report', 'w')\n"
    "print(f'{case}: {col.sum()} coloured px (max diff {dc}), {(~col).sum()} plain px (max diff {dp}, mean {d[~col].mean():.3f})', file=rep)\n"
    "assert col.sum() > 1000 and (~col).sum() > 1000\n"
    "assert dp <= tol_plain and dc <= tol_col, (dp, dc)\n"
    "# tile centres: the one assertion of the issue, pixel by pixel\n"
    "for (x, y) in xy:\n"
    "    j, i = int((x + T / 2) / sx), int((y + T / 2) / sy)\n"
    "    if 0 <= i < th and 0 <= j < tw:\n"
    "        assert np.abs(png[i, j] - want[i, j]).max() <= tol_col\n"
    "if k:\n"
    "    strip = np.asarray(Image.open(case + '.strip.png').convert('RGB')).astype(np.float64)\n"
    "    kk = min(k, n)\n"
    "    assert strip.shape == (cell, kk * cell + (kk - 1) * gap, 3), strip.shape\n"
    "    order = sorted(range(n), key=lambda i: (-s[i], i))[:kk]\n"
    "    ds = sl.level_downsamples[strip_level]\n"
    "    side = int(np.ceil(T / ds - 1e-9))\n"
    "    worst = 0\n"
    "    for c, t in enumerate(order):\n"
    "        x, y = map(int, xy[t])\n"
    "        tile = np.asarray(sl.read_region((x, y), strip_level, (side, side)).convert('RGB'))\n"
    "        tile = resize(tile, cell, cell, T / ds / cell, T / ds / cell)\n"
    "        got = strip[:, c * (cell + gap): c * (cell + gap) + cell]\n"
    "        worst = max(worst, np.abs(got - np.asarray(tile)).max())\n"
    "        if c + 1 < kk: assert (strip[:, c * (cell + gap) + cell: (c + 1) * (cell + gap)] == 255).all()\n"
    "    print(f'{case}: strip of {kk} tiles {order}, max diff {worst}', file=rep)\n"
    "    assert worst <= float(cfg['tol_strip']), worst\n"
    "print('OK', file=rep)\n";

static void write_lut(void) {
  char p[512];
  ts_test_path(p, sizeof p, "viridis.txt");
  FILE *f = fopen(p, "w");
  for (int i = 0; i < 256; i++) {
    float c[3];
    ts_heatmap_viridis((i + 0.5) / 256.0, c);
    fprintf(f, "%.6f %.6f %.6f\n", c[0], c[1], c[2]);
  }
  fclose(f);
}

typedef struct tileset {
  int64_t *xy;
  float *s;
  int64_t n;
} tileset;

static void add_tile(tileset *t, int64_t x, int64_t y, float s) {
  t->xy = realloc(t->xy, (size_t)(t->n + 1) * 2 * sizeof *t->xy);
  t->s = realloc(t->s, (size_t)(t->n + 1) * sizeof *t->s);
  t->xy[2 * t->n] = x;
  t->xy[2 * t->n + 1] = y;
  t->s[t->n++] = s;
}

static void write_case(const char *c, const tileset *t, const char *cfg) {
  char p[512], name[64];
  snprintf(name, sizeof name, "%s.tiles", c);
  ts_test_path(p, sizeof p, name);
  FILE *f = fopen(p, "w");
  for (int64_t i = 0; i < t->n; i++)
    fprintf(f, "%lld %lld %.9g\n", (long long)t->xy[2 * i], (long long)t->xy[2 * i + 1], t->s[i]);
  fclose(f);
  snprintf(name, sizeof name, "%s.cfg", c);
  ts_test_path(p, sizeof p, name);
  f = fopen(p, "w");
  fputs(cfg, f);
  fclose(f);
}

static int run_oracle(const char *c) {
  char name[64];
  /* ts_test_python runs the file without arguments: a two-line driver passes the case. */
  char drv[200];
  snprintf(drv, sizeof drv, "import sys\nsys.argv = ['oracle', '%s']\nexec(open('oracle.py').read())\n", c);
  char p[512];
  ts_test_path(p, sizeof p, "oracle.py");
  FILE *f = fopen(p, "w");
  fputs(ORACLE, f);
  fclose(f);
  snprintf(name, sizeof name, "run_%s.py", c);
  int rc = ts_test_python(name, drv);
  snprintf(name, sizeof name, "%s.report", c);
  size_t len;
  char *rep = ts_test_read(name, &len);
  if (rep) fprintf(stderr, "\n%s", rep);
  free(rep);
  return rc;
}

static ts_slide *open_slide(void) {
  ts_slide *s = NULL;
  CU_ASSERT_EQUAL(ts_slide_open(slide_path, "synth", &s), 0);
  return s;
}

/* Grid of 256-px tiles, scores rising left to right (ties down each column), a mask that leaves
 * out the right quarter and one band, the top-left tiles missing; default options (1024 px
 * thumbnail = level 2 exactly, strip cells = level 1 exactly). */
static void test_heatmap_png_grid_mask(void) {
  ts_slide *s = open_slide();
  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  write_lut();
  tileset t = {0};
  for (int gy = 0; gy < SH / 256; gy++)
    for (int gx = 0; gx < SW / 256; gx++)
      if (!(gy == 0 && gx < 4)) add_tile(&t, gx * 256, gy * 256, (float)gx);
  ts_mask m = {0};
  m.w = SW / 16;
  m.h = SH / 16;
  m.scale_x = m.scale_y = 16;
  m.data = malloc((size_t)m.w * m.h);
  for (int i = 0; i < m.h; i++)
    for (int j = 0; j < m.w; j++) m.data[(size_t)i * m.w + j] = (j < 192 && !(i >= 64 && i < 80)) ? 255 : 0;
  char p[512];
  ts_test_path(p, sizeof p, "grid.mask");
  FILE *f = fopen(p, "wb");
  fwrite(m.data, 1, (size_t)m.w * m.h, f);
  fclose(f);
  write_case("grid", &t,
             "tw=1024 th=512 thumb_level=2 alpha=0.5 tile=256 legend=1 k=8 cell=128 gap=4 strip_level=1\n"
             "mask=grid.mask mask_w=256 mask_h=128 mask_scale=16 tol_plain=1 tol_col=2 tol_strip=1\n");
  char png[512], strip[512];
  ts_test_path(png, sizeof png, "grid.png");
  ts_test_path(strip, sizeof strip, "grid.strip.png");
  int rc = ts_heatmap_png(s, &m, t.xy, t.n, 256, t.s, NULL, png, strip);
  if (rc) fprintf(stderr, "%s\n", ts_error_message());
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  CU_ASSERT_EQUAL(count_tmp_files(), 0);
  CU_ASSERT_EQUAL(run_oracle("grid"), 0);
  free(m.data);
  free(t.xy);
  free(t.s);
  ts_slide_free(&s);
}

/* Resampled: 700 px thumbnail (level 2 box-averaged by 1024/700), overlapping tiles (stride 192,
 * side 256: averaged percentiles), tiles partly outside the slide, no mask, no legend, strip
 * cells of 100 px from level 1 (256 / 2 / 100 = 1.28 source px per cell px), alpha 0.3. */
static void test_heatmap_png_resampled(void) {
  ts_slide *s = open_slide();
  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  write_lut();
  tileset t = {0};
  for (int y = 0; y + 256 <= SH; y += 192)
    for (int x = 0; x + 256 <= SW; x += 192)
      if (!(x > 3000 && y < 600)) add_tile(&t, x, y, (float)x + 0.001f * (float)y);
  add_tile(&t, -100, -100, -1.0f);
  add_tile(&t, SW - 128, SH - 128, -1.0f);
  write_case("resampled", &t,
             "tw=700 th=350 thumb_level=2 alpha=0.3 tile=256 legend=0 k=5 cell=100 gap=0 strip_level=1\n"
             "tol_plain=1 tol_col=2 tol_strip=1\n");
  ts_heatmap_opts o;
  ts_heatmap_opts_default(&o);
  o.max_px = 700;
  o.alpha = 0.3;
  o.legend = false;
  o.top_k = 5;
  o.strip_tile_px = 100;
  o.strip_gap_px = 0;
  o.png_level = 3;
  char png[512], strip[512];
  ts_test_path(png, sizeof png, "resampled.png");
  ts_test_path(strip, sizeof strip, "resampled.strip.png");
  int rc = ts_heatmap_png(s, NULL, t.xy, t.n, 256, t.s, &o, png, strip);
  if (rc) fprintf(stderr, "%s\n", ts_error_message());
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  CU_ASSERT_EQUAL(run_oracle("resampled"), 0);
  free(t.xy);
  free(t.s);
  ts_slide_free(&s);
}

/* Fewer tiles than top_k, a single tile (percentile 1), strip_path NULL writes no strip. */
static void test_heatmap_png_few_tiles(void) {
  ts_slide *s = open_slide();
  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  write_lut();
  tileset t = {0};
  add_tile(&t, 1024, 512, 0.25f);
  add_tile(&t, 2048, 1024, 3.0f);
  add_tile(&t, 3072, 1024, 3.0f);
  write_case("few", &t,
             "tw=1024 th=512 thumb_level=2 alpha=0.5 tile=256 legend=1 k=8 cell=128 gap=4 strip_level=1\n"
             "tol_plain=1 tol_col=2 tol_strip=1\n");
  char png[512], strip[512];
  ts_test_path(png, sizeof png, "few.png");
  ts_test_path(strip, sizeof strip, "few.strip.png");
  CU_ASSERT_EQUAL_FATAL(ts_heatmap_png(s, NULL, t.xy, t.n, 256, t.s, NULL, png, strip), 0);
  /* ties: the tile at 2048 (index 1) before the one at 3072 (index 2) */
  CU_ASSERT_EQUAL(run_oracle("few"), 0);
  ts_test_path(png, sizeof png, "one.png");
  CU_ASSERT_EQUAL(ts_heatmap_png(s, NULL, t.xy, 1, 256, t.s, NULL, png, NULL), 0);
  CU_ASSERT(exists("one.png"));
  CU_ASSERT(!exists("one.strip.png"));
  free(t.xy);
  free(t.s);
  ts_slide_free(&s);
}

static void test_heatmap_png_errors(void) {
  ts_slide *s = open_slide();
  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  int64_t xy[8] = {0, 0, 256, 0, 512, 0, 768, 0};
  float sc[4] = {1, 2, NAN, 4};
  char png[512], strip[512];
  ts_test_path(png, sizeof png, "err.png");
  ts_test_path(strip, sizeof strip, "err.strip.png");
  CU_ASSERT_EQUAL(ts_heatmap_png(s, NULL, xy, 4, 256, sc, NULL, png, strip), TS_EINPUT);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "HEATMAP_BAD_SCORE");
  CU_ASSERT_PTR_NOT_NULL(strstr(ts_error_message(), "score 2 of 4 is NaN"));
  CU_ASSERT(!exists("err.png") && !exists("err.strip.png"));
  sc[2] = 3;
  CU_ASSERT_EQUAL(ts_heatmap_png(s, NULL, xy, 0, 256, sc, NULL, png, strip), TS_EINPUT);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "HEATMAP_NO_TILES");
  CU_ASSERT_PTR_NOT_NULL(strstr(ts_error_message(), "synth"));
  CU_ASSERT(!exists("err.png") && !exists("err.strip.png"));
  ts_heatmap_opts o;
  ts_heatmap_opts_default(&o);
  o.alpha = 1.5;
  CU_ASSERT_EQUAL(ts_heatmap_png(s, NULL, xy, 4, 256, sc, &o, png, strip), TS_EINVAL);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "HEATMAP_BAD_OPTION");
  CU_ASSERT_PTR_NOT_NULL(strstr(ts_error_message(), "alpha"));
  CU_ASSERT_EQUAL(ts_heatmap_png(s, NULL, xy, 4, 0, sc, NULL, png, strip), TS_EINVAL);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "HEATMAP_BAD_OPTION");
  CU_ASSERT(!exists("err.png") && !exists("err.strip.png"));
  /* a directory that does not exist */
  ts_test_path(png, sizeof png, "no/such/dir/err.png");
  CU_ASSERT_EQUAL(ts_heatmap_png(s, NULL, xy, 4, 256, sc, NULL, png, NULL), TS_EIO);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "IO_WRITE");
  /* the target is a directory: the temporary is written, the rename fails, the temporary goes */
  ts_test_path(png, sizeof png, "adir");
  CU_ASSERT_EQUAL_FATAL(mkdir(png, 0755), 0);
  ts_test_path(strip, sizeof strip, "adir2");
  CU_ASSERT_EQUAL_FATAL(mkdir(strip, 0755), 0);
  CU_ASSERT_EQUAL(ts_heatmap_png(s, NULL, xy, 4, 256, sc, NULL, png, NULL), TS_EIO);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "IO_COMMIT");
  CU_ASSERT_EQUAL(count_tmp_files(), 0);
  ts_test_path(png, sizeof png, "err.png");
  CU_ASSERT_EQUAL(ts_heatmap_png(s, NULL, xy, 4, 256, sc, NULL, png, strip), TS_EIO);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "IO_COMMIT");
  CU_ASSERT_EQUAL(count_tmp_files(), 0);
  ts_slide_free(&s);
}

/* Not a correctness check: time and size for 1000 tiles (printed, for the record). */
static void test_heatmap_png_timing(void) {
  ts_slide *s = open_slide();
  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  tileset t = {0};
  for (int y = 0; y + 128 <= SH && t.n < 1000; y += 64)
    for (int x = 0; x + 128 <= SW && t.n < 1000; x += 64) add_tile(&t, x, y, (float)((x * 7 + y * 13) % 101));
  char png[512], strip[512];
  ts_test_path(png, sizeof png, "timing.png");
  ts_test_path(strip, sizeof strip, "timing.strip.png");
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  CU_ASSERT_EQUAL(ts_heatmap_png(s, NULL, t.xy, t.n, 128, t.s, NULL, png, strip), 0);
  clock_gettime(CLOCK_MONOTONIC, &b);
  struct stat st1, st2;
  stat(png, &st1);
  stat(strip, &st2);
  fprintf(stderr, "\n  %lld tiles on %dx%d: %.3f s, heatmap %lld bytes, strip %lld bytes\n", (long long)t.n, SW, SH,
          (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec), (long long)st1.st_size,
          (long long)st2.st_size);
  free(t.xy);
  free(t.s);
  ts_slide_free(&s);
}

int ts_test_register(void) {
  CU_pSuite su = CU_add_suite("heatmap", suite_init, suite_clean);
  if (!su) return -1;
  if (!CU_add_test(su, "test_heatmap_percentiles", test_heatmap_percentiles) ||
      !CU_add_test(su, "test_heatmap_percentiles_errors", test_heatmap_percentiles_errors) ||
      !CU_add_test(su, "test_heatmap_viridis", test_heatmap_viridis) ||
      !CU_add_test(su, "test_heatmap_png_grid_mask", test_heatmap_png_grid_mask) ||
      !CU_add_test(su, "test_heatmap_png_resampled", test_heatmap_png_resampled) ||
      !CU_add_test(su, "test_heatmap_png_few_tiles", test_heatmap_png_few_tiles) ||
      !CU_add_test(su, "test_heatmap_png_errors", test_heatmap_png_errors) ||
      !CU_add_test(su, "test_heatmap_png_timing", test_heatmap_png_timing))
    return -1;
  return 0;
}
