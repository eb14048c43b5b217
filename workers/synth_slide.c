/* synth_slide.c — one synthetic H&E whole-slide image and its ground-truth masks.
 *
 * Design. Everything with a shape (tissue pieces, tumour region, pen strokes, a slow cellularity
 * field) is drawn in plain C buffers at 1/ds of level 0 (ds = truth_downsample, so the masks of
 * a 100000 px slide are ~3000 px a side). Those buffers are the ground truth. The full-resolution
 * image is a lazy libvips pipeline that is never held in memory:
 *
 *   vips_perlin, cell 80 um  (eosin mottling) ----------+
 *   vips_perlin, cell 5 um   (fine texture, ragged edges) +--> he_gen --> vips_tiffsave
 *   masks (4-band uchar at 1/ds, in memory) ------------+    (our own point operation)
 *
 * he_gen upsamples the masks bilinearly per pixel, on demand. It first went through vips_affine
 * (bilinear, odx = (ds - 1) / 2), but that general resampler took ~40% of the run time for what
 * is a fixed integer-factor blend of four bytes; the sampling grid is the same.
 *
 * he_gen turns those into RGB with the Beer-Lambert model used by colour deconvolution (Ruifrok &
 * Johnston 2001; stain vectors from Macenko et al. 2009): optical density OD = cH * h + cE * e +
 * pen + background, RGB = 255 exp(-OD). Nuclei are ellipses drawn per pixel from a hash of the
 * cell of a jittered grid that the pixel falls in (one candidate nucleus per cell, kept inside its
 * cell), so each pixel depends only on its level-0 coordinate and the seed: libvips may evaluate
 * tiles on any thread in any order and the bytes do not change. (vips_worley was the first
 * choice for nuclei, but it measures ~45 distances per pixel; this is one hash and one ellipse.)
 * Sizes are physical: a tumour nucleus is ~6 um long whatever the mpp.
 *
 * The truth masks use the same quantised buffers the image is built from: a tissue mask pixel is
 * 1 where the stored tissue field is >= 128, which is where he_gen's tissue alpha crosses 1/2
 * at that pixel's level-0 centre (mask pixel centres map to level-0 pixel centres:
 * level-0 x = (i + 0.5) ds - 0.5).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vips/vips.h>

#include "ts_error.h"
#include "ts_io.h"
#include "ts_synth.h"

#define NB 4 /* mask bands: tissue, tumour, pen, cellularity */
enum { B_TISSUE, B_TUMOUR, B_PEN, B_DENS };

static int vips_fail(const char *what) {
  const char *msg = vips_error_buffer();
  char buf[512];
  snprintf(buf, sizeof buf, "%s", msg ? msg : "");
  size_t n = strlen(buf);
  while (n && buf[n - 1] == '\n')
    buf[--n] = '\0';
  vips_error_clear();
  return ts_error_set(TS_EIO, "SYNTH_VIPS", "%s: %s", what, buf);
}

int ts__synth_truth_downsample(int64_t size_px) {
  int ds = 32;
  while (ds > 4 && size_px / ds < 256)
    ds /= 2;
  while ((size_px + ds - 1) / ds > 4096)
    ds *= 2;
  return ds;
}

/* ---- low-resolution drawing ------------------------------------------------------------- */

/* Value noise: a hashed lattice of values in [-1, 1], smoothstep-interpolated. */
static double lattice(uint64_t seed, int64_t i, int64_t j) {
  uint64_t h = ts__synth_mix(
      seed ^ ts__synth_mix((uint64_t)i * 0x9E3779B97F4A7C15ULL ^ (uint64_t)j * 0xC2B2AE3D27D4EB4FULL));
  return (double)(h >> 11) * (2.0 / 9007199254740992.0) - 1.0;
}

static double vnoise(uint64_t seed, double x, double y) {
  double fx = floor(x), fy = floor(y);
  int64_t i = (int64_t)fx, j = (int64_t)fy;
  double tx = x - fx, ty = y - fy;
  tx = tx * tx * (3 - 2 * tx);
  ty = ty * ty * (3 - 2 * ty);
  double a = lattice(seed, i, j), b = lattice(seed, i + 1, j);
  double c = lattice(seed, i, j + 1), d = lattice(seed, i + 1, j + 1);
  return (a + (b - a) * tx) * (1 - ty) + (c + (d - c) * tx) * ty;
}

/* Two octaves, roughly in [-1, 1]. */
static double fbm(uint64_t seed, double x, double y, double scale) {
  return (vnoise(seed, x / scale, y / scale) +
          0.5 * vnoise(seed + 1, 2.03 * x / scale + 17.1, 2.03 * y / scale - 5.3)) /
         1.5;
}

/* A blob: an ellipse with a few harmonics on its radius, in mask px. */
typedef struct blob {
  double cx, cy, r, sa, c, s; /* centre, mean radius, sqrt(aspect), cos/sin of rotation */
  double amp[6], ph[6];
  double ext; /* max extent / r */
  uint64_t nseed;
} blob;

static void blob_init(blob *b, ts__synth_rng *g, double r, double aspect_max, double wobble) {
  b->r = r;
  b->sa = sqrt(ts__synth_range(g, 1.0, aspect_max));
  double rot = ts__synth_range(g, 0, M_PI);
  b->c = cos(rot);
  b->s = sin(rot);
  double sum = 0;
  for (int k = 0; k < 6; k++) {
    b->amp[k] = k < 2 ? 0 : ts__synth_range(g, 0, wobble) / (k - 1);
    b->ph[k] = ts__synth_range(g, 0, 2 * M_PI);
    sum += b->amp[k];
  }
  b->ext = b->sa * (1 + sum + 0.15);
  b->nseed = ts__synth_next(g);
  b->cx = b->cy = 0;
}

/* Approximately the signed distance to the outline, positive inside (mask px). */
static double blob_signed(const blob *b, double x, double y) {
  double dx = x - b->cx, dy = y - b->cy;
  double u = (dx * b->c + dy * b->s) / b->sa, v = (-dx * b->s + dy * b->c) * b->sa;
  double rho = sqrt(u * u + v * v), th = atan2(v, u);
  double rr = 1;
  for (int k = 2; k < 6; k++)
    rr += b->amp[k] * cos(k * th + b->ph[k]);
  return b->r * rr - rho;
}

static inline uint8_t to_u8(double f) {
  if (f <= 0) return 0;
  if (f >= 1) return 255;
  return (uint8_t)(f * 255.0 + 0.5);
}

/* Draw a soft field 0.5 + (signed + noise) / edge into band `band` (max with what is there). */
static void draw_blob(uint8_t *m, int mw, int mh, int band, const blob *b, double noise_amp, double edge) {
  double reach = b->ext * b->r + noise_amp + edge + 2;
  int x0 = (int)floor(b->cx - reach), x1 = (int)ceil(b->cx + reach);
  int y0 = (int)floor(b->cy - reach), y1 = (int)ceil(b->cy + reach);
  if (x0 < 0) x0 = 0;
  if (y0 < 0) y0 = 0;
  if (x1 > mw - 1) x1 = mw - 1;
  if (y1 > mh - 1) y1 = mh - 1;
  double nscale = b->r / 2.5 > 2 ? b->r / 2.5 : 2;
  for (int y = y0; y <= y1; y++)
    for (int x = x0; x <= x1; x++) {
      double px = x + 0.5, py = y + 0.5;
      double s = blob_signed(b, px, py) + noise_amp * fbm(b->nseed, px, py, nscale);
      uint8_t v = to_u8(0.5 + s / edge);
      uint8_t *q = &m[((size_t)y * mw + x) * NB + band];
      if (v > *q) *q = v;
    }
}

/* A pen stroke: polyline of n points, width w (mask px), soft by ~1 px. */
static void draw_stroke(uint8_t *m, int mw, int mh, const double *pts, int n, double w) {
  for (int i = 0; i + 1 < n; i++) {
    double ax = pts[2 * i], ay = pts[2 * i + 1], bx = pts[2 * i + 2], by = pts[2 * i + 3];
    double reach = w / 2 + 2;
    int x0 = (int)floor(fmin(ax, bx) - reach), x1 = (int)ceil(fmax(ax, bx) + reach);
    int y0 = (int)floor(fmin(ay, by) - reach), y1 = (int)ceil(fmax(ay, by) + reach);
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > mw - 1) x1 = mw - 1;
    if (y1 > mh - 1) y1 = mh - 1;
    double vx = bx - ax, vy = by - ay, L2 = vx * vx + vy * vy;
    for (int y = y0; y <= y1; y++)
      for (int x = x0; x <= x1; x++) {
        double px = x + 0.5 - ax, py = y + 0.5 - ay;
        double t = L2 > 0 ? (px * vx + py * vy) / L2 : 0;
        t = t < 0 ? 0 : t > 1 ? 1 : t;
        double dx = px - t * vx, dy = py - t * vy;
        uint8_t v = to_u8(0.5 + (w / 2 - sqrt(dx * dx + dy * dy)));
        uint8_t *q = &m[((size_t)y * mw + x) * NB + B_PEN];
        if (v > *q) *q = v;
      }
  }
}

typedef struct layout {
  int mw, mh, ds;
  uint8_t *m; /* mw * mh * NB */
  int pieces;
  bool pen;
  double tissue_fraction, tumour_burden;
} layout;

#define MAX_PIECES 4

/* Draw tissue, tumour, pen and cellularity at 1/ds. */
static void draw_layout(layout *L, ts__synth_rng *g, const ts__synth_slide *s) {
  int mw = L->mw, mh = L->mh;
  double area = (double)mw * mh;
  uint8_t *m = L->m;

  /* Cellularity and stain density: noise with ~1.5 mm features (fewer on small slides) plus a
   * finer octave, so that the tissue is not flat at low magnification. */
  uint64_t dseed = ts__synth_next(g);
  double dscale = 1500.0 / s->mpp / L->ds, dmax = (mw > mh ? mw : mh) / 4.0;
  if (dscale > dmax) dscale = dmax;
  if (dscale < 4) dscale = 4;
  for (int y = 0; y < mh; y++)
    for (int x = 0; x < mw; x++)
      m[((size_t)y * mw + x) * NB + B_DENS] =
          to_u8(0.5 + 0.55 * fbm(dseed, x, y, dscale) + 0.2 * fbm(dseed + 7, x, y, dscale / 4));

  blob pc[MAX_PIECES];
  int np = 0;
  if (!s->blank) {
    double u = ts__synth_unif(g);
    int want = u < 0.55 ? 1 : u < 0.8 ? 2 : u < 0.92 ? 3 : 4;
    double total = ts__synth_range(g, 0.18, 0.42) * area;
    double w[MAX_PIECES], wsum = 0;
    for (int i = 0; i < want; i++)
      wsum += (w[i] = ts__synth_range(g, 0.5, 1.5));
    for (int i = 0; i < want; i++) {
      blob b;
      blob_init(&b, g, sqrt(total * w[i] / wsum / M_PI), 2.2, 0.22);
      bool placed = false;
      for (int attempt = 0; attempt < 240 && !placed; attempt++) {
        if (attempt > 0 && attempt % 40 == 0) b.r *= 0.85;
        double reach = b.ext * b.r + 2;
        if (2 * reach >= 0.95 * (mw < mh ? mw : mh)) { /* keep every piece on the glass */
          b.r *= 0.9;
          placed = false;
          continue;
        }
        b.cx = ts__synth_range(g, reach, mw - reach);
        b.cy = ts__synth_range(g, reach, mh - reach);
        placed = true;
        for (int j = 0; j < np && placed; j++) {
          double dx = b.cx - pc[j].cx, dy = b.cy - pc[j].cy;
          if (sqrt(dx * dx + dy * dy) < reach + pc[j].ext * pc[j].r + 2) placed = false;
        }
      }
      if (placed) pc[np++] = b;
    }
    for (int i = 0; i < np; i++)
      draw_blob(m, mw, mh, B_TISSUE, &pc[i], 0.12 * pc[i].r, 2.0);
  }
  L->pieces = np;

  /* Tumour: one or two foci well inside the largest piece. */
  if (s->positive && np > 0) {
    int big = 0;
    for (int i = 1; i < np; i++)
      if (pc[i].r > pc[big].r) big = i;
    const blob *P = &pc[big];
    int foci = ts__synth_unif(g) < 0.7 ? 1 : 2;
    for (int f = 0; f < foci; f++) {
      blob t;
      blob_init(&t, g, P->r * ts__synth_range(g, 0.25, 0.5), 1.8, 0.12);
      if (t.r < 2) t.r = 2;
      t.cx = P->cx;
      t.cy = P->cy;
      for (int tries = 0; tries < 500; tries++) {
        double x = ts__synth_range(g, P->cx - P->ext * P->r, P->cx + P->ext * P->r);
        double y = ts__synth_range(g, P->cy - P->ext * P->r, P->cy + P->ext * P->r);
        if (x < 0 || y < 0 || x >= mw || y >= mh) continue;
        if (blob_signed(P, x, y) > 0.4 * P->r) {
          t.cx = floor(x) + 0.5;
          t.cy = floor(y) + 0.5;
          break;
        }
      }
      draw_blob(m, mw, mh, B_TUMOUR, &t, 0.1 * t.r, 3.0);
    }
  }

  /* Pen: an arc around a piece (a pathologist circling something) or a free stroke. */
  L->pen = !s->blank && np > 0 && ts__synth_unif(g) < 0.35;
  if (L->pen) {
    double wl0 = 40.0 / s->mpp; /* ~40 um */
    if (wl0 > s->width / 120.0) wl0 = s->width / 120.0;
    double w = wl0 / L->ds < 1.5 ? 1.5 : wl0 / L->ds;
    int strokes = ts__synth_unif(g) < 0.7 ? 1 : 2;
    enum { NPTS = 200 };
    double pts[2 * NPTS];
    for (int k = 0; k < strokes; k++) {
      if (ts__synth_unif(g) < 0.6) {
        const blob *P = &pc[(int)(ts__synth_unif(g) * np) % np];
        /* Follow the outline at a distance: march out along each ray to the contour. */
        double off = 2.5 * w + ts__synth_range(g, 0.05, 0.2) * P->r;
        double a0 = ts__synth_range(g, 0, 2 * M_PI), sweep = ts__synth_range(g, 1.2, 4.5);
        double wob = ts__synth_range(g, 0.1, 0.4) * off, wph = ts__synth_range(g, 0, 2 * M_PI);
        for (int i = 0; i < NPTS; i++) {
          double a = a0 + sweep * i / (NPTS - 1), ca = cos(a), sa = sin(a), rho = 0;
          double target = -(off + wob * sin(3 * a + wph));
          while (rho < 3 * P->ext * P->r && blob_signed(P, P->cx + rho * ca, P->cy + rho * sa) > target)
            rho += 0.5;
          pts[2 * i] = P->cx + rho * ca;
          pts[2 * i + 1] = P->cy + rho * sa;
        }
      } else {
        double len = ts__synth_range(g, 0.1, 0.25) * (mw > mh ? mw : mh);
        double x = ts__synth_range(g, 0.1, 0.9) * mw, y = ts__synth_range(g, 0.1, 0.9) * mh;
        double head = ts__synth_range(g, 0, 2 * M_PI), turn = ts__synth_range(g, -3, 3) / len;
        for (int i = 0; i < NPTS; i++) {
          pts[2 * i] = x;
          pts[2 * i + 1] = y;
          double step = len / (NPTS - 1);
          x += step * cos(head);
          y += step * sin(head);
          head += turn * step + ts__synth_range(g, -0.03, 0.03);
        }
      }
      draw_stroke(m, mw, mh, pts, NPTS, w);
    }
  }

  /* Statistics on the truth masks. */
  size_t ntis = 0, ntum = 0, n = (size_t)mw * mh;
  for (size_t i = 0; i < n; i++) {
    bool tis = m[i * NB + B_TISSUE] >= 128;
    ntis += tis;
    ntum += tis && m[i * NB + B_TUMOUR] >= 128;
  }
  L->tissue_fraction = (double)ntis / (double)n;
  L->tumour_burden = ntis ? (double)ntum / (double)ntis : 0.0;
}

/* ---- the full-resolution point operation ------------------------------------------------ */

typedef struct nuc_grid {
  uint64_t seed;
  int cs, off;      /* cell size and grid offset, level-0 px */
  float ra, rsd;    /* long semi-axis (px) and its relative spread */
  float asp0, asp1; /* aspect = asp0 + asp1 * u */
  float round_frac; /* fraction drawn as small round dark nuclei (lymphocytes) */
  float r_round;
} nuc_grid;

#define OD_LUT_SCALE 1024
#define OD_LUT_N (8 * OD_LUT_SCALE)

typedef struct gen_params {
  float h[3], e[3], pen[3], bg[3];
  float h_base, h_nuc, h_tum, e_base, pen_k, fib_k, fib_dx, fib_dy;
  float p_stroma, p_tum1, p_tum2;
  nuc_grid gs, gt1, gt2;
  /* The masks at 1/ds (mw * mh * NB), upsampled bilinearly per pixel, and sampled at nucleus
   * centres so that a nucleus is drawn whole or not at all. */
  uint8_t *fields;
  int mw, mh;
  float inv_ds;
  uint8_t od_lut[OD_LUT_N]; /* 255 exp(-od) at od = i / OD_LUT_SCALE */
} gen_params;

static void gen_params_free(gpointer data) {
  gen_params *p = data;
  g_free(p->fields);
  g_free(p);
}

static const float unit_cos[16] = {
    1.f,  0.92387953f,  0.70710678f,  0.38268343f,  0.f, -0.38268343f, -0.70710678f, -0.92387953f,
    -1.f, -0.92387953f, -0.70710678f, -0.38268343f, 0.f, 0.38268343f,  0.70710678f,  0.92387953f};

static inline float clampf(float v, float lo, float hi) {
  return v < lo ? lo : v > hi ? hi : v;
}

/* Bilinear sample of mask band k at level-0 position (x, y), 0..1. */
static float field_at(const gen_params *p, int k, float x, float y) {
  float fx = x * p->inv_ds - 0.5f, fy = y * p->inv_ds - 0.5f;
  fx = clampf(fx, 0, (float)(p->mw - 1));
  fy = clampf(fy, 0, (float)(p->mh - 1));
  int i = (int)fx, j = (int)fy;
  int i1 = i + 1 < p->mw ? i + 1 : i, j1 = j + 1 < p->mh ? j + 1 : j;
  float tx = fx - (float)i, ty = fy - (float)j;
  const uint8_t *f = p->fields;
  float a = f[((size_t)j * p->mw + i) * NB + k], b = f[((size_t)j * p->mw + i1) * NB + k];
  float c = f[((size_t)j1 * p->mw + i) * NB + k], d = f[((size_t)j1 * p->mw + i1) * NB + k];
  return ((a + (b - a) * tx) * (1 - ty) + (c + (d - c) * tx) * ty) * (1.f / 255.f);
}

/* The candidate nucleus of one grid cell, decoded from a hash of (seed, cell). Whether it exists
 * depends on the fields at its centre only, so a nucleus is drawn whole or not at all. */
typedef struct nuc {
  int64_t gx, gy; /* the cell; gx = INT64_MIN: nothing cached */
  bool present;
  float cx, cy, margin, ra, rb, c, s, dk;
} nuc;

static void nuc_decode(const gen_params *p, int kind, int64_t gx, int64_t gy, nuc *o) {
  const nuc_grid *g = kind == 0 ? &p->gs : kind == 1 ? &p->gt1 : &p->gt2;
  o->gx = gx;
  o->gy = gy;
  uint64_t h = ts__synth_mix(g->seed ^ ((uint64_t)gx * 0x9E3779B97F4A7C15ULL) ^
                             ((uint64_t)gy * 0xD6E8FEB86659FD93ULL));
  float ux = (float)((h >> 16) & 0xff) * (1.f / 256.f);
  float uy = (float)((h >> 24) & 0xff) * (1.f / 256.f);
  int ai = (int)((h >> 32) & 15);
  float us = (float)((h >> 36) & 0xff) * (1.f / 256.f);
  float ua = (float)((h >> 44) & 0xff) * (1.f / 256.f);
  float ud = (float)((h >> 52) & 0xfff) * (1.f / 4096.f);
  float ra, rb, dk;
  if (ua < g->round_frac) { /* lymphocyte: small, round, dark */
    ra = rb = g->r_round * (0.9f + 0.2f * us);
    dk = 1.3f + 0.2f * ud;
  } else {
    ra = g->ra * (1 - g->rsd + 2 * g->rsd * us);
    rb = ra / (g->asp0 + g->asp1 * ua);
    dk = 0.8f + 0.45f * ud;
  }
  if (rb < 0.7f) rb = 0.7f;
  if (ra < rb) ra = rb;
  float margin = ra + 1, room = (float)g->cs - 2 * margin;
  o->cx = (float)(gx * g->cs - g->off) + margin + (room > 0 ? ux * room : room / 2);
  o->cy = (float)(gy * g->cs - g->off) + margin + (room > 0 ? uy * room : room / 2);
  o->margin = margin;
  o->ra = ra;
  o->rb = rb;
  o->c = unit_cos[ai];
  o->s = unit_cos[(ai + 12) & 15];
  o->dk = dk;
  float tum = field_at(p, B_TUMOUR, o->cx, o->cy), presence;
  if (kind == 0)
    presence = p->p_stroma * (0.4f + field_at(p, B_DENS, o->cx, o->cy)) * (1 - tum);
  else
    presence = (kind == 1 ? p->p_tum1 : p->p_tum2) * tum;
  o->present = (float)(h & 0xffff) * (1.f / 65536.f) < presence;
}

/* Raise *n (coverage 0..1) with the nucleus of grid `kind` over (X, Y), setting *dark when it
 * covers the pixel more than what was there. `cache` holds the last cell decoded. */
static inline void nucleus(const gen_params *p, int kind, int64_t X, int64_t Y, nuc *cache, float *n,
                           float *dark) {
  const nuc_grid *g = kind == 0 ? &p->gs : kind == 1 ? &p->gt1 : &p->gt2;
  int64_t gx = (X + g->off) / g->cs, gy = (Y + g->off) / g->cs;
  if (gx != cache->gx || gy != cache->gy) nuc_decode(p, kind, gx, gy, cache);
  const nuc *o = cache;
  if (!o->present) return;
  float dx = (float)X + 0.5f - o->cx, dy = (float)Y + 0.5f - o->cy;
  if (dx > o->margin || dx < -o->margin || dy > o->margin || dy < -o->margin) return;
  float u = (dx * o->c + dy * o->s) / o->ra, v = (-dx * o->s + dy * o->c) / o->rb;
  float q = u * u + v * v;
  if (q >= 1.6f) return;
  float cover = clampf((1 - sqrtf(q)) * o->rb + 0.5f, 0, 1);
  if (cover > *n) {
    *n = cover;
    *dark = o->dk;
  }
}

static int he_gen(VipsRegion *out, void *vseq, void *a, void *b, gboolean *stop) {
  (void)a;
  (void)stop;
  VipsRegion **ir = (VipsRegion **)vseq;
  const gen_params *p = (const gen_params *)b;
  VipsRect *r = &out->valid;
  for (int i = 0; ir[i]; i++)
    if (vips_region_prepare(ir[i], r)) return -1;
  nuc cache[3];
  for (int k = 0; k < 3; k++)
    cache[k].gx = INT64_MIN;
  /* mask columns this region needs */
  int c0 = (int)clampf(((float)r->left + 0.5f) * p->inv_ds - 0.5f, 0, (float)(p->mw - 1));
  int c1 = (int)clampf(((float)(r->left + r->width) + 0.5f) * p->inv_ds - 0.5f, 0, (float)(p->mw - 1)) + 1;
  if (c1 > p->mw - 1) c1 = p->mw - 1;
  float vstack[64 * NB], *vrow = vstack;
  if (c1 - c0 + 1 > 64 && !(vrow = g_try_malloc(sizeof(float) * NB * (size_t)(c1 - c0 + 1)))) {
    vips_error("synth", "out of memory");
    return -1;
  }
  for (int y = 0; y < r->height; y++) {
    int64_t Y = r->top + y;
    /* The masks, upsampled: mask pixel centres sit on level-0 pixel centres. Blend the two
     * mask rows once per row (vertical), then per pixel along x. */
    float fy = clampf(((float)Y + 0.5f) * p->inv_ds - 0.5f, 0, (float)(p->mh - 1));
    int j0 = (int)fy, j1 = j0 + 1 < p->mh ? j0 + 1 : j0;
    float ty = fy - (float)j0;
    const uint8_t *row0 = p->fields + (size_t)j0 * p->mw * NB;
    const uint8_t *row1 = p->fields + (size_t)j1 * p->mw * NB;
    for (int i = c0; i <= c1; i++)
      for (int k = 0; k < NB; k++) {
        float v0 = row0[i * NB + k], v1 = row1[i * NB + k];
        vrow[(i - c0) * NB + k] = (v0 + (v1 - v0) * ty) * (1.f / 255.f);
      }
    const float *pa = (const float *)VIPS_REGION_ADDR(ir[0], r->left, Y);
    const float *pb = (const float *)VIPS_REGION_ADDR(ir[1], r->left, Y);
    VipsPel *q = VIPS_REGION_ADDR(out, r->left, Y);
    for (int x = 0; x < r->width; x++, q += 3) {
      int64_t X = r->left + x;
      float fx = clampf(((float)X + 0.5f) * p->inv_ds - 0.5f, 0, (float)(p->mw - 1));
      int i0 = (int)fx, i1 = i0 + 1 < p->mw ? i0 + 1 : i0;
      float tx = fx - (float)i0, mv[NB];
      const float *va = vrow + (i0 - c0) * NB, *vb = vrow + (i1 - c0) * NB;
      for (int k = 0; k < NB; k++)
        mv[k] = va[k] + (vb[k] - va[k]) * tx;
      float t = mv[B_TISSUE], tum = mv[B_TUMOUR], pen = mv[B_PEN], dens = mv[B_DENS];
      float A = pa[x], B = pb[x];
      float od[3];
      for (int c = 0; c < 3; c++)
        od[c] = p->bg[c] * (1 + 0.4f * A);
      /* Tissue alpha: steep around the 1/2 line of the mask, which fine noise moves by up to
       * ~0.14 (about a third of a mask pixel): a ragged edge that stays on the truth. */
      float al = clampf(0.5f + (t - 0.5f + 0.2f * B) * 12.f, 0, 1);
      if (al > 0) {
        float n = 0, dark = 1;
        nucleus(p, 0, X, Y, &cache[0], &n, &dark);
        if (tum > 0.001f) { /* tumour fields reach ~2 mask px past the 1/2 line */
          nucleus(p, 1, X, Y, &cache[1], &n, &dark);
          nucleus(p, 2, X, Y, &cache[2], &n, &dark);
        }
        /* wavy collagen fibres across the stroma */
        float fib = 0.5f + 0.5f * sinf(p->fib_k * ((float)X * p->fib_dx + (float)Y * p->fib_dy) + 14.f * A +
                                       2.5f * B);
        float H = al * (p->h_base * (0.7f + 0.6f * dens) + p->h_tum * tum +
                        p->h_nuc * n * dark * (0.85f + 0.35f * B));
        float E = al * p->e_base * (0.8f + 0.35f * A + 0.1f * B) * (0.88f + 0.2f * fib) *
                  (0.6f + 0.8f * dens) * (1 - 0.6f * n) * (1 - 0.25f * tum);
        for (int c = 0; c < 3; c++)
          od[c] += H * p->h[c] + E * p->e[c];
      }
      if (pen > 0.2f) {
        float k = clampf((pen - 0.3f) * 2.5f, 0, 1) * p->pen_k * (0.85f + 0.3f * B);
        for (int c = 0; c < 3; c++)
          od[c] += k * p->pen[c];
      }
      for (int c = 0; c < 3; c++) {
        int i = (int)(od[c] * OD_LUT_SCALE + 0.5f);
        q[c] = p->od_lut[i < 0 ? 0 : i >= OD_LUT_N ? OD_LUT_N - 1 : i];
      }
    }
  }
  if (vrow != vstack) g_free(vrow);
  return 0;
}

static void unit3(float v[3]) {
  float n = sqrtf(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
  for (int c = 0; c < 3; c++)
    v[c] /= n;
}

static void draw_params(gen_params *p, ts__synth_rng *g, double mpp) {
  /* Macenko's reference H and E optical-density vectors, jittered per slide (stain shift). */
  const float H[3] = {0.5626f, 0.7201f, 0.4062f}, E[3] = {0.2159f, 0.8012f, 0.5581f};
  for (int c = 0; c < 3; c++) {
    p->h[c] = H[c] + (float)ts__synth_range(g, -0.08, 0.08);
    p->e[c] = E[c] + (float)ts__synth_range(g, -0.08, 0.08);
  }
  unit3(p->h);
  unit3(p->e);
  p->h_base = (float)ts__synth_range(g, 0.05, 0.12);
  p->h_nuc = (float)ts__synth_range(g, 1.1, 1.6);
  p->h_tum = (float)ts__synth_range(g, 0.08, 0.16);
  p->e_base = (float)ts__synth_range(g, 0.35, 0.7);
  float bg = (float)ts__synth_range(g, 0.015, 0.05);
  for (int c = 0; c < 3; c++)
    p->bg[c] = bg * (float)ts__synth_range(g, 0.8, 1.2);
  if (ts__synth_unif(g) < 0.5) { /* green marker: absorbs red and blue */
    p->pen[0] = 1.0f, p->pen[1] = 0.25f, p->pen[2] = 0.8f;
  } else { /* blue marker: absorbs red and green */
    p->pen[0] = 1.0f, p->pen[1] = 0.6f, p->pen[2] = 0.12f;
  }
  p->pen_k = (float)ts__synth_range(g, 0.8, 1.3);
  p->p_stroma = (float)ts__synth_range(g, 0.25, 0.45);
  p->p_tum1 = 0.85f;
  p->p_tum2 = 0.55f;
  float um = (float)(1.0 / mpp); /* px per um */
  /* Stroma: fibroblast spindles (~4.5 um semi-axis, aspect 2..4) and some lymphocytes. */
  p->gs = (nuc_grid){ts__synth_next(g), 0, 0, 4.5f * um, 0.25f, 2.0f, 2.0f, 0.25f, 2.8f * um};
  p->gs.cs = (int)lrint(15.0 * um) > 3 ? (int)lrint(15.0 * um) : 3;
  /* Tumour: two overlapping grids of large, rounder, pleomorphic nuclei. */
  p->gt1 = (nuc_grid){ts__synth_next(g), 0, 0, 5.5f * um, 0.3f, 1.1f, 0.6f, 0.03f, 2.8f * um};
  p->gt1.cs = (int)lrint(13.0 * um) > 3 ? (int)lrint(13.0 * um) : 3;
  p->gt2 = p->gt1;
  p->gt2.seed = ts__synth_next(g);
  p->gt2.off = p->gt1.cs / 2;
  double fa = ts__synth_range(g, 0, M_PI);
  p->fib_k = (float)(2 * M_PI / (14.0 * um));
  p->fib_dx = (float)cos(fa);
  p->fib_dy = (float)sin(fa);
}

/* ---- assembly and output ------------------------------------------------------------------ */

static int save_png(const uint8_t *m, int mw, int mh, int band, const char *path) {
  uint8_t *buf = malloc((size_t)mw * mh);
  if (!buf) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "mask %dx%d", mw, mh);
  for (size_t i = 0; i < (size_t)mw * mh; i++)
    buf[i] = m[i * NB + band] >= 128 ? 255 : 0;
  VipsImage *im = vips_image_new_from_memory_copy(buf, (size_t)mw * mh, mw, mh, 1, VIPS_FORMAT_UCHAR);
  void *png = NULL;
  size_t len = 0;
  int rc = 0;
  if (!im || vips_pngsave_buffer(im, &png, &len, "compression", 6, NULL)) rc = vips_fail(path);
  if (im) g_object_unref(im);
  free(buf);
  if (rc == 0) {
    rc = ts_io_write_atomic(path, png, len);
    if (rc < 0) rc = ts_error_set(rc, "SYNTH_WRITE", "%s", ts_error_detail());
  }
  g_free(png);
  return rc;
}

static int save_tiff(VipsImage *img, const ts__synth_slide *s, const char *path) {
  char desc[512];
  int mag = (int)lrint(10.0 / s->mpp);
  if (mag < 1) mag = 1;
  int k = snprintf(desc, sizeof desc,
                   "Aperio Image Library v10.0.0\r\n%lldx%lld [0,0 %lldx%lld] (256x256) JPEG/RGB "
                   "Q=%d|AppMag = %d",
                   (long long)s->width, (long long)s->height, (long long)s->width, (long long)s->height,
                   s->jpeg_q, mag);
  if (!s->no_mpp) {
    char mpp[32];
    g_ascii_formatd(mpp, sizeof mpp, "%.4f", s->mpp);
    snprintf(desc + k, sizeof desc - (size_t)k, "|MPP = %s", mpp);
  }
  vips_image_set_string(img, "image-description", desc);
  char tmp[TS_PATH_MAX];
  TS_CALL(ts_io_tmp_path(path, tmp, sizeof tmp));
  /* JPEG tiles of a 100000 px slide pass 4 GiB: BigTIFF from 32768^2 up (libtiff and OpenSlide
   * read it); smaller slides stay classic TIFF for older readers. */
  gboolean big = (double)s->width * (double)s->height >= 32768.0 * 32768.0;
  if (vips_tiffsave(img, tmp, "tile", TRUE, "tile_width", 256, "tile_height", 256, "pyramid", TRUE,
                    "compression", VIPS_FOREIGN_TIFF_COMPRESSION_JPEG, "Q", s->jpeg_q, "bigtiff", big,
                    NULL)) {
    unlink(tmp);
    return vips_fail(path);
  }
  int rc = ts_io_commit(tmp, path);
  if (rc < 0) {
    unlink(tmp);
    return ts_error_set(rc, "SYNTH_WRITE", "%s", ts_error_detail());
  }
  return 0;
}

int ts__synth_slide_write(ts__synth_slide *s, const char *tiff_path, const char *tissue_png,
                          const char *tumour_png) {
  int rc = 0;
  layout L = {0};
  VipsImage *pa = NULL, *pb = NULL, *out = NULL;
  gen_params *gp = NULL;
  ts__synth_rng g;
  ts__synth_rng_seed(&g, s->seed);

  L.ds = ts__synth_truth_downsample(s->width > s->height ? s->width : s->height);
  L.mw = (int)((s->width + L.ds - 1) / L.ds);
  L.mh = (int)((s->height + L.ds - 1) / L.ds);
  L.m = g_try_malloc0((size_t)L.mw * L.mh * NB);
  gp = g_new0(gen_params, 1);
  if (!L.m) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "masks %dx%d", L.mw, L.mh);
  draw_layout(&L, &g, s);
  draw_params(gp, &g, s->mpp);
  s->truth_downsample = L.ds;
  s->mask_w = L.mw;
  s->mask_h = L.mh;
  s->tissue_fraction = L.tissue_fraction;
  s->tumour_burden = L.tumour_burden;
  s->pen = L.pen;
  s->pieces = L.pieces;

  TS_TRY(save_png(L.m, L.mw, L.mh, B_TISSUE, tissue_png));
  TS_TRY(save_png(L.m, L.mw, L.mh, B_TUMOUR, tumour_png));

  gp->mw = L.mw;
  gp->mh = L.mh;
  gp->inv_ds = 1.0f / (float)L.ds;
  gp->fields = L.m; /* from here on owned by gp, freed with the image */
  L.m = NULL;
  for (int i = 0; i < OD_LUT_N; i++) {
    double v = 255.0 * exp(-(double)i / OD_LUT_SCALE) + 0.5;
    gp->od_lut[i] = (uint8_t)(v >= 255 ? 255 : (int)v);
  }

  int W = (int)s->width, H = (int)s->height;
  int cell_a = (int)lrint(80.0 / s->mpp), cell_b = (int)lrint(5.0 / s->mpp);
  if (cell_a < 4) cell_a = 4;
  if (cell_b < 2) cell_b = 2;
  int seed_a = (int)(uint32_t)ts__synth_next(&g), seed_b = (int)(uint32_t)ts__synth_next(&g);
  if (vips_perlin(&pa, W, H, "cell_size", cell_a, "seed", seed_a, NULL) ||
      vips_perlin(&pb, W, H, "cell_size", cell_b, "seed", seed_b, NULL)) {
    rc = vips_fail("building the slide pipeline");
    goto out;
  }

  out = vips_image_new();
  VipsImage **in = vips_allocate_input_array(out, pa, pb, NULL);
  double res = s->no_mpp ? 1.0 : 1000.0 / s->mpp; /* px per mm */
  if (!in || vips_image_pipeline_array(out, VIPS_DEMAND_STYLE_SMALLTILE, in)) {
    rc = vips_fail("pipeline");
    goto out;
  }
  vips_image_init_fields(out, W, H, 3, VIPS_FORMAT_UCHAR, VIPS_CODING_NONE, VIPS_INTERPRETATION_sRGB, res,
                         res);
  g_object_set_data_full(G_OBJECT(out), "ts-synth-params", gp, gen_params_free);
  gen_params *keep = gp;
  gp = NULL;
  if (vips_image_generate(out, vips_start_many, he_gen, vips_stop_many, in, keep)) {
    rc = vips_fail("generate");
    goto out;
  }

  TS_TRY(save_tiff(out, s, tiff_path));

out:
  if (out) g_object_unref(out);
  if (pa) g_object_unref(pa);
  if (pb) g_object_unref(pb);
  if (gp) gen_params_free(gp);
  g_free(L.m);
  return rc;
}
