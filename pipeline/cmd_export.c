/* cmd_export.c — `tessera export clam RUN_DIR OUT_DIR [--encoder NAME] [--force]`: a run's
 * features in the layout CLAM's training reads.
 *
 * CLAM (github.com/mahmoodlab/CLAM) trains from a "data root" holding, per slide,
 *   pt_files/<slide_id>.pt  an N x D float32 tensor saved with torch.save; Generic_MIL_Dataset
 *                           (datasets/dataset_generic.py) torch.load()s it for training;
 *   h5_files/<slide_id>.h5  datasets `features` (N x D float32) and `coords` (N x 2), as
 *                           extract_features_fp.py writes them; read when the dataset is told
 *                           to load_from_h5 (heatmaps, attention with coordinates).
 * tessera's extract stage writes features/<encoder>/<slide>.h5 (`features` float32 or float16,
 * `coords` with the tile file's attributes, `bad_tiles`), which CLAM's training does not read.
 *
 * What is exported: every features/<encoder>/<slide>.h5 that the run's ledger records done
 * for stage "extract" (unit id = slide id; the merge unit's output) with the checksum the
 * ledger holds. Any other file there (a stage reset by a changed config, a copy dropped in by
 * hand) is skipped with EXPORT_NOT_DONE and makes the exit code 1. The ledger is opened
 * read-only: exporting while a run goes on is safe and exports what is done so far.
 *
 * Users' files are sacred: nothing is ever deleted; a file that exists is left alone when its
 * bytes equal what would be written ("unchanged"), and refused (EXPORT_EXISTS, naming it) when
 * they differ, unless --force. Every file is written under a temporary name, fsync'd and
 * renamed (ts_io.h). The same run gives the same bytes (torch.save's zip has no timestamps;
 * HDF5 objects are written without them), so exporting again is a no-op. OUT_DIR inside
 * RUN_DIR is refused: the run directory belongs to the pipeline.
 *
 * Features are float32 in both files even when the run stored float16 (CLAM's models are
 * float32). The h5 file's `features` keeps the run's provenance attributes (encoder,
 * weights_hash, ...); `coords` is copied with its attributes (patch_size, patch_level, ...,
 * which CLAM's heatmap code reads). `bad_tiles` is not copied: CLAM has no use for it (those
 * tiles' feature rows are zero; `tessera status` lists them). */
#include <dirent.h>
#include <errno.h>
#include <hdf5.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "h5util.h"
#include "ts_cli.h"
#include "ts_error.h"
#include "ts_io.h"
#include "ts_ledger.h"
#include "ts_nn.h"

#define EXPORT_STAGE "extract"

typedef struct opts {
  const char *format, *run_dir, *out_dir, *encoder;
  bool force, quiet;
  long every;
} opts;

typedef struct tally {
  long exported, unchanged, skipped, failed;
} tally;

static void usage(FILE *f) {
  fprintf(f, "usage: tessera export clam RUN_DIR OUT_DIR [--encoder NAME] [--force] [--every N] [--quiet]\n\n"
             "Write a run's slide features where CLAM's training (main.py --data_root_dir OUT_DIR)\n"
             "looks for them:\n"
             "  OUT_DIR/pt_files/<slide>.pt  N x D float32 tensor (torch.save; torch.load reads it)\n"
             "  OUT_DIR/h5_files/<slide>.h5  'features' (N x D float32, the run's attributes) and\n"
             "                               'coords' (N x 2, with the tile file's attributes)\n"
             "for every slide whose features (RUN_DIR/features/<encoder>/<slide>.h5) the run's ledger\n"
             "records done. float16 features are written as float32.\n\n"
             "options:\n"
             "  --encoder NAME  directory under RUN_DIR/features/ (the encoder name, or\n"
             "                  torchscript-<file stem>); needed when the run has several\n"
             "  --force         replace files in OUT_DIR whose content differs (never by default:\n"
             "                  such a file is reported EXPORT_EXISTS and left as it is)\n"
             "  --every N       a progress line every N slides (default 100)\n"
             "  --quiet         no progress lines\n\n"
             "Nothing is ever deleted; files already holding the same bytes are left untouched, so\n"
             "exporting again is cheap. OUT_DIR must not be inside RUN_DIR.\n"
             "Exit code: 0 every done slide exported, 1 some slides skipped (not recorded done) or\n"
             "failed (EXPORT_* lines name them; the others were exported), 2 usage error, no run\n"
             "directory or no features (nothing written).\n");
}

/* ---- paths ---- */

/* The absolute, symlink-free form of `path`, which may not exist yet: realpath of its longest
 * existing prefix, then the missing components as written (".." among them is refused). */
static int resolve_path(const char *path, char *out, size_t n) {
  char head[PATH_MAX], rest[PATH_MAX] = "", res[PATH_MAX];
  if (snprintf(head, sizeof head, "%s", path) >= (int)sizeof head)
    return ts_error_set(TS_EINVAL, "EXPORT_USAGE", "path too long: %s", path);
  for (;;) {
    size_t k = strlen(head);
    while (k > 1 && head[k - 1] == '/')
      head[--k] = '\0';
    if (realpath(head, res)) break;
    if (errno != ENOENT) return ts_error_set(TS_EINVAL, "EXPORT_USAGE", "%s: %s", head, strerror(errno));
    char *sl = strrchr(head, '/');
    const char *comp = sl ? sl + 1 : head;
    if (!strcmp(comp, "..") || !strcmp(comp, "."))
      return ts_error_set(TS_EINVAL, "EXPORT_USAGE", "%s: '.' or '..' in a directory that does not exist yet",
                          path);
    char tmp[2 * PATH_MAX + 2];
    snprintf(tmp, sizeof tmp, "%s%s%s", comp, rest[0] ? "/" : "", rest);
    size_t tl = strlen(tmp);
    if (tl >= sizeof rest) return ts_error_set(TS_EINVAL, "EXPORT_USAGE", "%s: path too long", path);
    memcpy(rest, tmp, tl + 1);
    if (!sl)
      snprintf(head, sizeof head, ".");
    else if (sl == head)
      snprintf(head, sizeof head, "/");
    else
      *sl = '\0';
  }
  if (snprintf(out, n, "%s%s%s", res, rest[0] && strcmp(res, "/") ? "/" : "", rest) >= (int)n)
    return ts_error_set(TS_EINVAL, "EXPORT_USAGE", "path too long: %s", path);
  return 0;
}

/* a == b or a is below b (both resolved). */
static bool path_within(const char *a, const char *b) {
  size_t k = strlen(b);
  if (k == 1 && b[0] == '/') return true;
  return !strncmp(a, b, k) && (a[k] == '\0' || a[k] == '/');
}

static bool is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **v, int n) {
  for (int i = 0; i < n; i++)
    free(v[i]);
  free(v);
}

/* Sorted names in dir: subdirectories (dirs) or files ending in ".h5" that are not temporaries. */
static int list_dir(const char *dir, bool dirs, char ***names_out, int *n_out) {
  *names_out = NULL;
  *n_out = 0;
  DIR *d = opendir(dir);
  if (!d) return ts_error_set(TS_EIO, "EXPORT_READ", "cannot list %s: %s", dir, strerror(errno));
  char **v = NULL;
  int n = 0, cap = 0, rc = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    const char *nm = e->d_name;
    if (nm[0] == '.') continue;
    char p[TS_PATH_MAX];
    ts_io_join(dir, nm, p, sizeof p);
    size_t k = strlen(nm);
    if (dirs ? !is_dir(p) : (k < 4 || strcmp(nm + k - 3, ".h5") || strstr(nm, ".tmp.") || is_dir(p)))
      continue;
    if (n == cap) {
      char **nv = realloc(v, sizeof *v * (size_t)(cap = cap ? 2 * cap : 64));
      if (!nv) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "listing %s", dir);
      v = nv;
    }
    if (!(v[n] = strdup(nm))) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "listing %s", dir);
    n++;
  }
  qsort(v, (size_t)n, sizeof *v, cmp_names);
out:
  closedir(d);
  if (rc < 0) {
    free_names(v, n);
    return rc;
  }
  *names_out = v;
  *n_out = n;
  return 0;
}

/* ---- comparing with what is there ---- */

/* 1 when the file at path holds exactly len bytes equal to buf, 0 when not, negative on error. */
static int file_equals_buf(const char *path, const void *buf, size_t len) {
  FILE *f = fopen(path, "rb");
  if (!f) return ts_error_set(TS_EIO, "EXPORT_READ", "cannot read %s: %s", path, strerror(errno));
  const unsigned char *b = buf;
  unsigned char chunk[1 << 16];
  size_t off = 0, k;
  int same = 1;
  while (same && (k = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (k > len - off || memcmp(chunk, b + off, k)) same = 0;
    off += k;
  }
  if (ferror(f))
    same = ts_error_set(TS_EIO, "EXPORT_READ", "cannot read %s", path);
  else if (same == 1 && off != len)
    same = 0;
  fclose(f);
  return same;
}

/* 1 when files a and b have the same bytes, 0 when not, negative on error. */
static int files_equal(const char *a, const char *b) {
  char *da = NULL;
  size_t la = 0;
  if (ts_io_read_all(a, &da, &la) < 0) return ts_error_set(TS_EIO, "EXPORT_READ", "cannot read %s", a);
  int r = file_equals_buf(b, da, la);
  free(da);
  return r;
}

/* ---- reading the run's features file ---- */

typedef struct feats {
  float *x; /* n x d */
  int64_t n, d;
} feats;

static int read_features(const char *path, feats *fo) {
  int rc = 0;
  hid_t f = -1, ds = -1, sp = -1, cd = -1, csp = -1;
  hsize_t dims[2] = {0, 0}, cdims[2] = {0, 0};
  memset(fo, 0, sizeof *fo);
  ts__h5_quiet();
  if ((f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0)
    return ts__h5_fail(TS_EINPUT, "EXPORT_BAD_FEATURES", "%s: not a readable HDF5 file", path);
  if ((ds = H5Dopen2(f, "features", H5P_DEFAULT)) < 0 || (sp = H5Dget_space(ds)) < 0 ||
      H5Sget_simple_extent_ndims(sp) != 2 || H5Sget_simple_extent_dims(sp, dims, NULL) < 0) {
    rc = ts__h5_fail(TS_EINPUT, "EXPORT_BAD_FEATURES", "%s: no N x D dataset 'features'", path);
    goto out;
  }
  if ((cd = H5Dopen2(f, "coords", H5P_DEFAULT)) < 0 || (csp = H5Dget_space(cd)) < 0 ||
      H5Sget_simple_extent_ndims(csp) != 2 || H5Sget_simple_extent_dims(csp, cdims, NULL) < 0 ||
      cdims[1] != 2 || cdims[0] != dims[0]) {
    rc = ts__h5_fail(TS_EINPUT, "EXPORT_BAD_FEATURES", "%s: no 'coords' of %llu x 2 (one per feature row)",
                     path, (unsigned long long)dims[0]);
    goto out;
  }
  fo->n = (int64_t)dims[0];
  fo->d = (int64_t)dims[1];
  size_t cnt = (size_t)(dims[0] * dims[1]);
  if (!(fo->x = malloc(sizeof *fo->x * (cnt ? cnt : 1))))
    TS_FAIL(TS_ENOMEM, "NO_MEMORY", "%s: %zu features", path, cnt);
  /* HDF5 converts float16 (or any float layout) to native float on read */
  if (cnt && H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, fo->x) < 0) {
    rc = ts__h5_fail(TS_EIO, "EXPORT_BAD_FEATURES", "%s: reading 'features'", path);
    goto out;
  }
out:
  if (csp >= 0) H5Sclose(csp);
  if (cd >= 0) H5Dclose(cd);
  if (sp >= 0) H5Sclose(sp);
  if (ds >= 0) H5Dclose(ds);
  if (f >= 0) H5Fclose(f);
  if (rc < 0) {
    free(fo->x);
    memset(fo, 0, sizeof *fo);
  }
  return rc;
}

/* ---- writing the CLAM h5 ---- */

typedef struct attr_copy {
  hid_t dst;
  int rc;
} attr_copy;

/* Copy one attribute as it is (type, shape, value; variable-length strings included). */
static herr_t copy_attr_cb(hid_t src, const char *name, const H5A_info_t *info, void *ctx) {
  (void)info;
  attr_copy *c = ctx;
  hid_t a = -1, t = -1, sp = -1, b = -1;
  void *buf = NULL;
  int ok = 0;
  hssize_t np;
  if ((a = H5Aopen(src, name, H5P_DEFAULT)) < 0 || (t = H5Aget_type(a)) < 0 || (sp = H5Aget_space(a)) < 0 ||
      (np = H5Sget_simple_extent_npoints(sp)) < 0)
    goto out;
  size_t nb = H5Tget_size(t) * (size_t)(np > 0 ? np : 1);
  if (!(buf = calloc(1, nb ? nb : 1)) || H5Aread(a, t, buf) < 0) goto out;
  bool vlen = H5Tis_variable_str(t) > 0 || H5Tdetect_class(t, H5T_VLEN) > 0;
  ok = (b = H5Acreate2(c->dst, name, t, sp, H5P_DEFAULT, H5P_DEFAULT)) >= 0 && H5Awrite(b, t, buf) >= 0;
  if (vlen) H5Dvlen_reclaim(t, sp, H5P_DEFAULT, buf);
out:
  if (!ok) c->rc = ts__h5_fail(TS_EIO, "EXPORT_WRITE", "copying attribute '%s'", name);
  free(buf);
  if (b >= 0) H5Aclose(b);
  if (sp >= 0) H5Sclose(sp);
  if (t >= 0) H5Tclose(t);
  if (a >= 0) H5Aclose(a);
  return ok ? 0 : -1;
}

/* Write tmp: float32 `features` (x, with src's features attributes) and src's `coords`. */
static int write_clam_h5(const char *tmp, const char *src_path, const feats *x) {
  int rc = 0;
  hid_t f = -1, src = -1, sds = -1, sp = -1, dcpl = -1, d = -1, ocp = -1;
  ts__h5_quiet();
  if ((f = ts__h5_create(tmp)) < 0) return ts__h5_fail(TS_EIO, "EXPORT_WRITE", "cannot create %s", tmp);
  if ((src = H5Fopen(src_path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0 ||
      (sds = H5Dopen2(src, "features", H5P_DEFAULT)) < 0) {
    rc = ts__h5_fail(TS_EIO, "EXPORT_BAD_FEATURES", "cannot reopen %s", src_path);
    goto out;
  }
  hsize_t dims[2] = {(hsize_t)x->n, (hsize_t)x->d};
  /* row blocks as the run writes them; a dataset of 0 rows still needs a non-zero chunk */
  hsize_t c0 = x->n < 1024 ? (x->n > 0 ? (hsize_t)x->n : 1) : 1024, c1 = x->d > 0 ? (hsize_t)x->d : 1;
  if ((sp = H5Screate_simple(2, dims, NULL)) < 0 || (dcpl = ts__h5_dcpl(1, c0, c1, 0)) < 0 ||
      (d = H5Dcreate2(f, "features", H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT)) < 0 ||
      (x->n * x->d > 0 && H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x->x) < 0)) {
    rc = ts__h5_fail(TS_EIO, "EXPORT_WRITE", "%s: features", tmp);
    goto out;
  }
  attr_copy ac = {d, 0};
  hsize_t idx = 0; /* by name: the run's files do not track creation order */
  if (H5Aiterate2(sds, H5_INDEX_NAME, H5_ITER_INC, &idx, copy_attr_cb, &ac) < 0) {
    rc = ac.rc < 0 ? ac.rc : ts__h5_fail(TS_EIO, "EXPORT_WRITE", "%s: attributes of features", tmp);
    goto out;
  }
  /* coords exactly as the run has them (dtype, attributes) */
  if ((ocp = H5Pcreate(H5P_OBJECT_COPY)) < 0 || H5Ocopy(src, "coords", f, "coords", ocp, H5P_DEFAULT) < 0) {
    rc = ts__h5_fail(TS_EIO, "EXPORT_WRITE", "%s: copying coords from %s", tmp, src_path);
    goto out;
  }
out:
  if (ocp >= 0) H5Pclose(ocp);
  if (d >= 0) H5Dclose(d);
  if (dcpl >= 0) H5Pclose(dcpl);
  if (sp >= 0) H5Sclose(sp);
  if (sds >= 0) H5Dclose(sds);
  if (src >= 0) H5Fclose(src);
  if (f >= 0 && H5Fclose(f) < 0 && rc == 0) rc = ts__h5_fail(TS_EIO, "EXPORT_WRITE", "closing %s", tmp);
  return rc;
}

/* ---- one slide ---- */

/* Replace the current error by token "<what>: <the current message>" (copied first: the
 * message lives in the buffer that ts_error_set writes). */
static int rewrap(int code, const char *token, const char *what) {
  char m[1024];
  snprintf(m, sizeof m, "%s", ts_error_message());
  return ts_error_set(code, token, "%s: %s", what, m);
}

typedef enum { PUT_WRITTEN, PUT_SAME } put_result;

/* Put bytes at path unless a different file is there (EXPORT_EXISTS) and not force. */
static int put_bytes(const char *path, const void *b, size_t len, bool force, put_result *res) {
  if (ts_io_exists(path)) {
    int same = file_equals_buf(path, b, len);
    if (same < 0) return same;
    if (same) {
      *res = PUT_SAME;
      return 0;
    }
    if (!force)
      return ts_error_set(TS_EINPUT, "EXPORT_EXISTS",
                          "%s exists with other content: left as it is (--force replaces it)", path);
  }
  if (ts_io_write_atomic(path, b, len) < 0) return rewrap(TS_EIO, "EXPORT_WRITE", path);
  *res = PUT_WRITTEN;
  return 0;
}

/* Same for a file already written at tmp (ours: removed when not committed). */
static int put_file(const char *tmp, const char *path, bool force, put_result *res) {
  int rc = 0;
  if (ts_io_exists(path)) {
    int same = files_equal(tmp, path);
    if (same < 0) TS_TRY(same);
    if (same) {
      *res = PUT_SAME;
      goto out;
    }
    if (!force)
      TS_FAIL(TS_EINPUT, "EXPORT_EXISTS", "%s exists with other content: left as it is (--force replaces it)",
              path);
  }
  if (ts_io_commit(tmp, path) < 0) {
    rc = rewrap(TS_EIO, "EXPORT_WRITE", path);
    goto out;
  }
  *res = PUT_WRITTEN;
  return 0;
out:
  unlink(tmp);
  return rc;
}

static int export_slide(const opts *o, const char *src, const char *slide, bool *changed_out) {
  int rc = 0;
  feats x = {0};
  void *pt = NULL;
  size_t pt_len = 0;
  char pt_path[TS_PATH_MAX], h5_path[TS_PATH_MAX], tmp[TS_PATH_MAX], rel[300];
  put_result r1 = PUT_SAME, r2 = PUT_SAME;
  *changed_out = false;
  TS_TRY(read_features(src, &x));
  if (ts_nn_pt_encode_f32(x.x, x.n, x.d, &pt, &pt_len) < 0) {
    rc = rewrap(TS_EINTERNAL, "EXPORT_WRITE", src);
    goto out;
  }
  snprintf(rel, sizeof rel, "pt_files/%s.pt", slide);
  ts_io_join(o->out_dir, rel, pt_path, sizeof pt_path);
  snprintf(rel, sizeof rel, "h5_files/%s.h5", slide);
  ts_io_join(o->out_dir, rel, h5_path, sizeof h5_path);
  /* check both before writing either, so that a refused slide gets neither file */
  TS_TRY(ts_io_tmp_path(h5_path, tmp, sizeof tmp));
  if ((rc = write_clam_h5(tmp, src, &x)) < 0) {
    unlink(tmp);
    goto out;
  }
  if (!o->force && ts_io_exists(pt_path)) {
    int same = file_equals_buf(pt_path, pt, pt_len);
    if (same == 0)
      rc = ts_error_set(TS_EINPUT, "EXPORT_EXISTS",
                        "%s exists with other content: left as it is (--force replaces it)", pt_path);
    else if (same < 0)
      rc = same;
    if (rc < 0) {
      unlink(tmp);
      goto out;
    }
  }
  TS_TRY(put_file(tmp, h5_path, o->force, &r2));
  TS_TRY(put_bytes(pt_path, pt, pt_len, o->force, &r1));
  *changed_out = r1 == PUT_WRITTEN || r2 == PUT_WRITTEN;
out:
  free(pt);
  free(x.x);
  return rc;
}

/* ---- the command ---- */

static int parse(int argc, char **argv, opts *o) {
  memset(o, 0, sizeof *o);
  o->every = 100;
  const char **pos[] = {&o->format, &o->run_dir, &o->out_dir};
  int npos = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--force"))
      o->force = true;
    else if (!strcmp(a, "--quiet"))
      o->quiet = true;
    else if (!strcmp(a, "--encoder") && i + 1 < argc)
      o->encoder = argv[++i];
    else if (!strncmp(a, "--encoder=", 10))
      o->encoder = a + 10;
    else if (!strcmp(a, "--every") && i + 1 < argc) {
      char *end = NULL;
      o->every = strtol(argv[++i], &end, 10);
      if (!end || *end || o->every < 1)
        return ts_error_set(TS_EINVAL, "EXPORT_USAGE", "--every needs a positive integer, got '%s'", argv[i]);
    } else if (a[0] == '-' && a[1])
      return ts_error_set(TS_EINVAL, "EXPORT_USAGE", "unknown option '%s'", a);
    else if (npos < 3)
      *pos[npos++] = a;
    else
      return ts_error_set(TS_EINVAL, "EXPORT_USAGE", "unexpected argument '%s'", a);
  }
  if (npos < 3)
    return ts_error_set(TS_EINVAL, "EXPORT_USAGE",
                        "tessera export clam RUN_DIR OUT_DIR [--encoder NAME] [--force]");
  if (strcmp(o->format, "clam"))
    return ts_error_set(TS_EINVAL, "EXPORT_USAGE", "unknown export format '%s' (known: clam)", o->format);
  if (o->encoder && (!o->encoder[0] || strchr(o->encoder, '/') || o->encoder[0] == '.'))
    return ts_error_set(TS_EINVAL, "EXPORT_USAGE", "--encoder '%s' is not a directory name under features/",
                        o->encoder);
  return 0;
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int ts_cmd_export(int argc, char **argv) {
  if (ts_cli_wants_help(argc, argv)) {
    usage(stdout);
    return TS_EXIT_OK;
  }
  opts o;
  if (parse(argc, argv, &o) < 0) {
    fprintf(stderr, "%s\n\n", ts_error_message());
    usage(stderr);
    return TS_EXIT_USAGE;
  }
  int code = TS_EXIT_USAGE;
  ts_ledger *l = NULL;
  char **encs = NULL, **files = NULL;
  int nenc = 0, nfiles = 0;
  char path[TS_PATH_MAX], run_abs[PATH_MAX], out_abs[PATH_MAX], feat_dir[TS_PATH_MAX];
  tally t = {0};

  /* the run: a directory with a ledger */
  ts_io_join(o.run_dir, "ledger.sqlite", path, sizeof path);
  if (!is_dir(o.run_dir) || !ts_io_exists(path) || !realpath(o.run_dir, run_abs)) {
    fprintf(stderr, "EXPORT_NO_RUN: %s is not a tessera run directory (no %s)\n", o.run_dir, path);
    goto out;
  }
  if (ts_ledger_open(path, true, &l) < 0) {
    fprintf(stderr, "EXPORT_NO_RUN: %s: %s\n", path, ts_error_message());
    goto out;
  }
  if (resolve_path(o.out_dir, out_abs, sizeof out_abs) < 0) {
    fprintf(stderr, "%s\n", ts_error_message());
    goto out;
  }
  if (path_within(out_abs, run_abs)) {
    fprintf(stderr,
            "EXPORT_OUT_IN_RUN: %s (%s) is inside the run directory %s: choose a directory outside it\n",
            o.out_dir, out_abs, run_abs);
    goto out;
  }

  /* the encoder: named, or the only one the run has */
  char fe_root[TS_PATH_MAX];
  ts_io_join(o.run_dir, "features", fe_root, sizeof fe_root);
  if (!is_dir(fe_root) || list_dir(fe_root, true, &encs, &nenc) < 0 || nenc == 0) {
    fprintf(stderr, "EXPORT_NO_FEATURES: %s has no features (has the extract stage run?)\n", fe_root);
    goto out;
  }
  const char *enc = o.encoder;
  if (!enc && nenc > 1) {
    fprintf(stderr, "EXPORT_ENCODER: %s holds features of %d encoders; choose one with --encoder:", fe_root,
            nenc);
    for (int i = 0; i < nenc; i++)
      fprintf(stderr, " %s", encs[i]);
    fputc('\n', stderr);
    goto out;
  }
  if (!enc) enc = encs[0];
  ts_io_join(fe_root, enc, feat_dir, sizeof feat_dir);
  if (!is_dir(feat_dir)) {
    fprintf(stderr, "EXPORT_ENCODER: no %s; the run has features of:", feat_dir);
    for (int i = 0; i < nenc; i++)
      fprintf(stderr, " %s", encs[i]);
    fputc('\n', stderr);
    goto out;
  }
  if (list_dir(feat_dir, false, &files, &nfiles) < 0 || nfiles == 0) {
    fprintf(stderr, "EXPORT_NO_FEATURES: no <slide>.h5 in %s\n", feat_dir);
    goto out;
  }

  /* nothing was written so far; from here on a slide's failure is that slide's */
  for (int s = 0; s < 2; s++) {
    ts_io_join(o.out_dir, s ? "h5_files" : "pt_files", path, sizeof path);
    if (ts_io_mkdirs(path, 0777) < 0) {
      fprintf(stderr, "EXPORT_WRITE: %s\n", ts_error_message());
      goto out;
    }
  }
  double t0 = now_s();
  for (int i = 0; i < nfiles; i++) {
    char slide[256], rel[512], rec[1024], sum[65], have[65];
    snprintf(slide, sizeof slide, "%.*s", (int)(strlen(files[i]) - 3), files[i]);
    ts_io_join(feat_dir, files[i], path, sizeof path);
    snprintf(rel, sizeof rel, "features/%s/%s", enc, files[i]);
    rec[0] = '\0';
    if (ts_id_is_safe(slide) && ts_ledger_unit_output(l, EXPORT_STAGE, slide, rec, sizeof rec, sum) < 0) {
      fprintf(stderr, "EXPORT_LEDGER: %s: %s: skipped\n", path, ts_error_message());
      t.failed++;
    } else if (strcmp(rec, rel)) {
      fprintf(stderr, "EXPORT_NOT_DONE: %s: the ledger does not record it done for stage %s: skipped\n", path,
              EXPORT_STAGE);
      t.skipped++;
    } else if (ts_io_sha256_file(path, have, NULL) < 0 || strcmp(have, sum)) {
      fprintf(stderr, "EXPORT_NOT_DONE: %s: differs from the file the ledger recorded (checksum): skipped\n",
              path);
      t.skipped++;
    } else {
      bool changed = false;
      if (export_slide(&o, path, slide, &changed) < 0) {
        fprintf(stderr, "%s\n", ts_error_message());
        t.failed++;
      } else if (changed) {
        t.exported++;
      } else {
        t.unchanged++;
      }
    }
    if (!o.quiet && ((i + 1) % o.every == 0 || i + 1 == nfiles))
      printf("export: %d/%d slides (%ld exported, %ld unchanged, %ld skipped, %ld failed) %.1f s\n", i + 1,
             nfiles, t.exported, t.unchanged, t.skipped, t.failed, now_s() - t0);
    fflush(stdout);
  }
  printf("exported %s features of %ld slides to %s (pt_files/, h5_files/)%s\n", enc, t.exported + t.unchanged,
         o.out_dir, t.unchanged ? "; some files were already there with the same bytes" : "");
  code = (t.skipped || t.failed) ? TS_EXIT_FAILED_UNITS : TS_EXIT_OK;
out:
  free_names(encs, nenc);
  free_names(files, nfiles);
  ts_ledger_close(&l);
  return code;
}
