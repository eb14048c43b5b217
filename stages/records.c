/* records.c — stage "records": the clinical and genomic tables of the cohort (cohort.clinical,
 * cohort.genomic), validated against the schemas records.clinical_schema and
 * records.genomic_schema (grammar in workers/ts_records.h), normalised, and written to
 * records/records.h5 keyed by patient id.
 *
 *   plan    rank 0: parse both schemas (a bad one is a config error: CONFIG_RECORDS_SCHEMA,
 *           TS_ECONFIG, the run stops before any unit), read each table once, and list one unit
 *           per block of records.block_rows rows: "clinical:0", "clinical:1", ..., "genomic:0".
 *           What can be seen from the whole table goes in as failed units already: a table
 *           that cannot be read or whose header lacks a required column fails all its blocks;
 *           a patient id seen before fails the block of its second row (RECORDS_DUPLICATE_ID),
 *           since no block sees the others.
 *   work    any rank: validate the block's rows (types, ranges, allowed values, required cells:
 *           the first bad cell names file:line:column and fails the block, not the run) and
 *           write its statistics to records/partial/<table>-<block>.h5 (Welford mean and M2,
 *           level counts, the CSV's SHA-256).
 *   finish  rank 0: merge the partials (Chan et al.), z-score / one-hot the rows of the good
 *           blocks and write records/records.h5 atomically. Failed blocks do not stop it: their
 *           rows are left out and listed (failed_blocks, missing_patient_id), and the statistics
 *           are those of the rows written — a partial result that says what it lacks is more
 *           use to a lab than none, and `tessera status` still lists the failures (exit 1).
 *           Patients without slides and slides without patients (cohort CSV) are written as
 *           datasets and reported on stderr, never dropped silently.
 * The stage reads no slide output (needs nothing): it may run anywhere in the registry.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h5util.h"
#include "ts_error.h"
#include "ts_io.h"
#include "ts_records.h"
#include "ts_stage.h"
#include "ts_version.h"

static const char *const needs[] = {NULL};
static const char *const keys[] = {"cohort", "records", NULL};

typedef struct table_def {
  const char *name, *path, *schema, *key;
} table_def;

static void tables_of(const ts_config *c, table_def d[2]) {
  d[0] = (table_def){"clinical", c->cohort.clinical, c->records.clinical_schema, "records.clinical_schema"};
  d[1] = (table_def){"genomic", c->cohort.genomic, c->records.genomic_schema, "records.genomic_schema"};
}

static int64_t n_blocks(const ts_rec_table *t, int64_t block_rows) {
  int64_t n = (t->nrows + block_rows - 1) / block_rows;
  return n > 0 ? n : 1;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* id of every data row (NULL where the row does not split); one malloc'd array of strdup'd ids. */
static int row_ids(const ts_rec_table *t, char ***ids_out) {
  char **ids = calloc((size_t)(t->nrows ? t->nrows : 1), sizeof *ids);
  if (!ids) return ts_error_set(TS_ENOMEM, "OUT_OF_MEMORY", "ids");
  for (int64_t r = 0; r < t->nrows; r++) {
    char **f = NULL;
    int nf = 0;
    if (ts_rec_row_fields(t, r, &f, &nf) < 0) continue;
    ids[r] = f[t->id_csv][0] ? strdup(f[t->id_csv]) : NULL;
    free(f);
  }
  ts_error_clear();
  *ids_out = ids;
  return 0;
}

static void free_ids(char **ids, int64_t n) {
  for (int64_t i = 0; ids && i < n; i++) free(ids[i]);
  free(ids);
}

typedef struct id_row {
  const char *id;
  int64_t row;
} id_row;

static int cmp_id_row(const void *a, const void *b) {
  const id_row *x = a, *y = b;
  int c = strcmp(x->id, y->id);
  return c ? c : (x->row > y->row) - (x->row < y->row);
}

static int plan_table(const ts_run *run, const table_def *d, ts_units *units) {
  int rc = 0;
  ts_rec_schema s;
  ts_rec_table *t = NULL;
  char **ids = NULL, **dup_msg = NULL;
  id_row *pairs = NULL;
  int64_t B = run->cfg->records.block_rows, nb = 0;
  char uid[128];
  TS_CALL(ts_rec_schema_parse(d->schema, d->key, &s));
  if (!d->path[0]) goto out; /* no such table in this cohort */
  int e = ts_rec_table_open(d->name, d->path, &s, &t);
  if (e < 0) {
    /* the whole table is unusable: every block fails with the same token */
    char tok[64], msg[2048];
    snprintf(tok, sizeof tok, "%s", ts_error_token());
    snprintf(msg, sizeof msg, "%s", ts_error_message());
    nb = t ? n_blocks(t, B) : 1;
    for (int64_t b = 0; b < nb; b++) {
      snprintf(uid, sizeof uid, "%s:%lld", d->name, (long long)b);
      TS_TRY(ts_units_add_failed(units, uid, tok, msg));
    }
    goto out;
  }
  nb = n_blocks(t, B);
  char fsum[65] = "";
  int64_t fbytes = 0;
  TS_TRY(ts_io_sha256_file(d->path, fsum, &fbytes)); /* a block's key: the table's bytes (a changed CSV redoes it) */
  /* duplicate ids: sort (id, row), flag the block of every repeat */
  TS_TRY(row_ids(t, &ids));
  pairs = calloc((size_t)(t->nrows ? t->nrows : 1), sizeof *pairs);
  dup_msg = calloc((size_t)nb, sizeof *dup_msg);
  if (!pairs || !dup_msg) TS_FAIL(TS_ENOMEM, "OUT_OF_MEMORY", "ids");
  int64_t np = 0;
  for (int64_t r = 0; r < t->nrows; r++)
    if (ids[r]) pairs[np++] = (id_row){ids[r], r};
  qsort(pairs, (size_t)np, sizeof *pairs, cmp_id_row);
  for (int64_t i = 1; i < np; i++) {
    if (strcmp(pairs[i].id, pairs[i - 1].id)) continue;
    int64_t b = pairs[i].row / B, first = i - 1;
    while (first > 0 && !strcmp(pairs[first - 1].id, pairs[i].id)) first--;
    if (dup_msg[b]) continue; /* the first repeat of a block is the message */
    char m[1024];
    snprintf(m, sizeof m, "RECORDS_DUPLICATE_ID: %s:%d:%d: patient id '%s' already on line %d", t->path,
             t->row_line[pairs[i].row], t->id_csv + 1, pairs[i].id, t->row_line[pairs[first].row]);
    dup_msg[b] = strdup(m);
  }
  for (int64_t b = 0; b < nb; b++) {
    snprintf(uid, sizeof uid, "%s:%lld", d->name, (long long)b);
    if (dup_msg[b]) TS_TRY(ts_units_add_failed(units, uid, "RECORDS_DUPLICATE_ID", dup_msg[b]));
    else {
      char key[1400];
      snprintf(key, sizeof key, "table=%s\nsha256=%s\nblock_rows=%lld\n", d->path, fsum, (long long)B);
      TS_TRY(ts_units_add_keyed(units, uid, key));
    }
  }
out:
  for (int64_t b = 0; dup_msg && b < nb; b++) free(dup_msg[b]);
  free(dup_msg);
  free(pairs);
  if (t) free_ids(ids, t->nrows);
  ts_rec_table_free(&t);
  ts_rec_schema_clear(&s);
  return rc;
}

static int plan(const ts_run *run, ts_units *units) {
  table_def d[2];
  tables_of(run->cfg, d);
  for (int i = 0; i < 2; i++) TS_CALL(plan_table(run, &d[i], units));
  return 0;
}

/* A cohort without clinical and genomic tables has nothing for this stage: leave it out. */
static int skip(const ts_run *run, char *why, size_t n) {
  const ts_config *c = run->cfg;
  if ((c->cohort.clinical && c->cohort.clinical[0]) || (c->cohort.genomic && c->cohort.genomic[0])) return 0;
  snprintf(why, n, "no clinical or genomic table in this cohort (config cohort.clinical and cohort.genomic are empty)");
  return 1;
}

static int work(const ts_run *run, const ts_unit *u, ts_unit_record *rec) {
  table_def d[2];
  tables_of(run->cfg, d);
  const table_def *td = NULL;
  long long b = -1;
  for (int i = 0; i < 2; i++) {
    size_t l = strlen(d[i].name);
    if (!strncmp(u->id, d[i].name, l) && u->id[l] == ':') {
      char *end = NULL;
      b = strtoll(u->id + l + 1, &end, 10);
      if (end && !*end && b >= 0) td = &d[i];
    }
  }
  if (!td) return ts_error_set(TS_EINTERNAL, "UNIT_UNKNOWN", "records unit '%s' is not TABLE:BLOCK", u->id);
  int rc = 0;
  ts_rec_schema s;
  ts_rec_table *t = NULL;
  ts_rec_stats st;
  memset(&st, 0, sizeof st);
  char dir[TS_PATH_MAX], path[TS_PATH_MAX];
  TS_CALL(ts_rec_schema_parse(td->schema, td->key, &s));
  TS_TRY(ts_rec_table_open(td->name, td->path, &s, &t));
  int64_t B = run->cfg->records.block_rows, r0 = (int64_t)b * B, r1 = r0 + B;
  if (r1 > t->nrows) r1 = t->nrows;
  if (r0 > 0 && r0 >= t->nrows)
    TS_FAIL(TS_EINPUT, "RECORDS_STALE", "%s has %lld rows now: block %lld is past its end (the CSV changed during the run)", t->path, (long long)t->nrows, b);
  TS_TRY(ts_rec_block_stats(t, r0, r1, &st));
  TS_TRY(ts_run_path(run, "records/partial", dir, sizeof dir));
  TS_TRY(ts_io_mkdirs(dir, 0755));
  snprintf(rec->output, sizeof rec->output, "records/partial/%s-%lld.h5", td->name, b);
  TS_TRY(ts_run_path(run, rec->output, path, sizeof path));
  TS_TRY(ts_rec_partial_write(path, t, b, r0, r1, &st));
  rec->items = r1 - r0;
out:
  ts_rec_stats_clear(&st);
  ts_rec_table_free(&t);
  ts_rec_schema_clear(&s);
  return rc;
}

/* ------------------------------------------------------------------ finish ---- */

typedef struct str_list {
  int64_t n, cap;
  char **s;
} str_list;

static int list_add(str_list *l, const char *s) {
  if (l->n == l->cap) {
    int64_t cap = l->cap ? 2 * l->cap : 16;
    char **p = realloc(l->s, (size_t)cap * sizeof *p);
    if (!p) return ts_error_set(TS_ENOMEM, "OUT_OF_MEMORY", "list");
    l->s = p;
    l->cap = cap;
  }
  if (!(l->s[l->n] = strdup(s))) return ts_error_set(TS_ENOMEM, "OUT_OF_MEMORY", "list");
  l->n++;
  return 0;
}

static void list_clear(str_list *l) {
  free_ids(l->s, l->n);
  memset(l, 0, sizeof *l);
}

static void report_list(const char *table, const char *what, const str_list *l) {
  if (!l->n) return;
  fprintf(stderr, "records: %s: %lld %s:", table, (long long)l->n, what);
  for (int64_t i = 0; i < l->n && i < 20; i++) fprintf(stderr, " %s", l->s[i]);
  fprintf(stderr, "%s\n", l->n > 20 ? " ..." : "");
}

static int finish_table(const ts_run *run, const table_def *d, int64_t file) {
  int rc = 0;
  ts_rec_schema s;
  ts_rec_table *t = NULL;
  ts_rec_stats total, part;
  memset(&total, 0, sizeof total);
  memset(&part, 0, sizeof part);
  char **ids = NULL, **sorted = NULL, *err = NULL;
  int64_t *rows = NULL, nrows_out = 0;
  str_list failed = {0}, missing = {0}, pws = {0}, swp = {0};
  int64_t B = run->cfg->records.block_rows;
  ts_rec_h5_table o = {.name = d->name, .source = d->path, .schema_text = d->schema, .block_rows = B};
  TS_CALL(ts_rec_schema_parse(d->schema, d->key, &s));
  if (ts_rec_table_open(d->name, d->path, &s, &t) < 0) {
    err = strdup(ts_error_message());
    fprintf(stderr, "records: %s: not written: %s\n", d->name, err);
    o.error = err ? err : "RECORDS_BAD_CSV";
    TS_TRY(ts_rec_h5_write_table(file, &o));
    goto out;
  }
  TS_TRY(ts_rec_stats_init(&total, t->ncols, t->n_cat));
  TS_TRY(row_ids(t, &ids));
  rows = malloc((size_t)(t->nrows ? t->nrows : 1) * sizeof *rows);
  if (!rows) TS_FAIL(TS_ENOMEM, "OUT_OF_MEMORY", "rows");
  int64_t nb = n_blocks(t, B);
  for (int64_t b = 0; b < nb; b++) {
    char uid[128], rel[256], path[TS_PATH_MAX], token[64] = "";
    snprintf(uid, sizeof uid, "%s:%lld", d->name, (long long)b);
    snprintf(rel, sizeof rel, "records/partial/%s-%lld.h5", d->name, (long long)b);
    TS_TRY(ts_run_unit_error(run, "records", uid, token, NULL, 0));
    TS_TRY(ts_run_path(run, rel, path, sizeof path));
    int64_t r0 = b * B, r1 = r0 + B < t->nrows ? r0 + B : t->nrows;
    bool good = !token[0];
    if (good && ts_rec_partial_read(path, t, &part) < 0) {
      fprintf(stderr, "records: %s: block %s left out: %s\n", d->name, uid, ts_error_message());
      good = false;
    }
    if (good && part.rows != r1 - r0) {
      fprintf(stderr, "records: %s: block %s left out: RECORDS_STALE: %lld rows in the partial, %lld in the CSV\n", d->name, uid,
              (long long)part.rows, (long long)(r1 - r0));
      good = false;
    }
    if (good) TS_TRY(ts_rec_stats_merge(&total, &part));
    ts_rec_stats_clear(&part);
    if (!good) {
      TS_TRY(list_add(&failed, uid));
      for (int64_t r = r0; r < r1; r++)
        if (ids[r]) TS_TRY(list_add(&missing, ids[r]));
      continue;
    }
    for (int64_t r = r0; r < r1; r++) rows[nrows_out++] = r;
  }
  /* patients and slides that do not meet */
  const ts_cohort *c = run->cohort;
  sorted = calloc((size_t)(t->nrows ? t->nrows : 1), sizeof *sorted);
  char **pat = calloc((size_t)(c->n ? c->n : 1), sizeof *pat);
  if (!sorted || !pat) {
    free(pat);
    TS_FAIL(TS_ENOMEM, "OUT_OF_MEMORY", "ids");
  }
  int64_t ns = 0;
  for (int64_t r = 0; r < t->nrows; r++)
    if (ids[r]) sorted[ns++] = ids[r];
  qsort(sorted, (size_t)ns, sizeof *sorted, cmp_str);
  for (int i = 0; i < c->n; i++) pat[i] = c->rows[i].patient_id;
  qsort(pat, (size_t)c->n, sizeof *pat, cmp_str);
  for (int64_t i = 0; i < ns && rc == 0; i++) {
    if (i > 0 && !strcmp(sorted[i], sorted[i - 1])) continue;
    if (!bsearch(&sorted[i], pat, (size_t)c->n, sizeof *pat, cmp_str)) rc = list_add(&pws, sorted[i]);
  }
  for (int i = 0; i < c->n && rc == 0; i++)
    if (!bsearch(&c->rows[i].patient_id, sorted, (size_t)ns, sizeof *sorted, cmp_str)) rc = list_add(&swp, c->rows[i].slide_id);
  free(pat);
  if (rc < 0) goto out;
  report_list(d->name, "block(s) failed, their rows are left out of records.h5", &failed);
  report_list(d->name, "patient(s) without slides", &pws);
  report_list(d->name, "slide(s) without a patient row", &swp);
  o.t = t;
  o.stats = &total;
  o.n_rows = nrows_out;
  o.rows = rows;
  o.failed_blocks = (const char *const *)failed.s;
  o.n_failed_blocks = failed.n;
  o.missing_ids = (const char *const *)missing.s;
  o.n_missing_ids = missing.n;
  o.patients_without_slides = (const char *const *)pws.s;
  o.n_patients_without_slides = pws.n;
  o.slides_without_patient = (const char *const *)swp.s;
  o.n_slides_without_patient = swp.n;
  TS_TRY(ts_rec_h5_write_table(file, &o));
out:
  list_clear(&failed);
  list_clear(&missing);
  list_clear(&pws);
  list_clear(&swp);
  free(sorted);
  free(rows);
  free(err);
  if (t) free_ids(ids, t->nrows);
  ts_rec_stats_clear(&total);
  ts_rec_stats_clear(&part);
  ts_rec_table_free(&t);
  ts_rec_schema_clear(&s);
  return rc;
}

static int finish(const ts_run *run) {
  table_def d[2];
  tables_of(run->cfg, d);
  char dir[TS_PATH_MAX], path[TS_PATH_MAX], tmp[TS_PATH_MAX], hash[65];
  TS_CALL(ts_run_path(run, "records", dir, sizeof dir));
  TS_CALL(ts_io_mkdirs(dir, 0755));
  TS_CALL(ts_run_path(run, "records/records.h5", path, sizeof path));
  TS_CALL(ts_io_tmp_path(path, tmp, sizeof tmp));
  hid_t f = ts__h5_create(tmp);
  if (f < 0) return ts__h5_fail(TS_EIO, "H5_WRITE", "%s: create", tmp);
  int rc = 0;
  ts_config_hash_keys(run->cfg, keys, hash);
  TS_TRY(ts__h5_attr_str(f, "tessera_version", TS_VERSION));
  TS_TRY(ts__h5_attr_str(f, "config_hash", hash));
  TS_TRY(ts__h5_attr_str(f, "cohort_csv", run->cohort->csv_path ? run->cohort->csv_path : ""));
  for (int i = 0; i < 2; i++)
    if (d[i].path[0]) TS_TRY(finish_table(run, &d[i], f));
out:
  if (H5Fclose(f) < 0 && rc == 0) rc = ts__h5_fail(TS_EIO, "H5_WRITE", "%s: close", tmp);
  if (rc == 0) rc = ts_io_commit(tmp, path);
  if (rc < 0) remove(tmp);
  return rc;
}

const struct ts_stage ts_stage_records = {
    .abi = TS_STAGE_ABI,
    .name = "records",
    .kind = TS_SHARDED,
    .needs = needs,
    .config_keys = keys,
    .plan = plan,
    .work = work,
    .finish = finish,
    .skip = skip,
    .items_unit = "rows",
    .unit_noun = "row block",
};
