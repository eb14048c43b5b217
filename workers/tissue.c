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
 * median is wrong: see ts_median_filter). The QC PNG has its own small encoder (below).
 *
 * Cost (issue 15, a 20000² slide at 0.5 um/px, its 1250² level at 8 um/px): the read is the
 * decoding of ~25 JPEG tiles; the steps after it are O(1) per pixel (binary morphology by
 * running counts, components by runs) or skip work that cannot change a pixel (the median's
 * equal pairs, the hue of red-dominant pixels, the ink mask of a slide without ink). Every
 * step gives the bits the straightforward version gave: the tiles do not move.
 */
#include "ts_tissue.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "h5util.h"
#include "ts_io.h"
#include "ts_reader.h"

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

/* ---- big buffers ------------------------------------------------------------------------
 * A fresh 4 KiB page costs a fault the first time it is touched: ~13 us each on the development
 * VM (paravirtualised page tables), i.e. ~30 ms for 8 MiB, more than all the mask arithmetic.
 * A 2 MiB-aligned anonymous mapping with MADV_HUGEPAGE (transparent huge pages in "madvise"
 * mode, the Debian default) takes one fault per 2 MiB: 0.7 ms for the same 8 MiB. So the
 * buffers of a few MB (the view, the mask and its scratch, the summed-area table, the QC
 * picture) come from here; the header before the returned pointer remembers the mapping. */
typedef struct {
  void *base;
  size_t len;
} big_hdr;
#define BIG_ALIGN ((size_t)2 << 20)

#if defined(__SANITIZE_ADDRESS__)
/* AddressSanitizer sees no overflow into a raw mapping: under it, plain calloc'ed memory. */
void *ts__huge_alloc(size_t n) { return calloc(1, n ? n : 1); }
void ts__huge_free(void *p) { free(p); }
#else
void *ts__huge_alloc(size_t n) {
  size_t len = n + BIG_ALIGN + sizeof(big_hdr);
  len = (len + 4095) & ~(size_t)4095;
  uint8_t *base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) return NULL;
  uintptr_t a = ((uintptr_t)base + sizeof(big_hdr) + BIG_ALIGN - 1) & ~(uintptr_t)(BIG_ALIGN - 1);
  if (n >= BIG_ALIGN) (void)madvise((void *)a, n & ~(BIG_ALIGN - 1), MADV_HUGEPAGE); /* a hint */
  big_hdr *h = (big_hdr *)a - 1;
  h->base = base;
  h->len = len;
  return (void *)a; /* zero-filled, like calloc */
}

void ts__huge_free(void *p) {
  if (!p) return;
  big_hdr *h = (big_hdr *)p - 1;
  munmap(h->base, h->len);
}
#endif

void ts_mask_clear(ts_mask *m) {
  if (!m) return;
  if (m->arena) { /* data and thumb_rgb live in it */
    ts__huge_free(m->arena);
  } else {
    free(m->data);
    free(m->thumb_rgb);
  }
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

/* Read `level` of s box-averaged by k into rgb (W*H*3), streaming row strips. With k = 1 (the
 * slide has a level at the target: most pyramids) the strips are read straight into rgb. The
 * strips and their level-0 origins are the same whatever k, so the pixels are too. */
static int read_thumb(ts_slide *s, int level, int k, int W, int H, uint8_t *rgb) {
  int64_t lw, lh;
  ts_slide_level_dims(s, level, &lw, &lh);
  double ds = ts_slide_level_downsample(s, level);
  int blocks = (int)(STRIP_PX / ((size_t)lw * (size_t)k));
  if (blocks < 1) blocks = 1;
  if (blocks > H) blocks = H;
  uint8_t *buf = NULL;
  uint32_t *acc = NULL;
  if (k > 1) {
    buf = malloc((size_t)blocks * (size_t)k * (size_t)lw * 3);
    acc = malloc((size_t)W * 3 * sizeof *acc);
    if (!buf || !acc) {
      free(buf);
      free(acc);
      return ts_error_set(TS_ENOMEM, "ENOMEM", "tissue: thumbnail scratch for %lld px rows", (long long)lw);
    }
  }
  int rc = 0;
  for (int oy0 = 0; oy0 < H; oy0 += blocks) {
    int64_t ly0 = (int64_t)oy0 * k;
    int64_t nl = (int64_t)blocks * k;
    if (ly0 + nl > lh) nl = lh - ly0;
    /* level row -> level-0 y: OpenSlide addresses regions by their level-0 origin. */
    uint8_t *dst = k == 1 ? rgb + (size_t)oy0 * (size_t)W * 3 : buf;
    rc = ts_slide_read_rgb(s, level, 0, (int64_t)llround((double)ly0 * ds), (int)lw, (int)nl, dst);
    if (rc < 0) break;
    if (k == 1) continue;
    for (int oy = oy0; oy < H && (int64_t)(oy - oy0) * k < nl; oy++) {
      memset(acc, 0, (size_t)W * 3 * sizeof *acc);
      int r_lo = (oy - oy0) * k;
      int r_hi = r_lo + k;
      if (r_hi > nl) r_hi = (int)nl;
      for (int r = r_lo; r < r_hi; r++) {
        const uint8_t *row = buf + (size_t)r * (size_t)lw * 3;
        for (int ox = 0; ox < W; ox++) {
          int64_t x0 = (int64_t)ox * k, x1 = x0 + k < lw ? x0 + k : lw;
          uint32_t a0 = 0, a1 = 0, a2 = 0;
          for (int64_t x = x0; x < x1; x++) {
            a0 += row[3 * x];
            a1 += row[3 * x + 1];
            a2 += row[3 * x + 2];
          }
          acc[3 * ox] += a0;
          acc[3 * ox + 1] += a1;
          acc[3 * ox + 2] += a2;
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

/* The same view through the tile reader's libvips path (ts_reader.h, "vips-tiff"): libvips
 * decodes the level's JPEG tiles and hands back RGB rows, where openslide_read_region composes
 * them through cairo into premultiplied ARGB (~100 ms against ~15 for a 1250² level here,
 * bench/bench_tile). The view is read in squares of T level px (a multiple of k) on two
 * decoding threads and box-averaged as read_thumb does; a square reaching past the level is
 * white there, and those pixels are not used. Same pixels as OpenSlide wherever the level's
 * downsample is an integer (ts_reader.h); elsewhere the level's own pixels, where OpenSlide
 * interpolates a sub-pixel strip offset. *used is false (and nothing read) when the slide has
 * no such path: the caller reads through OpenSlide. */
static int read_view_fast(ts_slide *s, int level, int k, int W, uint8_t *rgb, bool *used) {
  *used = false;
  int64_t lw, lh;
  ts_slide_level_dims(s, level, &lw, &lh);
  double ds = ts_slide_level_downsample(s, level), mpp0 = ts_slide_mpp(s);
  const char *v = ts_slide_vendor(s);
  if (strcmp(v, "aperio") && strcmp(v, "generic-tiff")) return 0; /* no fast path: skip the open */
  int T = k * (256 / k > 0 ? 256 / k : 1); /* one TIFF tile: small reader slots (page faults) */
  ts_reader_opts o;
  ts_reader_opts_default(&o);
  o.threads = 2;
  o.batch = 1;
  o.queue = 4;
  ts_reader *r = NULL;
  int64_t *coords = NULL;
  uint32_t *acc = NULL;
  int rc = ts_reader_open(ts_slide_path(s), ts_slide_id(s), mpp0, mpp0 * ds, T, &o, &r);
  if (rc < 0) return rc;
  if (ts_reader_backend(r) != TS_READER_VIPS_TIFF || ts_reader_level(r) != level || ts_reader_resizes(r)) {
    ts_reader_free(&r);
    return 0;
  }
  int64_t nx = (lw + T - 1) / T, ny = (lh + T - 1) / T, nt = nx * ny;
  coords = malloc((size_t)nt * 2 * sizeof *coords);
  acc = k > 1 ? malloc((size_t)(T / k) * 3 * sizeof *acc) : NULL;
  if (!coords || (k > 1 && !acc)) TS_FAIL(TS_ENOMEM, "ENOMEM", "tissue: %lld view squares", (long long)nt);
  for (int64_t t = 0; t < nt; t++) { /* level px (tx*T, ty*T) as level-0 px the reader maps back */
    coords[2 * t] = (int64_t)ceil((double)((t % nx) * T) * ds - 1e-9);
    coords[2 * t + 1] = (int64_t)ceil((double)((t / nx) * T) * ds - 1e-9);
  }
  TS_TRY(ts_reader_start(r, coords, nt));
  for (int64_t t = 0; t < nt; t++) {
    ts_reader_batch *b = NULL;
    TS_TRY(ts_reader_next(r, &b));
    if (!b) TS_FAIL(TS_EINTERNAL, "TISSUE_READ", "slide '%s': the reader ended early", ts_slide_id(s));
    if (b->n_bad) {
      rc = ts_error_set(TS_EINPUT, "SLIDE_UNREADABLE", "slide '%s' (%s): reading level %d for the tissue view: %s",
                        ts_slide_id(s), ts_slide_path(s), level, b->first_error);
      ts_reader_release(r, &b);
      goto out;
    }
    const uint8_t *px = b->pixels;
    int64_t lx0 = (t % nx) * T, ly0 = (t / nx) * T;
    int cw = (int)(lx0 + T <= lw ? T : lw - lx0), ch = (int)(ly0 + T <= lh ? T : lh - ly0);
    if (k == 1) {
      for (int yy = 0; yy < ch; yy++)
        memcpy(rgb + ((size_t)(ly0 + yy) * W + (size_t)lx0) * 3, px + (size_t)yy * T * 3, (size_t)cw * 3);
    } else {
      int bw = (cw + k - 1) / k;
      for (int by = 0; by * k < ch; by++) {
        memset(acc, 0, (size_t)bw * 3 * sizeof *acc);
        int r_hi = (by + 1) * k < ch ? (by + 1) * k : ch;
        for (int yy = by * k; yy < r_hi; yy++) {
          const uint8_t *row = px + (size_t)yy * T * 3;
          for (int bx = 0; bx < bw; bx++) {
            int x1 = (bx + 1) * k < cw ? (bx + 1) * k : cw;
            uint32_t a0 = 0, a1 = 0, a2 = 0;
            for (int x = bx * k; x < x1; x++) {
              a0 += row[3 * x];
              a1 += row[3 * x + 1];
              a2 += row[3 * x + 2];
            }
            acc[3 * bx] += a0;
            acc[3 * bx + 1] += a1;
            acc[3 * bx + 2] += a2;
          }
        }
        int nr = r_hi - by * k;
        for (int bx = 0; bx < bw; bx++) {
          int nc = (bx + 1) * k <= cw ? k : cw - bx * k;
          uint32_t n = (uint32_t)(nr * nc);
          uint8_t *o8 = rgb + ((size_t)(ly0 / k + by) * W + (size_t)(lx0 / k + bx)) * 3;
          for (int c = 0; c < 3; c++)
            o8[c] = (uint8_t)((acc[bx * 3 + c] + n / 2) / n);
        }
      }
    }
    ts_reader_release(r, &b);
  }
  *used = true;
out:
  free(coords);
  free(acc);
  ts_reader_free(&r);
  return rc;
}

/* HSV saturation (0..255, OpenCV convention S = 255*(max-min)/max) and a pen flag.
 *
 * The pen rule is on the hue h (degrees) computed as h = 60 * ((b - r) / d + 2) (green the
 * maximum) or 60 * ((r - g) / d + 4) (blue), red-maximum hues being in [0, 60] or [300, 360)
 * and never pen. Its thresholds 75, 190 and 240 are decided here in integers: h >= 75 (green)
 * iff 4 (b - r) >= -3 d; h < 240 (blue) iff r < g; h < 190 (blue) iff 6 (r - g) < -5 d, where
 * equality (h exactly 190) is left to the double expression above, which rounds it either way,
 * so the flags are the same bits as the floating-point version's. S comes from a table. */
static void colour_planes(const uint8_t *rgb, size_t n, uint8_t *sat, uint8_t *pen) {
  static uint8_t s_lut[256][256]; /* [max][max - min]; written once, the same bytes by any thread */
  static int s_lut_ready;
  if (!__atomic_load_n(&s_lut_ready, __ATOMIC_ACQUIRE)) {
    for (int mx = 0; mx < 256; mx++)
      for (int d = 0; d <= mx; d++)
        s_lut[mx][d] = (uint8_t)(mx ? (255 * d + mx / 2) / mx : 0);
    __atomic_store_n(&s_lut_ready, 1, __ATOMIC_RELEASE);
  }
  for (size_t i = 0; i < n; i++) {
    int r = rgb[3 * i], g = rgb[3 * i + 1], b = rgb[3 * i + 2];
    int mx = r > g ? (r > b ? r : b) : (g > b ? g : b);
    int mn = r < g ? (r < b ? r : b) : (g < b ? g : b);
    int d = mx - mn;
    int s = s_lut[mx][d];
    sat[i] = (uint8_t)s;
    int p = 0;
    /* H&E lives in magenta..red..orange (about 270..360 and 0..40 degrees) and haematoxylin
     * up to violet-blue (about 240..270). Green and cyan ink (75..190) is never stain; blue
     * ink (190..240) is told from haematoxylin by its strong saturation. */
    if (s >= 40 && mx != r) {
      if (mx == g) {
        p = 4 * (b - r) >= -3 * d; /* 75 <= h <= 180 */
      } else if (r < g) {            /* blue maximum, 180 <= h < 240 */
        int e = 6 * (r - g) + 5 * d; /* sign of h - 190 */
        if (e == 0) {
          double h = 60.0 * ((double)(r - g) / d + 4.0);
          e = h < 190 ? -1 : 1;
        }
        p = e < 0 || s >= 90;
      }
    }
    pen[i] = (uint8_t)p;
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
  const uint8_t **rows = malloc((size_t)size * sizeof *rows); /* the window's rows, clamped */
  if (!rows) return ts_error_set(TS_ENOMEM, "ENOMEM", "median: %d rows", size);
  for (int y = 0; y < h; y++) {
    for (int dy = -r; dy <= r; dy++) {
      int yy = y + dy < 0 ? 0 : y + dy >= h ? h - 1 : y + dy;
      rows[dy + r] = in + (size_t)yy * w;
    }
    int hist[256] = {0};
    for (int k = 0; k < size; k++)
      for (int dx = -r; dx <= r; dx++)
        hist[rows[k][dx < 0 ? 0 : dx >= w ? w - 1 : dx]]++;
    int med = 0, lt = 0;
    for (int x = 0; x < w; x++) {
      if (x > 0) { /* slide right: drop column x-r-1, add column x+r (both clamped) */
        int xo = x - r - 1 < 0 ? 0 : x - r - 1, xn = x + r >= w ? w - 1 : x + r;
        if (xo != xn)
          for (int k = 0; k < size; k++) {
            int vo = rows[k][xo], vn = rows[k][xn];
            if (vo == vn) continue; /* flat glass and flat tissue: most pairs */
            hist[vo]--;
            hist[vn]++;
            lt += (vn < med) - (vo < med);
          }
      }
      while (lt > rank) lt -= hist[--med];
      while (lt + hist[med] <= rank) lt += hist[med++];
      out[(size_t)y * w + x] = (uint8_t)med;
    }
  }
  free(rows);
  return 0;
}

/* Dilation (dilate=1) or erosion of a binary image (0 / 255) by a size x size square: the
 * running max or min over the 1-D window [i-r0, i+r1] along rows, then along columns (a square
 * is separable). Outside the image counts as background for dilation and as foreground for
 * erosion, so that closing never eats the border. On binary images the max (min) is 255 (0)
 * iff the window holds one "hit" pixel (255 for dilation, 0 for erosion), so a running count
 * of hits gives it in O(1) per pixel whatever the size; the columns keep one count each and
 * advance row by row (memory order). tmp: w*h bytes; cnt: w ints. */
static void morph_square(uint8_t *m, int w, int h, int size, int dilate, uint8_t *tmp, int *cnt) {
  if (size <= 1) return;
  int r0 = (size - 1) / 2, r1 = size - 1 - r0;
  if (!dilate) {
    int t = r0;
    r0 = r1;
    r1 = t;
  } /* erosion mirrors the element */
  const uint8_t hit = dilate ? 255 : 0, on = dilate ? 255 : 0, off = dilate ? 0 : 255;
  for (int y = 0; y < h; y++) {
    const uint8_t *row = m + (size_t)y * w;
    uint8_t *o = tmp + (size_t)y * w;
    int c = 0, x = 0;
    for (int i = 0; i < r1 && i < w; i++)
      c += row[i] == hit;
    for (; x < w && x <= r0; x++) { /* nothing leaves the window yet */
      if (x + r1 < w) c += row[x + r1] == hit;
      o[x] = c ? on : off;
    }
    for (; x + r1 < w; x++) { /* interior: one in, one out */
      c += (row[x + r1] == hit) - (row[x - r0 - 1] == hit);
      o[x] = c ? on : off;
    }
    for (; x < w; x++) { /* nothing enters any more */
      c -= row[x - r0 - 1] == hit;
      o[x] = c ? on : off;
    }
  }
  memset(cnt, 0, (size_t)w * sizeof *cnt);
  for (int y = 0; y < r1 && y < h; y++)
    for (int x = 0; x < w; x++)
      cnt[x] += tmp[(size_t)y * w + x] == hit;
  for (int y = 0; y < h; y++) {
    const uint8_t *add = y + r1 < h ? tmp + (size_t)(y + r1) * w : NULL;
    const uint8_t *del = y - r0 - 1 >= 0 ? tmp + (size_t)(y - r0 - 1) * w : NULL;
    uint8_t *o = m + (size_t)y * w;
    if (add) /* branch-free inner loops: the compiler vectorises them */
      for (int x = 0; x < w; x++)
        cnt[x] += add[x] == hit;
    if (del)
      for (int x = 0; x < w; x++)
        cnt[x] -= del[x] == hit;
    for (int x = 0; x < w; x++)
      o[x] = cnt[x] ? on : off;
  }
}

/* Connected components of pixels equal to `val` (8-connected for foreground, 4 for
 * background, the usual dual pair). Components with fewer than min_px pixels (and, when
 * skip_border, not touching the image border) are set to `repl`.
 *
 * Run-based labelling: each row's runs of `val` are united (union-find) with the runs of the
 * row above they touch (overlap for 4-connectivity, overlap or a diagonal for 8), then the
 * runs of small components are painted. Cost: one pass over the pixels plus the runs, instead
 * of a queue visit and 4-8 neighbour tests per pixel. */
typedef struct {
  int32_t y, x0, x1; /* row, [x0, x1) */
  int32_t parent;
} run_t;

static int32_t run_root(run_t *r, int32_t i) {
  int32_t root = i;
  while (r[root].parent != root) root = r[root].parent;
  while (r[i].parent != root) { /* path compression */
    int32_t next = r[i].parent;
    r[i].parent = root;
    i = next;
  }
  return root;
}

static int filter_components(uint8_t *m, int w, int h, uint8_t val, int conn8, int64_t min_px,
                             int skip_border, uint8_t repl) {
  if (min_px <= 1) return 0;
  size_t cap = 4096, nr = 0;
  run_t *runs = malloc(cap * sizeof *runs);
  if (!runs) return ts_error_set(TS_ENOMEM, "ENOMEM", "tissue: components of %dx%d", w, h);
  size_t prev0 = 0, prev1 = 0; /* runs of the row above: [prev0, prev1) */
  int d = conn8 ? 1 : 0;
  for (int y = 0; y < h; y++) {
    const uint8_t *row = m + (size_t)y * w;
    size_t cur0 = nr, p = prev0;
    for (int x = 0; x < w;) {
      if (row[x] != val) {
        x++;
        continue;
      }
      int x0 = x;
      while (x < w && row[x] == val) x++;
      if (nr == cap) {
        run_t *nrn = realloc(runs, 2 * cap * sizeof *runs);
        if (!nrn) {
          free(runs);
          return ts_error_set(TS_ENOMEM, "ENOMEM", "tissue: components of %dx%d", w, h);
        }
        runs = nrn;
        cap *= 2;
      }
      int32_t me = (int32_t)nr;
      runs[nr++] = (run_t){y, x0, x, me};
      /* runs above that end before this one can reach: never again for this row */
      while (p < prev1 && runs[p].x1 + d <= x0) p++;
      for (size_t q = p; q < prev1 && runs[q].x0 < x + d; q++) {
        int32_t a = run_root(runs, me), b = run_root(runs, (int32_t)q);
        if (a != b) runs[a > b ? a : b].parent = a < b ? a : b;
      }
    }
    prev0 = cur0;
    prev1 = nr;
  }
  /* sizes and border flags per root (kept in the root run's x0/x1 would lose it: use arrays) */
  int64_t *size = calloc(nr ? nr : 1, sizeof *size);
  uint8_t *border = calloc(nr ? nr : 1, 1);
  if (!size || !border) {
    free(runs);
    free(size);
    free(border);
    return ts_error_set(TS_ENOMEM, "ENOMEM", "tissue: components of %dx%d", w, h);
  }
  for (size_t i = 0; i < nr; i++) {
    int32_t root = run_root(runs, (int32_t)i);
    size[root] += runs[i].x1 - runs[i].x0;
    if (runs[i].y == 0 || runs[i].y == h - 1 || runs[i].x0 == 0 || runs[i].x1 == w) border[root] = 1;
  }
  for (size_t i = 0; i < nr; i++) {
    int32_t root = runs[i].parent; /* compressed above */
    if (size[root] < min_px && !(skip_border && border[root]))
      memset(m + (size_t)runs[i].y * w + runs[i].x0, repl, (size_t)(runs[i].x1 - runs[i].x0));
  }
  free(runs);
  free(size);
  free(border);
  return 0;
}

static double ms_clock(clockid_t id) {
  struct timespec t;
  clock_gettime(id, &t);
  return 1e3 * (double)t.tv_sec + 1e-6 * (double)t.tv_nsec;
}

int ts_tissue_mask(ts_slide *s, const ts_tissue_params *p, ts_mask *out) {
  int rc = 0;
  double tp = ms_clock(CLOCK_MONOTONIC), cp = ms_clock(CLOCK_PROCESS_CPUTIME_ID), tq, cq;
#define PROF(k)                                                                                    \
  (tq = ms_clock(CLOCK_MONOTONIC), cq = ms_clock(CLOCK_PROCESS_CPUTIME_ID), out->prof_ms[k] = tq - tp, \
   out->prof_cpu_ms[k] = cq - cp, tp = tq, cp = cq)
  uint8_t *sat = NULL, *pen = NULL, *med = NULL, *tmp = NULL;
  int *cnt = NULL;
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
  /* one mapping: view (3n), mask (n), then scratch: saturation, pen, median, tmp (n each) and
   * the column counts of the morphology (W ints) */
  uint8_t *a = out->arena = ts__huge_alloc(n * 8 + (size_t)W * sizeof(int) + 64);
  if (a) {
    out->thumb_rgb = a;
    out->data = a + 3 * n;
    sat = a + 4 * n;
    pen = a + 5 * n;
    med = a + 6 * n;
    tmp = a + 7 * n;
    cnt = (int *)(a + ((8 * n + 63) & ~(size_t)63));
  }
  if (!a)
    TS_FAIL(TS_ENOMEM, "ENOMEM", "tissue: %lldx%lld mask", (long long)W, (long long)H);

  bool fast = false;
  TS_TRY(read_view_fast(s, level, k, (int)W, out->thumb_rgb, &fast));
  if (!fast) TS_TRY(read_thumb(s, level, k, (int)W, (int)H, out->thumb_rgb));
  PROF(0);
  colour_planes(out->thumb_rgb, n, sat, pen);
  PROF(1);
  int msize = p->median_px > 1 ? (p->median_px | 1) : 1;
  TS_TRY(ts_median_filter(sat, (int)W, (int)H, msize, med));
  PROF(2);

  /* Pen pixels, grown by the reach of the median and closing windows, are not tissue. */
  size_t n_pen = 0;
  for (size_t i = 0; i < n; i++) {
    n_pen += pen[i];
    pen[i] = pen[i] ? 255 : 0;
  }
  if (n_pen) /* no ink on most slides: nothing to grow */
    morph_square(pen, (int)W, (int)H, msize + (p->close_px > 1 ? p->close_px : 0), 1, tmp, cnt);
  PROF(3);

  uint64_t hist[256] = {0};
  for (size_t i = 0; i < n; i++)
    if (!pen[i]) hist[med[i]]++;
  int thr = ts_otsu_threshold(hist);
  if (thr < p->sat_floor) thr = p->sat_floor;
  out->threshold = thr;
  PROF(4);

  for (size_t i = 0; i < n; i++)
    out->data[i] = (med[i] > thr) ? 255 : 0;
  if (p->close_px > 1) {
    morph_square(out->data, (int)W, (int)H, p->close_px, 1, tmp, cnt);
    morph_square(out->data, (int)W, (int)H, p->close_px, 0, tmp, cnt);
  }
  if (n_pen)
    for (size_t i = 0; i < n; i++)
      if (pen[i]) out->data[i] = 0;
  PROF(5);

  double px_um2 = out->mpp * (mpp0 * out->scale_y);
  int64_t min_obj = (int64_t)ceil(p->min_area_um2 / px_um2);
  int64_t min_hole = (int64_t)ceil(p->min_hole_um2 / px_um2);
  TS_TRY(filter_components(out->data, (int)W, (int)H, 255, 1, min_obj, 0, 0));
  TS_TRY(filter_components(out->data, (int)W, (int)H, 0, 0, min_hole, 1, 255));
  PROF(6);
#undef PROF
out:
  if (rc < 0) ts_mask_clear(out);
  return rc;
}

/* ---- HDF5 ----------------------------------------------------------------------------
 * The mask (0/255, long runs) takes deflate level 1: as small as level 4 within a few per cent
 * and several times faster. The thumbnail is stored raw (contiguous): a decoded JPEG view
 * does not deflate well (to ~55 % at level 1, at ~30 MB/s on this VM: ~150 ms for a 1250² view),
 * and the tile stage reads it back at memory speed. */

int ts_mask_save_h5_to_tmp(const ts_mask *m, const char *tmp) {
  int rc = 0;
  hid_t f = -1, sp = -1, dcpl = -1, ds = -1, sp3 = -1, dcpl3 = -1, ds3 = -1;
  if (!m || !m->data || !tmp || m->w <= 0 || m->h <= 0)
    return ts_error_set(TS_EINVAL, "EINVAL", "ts_mask_save_h5: empty mask");
  f = ts__h5_create(tmp);
  if (f < 0) return ts__h5_fail(TS_EIO, "H5_WRITE", "cannot create %s", tmp);
  hsize_t dims[2] = {(hsize_t)m->h, (hsize_t)m->w};
  sp = H5Screate_simple(2, dims, NULL);
  dcpl = ts__h5_dcpl(1, dims[0] < 256 ? dims[0] : 256, dims[1] < 256 ? dims[1] : 256, 1);
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
    if (sp3 < 0 || dcpl3 < 0 || H5Pset_obj_track_times(dcpl3, 0) < 0 ||
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
  return rc;
}

int ts_mask_save_h5(const ts_mask *m, const char *path) {
  char tmp[TS_PATH_MAX];
  if (!path) return ts_error_set(TS_EINVAL, "EINVAL", "ts_mask_save_h5: NULL path");
  TS_CALL(ts_io_tmp_path(path, tmp, sizeof tmp));
  int rc = ts_mask_save_h5_to_tmp(m, tmp);
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
  size_t n = (size_t)dims[0] * dims[1];
  bool has_thumb = H5Lexists(f, "thumbnail", H5P_DEFAULT) > 0;
  uint8_t *a = out->arena = ts__huge_alloc(has_thumb ? 4 * n : n);
  if (!a) TS_FAIL(TS_ENOMEM, "ENOMEM", "%s: mask", path);
  out->data = a;
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
  if (has_thumb) {
    /* the QC falls back to drawing the mask when the thumbnail is not the mask's size */
    hid_t td = H5Dopen2(f, "thumbnail", H5P_DEFAULT), tsp = td >= 0 ? H5Dget_space(td) : -1;
    hsize_t d3[3] = {0, 0, 0};
    if (td >= 0 && tsp >= 0 && H5Sget_simple_extent_ndims(tsp) == 3 && H5Sget_simple_extent_dims(tsp, d3, NULL) == 3 &&
        d3[0] == dims[0] && d3[1] == dims[1] && d3[2] == 3 &&
        H5Dread(td, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, a + n) >= 0)
      out->thumb_rgb = a + n;
    if (tsp >= 0) H5Sclose(tsp);
    if (td >= 0) H5Dclose(td);
  }
out:
  if (sp >= 0) H5Sclose(sp);
  if (ds >= 0) H5Dclose(ds);
  if (f >= 0 && H5Fclose(f) < 0 && rc == 0) rc = ts__h5_fail(TS_EIO, "H5_READ", "close");
  if (rc < 0) ts_mask_clear(out);
  return rc;
}

/* ---- committing several outputs --------------------------------------------------- */

int ts_outputs_commit(const char *const *tmp, const char *const *path, int n) {
  int rc = 0, i = 0;
  /* Every file's data first (each fsync is a journal commit: ~5 ms on this VM's disk), then the
   * renames, then each directory once, where ts_io_commit would sync the directory per file. */
  for (i = 0; i < n && rc == 0; i++) {
    int fd = open(tmp[i], O_RDONLY);
    if (fd < 0 || fsync(fd) < 0) rc = ts_error_set(TS_EIO, "IO_COMMIT", "fsync %s: %s", tmp[i], strerror(errno));
    if (fd >= 0) close(fd);
  }
  int renamed = 0;
  for (i = 0; i < n && rc == 0; i++, renamed++)
    if (rename(tmp[i], path[i]) < 0)
      rc = ts_error_set(TS_EIO, "IO_COMMIT", "rename %s -> %s: %s", tmp[i], path[i], strerror(errno));
  for (i = renamed; i < n; i++)
    unlink(tmp[i]);
  for (i = 0; i < n && rc == 0; i++) {
    char d[TS_PATH_MAX], e[TS_PATH_MAX];
    snprintf(d, sizeof d, "%s", path[i]);
    const char *dir = dirname(d);
    bool seen = false;
    for (int j = 0; j < i && !seen; j++) {
      snprintf(e, sizeof e, "%s", path[j]);
      seen = !strcmp(dirname(e), dir);
    }
    if (seen) continue;
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0 || (fsync(fd) < 0 && errno != EINVAL))
      rc = ts_error_set(TS_EIO, "IO_COMMIT", "fsync directory %s: %s", dir, strerror(errno));
    if (fd >= 0) close(fd);
  }
  return rc;
}

/* ---- QC PNG ----------------------------------------------------------------------------
 * A QC picture is for eyes: at most TS_QC_MAX_PX on its long side (the mask view box-averaged
 * by an integer factor), written by a small PNG encoder of our own (RFC 2083; filter "Up",
 * zlib level 1 with Z_RLE) because libvips' pngsave at compression 1 spends ~70 ms per 1250²
 * view here, several times the whole mask computation. */

static void put_px(uint8_t *img, int w, int h, int64_t x, int64_t y, uint8_t r, uint8_t g, uint8_t b) {
  if (x < 0 || y < 0 || x >= w || y >= h) return;
  uint8_t *o = img + ((size_t)y * w + (size_t)x) * 3;
  o[0] = r;
  o[1] = g;
  o[2] = b;
}

static void be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static int png_chunk(FILE *f, const char *type, const uint8_t *data, uint32_t len) {
  uint8_t hdr[8], crc[4];
  be32(hdr, len);
  memcpy(hdr + 4, type, 4);
  uLong c = crc32(0L, hdr + 4, 4);
  if (len) c = crc32(c, data, len);
  be32(crc, (uint32_t)c);
  return fwrite(hdr, 1, 8, f) == 8 && (!len || fwrite(data, 1, len, f) == len) && fwrite(crc, 1, 4, f) == 4 ? 0 : -1;
}

/* 8-bit RGB PNG of img (w*h*3) into f. No ancillary chunks: the bytes depend on the pixels only. */
static int png_encode(FILE *f, const uint8_t *img, int w, int h) {
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  uint8_t ihdr[13];
  be32(ihdr, (uint32_t)w);
  be32(ihdr + 4, (uint32_t)h);
  ihdr[8] = 8;  /* bit depth */
  ihdr[9] = 2;  /* truecolour */
  ihdr[10] = 0; /* deflate */
  ihdr[11] = 0; /* adaptive filtering (per-row filter byte) */
  ihdr[12] = 0; /* no interlace */
  if (fwrite(sig, 1, 8, f) != 8 || png_chunk(f, "IHDR", ihdr, 13) < 0) return -1;
  size_t stride = (size_t)w * 3, cap = 256 << 10;
  uint8_t *row = malloc(stride + 1), *obuf = malloc(cap);
  z_stream z;
  memset(&z, 0, sizeof z);
  int rc = -1;
  if (!row || !obuf || deflateInit2(&z, 1, Z_DEFLATED, 15, 8, Z_RLE) != Z_OK) goto out;
  z.next_out = obuf;
  z.avail_out = (uInt)cap;
  for (int y = 0; y <= h; y++) {
    int flush = y == h ? Z_FINISH : Z_NO_FLUSH;
    if (y < h) {
      const uint8_t *cur = img + (size_t)y * stride, *up = y ? cur - stride : NULL;
      row[0] = 2; /* Up: the difference with the row above (H&E thumbnails change slowly) */
      for (size_t i = 0; i < stride; i++)
        row[1 + i] = (uint8_t)(cur[i] - (up ? up[i] : 0));
      z.next_in = row;
      z.avail_in = (uInt)(stride + 1);
    }
    for (;;) {
      int zr = deflate(&z, flush);
      if (zr == Z_STREAM_ERROR) goto out;
      if (z.avail_out == 0 || (flush == Z_FINISH && zr == Z_STREAM_END)) {
        if (png_chunk(f, "IDAT", obuf, (uint32_t)(cap - z.avail_out)) < 0) goto out;
        z.next_out = obuf;
        z.avail_out = (uInt)cap;
      }
      if (flush == Z_FINISH ? zr == Z_STREAM_END : (z.avail_in == 0 && z.avail_out > 0)) break;
    }
  }
  rc = png_chunk(f, "IEND", NULL, 0);
out:
  deflateEnd(&z);
  free(row);
  free(obuf);
  return rc;
}

int ts_qc_png_to_tmp(const ts_mask *m, const int64_t *coords, int64_t n_tiles, double tile_l0, const char *tmp) {
  int rc = 0;
  if (!m || !m->data || m->w <= 0 || m->h <= 0 || !tmp || (n_tiles > 0 && !coords))
    return ts_error_set(TS_EINVAL, "EINVAL", "ts_qc_png: bad arguments");
  int mw = m->w, mh = m->h, long_side = mw > mh ? mw : mh;
  int f = (long_side + TS_QC_MAX_PX - 1) / TS_QC_MAX_PX; /* integer factor: whole mask pixels */
  if (f < 1) f = 1;
  int w = (mw + f - 1) / f, h = (mh + f - 1) / f;
  size_t n = (size_t)w * h;
  uint8_t *img = ts__huge_alloc(n * 4), *mk = img ? img + 3 * n : NULL;
  FILE *fp = NULL;
  if (!img) return ts_error_set(TS_ENOMEM, "ENOMEM", "ts_qc_png: %dx%d", w, h);
  /* the view (grey tissue on white when a loaded mask has none) and the mask, f x f averaged:
   * a QC pixel is tissue when at least half of its mask pixels are */
  if (f == 1) {
    for (size_t i = 0; i < n; i++)
      mk[i] = m->data[i] != 0;
    if (m->thumb_rgb)
      memcpy(img, m->thumb_rgb, n * 3);
    else
      for (size_t i = 0; i < n; i++)
        memset(img + 3 * i, mk[i] ? 190 : 255, 3);
  }
  /* f > 1: row sums over f mask rows, then f columns; the rounding division only at the edges
   * (a whole block divides by f*f, by a shift when f*f is a power of two) */
  uint32_t *acc = f > 1 ? calloc((size_t)mw * 4, sizeof *acc) : NULL;
  if (f > 1 && !acc) {
    ts__huge_free(img);
    return ts_error_set(TS_ENOMEM, "ENOMEM", "ts_qc_png: %dx%d", w, h);
  }
  int ff = f * f, shift = (ff & (ff - 1)) == 0 ? __builtin_ctz((unsigned)ff) : -1;
  for (int y = 0; y < h && f > 1; y++) {
    memset(acc, 0, (size_t)mw * 4 * sizeof *acc);
    int y1 = (y + 1) * f < mh ? (y + 1) * f : mh, nr = y1 - y * f;
    for (int yy = y * f; yy < y1; yy++) {
      const uint8_t *mr = m->data + (size_t)yy * mw, *tr = m->thumb_rgb ? m->thumb_rgb + (size_t)yy * mw * 3 : NULL;
      for (int xx = 0; xx < mw; xx++) {
        uint32_t on = mr[xx] != 0;
        acc[4 * xx + 3] += on;
        if (tr) {
          acc[4 * xx] += tr[3 * xx];
          acc[4 * xx + 1] += tr[3 * xx + 1];
          acc[4 * xx + 2] += tr[3 * xx + 2];
        } else {
          uint32_t g = on ? 190u : 255u;
          acc[4 * xx] += g;
          acc[4 * xx + 1] += g;
          acc[4 * xx + 2] += g;
        }
      }
    }
    for (int x = 0; x < w; x++) {
      int x1 = (x + 1) * f < mw ? (x + 1) * f : mw;
      uint32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0; /* scalars: an array here spilled to the stack */
      for (const uint32_t *q = acc + 4 * (size_t)x * f, *e = acc + 4 * (size_t)x1; q < e; q += 4) {
        a0 += q[0];
        a1 += q[1];
        a2 += q[2];
        a3 += q[3];
      }
      uint32_t cnt = (uint32_t)(nr * (x1 - x * f)), half = cnt / 2;
      uint8_t *px = img + 3 * ((size_t)y * w + x);
      if (cnt == (uint32_t)ff && shift >= 0) {
        px[0] = (uint8_t)((a0 + half) >> shift);
        px[1] = (uint8_t)((a1 + half) >> shift);
        px[2] = (uint8_t)((a2 + half) >> shift);
      } else {
        px[0] = (uint8_t)((a0 + half) / cnt);
        px[1] = (uint8_t)((a1 + half) / cnt);
        px[2] = (uint8_t)((a2 + half) / cnt);
      }
      mk[(size_t)y * w + x] = 2 * a3 >= cnt ? 1 : 0;
    }
  }
  free(acc);
  double sx = m->scale_x * f, sy = m->scale_y * f;
  /* Tiles first, outline on top: the outline is the thing to check. */
  for (int64_t t = 0; t < n_tiles; t++) {
    int64_t x0 = (int64_t)floor((double)coords[2 * t] / sx);
    int64_t y0 = (int64_t)floor((double)coords[2 * t + 1] / sy);
    int64_t x1 = (int64_t)floor(((double)coords[2 * t] + tile_l0) / sx);
    int64_t y1 = (int64_t)floor(((double)coords[2 * t + 1] + tile_l0) / sy);
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
      if (!mk[(size_t)y * w + x]) continue;
      int edge = x == 0 || y == 0 || x == w - 1 || y == h - 1 || !mk[(size_t)y * w + x - 1] ||
                 !mk[(size_t)y * w + x + 1] || !mk[(size_t)(y - 1) * w + x] || !mk[(size_t)(y + 1) * w + x];
      if (edge) put_px(img, w, h, x, y, 0, 255, 0);
    }
  fp = fopen(tmp, "wb");
  if (!fp || png_encode(fp, img, w, h) < 0 || fflush(fp) != 0 || ferror(fp)) {
    rc = ts_error_set(TS_EIO, "QC_PNG", "cannot write %s: %s", tmp, strerror(errno));
  }
  if (fp && fclose(fp) != 0 && rc == 0) rc = ts_error_set(TS_EIO, "QC_PNG", "cannot write %s: %s", tmp, strerror(errno));
  if (rc < 0) unlink(tmp);
  ts__huge_free(img);
  return rc;
}

int ts_qc_png(const ts_mask *m, const int64_t *coords, int64_t n_tiles, double tile_l0, const char *path) {
  char tmp[TS_PATH_MAX];
  if (!path) return ts_error_set(TS_EINVAL, "EINVAL", "ts_qc_png: bad arguments");
  TS_CALL(ts_io_tmp_path(path, tmp, sizeof tmp));
  int rc = ts_qc_png_to_tmp(m, coords, n_tiles, tile_l0, tmp);
  if (rc == 0) rc = ts_io_commit(tmp, path);
  if (rc < 0) unlink(tmp);
  return rc;
}
