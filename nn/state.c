/* state.c — named tensors (a PyTorch state_dict) and their HDF5 checkpoints.
 *
 * Why HDF5 and not torch.save: the pipeline already speaks HDF5 everywhere, h5py reads it
 * without PyTorch, and a pickle is not a contract. The layout (schemas/nn_checkpoint.md):
 *
 *     /                         attrs tessera_format="nn_checkpoint", tessera_format_version=1,
 *                                     arch (optional), n_tensors
 *     /state_dict/<name>        one dataset per tensor, name exactly as in state_dict()
 *                               ("layer1.0.conv1.weight"), float32 for floating tensors, float64
 *                               for float64 ones (optimiser hyper-parameters that a resume checks
 *                               exactly), int64 for integer ones (num_batches_tracked, step
 *                               counts), 0-d tensors as scalars; attr torch_dtype = the tensor's
 *                               dtype before conversion.
 *
 * The group tracks link creation order, so a load returns the entries in the order they were
 * saved (the state_dict order); files written elsewhere (h5py) load in name order.
 * Writes are durable: temporary name, fsync, rename (ts_io_commit).
 */
#include <glib.h>
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>

#include "h5util.h"
#include "ts_io.h"
#include "ts_nn.h"

struct ts_nn_state {
  int n, cap;
  char **names;
  ts_tensor **tensors;
};

int ts_nn_state_new(ts_nn_state **out) {
  if (!out) return ts_error_set(TS_EINVAL, "NN_ARG", "ts_nn_state_new: out is NULL");
  *out = calloc(1, sizeof **out);
  if (!*out) return ts_error_set(TS_ENOMEM, "NN_OOM", "ts_nn_state_new: out of memory");
  return 0;
}

void ts_nn_state_free(ts_nn_state **s) {
  if (!s || !*s) return;
  for (int i = 0; i < (*s)->n; i++) {
    free((*s)->names[i]);
    ts_tensor_free(&(*s)->tensors[i]);
  }
  free((*s)->names);
  free((*s)->tensors);
  free(*s);
  *s = NULL;
}

static int find_index(const ts_nn_state *s, const char *name) {
  for (int i = 0; i < s->n; i++)
    if (strcmp(s->names[i], name) == 0) return i;
  return -1;
}

int ts_nn_state_add(ts_nn_state *s, const char *name, const ts_tensor *t) {
  if (!s || !name || !t) return ts_error_set(TS_EINVAL, "NN_ARG", "ts_nn_state_add: NULL argument");
  size_t len = strlen(name);
  if (len == 0 || len > 255 || strchr(name, '/'))
    return ts_error_set(TS_EINVAL, "NN_ARG", "ts_nn_state_add: bad tensor name '%s' (1..255 chars, no '/')",
                        name);
  if (find_index(s, name) >= 0)
    return ts_error_set(TS_EINVAL, "NN_ARG", "ts_nn_state_add: duplicate tensor name '%s'", name);
  if (s->n == s->cap) {
    int cap = s->cap ? 2 * s->cap : 32;
    char **nn = realloc(s->names, (size_t)cap * sizeof *nn);
    if (!nn) return ts_error_set(TS_ENOMEM, "NN_OOM", "ts_nn_state_add: out of memory");
    s->names = nn;
    ts_tensor **nt = realloc(s->tensors, (size_t)cap * sizeof *nt);
    if (!nt) return ts_error_set(TS_ENOMEM, "NN_OOM", "ts_nn_state_add: out of memory");
    s->tensors = nt;
    s->cap = cap;
  }
  char *copy = strdup(name);
  if (!copy) return ts_error_set(TS_ENOMEM, "NN_OOM", "ts_nn_state_add: out of memory");
  ts_tensor *alias = NULL;
  int rc = ts_tensor_alias(t, &alias);
  if (rc < 0) {
    free(copy);
    return rc;
  }
  s->names[s->n] = copy;
  s->tensors[s->n] = alias;
  s->n++;
  return 0;
}

int ts_nn_state_count(const ts_nn_state *s) {
  return s ? s->n : 0;
}

const char *ts_nn_state_name(const ts_nn_state *s, int i) {
  return s && i >= 0 && i < s->n ? s->names[i] : NULL;
}

ts_tensor *ts_nn_state_tensor(const ts_nn_state *s, int i) {
  return s && i >= 0 && i < s->n ? s->tensors[i] : NULL;
}

ts_tensor *ts_nn_state_find(const ts_nn_state *s, const char *name) {
  if (!s || !name) return NULL;
  int i = find_index(s, name);
  return i >= 0 ? s->tensors[i] : NULL;
}

static bool is_floating(int dtype) {
  return dtype == TS_NN_F32 || dtype == TS_NN_F16 || dtype == TS_NN_F64;
}

static const char *dtype_name(int dtype) {
  switch (dtype) {
  case TS_NN_F32:
    return "float32";
  case TS_NN_F16:
    return "float16";
  case TS_NN_U8:
    return "uint8";
  case TS_NN_I64:
    return "int64";
  case TS_NN_F64:
    return "float64";
  case TS_NN_BOOL:
    return "bool";
  }
  return "unknown";
}

/* Write one tensor as dataset `name` of group g. */
static int write_one(hid_t g, const char *name, const ts_tensor *t) {
  int rc = 0;
  int dtype = ts_tensor_dtype(t);
  bool fl = is_floating(dtype), f64 = dtype == TS_NN_F64;
  int mdtype = f64 ? TS_NN_F64 : fl ? TS_NN_F32 : TS_NN_I64;
  hid_t ftype = f64 ? H5T_IEEE_F64LE : fl ? H5T_IEEE_F32LE : H5T_STD_I64LE;
  hid_t mtype = f64 ? H5T_NATIVE_DOUBLE : fl ? H5T_NATIVE_FLOAT : H5T_NATIVE_INT64;
  int64_t shape[TS_NN_MAX_DIMS];
  int nd = ts_tensor_shape(t, shape, TS_NN_MAX_DIMS);
  int64_t numel = ts_tensor_numel(t);
  size_t nbytes = (size_t)numel * ts_nn_dtype_size(mdtype);
  void *buf = malloc(nbytes ? nbytes : 1);
  hid_t space = -1, dcpl = -1, d = -1;
  if (dtype < 0) TS_FAIL(TS_EINVAL, "NN_DTYPE", "tensor '%s' has an unsupported dtype", name);
  if (!buf) TS_FAIL(TS_ENOMEM, "NN_OOM", "tensor '%s': out of memory", name);
  TS_TRY(ts_tensor_copy_to(t, buf, nbytes, mdtype));
  hsize_t dims[TS_NN_MAX_DIMS];
  for (int i = 0; i < nd; i++)
    dims[i] = (hsize_t)shape[i];
  space = nd == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(nd, dims, NULL);
  dcpl = ts__h5_dcpl(0, 0, 0, 0);
  if (space < 0 || dcpl < 0) {
    rc = ts__h5_fail(TS_EIO, "H5_WRITE", "tensor '%s': dataspace", name);
    goto out;
  }
  d = H5Dcreate2(g, name, ftype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  if (d < 0) {
    rc = ts__h5_fail(TS_EIO, "H5_WRITE", "tensor '%s': create dataset", name);
    goto out;
  }
  if (numel > 0 && H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
    rc = ts__h5_fail(TS_EIO, "H5_WRITE", "tensor '%s': write", name);
    goto out;
  }
  TS_TRY(ts__h5_attr_str(d, "torch_dtype", dtype_name(dtype)));
out:
  if (d >= 0) H5Dclose(d);
  if (dcpl >= 0) H5Pclose(dcpl);
  if (space >= 0) H5Sclose(space);
  free(buf);
  return rc;
}

int ts_nn_state_save_h5(const ts_nn_state *s, const char *path, const char *arch) {
  int rc = 0;
  char tmp[TS_PATH_MAX];
  hid_t f = -1, g = -1, gcpl = -1;
  bool written = false;
  if (!s || !path) return ts_error_set(TS_EINVAL, "NN_ARG", "ts_nn_state_save_h5: NULL argument");
  TS_TRY(ts_io_tmp_path(path, tmp, sizeof tmp));
  f = ts__h5_create(tmp);
  if (f < 0) {
    rc = ts__h5_fail(TS_EIO, "H5_WRITE", "cannot create %s", tmp);
    goto out;
  }
  written = true;
  gcpl = H5Pcreate(H5P_GROUP_CREATE);
  if (gcpl < 0 || H5Pset_link_creation_order(gcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED) < 0 ||
      H5Pset_obj_track_times(gcpl, 0) < 0) {
    rc = ts__h5_fail(TS_EIO, "H5_WRITE", "%s: group properties", tmp);
    goto out;
  }
  g = H5Gcreate2(f, "state_dict", H5P_DEFAULT, gcpl, H5P_DEFAULT);
  if (g < 0) {
    rc = ts__h5_fail(TS_EIO, "H5_WRITE", "%s: create /state_dict", tmp);
    goto out;
  }
  for (int i = 0; i < s->n; i++)
    TS_TRY(write_one(g, s->names[i], s->tensors[i]));
  TS_TRY(ts__h5_attr_str(f, "tessera_format", "nn_checkpoint"));
  TS_TRY(ts__h5_attr_i64(f, "tessera_format_version", 1));
  TS_TRY(ts__h5_attr_i64(f, "n_tensors", s->n));
  if (arch) TS_TRY(ts__h5_attr_str(f, "arch", arch));
  H5Gclose(g);
  g = -1;
  if (H5Fclose(f) < 0) {
    f = -1;
    rc = ts__h5_fail(TS_EIO, "H5_WRITE", "%s: close", tmp);
    goto out;
  }
  f = -1;
  TS_TRY(ts_io_commit(tmp, path));
  written = false;
out:
  if (g >= 0) H5Gclose(g);
  if (gcpl >= 0) H5Pclose(gcpl);
  if (f >= 0) H5Fclose(f);
  if (rc < 0 && written) remove(tmp);
  return rc;
}

struct load_ctx {
  ts_nn_state *s;
  int rc;
  const char *path;
};

static herr_t load_one(hid_t g, const char *name, const H5L_info_t *info, void *data) {
  (void)info;
  struct load_ctx *c = data;
  int rc = 0;
  hid_t d = -1, space = -1, type = -1;
  void *buf = NULL;
  ts_tensor *t = NULL;
  d = H5Dopen2(g, name, H5P_DEFAULT);
  if (d < 0) {
    rc = ts__h5_fail(TS_EINPUT, "NN_CHECKPOINT", "%s: /state_dict/%s is not a dataset", c->path, name);
    goto out;
  }
  space = H5Dget_space(d);
  type = H5Dget_type(d);
  if (space < 0 || type < 0) {
    rc = ts__h5_fail(TS_EIO, "H5_READ", "%s: /state_dict/%s: type or space", c->path, name);
    goto out;
  }
  H5T_class_t cls = H5Tget_class(type);
  if (cls != H5T_FLOAT && cls != H5T_INTEGER)
    TS_FAIL(TS_EINPUT, "NN_CHECKPOINT", "%s: /state_dict/%s is neither float nor integer", c->path, name);
  int nd = H5Sget_simple_extent_ndims(space);
  if (nd < 0 || nd > TS_NN_MAX_DIMS)
    TS_FAIL(TS_EINPUT, "NN_CHECKPOINT", "%s: /state_dict/%s has rank %d", c->path, name, nd);
  hsize_t dims[TS_NN_MAX_DIMS];
  int64_t shape[TS_NN_MAX_DIMS];
  H5Sget_simple_extent_dims(space, dims, NULL);
  size_t numel = 1;
  for (int i = 0; i < nd; i++) {
    shape[i] = (int64_t)dims[i];
    numel *= (size_t)dims[i];
  }
  /* float64 datasets stay float64 (hyper-parameters must come back exactly); other floats
   * are read as float32, integers as int64. */
  bool f64 = cls == H5T_FLOAT && H5Tget_size(type) == 8;
  int dtype = f64 ? TS_NN_F64 : cls == H5T_FLOAT ? TS_NN_F32 : TS_NN_I64;
  hid_t mtype = f64 ? H5T_NATIVE_DOUBLE : cls == H5T_FLOAT ? H5T_NATIVE_FLOAT : H5T_NATIVE_INT64;
  buf = malloc(numel * 8 + 1);
  if (!buf) TS_FAIL(TS_ENOMEM, "NN_OOM", "%s: /state_dict/%s: out of memory", c->path, name);
  if (numel > 0 && H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
    rc = ts__h5_fail(TS_EIO, "H5_READ", "%s: /state_dict/%s: read", c->path, name);
    goto out;
  }
  TS_TRY(ts_tensor_from_data(buf, dtype, shape, nd, &t));
  TS_TRY(ts_nn_state_add(c->s, name, t));
out:
  ts_tensor_free(&t);
  free(buf);
  if (type >= 0) H5Tclose(type);
  if (space >= 0) H5Sclose(space);
  if (d >= 0) H5Dclose(d);
  c->rc = rc;
  return rc < 0 ? -1 : 0;
}

int ts_nn_state_load_h5(const char *path, ts_nn_state **out) {
  int rc = 0;
  hid_t f = -1, g = -1, gcpl = -1;
  ts_nn_state *s = NULL;
  if (!out || !path) return ts_error_set(TS_EINVAL, "NN_ARG", "ts_nn_state_load_h5: NULL argument");
  *out = NULL;
  ts__h5_quiet();
  if (!ts_io_exists(path)) TS_FAIL(TS_EINPUT, "NN_CHECKPOINT", "%s: no such file", path);
  f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) {
    rc = ts__h5_fail(TS_EINPUT, "NN_CHECKPOINT", "%s: not an HDF5 file", path);
    goto out;
  }
  if (H5Lexists(f, "state_dict", H5P_DEFAULT) <= 0)
    TS_FAIL(TS_EINPUT, "NN_CHECKPOINT", "%s: no /state_dict group (see schemas/nn_checkpoint.md)", path);
  g = H5Gopen2(f, "state_dict", H5P_DEFAULT);
  if (g < 0) {
    rc = ts__h5_fail(TS_EINPUT, "NN_CHECKPOINT", "%s: /state_dict is not a group", path);
    goto out;
  }
  unsigned flags = 0;
  gcpl = H5Gget_create_plist(g);
  if (gcpl >= 0) H5Pget_link_creation_order(gcpl, &flags);
  H5_index_t idx = (flags & H5P_CRT_ORDER_INDEXED) ? H5_INDEX_CRT_ORDER : H5_INDEX_NAME;
  TS_TRY(ts_nn_state_new(&s));
  struct load_ctx c = {s, 0, path};
  hsize_t pos = 0;
  if (H5Literate(g, idx, H5_ITER_INC, &pos, load_one, &c) < 0) {
    rc = c.rc < 0 ? c.rc : ts__h5_fail(TS_EIO, "H5_READ", "%s: iterate /state_dict", path);
    goto out;
  }
  if (s->n == 0) TS_FAIL(TS_EINPUT, "NN_CHECKPOINT", "%s: /state_dict is empty", path);
  *out = s;
  s = NULL;
out:
  ts_nn_state_free(&s);
  if (gcpl >= 0) H5Pclose(gcpl);
  if (g >= 0) H5Gclose(g);
  if (f >= 0) H5Fclose(f);
  return rc;
}

int ts_nn_state_copy_into(ts_nn_state *dst, const ts_nn_state *src, int *n_unused_out) {
  if (!dst || !src) return ts_error_set(TS_EINVAL, "NN_ARG", "ts_nn_state_copy_into: NULL argument");
  for (int i = 0; i < dst->n; i++) {
    const ts_tensor *v = ts_nn_state_find(src, dst->names[i]);
    if (!v)
      return ts_error_set(TS_EINPUT, "NN_CHECKPOINT", "checkpoint lacks tensor '%s' (and maybe others)",
                          dst->names[i]);
    int64_t a[TS_NN_MAX_DIMS], b[TS_NN_MAX_DIMS];
    int na = ts_tensor_shape(dst->tensors[i], a, TS_NN_MAX_DIMS), nb = ts_tensor_shape(v, b, TS_NN_MAX_DIMS);
    bool same = na == nb;
    for (int k = 0; same && k < na; k++)
      same = a[k] == b[k];
    if (!same)
      return ts_error_set(
          TS_EINPUT, "NN_CHECKPOINT",
          "tensor '%s': checkpoint shape differs from the model's (rank %d vs %d, first dim %lld vs %lld)",
          dst->names[i], nb, na, nb > 0 ? (long long)b[0] : 0LL, na > 0 ? (long long)a[0] : 0LL);
    TS_CALL(ts_tensor_copy_(dst->tensors[i], v));
  }
  if (n_unused_out) {
    int unused = 0;
    for (int i = 0; i < src->n; i++)
      unused += find_index(dst, src->names[i]) < 0;
    *n_unused_out = unused;
  }
  return 0;
}

int ts_nn_state_sha256(const ts_nn_state *s, char hex_out[65]) {
  if (!s || !hex_out) return ts_error_set(TS_EINVAL, "NN_ARG", "ts_nn_state_sha256: NULL argument");
  int rc = 0;
  void *buf = NULL;
  size_t cap = 0;
  GChecksum *c = g_checksum_new(G_CHECKSUM_SHA256);
  for (int i = 0; i < s->n; i++) {
    const ts_tensor *t = s->tensors[i];
    int32_t dtype = ts_tensor_dtype(t);
    int64_t shape[TS_NN_MAX_DIMS];
    int32_t nd = ts_tensor_shape(t, shape, TS_NN_MAX_DIMS);
    size_t nbytes = (size_t)ts_tensor_numel(t) * ts_nn_dtype_size(dtype);
    if (dtype < 0 || nd < 0) TS_FAIL(TS_EINVAL, "NN_DTYPE", "tensor '%s' cannot be hashed", s->names[i]);
    g_checksum_update(c, (const guchar *)s->names[i], (gssize)strlen(s->names[i]) + 1);
    g_checksum_update(c, (const guchar *)&dtype, sizeof dtype);
    g_checksum_update(c, (const guchar *)&nd, sizeof nd);
    g_checksum_update(c, (const guchar *)shape, (gssize)((size_t)nd * sizeof shape[0]));
    if (nbytes > cap) {
      void *nb = realloc(buf, nbytes);
      if (!nb) TS_FAIL(TS_ENOMEM, "NN_OOM", "hash: out of memory");
      buf = nb;
      cap = nbytes;
    }
    TS_TRY(ts_tensor_copy_to(t, buf, nbytes, dtype));
    g_checksum_update(c, buf, (gssize)nbytes);
  }
  snprintf(hex_out, 65, "%s", g_checksum_get_string(c));
out:
  g_checksum_free(c);
  free(buf);
  return rc;
}
