/* ts_reader.h — the tile reader: RGB tiles at a target pixel size, pulled by a stage in batches.
 *
 * The stage says *what* it wants (tiles of `size` px at `target_mpp`, top-left corners in level-0
 * px, as in tiles/<slide>.h5); the reader owns *how*: which pyramid level, which decoder, the
 * caches and the decoding threads (libvips regions habit: the consumer pulls, the producer owns).
 *
 *     ts_reader_opts o;
 *     ts_reader_opts_default(&o);
 *     o.threads = 2; o.batch = 32;
 *     ts_reader *r = NULL;
 *     if (ts_reader_open(path, "S0001", mpp0, 0.5, 224, &o, &r) < 0) return fail();
 *     printf("level %d, %s\n", ts_reader_level(r), ts_reader_backend_name(r)); // "vips-tiff"
 *     if (ts_reader_start(r, grid.coords, grid.n) < 0) return fail();
 *     ts_reader_batch *b;
 *     while (ts_reader_next(r, &b) == 0 && b) {        // NULL batch: all tiles delivered
 *       infer(b->pixels, b->n);                         // n x size x size x 3 uint8, NHWC
 *       for (int i = 0; i < b->n; i++)
 *         if (b->status[i] < 0) log_bad(b->coords[2*i], b->coords[2*i+1], b->token[i]);
 *       ts_reader_release(r, &b);
 *     }
 *     ts_reader_free(&r);
 *
 * Geometry (ARCHITECTURE.md "Geometry"). A tile is size x size px at target_mpp, i.e.
 * size_l0 = size * target_mpp / mpp0 level-0 px. It is read from level L = the coarsest level
 * whose mpp (mpp0 * downsample) is <= target_mpp (the rule of ts_slide_best_level, applied to
 * the caller's mpp0; level 0 when the slide is coarser than the target). At L the tile is the
 * square region R x R with R = ceil(size_l0 / ds_L) (1e-6 tolerance, so a level at exactly the
 * target reads R = size) whose top-left is (floor(x / ds_L), floor(y / ds_L)) in level-L px.
 * When R != size the region is resized to exactly size x size by vips_resize (kernel lanczos3,
 * libvips' defaults otherwise: for shrink factors above 2 a box pre-shrink, then a lanczos3
 * reduce in fixed point; deterministic, no threading inside). Region pixels outside the level
 * are white (255), as OpenSlide's transparent area composited over white in ts_slide.
 *
 * Backends. "vips-tiff": libvips tiffload of the level's TIFF page (libvips decodes and caches
 * the JPEG tiles; a region per decoding thread). Chosen when OpenSlide calls the slide "aperio" or
 * "generic-tiff" and every level is one tiled TIFF directory (top-level IFD chain) with 8-bit
 * contiguous 3-sample RGB or YCbCr pixels, compression none or JPEG, whose sizes match
 * OpenSlide's levels one to one. Everything else reads through OpenSlide ("openslide").
 * Both give the same pixels for the same tile (tests/test_reader.c checks bitwise equality on
 * synthetic and real Aperio slides), so the backend is an implementation detail; it is recorded
 * (ts_reader_backend_name) for provenance. OpenSlide is bitwise-equal only where
 * floor(x / ds_L) * ds_L is an integer (integral downsamples, always true at level 0): for a
 * fractional one OpenSlide itself interpolates the sub-pixel offset (cairo, bilinear): measured
 * max abs difference 5, about half the bytes off by a little, on fine Perlin texture at a level
 * with ds 8.025. The vips-tiff pixels are the level's own pixels, not interpolated.
 *
 * Errors. A tile that cannot be decoded does not stop the slide: its pixels are zeroed, its
 * status is negative and its token is "TILE_DECODE" (vips-tiff, after the OpenSlide fallback
 * failed as well) or "SLIDE_UNREADABLE" (OpenSlide). An OpenSlide handle is closed and reopened
 * after an error (its errors are sticky), so the next tiles read normally. On vips-tiff, a tile
 * whose decode fails — or that meets an all-zero TIFF tile, which is how libvips 8.14's tile
 * cache hands out a tile that failed before — is read again through OpenSlide (a per-thread
 * handle), which either gives the same pixels or the error; so a corrupt JPEG tile gives the
 * same bad tiles on both backends, at any thread count (test_reader_corrupt_tile). Open errors
 * carry ts_slide's tokens (SLIDE_MISSING, SLIDE_NOT_A_SLIDE, SLIDE_UNOPENABLE) or READER_BAD_PARAMS;
 * READER_NO_FAST_PATH when vips-tiff is forced on a slide that is not eligible.
 *
 * Threads. One reader serves one consumer thread (start/next/release from one thread). Decoding
 * runs on `threads` pthreads of the reader, `queue` batches ahead of the consumer. Batch content
 * is deterministic: batch k holds tiles k*B .. k*B+B-1 of the list given to ts_reader_start,
 * whatever the thread count. ts_reader_read_tile may be called from any thread (serialised).
 * The reader touches no HDF5.
 */
#ifndef TS_READER_H
#define TS_READER_H

#include <stdbool.h>
#include <stdint.h>

#include "ts_error.h"
#include "ts_slide.h"

typedef struct ts_reader ts_reader;

enum ts_reader_backend {
  TS_READER_AUTO = 0,      /* vips-tiff when eligible, else OpenSlide (default) */
  TS_READER_OPENSLIDE = 1, /* force OpenSlide */
  TS_READER_VIPS_TIFF = 2, /* force the libvips fast path; READER_NO_FAST_PATH if not eligible */
};

#define TS_READER_OPTS_VERSION 1

typedef struct ts_reader_opts {
  int version;                    /* TS_READER_OPTS_VERSION */
  int threads;                    /* decoding threads, 1..64; default 2 */
  int batch;                      /* tiles per batch B, 1..65536; default 32 */
  int queue;                      /* batches decoded ahead (bounded queue), 1..64; default 3 */
  enum ts_reader_backend backend; /* default TS_READER_AUTO */
} ts_reader_opts;

void ts_reader_opts_default(ts_reader_opts *o);

/* Open `path` (slide id `id` for messages) to read tiles of size x size px at target_mpp um/px;
 * mpp0 is the resolved level-0 um/px (ts_slide_resolve_mpp). opts NULL: defaults. The caller
 * must have initialised libvips (VIPS_INIT). Errors: see above; *out NULL on failure. */
int ts_reader_open(const char *path, const char *id, double mpp0, double target_mpp, int size,
                   const ts_reader_opts *opts, ts_reader **out);
/* Stops the decoding threads (if any), frees everything, sets *r = NULL. Accepts NULL. */
void ts_reader_free(ts_reader **r);

/* What the reader decided (constant after open). */
enum ts_reader_backend ts_reader_backend(const ts_reader *r); /* OPENSLIDE or VIPS_TIFF */
const char *ts_reader_backend_name(const ts_reader *r);       /* "openslide" or "vips-tiff" */
const char *ts_reader_backend_reason(const ts_reader *r);     /* why OpenSlide was chosen, "" */
int ts_reader_level(const ts_reader *r);                      /* L */
double ts_reader_downsample(const ts_reader *r);              /* ds_L (OpenSlide's) */
int ts_reader_region_px(const ts_reader *r);                  /* R: side read at level L */
bool ts_reader_resizes(const ts_reader *r);                   /* R != size */
int ts_reader_tile_size(const ts_reader *r);                  /* size */
const ts_slide *ts_reader_slide(const ts_reader *r);          /* geometry, mpp etc. */

/* Read one tile, top-left (x, y) in level-0 px, into rgb_out (size*size*3 bytes, row-major RGB).
 * Same pixels as the same tile in a batch. On a decode failure rgb_out is zeroed and the status
 * is negative with token TILE_DECODE or SLIDE_UNREADABLE; the reader stays usable. Thread-safe
 * (calls are serialised on one decoding context). */
int ts_reader_read_tile(ts_reader *r, int64_t x, int64_t y, uint8_t *rgb_out);

/* One batch, owned by the reader until ts_reader_release(). */
typedef struct ts_reader_batch {
  int64_t index;         /* batch number from 0 */
  int64_t first;         /* index of its first tile in the coords given to ts_reader_start */
  int n;                 /* tiles in the batch: B, the last one may have fewer */
  int size;              /* tile side px */
  uint8_t *pixels;       /* n x size x size x 3 uint8, NHWC, contiguous */
  const int64_t *coords; /* n x 2: x, y level-0 px */
  const int *status;     /* n: 0 or a negative TS_E* status */
  const char **token;    /* n: "" or the error token of that tile (static strings) */
  int n_bad;             /* tiles with status < 0 */
  char first_error[512]; /* message of the first bad tile, "" when none */
} ts_reader_batch;

/* Start decoding coords (n x 2 int64, x y level-0 px; copied) on the reader's threads. One
 * run at a time: READER_BUSY if a run is still going (ts_reader_stop() ends it early). */
int ts_reader_start(ts_reader *r, const int64_t *coords, int64_t n);
/* Wait for the next batch in order. *batch_out NULL (status 0) after the last one. At most
 * `queue` batches may be held (unreleased) at once: READER_BUSY otherwise. */
int ts_reader_next(ts_reader *r, ts_reader_batch **batch_out);
/* Give the batch's memory back to the reader (sets *b = NULL; NULL accepted). */
void ts_reader_release(ts_reader *r, ts_reader_batch **b);
/* Abandon the current run: joins the threads; batches still held become invalid. */
void ts_reader_stop(ts_reader *r);

/* Tiles marked bad and tiles that the vips-tiff path handed to OpenSlide, since open. */
int64_t ts_reader_bad_tiles(const ts_reader *r);
int64_t ts_reader_fallback_tiles(const ts_reader *r);

#endif
