/* reader.c — the tile reader of ts_reader.h: level choice, two decoders, a decoding thread pool
 * and an ordered, bounded batch queue.
 *
 * Why two decoders. openslide_read_region() on an Aperio or generic TIFF decodes the same
 * JPEG tiles as libvips' tiffload, but goes through cairo, a premultiplied ARGB surface and a
 * per-handle tile cache; libvips hands back the decoded RGB tile from its own cache with one
 * memcpy per row. On this VM that is ~3-4x more tiles per core (bench/bench_reader.c). Both
 * decode with the same libjpeg (libjpeg-turbo, ISLOW DCT, fancy upsampling) and OpenSlide's
 * alpha is 255 inside the scan, so the pixels are the same; outside the level both paths give
 * white (ts_slide composites OpenSlide's alpha 0 over white; here we fill 255).
 *
 * Eligibility for the fast path is decided from the TIFF directory itself (a small TIFF 6.0 /
 * BigTIFF IFD walker, TIFF 6.0 spec section 2 and the BigTIFF design note): tessera does not
 * link libtiff directly. Level k of OpenSlide must be exactly one tiled directory of the main IFD
 * chain (OpenSlide's aperio and generic-tiff drivers take the tiled directories, largest first),
 * 8-bit, 3 samples, contiguous, RGB or YCbCr, compression none (1) or JPEG (7). Anything else
 * (JPEG 2000 SVS, subIFD pyramids, RGBA, other vendors) reads through OpenSlide.
 *
 * Threads. A run (ts_reader_start) owns `threads` pthreads and `queue` batch slots. Tile i
 * belongs to batch i / B, which lives in slot (i / B) % queue; a worker takes the next tile in
 * list order only when that slot is free or already holds that batch, decodes it straight into
 * the slot's NHWC buffer and counts the slot down. The consumer waits for batch k in order.
 * So each tile's bytes depend only on its coordinates and batch k is always the same tiles:
 * determinism does not depend on the thread count or on scheduling. Each worker has its own
 * decoding context (a VipsRegion on the shared level image — libvips caches decoded tiles per
 * image, shared by all regions — and, when needed, its own OpenSlide handle, so that one
 * handle's sticky error can never fail another thread's tile).
 *
 * libvips global operation cache: vips_resize builds sub-operations through the cache, which
 * keeps references to our per-tile memory images until it trims them (bounded by libvips'
 * cache limits). Those images are never evaluated again, so this costs memory, not correctness.
 */
#include "ts_reader.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vips/vips.h>

/* ---- TIFF directory walk ------------------------------------------------------------------ */

#define MAX_DIRS 256

typedef struct tdir {
  int index; /* position in the main IFD chain = tiffload's page */
  int64_t w, h;
  bool tiled;
  int64_t tw, th; /* TIFF tile size */
  unsigned compression, photometric, spp, bps, planar;
} tdir;

typedef struct tfile {
  FILE *f;
  bool be, big;
} tfile;

static uint64_t get_u(const uint8_t *p, int n, bool be) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++)
    v |= (uint64_t)p[be ? n - 1 - i : i] << (8 * i);
  return v;
}

static bool read_at(tfile *t, uint64_t off, void *buf, size_t n) {
  return fseeko(t->f, (off_t)off, SEEK_SET) == 0 && fread(buf, 1, n, t->f) == n;
}

/* First value of an IFD entry of type SHORT (3), LONG (4) or LONG8 (16); 0 when other. */
static uint64_t entry_value(tfile *t, const uint8_t *e) {
  unsigned type = (unsigned)get_u(e + 2, 2, t->be);
  int sz = type == 3 ? 2 : type == 4 ? 4 : type == 16 ? 8 : 0;
  if (!sz) return 0;
  uint64_t count = get_u(e + 4, t->big ? 8 : 4, t->be);
  const uint8_t *val = e + (t->big ? 12 : 8);
  int inline_bytes = t->big ? 8 : 4;
  if (count * (uint64_t)sz <= (uint64_t)inline_bytes) return get_u(val, sz, t->be);
  uint8_t b[8];
  if (!read_at(t, get_u(val, inline_bytes, t->be), b, (size_t)sz)) return 0;
  return get_u(b, sz, t->be);
}

/* Walk the main IFD chain of path. Returns the number of directories, -1 if not a TIFF. */
static int tiff_scan(const char *path, tdir *d, int max) {
  tfile t = {fopen(path, "rb"), false, false};
  if (!t.f) return -1;
  int n = -1;
  uint8_t h[16];
  if (fread(h, 1, 8, t.f) != 8) goto out;
  if (h[0] == 'M' && h[1] == 'M')
    t.be = true;
  else if (!(h[0] == 'I' && h[1] == 'I'))
    goto out;
  unsigned magic = (unsigned)get_u(h + 2, 2, t.be);
  uint64_t off;
  if (magic == 42) {
    off = get_u(h + 4, 4, t.be);
  } else if (magic == 43) {
    t.big = true;
    if (fread(h + 8, 1, 8, t.f) != 8) goto out;
    off = get_u(h + 8, 8, t.be);
  } else {
    goto out;
  }
  n = 0;
  int esz = t.big ? 20 : 12, csz = t.big ? 8 : 2;
  while (off && n < max) {
    uint8_t cb[8];
    if (!read_at(&t, off, cb, (size_t)csz)) break;
    uint64_t cnt = get_u(cb, csz, t.be);
    if (cnt == 0 || cnt > 4096) break;
    uint8_t *ents = malloc((size_t)cnt * (size_t)esz + 8);
    if (!ents) break;
    if (fread(ents, 1, (size_t)cnt * (size_t)esz + (size_t)(t.big ? 8 : 4), t.f) !=
        (size_t)cnt * (size_t)esz + (size_t)(t.big ? 8 : 4)) {
      free(ents);
      break;
    }
    uint64_t next = get_u(ents + cnt * (uint64_t)esz, t.big ? 8 : 4, t.be);
    tdir *x = &d[n];
    memset(x, 0, sizeof *x);
    x->index = n;
    x->spp = 1;
    x->bps = 1;
    x->planar = 1;
    x->compression = 1;
    for (uint64_t i = 0; i < cnt; i++) {
      const uint8_t *e = ents + i * (uint64_t)esz;
      unsigned tag = (unsigned)get_u(e, 2, t.be);
      switch (tag) {
      case 256:
        x->w = (int64_t)entry_value(&t, e);
        break;
      case 257:
        x->h = (int64_t)entry_value(&t, e);
        break;
      case 258:
        x->bps = (unsigned)entry_value(&t, e);
        break;
      case 259:
        x->compression = (unsigned)entry_value(&t, e);
        break;
      case 262:
        x->photometric = (unsigned)entry_value(&t, e);
        break;
      case 277:
        x->spp = (unsigned)entry_value(&t, e);
        break;
      case 284:
        x->planar = (unsigned)entry_value(&t, e);
        break;
      case 322:
        x->tiled = true;
        x->tw = (int64_t)entry_value(&t, e);
        break;
      case 323:
        x->th = (int64_t)entry_value(&t, e);
        break;
      default:
        break;
      }
    }
    free(ents);
    n++;
    if (next == off) break;
    off = next;
  }
out:
  fclose(t.f);
  return n;
}

/* ---- the reader ---------------------------------------------------------------------------- */

typedef struct dctx {
  struct ts_reader *r;
  ts_slide *slide; /* OpenSlide handle of this context (may be NULL until needed) */
  bool own_slide;
  VipsRegion *reg;  /* vips-tiff: region on r->level_img, created by the thread that uses it */
  uint8_t *scratch; /* R*R*3 when the reader resizes */
} dctx;

typedef struct slot {
  ts_reader_batch b;
  int64_t batch; /* batch held, -1 when free */
  int remaining;
  int first_bad; /* tile index (in batch) whose message is in first_error, -1 */
  bool held;
  int *status;
  const char **token;
} slot;

struct ts_reader {
  char *path, *id;
  double mpp0, target;
  int size, level, region;
  double ds;
  int64_t lw, lh;
  size_t tile_bytes;
  ts_reader_opts o;
  enum ts_reader_backend backend;
  char reason[200];
  int page;
  int64_t tiff_tw, tiff_th; /* TIFF tile size of the level's page */
  ts_slide *slide;
  VipsImage *level_img;

  pthread_mutex_t single_mu; /* ts_reader_read_tile */
  dctx single;

  pthread_mutex_t mu;
  pthread_cond_t cv_work, cv_done;
  dctx *ctx; /* o.threads */
  pthread_t *th;
  int nth_running;
  slot *slots;
  int64_t *coords, n, next_tile, n_batches, next_batch;
  int chunk; /* tiles a worker takes at once: ceil(batch / threads) */
  bool stopping;
  int64_t bad, fallback;
};

static const char TOK_NONE[] = "";
static const char TOK_DECODE[] = "TILE_DECODE";
static const char TOK_UNREADABLE[] = "SLIDE_UNREADABLE";

void ts_reader_opts_default(ts_reader_opts *o) {
  memset(o, 0, sizeof *o);
  o->version = TS_READER_OPTS_VERSION;
  o->threads = 2;
  o->batch = 32;
  o->queue = 3;
  o->backend = TS_READER_AUTO;
}

/* tiffload of one page, built outside libvips' operation cache, so that the reader's image (and
 * its tile cache) is its own: nobody else's failed reads can have poisoned it (see
 * blacked_out()). All decoding contexts share it, so each JPEG tile is decoded once. */
static VipsImage *load_page(const char *path, int page) {
  VipsOperation *op = vips_operation_new("tiffload");
  VipsImage *out = NULL;
  if (!op) return NULL;
  if (vips_object_set(VIPS_OBJECT(op), "filename", path, "page", page, "access", VIPS_ACCESS_RANDOM, NULL) ||
      vips_object_build(VIPS_OBJECT(op))) {
    vips_object_unref_outputs(VIPS_OBJECT(op));
    g_object_unref(op);
    return NULL;
  }
  g_object_get(op, "out", &out, NULL);
  vips_object_unref_outputs(VIPS_OBJECT(op));
  g_object_unref(op);
  return out;
}

/* Decide the fast path; on success r->page and r->level_img are set. `why` says why not. */
static bool fast_path_eligible(ts_reader *r, char *why, size_t n) {
  const char *v = ts_slide_vendor(r->slide);
  if (strcmp(v, "aperio") && strcmp(v, "generic-tiff")) {
    snprintf(why, n, "vendor %s is not a plain tiled TIFF", v);
    return false;
  }
  tdir *d = calloc(MAX_DIRS, sizeof *d);
  if (!d) {
    snprintf(why, n, "out of memory");
    return false;
  }
  int nd = tiff_scan(r->path, d, MAX_DIRS), nt = 0;
  bool ok = false;
  if (nd < 0) {
    snprintf(why, n, "not a TIFF file");
    goto out;
  }
  /* Tiled directories, largest first (stable), as OpenSlide's aperio/generic-tiff levels. */
  for (int i = 0; i < nd; i++)
    if (d[i].tiled) d[nt++] = d[i];
  for (int i = 1; i < nt; i++)
    for (int j = i; j > 0 && d[j].w > d[j - 1].w; j--) {
      tdir t = d[j];
      d[j] = d[j - 1];
      d[j - 1] = t;
    }
  if (nt != ts_slide_level_count(r->slide)) {
    snprintf(why, n, "%d tiled TIFF directories for %d levels", nt, ts_slide_level_count(r->slide));
    goto out;
  }
  for (int l = 0; l < nt; l++) {
    int64_t w, h;
    ts_slide_level_dims(r->slide, l, &w, &h);
    const tdir *x = &d[l];
    if (x->w != w || x->h != h) {
      snprintf(why, n, "level %d is %lldx%lld, TIFF directory %d is %lldx%lld", l, (long long)w, (long long)h,
               x->index, (long long)x->w, (long long)x->h);
      goto out;
    }
    if (x->bps != 8 || x->spp != 3 || x->planar != 1 || (x->photometric != 2 && x->photometric != 6) ||
        (x->compression != 1 && x->compression != 7)) {
      snprintf(why, n,
               "level %d: compression %u, photometric %u, %u samples of %u bits, planar %u "
               "(fast path: none/JPEG, RGB/YCbCr, 3 x 8 bits, contiguous)",
               l, x->compression, x->photometric, x->spp, x->bps, x->planar);
      goto out;
    }
  }
  r->page = d[r->level].index;
  r->tiff_tw = d[r->level].tw > 0 ? d[r->level].tw : 256;
  r->tiff_th = d[r->level].th > 0 ? d[r->level].th : 256;
  if (!(r->level_img = load_page(r->path, r->page))) {
    char *e = vips_error_buffer_copy();
    snprintf(why, n, "libvips tiffload page %d: %s", r->page, e ? e : "");
    g_free(e);
    r->level_img = NULL;
    goto out;
  }
  if (r->level_img->Xsize != r->lw || r->level_img->Ysize != r->lh || r->level_img->Bands != 3 ||
      r->level_img->BandFmt != VIPS_FORMAT_UCHAR) {
    snprintf(why, n, "libvips reads page %d as %dx%d, %d bands of format %d", r->page, r->level_img->Xsize,
             r->level_img->Ysize, r->level_img->Bands, (int)r->level_img->BandFmt);
    g_object_unref(r->level_img);
    r->level_img = NULL;
    goto out;
  }
  ok = true;
out:
  free(d);
  return ok;
}

/* Resize the R x R RGB buffer src to size x size into dst with vips_resize (lanczos3). */
static int resize_tile(const uint8_t *src, int R, int size, uint8_t *dst, char *msg, size_t n) {
  int rc = -1;
  VipsImage *in = NULL, *out = NULL;
  VipsRegion *reg = NULL;
  double s = (double)size / (double)R;
  in = vips_image_new_from_memory(src, (size_t)R * (size_t)R * 3, R, R, 3, VIPS_FORMAT_UCHAR);
  if (!in || vips_resize(in, &out, s, "vscale", s, "kernel", VIPS_KERNEL_LANCZOS3, NULL)) goto out;
  if (out->Xsize != size || out->Ysize != size || out->Bands != 3 || out->BandFmt != VIPS_FORMAT_UCHAR) {
    snprintf(msg, n, "vips_resize %d -> %d gave %dx%d", R, size, out->Xsize, out->Ysize);
    rc = -2;
    goto out;
  }
  reg = vips_region_new(out);
  VipsRect all = {0, 0, size, size};
  if (!reg || vips_region_prepare(reg, &all)) goto out;
  for (int y = 0; y < size; y++)
    memcpy(dst + (size_t)y * (size_t)size * 3, VIPS_REGION_ADDR(reg, 0, y), (size_t)size * 3);
  rc = 0;
out:
  if (rc == -1) {
    char *e = vips_error_buffer_copy();
    snprintf(msg, n, "vips_resize: %s", e ? e : "");
    g_free(e);
  }
  if (reg) g_object_unref(reg);
  if (out) g_object_unref(out);
  if (in) g_object_unref(in);
  return rc;
}

/* libvips 8.14's tilecache, when a tile fails to decode, reports the error to the request that
 * computed it, then keeps the tile *blacked out* (all bytes 0) and valid: every later request —
 * including one from another thread that was waiting for that tile — succeeds with black pixels.
 * Decoded JPEG tissue or glass is never exactly 0 over a whole TIFF tile, so a request in which
 * the part of some TIFF tile is all zeros is treated as suspect and handed to OpenSlide, which
 * either reports the decode error or (a genuinely black scan) gives the same pixels. The check
 * stops at the first non-zero byte of each part: negligible on real content. */
static bool blacked_out(const ts_reader *r, VipsRegion *reg, const VipsRect *want) {
  int64_t gx0 = want->left / r->tiff_tw, gx1 = (want->left + want->width - 1) / r->tiff_tw;
  int64_t gy0 = want->top / r->tiff_th, gy1 = (want->top + want->height - 1) / r->tiff_th;
  for (int64_t gy = gy0; gy <= gy1; gy++)
    for (int64_t gx = gx0; gx <= gx1; gx++) {
      VipsRect t = {(int)(gx * r->tiff_tw), (int)(gy * r->tiff_th), (int)r->tiff_tw, (int)r->tiff_th}, in;
      vips_rect_intersectrect(&t, want, &in);
      bool zero = true;
      for (int y = 0; zero && y < in.height; y++) {
        const uint8_t *p = (const uint8_t *)VIPS_REGION_ADDR(reg, in.left, in.top + y);
        for (int i = 0; i < in.width * 3; i++)
          if (p[i]) {
            zero = false;
            break;
          }
      }
      if (zero) return true;
    }
  return false;
}

/* R x R at level-L origin (lx, ly) through libvips; white outside the level. */
static int region_vips(dctx *c, int64_t lx, int64_t ly, uint8_t *dst, char *msg, size_t n) {
  ts_reader *r = c->r;
  int R = r->region;
  int64_t x0 = lx > 0 ? lx : 0, y0 = ly > 0 ? ly : 0;
  int64_t x1 = lx + R < r->lw ? lx + R : r->lw, y1 = ly + R < r->lh ? ly + R : r->lh;
  if (x0 != lx || y0 != ly || x1 != lx + R || y1 != ly + R) memset(dst, 255, (size_t)R * (size_t)R * 3);
  if (x1 <= x0 || y1 <= y0) return 0;
  VipsRect want = {(int)x0, (int)y0, (int)(x1 - x0), (int)(y1 - y0)};
  bool own = false;
  if (!c->reg) {
    c->reg = vips_region_new(r->level_img);
    own = c == &r->single; /* the single-read context may be used from any thread */
  }
  int rc = 0;
  if (!c->reg || vips_region_prepare(c->reg, &want)) {
    char *e = vips_error_buffer_copy();
    snprintf(msg, n, "libvips: %s", e && *e ? e : "region prepare failed");
    g_free(e);
    rc = -1;
  } else if (blacked_out(r, c->reg, &want)) {
    snprintf(msg, n, "libvips: an all-black TIFF tile (blacked out after a decode error, or black)");
    rc = -1;
  } else {
    size_t row = (size_t)want.width * 3;
    for (int y = 0; y < want.height; y++)
      memcpy(dst + ((size_t)(y0 - ly + y) * (size_t)R + (size_t)(x0 - lx)) * 3,
             VIPS_REGION_ADDR(c->reg, want.left, want.top + y), row);
  }
  if (own && c->reg) {
    g_object_unref(c->reg);
    c->reg = NULL;
  }
  return rc;
}

/* R x R through OpenSlide on this context's handle; after an error the handle is reopened
 * (OpenSlide errors are sticky) so that the next tile reads on a healthy one. */
static int region_openslide(dctx *c, int64_t lx, int64_t ly, uint8_t *dst, char *msg, size_t n) {
  ts_reader *r = c->r;
  size_t bytes = (size_t)r->region * (size_t)r->region * 3;
  if (!c->slide) {
    if (ts_slide_open(r->path, r->id, &c->slide) < 0) {
      memset(dst, 0, bytes);
      snprintf(msg, n, "%s", ts_error_message());
      return -1;
    }
    c->own_slide = true;
  }
  int64_t x0 = llround((double)lx * r->ds), y0 = llround((double)ly * r->ds);
  if (ts_slide_read_rgb(c->slide, r->level, x0, y0, r->region, r->region, dst) < 0) {
    snprintf(msg, n, "%s", ts_error_detail());
    (void)ts_slide_reopen(c->slide); /* a failure here shows up as a read error next time */
    return -1;
  }
  return 0;
}

/* Decode tile (x, y) into out (size*size*3). Returns 0, or a negative status with *tok set and
 * a message in msg; out is zeroed then. */
static int decode_tile(dctx *c, int64_t x, int64_t y, uint8_t *out, const char **tok, char *msg, size_t n) {
  ts_reader *r = c->r;
  int64_t lx = (int64_t)floor((double)x / r->ds + 1e-9), ly = (int64_t)floor((double)y / r->ds + 1e-9);
  bool resize = r->region != r->size;
  uint8_t *reg = resize ? c->scratch : out;
  char m1[200] = "", m2[200] = "";
  int rc;
  *tok = TOK_NONE;
  msg[0] = 0;
  if (r->backend == TS_READER_VIPS_TIFF) {
    rc = region_vips(c, lx, ly, reg, m1, sizeof m1);
    if (rc < 0) {
      rc = region_openslide(c, lx, ly, reg, m2, sizeof m2);
      pthread_mutex_lock(&r->mu);
      if (rc == 0) r->fallback++;
      pthread_mutex_unlock(&r->mu);
      if (rc < 0) {
        *tok = TOK_DECODE;
        snprintf(msg, n, "TILE_DECODE: slide '%s': tile (%lld, %lld) level %d: %s; OpenSlide: %s", r->id,
                 (long long)x, (long long)y, r->level, m1, m2);
      }
    }
  } else {
    rc = region_openslide(c, lx, ly, reg, m2, sizeof m2);
    if (rc < 0) {
      *tok = TOK_UNREADABLE;
      snprintf(msg, n, "SLIDE_UNREADABLE: %s", m2);
    }
  }
  if (rc == 0 && resize) {
    rc = resize_tile(c->scratch, r->region, r->size, out, m1, sizeof m1);
    if (rc < 0) {
      *tok = TOK_DECODE;
      snprintf(msg, n, "TILE_DECODE: slide '%s': tile (%lld, %lld): %s", r->id, (long long)x, (long long)y,
               m1);
    }
  }
  if (rc < 0) {
    memset(out, 0, r->tile_bytes);
    return TS_EINPUT;
  }
  return 0;
}

static int ctx_init(ts_reader *r, dctx *c, ts_slide *shared) {
  memset(c, 0, sizeof *c);
  c->r = r;
  c->slide = shared;
  if (r->region != r->size) {
    c->scratch = malloc((size_t)r->region * (size_t)r->region * 3);
    if (!c->scratch) return ts_error_set(TS_ENOMEM, "ENOMEM", "tile reader: scratch of %d px", r->region);
  }
  return 0;
}

static void ctx_clear(dctx *c) {
  if (c->reg) g_object_unref(c->reg);
  if (c->own_slide) ts_slide_free(&c->slide);
  free(c->scratch);
  memset(c, 0, sizeof *c);
}

int ts_reader_open(const char *path, const char *id, double mpp0, double target_mpp, int size,
                   const ts_reader_opts *opts, ts_reader **out) {
  int rc = 0;
  ts_reader *r = NULL;
  if (!out) return ts_error_set(TS_EINVAL, "EINVAL", "ts_reader_open: out is NULL");
  *out = NULL;
  if (!path || !*path) return ts_error_set(TS_EINVAL, "EINVAL", "ts_reader_open: empty path");
  if (!id) id = path;
  ts_reader_opts o;
  if (opts)
    o = *opts;
  else
    ts_reader_opts_default(&o);
  if (o.version != TS_READER_OPTS_VERSION || o.threads < 1 || o.threads > 64 || o.batch < 1 ||
      o.batch > 65536 || o.queue < 1 || o.queue > 64 || (unsigned)o.backend > TS_READER_VIPS_TIFF)
    return ts_error_set(TS_EINVAL, "READER_BAD_PARAMS",
                        "slide '%s': reader options: version %d, threads %d, batch %d, queue %d, backend %d",
                        id, o.version, o.threads, o.batch, o.queue, (int)o.backend);
  if (!(mpp0 > 0) || !isfinite(mpp0) || !(target_mpp > 0) || !isfinite(target_mpp) || size < 1 ||
      size > 16384)
    return ts_error_set(TS_EINVAL, "READER_BAD_PARAMS", "slide '%s': mpp0 %g, target mpp %g, size %d", id,
                        mpp0, target_mpp, size);
  r = calloc(1, sizeof *r);
  if (!r) return ts_error_set(TS_ENOMEM, "ENOMEM", "ts_reader_open: out of memory");
  pthread_mutex_init(&r->mu, NULL);
  pthread_mutex_init(&r->single_mu, NULL);
  pthread_cond_init(&r->cv_work, NULL);
  pthread_cond_init(&r->cv_done, NULL);
  r->o = o;
  r->mpp0 = mpp0;
  r->target = target_mpp;
  r->size = size;
  r->path = strdup(path);
  r->id = strdup(id);
  if (!r->path || !r->id) TS_FAIL(TS_ENOMEM, "ENOMEM", "ts_reader_open: out of memory");
  TS_TRY(ts_slide_open(path, id, &r->slide));

  /* Level: the rule of ts_slide_best_level, on the caller's mpp0. */
  int nl = ts_slide_level_count(r->slide);
  for (int l = 0; l < nl; l++) {
    double ds = ts_slide_level_downsample(r->slide, l);
    if (mpp0 * ds <= target_mpp * (1.0 + 1e-6) && ds >= ts_slide_level_downsample(r->slide, r->level))
      r->level = l;
  }
  r->ds = ts_slide_level_downsample(r->slide, r->level);
  ts_slide_level_dims(r->slide, r->level, &r->lw, &r->lh);
  double rl = (double)size * target_mpp / (mpp0 * r->ds);
  r->region = (int)ceil(rl - 1e-6);
  if (r->region < 1) r->region = 1;
  if (r->region > 65536)
    TS_FAIL(TS_EINVAL, "READER_BAD_PARAMS", "slide '%s': a %d px tile at %g um/px is %d px at level %d", id,
            size, target_mpp, r->region, r->level);
  r->tile_bytes = (size_t)size * (size_t)size * 3;

  r->backend = TS_READER_OPENSLIDE;
  if (o.backend == TS_READER_OPENSLIDE) {
    snprintf(r->reason, sizeof r->reason, "OpenSlide requested");
  } else if (fast_path_eligible(r, r->reason, sizeof r->reason)) {
    r->backend = TS_READER_VIPS_TIFF;
    r->reason[0] = 0;
  } else if (o.backend == TS_READER_VIPS_TIFF) {
    TS_FAIL(TS_EINPUT, "READER_NO_FAST_PATH", "slide '%s' (%s): no libvips fast path: %s", id, path,
            r->reason);
  }

  /* vips_resize must land on exactly size x size: check once here, not per tile. */
  if (r->region != size) {
    uint8_t *z = calloc((size_t)r->region * (size_t)r->region, 3), *t = malloc(r->tile_bytes);
    char m[200] = "";
    int k = (z && t) ? resize_tile(z, r->region, size, t, m, sizeof m) : -1;
    free(z);
    free(t);
    if (k < 0) TS_FAIL(TS_EINTERNAL, "READER_RESIZE", "slide '%s': %s", id, m);
  }
  TS_TRY(ctx_init(r, &r->single, r->slide));
  *out = r;
  r = NULL;
out:
  ts_reader_free(&r);
  return rc;
}

int ts_reader_read_tile(ts_reader *r, int64_t x, int64_t y, uint8_t *rgb_out) {
  if (!r || !rgb_out) return ts_error_set(TS_EINVAL, "EINVAL", "ts_reader_read_tile: NULL argument");
  const char *tok;
  char msg[512];
  pthread_mutex_lock(&r->single_mu);
  int rc = decode_tile(&r->single, x, y, rgb_out, &tok, msg, sizeof msg);
  pthread_mutex_unlock(&r->single_mu);
  if (rc < 0) {
    pthread_mutex_lock(&r->mu);
    r->bad++;
    pthread_mutex_unlock(&r->mu);
    const char *colon = strchr(msg, ':');
    return ts_error_set(rc, tok, "%s", colon ? colon + 2 : msg);
  }
  return 0;
}

/* ---- batches ------------------------------------------------------------------------------- */

static void *worker(void *arg) {
  dctx *c = arg;
  ts_reader *r = c->r;
  int B = r->o.batch, Q = r->o.queue;
  char msg[512], first_msg[512];
  pthread_mutex_lock(&r->mu);
  for (;;) {
    slot *s = NULL;
    while (!r->stopping && r->next_tile < r->n) {
      int64_t bi = r->next_tile / B;
      s = &r->slots[bi % Q];
      if (s->batch == bi) break;
      if (s->batch < 0) { /* free: its previous batch was released; set it up for bi */
        s->batch = bi;
        s->b.index = bi;
        s->b.first = bi * B;
        s->b.n = (int)(r->n - s->b.first < B ? r->n - s->b.first : B);
        s->b.coords = r->coords + 2 * s->b.first;
        s->b.n_bad = 0;
        s->b.first_error[0] = 0;
        s->first_bad = -1;
        s->remaining = s->b.n;
        break;
      }
      pthread_cond_wait(&r->cv_work, &r->mu);
    }
    if (r->stopping || r->next_tile >= r->n) break;
    /* A run of up to `chunk` consecutive tiles of this batch: neighbours share JPEG tiles, and
     * each context has its own tile cache. */
    int k0 = (int)(r->next_tile - s->b.first);
    int cnt = s->b.n - k0 < r->chunk ? s->b.n - k0 : r->chunk;
    r->next_tile += cnt;
    pthread_mutex_unlock(&r->mu);

    int bad = 0, first_bad = -1;
    for (int k = k0; k < k0 + cnt; k++) {
      const int64_t *xy = s->b.coords + 2 * k;
      const char *tok;
      int st = decode_tile(c, xy[0], xy[1], s->b.pixels + (size_t)k * r->tile_bytes, &tok, msg, sizeof msg);
      s->status[k] = st; /* this slot's k0..k0+cnt-1 are ours alone until counted down */
      s->token[k] = tok;
      if (st < 0) {
        bad++;
        if (first_bad < 0) {
          first_bad = k;
          snprintf(first_msg, sizeof first_msg, "%s", msg);
        }
      }
    }

    pthread_mutex_lock(&r->mu);
    s->b.n_bad += bad;
    r->bad += bad;
    if (first_bad >= 0 && (s->first_bad < 0 || first_bad < s->first_bad)) { /* first in tile order */
      s->first_bad = first_bad;
      snprintf(s->b.first_error, sizeof s->b.first_error, "%s", first_msg);
    }
    s->remaining -= cnt;
    if (s->remaining == 0) pthread_cond_broadcast(&r->cv_done);
  }
  pthread_mutex_unlock(&r->mu);
  if (c->reg) {
    g_object_unref(c->reg);
    c->reg = NULL;
  }
  vips_thread_shutdown();
  return NULL;
}

static void join_all(ts_reader *r) {
  for (int t = 0; t < r->nth_running; t++)
    pthread_join(r->th[t], NULL);
  r->nth_running = 0;
}

void ts_reader_stop(ts_reader *r) {
  if (!r) return;
  pthread_mutex_lock(&r->mu);
  r->stopping = true;
  pthread_cond_broadcast(&r->cv_work);
  pthread_mutex_unlock(&r->mu);
  join_all(r);
  pthread_mutex_lock(&r->mu);
  for (int q = 0; r->slots && q < r->o.queue; q++) {
    r->slots[q].batch = -1;
    r->slots[q].held = false;
  }
  r->stopping = false;
  r->n = r->next_tile = r->n_batches = r->next_batch = 0;
  pthread_mutex_unlock(&r->mu);
}

int ts_reader_start(ts_reader *r, const int64_t *coords, int64_t n) {
  int rc = 0;
  if (!r || n < 0 || (n > 0 && !coords))
    return ts_error_set(TS_EINVAL, "EINVAL", "ts_reader_start: bad arguments");
  pthread_mutex_lock(&r->mu);
  bool busy = r->next_batch < r->n_batches;
  pthread_mutex_unlock(&r->mu);
  if (busy)
    return ts_error_set(TS_EINVAL, "READER_BUSY", "slide '%s': a run is still going (%lld tiles)", r->id,
                        (long long)r->n);
  ts_reader_stop(r); /* joins the finished threads of the previous run */
  int B = r->o.batch, Q = r->o.queue, T = r->o.threads;
  if (!r->slots) {
    r->slots = calloc((size_t)Q, sizeof *r->slots);
    r->ctx = calloc((size_t)T, sizeof *r->ctx);
    r->th = calloc((size_t)T, sizeof *r->th);
    if (!r->slots || !r->ctx || !r->th)
      return ts_error_set(TS_ENOMEM, "ENOMEM", "ts_reader_start: out of memory");
    for (int q = 0; q < Q; q++) {
      slot *s = &r->slots[q];
      s->batch = -1;
      s->b.size = r->size;
      s->b.pixels = malloc((size_t)B * r->tile_bytes);
      s->status = calloc((size_t)B, sizeof *s->status);
      s->token = calloc((size_t)B, sizeof *s->token);
      s->b.status = s->status;
      s->b.token = s->token;
      if (!s->b.pixels || !s->status || !s->token)
        return ts_error_set(TS_ENOMEM, "ENOMEM", "ts_reader_start: %d batches of %d tiles", Q, B);
    }
    for (int t = 0; t < T; t++)
      TS_CALL(ctx_init(r, &r->ctx[t], NULL));
  }
  free(r->coords);
  r->coords = NULL;
  if (n > 0) {
    r->coords = malloc((size_t)n * 2 * sizeof *r->coords);
    if (!r->coords)
      return ts_error_set(TS_ENOMEM, "ENOMEM", "ts_reader_start: %lld coordinates", (long long)n);
    memcpy(r->coords, coords, (size_t)n * 2 * sizeof *coords);
  }
  pthread_mutex_lock(&r->mu);
  r->n = n;
  r->next_tile = 0;
  r->next_batch = 0;
  r->n_batches = (n + B - 1) / B;
  pthread_mutex_unlock(&r->mu);
  r->chunk = (B + T - 1) / T;
  int want = n > 0 ? (n < T ? (int)n : T) : 0;
  for (int t = 0; t < want; t++) {
    int e = pthread_create(&r->th[t], NULL, worker, &r->ctx[t]);
    if (e) {
      rc = ts_error_set(TS_EINTERNAL, "READER_THREAD", "slide '%s': pthread_create: %s", r->id, strerror(e));
      break;
    }
    r->nth_running++;
  }
  if (rc < 0) ts_reader_stop(r);
  return rc;
}

int ts_reader_next(ts_reader *r, ts_reader_batch **batch_out) {
  if (!r || !batch_out) return ts_error_set(TS_EINVAL, "EINVAL", "ts_reader_next: NULL argument");
  *batch_out = NULL;
  pthread_mutex_lock(&r->mu);
  if (r->next_batch >= r->n_batches) {
    pthread_mutex_unlock(&r->mu);
    return 0;
  }
  slot *s = &r->slots[r->next_batch % r->o.queue];
  if (s->held) {
    pthread_mutex_unlock(&r->mu);
    return ts_error_set(TS_EINVAL, "READER_BUSY", "slide '%s': %d batches held; release one first", r->id,
                        r->o.queue);
  }
  while (!(s->batch == r->next_batch && s->remaining == 0))
    pthread_cond_wait(&r->cv_done, &r->mu);
  s->held = true;
  r->next_batch++;
  pthread_mutex_unlock(&r->mu);
  *batch_out = &s->b;
  return 0;
}

void ts_reader_release(ts_reader *r, ts_reader_batch **b) {
  if (!r || !b || !*b) return;
  slot *s = (slot *)((char *)*b - offsetof(slot, b));
  pthread_mutex_lock(&r->mu);
  s->held = false;
  s->batch = -1;
  pthread_cond_broadcast(&r->cv_work);
  pthread_mutex_unlock(&r->mu);
  *b = NULL;
}

void ts_reader_free(ts_reader **rp) {
  if (!rp || !*rp) return;
  ts_reader *r = *rp;
  ts_reader_stop(r);
  for (int t = 0; r->ctx && t < r->o.threads; t++)
    ctx_clear(&r->ctx[t]);
  for (int q = 0; r->slots && q < r->o.queue; q++) {
    free(r->slots[q].b.pixels);
    free(r->slots[q].status);
    free(r->slots[q].token);
  }
  ctx_clear(&r->single); /* not owning r->slide */
  free(r->slots);
  free(r->ctx);
  free(r->th);
  free(r->coords);
  if (r->level_img) g_object_unref(r->level_img);
  ts_slide_free(&r->slide);
  pthread_mutex_destroy(&r->mu);
  pthread_mutex_destroy(&r->single_mu);
  pthread_cond_destroy(&r->cv_work);
  pthread_cond_destroy(&r->cv_done);
  free(r->path);
  free(r->id);
  free(r);
  *rp = NULL;
}

enum ts_reader_backend ts_reader_backend(const ts_reader *r) {
  return r->backend;
}
const char *ts_reader_backend_name(const ts_reader *r) {
  return r->backend == TS_READER_VIPS_TIFF ? "vips-tiff" : "openslide";
}
const char *ts_reader_backend_reason(const ts_reader *r) {
  return r->reason;
}
int ts_reader_level(const ts_reader *r) {
  return r->level;
}
double ts_reader_downsample(const ts_reader *r) {
  return r->ds;
}
int ts_reader_region_px(const ts_reader *r) {
  return r->region;
}
bool ts_reader_resizes(const ts_reader *r) {
  return r->region != r->size;
}
int ts_reader_tile_size(const ts_reader *r) {
  return r->size;
}
const ts_slide *ts_reader_slide(const ts_reader *r) {
  return r->slide;
}
int64_t ts_reader_bad_tiles(const ts_reader *r) {
  return r->bad;
}
int64_t ts_reader_fallback_tiles(const ts_reader *r) {
  return r->fallback;
}
