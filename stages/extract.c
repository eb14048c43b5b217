/* extract.c — stage "extract": a slide's tiles, encoded in shards of extract.shard_tiles tiles,
 * joined by one merge unit per slide into features/<encoder>/<slide>.h5.
 *
 * Units (both kinds in one stage, so that a slide's features appear as soon as its shards are):
 *   "<slide>#<first>-<end>"  a shard: tiles [first, end) of tiles/<slide>.h5, read with the tile
 *                            reader (decoding threads run ahead of inference) and encoded into
 *                            scratch/extract/<slide>/<first>-<end>.bin; its undecodable tiles go
 *                            to the ledger (bad_items) with the unit;
 *   "<slide>"                the merge: waits for the slide's shards, writes the final file:
 *                            `features` (N x D float32, or float16 on request, chunked by row
 *                            blocks), `coords` (copied from the tile file with all its CLAM/
 *                            TRIDENT/tessera attributes), `bad_tiles` (indexes of tiles that
 *                            could not be decoded: their feature rows are zero) and provenance
 *                            attributes; then (rank 0, once recorded) the shard files go.
 * One gigapixel slide thus spreads over every rank, and slides are planned largest first.
 *
 * Byte-identical whatever the ranks and the shard size: a shard starts at a multiple of
 * extract.batch, so the encoder meets exactly the batches (and micro-batches) it meets without
 * sharding; every micro-batch shape is warmed up once per process; the shard size is an "exec:"
 * key (not in the stage hash that the file records); HDF5 writes no timestamps.
 *
 * The encoder is built once per process and reused across units (building ResNet-50 costs
 * more than encoding a small slide); only this stage's worker thread touches it. */
#include <dirent.h>
#include <errno.h>
#include <hdf5.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "h5util.h"
#include "ts_encoder.h"
#include "ts_error.h"
#include "ts_io.h"
#include "ts_reader.h"
#include "ts_stage.h"
#include "ts_stop.h"
#include "ts_version.h"

static const char *const needs[] = {"tile", NULL};
static const char *const keys[] = {"cohort.csv", "cohort.mpp", "extract", NULL};

static int parse3(const char *s, double v[3], const char *key) {
  char *end;
  const char *p = s;
  for (int i = 0; i < 3; i++) {
    errno = 0;
    v[i] = strtod(p, &end);
    if (end == p || errno) break;
    p = end;
    while (*p == ' ') p++;
    if (i < 2 && *p++ != ',') break;
    if (i == 2 && !*p) return 0;
  }
  return ts_error_set(TS_ECONFIG, "CONFIG_TYPE", "extract.%s must be three numbers 'a,b,c', got '%s'", key, s);
}

static int local_ranks(void) {
  const char *v = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  if (!v) v = getenv("SLURM_NTASKS_PER_NODE");
  int n = v ? atoi(v) : 1;
  return n > 0 ? n : 1;
}

/* Run every micro-batch shape once on grey tiles. LibTorch/oneDNN round the *first* call of a
 * shape differently from later ones (measured: ~5e-7 on the last tile of a slide, depending on
 * which slide a process met first); after this, a unit's features do not depend on which rank
 * ran it or what it ran before. ts_encoder_forward_u8 only ever runs shapes 1..micro_batch, so
 * those are all it takes (this is per-rank start-up time that no number of ranks divides). */
static int warm_up(ts_encoder *e, int size) {
  int mb = ts_encoder_micro_batch(e);
  uint8_t *px = malloc((size_t)size * size * 3 * (size_t)mb);
  float *f = malloc(sizeof *f * (size_t)ts_encoder_dim(e) * (size_t)mb);
  int rc = px && f ? 0 : ts_error_set(TS_ENOMEM, "NO_MEMORY", "encoder warm-up");
  if (px) memset(px, 128, (size_t)size * size * 3 * (size_t)mb);
  for (int n = 1; rc >= 0 && n <= mb; n++)
    rc = ts_encoder_forward_u8(e, px, n, size, size, f, (size_t)n * (size_t)ts_encoder_dim(e));
  free(px);
  free(f);
  return rc;
}

/* One encoder per process, rebuilt only when the settings change. */
static pthread_mutex_t enc_mu = PTHREAD_MUTEX_INITIALIZER;
static ts_encoder *enc_cached;
static char enc_key[8192];

static int get_encoder(const ts_run *run, ts_encoder **out) {
  const ts_config *c = run->cfg;
  char key[sizeof enc_key];
  snprintf(key, sizeof key, "%s|%s|%lld|%s|%s|%lld", c->extract.encoder, c->extract.checkpoint,
           (long long)c->extract.input_size, c->extract.mean, c->extract.std, (long long)c->run.seed);
  pthread_mutex_lock(&enc_mu);
  int rc = 0;
  if (!enc_cached || strcmp(key, enc_key)) {
    ts_encoder_free(&enc_cached);
    ts_encoder_opts o;
    ts_encoder_opts_default(&o);
    o.input_size = (int)c->extract.input_size;
    o.seed = (uint64_t)c->run.seed;
    o.checkpoint = c->extract.checkpoint[0] ? c->extract.checkpoint : NULL;
    if ((rc = parse3(c->extract.mean, o.mean, "mean")) >= 0 && (rc = parse3(c->extract.std, o.std, "std")) >= 0) {
      int threads = (int)c->extract.threads;
      if (threads <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        threads = (int)(cores / local_ranks());
        if (threads < 1) threads = 1;
      }
      ts_nn_set_num_threads(threads);
      ts_nn_set_deterministic(true);
      rc = ts_encoder_new(c->extract.encoder, &o, &enc_cached);
      if (rc >= 0) snprintf(enc_key, sizeof enc_key, "%s", key);
      if (rc >= 0) rc = warm_up(enc_cached, (int)c->tile.size);
    }
  }
  *out = enc_cached;
  pthread_mutex_unlock(&enc_mu);
  return rc;
}

typedef struct sized { int row; int64_t tiles; } sized;

static int by_tiles_desc(const void *a, const void *b) {
  const sized *x = a, *y = b;
  if (x->tiles != y->tiles) return x->tiles < y->tiles ? 1 : -1;
  return x->row - y->row; /* stable: cohort order among equals */
}

static void shard_rel(const char *slide, int64_t first, int64_t end, char *buf, size_t n);

/* Tiles per shard for a slide of n tiles (0: the whole slide in one shard). */
static int64_t shard_size(const ts_config *c, int64_t n) {
  int64_t k = c->extract.shard_tiles;
  return k > 0 ? k : (n > 0 ? n : 1);
}

/* Units are handed out in plan order, so the largest slides go first (longest-processing-time
 * first): the run does not end waiting on one big slide started last. */
/* Before anything runs: the normalisation constants parse, and shards start at batch boundaries. */
static int check(const ts_config *c) {
  double v[3];
  TS_CALL(parse3(c->extract.mean, v, "mean"));
  TS_CALL(parse3(c->extract.std, v, "std"));
  for (int i = 0; i < 3; i++)
    if (!(v[i] > 0)) return ts_error_set(TS_ECONFIG, "CONFIG_RANGE", "extract.std must be three positive numbers, got '%s'", c->extract.std);
  if (c->extract.shard_tiles > 0 && c->extract.shard_tiles % c->extract.batch)
    return ts_error_set(TS_ECONFIG, "CONFIG_RANGE",
                        "extract.shard_tiles (%lld) must be a multiple of extract.batch (%lld), or 0 for one unit per slide: "
                        "a shard then meets the encoder in the same batches as the whole slide, so the features do not depend on it",
                        (long long)c->extract.shard_tiles, (long long)c->extract.batch);
  return 0;
}

static int plan(const ts_run *run, ts_units *units) {
  const ts_config *c = run->cfg;
  int n = run->cohort->n;
  sized *order = calloc((size_t)(n > 0 ? n : 1), sizeof *order);
  int *rows = malloc(sizeof *rows * (size_t)(n > 0 ? n : 1));
  ts_units slides;
  memset(&slides, 0, sizeof slides);
  int rc = 0;
  if (!order || !rows) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "extract plan");
  for (int i = 0; i < n; i++) {
    order[i].row = i;
    if (ts_id_is_safe(run->cohort->rows[i].slide_id))
      TS_TRY(ts_run_unit_items(run, "tile", run->cohort->rows[i].slide_id, &order[i].tiles));
  }
  qsort(order, (size_t)n, sizeof *order, by_tiles_desc);
  for (int k = 0; k < n; k++) rows[k] = order[k].row;
  TS_TRY(ts_units_for_slides(run, "tile", rows, &slides));
  for (int k = 0; k < n; k++) { /* slides.ids[k] is the slide of order[k] */
    const char *id = slides.ids[k];
    if (slides.fail_token[k]) {
      TS_TRY(ts_units_add_failed(units, id, slides.fail_token[k], slides.fail_message[k]));
      continue;
    }
    /* every unit of the slide is keyed by its slide row, file and tile file (slides.key[k] is
     * that key's hash): a slide whose inputs changed is re-encoded */
    const char *key = slides.key[k];
    bool merged = false;
    TS_TRY(ts_run_unit_is_done(run, id, key, &merged));
    int64_t first_shard = units->n;
    if (!merged) { /* a merged slide needs no shards (done ones of a past run stay on record) */
      int64_t nt = order[k].tiles, step = shard_size(c, nt);
      for (int64_t f = 0; f < nt; f += step) {
        char sid[300], rel[TS_PATH_MAX], path[TS_PATH_MAX], st[16];
        int64_t e = f + step < nt ? f + step : nt;
        snprintf(sid, sizeof sid, "%s#%lld-%lld", id, (long long)f, (long long)e);
        /* a shard recorded done whose file is gone (scratch cleaned by hand) is redone, not
         * left for the merge to fail on */
        TS_TRY(ts_run_unit_state(run, "extract", sid, st));
        shard_rel(id, f, e, rel, sizeof rel);
        TS_TRY(ts_run_path(run, rel, path, sizeof path));
        if (!strcmp(st, "done") && !ts_io_exists(path)) TS_TRY(ts_run_unit_redo(run, sid));
        TS_TRY(ts_units_add_keyed(units, sid, key));
      }
    }
    int64_t merge = units->n;
    TS_TRY(ts_units_add_keyed(units, id, key));
    for (int64_t sh = first_shard; sh < merge; sh++) TS_TRY(ts_units_wait(units, merge, sh));
  }
out:
  ts_units_clear(&slides);
  free(order);
  free(rows);
  return rc;
}

/* Read the tile file: coords and the geometry the tiles were laid with. */
static int read_tiles(const char *path, int64_t **coords, int64_t *n, double *mpp0, double *target_mpp,
                      int64_t *size, char *quickhash, size_t qn) {
  int rc = 0;
  ts__h5_quiet();
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), d = -1, sp = -1;
  if (f < 0) return ts__h5_fail(TS_EIO, "H5_READ", "cannot open %s", path);
  hsize_t dims[2] = {0, 0};
  if ((d = H5Dopen2(f, "coords", H5P_DEFAULT)) < 0 || (sp = H5Dget_space(d)) < 0 ||
      H5Sget_simple_extent_ndims(sp) != 2 || H5Sget_simple_extent_dims(sp, dims, NULL) < 0 || dims[1] != 2) {
    rc = ts__h5_fail(TS_EIO, "H5_READ", "%s: no N x 2 'coords'", path);
    goto out;
  }
  *n = (int64_t)dims[0];
  *coords = malloc(sizeof **coords * (size_t)(*n * 2 + 2));
  if (!*coords) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "%s: coords", path);
  if (*n && H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, *coords) < 0) {
    rc = ts__h5_fail(TS_EIO, "H5_READ", "%s: reading coords", path);
    goto out;
  }
  TS_TRY(ts__h5_read_attr_f64(d, "mpp_level0", mpp0));
  TS_TRY(ts__h5_read_attr_f64(d, "target_mpp", target_mpp));
  TS_TRY(ts__h5_read_attr_i64(d, "tile_size_px", size));
  quickhash[0] = '\0';
  hid_t a = H5Aopen(d, "slide_quickhash", H5P_DEFAULT);
  if (a >= 0) {
    hid_t t = H5Aget_type(a);
    char *s = NULL;
    if (H5Tis_variable_str(t) > 0 && H5Aread(a, t, &s) >= 0 && s) {
      snprintf(quickhash, qn, "%s", s);
      H5free_memory(s);
    }
    H5Tclose(t);
    H5Aclose(a);
  }
out:
  if (sp >= 0) H5Sclose(sp);
  if (d >= 0) H5Dclose(d);
  H5Fclose(f);
  return rc;
}

/* IEEE 754 half precision (HDF5 1.10 has no predefined one; h5py reads this as float16). */
static hid_t half_type(void) {
  hid_t t = H5Tcopy(H5T_IEEE_F32LE);
  if (t < 0 || H5Tset_fields(t, 15, 10, 5, 0, 10) < 0 || H5Tset_precision(t, 16) < 0 || H5Tset_size(t, 2) < 0 ||
      H5Tset_ebias(t, 15) < 0) {
    if (t >= 0) H5Tclose(t);
    return -1;
  }
  return t;
}

typedef struct feat_meta {
  const char *encoder, *weights_hash, *mean, *std, *config_hash, *quickhash, *backend, *slide_id;
  int64_t input_size;
} feat_meta;

static int write_features(const char *path, const char *tiles_path, const float *feat, int64_t n, int dim,
                          bool half, const int64_t *bad, int64_t n_bad, const feat_meta *m) {
  char tmp[TS_PATH_MAX];
  TS_CALL(ts_io_tmp_path(path, tmp, sizeof tmp));
  int rc = 0;
  hid_t f = -1, src = -1, sp = -1, dcpl = -1, d = -1, ft = -1, ocp = -1;
  if ((f = ts__h5_create(tmp)) < 0) return ts__h5_fail(TS_EIO, "H5_WRITE", "cannot create %s", tmp);
  /* coords with every attribute of the tile file, copied as they are */
  if ((src = H5Fopen(tiles_path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0 || (ocp = H5Pcreate(H5P_OBJECT_COPY)) < 0 ||
      H5Ocopy(src, "coords", f, "coords", ocp, H5P_DEFAULT) < 0) {
    rc = ts__h5_fail(TS_EIO, "H5_WRITE", "%s: copying coords from %s", tmp, tiles_path);
    goto out;
  }
  hsize_t dims[2] = {(hsize_t)n, (hsize_t)dim};
  hsize_t c0 = n < 1024 ? (n > 0 ? (hsize_t)n : 1) : 1024;
  if ((sp = H5Screate_simple(2, dims, NULL)) < 0 || (dcpl = ts__h5_dcpl(1, c0, (hsize_t)dim, 0)) < 0 ||
      (ft = half ? half_type() : H5Tcopy(H5T_IEEE_F32LE)) < 0 ||
      (d = H5Dcreate2(f, "features", ft, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT)) < 0 ||
      (n > 0 && H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, feat) < 0)) {
    rc = ts__h5_fail(TS_EIO, "H5_WRITE", "%s: features", tmp);
    goto out;
  }
  TS_TRY(ts__h5_attr_str(d, "encoder", m->encoder));
  TS_TRY(ts__h5_attr_str(d, "weights_hash", m->weights_hash));
  TS_TRY(ts__h5_attr_i64(d, "input_size", m->input_size));
  TS_TRY(ts__h5_attr_str(d, "mean", m->mean));
  TS_TRY(ts__h5_attr_str(d, "std", m->std));
  TS_TRY(ts__h5_attr_str(d, "config_hash", m->config_hash));
  TS_TRY(ts__h5_attr_str(d, "tessera_version", TS_VERSION));
  TS_TRY(ts__h5_attr_str(d, "slide_quickhash", m->quickhash));
  TS_TRY(ts__h5_attr_str(d, "slide_id", m->slide_id));
  TS_TRY(ts__h5_attr_str(d, "reader_backend", m->backend));
  TS_TRY(ts__h5_attr_i64(d, "n_bad_tiles", n_bad));
  H5Dclose(d);
  d = -1;
  H5Sclose(sp);
  H5Pclose(dcpl);
  dcpl = -1;
  hsize_t bd[1] = {(hsize_t)n_bad};
  /* no object timestamps (ts__h5_dcpl): the same input gives the same bytes */
  if ((sp = H5Screate_simple(1, bd, NULL)) < 0 || (dcpl = ts__h5_dcpl(0, 0, 0, 0)) < 0 ||
      (d = H5Dcreate2(f, "bad_tiles", H5T_STD_I64LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT)) < 0 ||
      (n_bad > 0 && H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, bad) < 0)) {
    rc = ts__h5_fail(TS_EIO, "H5_WRITE", "%s: bad_tiles", tmp);
    goto out;
  }
out:
  if (d >= 0) H5Dclose(d);
  if (ft >= 0) H5Tclose(ft);
  if (dcpl >= 0) H5Pclose(dcpl);
  if (sp >= 0) H5Sclose(sp);
  if (ocp >= 0) H5Pclose(ocp);
  if (src >= 0) H5Fclose(src);
  if (f >= 0 && H5Fclose(f) < 0 && rc == 0) rc = ts__h5_fail(TS_EIO, "H5_WRITE", "closing %s", tmp);
  if (rc == 0) rc = ts_io_commit(tmp, path);
  if (rc < 0) unlink(tmp);
  return rc;
}

/* ---- shards ---- */

/* A shard file: this header, (end - first) x dim float32 features, n_bad int64 tile indexes.
 * Scratch between two units of one run (all its ranks share one byte order), never an output. */
typedef struct shard_header {
  char magic[8]; /* "TSSHARD1" */
  int64_t first, end, dim, n_bad;
  char backend[32];
  char weights_hash[72]; /* of the encoder that wrote it: the merge needs no encoder */
} shard_header;

static const char SHARD_MAGIC[8] = {'T', 'S', 'S', 'H', 'A', 'R', 'D', '2'};

static void shard_rel(const char *slide, int64_t first, int64_t end, char *buf, size_t n) {
  snprintf(buf, n, "scratch/extract/%s/%lld-%lld.bin", slide, (long long)first, (long long)end);
}

/* "<slide>#<first>-<end>" → its parts; false for a merge unit's name. */
static bool parse_shard(const char *id, char *slide, size_t n, int64_t *first, int64_t *end) {
  const char *hash = strchr(id, '#');
  if (!hash) return false;
  snprintf(slide, n, "%.*s", (int)(hash - id), id);
  char *e1, *e2;
  *first = strtoll(hash + 1, &e1, 10);
  if (*e1 != '-') return false;
  *end = strtoll(e1 + 1, &e2, 10);
  return !*e2 && *first >= 0 && *end > *first;
}

static int work_shard(const ts_run *run, const char *id, const char *slide, int64_t first, int64_t end,
                      ts_unit_record *rec) {
  const ts_config *c = run->cfg;
  const ts_cohort_row *row = ts_cohort_find(run->cohort, slide);
  if (!row) return ts_error_set(TS_EINTERNAL, "UNIT_UNKNOWN", "slide %s is not in the cohort", slide);
  int rc = 0;
  int64_t *coords = NULL, n = 0, size = 0;
  double mpp0 = 0, target = 0;
  char quickhash[128], tiles_path[TS_PATH_MAX], rel[TS_PATH_MAX], path[TS_PATH_MAX];
  ts_reader *r = NULL;
  ts_encoder *enc = NULL;
  uint8_t *buf = NULL;
  snprintf(rel, sizeof rel, "tiles/%s.h5", slide);
  TS_TRY(ts_run_path(run, rel, tiles_path, sizeof tiles_path));
  TS_TRY(read_tiles(tiles_path, &coords, &n, &mpp0, &target, &size, quickhash, sizeof quickhash));
  if (end > n) TS_FAIL(TS_EINTERNAL, "UNIT_UNKNOWN", "unit %s: %s has %lld tiles", id, tiles_path, (long long)n);
  TS_TRY(get_encoder(run, &enc));
  int64_t m = end - first, dim = ts_encoder_dim(enc);
  size_t feat_bytes = (size_t)m * (size_t)dim * sizeof(float);
  /* the file's bytes, built in place: header, features, bad tile indexes (at most m) */
  buf = calloc(1, sizeof(shard_header) + feat_bytes + (size_t)m * sizeof(int64_t));
  rec->bad = calloc((size_t)m, sizeof *rec->bad);
  if (!buf || !rec->bad) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "unit %s: %lld x %lld features", id, (long long)m, (long long)dim);
  shard_header *h = (shard_header *)buf;
  float *feat = (float *)(buf + sizeof *h);
  int64_t *bad = (int64_t *)(buf + sizeof *h + feat_bytes), n_bad = 0;
  ts_reader_opts ro;
  ts_reader_opts_default(&ro);
  ro.threads = (int)c->extract.decode_threads;
  ro.batch = (int)c->extract.batch;
  TS_TRY(ts_reader_open(row->path, slide, mpp0, target, (int)size, &ro, &r));
  TS_TRY(ts_reader_start(r, coords + 2 * first, m));
  ts_reader_batch *b = NULL;
  while ((rc = ts_reader_next(r, &b)) == 0 && b) {
    if (ts_stop_requested()) { /* Slurm's time limit: give the unit back, write nothing */
      ts_reader_release(r, &b);
      rc = ts_stop_error(id);
      break;
    }
    float *dst = feat + (size_t)b->first * (size_t)dim;
    rc = ts_encoder_forward_u8(enc, b->pixels, b->n, b->size, b->size, dst, (size_t)b->n * (size_t)dim);
    for (int i = 0; rc >= 0 && i < b->n; i++)
      if (b->status[i] < 0) {
        ts_bad_item *it = &rec->bad[n_bad];
        it->item = first + b->first + i;
        it->x = b->coords[2 * i];
        it->y = b->coords[2 * i + 1];
        snprintf(it->token, sizeof it->token, "%s", b->token[i] && b->token[i][0] ? b->token[i] : "TILE_DECODE");
        if (!rec->bad_message[0] && b->first_error[0]) {
          snprintf(rec->bad_message, sizeof rec->bad_message, "%s", b->first_error);
          for (char *ch = rec->bad_message; *ch; ch++) /* libvips' messages span lines: keep the ledger's on one */
            if (*ch == '\n' || *ch == '\r') *ch = ' ';
        }
        bad[n_bad++] = it->item;
        memset(dst + (size_t)i * (size_t)dim, 0, sizeof *dst * (size_t)dim); /* no features from zeroed pixels */
      }
    ts_reader_release(r, &b);
    if (rc < 0) break;
  }
  if (rc < 0) goto out;
  memcpy(h->magic, SHARD_MAGIC, sizeof h->magic);
  h->first = first;
  h->end = end;
  h->dim = dim;
  h->n_bad = n_bad;
  snprintf(h->backend, sizeof h->backend, "%s", ts_reader_backend_name(r));
  snprintf(h->weights_hash, sizeof h->weights_hash, "%s", ts_encoder_weights_hash(enc));
  char dir[TS_PATH_MAX];
  snprintf(rel, sizeof rel, "scratch/extract/%s", slide);
  TS_TRY(ts_run_path(run, rel, dir, sizeof dir));
  TS_TRY(ts_io_mkdirs(dir, 0755));
  shard_rel(slide, first, end, rec->output, sizeof rec->output);
  TS_TRY(ts_run_path(run, rec->output, path, sizeof path));
  TS_TRY(ts_io_write_atomic(path, buf, sizeof *h + feat_bytes + (size_t)n_bad * sizeof *bad));
  rec->items = m;
  rec->n_bad = n_bad;
out:
  ts_reader_free(&r);
  free(coords);
  free(buf);
  return rc;
}

/* ---- merge ---- */

/* Read and check the shard file of tiles [first, end): *data_out (caller frees) starts with
 * its header. */
static int read_shard(const ts_run *run, const char *slide, int64_t first, int64_t end, char **data_out) {
  char rel[TS_PATH_MAX], path[TS_PATH_MAX];
  shard_rel(slide, first, end, rel, sizeof rel);
  TS_CALL(ts_run_path(run, rel, path, sizeof path));
  char *data = NULL;
  size_t len = 0;
  if (ts_io_read_all(path, &data, &len) < 0)
    return ts_error_set(TS_EIO, "SHARD_MISSING", "slide %s: shard %s cannot be read (%s): run the same command again: "
                        "the next run redoes shards whose files are gone", slide, path, ts_error_detail());
  const shard_header *h = (const shard_header *)data;
  if (len < sizeof *h || memcmp(h->magic, SHARD_MAGIC, sizeof h->magic) || h->first != first || h->end != end || h->dim < 1 ||
      h->n_bad < 0 || h->n_bad > end - first ||
      len != sizeof *h + (size_t)(end - first) * (size_t)h->dim * sizeof(float) + (size_t)h->n_bad * sizeof(int64_t)) {
    free(data);
    return ts_error_set(TS_EIO, "SHARD_CORRUPT", "slide %s: %s is not the shard of tiles %lld-%lld", slide, path,
                        (long long)first, (long long)end);
  }
  *data_out = data;
  return 0;
}

static int work_merge(const ts_run *run, const char *slide, ts_unit_record *rec) {
  const ts_config *c = run->cfg;
  int rc = 0;
  int64_t *coords = NULL, n = 0, size = 0, *bad = NULL, n_bad = 0, dim = 0;
  float *feat = NULL;
  double mpp0 = 0, target = 0;
  char quickhash[128], tiles_path[TS_PATH_MAX], dir[TS_PATH_MAX], out_path[TS_PATH_MAX], rel[256], tag[200];
  char backend[40] = "none", weights_hash[72] = "", *data = NULL;
  snprintf(rel, sizeof rel, "tiles/%s.h5", slide);
  TS_TRY(ts_run_path(run, rel, tiles_path, sizeof tiles_path));
  TS_TRY(read_tiles(tiles_path, &coords, &n, &mpp0, &target, &size, quickhash, sizeof quickhash));
  if (n == 0) { /* no shard to say what the encoder gives: ask it */
    ts_encoder *enc = NULL;
    TS_TRY(get_encoder(run, &enc));
    dim = ts_encoder_dim(enc);
    snprintf(weights_hash, sizeof weights_hash, "%s", ts_encoder_weights_hash(enc));
  }
  int64_t step = shard_size(c, n);
  for (int64_t f = 0; f < n; f += step) {
    int64_t e = f + step < n ? f + step : n;
    TS_TRY(read_shard(run, slide, f, e, &data));
    const shard_header *h = (const shard_header *)data;
    if (!feat) { /* the first shard sets the width; the others must agree */
      dim = h->dim;
      snprintf(backend, sizeof backend, "%.31s", h->backend);
      snprintf(weights_hash, sizeof weights_hash, "%.64s", h->weights_hash);
      feat = malloc(sizeof *feat * (size_t)n * (size_t)dim);
      bad = malloc(sizeof *bad * (size_t)n);
      if (!feat || !bad) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "slide %s: %lld x %lld features", slide, (long long)n, (long long)dim);
    } else if (h->dim != dim || strncmp(h->weights_hash, weights_hash, 64)) {
      TS_FAIL(TS_EIO, "SHARD_CORRUPT", "slide %s: shard %lld-%lld was written by another encoder than shard 0", slide,
              (long long)f, (long long)e);
    }
    size_t feat_bytes = (size_t)(e - f) * (size_t)dim * sizeof(float);
    memcpy(feat + (size_t)f * (size_t)dim, data + sizeof *h, feat_bytes);
    memcpy(bad + n_bad, data + sizeof *h + feat_bytes, (size_t)h->n_bad * sizeof(int64_t));
    n_bad += h->n_bad;
    free(data);
    data = NULL;
  }
  TS_TRY(ts_run_path(run, "features", dir, sizeof dir));
  ts_encoder_tag(c->extract.encoder, tag, sizeof tag);
  snprintf(rec->output, sizeof rec->output, "features/%s/%s.h5", tag, slide);
  snprintf(rel, sizeof rel, "features/%s", tag);
  TS_TRY(ts_run_path(run, rel, dir, sizeof dir));
  TS_TRY(ts_io_mkdirs(dir, 0755));
  TS_TRY(ts_run_path(run, rec->output, out_path, sizeof out_path));
  feat_meta m = {.encoder = c->extract.encoder, .weights_hash = weights_hash, .mean = c->extract.mean,
                 .std = c->extract.std, .config_hash = run->stage_hash ? run->stage_hash : "", .quickhash = quickhash,
                 .backend = backend, .slide_id = slide, .input_size = c->extract.input_size};
  TS_TRY(write_features(out_path, tiles_path, feat, n, (int)dim, c->extract.float16, bad, n_bad, &m));
  rec->items = 0; /* the stage's items are tiles encoded: the shards count them */
out:
  free(data);
  free(coords);
  free(feat);
  free(bad);
  return rc;
}

static int work(const ts_run *run, const ts_unit *u, ts_unit_record *rec) {
  char slide[200];
  int64_t first = 0, end = 0;
  if (strchr(u->id, '#')) {
    if (!parse_shard(u->id, slide, sizeof slide, &first, &end))
      return ts_error_set(TS_EINTERNAL, "UNIT_UNKNOWN", "extract: '%s' is not a shard name", u->id);
    return work_shard(run, u->id, slide, first, end, rec);
  }
  if (!ts_cohort_find(run->cohort, u->id)) return ts_error_set(TS_EINTERNAL, "UNIT_UNKNOWN", "slide %s is not in the cohort", u->id);
  return work_merge(run, u->id, rec);
}

/* ---- rank 0: shard files go once their slide's merge is recorded ---- */

/* Remove scratch/extract/<slide>/ (only our shard files and their temporaries) and mark the
 * shard units' outputs consumed. Best effort on the files: a leftover only costs space. */
static int drop_shards(const ts_run *run, const char *slide) {
  char rel[TS_PATH_MAX], dir[TS_PATH_MAX], prefix[300];
  snprintf(rel, sizeof rel, "scratch/extract/%s", slide);
  TS_CALL(ts_run_path(run, rel, dir, sizeof dir));
  DIR *d = opendir(dir);
  if (d) {
    for (struct dirent *e; (e = readdir(d));) {
      if (!strstr(e->d_name, ".bin")) continue;
      char p[TS_PATH_MAX];
      if (ts_io_join(dir, e->d_name, p, sizeof p) >= 0) unlink(p);
    }
    closedir(d);
    rmdir(dir);
  }
  snprintf(prefix, sizeof prefix, "%s#", slide);
  return ts_run_retire_outputs(run, prefix);
}

static int unit_done(const ts_run *run, const char *unit) {
  return strchr(unit, '#') ? 0 : drop_shards(run, unit);
}

/* After a kill between a merge's record and its clean-up: sweep every merged slide. */
static int finish(const ts_run *run) {
  int rc = ts_run_begin(run);
  for (int i = 0; rc >= 0 && i < run->cohort->n; i++) {
    const char *id = run->cohort->rows[i].slide_id;
    char state[16], rel[TS_PATH_MAX], dir[TS_PATH_MAX];
    if (!ts_id_is_safe(id)) continue;
    snprintf(rel, sizeof rel, "scratch/extract/%s", id);
    if ((rc = ts_run_path(run, rel, dir, sizeof dir)) < 0 || !ts_io_exists(dir)) continue;
    if ((rc = ts_run_unit_state(run, "extract", id, state)) >= 0 && !strcmp(state, "done")) rc = drop_shards(run, id);
  }
  int cc = ts_run_commit(run); /* retirements done before an error are true: keep them */
  return rc < 0 ? rc : cc;
}

extern const struct ts_report_section ts_report_section_features; /* stages/report_features.c */

const struct ts_stage ts_stage_extract = {
    .abi = TS_STAGE_ABI,
    .name = "extract",
    .kind = TS_SHARDED,
    .needs = needs,
    .config_keys = keys,
    .plan = plan,
    .work = work,
    .finish = finish,
    .unit_done = unit_done,
    .check = check,
    .items_unit = "tiles",
    .unit_noun = "slide",
    .part_noun = "shard",
    .report = (const struct ts_report_section *const[]){&ts_report_section_features, NULL},
};
