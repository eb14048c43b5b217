/* h5util.c — shared-internal HDF5 helpers (see h5util.h). */
#include "h5util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void ts__h5_quiet(void) {
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

/* Walk callback: remember the innermost (first) frame's function and description. */
static herr_t walk_first(unsigned n, const H5E_error2_t *e, void *data) {
  if (n == 0 && e) {
    snprintf((char *)data, 256, "%s(): %s", e->func_name ? e->func_name : "?", e->desc ? e->desc : "?");
  }
  return 0;
}

int ts__h5_fail(int code, const char *token, const char *fmt, ...) {
  char msg[1024], h5[256] = "";
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_first, h5);
  H5Eclear2(H5E_DEFAULT);
  if (h5[0]) return ts_error_set(code, token, "%s (HDF5: %s)", msg, h5);
  return ts_error_set(code, token, "%s", msg);
}

hid_t ts__h5_create(const char *path) {
  ts__h5_quiet();
  return H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
}

hid_t ts__h5_dcpl(int chunked, hsize_t c0, hsize_t c1, int deflate_level) {
  hid_t p = H5Pcreate(H5P_DATASET_CREATE);
  if (p < 0) return p;
  if (H5Pset_obj_track_times(p, 0) < 0) goto bad;
  if (chunked) {
    hsize_t c[2] = {c0, c1};
    if (H5Pset_chunk(p, 2, c) < 0) goto bad;
    if (deflate_level > 0 && H5Pset_deflate(p, (unsigned)deflate_level) < 0) goto bad;
  }
  return p;
bad:
  H5Pclose(p);
  return -1;
}

static int attr_write(hid_t loc, const char *name, hid_t ftype, hid_t mtype, hid_t space, const void *buf) {
  int rc = 0;
  if (space < 0) return ts__h5_fail(TS_EIO, "H5_WRITE", "attribute %s: dataspace", name);
  if (H5Aexists(loc, name) > 0 && H5Adelete(loc, name) < 0) {
    H5Sclose(space);
    return ts__h5_fail(TS_EIO, "H5_WRITE", "attribute %s: cannot replace", name);
  }
  hid_t a = H5Acreate2(loc, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
  if (a < 0)
    rc = ts__h5_fail(TS_EIO, "H5_WRITE", "attribute %s: create", name);
  else if (H5Awrite(a, mtype, buf) < 0)
    rc = ts__h5_fail(TS_EIO, "H5_WRITE", "attribute %s: write", name);
  if (a >= 0 && H5Aclose(a) < 0 && rc == 0) rc = ts__h5_fail(TS_EIO, "H5_WRITE", "attribute %s: close", name);
  H5Sclose(space);
  return rc;
}

int ts__h5_attr_i64(hid_t loc, const char *name, int64_t v) {
  return attr_write(loc, name, H5T_STD_I64LE, H5T_NATIVE_INT64, H5Screate(H5S_SCALAR), &v);
}

int ts__h5_attr_f64(hid_t loc, const char *name, double v) {
  return attr_write(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, H5Screate(H5S_SCALAR), &v);
}

int ts__h5_attr_i64v(hid_t loc, const char *name, const int64_t *v, int n) {
  hsize_t d = (hsize_t)n;
  return attr_write(loc, name, H5T_STD_I64LE, H5T_NATIVE_INT64, H5Screate_simple(1, &d, NULL), v);
}

int ts__h5_attr_f64v(hid_t loc, const char *name, const double *v, int n) {
  hsize_t d = (hsize_t)n;
  return attr_write(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, H5Screate_simple(1, &d, NULL), v);
}

int ts__h5_attr_str(hid_t loc, const char *name, const char *s) {
  hid_t t = H5Tcopy(H5T_C_S1);
  if (t < 0) return ts__h5_fail(TS_EIO, "H5_WRITE", "attribute %s: string type", name);
  if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
    H5Tclose(t);
    return ts__h5_fail(TS_EIO, "H5_WRITE", "attribute %s: string type", name);
  }
  const char *p = s ? s : "";
  int rc = attr_write(loc, name, t, t, H5Screate(H5S_SCALAR), &p);
  H5Tclose(t);
  return rc;
}

static int attr_read(hid_t loc, const char *name, hid_t mtype, void *out) {
  hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
  if (a < 0) return ts__h5_fail(TS_EIO, "H5_READ", "attribute %s: missing", name);
  int rc = 0;
  if (H5Aread(a, mtype, out) < 0) rc = ts__h5_fail(TS_EIO, "H5_READ", "attribute %s", name);
  H5Aclose(a);
  return rc;
}

int ts__h5_read_attr_i64(hid_t loc, const char *name, int64_t *out) {
  return attr_read(loc, name, H5T_NATIVE_INT64, out);
}

int ts__h5_read_attr_f64(hid_t loc, const char *name, double *out) {
  return attr_read(loc, name, H5T_NATIVE_DOUBLE, out);
}
