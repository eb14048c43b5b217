/* cohort.c — the cohort CSV (slide_id, patient_id, path[, label][, mpp]) and the unit list.
 *
 * The CSV is read once by rank 0 and its text broadcast, so every rank parses the same bytes
 * (rank 0 decides anything file-system based). Fields may be double-quoted (RFC 4180). */
#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ts_error.h"
#include "ts_io.h"
#include "ts_stage.h"

/* Split one CSV line in place into at most max fields. Returns the count, -1 on a bad quote. */
static int split_csv(char *line, char **f, int max) {
  int n = 0;
  char *p = line;
  for (;;) {
    if (n == max) return n;
    if (*p == '"') {
      char *w = ++p;
      f[n++] = w;
      for (;;) {
        if (!*p) return -1;
        if (*p == '"') {
          if (p[1] == '"') { *w++ = '"'; p += 2; continue; }
          p++;
          break;
        }
        *w++ = *p++;
      }
      *w = '\0';
      if (*p == ',') { p++; continue; }
      if (*p) return -1;
      return n;
    }
    f[n++] = p;
    char *c = strchr(p, ',');
    if (!c) return n;
    *c = '\0';
    p = c + 1;
  }
}

static void trim(char *s) {
  size_t n = strlen(s);
  while (n && (s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t')) s[--n] = '\0';
  size_t k = strspn(s, " \t");
  if (k) memmove(s, s + k, n - k + 1);
}

int ts_cohort_parse(const char *csv_path, const char *text, ts_cohort *out) {
  memset(out, 0, sizeof *out);
  enum { MAXF = 64 };
  char *copy = strdup(text), *fields[MAXF];
  int rc = 0, col_slide = -1, col_patient = -1, col_path = -1, col_label = -1, col_mpp = -1, ncol = 0;
  char dir[TS_PATH_MAX];
  snprintf(dir, sizeof dir, "%s", csv_path);
  char *csv_dir = dirname(dir);
  if (!copy) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "cohort");
  out->csv_path = strdup(csv_path);
  int line_no = 0;
  for (char *line = copy, *next; line; line = next) {
    next = strchr(line, '\n');
    if (next) *next++ = '\0';
    line_no++;
    trim(line);
    if (!line[0] || line[0] == '#') continue;
    int n = split_csv(line, fields, MAXF);
    if (n < 0) TS_FAIL(TS_ECONFIG, "COHORT_BAD_VALUE", "%s:%d: unbalanced quote", csv_path, line_no);
    for (int i = 0; i < n; i++) trim(fields[i]);
    if (ncol == 0) {
      ncol = n;
      for (int i = 0; i < n; i++) {
        if (!strcmp(fields[i], "slide_id")) col_slide = i;
        else if (!strcmp(fields[i], "patient_id")) col_patient = i;
        else if (!strcmp(fields[i], "path")) col_path = i;
        else if (!strcmp(fields[i], "label")) col_label = i;
        else if (!strcmp(fields[i], "mpp")) col_mpp = i;
      }
      const char *miss = col_slide < 0 ? "slide_id" : col_patient < 0 ? "patient_id" : col_path < 0 ? "path" : NULL;
      if (miss) TS_FAIL(TS_ECONFIG, "COHORT_MISSING_COLUMN", "%s:%d: no '%s' column (need slide_id, patient_id, path; optional label, mpp)", csv_path, line_no, miss);
      continue;
    }
    if (n != ncol) TS_FAIL(TS_ECONFIG, "COHORT_BAD_VALUE", "%s:%d: %d fields, the header has %d", csv_path, line_no, n, ncol);
    ts_cohort_row *rows = realloc(out->rows, sizeof *rows * (size_t)(out->n + 1));
    if (!rows) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "cohort");
    out->rows = rows;
    ts_cohort_row *r = &rows[out->n];
    memset(r, 0, sizeof *r);
    r->line = line_no;
    r->label = -1;
    out->n++;
    if (!fields[col_slide][0]) TS_FAIL(TS_ECONFIG, "COHORT_BAD_VALUE", "%s:%d: column slide_id: empty", csv_path, line_no);
    for (int i = 0; i < out->n - 1; i++)
      if (!strcmp(out->rows[i].slide_id, fields[col_slide]))
        TS_FAIL(TS_ECONFIG, "COHORT_DUPLICATE_ID", "%s:%d: column slide_id: '%s' already on line %d", csv_path, line_no, fields[col_slide], out->rows[i].line);
    r->slide_id = strdup(fields[col_slide]);
    r->patient_id = strdup(fields[col_patient]);
    char p[TS_PATH_MAX];
    TS_TRY(ts_io_join(csv_dir, fields[col_path], p, sizeof p));
    r->path = strdup(p);
    r->score = NAN;
    if (col_label >= 0 && fields[col_label][0]) { /* a class (0..C-1) or a regression score */
      char *end;
      errno = 0;
      double v = strtod(fields[col_label], &end);
      if (*end || errno || !isfinite(v))
        TS_FAIL(TS_ECONFIG, "COHORT_BAD_VALUE", "%s:%d: column label: '%s' is not a number (a class 0..C-1, or a score for mil.task: regression)",
                csv_path, line_no, fields[col_label]);
      r->score = v;
      r->label = v >= 0 && v <= 1e9 && v == floor(v) ? (int)v : TS_LABEL_NOT_CLASS;
    }
    if (col_mpp >= 0 && fields[col_mpp][0]) {
      char *end;
      errno = 0;
      double v = strtod(fields[col_mpp], &end);
      if (*end || errno || !(v > 0) || !isfinite(v))
        TS_FAIL(TS_ECONFIG, "COHORT_BAD_VALUE", "%s:%d: column mpp: '%s' is not a positive number", csv_path, line_no, fields[col_mpp]);
      r->mpp = v;
    }
    if (!r->slide_id || !r->patient_id || !r->path) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "cohort");
  }
  if (ncol == 0) TS_FAIL(TS_ECONFIG, "COHORT_MISSING_COLUMN", "%s:1: empty file, expected a header slide_id,patient_id,path", csv_path);
out:
  free(copy);
  if (rc < 0) ts_cohort_clear(out);
  return rc;
}

void ts_cohort_clear(ts_cohort *c) {
  for (int i = 0; i < c->n; i++) {
    free(c->rows[i].slide_id);
    free(c->rows[i].patient_id);
    free(c->rows[i].path);
  }
  free(c->rows);
  free(c->csv_path);
  memset(c, 0, sizeof *c);
}

const ts_cohort_row *ts_cohort_find(const ts_cohort *c, const char *slide_id) {
  for (int i = 0; i < c->n; i++)
    if (!strcmp(c->rows[i].slide_id, slide_id)) return &c->rows[i];
  return NULL;
}

/* ---- units ---- */

static int units_push(ts_units *u, const char *id, const char *token, const char *message) {
  if (u->n == u->cap) {
    int64_t cap = u->cap ? u->cap * 2 : 64;
    char **a = realloc(u->ids, sizeof *a * (size_t)cap);
    if (a) u->ids = a;
    char **b = realloc(u->fail_token, sizeof *b * (size_t)cap);
    if (b) u->fail_token = b;
    char **c = realloc(u->fail_message, sizeof *c * (size_t)cap);
    if (c) u->fail_message = c;
    int64_t *d = realloc(u->then, sizeof *d * (size_t)cap);
    if (d) u->then = d;
    char **k = realloc(u->key, sizeof *k * (size_t)cap);
    if (k) u->key = k;
    if (!a || !b || !c || !d || !k) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "unit list");
    u->cap = cap;
  }
  u->ids[u->n] = strdup(id);
  u->fail_token[u->n] = token ? strdup(token) : NULL;
  u->fail_message[u->n] = message ? strdup(message) : NULL;
  u->then[u->n] = -1;
  u->key[u->n] = NULL;
  u->n++;
  return 0;
}

int ts_units_add(ts_units *u, const char *id) { return units_push(u, id, NULL, NULL); }

int ts_units_add_keyed(ts_units *u, const char *id, const char *key_text) {
  TS_CALL(units_push(u, id, NULL, NULL));
  if (key_text) {
    char hex[65];
    ts_io_sha256(key_text, strlen(key_text), hex);
    if (!(u->key[u->n - 1] = strdup(hex))) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "unit list");
  }
  return 0;
}

int ts_unit_key_slide(const ts_run *run, const ts_cohort_row *row, const char *upstream, bool with_label, char *buf,
                      size_t n) {
  struct stat st;
  long long size = -1, mtime = -1;
  if (stat(row->path, &st) == 0) {
    size = (long long)st.st_size;
    mtime = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
  }
  int k = snprintf(buf, n, "path=%s\nmpp=%.17g\nsize=%lld\nmtime_ns=%lld\n", row->path, row->mpp, size, mtime);
  if (with_label && k >= 0 && (size_t)k < n) k += snprintf(buf + k, n - (size_t)k, "label=%.17g\n", row->score);
  if (upstream && k >= 0 && (size_t)k < n) {
    char rel[1024], sum[65];
    TS_CALL(ts_run_unit_output(run, upstream, row->slide_id, rel, sizeof rel, sum));
    k += snprintf(buf + k, n - (size_t)k, "%s=%s\n", upstream, sum);
  }
  if (k < 0 || (size_t)k >= n) return ts_error_set(TS_EINTERNAL, "UNIT_KEY", "slide %s: key text too long", row->slide_id);
  return 0;
}
int ts_units_add_failed(ts_units *u, const char *id, const char *token, const char *message) {
  return units_push(u, id, token, message);
}

int ts_units_wait(ts_units *u, int64_t later, int64_t earlier) {
  if (earlier < 0 || later <= earlier || later >= u->n)
    return ts_error_set(TS_EINTERNAL, "PLAN_DEPS", "unit %lld cannot wait for unit %lld (a unit waits for units planned before it)",
                        (long long)later, (long long)earlier);
  if (u->then[earlier] >= 0 && u->then[earlier] != later)
    return ts_error_set(TS_EINTERNAL, "PLAN_DEPS", "unit %s is already waited for by %s", u->ids[earlier], u->ids[u->then[earlier]]);
  u->then[earlier] = later;
  return 0;
}

int ts_units_for_slides(const ts_run *run, const char *upstream, const int *order, ts_units *units) {
  for (int k = 0; k < run->cohort->n; k++) {
    const ts_cohort_row *r = &run->cohort->rows[order ? order[k] : k];
    char msg[1500], token[64] = "";
    if (!ts_id_is_safe(r->slide_id)) {
      snprintf(msg, sizeof msg,
               "SLIDE_BAD_ID: %s:%d: slide id '%.200s' cannot be a file name (use 1-128 of A-Z a-z 0-9 . _ -, not starting with '.')",
               run->cohort->csv_path, r->line, r->slide_id);
      TS_CALL(ts_units_add_failed(units, r->slide_id, "SLIDE_BAD_ID", msg));
      continue;
    }
    char cause[1024] = "";
    if (upstream) TS_CALL(ts_run_unit_error(run, upstream, r->slide_id, token, cause, sizeof cause));
    if (token[0]) { /* carry the root cause: the user fixes SLIDE_MISSING, not UPSTREAM_FAILED */
      if (!strncmp(cause, "UPSTREAM_FAILED: ", 17)) snprintf(msg, sizeof msg, "%s", cause); /* names the root already */
      else snprintf(msg, sizeof msg, "UPSTREAM_FAILED: the %s stage failed on this slide: %.400s", upstream, cause[0] ? cause : token);
      TS_CALL(ts_units_add_failed(units, r->slide_id, "UPSTREAM_FAILED", msg));
      continue;
    }
    char key[4096];
    TS_CALL(ts_unit_key_slide(run, r, upstream, false, key, sizeof key));
    TS_CALL(ts_units_add_keyed(units, r->slide_id, key));
  }
  return 0;
}

void ts_units_clear(ts_units *u) {
  for (int64_t i = 0; i < u->n; i++) {
    free(u->ids[i]);
    free(u->fail_token[i]);
    free(u->fail_message[i]);
  }
  free(u->ids);
  free(u->fail_token);
  free(u->fail_message);
  free(u->then);
  for (int64_t i = 0; u->key && i < u->n; i++) free(u->key[i]);
  free(u->key);
  memset(u, 0, sizeof *u);
}

void ts_encoder_tag(const char *name, char *out, size_t n) {
  if (!strncmp(name, "torchscript:", 12)) {
    const char *base = strrchr(name + 12, '/');
    base = base ? base + 1 : name + 12;
    snprintf(out, n, "torchscript-%s", base);
    char *dot = strrchr(out, '.');
    if (dot && dot > out + 12) *dot = '\0';
  } else {
    snprintf(out, n, "%s", name);
  }
  for (char *c = out; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '-' || *c == '_' || *c == '.'))
      *c = '_';
}

int ts_run_path(const ts_run *run, const char *name, char *buf, size_t n) {
  return ts_io_join(run->dir, name, buf, n);
}
