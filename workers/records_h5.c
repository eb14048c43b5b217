/* records_h5.c — HDF5 side of the records stage: the partial statistics of one row block, and
 * one table's group in records.h5 (layout in ts_records.h, ts_rec_h5_write_table).
 *
 * Partials are tiny HDF5 files rather than a raw binary so that a person can open one with
 * h5py; they carry the SHA-256 of the CSV they were computed from, and the reader refuses a
 * partial of other bytes (a CSV edited after its blocks were recorded done). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h5util.h"
#include "ts_io.h"
#include "ts_records.h"

#define H5FAIL(...)                                       \
  do {                                                    \
    rc = ts__h5_fail(TS_EIO, "H5_WRITE", __VA_ARGS__);    \
    goto out;                                             \
  } while (0)

static hid_t gcpl_new(void) {
  hid_t p = H5Pcreate(H5P_GROUP_CREATE);
  if (p >= 0 && H5Pset_obj_track_times(p, 0) < 0) {
    H5Pclose(p);
    return -1;
  }
  return p;
}

static hid_t str_type(void) {
  hid_t t = H5Tcopy(H5T_C_S1);
  if (t >= 0 && (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0)) {
    H5Tclose(t);
    return -1;
  }
  return t;
}

/* 1-D dataset of n items (n may be 0). */
static int write_1d(hid_t loc, const char *name, hid_t ftype, hid_t mtype, const void *buf, int64_t n) {
  int rc = 0;
  hsize_t d = (hsize_t)n;
  hid_t sp = H5Screate_simple(1, &d, NULL), dcpl = ts__h5_dcpl(0, 0, 0, 0), ds = -1;
  if (sp < 0 || dcpl < 0) {
    rc = ts__h5_fail(TS_EIO, "H5_WRITE", "dataset %s: dataspace", name);
    goto out;
  }
  ds = H5Dcreate2(loc, name, ftype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  if (ds < 0) rc = ts__h5_fail(TS_EIO, "H5_WRITE", "dataset %s: create", name);
  else if (n > 0 && H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
    rc = ts__h5_fail(TS_EIO, "H5_WRITE", "dataset %s: write", name);
out:
  if (ds >= 0) H5Dclose(ds);
  if (dcpl >= 0) H5Pclose(dcpl);
  if (sp >= 0) H5Sclose(sp);
  return rc;
}

static int write_strs(hid_t loc, const char *name, const char *const *s, int64_t n) {
  hid_t t = str_type();
  if (t < 0) return ts__h5_fail(TS_EIO, "H5_WRITE", "%s: string type", name);
  int rc = write_1d(loc, name, t, t, s, n);
  H5Tclose(t);
  return rc;
}

/* String-array attribute (h5py reads an array of str). */
static int attr_strs(hid_t loc, const char *name, const char *const *s, int n) {
  int rc = 0;
  hsize_t d = (hsize_t)n;
  hid_t t = str_type(), sp = H5Screate_simple(1, &d, NULL), a = -1;
  if (t < 0 || sp < 0) {
    rc = ts__h5_fail(TS_EIO, "H5_WRITE", "attribute %s: type", name);
    goto out;
  }
  a = H5Acreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
  if (a < 0 || (n > 0 && H5Awrite(a, t, s) < 0)) rc = ts__h5_fail(TS_EIO, "H5_WRITE", "attribute %s", name);
out:
  if (a >= 0) H5Aclose(a);
  if (sp >= 0) H5Sclose(sp);
  if (t >= 0) H5Tclose(t);
  return rc;
}

/* ------------------------------------------------------------------ partials -- */

int ts_rec_partial_write(const char *path, const ts_rec_table *t, int64_t block, int64_t r0, int64_t r1,
                         const ts_rec_stats *s) {
  char tmp[TS_PATH_MAX];
  TS_CALL(ts_io_tmp_path(path, tmp, sizeof tmp));
  int rc = 0;
  hid_t f = ts__h5_create(tmp);
  if (f < 0) return ts__h5_fail(TS_EIO, "H5_WRITE", "%s: create", tmp);
  int nc = s->ncols > 0 ? s->ncols : 0;
  TS_TRY(ts__h5_attr_str(f, "table", t->name));
  TS_TRY(ts__h5_attr_str(f, "source_sha256", t->sha256));
  TS_TRY(ts__h5_attr_i64(f, "block", block));
  TS_TRY(ts__h5_attr_i64(f, "row_first", r0));
  TS_TRY(ts__h5_attr_i64(f, "row_end", r1));
  TS_TRY(ts__h5_attr_i64(f, "rows", s->rows));
  TS_TRY(write_1d(f, "n", H5T_STD_I64LE, H5T_NATIVE_INT64, s->n, nc));
  TS_TRY(write_1d(f, "missing", H5T_STD_I64LE, H5T_NATIVE_INT64, s->missing, nc));
  TS_TRY(write_1d(f, "mean", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, s->mean, nc));
  TS_TRY(write_1d(f, "m2", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, s->m2, nc));
  TS_TRY(write_1d(f, "shift", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, s->shift, nc));
  TS_TRY(write_1d(f, "smean", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, s->smean, nc));
  TS_TRY(write_1d(f, "cat_counts", H5T_STD_I64LE, H5T_NATIVE_INT64, s->cat_counts, s->n_cat));
out:
  if (H5Fclose(f) < 0 && rc == 0) rc = ts__h5_fail(TS_EIO, "H5_WRITE", "%s: close", tmp);
  if (rc == 0) rc = ts_io_commit(tmp, path);
  if (rc < 0) remove(tmp);
  return rc;
}

static int read_1d(hid_t f, const char *name, hid_t mtype, void *buf, int64_t n) {
  hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
  if (ds < 0) return ts__h5_fail(TS_EIO, "H5_READ", "dataset %s missing", name);
  int rc = 0;
  hid_t sp = H5Dget_space(ds);
  hsize_t d = 0;
  if (sp < 0 || H5Sget_simple_extent_ndims(sp) != 1 || H5Sget_simple_extent_dims(sp, &d, NULL) < 0 || (int64_t)d != n)
    rc = ts_error_set(TS_EINPUT, "RECORDS_STALE", "dataset %s has %lld items, want %lld", name, (long long)d, (long long)n);
  else if (n > 0 && H5Dread(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
    rc = ts__h5_fail(TS_EIO, "H5_READ", "dataset %s", name);
  if (sp >= 0) H5Sclose(sp);
  H5Dclose(ds);
  return rc;
}

int ts_rec_partial_read(const char *path, const ts_rec_table *t, ts_rec_stats *out) {
  TS_CALL(ts_rec_stats_init(out, t->ncols, t->n_cat));
  ts__h5_quiet();
  int rc = 0;
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) {
    ts_rec_stats_clear(out);
    return ts__h5_fail(TS_EIO, "RECORDS_PARTIAL_MISSING", "%s: cannot open", path);
  }
  hid_t a = H5Aopen(f, "source_sha256", H5P_DEFAULT), st = str_type();
  char *sha = NULL;
  if (a < 0 || st < 0 || H5Aread(a, st, &sha) < 0) rc = ts__h5_fail(TS_EIO, "H5_READ", "%s: source_sha256", path);
  if (rc == 0 && (!sha || strcmp(sha, t->sha256)))
    rc = ts_error_set(TS_EINPUT, "RECORDS_STALE", "%s was computed from other bytes of %s than are there now (the CSV changed after its blocks were recorded done): rerun with a new run.dir", path, t->path);
  if (sha) H5free_memory(sha);
  if (a >= 0) H5Aclose(a);
  if (st >= 0) H5Tclose(st);
  if (rc < 0) goto out;
  TS_TRY(ts__h5_read_attr_i64(f, "rows", &out->rows));
  TS_TRY(read_1d(f, "n", H5T_NATIVE_INT64, out->n, t->ncols));
  TS_TRY(read_1d(f, "missing", H5T_NATIVE_INT64, out->missing, t->ncols));
  TS_TRY(read_1d(f, "mean", H5T_NATIVE_DOUBLE, out->mean, t->ncols));
  TS_TRY(read_1d(f, "m2", H5T_NATIVE_DOUBLE, out->m2, t->ncols));
  TS_TRY(read_1d(f, "shift", H5T_NATIVE_DOUBLE, out->shift, t->ncols));
  TS_TRY(read_1d(f, "smean", H5T_NATIVE_DOUBLE, out->smean, t->ncols));
  TS_TRY(read_1d(f, "cat_counts", H5T_NATIVE_INT64, out->cat_counts, t->n_cat));
out:
  H5Fclose(f);
  if (rc < 0) ts_rec_stats_clear(out);
  return rc;
}

/* ------------------------------------------------------------------ records.h5 */

int ts_rec_h5_write_table(int64_t file, const ts_rec_h5_table *o) {
  const ts_rec_table *t = o->t;
  int rc = 0;
  hid_t gcpl = gcpl_new(), g = -1, sp = -1, dcpl = -1, ds = -1;
  float *vals = NULL;
  char **names = NULL, **ids = NULL, *namebuf = NULL, **numnames = NULL;
  double *offset = NULL, *scale = NULL, *nmean = NULL, *nstd = NULL;
  int64_t *ncount = NULL, *nmiss = NULL, *lines = NULL;
  char **fields = NULL;
  if (gcpl < 0) return ts__h5_fail(TS_EIO, "H5_WRITE", "group property list");
  g = H5Gcreate2(file, o->name, H5P_DEFAULT, gcpl, H5P_DEFAULT);
  if (g < 0) H5FAIL("group %s", o->name);
  TS_TRY(ts__h5_attr_str(g, "source", o->source));
  TS_TRY(ts__h5_attr_str(g, "schema", o->schema_text));
  if (o->error) {
    /* the table could not be read or its header does not fit the schema: say so, no data */
    TS_TRY(ts__h5_attr_str(g, "error", o->error));
    goto out;
  }
  TS_TRY(ts__h5_attr_str(g, "error", ""));
  TS_TRY(ts__h5_attr_str(g, "source_sha256", t->sha256));
  TS_TRY(ts__h5_attr_str(g, "ignored_columns", t->ignored));
  TS_TRY(ts__h5_attr_i64(g, "block_rows", o->block_rows));
  TS_TRY(ts__h5_attr_i64(g, "rows_in_source", t->nrows));
  TS_TRY(ts__h5_attr_i64(g, "std_ddof", 0));
  const ts_rec_stats *st = o->stats;

  /* output columns: a numeric column is one z-scored column, a categorical one a one-hot
   * column per level; values = (x - offset) / scale for every column */
  int nout = 0, nnum = 0;
  for (int j = 0; j < t->ncols; j++) {
    if (t->cols[j].type == TS_REC_CAT) nout += t->schema->f[t->cols[j].field].n_levels;
    else nout++, nnum++;
  }
  size_t nb = 1;
  for (int j = 0; j < t->ncols; j++) {
    const ts_rec_field *f = &t->schema->f[t->cols[j].field];
    nb += strlen(t->cols[j].name) + 2;
    for (int k = 0; k < f->n_levels; k++) nb += strlen(t->cols[j].name) + strlen(f->levels[k]) + 2;
  }
  int cn = nout ? nout : 1, nn = nnum ? nnum : 1;
  names = calloc((size_t)cn, sizeof *names);
  namebuf = malloc(nb);
  offset = calloc((size_t)cn, sizeof *offset);
  scale = calloc((size_t)cn, sizeof *scale);
  numnames = calloc((size_t)nn, sizeof *numnames);
  nmean = calloc((size_t)nn, sizeof *nmean);
  nstd = calloc((size_t)nn, sizeof *nstd);
  ncount = calloc((size_t)nn, sizeof *ncount);
  nmiss = calloc((size_t)nn, sizeof *nmiss);
  if (!names || !namebuf || !offset || !scale || !numnames || !nmean || !nstd || !ncount || !nmiss)
    TS_FAIL(TS_ENOMEM, "OUT_OF_MEMORY", "records.h5 columns");
  char *w = namebuf;
  int oc = 0, ni = 0;
  for (int j = 0; j < t->ncols; j++) {
    const ts_rec_col *c = &t->cols[j];
    const ts_rec_field *f = &t->schema->f[c->field];
    if (c->type == TS_REC_CAT) {
      for (int k = 0; k < f->n_levels; k++) {
        names[oc] = w;
        w += sprintf(w, "%s=%s", c->name, f->levels[k]) + 1;
        offset[oc] = 0;
        scale[oc++] = 1;
      }
      continue;
    }
    double mean = st->n[j] ? st->mean[j] : NAN, sd = st->n[j] ? sqrt(st->m2[j] / (double)st->n[j]) : NAN;
    names[oc] = w;
    w += sprintf(w, "%s", c->name) + 1;
    offset[oc] = mean;
    scale[oc++] = sd > 0 ? sd : 1; /* a constant column becomes 0, not NaN */
    numnames[ni] = names[oc - 1];
    nmean[ni] = mean;
    nstd[ni] = sd;
    ncount[ni] = st->n[j];
    nmiss[ni++] = st->missing[j];
  }

  /* values of the kept rows */
  int64_t n = o->n_rows;
  vals = malloc((size_t)(n ? n : 1) * (size_t)cn * sizeof *vals);
  ids = calloc((size_t)(n ? n : 1), sizeof *ids);
  lines = calloc((size_t)(n ? n : 1), sizeof *lines);
  if (!vals || !ids || !lines) TS_FAIL(TS_ENOMEM, "OUT_OF_MEMORY", "records.h5 values");
  for (int64_t i = 0; i < n; i++) {
    int64_t r = o->rows[i];
    int nf = 0;
    TS_TRY(ts_rec_row_fields(t, r, &fields, &nf));
    ids[i] = strdup(fields[t->id_csv]);
    lines[i] = t->row_line[r];
    if (!ids[i]) TS_FAIL(TS_ENOMEM, "OUT_OF_MEMORY", "ids");
    float *v = vals + (size_t)i * (size_t)cn;
    int q = 0;
    for (int j = 0; j < t->ncols; j++) {
      double x;
      int lv;
      TS_TRY(ts_rec_cell(t, j, fields[t->cols[j].csv], t->row_line[r], &x, &lv));
      if (t->cols[j].type == TS_REC_CAT) {
        int nl = t->schema->f[t->cols[j].field].n_levels;
        for (int k = 0; k < nl; k++) v[q + k] = lv < 0 ? NAN : (float)(k == lv);
        q += nl;
      } else {
        v[q] = (float)((x - offset[q]) / scale[q]);
        q++;
      }
    }
    free(fields);
    fields = NULL;
  }
  TS_TRY(write_strs(g, "patient_id", (const char *const *)ids, n));
  TS_TRY(write_1d(g, "line", H5T_STD_I64LE, H5T_NATIVE_INT64, lines, n));
  hsize_t d2[2] = {(hsize_t)n, (hsize_t)nout};
  sp = H5Screate_simple(2, d2, NULL);
  dcpl = ts__h5_dcpl(0, 0, 0, 0);
  if (sp < 0 || dcpl < 0) H5FAIL("values: dataspace");
  ds = H5Dcreate2(g, "values", H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  if (ds < 0) H5FAIL("values: create");
  if (n > 0 && nout > 0 && H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, vals) < 0)
    H5FAIL("values: write");
  /* column names: a dataset always; also an attribute of values while it stays small
   * (HDF5 1.10 keeps attributes in the 64 KiB object header) */
  TS_TRY(write_strs(g, "columns", (const char *const *)names, nout));
  if (nout <= 2000) TS_TRY(attr_strs(ds, "columns", (const char *const *)names, nout));
  TS_TRY(write_1d(g, "offset", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, offset, nout));
  TS_TRY(write_1d(g, "scale", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, scale, nout));
  /* statistics of the numeric source columns, and the level counts of the categorical ones */
  TS_TRY(write_strs(g, "numeric_columns", (const char *const *)numnames, nnum));
  TS_TRY(write_1d(g, "mean", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, nmean, nnum));
  TS_TRY(write_1d(g, "std", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, nstd, nnum));
  TS_TRY(write_1d(g, "count", H5T_STD_I64LE, H5T_NATIVE_INT64, ncount, nnum));
  TS_TRY(write_1d(g, "missing", H5T_STD_I64LE, H5T_NATIVE_INT64, nmiss, nnum));
  if (nnum <= 2000) {
    TS_TRY(ts__h5_attr_f64v(g, "mean", nmean, nnum));
    TS_TRY(ts__h5_attr_f64v(g, "std", nstd, nnum));
  }
  for (int j = 0; j < t->ncols; j++) {
    const ts_rec_col *c = &t->cols[j];
    if (c->type != TS_REC_CAT) continue;
    const ts_rec_field *f = &t->schema->f[c->field];
    char an[600];
    snprintf(an, sizeof an, "levels:%s", c->name);
    TS_TRY(attr_strs(g, an, (const char *const *)f->levels, f->n_levels));
    snprintf(an, sizeof an, "counts:%s", c->name);
    TS_TRY(ts__h5_attr_i64v(g, an, st->cat_counts + c->cat_off, f->n_levels));
  }
  /* what is not there, and why */
  TS_TRY(write_strs(g, "failed_blocks", o->failed_blocks, o->n_failed_blocks));
  TS_TRY(write_strs(g, "missing_patient_id", o->missing_ids, o->n_missing_ids));
  TS_TRY(write_strs(g, "patients_without_slides", o->patients_without_slides, o->n_patients_without_slides));
  TS_TRY(write_strs(g, "slides_without_patient", o->slides_without_patient, o->n_slides_without_patient));
out:
  for (int64_t i = 0; ids && i < o->n_rows; i++) free(ids[i]);
  free(ids);
  free(fields);
  free(lines);
  free(vals);
  free(names);
  free(namebuf);
  free(offset);
  free(scale);
  free(numnames);
  free(nmean);
  free(nstd);
  free(ncount);
  free(nmiss);
  if (ds >= 0) H5Dclose(ds);
  if (dcpl >= 0) H5Pclose(dcpl);
  if (sp >= 0) H5Sclose(sp);
  if (g >= 0) H5Gclose(g);
  H5Pclose(gcpl);
  return rc;
}
