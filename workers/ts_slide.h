/* ts_slide.h — one whole-slide image opened through OpenSlide, with its physical geometry.
 *
 *     ts_slide *s = NULL;
 *     if (ts_slide_open("/data/a.svs", "a", &s) < 0) puts(ts_error_message());
 *     if (ts_slide_resolve_mpp(s, 0.0, 0.0) < 0) puts(ts_error_message()); // SLIDE_NO_MPP
 *     printf("%s %.4f um/px (%s)\n", ts_slide_vendor(s), ts_slide_mpp(s), ts_slide_mpp_source(s));
 *     ts_slide_free(&s);
 *
 * Coordinates are level-0 pixels unless a name says otherwise; pixel sizes are micrometres per
 * pixel (mpp). Error tokens (see ts_error.h):
 *   SLIDE_MISSING       the file does not exist or cannot be read
 *   SLIDE_NOT_A_SLIDE   OpenSlide does not recognise the format
 *   SLIDE_UNOPENABLE    OpenSlide recognises it but opening fails
 *   SLIDE_UNREADABLE    a read of pixels failed (the handle is then in error: sticky)
 *   SLIDE_NO_MPP        (from ts_slide_resolve_mpp) no pixel size from file, cohort or config
 * Thread safety: reads may run from several threads (OpenSlide handles are thread-safe), but
 * an error is sticky for the handle until ts_slide_reopen().
 */
#ifndef TS_SLIDE_H
#define TS_SLIDE_H

#include <stdbool.h>
#include <stdint.h>

#include "ts_error.h"

typedef struct ts_slide ts_slide;

enum ts_mpp_source { TS_MPP_NONE = 0, TS_MPP_FILE, TS_MPP_COHORT, TS_MPP_CONFIG };

/* Open path. id is the slide id used in messages. Never returns a handle in error:
 * on failure *out is NULL and the status is negative with one of the tokens above. */
int ts_slide_open(const char *path, const char *id, ts_slide **out);
void ts_slide_free(ts_slide **s);

const char *ts_slide_id(const ts_slide *s);
const char *ts_slide_path(const ts_slide *s);
const char *ts_slide_vendor(const ts_slide *s);    /* "aperio", "generic-tiff", ... */
const char *ts_slide_quickhash(const ts_slide *s); /* openslide.quickhash-1, "" if none */
int ts_slide_level_count(const ts_slide *s);
/* Level size in px of that level; -1 × -1 (and downsample -1) for a level out of range. */
void ts_slide_level_dims(const ts_slide *s, int level, int64_t *w_out, int64_t *h_out);
double ts_slide_level_downsample(const ts_slide *s, int level);
double ts_slide_objective_power(const ts_slide *s); /* 0 when unknown */
/* Pixel size stored in the file (mean of mpp-x and mpp-y), 0 when absent. */
double ts_slide_file_mpp(const ts_slide *s);

/* Decide the level-0 mpp: the file's, else cohort_mpp (>0), else config_mpp (>0), else fail
 * with SLIDE_NO_MPP naming the slide and what the user can do. Afterwards ts_slide_mpp()
 * and ts_slide_mpp_source() answer. */
int ts_slide_resolve_mpp(ts_slide *s, double cohort_mpp, double config_mpp);
double ts_slide_mpp(const ts_slide *s);
enum ts_mpp_source ts_slide_mpp_source_enum(const ts_slide *s);
const char *ts_slide_mpp_source(const ts_slide *s); /* "file", "cohort", "config", "none" */

/* The level to read for a target pixel size: the coarsest level whose mpp is <= target_mpp
 * (at or above the target resolution), level 0 if none. Needs a resolved mpp. */
int ts_slide_best_level(const ts_slide *s, double target_mpp);

/* Read a w×h region at `level`, top-left (x, y) in level-0 px, into rgb_out (w*h*3 bytes,
 * row-major RGB). OpenSlide's premultiplied ARGB is composited over white, so areas outside
 * the scan (alpha 0) read as white glass, not black. Large reads are done in row strips.
 * On failure the buffer is zeroed, the status is SLIDE_UNREADABLE and the handle stays
 * in error until ts_slide_reopen(): every later read fails the same way (OpenSlide's
 * sticky error). */
int ts_slide_read_rgb(ts_slide *s, int level, int64_t x, int64_t y, int w, int h, uint8_t *rgb_out);
/* Close and reopen the OpenSlide handle (its errors are sticky). Errors as ts_slide_open. */
int ts_slide_reopen(ts_slide *s);

#endif
