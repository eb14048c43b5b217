/* stage_util.h — small helpers the sharded model stages (mil.c, survival.c) share: private to
 * stages/ (the double underscore), not part of the stage API. */
#ifndef TS_STAGE_UTIL_H
#define TS_STAGE_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ts_json.h"
#include "ts_nn.h"
#include "ts_stage.h"

/* A number in FMT, or null where JSON has none (NaN, inf). */
void ts__stage_jnum(FILE *f, double v, const char *fmt);
/* [a, b] as two such numbers (%.17g): a confidence interval. */
void ts__stage_jpair(FILE *f, double a, double b);
/* Write TEXT to the run-relative REL atomically and name it an output of the unit. */
int ts__stage_write_output(const ts_run *run, const char *rel, const char *text, size_t len, ts_unit_record *rec);
/* Parse the run-relative JSON file REL into *out (ts_json_clear it); -1 (no error kept) when
 * absent or not JSON: a fold that failed or did not run. */
int ts__stage_read_json(const ts_run *run, const char *rel, ts_json *out);
/* <stage>/summary.csv and <stage>/summary.json, atomically, and the line that says where. */
int ts__stage_write_summary(const ts_run *run, const char *stage, const char *csv, const char *json);

/* splitmix64 (epoch orders, per-unit seeds) and FNV-1a of a string. */
uint64_t ts__stage_mix64(uint64_t x);
uint64_t ts__stage_str_hash(const char *s);
/* A detached copy of every tensor of src (a model's best epoch), in a new state *out. */
int ts__stage_state_clone(const ts_nn_state *src, ts_nn_state **out);

/* A slide's bag: the extract stage's features of its tiles and their level-0 coordinates. */
typedef struct ts__stage_bag {
  float *x;        /* N x D (float16 files read as float32) */
  int64_t *xy;     /* N x 2 level-0 coords */
  int64_t n, d;
  int64_t tile_l0; /* tile side in level-0 px (coords' patch_size_level0), 0 unknown */
} ts__stage_bag;
void ts__stage_bag_clear(ts__stage_bag *b);
/* <features_dir>/<slide>.h5 (features_dir NULL or "": the run's features/<encoder tag>/) into *b.
 * Tokens TOK_FEATURES_MISSING, TOK_FEATURES_BAD, TOK_EMPTY_BAG (TS_EINPUT), TOK = "MIL", "SURV". */
int ts__stage_read_bag(const ts_run *run, const char *features_dir, const char *slide, const char *tok, ts__stage_bag *b);
/* The attention heatmap of one slide (percentiles of att over its n tiles at xy, on its thumbnail
 * inside its tissue mask, and its top tiles) as <dir_rel>/heatmaps/<slide>.png and .top.png, each
 * listed with its SHA-256 in manifest; without the slide file or its tile geometry the manifest
 * says "missing" and *n_missing counts it (not an error). */
int ts__stage_heatmap(const ts_run *run, const char *dir_rel, const char *slide, const int64_t *xy, int64_t n, int64_t tile_l0,
                      const float *att, FILE *manifest, int *n_maps, int *n_missing);

#endif
