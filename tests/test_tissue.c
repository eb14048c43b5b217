/* test_tissue.c — tissue mask: Otsu and the median against brute-force oracles, the whole
 * pipeline on a synthetic Aperio-style slide with a known disc of tissue, a green pen stroke and
 * a speck of debris (IoU >= 0.95 against the disc; the mask bit for bit equal to a reference
 * pipeline of straightforward steps), the HDF5 round trip, the QC PNG and the joint commit. */
#include <CUnit/Basic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <vips/vips.h>

#include "ts_tissue.h"

static char tmpdir[256];
static char synth_path[512];

/* Synthetic slide geometry (level-0 px, MPP = 1.0 um/px). */
enum { SW = 3072, SH = 3072 };
static const double DISC_X = 1400, DISC_Y = 1500, DISC_R = 900;
static const int PEN_X0 = 2500, PEN_X1 = 2700, PEN_Y0 = 300, PEN_Y1 = 2800;
static const int SPECK_X = 250, SPECK_Y = 2850, SPECK_S = 60; /* 3600 um^2 < min area */

static uint32_t rng_state = 12345;
static int noise(int amp) {
  rng_state = rng_state * 1664525u + 1013904223u;
  return (int)((rng_state >> 16) % (unsigned)(2 * amp + 1)) - amp;
}

static uint8_t clamp8(int v) {
  return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* Write a pyramidal JPEG TIFF with an Aperio description, so OpenSlide reads it as
 * vendor "aperio" with openslide.mpp-x = 1.0. */
static int make_synthetic_slide(const char *path) {
  uint8_t *px = malloc((size_t)SW * SH * 3);
  if (!px) return -1;
  for (int y = 0; y < SH; y++)
    for (int x = 0; x < SW; x++) {
      uint8_t *o = px + ((size_t)y * SW + x) * 3;
      int r = 242, g = 240, b = 244, a = 3; /* glass */
      double dx = x - DISC_X, dy = y - DISC_Y;
      if (dx * dx + dy * dy < DISC_R * DISC_R) {
        r = 215;
        g = 120;
        b = 170;
        a = 18;
      }
      if (x >= SPECK_X && x < SPECK_X + SPECK_S && y >= SPECK_Y && y < SPECK_Y + SPECK_S) {
        r = 200;
        g = 110;
        b = 160;
      }
      if (x >= PEN_X0 && x < PEN_X1 && y >= PEN_Y0 && y < PEN_Y1) {
        r = 60;
        g = 170;
        b = 90;
        a = 10;
      }
      int n = noise(a);
      o[0] = clamp8(r + n);
      o[1] = clamp8(g + n + noise(a / 2 + 1));
      o[2] = clamp8(b + n);
    }
  VipsImage *im = vips_image_new_from_memory(px, (size_t)SW * SH * 3, SW, SH, 3, VIPS_FORMAT_UCHAR);
  if (!im) {
    free(px);
    return -1;
  }
  im->Type = VIPS_INTERPRETATION_sRGB;
  char desc[256];
  snprintf(desc, sizeof desc,
           "Aperio Image Library v10.0.0\r\n%dx%d [0,0 %dx%d] (256x256) JPEG/RGB Q=90|"
           "AppMag = 10|MPP = 1.0",
           SW, SH, SW, SH);
  vips_image_set_string(im, "image-description", desc);
  int rc = vips_tiffsave(im, path, "tile", TRUE, "tile_width", 256, "tile_height", 256, "pyramid", TRUE,
                         "compression", VIPS_FOREIGN_TIFF_COMPRESSION_JPEG, "Q", 90, NULL);
  if (rc) fprintf(stderr, "tiffsave: %s\n", vips_error_buffer());
  g_object_unref(im);
  free(px);
  return rc ? -1 : 0;
}

static int suite_init(void) {
  if (VIPS_INIT("test_tissue")) return -1;
  snprintf(tmpdir, sizeof tmpdir, "/tmp/ts_test_tissue_XXXXXX");
  if (!mkdtemp(tmpdir)) return -1;
  snprintf(synth_path, sizeof synth_path, "%s/synth.tiff", tmpdir);
  return make_synthetic_slide(synth_path);
}

static int suite_clean(void) {
  static const char *files[] = {"synth.tiff", "mask.h5", "mask2.h5", "qc.png", "qc_big.png", NULL};
  char p[600];
  for (int i = 0; files[i]; i++) {
    snprintf(p, sizeof p, "%s/%s", tmpdir, files[i]);
    unlink(p);
  }
  rmdir(tmpdir);
  return 0;
}

/* Brute force: between-class variance computed from scratch for every t. */
static int otsu_oracle(const uint64_t h[256]) {
  double best = -1;
  int bt = 0;
  for (int t = 0; t < 255; t++) {
    double n0 = 0, n1 = 0, s0 = 0, s1 = 0;
    for (int i = 0; i <= t; i++) {
      n0 += h[i];
      s0 += (double)i * h[i];
    }
    for (int i = t + 1; i < 256; i++) {
      n1 += h[i];
      s1 += (double)i * h[i];
    }
    if (n0 == 0 || n1 == 0) continue;
    double n = n0 + n1, m0 = s0 / n0, m1 = s1 / n1;
    double v = (n0 / n) * (n1 / n) * (m0 - m1) * (m0 - m1);
    if (v > best * (1 + 1e-12)) {
      best = v;
      bt = t;
    }
  }
  return bt;
}

static void test_tissue_otsu_matches_brute_force(void) {
  uint64_t h[256];
  for (int trial = 0; trial < 20; trial++) {
    double m0 = 20 + trial * 3, m1 = 120 + trial * 5, s0 = 6 + trial % 5, s1 = 15 + trial % 7;
    double w0 = 1000 + 300 * trial, w1 = 4000 - 150 * trial;
    for (int i = 0; i < 256; i++)
      h[i] =
          (uint64_t)llround(w0 * exp(-0.5 * pow((i - m0) / s0, 2)) + w1 * exp(-0.5 * pow((i - m1) / s1, 2)));
    int t = ts_otsu_threshold(h);
    CU_ASSERT_EQUAL(t, otsu_oracle(h));
    CU_ASSERT(t > m0 && t < m1);
  }
  memset(h, 0, sizeof h);
  h[10] = 100;
  h[200] = 100;
  int t = ts_otsu_threshold(h);
  CU_ASSERT(t >= 10 && t < 200);
  memset(h, 0, sizeof h);
  h[77] = 5;
  t = ts_otsu_threshold(h); /* one class only: any answer, no crash */
  CU_ASSERT(t >= 0 && t <= 255);
  memset(h, 0, sizeof h);
  CU_ASSERT_EQUAL(ts_otsu_threshold(h), 0);
}

static int inside_disc(const ts_mask *m, int i, int j) {
  double x = (j + 0.5) * m->scale_x, y = (i + 0.5) * m->scale_y;
  double dx = x - DISC_X, dy = y - DISC_Y;
  return dx * dx + dy * dy < DISC_R * DISC_R;
}

static void test_tissue_mask_synthetic_disc(void) {
  ts_slide *s = NULL;
  int rc = ts_slide_open(synth_path, "synth", &s);
  if (rc < 0) fprintf(stderr, "%s\n", ts_error_message());
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  CU_ASSERT_STRING_EQUAL(ts_slide_vendor(s), "aperio");
  CU_ASSERT_DOUBLE_EQUAL(ts_slide_file_mpp(s), 1.0, 1e-9);
  CU_ASSERT_EQUAL_FATAL(ts_slide_resolve_mpp(s, 0, 0), 0);
  ts_tissue_params p;
  ts_tissue_params_default(&p);
  ts_mask m;
  rc = ts_tissue_mask(s, &p, &m);
  if (rc < 0) fprintf(stderr, "%s\n", ts_error_message());
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  CU_ASSERT(m.mpp <= p.target_mpp + 1e-9 && m.mpp > p.target_mpp / 2);
  CU_ASSERT(m.w > 0 && m.h > 0 && m.thumb_rgb != NULL);
  CU_ASSERT(m.threshold >= p.sat_floor);
  long inter = 0, uni = 0, pen = 0, speck = 0;
  for (int i = 0; i < m.h; i++)
    for (int j = 0; j < m.w; j++) {
      int a = m.data[(size_t)i * m.w + j] != 0, b = inside_disc(&m, i, j);
      inter += a && b;
      uni += a || b;
      double x = (j + 0.5) * m.scale_x, y = (i + 0.5) * m.scale_y;
      if (x >= PEN_X0 - 40 && x < PEN_X1 + 40 && y >= PEN_Y0 - 40 && y < PEN_Y1 + 40) pen += a;
      if (x >= SPECK_X && x < SPECK_X + SPECK_S && y >= SPECK_Y && y < SPECK_Y + SPECK_S) speck += a;
    }
  double iou = uni ? (double)inter / uni : 0;
  printf("\n    mask %dx%d at %.2f um/px (level %d), Otsu %d, IoU %.4f\n", m.w, m.h, m.mpp, m.level,
         m.threshold, iou);
  CU_ASSERT(iou >= 0.95);
  CU_ASSERT_EQUAL(pen, 0);
  CU_ASSERT_EQUAL(speck, 0);

  /* QC PNG: the outline is drawn in green on the thumbnail. */
  char qc[600];
  snprintf(qc, sizeof qc, "%s/qc.png", tmpdir);
  int64_t coords[4] = {1000, 1000, 1256, 1000};
  CU_ASSERT_EQUAL(ts_qc_png(&m, coords, 2, 256.0, qc), 0);
  VipsImage *png = vips_image_new_from_file(qc, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(png);
  CU_ASSERT_EQUAL(png->Xsize, m.w);
  CU_ASSERT_EQUAL(png->Ysize, m.h);
  CU_ASSERT_EQUAL(png->Bands, 3);
  g_object_unref(png);
  const char *keep = getenv("TS_KEEP_QC");
  if (keep && *keep) ts_qc_png(&m, coords, 2, 256.0, keep);
  ts_mask_clear(&m);
  ts_slide_free(&s);
}

static void test_tissue_mask_h5_round_trip(void) {
  ts_mask m = {0};
  m.w = 37;
  m.h = 23;
  m.scale_x = 16.5;
  m.scale_y = 16.25;
  m.mpp = 8.1;
  m.level = 2;
  m.threshold = 42;
  m.data = malloc((size_t)m.w * m.h);
  for (int i = 0; i < m.w * m.h; i++)
    m.data[i] = (i * 7 % 11) < 5 ? 255 : 0;
  char p1[600], p2[600];
  snprintf(p1, sizeof p1, "%s/mask.h5", tmpdir);
  snprintf(p2, sizeof p2, "%s/mask2.h5", tmpdir);
  CU_ASSERT_EQUAL_FATAL(ts_mask_save_h5(&m, p1), 0);
  ts_mask r;
  CU_ASSERT_EQUAL_FATAL(ts_mask_load_h5(p1, &r), 0);
  CU_ASSERT_EQUAL(r.w, m.w);
  CU_ASSERT_EQUAL(r.h, m.h);
  CU_ASSERT_DOUBLE_EQUAL(r.scale_x, m.scale_x, 0);
  CU_ASSERT_DOUBLE_EQUAL(r.scale_y, m.scale_y, 0);
  CU_ASSERT_DOUBLE_EQUAL(r.mpp, m.mpp, 0);
  CU_ASSERT_EQUAL(r.level, m.level);
  CU_ASSERT_EQUAL(r.threshold, m.threshold);
  CU_ASSERT_PTR_NULL(r.thumb_rgb);
  CU_ASSERT(memcmp(r.data, m.data, (size_t)m.w * m.h) == 0);
  ts_mask_clear(&r);
  /* Same mask -> byte-identical file (no timestamps). */
  CU_ASSERT_EQUAL(ts_mask_save_h5(&m, p2), 0);
  char cmd[1300];
  snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", p1, p2);
  CU_ASSERT_EQUAL(system(cmd), 0);
  /* Errors carry a token. */
  CU_ASSERT(ts_mask_load_h5("/nonexistent/mask.h5", &r) < 0);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "H5_READ");
  ts_mask_clear(&m);
}

/* The median against the definition: sort each clamped window, take the middle. */
static void test_tissue_median_matches_brute_force(void) {
  enum { W = 53, H = 41 };
  static uint8_t in[W * H], out[W * H];
  uint64_t x = 88172645463325252ull;
  for (int i = 0; i < W * H; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    in[i] = (uint8_t)(i / W < H / 2 ? x % 7 : 20 + x % 40); /* an edge, like tissue on glass */
  }
  for (int size = 1; size <= 9; size += 2) {
    CU_ASSERT_EQUAL_FATAL(ts_median_filter(in, W, H, size, out), 0);
    int bad = 0, r = size / 2;
    for (int y = 0; y < H; y++)
      for (int xx = 0; xx < W; xx++) {
        uint8_t v[81];
        int n = 0;
        for (int dy = -r; dy <= r; dy++)
          for (int dx = -r; dx <= r; dx++) {
            int yy = y + dy < 0 ? 0 : y + dy >= H ? H - 1 : y + dy;
            int x2 = xx + dx < 0 ? 0 : xx + dx >= W ? W - 1 : xx + dx;
            v[n++] = in[yy * W + x2];
          }
        for (int i = 1; i < n; i++) /* insertion sort */
          for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            uint8_t t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
          }
        bad += out[y * W + xx] != v[n / 2];
      }
    CU_ASSERT_EQUAL(bad, 0);
  }
}


/* ---- the reference pipeline: the straightforward versions of every step (double hue with
 * fmod, window max/min per pixel, breadth-first components), as tissue.c had them before
 * issue 15; the fast ones must give the same mask bit for bit. ---- */
static void ref_colour(const uint8_t *rgb, size_t n, uint8_t *sat, uint8_t *pen) {
  for (size_t i = 0; i < n; i++) {
    int r = rgb[3 * i], g = rgb[3 * i + 1], b = rgb[3 * i + 2];
    int mx = r > g ? (r > b ? r : b) : (g > b ? g : b), mn = r < g ? (r < b ? r : b) : (g < b ? g : b);
    int d = mx - mn, sv = mx ? (255 * d + mx / 2) / mx : 0;
    sat[i] = (uint8_t)sv;
    pen[i] = 0;
    if (d == 0) continue;
    double h = mx == r ? 60.0 * fmod((double)(g - b) / d + 6.0, 6.0)
               : mx == g ? 60.0 * ((double)(b - r) / d + 2.0)
                         : 60.0 * ((double)(r - g) / d + 4.0);
    if ((h >= 75 && h < 190 && sv >= 40) || (h >= 190 && h < 240 && sv >= 90)) pen[i] = 1;
  }
}

static void ref_morph(uint8_t *m, int w, int h, int size, int dilate, uint8_t *tmp) {
  if (size <= 1) return;
  int r0 = (size - 1) / 2, r1 = size - 1 - r0;
  if (!dilate) {
    int t = r0;
    r0 = r1;
    r1 = t;
  }
  uint8_t fill = dilate ? 0 : 255;
  for (int pass = 0; pass < 2; pass++) {
    const uint8_t *src = pass ? tmp : m;
    uint8_t *dst = pass ? m : tmp;
    for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++) {
        uint8_t v = fill;
        for (int d = -r0; d <= r1; d++) {
          int xx = pass ? x : x + d, yy = pass ? y + d : y;
          uint8_t q = (xx < 0 || xx >= w || yy < 0 || yy >= h) ? fill : src[(size_t)yy * w + xx];
          v = dilate ? (q > v ? q : v) : (q < v ? q : v);
        }
        dst[(size_t)y * w + x] = v;
      }
  }
}

static void ref_components(uint8_t *m, int w, int h, uint8_t val, int conn8, int64_t min_px, int skip_border,
                           uint8_t repl) {
  if (min_px <= 1) return;
  size_t n = (size_t)w * h;
  uint8_t *seen = calloc(n, 1);
  int32_t *q = malloc(n * sizeof *q);
  static const int dx[8] = {1, -1, 0, 0, 1, 1, -1, -1}, dy[8] = {0, 0, 1, -1, 1, -1, 1, -1};
  for (size_t s0 = 0; s0 < n; s0++) {
    if (seen[s0] || m[s0] != val) continue;
    size_t head = 0, tail = 0;
    int border = 0;
    q[tail++] = (int32_t)s0;
    seen[s0] = 1;
    while (head < tail) {
      int32_t p = q[head++];
      int x = p % w, y = p / w;
      if (x == 0 || y == 0 || x == w - 1 || y == h - 1) border = 1;
      for (int d = 0; d < (conn8 ? 8 : 4); d++) {
        int xx = x + dx[d], yy = y + dy[d];
        if (xx < 0 || yy < 0 || xx >= w || yy >= h) continue;
        size_t pp = (size_t)yy * w + xx;
        if (!seen[pp] && m[pp] == val) {
          seen[pp] = 1;
          q[tail++] = (int32_t)pp;
        }
      }
    }
    if ((int64_t)tail < min_px && !(skip_border && border))
      for (size_t i = 0; i < tail; i++) m[q[i]] = repl;
  }
  free(seen);
  free(q);
}

/* The whole of ts_tissue_mask after the read, the reference way, on the view it read. */
static void ref_mask(const ts_mask *m, const ts_tissue_params *p, double mpp0, uint8_t *out) {
  int w = m->w, h = m->h;
  size_t n = (size_t)w * h;
  uint8_t *sat = malloc(n), *pen = malloc(n), *med = malloc(n), *tmp = malloc(n);
  ref_colour(m->thumb_rgb, n, sat, pen);
  int msize = p->median_px > 1 ? (p->median_px | 1) : 1;
  ts_median_filter(sat, w, h, msize, med); /* itself checked against sorting above */
  for (size_t i = 0; i < n; i++) pen[i] = pen[i] ? 255 : 0;
  ref_morph(pen, w, h, msize + (p->close_px > 1 ? p->close_px : 0), 1, tmp);
  uint64_t hist[256] = {0};
  for (size_t i = 0; i < n; i++)
    if (!pen[i]) hist[med[i]]++;
  int thr = ts_otsu_threshold(hist);
  if (thr < p->sat_floor) thr = p->sat_floor;
  for (size_t i = 0; i < n; i++) out[i] = med[i] > thr ? 255 : 0;
  if (p->close_px > 1) {
    ref_morph(out, w, h, p->close_px, 1, tmp);
    ref_morph(out, w, h, p->close_px, 0, tmp);
  }
  for (size_t i = 0; i < n; i++)
    if (pen[i]) out[i] = 0;
  double px_um2 = m->mpp * (mpp0 * m->scale_y);
  ref_components(out, w, h, 255, 1, (int64_t)ceil(p->min_area_um2 / px_um2), 0, 0);
  ref_components(out, w, h, 0, 0, (int64_t)ceil(p->min_hole_um2 / px_um2), 1, 255);
  free(sat);
  free(pen);
  free(med);
  free(tmp);
}

static void test_tissue_mask_matches_reference(void) {
  ts_slide *s = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_slide_open(synth_path, "synth", &s), 0);
  CU_ASSERT_EQUAL_FATAL(ts_slide_resolve_mpp(s, 0, 0), 0);
  /* the defaults, then settings that exercise other window sizes, holes and object sizes */
  for (int variant = 0; variant < 3; variant++) {
    ts_tissue_params p;
    ts_tissue_params_default(&p);
    if (variant == 1) {
      p.target_mpp = 4;
      p.median_px = 5;
      p.close_px = 8;
      p.min_area_um2 = 200000;
      p.min_hole_um2 = 50000;
    } else if (variant == 2) {
      p.target_mpp = 12;
      p.median_px = 1;
      p.close_px = 0;
      p.sat_floor = 40;
    }
    ts_mask m;
    CU_ASSERT_EQUAL_FATAL(ts_tissue_mask(s, &p, &m), 0);
    uint8_t *ref = malloc((size_t)m.w * m.h);
    ref_mask(&m, &p, ts_slide_mpp(s), ref);
    size_t diff = 0, on = 0;
    for (size_t i = 0; i < (size_t)m.w * m.h; i++) {
      diff += ref[i] != m.data[i];
      on += m.data[i] != 0;
    }
    CU_ASSERT_EQUAL(diff, 0);
    CU_ASSERT(on > 0);
    free(ref);
    ts_mask_clear(&m);
  }
  ts_slide_free(&s);
}

/* A large mask gives a QC picture of at most TS_QC_MAX_PX a side (integer box factor). */
static void test_tissue_qc_png_downscaled(void) {
  ts_mask m = {0};
  m.w = 2100;
  m.h = 1000;
  m.scale_x = m.scale_y = 16;
  m.mpp = 8;
  m.data = calloc((size_t)m.w * m.h, 1);
  m.thumb_rgb = malloc((size_t)m.w * m.h * 3);
  for (int y = 0; y < m.h; y++)
    for (int x = 0; x < m.w; x++) {
      m.data[(size_t)y * m.w + x] = (x - 1000) * (x - 1000) + (y - 500) * (y - 500) < 400 * 400 ? 255 : 0;
      memset(m.thumb_rgb + ((size_t)y * m.w + x) * 3, m.data[(size_t)y * m.w + x] ? 120 : 240, 3);
    }
  char qc[600];
  snprintf(qc, sizeof qc, "%s/qc_big.png", tmpdir); /* not qc.png: libvips caches loads by name */
  int64_t coords[2] = {16000, 8000};
  CU_ASSERT_EQUAL_FATAL(ts_qc_png(&m, coords, 1, 256.0, qc), 0);
  VipsImage *png = vips_image_new_from_file(qc, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(png);
  CU_ASSERT_EQUAL(png->Xsize, 700); /* factor 3 */
  CU_ASSERT_EQUAL(png->Ysize, 334);
  CU_ASSERT_EQUAL(png->Bands, 3);
  double avg = 0;
  CU_ASSERT_EQUAL(vips_avg(png, &avg, NULL), 0); /* decodes every row: the zlib stream is whole */
  CU_ASSERT(avg > 100 && avg < 250);
  g_object_unref(png);
  ts_mask_clear(&m);
}

/* Several outputs, one commit: all renamed into place; a missing one fails with IO_COMMIT and
 * leaves no temporary file. */
static void test_tissue_outputs_commit(void) {
  char a[600], b[600], ta[700], tb[700];
  snprintf(a, sizeof a, "%s/a.out", tmpdir);
  snprintf(b, sizeof b, "%s/b.out", tmpdir);
  snprintf(ta, sizeof ta, "%s.tmp.1", a);
  snprintf(tb, sizeof tb, "%s.tmp.1", b);
  FILE *f = fopen(ta, "w");
  fputs("A", f);
  fclose(f);
  f = fopen(tb, "w");
  fputs("B", f);
  fclose(f);
  CU_ASSERT_EQUAL(ts_outputs_commit((const char *const[]){ta, tb}, (const char *const[]){a, b}, 2), 0);
  CU_ASSERT(access(a, F_OK) == 0 && access(b, F_OK) == 0 && access(ta, F_OK) != 0 && access(tb, F_OK) != 0);
  f = fopen(tb, "w");
  fputs("B2", f);
  fclose(f);
  CU_ASSERT(ts_outputs_commit((const char *const[]){ta, tb}, (const char *const[]){a, b}, 2) < 0);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "IO_COMMIT");
  CU_ASSERT(access(tb, F_OK) != 0);
  unlink(a);
  unlink(b);
}

int ts_test_register(void) {
  CU_pSuite su = CU_add_suite("tissue", suite_init, suite_clean);
  if (!su) return -1;
  if (!CU_add_test(su, "test_tissue_otsu_matches_brute_force", test_tissue_otsu_matches_brute_force) ||
      !CU_add_test(su, "test_tissue_median_matches_brute_force", test_tissue_median_matches_brute_force) ||
      !CU_add_test(su, "test_tissue_mask_synthetic_disc", test_tissue_mask_synthetic_disc) ||
      !CU_add_test(su, "test_tissue_mask_h5_round_trip", test_tissue_mask_h5_round_trip) ||
      !CU_add_test(su, "test_tissue_mask_matches_reference", test_tissue_mask_matches_reference) ||
      !CU_add_test(su, "test_tissue_qc_png_downscaled", test_tissue_qc_png_downscaled) ||
      !CU_add_test(su, "test_tissue_outputs_commit", test_tissue_outputs_commit))
    return -1;
  return 0;
}
