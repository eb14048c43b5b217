/* report_util.c — what the report, `tessera compare` and `tessera rerun` share: the machine
 * and library versions, the content hash of HDF5 outputs, the portable config hash and
 * the attributes of HDF5 outputs.
 *
 * Why a content hash for HDF5: CLAM and TRIDENT expect `save_path`/`savetodir` attributes
 * that name the directory the file was written to, and the `config_hash` attribute covers
 * run.dir; so two runs of one config in two directories write files that differ in exactly
 * those bytes. The content hash walks the file's objects in name order and hashes names,
 * types, shapes, data and attributes except those (TS_REPORT_H5_RUN_ATTRS); equal content
 * hashes mean equal results. The file SHA-256 (the ledger's checksum) is kept as well.
 * The attribute readers (ts_report_h5_*) let a stage's section read back what its stage
 * wrote without knowing HDF5's error handling. */
#include <glib.h>
#include <hdf5.h>
#include <math.h>
#include <mpi.h>
#include <openslide.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <vips/vips.h>

#include "ts_error.h"
#include "ts_io.h"
#include "ts_report.h"

/* LibTorch hook: nn/ts_nn.h declares ts_nn_version() (LibTorch's version). Weak here, so that the
 * report never depends on nn/: "not linked" unless the binary links tessera_nn and pulls in
 * the object that defines it (any nn use does). */
const char *ts_nn_version(void) __attribute__((weak));

static void cpu_model(char *buf, size_t n) {
  snprintf(buf, n, "unknown");
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f) return;
  char line[512];
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "model name", 10) && strncmp(line, "Hardware", 8)) continue;
    char *c = strchr(line, ':');
    if (!c) continue;
    c++;
    while (*c == ' ' || *c == '\t') c++;
    c[strcspn(c, "\n")] = '\0';
    snprintf(buf, n, "%s", c);
    break;
  }
  fclose(f);
}

static int64_t mem_total(void) {
  FILE *f = fopen("/proc/meminfo", "r");
  long long kb = 0;
  if (!f) return 0;
  char line[256];
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "MemTotal: %lld kB", &kb) == 1) break;
  fclose(f);
  return (int64_t)kb * 1024;
}

void ts_report_env_get(ts_report_env *e) {
  memset(e, 0, sizeof *e);
  cpu_model(e->cpu_model, sizeof e->cpu_model);
  e->cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
  e->memory_bytes = mem_total();
  gethostname(e->hostname, sizeof e->hostname - 1);
  struct utsname u;
  if (uname(&u) == 0) snprintf(e->os, sizeof e->os, "%s %s %s", u.sysname, u.release, u.machine);
  snprintf(e->openslide, sizeof e->openslide, "%s", openslide_get_version());
  snprintf(e->vips, sizeof e->vips, "%s", vips_version_string());
  unsigned maj = 0, min = 0, rel = 0;
  H5get_libversion(&maj, &min, &rel);
  snprintf(e->hdf5, sizeof e->hdf5, "%u.%u.%u", maj, min, rel);
  char mpi[MPI_MAX_LIBRARY_VERSION_STRING] = "";
  int len = 0;
  MPI_Get_library_version(mpi, &len); /* allowed before MPI_Init and after MPI_Finalize */
  mpi[strcspn(mpi, ",\n")] = '\0';   /* "Open MPI v4.1.4, package: ..." → "Open MPI v4.1.4" */
  snprintf(e->mpi, sizeof e->mpi, "%s", mpi);
  snprintf(e->sqlite, sizeof e->sqlite, "%s", sqlite3_libversion());
  snprintf(e->libtorch, sizeof e->libtorch, "%s", ts_nn_version ? ts_nn_version() : "not linked");
#ifdef __VERSION__
  snprintf(e->compiler, sizeof e->compiler, "%s %s",
#ifdef __clang__
           "clang",
#else
           "gcc",
#endif
           __VERSION__);
#endif
}

void ts_report_config_portable_sha256(const char *text, char hex_out[65]) {
  /* Drop the "dir:" line of the "run:" section (canonical YAML: one key per line). */
  GString *s = g_string_new(NULL);
  bool in_run = false;
  for (const char *p = text; p && *p;) {
    const char *e = strchr(p, '\n');
    size_t n = e ? (size_t)(e - p) + 1 : strlen(p);
    if (p[0] != ' ' && p[0] != '#' && p[0] != '\n') in_run = !strncmp(p, "run:", 4);
    bool skip = in_run && n > 6 && !strncmp(p + strspn(p, " "), "dir:", 4);
    if (!skip && p[0] != '#') g_string_append_len(s, p, (gssize)n);
    p += n;
  }
  ts_io_sha256(s->str, s->len, hex_out);
  g_string_free(s, TRUE);
}

/* ---- HDF5 ---- */
typedef struct hash_ctx {
  GChecksum *sum;
  int rc;
} hash_ctx;

static bool run_specific_attr(const char *name) {
  static const char *const ignore[] = TS_REPORT_H5_RUN_ATTRS;
  for (int i = 0; ignore[i]; i++)
    if (!strcmp(ignore[i], name)) return true;
  return false;
}

static void hash_str(GChecksum *s, const char *tag, const char *v) {
  g_checksum_update(s, (const guchar *)tag, (gssize)strlen(tag) + 1);
  g_checksum_update(s, (const guchar *)v, (gssize)strlen(v) + 1);
}

/* Type and shape as text, and the bytes of a value of that type. */
static void hash_type_space(GChecksum *s, hid_t type, hid_t space) {
  char buf[256];
  int nd = H5Sget_simple_extent_ndims(space);
  hsize_t dims[32] = {0};
  if (nd > 0 && nd <= 32) H5Sget_simple_extent_dims(space, dims, NULL);
  int k = snprintf(buf, sizeof buf, "class=%d size=%zu order=%d nd=%d", (int)H5Tget_class(type), H5Tget_size(type),
                   (int)H5Tget_order(type), nd);
  for (int i = 0; i < nd && i < 32 && k < (int)sizeof buf - 24; i++) k += snprintf(buf + k, sizeof buf - (size_t)k, " %llu", (unsigned long long)dims[i]);
  hash_str(s, "shape", buf);
}

static herr_t hash_attr(hid_t loc, const char *name, const H5A_info_t *info, void *data) {
  (void)info;
  hash_ctx *c = data;
  if (run_specific_attr(name)) return 0;
  hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
  if (a < 0) return (c->rc = -1);
  hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
  hash_str(c->sum, "attr", name);
  hash_type_space(c->sum, t, sp);
  hssize_t npts = H5Sget_simple_extent_npoints(sp);
  if (H5Tis_variable_str(t) > 0) {
    /* Variable-length strings: hash the characters, not the pointers. */
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, H5T_VARIABLE);
    H5Tset_cset(mt, H5Tget_cset(t));
    char **v = calloc((size_t)(npts > 0 ? npts : 1), sizeof *v);
    if (v && H5Aread(a, mt, v) >= 0) {
      for (hssize_t i = 0; i < npts; i++) hash_str(c->sum, "s", v[i] ? v[i] : "");
      H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, v);
    } else {
      c->rc = -1;
    }
    free(v);
    H5Tclose(mt);
  } else {
    size_t bytes = H5Tget_size(t) * (size_t)(npts > 0 ? npts : 0);
    void *v = malloc(bytes ? bytes : 1);
    if (v && H5Aread(a, t, v) >= 0) g_checksum_update(c->sum, v, (gssize)bytes);
    else c->rc = -1;
    free(v);
  }
  H5Tclose(t);
  H5Sclose(sp);
  H5Aclose(a);
  return c->rc < 0 ? -1 : 0;
}

static int hash_dataset(hid_t d, hash_ctx *c) {
  hid_t t = H5Dget_type(d), sp = H5Dget_space(d);
  int rc = 0;
  hash_type_space(c->sum, t, sp);
  int nd = H5Sget_simple_extent_ndims(sp);
  hsize_t dims[32] = {0};
  if (nd > 32 || H5Tis_variable_str(t) > 0 || H5Tget_class(t) == H5T_VLEN) {
    hash_str(c->sum, "data", "not hashed: variable-length");
    goto out;
  }
  if (nd > 0) H5Sget_simple_extent_dims(sp, dims, NULL);
  size_t row = H5Tget_size(t);
  for (int i = 1; i < nd; i++) row *= (size_t)dims[i];
  hsize_t rows = nd > 0 ? dims[0] : 1;
  if (row == 0 || rows == 0) goto out;
  /* Row blocks of at most 64 MiB, so that a large features matrix is not read at once. */
  hsize_t block = (hsize_t)((64u << 20) / row);
  if (block < 1) block = 1;
  void *buf = malloc(row * (size_t)(block < rows ? block : rows));
  if (!buf) {
    rc = -1;
    goto out;
  }
  for (hsize_t r0 = 0; r0 < rows && rc == 0; r0 += block) {
    hsize_t n = rows - r0 < block ? rows - r0 : block;
    if (nd == 0) {
      if (H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) rc = -1;
    } else {
      hsize_t start[32] = {0}, count[32];
      for (int i = 0; i < nd; i++) count[i] = dims[i];
      start[0] = r0;
      count[0] = n;
      hid_t ms = H5Screate_simple(nd, count, NULL);
      if (ms < 0 || H5Sselect_hyperslab(sp, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
          H5Dread(d, t, ms, sp, H5P_DEFAULT, buf) < 0)
        rc = -1;
      if (ms >= 0) H5Sclose(ms);
    }
    if (rc == 0) g_checksum_update(c->sum, buf, (gssize)(row * n));
  }
  free(buf);
out:
  H5Tclose(t);
  H5Sclose(sp);
  return rc;
}

static herr_t hash_object(hid_t root, const char *name, const H5O_info_t *info, void *data) {
  hash_ctx *c = data;
  hash_str(c->sum, "object", name);
  hid_t o = H5Oopen(root, name, H5P_DEFAULT);
  if (o < 0) return (c->rc = -1);
  if (info->type == H5O_TYPE_DATASET && hash_dataset(o, c) < 0) c->rc = -1;
  hsize_t idx = 0;
  if (c->rc == 0 && H5Aiterate2(o, H5_INDEX_NAME, H5_ITER_INC, &idx, hash_attr, c) < 0) c->rc = -1;
  H5Oclose(o);
  return c->rc < 0 ? -1 : 0;
}

int ts_report_h5_content_sha256(const char *path, char hex_out[65]) {
  hex_out[0] = '\0';
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) return ts_error_set(TS_EIO, "REPORT_IO", "%s: not a readable HDF5 file", path);
  hash_ctx c = {g_checksum_new(G_CHECKSUM_SHA256), 0};
  if (H5Ovisit(f, H5_INDEX_NAME, H5_ITER_INC, hash_object, &c) < 0) c.rc = -1;
  H5Fclose(f);
  if (c.rc == 0) snprintf(hex_out, 65, "%s", g_checksum_get_string(c.sum));
  g_checksum_free(c.sum);
  if (c.rc < 0) return ts_error_set(TS_EIO, "REPORT_IO", "%s: cannot read every object of the HDF5 file", path);
  return 0;
}

static int attr_string(hid_t loc, const char *name, char *buf, size_t n) {
  buf[0] = '\0';
  if (H5Aexists(loc, name) <= 0) return -1;
  hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
  if (a < 0) return -1;
  hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
  int rc = -1;
  if (H5Tget_class(t) == H5T_STRING) {
    if (H5Tis_variable_str(t) > 0) {
      hid_t mt = H5Tcopy(H5T_C_S1);
      H5Tset_size(mt, H5T_VARIABLE);
      H5Tset_cset(mt, H5Tget_cset(t)); /* HDF5 does not convert between ASCII and UTF-8 */
      char *v = NULL;
      if (H5Aread(a, mt, &v) >= 0 && v) {
        snprintf(buf, n, "%s", v);
        H5free_memory(v);
        rc = 0;
      }
      H5Tclose(mt);
    } else {
      size_t sz = H5Tget_size(t);
      char *v = calloc(sz + 1, 1);
      if (v && H5Aread(a, t, v) >= 0) {
        snprintf(buf, n, "%s", v);
        rc = 0;
      }
      free(v);
    }
  }
  H5Tclose(t);
  H5Sclose(sp);
  H5Aclose(a);
  return rc;
}

static double attr_f64(hid_t loc, const char *name) {
  double v = NAN;
  if (H5Aexists(loc, name) <= 0) return v;
  hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
  if (a < 0) return v;
  if (H5Aread(a, H5T_NATIVE_DOUBLE, &v) < 0) v = NAN;
  H5Aclose(a);
  return v;
}

int ts_report_h5_open(const char *path, const char *dataset, ts_report_h5 *h) {
  memset(h, 0, sizeof *h);
  h->file = h->dset = -1;
  h->rows = h->cols = -1;
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) return -1;
  hid_t d = H5Dopen2(f, dataset, H5P_DEFAULT);
  if (d < 0) {
    H5Fclose(f);
    return -1;
  }
  hid_t sp = H5Dget_space(d);
  hsize_t dims[2] = {0, 0};
  int nd = H5Sget_simple_extent_ndims(sp);
  if (nd >= 1 && nd <= 2 && H5Sget_simple_extent_dims(sp, dims, NULL) == nd) {
    h->rows = (int64_t)dims[0];
    h->cols = nd == 2 ? (int64_t)dims[1] : 1;
  }
  H5Sclose(sp);
  h->file = f;
  h->dset = d;
  return 0;
}

bool ts_report_h5_str(const ts_report_h5 *h, const char *attr, char *buf, size_t n) {
  if (n) buf[0] = '\0';
  return h->dset >= 0 && attr_string(h->dset, attr, buf, n) == 0;
}

double ts_report_h5_f64(const ts_report_h5 *h, const char *attr) { return h->dset >= 0 ? attr_f64(h->dset, attr) : NAN; }

bool ts_report_h5_i64(const ts_report_h5 *h, const char *attr, int64_t *out) {
  long long v = 0;
  if (h->dset < 0 || H5Aexists(h->dset, attr) <= 0) return false;
  hid_t a = H5Aopen(h->dset, attr, H5P_DEFAULT);
  if (a < 0) return false;
  hid_t t = H5Aget_type(a);
  bool ok = H5Tget_class(t) == H5T_INTEGER && H5Aread(a, H5T_NATIVE_LLONG, &v) >= 0;
  H5Tclose(t);
  H5Aclose(a);
  if (ok) *out = (int64_t)v;
  return ok;
}

void ts_report_h5_close(ts_report_h5 *h) {
  if (h->dset >= 0) H5Dclose(h->dset);
  if (h->file >= 0) H5Fclose(h->file);
  h->dset = h->file = -1;
}
