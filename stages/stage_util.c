/* stage_util.c — see stage_util.h. */
#include "stage_util.h"

#include <hdf5.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "h5util.h"
#include "ts_encoder.h"
#include "ts_error.h"
#include "ts_heatmap.h"
#include "ts_io.h"
#include "ts_slide.h"
#include "ts_tissue.h"

void ts__stage_jnum(FILE *f, double v, const char *fmt) {
  if (isfinite(v)) fprintf(f, fmt, v);
  else fputs("null", f);
}

void ts__stage_jpair(FILE *f, double a, double b) {
  fputc('[', f);
  ts__stage_jnum(f, a, "%.17g");
  fputs(", ", f);
  ts__stage_jnum(f, b, "%.17g");
  fputc(']', f);
}

int ts__stage_write_output(const ts_run *run, const char *rel, const char *text, size_t len, ts_unit_record *rec) {
  char path[TS_PATH_MAX];
  TS_CALL(ts_run_path(run, rel, path, sizeof path));
  TS_CALL(ts_io_write_atomic(path, text, len));
  return ts_unit_add_output(rec, rel);
}

int ts__stage_read_json(const ts_run *run, const char *rel, ts_json *out) {
  char path[TS_PATH_MAX], *text = NULL;
  memset(out, 0, sizeof *out);
  int rc = ts_run_path(run, rel, path, sizeof path) < 0 || ts_io_read_all(path, &text, NULL) < 0 || ts_json_parse(text, out) < 0 ? -1 : 0;
  free(text);
  ts_error_clear();
  return rc;
}

int ts__stage_write_summary(const ts_run *run, const char *stage, const char *csv, const char *json) {
  char rel[256], path[TS_PATH_MAX];
  TS_CALL(ts_run_path(run, stage, path, sizeof path));
  TS_CALL(ts_io_mkdirs(path, 0755));
  snprintf(rel, sizeof rel, "%s/summary.csv", stage);
  TS_CALL(ts_run_path(run, rel, path, sizeof path));
  TS_CALL(ts_io_write_atomic(path, csv, strlen(csv)));
  snprintf(rel, sizeof rel, "%s/summary.json", stage);
  TS_CALL(ts_run_path(run, rel, path, sizeof path));
  TS_CALL(ts_io_write_atomic(path, json, strlen(json)));
  fprintf(stderr, "%s: summary in %s (and summary.csv)\n", stage, path);
  return 0;
}

void ts__stage_bag_clear(ts__stage_bag *b) {
  free(b->x);
  free(b->xy);
  memset(b, 0, sizeof *b);
}

int ts__stage_read_bag(const ts_run *run, const char *features_dir, const char *slide, const char *tok, ts__stage_bag *b) {
  char rel[1024], tag[256], path[TS_PATH_MAX];
  memset(b, 0, sizeof *b);
  /* any rank: the feature file's name is the extract stage's; no ledger here */
  if (features_dir && features_dir[0]) {
    snprintf(rel, sizeof rel, "%s.h5", slide);
    TS_CALL(ts_io_join(features_dir, rel, path, sizeof path));
  } else {
    ts_encoder_tag(run->cfg->extract.encoder, tag, sizeof tag);
    snprintf(rel, sizeof rel, "features/%s/%s.h5", tag, slide);
    TS_CALL(ts_run_path(run, rel, path, sizeof path));
  }
  char t_missing[64], t_bad[64], t_empty[64];
  snprintf(t_missing, sizeof t_missing, "%s_FEATURES_MISSING", tok);
  snprintf(t_bad, sizeof t_bad, "%s_FEATURES_BAD", tok);
  snprintf(t_empty, sizeof t_empty, "%s_EMPTY_BAG", tok);
  ts__h5_quiet();
  int rc = 0;
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), d = -1, sp = -1;
  if (f < 0) {
    if (!ts_io_exists(path)) return ts_error_set(TS_EINPUT, t_missing, "slide %s: no feature file %s", slide, path);
    return ts__h5_fail(TS_EINPUT, t_bad, "slide %s: %s is not a readable HDF5 file (truncated?)", slide, path);
  }
  hsize_t dims[2] = {0, 0};
  if ((d = H5Dopen2(f, "features", H5P_DEFAULT)) < 0 || (sp = H5Dget_space(d)) < 0 || H5Sget_simple_extent_ndims(sp) != 2 ||
      H5Sget_simple_extent_dims(sp, dims, NULL) < 0) {
    rc = ts_error_set(TS_EINPUT, t_bad, "slide %s: %s has no N x D 'features'", slide, path);
    goto out;
  }
  b->n = (int64_t)dims[0];
  b->d = (int64_t)dims[1];
  b->x = malloc(sizeof *b->x * (size_t)(b->n * b->d + 1));
  b->xy = malloc(sizeof *b->xy * (size_t)(b->n * 2 + 2));
  if (!b->x || !b->xy) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "slide %s: %lld x %lld features", slide, (long long)b->n, (long long)b->d);
  if (b->n && H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, b->x) < 0) {
    rc = ts_error_set(TS_EINPUT, t_bad, "slide %s: %s: features unreadable (truncated?)", slide, path);
    goto out;
  }
  H5Sclose(sp);
  sp = -1;
  H5Dclose(d);
  d = -1;
  if ((d = H5Dopen2(f, "coords", H5P_DEFAULT)) < 0 || (b->n && H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, b->xy) < 0)) {
    rc = ts_error_set(TS_EINPUT, t_bad, "slide %s: %s: coords unreadable", slide, path);
    goto out;
  }
  if (ts__h5_read_attr_i64(d, "patch_size_level0", &b->tile_l0) < 0) { /* TRIDENT's name; tessera writes it too */
    b->tile_l0 = 0;
    ts_error_clear();
  }
  if (b->n == 0) rc = ts_error_set(TS_EINPUT, t_empty, "slide %s: %s holds no tile", slide, path);
out:
  if (sp >= 0) H5Sclose(sp);
  if (d >= 0) H5Dclose(d);
  H5Fclose(f);
  if (rc < 0) ts__stage_bag_clear(b);
  return rc;
}

int ts__stage_heatmap(const ts_run *run, const char *dir_rel, const char *slide, const int64_t *xy, int64_t n, int64_t tile_l0,
                      const float *att, FILE *manifest, int *n_maps, int *n_missing) {
  const ts_cohort_row *row = ts_cohort_find(run->cohort, slide);
  ts_slide *s = NULL;
  ts_mask m;
  memset(&m, 0, sizeof m);
  if (!row || tile_l0 <= 0 || ts_slide_open(row->path, slide, &s) < 0) {
    ts_error_clear();
    (*n_missing)++;
    fprintf(manifest, "missing  %s (the slide file or its tile geometry is not at hand)\n", slide);
    return 0;
  }
  char rel[1024], mpath[TS_PATH_MAX], png[TS_PATH_MAX], top[TS_PATH_MAX], dir[TS_PATH_MAX];
  int rc = 0;
  snprintf(rel, sizeof rel, "tissue/%s.h5", slide);
  bool have_mask = ts_run_path(run, rel, mpath, sizeof mpath) >= 0 && ts_io_exists(mpath) && ts_mask_load_h5(mpath, &m) >= 0;
  ts_error_clear();
  snprintf(rel, sizeof rel, "%s/heatmaps", dir_rel);
  TS_TRY(ts_run_path(run, rel, dir, sizeof dir));
  TS_TRY(ts_io_mkdirs(dir, 0755));
  snprintf(rel, sizeof rel, "%s/heatmaps/%s.png", dir_rel, slide);
  TS_TRY(ts_run_path(run, rel, png, sizeof png));
  snprintf(rel, sizeof rel, "%s/heatmaps/%s.top.png", dir_rel, slide);
  TS_TRY(ts_run_path(run, rel, top, sizeof top));
  ts_heatmap_opts o;
  ts_heatmap_opts_default(&o);
  TS_TRY(ts_heatmap_png(s, have_mask ? &m : NULL, xy, n, tile_l0, att, &o, png, top));
  for (int k = 0; k < 2; k++) {
    char sum[65];
    int64_t bytes = 0;
    TS_TRY(ts_io_sha256_file(k ? top : png, sum, &bytes));
    fprintf(manifest, "%s  heatmaps/%s%s\n", sum, slide, k ? ".top.png" : ".png");
  }
  (*n_maps)++;
out:
  ts_mask_clear(&m);
  ts_slide_free(&s);
  return rc;
}

uint64_t ts__stage_mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t ts__stage_str_hash(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

int ts__stage_state_clone(const ts_nn_state *src, ts_nn_state **out) {
  *out = NULL;
  ts_nn_state *dst = NULL;
  TS_CALL(ts_nn_state_new(&dst));
  int rc = 0;
  for (int i = 0; rc >= 0 && i < ts_nn_state_count(src); i++) {
    ts_tensor *d = NULL, *c = NULL;
    if ((rc = ts_tensor_detach(ts_nn_state_tensor(src, i), &d)) >= 0 && (rc = ts_tensor_clone(d, &c)) >= 0)
      rc = ts_nn_state_add(dst, ts_nn_state_name(src, i), c);
    ts_tensor_free(&d);
    ts_tensor_free(&c);
  }
  if (rc < 0) ts_nn_state_free(&dst);
  *out = dst;
  return rc;
}
