/* h5util.h — shared-internal HDF5 helpers for the writers in workers/ (ts__h5_*).
 *
 * Why: every HDF5 call is checked, HDF5's automatic error printing is off, and its error
 * stack is copied into our thread-local message (STYLE.md, "Errors"). Files are written so
 * that the same input gives byte-identical output: object timestamps are off on every group
 * and dataset (H5Pset_obj_track_times(..., 0)).
 *
 * Attributes are written the way h5py writes Python values, so h5py/CLAM/TRIDENT read them
 * back naturally: integers as 64-bit little-endian ints, reals as float64, strings as
 * variable-length UTF-8 scalars (h5py returns str), vectors as 1-D arrays.
 */
#ifndef TS_H5UTIL_H
#define TS_H5UTIL_H

#include <hdf5.h>
#include <stdint.h>

#include "ts_error.h"

/* Turn off automatic error printing for this thread's default stack. */
void ts__h5_quiet(void);
/* Set the error (code, token) with a message and the innermost HDF5 error description. */
int ts__h5_fail(int code, const char *token, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Create a new file (truncating) with default property lists. Negative on error. */
hid_t ts__h5_create(const char *path);
/* Dataset creation property list with times off, optionally chunked (rank 2) + deflate. */
hid_t ts__h5_dcpl(int chunked, hsize_t c0, hsize_t c1, int deflate_level);

int ts__h5_attr_i64(hid_t loc, const char *name, int64_t v);
int ts__h5_attr_f64(hid_t loc, const char *name, double v);
int ts__h5_attr_i64v(hid_t loc, const char *name, const int64_t *v, int n);
int ts__h5_attr_f64v(hid_t loc, const char *name, const double *v, int n);
int ts__h5_attr_str(hid_t loc, const char *name, const char *s);

int ts__h5_read_attr_i64(hid_t loc, const char *name, int64_t *out);
int ts__h5_read_attr_f64(hid_t loc, const char *name, double *out);

#endif
