/* surv_csv.c — a small reader for numeric CSV tables (one header row), and the conversion of
 * its columns into survival data and design matrices. Every error names file:line:column
 * (1-based, the header is line 1) and starts with a stable token: CSV_UNREADABLE, CSV_EMPTY,
 * CSV_RAGGED, CSV_MISSING_COLUMN, CSV_BAD_VALUE, SURV_NEGATIVE_TIME, SURV_BAD_EVENT,
 * SURV_BAD_WEIGHT. Non-numeric cells are kept as NaN plus the first offending cell per column,
 * so that text columns that are never used do not stop the read. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "surv_internal.h"

void ts_csv_free(ts_csv_table **tp) {
  if (!tp || !*tp) return;
  ts_csv_table *t = *tp;
  for (size_t c = 0; c < t->ncol; c++) {
    if (t->names) free(t->names[c]);
    if (t->bad_text) free(t->bad_text[c]);
  }
  free(t->names);
  free(t->bad_text);
  free(t->bad_line);
  free(t->row_line);
  free(t->values);
  free(t->path);
  free(t);
  *tp = NULL;
}

/* Split LINE in place into cells (quotes stripped, surrounding blanks trimmed). */
static size_t split(char *line, char **cells, size_t max) {
  size_t nc = 0;
  char *p = line;
  for (;;) {
    while (*p == ' ' || *p == '\t') p++;
    char *start = p, *end;
    if (*p == '"') {
      start = ++p;
      while (*p && *p != '"') p++;
      end = p;
      if (*p == '"') p++;
      while (*p && *p != ',') p++;
    } else {
      while (*p && *p != ',') p++;
      end = p;
      while (end > start && (end[-1] == ' ' || end[-1] == '\t')) end--;
    }
    char sep = *p;
    if (cells) *end = '\0';
    if (nc < max) cells[nc] = start;
    nc++;
    if (sep != ',') break;
    p++;
  }
  return nc;
}

static bool parse_num(const char *s, double *v) {
  if (!*s) return false;
  char *e;
  errno = 0;
  double x = strtod(s, &e);
  if (*e != '\0' || errno == ERANGE || !isfinite(x)) return false;
  *v = x;
  return true;
}

int ts_csv_read(const char *path, ts_csv_table **table_out) {
  int rc = 0;
  FILE *fp = NULL;
  char *line = NULL, **cells = NULL;
  size_t cap = 0, rcap = 0;
  ts_csv_table *t = NULL;
  *table_out = NULL;
  fp = fopen(path, "r");
  if (!fp) TS_FAIL(TS_EIO, "CSV_UNREADABLE", "%s: %s", path, strerror(errno));
  t = calloc(1, sizeof *t);
  if (!t || !(t->path = strdup(path))) TS_FAIL(TS_ENOMEM, "OUT_OF_MEMORY", "%s", path);
  ssize_t len;
  size_t lineno = 0;
  while ((len = getline(&line, &cap, fp)) >= 0) {
    lineno++;
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
    size_t k = 0;
    while (line[k] == ' ' || line[k] == '\t') k++;
    if (line[k] == '\0') continue; /* blank line */
    if (!t->names) {               /* header */
      size_t nc = split(line, NULL, 0);
      char *copy = strdup(line);
      t->names = calloc(nc, sizeof(char *));
      t->bad_text = calloc(nc, sizeof(char *));
      t->bad_line = calloc(nc, sizeof(size_t));
      cells = malloc(nc * sizeof(char *));
      if (!copy || !t->names || !t->bad_text || !t->bad_line || !cells) {
        free(copy);
        TS_FAIL(TS_ENOMEM, "OUT_OF_MEMORY", "%s", path);
      }
      t->ncol = nc;
      split(copy, cells, nc);
      for (size_t c = 0; c < nc; c++)
        if (!(t->names[c] = strdup(cells[c]))) {
          free(copy);
          TS_FAIL(TS_ENOMEM, "OUT_OF_MEMORY", "%s", path);
        }
      free(copy);
      continue;
    }
    size_t nc = split(line, cells, t->ncol);
    if (nc != t->ncol)
      TS_FAIL(TS_EINPUT, "CSV_RAGGED", "%s:%zu: %zu cells, the header has %zu", path, lineno,
              nc, t->ncol);
    if (t->nrow == rcap) {
      rcap = rcap ? 2 * rcap : 1024;
      double *nv = realloc(t->values, rcap * t->ncol * sizeof(double));
      if (nv) t->values = nv;
      size_t *nl = realloc(t->row_line, rcap * sizeof(size_t));
      if (nl) t->row_line = nl;
      if (!nv || !nl) TS_FAIL(TS_ENOMEM, "OUT_OF_MEMORY", "%s: %zu rows", path, t->nrow);
    }
    double *row = t->values + t->nrow * t->ncol;
    for (size_t c = 0; c < nc; c++) {
      if (!parse_num(cells[c], &row[c])) {
        row[c] = NAN;
        if (!t->bad_line[c]) {
          t->bad_line[c] = lineno;
          if (!(t->bad_text[c] = strdup(cells[c])))
            TS_FAIL(TS_ENOMEM, "OUT_OF_MEMORY", "%s", path);
        }
      }
    }
    t->row_line[t->nrow++] = lineno;
  }
  if (!t->names) TS_FAIL(TS_EINPUT, "CSV_EMPTY", "%s:1: no header row", path);
  if (t->nrow == 0) TS_FAIL(TS_EINPUT, "CSV_EMPTY", "%s:2: no data rows", path);
  *table_out = t;
  t = NULL;
out:
  if (fp) fclose(fp);
  free(line);
  free(cells);
  ts_csv_free(&t);
  return rc;
}

int ts_csv_column(const ts_csv_table *t, const char *name, size_t *col_out) {
  for (size_t c = 0; c < t->ncol; c++)
    if (strcmp(t->names[c], name) == 0) {
      *col_out = c;
      return 0;
    }
  return ts_error_set(TS_EINPUT, "CSV_MISSING_COLUMN", "%s:1: no column '%s' in the header",
                      t->path, name);
}

int ts_csv_numeric_column(const ts_csv_table *t, const char *name, size_t *col_out) {
  TS_CALL(ts_csv_column(t, name, col_out));
  size_t c = *col_out;
  if (t->bad_line[c])
    return ts_error_set(TS_EINPUT, "CSV_BAD_VALUE", "%s:%zu:%zu: column '%s': '%s' is not a number",
                        t->path, t->bad_line[c], c + 1, name, t->bad_text[c]);
  return 0;
}

/* File line of data row R (the header is line 1). */
static size_t line_of(const ts_csv_table *t, size_t r) { return t->row_line[r]; }

typedef struct owned {
  double *time, *weight;
  int *event, *strata;
} owned;

void ts_surv_data_release(ts_surv_data *d) {
  if (!d || !d->owned) return;
  owned *o = d->owned;
  free(o->time);
  free(o->weight);
  free(o->event);
  free(o->strata);
  free(o);
  memset(d, 0, sizeof *d);
}

int ts_surv_data_from_csv(const ts_csv_table *t, const char *time_col, const char *event_col,
                          const char *weight_col, const char *strata_col, ts_surv_data *d_out) {
  int rc = 0;
  size_t ct, ce, cw = 0, cs = 0, n = t->nrow;
  owned *o = NULL;
  memset(d_out, 0, sizeof *d_out);
  TS_TRY(ts_csv_numeric_column(t, time_col, &ct));
  TS_TRY(ts_csv_numeric_column(t, event_col, &ce));
  if (weight_col) TS_TRY(ts_csv_numeric_column(t, weight_col, &cw));
  if (strata_col) TS_TRY(ts_csv_numeric_column(t, strata_col, &cs));
  o = calloc(1, sizeof *o);
  if (!o) TS_FAIL(TS_ENOMEM, "OUT_OF_MEMORY", "%s", t->path);
  o->time = malloc(n * sizeof(double));
  o->event = malloc(n * sizeof(int));
  if (weight_col) o->weight = malloc(n * sizeof(double));
  if (strata_col) o->strata = malloc(n * sizeof(int));
  if (!o->time || !o->event || (weight_col && !o->weight) || (strata_col && !o->strata))
    TS_FAIL(TS_ENOMEM, "OUT_OF_MEMORY", "%s", t->path);
  for (size_t r = 0; r < n; r++) {
    const double *row = t->values + r * t->ncol;
    if (row[ct] < 0)
      TS_FAIL(TS_EINPUT, "SURV_NEGATIVE_TIME", "%s:%zu:%zu: column '%s': time %g is negative",
              t->path, line_of(t, r), ct + 1, time_col, row[ct]);
    if (row[ce] != 0 && row[ce] != 1)
      TS_FAIL(TS_EINPUT, "SURV_BAD_EVENT", "%s:%zu:%zu: column '%s': event %g is not 0 or 1",
              t->path, line_of(t, r), ce + 1, event_col, row[ce]);
    o->time[r] = row[ct];
    o->event[r] = (int)row[ce];
    if (weight_col) {
      if (!(row[cw] > 0))
        TS_FAIL(TS_EINPUT, "SURV_BAD_WEIGHT", "%s:%zu:%zu: column '%s': weight %g is not > 0",
                t->path, line_of(t, r), cw + 1, weight_col, row[cw]);
      o->weight[r] = row[cw];
    }
    if (strata_col) {
      if (row[cs] != floor(row[cs]) || fabs(row[cs]) > 2e9)
        TS_FAIL(TS_EINPUT, "CSV_BAD_VALUE", "%s:%zu:%zu: column '%s': stratum %g is not an integer",
                t->path, line_of(t, r), cs + 1, strata_col, row[cs]);
      o->strata[r] = (int)row[cs];
    }
  }
  d_out->n = n;
  d_out->time = o->time;
  d_out->event = o->event;
  d_out->weight = o->weight;
  d_out->strata = o->strata;
  d_out->owned = o;
  o = NULL;
out:
  if (o) {
    ts_surv_data tmp = {.owned = o};
    ts_surv_data_release(&tmp);
  }
  return rc;
}

int ts_csv_design(const ts_csv_table *t, const char *const *names, size_t p, double **x_out) {
  int rc = 0;
  size_t *cols = malloc((p ? p : 1) * sizeof *cols);
  double *x = NULL;
  *x_out = NULL;
  if (!cols) TS_FAIL(TS_ENOMEM, "OUT_OF_MEMORY", "%s", t->path);
  for (size_t j = 0; j < p; j++) TS_TRY(ts_csv_numeric_column(t, names[j], &cols[j]));
  x = malloc((t->nrow * p > 0 ? t->nrow * p : 1) * sizeof *x);
  if (!x) TS_FAIL(TS_ENOMEM, "OUT_OF_MEMORY", "%s: design %zu x %zu", t->path, t->nrow, p);
  for (size_t r = 0; r < t->nrow; r++)
    for (size_t j = 0; j < p; j++) x[r * p + j] = t->values[r * t->ncol + cols[j]];
  *x_out = x;
out:
  free(cols);
  return rc;
}
