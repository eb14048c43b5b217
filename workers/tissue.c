/* tissue.c — CLAM-like tissue mask on a downsampled view of a slide (see ts_tissue.h).
 *
 * Steps, following CLAM's segmentTissue (Lu et al., Nat. Biomed. Eng. 2021): saturation of
 * HSV, median blur, Otsu threshold, morphological closing, then filtering of connected
 * components by area (objects and holes). Differences, on purpose:
 *  - everything is sized in micrometres, not in pyramid-level pixels, so a 20x and a 40x scan
 *    of the same glass give the same mask;
 *  - Otsu has a floor (sat_floor): on a blank slide Otsu splits glass noise in two;
 *  - pen ink (strong green/blue hues) is excluded from the Otsu histogram and from the mask.
 *
 * Resolution: we read the coarsest level at or finer than target_mpp and box-average k×k
 * blocks (k = floor(target / level mpp)), streaming the level in row strips, so the mask
 * pixel is level_mpp*k <= target_mpp and memory stays at a few strips even when the coarsest
 * level is level 0 of a gigapixel slide. Box averaging (not resampling) keeps mask pixels
 * aligned to whole level pixels: mask pixel (i, j) = level pixels [j*k, (j+1)*k) × [i*k, ...).
 *
 * The median, the pixel-wise colour maths, Otsu, the square closing (separable running
 * max/min) and the connected components are plain C on the small buffer: exact,
 * deterministic and faster than building a pipeline for a ~1000² image (and libvips 8.14.1's
 * median is wrong: see ts_median_filter). libvips draws and writes the QC PNG.
 */
#include "ts_tissue.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <vips/vips.h>

#include "h5util.h"
#include "ts_io.h"

/* Level pixels per strip read: bounds the RGB scratch (3 bytes/px). */
#define STRIP_PX (8 << 20)

void ts_tissue_params_default(ts_tissue_params *p) {
  p->target_mpp = 8.0;
  p->median_px = 7;
  p->close_px = 5;
  p->min_area_um2 = 20000.0;
  p->min_hole_um2 = 8000.0;
  p->sat_floor = 15;
}

void ts_mask_clear(ts_mask *m) {
  if (!m) return;
  free(m->data);
  free(m->thumb_rgb);
  memset(m, 0, sizeof *m);
}

int ts_otsu_threshold(const uint64_t hist[256]) {
  /* Otsu (1979): maximise the between-class variance w0*w1*(mu0-mu1)^2 over t, class 0 =
   * [0, t], class 1 = [t+1, 255]. Ties keep the first maximum. */
  double total = 0, sum = 0;
  for (int i = 0; i < 256; i++) {
    total += (double)hist[i];
    sum += (double)i * (double)hist[i];
  }
  if (total <= 0) return 0;
  double w0 = 0, sum0 = 0, best = -1;
  int t_best = 0;
  for (int t = 0; t < 255; t++) {
    w0 += (double)hist[t];
    sum0 += (double)t * (double)hist[t];
    double w1 = total - w0;
    if (w0 <= 0 || w1 <= 0) continue;
    double mu0 = sum0 / w0, mu1 = (sum - sum0) / w1;
    double between = w0 * w1 * (mu0 - mu1) * (mu0 - mu1);
    if (between > best * (1 + 1e-12)) {
      best = between;
      t_best = t;
    }
  }
  return t_best;
}

/* Read `level` of s box-averaged by k into rgb (W*H*3), streaming row strips. */
static int read_thumb(ts_slide *s, int level, int k, int W, int H, uint8_t *rgb) {
  int64_t lw, lh;
  ts_slide_level_dims(s, level, &lw, &lh);
  double ds = ts_slide_level_downsample(s, level);
  int blocks = (int)(STRIP_PX / ((size_t)lw * (size_t)k));
  if (blocks < 1) blocks = 1;
  if (blocks > H) blocks = H;
  uint8_t *buf = malloc((size_t)blocks * (size_t)k * (size_t)lw * 3);
  uint32_t *acc = calloc((size_t)W * 3, sizeof *acc);
  if (!buf || !acc) {
    free(buf);
    free(acc);
    return ts_error_set(TS_ENOMEM, "ENOMEM", "tissue: thumbnail scratch for %lld px rows", (long long)lw);
  }
  int rc = 0;
  for (int oy0 = 0; oy0 < H; oy0 += blocks) {
    int64_t ly0 = (int64_t)oy0 * k;
    int64_t nl = (int64_t)blocks * k;
    if (ly0 + nl > lh) nl = lh - ly0;
    /* level row -> level-0 y: OpenSlide addresses regions by their level-0 origin. */
    rc = ts_slide_read_rgb(s, level, 0, (int64_t)llround((double)ly0 * ds), (int)lw, (int)nl, buf);
    if (rc < 0) break;
    for (int oy = oy0; oy < H && (int64_t)(oy - oy0) * k < nl; oy++) {
      memset(acc, 0, (size_t)W * 3 * sizeof *acc);
      int r_lo = (oy - oy0) * k;
      int r_hi = r_lo + k;
      if (r_hi > nl) r_hi = (int)nl;
      for (int r = r_lo; r < r_hi; r++) {
        const uint8_t *row = buf + (size_t)r * (size_t)lw * 3;
        for (int64_t x = 0; x < lw; x++) {
          uint32_t *a = acc + (size_t)(x / k) * 3;
          a[0] += row[3 * x];
          a[1] += row[3 * x + 1];
          a[2] += row[3 * x + 2];
        }
      }
      int nr = r_hi - r_lo;
      for (int ox = 0; ox < W; ox++) {
        int nc = (int)((ox + 1) * (int64_t)k <= lw ? k : lw - (int64_t)ox * k);
        uint32_t n = (uint32_t)(nr * nc);
        uint8_t *o = rgb + ((size_t)oy * W + ox) * 3;
        for (int c = 0; c < 3; c++)
          o[c] = (uint8_t)((acc[ox * 3 + c] + n / 2) / n);
      }
    }
  }
  free(buf);
  free(acc);
  return rc;
}

/* HSV saturation (0..255, OpenCV convention S = 255*(max-min)/max) and a pen flag. */
static void colour_planes(const uint8_t *rgb, size_t n, uint8_t *sat, uint8_t *pen) {
  for (size_t i = 0; i < n; i++) {
    int r = rgb[3 * i], g = rgb[3 * i + 1], b = rgb[3 * i + 2];
    int mx = r > g ? (r > b ? r : b) : (g > b ? g : b);
    int mn = r < g ? (r < b ? r : b) : (g < b ? g : b);
    int d = mx - mn;
    int s = mx ? (255 * d + mx / 2) / mx : 0;
    sat[i] = (uint8_t)s;
    pen[i] = 0;
    if (d == 0) continue;
    double h;
    if (mx == r)
      h = 60.0 * fmod((double)(g - b) / d + 6.0, 6.0);
    else if (mx == g)
      h = 60.0 * ((double)(b - r) / d + 2.0);
    else
      h = 60.0 * ((double)(r - g) / d + 4.0);
    /* H&E lives in magenta..red..orange (about 270..360 and 0..40 degrees) and haematoxylin
     * up to violet-blue (about 240..270). Green and cyan ink (75..190) is never stain; blue
     * ink (190..240) is told from haematoxylin by its strong saturation. */
    if ((h >= 75 && h < 190 && s >= 40) || (h >= 190 && h < 240 && s >= 90)) pen[i] = 1;
  }
}

/* Median filter, size x size window, borders replicated (OpenCV's medianBlur, which CLAM
 * uses, does the same). Huang's sliding histogram with a running "count below the median",
 * so each step costs O(size), not O(256).
 *
 * Not vips_median: libvips 8.14.1's rank filter returns wrong values on uchar images (on a
 * random 60x60 image, 882 of 2916 interior pixels differed from the exact 7x7 median), and it
 * shrank every tissue outline by about a pixel. */
int ts_median_filter(const uint8_t *in, int w, int h, int size, uint8_t *out) {
  /* a tiny slide (small.svs is 16x16 px: a 1x1 mask) cannot take a 7x7 window */
  int lim = w < h ? w : h;
  if (size > lim) size = lim % 2 ? lim : lim - 1;
  if (size <= 1) {
    memcpy(out, in, (size_t)w * h);
    return 0;
  }
  int r = size / 2, rank = size * size / 2;
  for (int y = 0; y < h; y++) {
    int hist[256] = {0};
    for (int dy = -r; dy <= r; dy++) {
      int yy = y + dy < 0 ? 0 : y + dy >= h ? h - 1 : y + dy;
      for (int dx = -r; dx <= r; dx++) {
        int xx = dx < 0 ? 0 : dx >= w ? w - 1 : dx;
        hist[in[(size_t)yy * w + xx]]++;
      }
    }
    int med = 0, lt = 0;
    for (int x = 0; x < w; x++) {
      if (x > 0) { /* slide right: drop column x-r-1, add column x+r (both clamped) */
        int xo = x - r - 1 < 0 ? 0 : x - r - 1, xn = x + r >= w ? w - 1 : x + r;
        for (int dy = -r; dy <= r; dy++) {
          int yy = y + dy < 0 ? 0 : y + dy >= h ? h - 1 : y + dy;
          uint8_t vo = in[(size_t)yy * w + xo], vn = in[(size_t)yy * w + xn];
          hist[vo]--;
          lt -= vo < med;
          hist[vn]++;
          lt += vn < med;
        }
      }
      while (lt > rank) lt -= hist[--med];
      while (lt + hist[med] <= rank) lt += hist[med++];
      out[(size_t)y * w + x] = (uint8_t)med;
    }
  }
  return 0;
}

/* Running max (dilate=1) or min over a 1-D window [i-r0, i+r1] along rows then columns:
 * a square structuring element is separable. Outside the image counts as background for
 * dilation and as foreground for erosion, so that closing never eats the border. */
static void morph_square(uint8_t *m, int w, int h, int size, int dilate, uint8_t *tmp) {
  if (size <= 1) return;
  int r0 = (size - 1) / 2, r1 = size - 1 - r0;
  if (!dilate) {
    int t = r0;
    r0 = r1;
    r1 = t;
  } /* erosion mirrors the element */
  uint8_t fill = dilate ? 0 : 255;
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      uint8_t v = fill;
      for (int d = -r0; d <= r1; d++) {
        int xx = x + d;
        uint8_t p = (xx < 0 || xx >= w) ? fill : m[(size_t)y * w + xx];
        v = dilate ? (p > v ? p : v) : (p < v ? p : v);
      }
      tmp[(size_t)y * w + x] = v;
    }
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      uint8_t v = fill;
      for (int d = -r0; d <= r1; d++) {
        int yy = y + d;
        uint8_t p = (yy < 0 || yy >= h) ? fill : tmp[(size_t)yy * w + x];
        v = dilate ? (p > v ? p : v) : (p < v ? p : v);
      }
      m[(size_t)y * w + x] = v;
    }
}

/* Connected components of pixels equal to `val` (8-connected for foreground, 4 for
 * background, the usual dual pair). Components with fewer than min_px pixels (and, when
 * skip_border, not touching the image border) are set to `repl`. */
static int filter_components(uint8_t *m, int w, int h, uint8_t val, int conn8, int64_t min_px,
                             int skip_border, uint8_t repl) {
  if (min_px <= 1) return 0;
  size_t n = (size_t)w * h;
  uint8_t *seen = calloc(n, 1);
  int32_t *q = malloc(n * sizeof *q);
  if (!seen || !q) {
    free(seen);
    free(q);
    return ts_error_set(TS_ENOMEM, "ENOMEM", "tissue: components of %dx%d", w, h);
  }
  static const int dx[8] = {1, -1, 0, 0, 1, 1, -1, -1}, dy[8] = {0, 0, 1, -1, 1, -1, 1, -1};
  int nd = conn8 ? 8 : 4;
  for (size_t s = 0; s < n; s++) {
    if (seen[s] || m[s] != val) continue;
    size_t head = 0, tail = 0;
    int border = 0;
    q[tail++] = (int32_t)s;
    seen[s] = 1;
    while (head < tail) {
      int32_t p = q[head++];
      int x = p % w, y = p / w;
      if (x == 0 || y == 0 || x == w - 1 || y == h - 1) border = 1;
      for (int d = 0; d < nd; d++) {
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
      for (size_t i = 0; i < tail; i++)
        m[q[i]] = repl;
  }
  free(seen);
  free(q);
  return 0;
}

int ts_tissue_mask(ts_slide *s, const ts_tissue_params *p, ts_mask *out) {
  int rc = 0;
  uint8_t *sat = NULL, *pen = NULL, *med = NULL, *tmp = NULL;
  ts_tissue_params dp;
  if (!s || !out) return ts_error_set(TS_EINVAL, "EINVAL", "ts_tissue_mask: NULL argument");
  memset(out, 0, sizeof *out);
  if (!p) {
    ts_tissue_params_default(&dp);
    p = &dp;
  }
  double mpp0 = ts_slide_mpp(s);
  if (!(mpp0 > 0))
    return ts_error_set(TS_EINPUT, "SLIDE_NO_MPP", "slide '%s': tissue needs a resolved mpp", ts_slide_id(s));
  if (!(p->target_mpp > 0) || p->median_px < 0 || p->close_px < 0)
    return ts_error_set(TS_EINVAL, "EINVAL", "ts_tissue_mask: bad parameters");

  int level = ts_slide_best_level(s, p->target_mpp);
  double ds = ts_slide_level_downsample(s, level);
  int64_t lw, lh, w0, h0;
  ts_slide_level_dims(s, level, &lw, &lh);
  ts_slide_level_dims(s, 0, &w0, &h0);
  double lmpp = mpp0 * ds;
  int k = (int)floor(p->target_mpp / lmpp + 1e-6);
  if (k < 1) k = 1;
  int64_t W = (lw + k - 1) / k, H = (lh + k - 1) / k;
  if (W * H > ((int64_t)1 << 28))
    return ts_error_set(TS_EINPUT, "TISSUE_TOO_LARGE",
                        "slide '%s': a %lldx%lld mask at %.3g um/px is too large", ts_slide_id(s),
                        (long long)W, (long long)H, lmpp * k);
  size_t n = (size_t)W * (size_t)H;
  out->w = (int)W;
  out->h = (int)H;
  out->level = level;
  /* Level-0 px per mask px from the level's own size (OpenSlide's downsample is a mean of
   * the two axes and can be off by a fraction for odd sizes). */
  out->scale_x = (double)w0 / (double)lw * k;
  out->scale_y = (double)h0 / (double)lh * k;
  out->mpp = mpp0 * out->scale_x;
  out->thumb_rgb = malloc(n * 3);
  out->data = calloc(n, 1);
  sat = malloc(n);
  pen = malloc(n);
  med = malloc(n);
  tmp = malloc(n);
  if (!out->thumb_rgb || !out->data || !sat || !pen || !med || !tmp)
    TS_FAIL(TS_ENOMEM, "ENOMEM", "tissue: %lldx%lld mask", (long long)W, (long long)H);

  TS_TRY(read_thumb(s, level, k, (int)W, (int)H, out->thumb_rgb));
  colour_planes(out->thumb_rgb, n, sat, pen);
  int msize = p->median_px > 1 ? (p->median_px | 1) : 1;
  TS_TRY(ts_median_filter(sat, (int)W, (int)H, msize, med));

  /* Pen pixels, grown by the reach of the median and closing windows, are not tissue. */
  for (size_t i = 0; i < n; i++)
    pen[i] = pen[i] ? 255 : 0;
  morph_square(pen, (int)W, (int)H, msize + (p->close_px > 1 ? p->close_px : 0), 1, tmp);

  uint64_t hist[256] = {0};
  for (size_t i = 0; i < n; i++)
    if (!pen[i]) hist[med[i]]++;
  int thr = ts_otsu_threshold(hist);
  if (thr < p->sat_floor) thr = p->sat_floor;
  out->threshold = thr;

  for (size_t i = 0; i < n; i++)
    out->data[i] = (med[i] > thr) ? 255 : 0;
  if (p->close_px > 1) {
    morph_square(out->data, (int)W, (int)H, p->close_px, 1, tmp);
    morph_square(out->data, (int)W, (int)H, p->close_px, 0, tmp);
  }
  for (size_t i = 0; i < n; i++)
    if (pen[i]) out->data[i] = 0;

  double px_um2 = out->mpp * (mpp0 * out->scale_y);
  int64_t min_obj = (int64_t)ceil(p->min_area_um2 / px_um2);
  int64_t min_hole = (int64_t)ceil(p->min_hole_um2 / px_um2);
  TS_TRY(filter_components(out->data, (int)W, (int)H, 255, 1, min_obj, 0, 0));
  TS_TRY(filter_components(out->data, (int)W, (int)H, 0, 0, min_hole, 1, 255));
out:
  free(sat);
  free(pen);
  free(med);
  free(tmp);
  if (rc < 0) ts_mask_clear(out);
  return rc;
}

/* ---- HDF5 ---------------------------------------------------------------------------- */

int ts_mask_save_h5(const ts_mask *m, const char *path) {
  int rc = 0;
  char tmp[TS_PATH_MAX];
  hid_t f = -1, sp = -1, dcpl = -1, ds = -1, sp3 = -1, dcpl3 = -1, ds3 = -1;
  if (!m || !m->data || !path || m->w <= 0 || m->h <= 0)
    return ts_error_set(TS_EINVAL, "EINVAL", "ts_mask_save_h5: empty mask");
  TS_CALL(ts_io_tmp_path(path, tmp, sizeof tmp));
  f = ts__h5_create(tmp);
  if (f < 0) {
    rc = ts__h5_fail(TS_EIO, "H5_WRITE", "cannot create %s", tmp);
    goto out;
  }
  hsize_t dims[2] = {(hsize_t)m->h, (hsize_t)m->w};
  sp = H5Screate_simple(2, dims, NULL);
  dcpl = ts__h5_dcpl(1, dims[0] < 256 ? dims[0] : 256, dims[1] < 256 ? dims[1] : 256, 4);
  if (sp < 0 || dcpl < 0) {
    rc = ts__h5_fail(TS_EIO, "H5_WRITE", "%s: mask dataspace", tmp);
    goto out;
  }
  ds = H5Dcreate2(f, "mask", H5T_STD_U8LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  if (ds < 0 || H5Dwrite(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, m->data) < 0) {
    rc = ts__h5_fail(TS_EIO, "H5_WRITE", "%s: mask dataset", tmp);
    goto out;
  }
  TS_TRY(ts__h5_attr_f64(ds, "scale_x", m->scale_x));
  TS_TRY(ts__h5_attr_f64(ds, "scale_y", m->scale_y));
  TS_TRY(ts__h5_attr_f64(ds, "mpp", m->mpp));
  TS_TRY(ts__h5_attr_i64(ds, "level", m->level));
  TS_TRY(ts__h5_attr_i64(ds, "threshold", m->threshold));
  if (m->thumb_rgb) {
    /* the view the mask was computed on, so the tile stage can draw its QC without the slide */
    hsize_t d3[3] = {(hsize_t)m->h, (hsize_t)m->w, 3};
    sp3 = H5Screate_simple(3, d3, NULL);
    dcpl3 = H5Pcreate(H5P_DATASET_CREATE);
    hsize_t c3[3] = {d3[0] < 128 ? d3[0] : 128, d3[1] < 128 ? d3[1] : 128, 3};
    if (sp3 < 0 || dcpl3 < 0 || H5Pset_chunk(dcpl3, 3, c3) < 0 || H5Pset_deflate(dcpl3, 4) < 0 ||
        H5Pset_obj_track_times(dcpl3, 0) < 0 ||
        (ds3 = H5Dcreate2(f, "thumbnail", H5T_STD_U8LE, sp3, H5P_DEFAULT, dcpl3, H5P_DEFAULT)) < 0 ||
        H5Dwrite(ds3, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, m->thumb_rgb) < 0) {
      rc = ts__h5_fail(TS_EIO, "H5_WRITE", "%s: thumbnail dataset", tmp);
      goto out;
    }
  }
out:
  if (ds3 >= 0) H5Dclose(ds3);
  if (dcpl3 >= 0) H5Pclose(dcpl3);
  if (sp3 >= 0) H5Sclose(sp3);
  if (ds >= 0 && H5Dclose(ds) < 0 && rc == 0) rc = ts__h5_fail(TS_EIO, "H5_WRITE", "close");
  if (dcpl >= 0) H5Pclose(dcpl);
  if (sp >= 0) H5Sclose(sp);
  if (f >= 0 && H5Fclose(f) < 0 && rc == 0) rc = ts__h5_fail(TS_EIO, "H5_WRITE", "closing %s", tmp);
  if (rc == 0) rc = ts_io_commit(tmp, path);
  if (rc < 0) unlink(tmp);
  return rc;
}

int ts_mask_load_h5(const char *path, ts_mask *out) {
  int rc = 0;
  hid_t f = -1, ds = -1, sp = -1;
  if (!path || !out) return ts_error_set(TS_EINVAL, "EINVAL", "ts_mask_load_h5: NULL");
  memset(out, 0, sizeof *out);
  ts__h5_quiet();
  f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) return ts__h5_fail(TS_EIO, "H5_READ", "cannot open %s", path);
  ds = H5Dopen2(f, "mask", H5P_DEFAULT);
  if (ds < 0) {
    rc = ts__h5_fail(TS_EIO, "H5_READ", "%s: no dataset 'mask'", path);
    goto out;
  }
  sp = H5Dget_space(ds);
  hsize_t dims[2] = {0, 0};
  if (sp < 0 || H5Sget_simple_extent_ndims(sp) != 2 || H5Sget_simple_extent_dims(sp, dims, NULL) < 0 ||
      dims[0] == 0 || dims[1] == 0 || dims[0] > INT32_MAX || dims[1] > INT32_MAX) {
    rc = ts__h5_fail(TS_EIO, "H5_READ", "%s: 'mask' is not a 2-D image", path);
    goto out;
  }
  out->h = (int)dims[0];
  out->w = (int)dims[1];
  out->data = malloc((size_t)dims[0] * dims[1]);
  if (!out->data) TS_FAIL(TS_ENOMEM, "ENOMEM", "%s: mask", path);
  if (H5Dread(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, out->data) < 0) {
    rc = ts__h5_fail(TS_EIO, "H5_READ", "%s: reading 'mask'", path);
    goto out;
  }
  int64_t lv = 0, th = 0;
  TS_TRY(ts__h5_read_attr_f64(ds, "scale_x", &out->scale_x));
  TS_TRY(ts__h5_read_attr_f64(ds, "scale_y", &out->scale_y));
  TS_TRY(ts__h5_read_attr_f64(ds, "mpp", &out->mpp));
  TS_TRY(ts__h5_read_attr_i64(ds, "level", &lv));
  TS_TRY(ts__h5_read_attr_i64(ds, "threshold", &th));
  out->level = (int)lv;
  out->threshold = (int)th;
  if (H5Lexists(f, "thumbnail", H5P_DEFAULT) > 0) {
    hid_t td = H5Dopen2(f, "thumbnail", H5P_DEFAULT);
    out->thumb_rgb = malloc((size_t)out->w * (size_t)out->h * 3);
    if (td < 0 || !out->thumb_rgb ||
        H5Dread(td, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, out->thumb_rgb) < 0) {
      free(out->thumb_rgb); /* the QC falls back to drawing the mask */
      out->thumb_rgb = NULL;
    }
    if (td >= 0) H5Dclose(td);
  }
out:
  if (sp >= 0) H5Sclose(sp);
  if (ds >= 0) H5Dclose(ds);
  if (f >= 0 && H5Fclose(f) < 0 && rc == 0) rc = ts__h5_fail(TS_EIO, "H5_READ", "close");
  if (rc < 0) ts_mask_clear(out);
  return rc;
}

/* ---- QC PNG --------------------------------------------------------------------------- */

static void put_px(uint8_t *img, int w, int h, int64_t x, int64_t y, uint8_t r, uint8_t g, uint8_t b) {
  if (x < 0 || y < 0 || x >= w || y >= h) return;
  uint8_t *o = img + ((size_t)y * w + (size_t)x) * 3;
  o[0] = r;
  o[1] = g;
  o[2] = b;
}

int ts_qc_png(const ts_mask *m, const int64_t *coords, int64_t n_tiles, double tile_l0, const char *path) {
  int rc = 0;
  char tmp[TS_PATH_MAX];
  if (!m || !m->data || m->w <= 0 || m->h <= 0 || !path || (n_tiles > 0 && !coords))
    return ts_error_set(TS_EINVAL, "EINVAL", "ts_qc_png: bad arguments");
  int w = m->w, h = m->h;
  size_t n = (size_t)w * h;
  uint8_t *img = malloc(n * 3);
  if (!img) return ts_error_set(TS_ENOMEM, "ENOMEM", "ts_qc_png: %dx%d", w, h);
  if (m->thumb_rgb) {
    memcpy(img, m->thumb_rgb, n * 3);
  } else { /* loaded mask: grey tissue on white */
    for (size_t i = 0; i < n; i++)
      memset(img + 3 * i, m->data[i] ? 190 : 255, 3);
  }
  /* Tiles first, outline on top: the outline is the thing to check. */
  for (int64_t t = 0; t < n_tiles; t++) {
    int64_t x0 = (int64_t)floor((double)coords[2 * t] / m->scale_x);
    int64_t y0 = (int64_t)floor((double)coords[2 * t + 1] / m->scale_y);
    int64_t x1 = (int64_t)floor(((double)coords[2 * t] + tile_l0) / m->scale_x);
    int64_t y1 = (int64_t)floor(((double)coords[2 * t + 1] + tile_l0) / m->scale_y);
    if (x1 > x0) x1--;
    if (y1 > y0) y1--;
    for (int64_t x = x0; x <= x1; x++) {
      put_px(img, w, h, x, y0, 0, 0, 255);
      put_px(img, w, h, x, y1, 0, 0, 255);
    }
    for (int64_t y = y0; y <= y1; y++) {
      put_px(img, w, h, x0, y, 0, 0, 255);
      put_px(img, w, h, x1, y, 0, 0, 255);
    }
  }
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      if (!m->data[(size_t)y * w + x]) continue;
      int edge = x == 0 || y == 0 || x == w - 1 || y == h - 1 || !m->data[(size_t)y * w + x - 1] ||
                 !m->data[(size_t)y * w + x + 1] || !m->data[(size_t)(y - 1) * w + x] ||
                 !m->data[(size_t)(y + 1) * w + x];
      if (edge) put_px(img, w, h, x, y, 0, 255, 0);
    }
  VipsImage *v = NULL;
  TS_TRY(ts_io_tmp_path(path, tmp, sizeof tmp));
  v = vips_image_new_from_memory(img, n * 3, w, h, 3, VIPS_FORMAT_UCHAR);
  if (!v) TS_FAIL(TS_EINTERNAL, "VIPS", "ts_qc_png: %s", vips_error_buffer());
  v->Type = VIPS_INTERPRETATION_sRGB;
  /* strip: no timestamps or other metadata, so the PNG is reproducible. */
  if (vips_pngsave(v, tmp, "compression", 1, "strip", TRUE, NULL)) {
    rc = ts_error_set(TS_EIO, "QC_PNG", "cannot write %s: %s", tmp, vips_error_buffer());
    vips_error_clear();
    unlink(tmp);
    goto out;
  }
  rc = ts_io_commit(tmp, path);
  if (rc < 0) unlink(tmp);
out:
  if (v) g_object_unref(v);
  free(img);
  return rc;
}
