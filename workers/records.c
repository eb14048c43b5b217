/* records.c — schema strings, the CSV reader and block validation with Welford/Chan statistics
 * for the records stage (see ts_records.h for the grammar and the formulas).
 *
 * Why our own CSV reader: stats/surv_csv.c keeps numbers only (ids are text) and forgets where a
 * cell came from; here every message names file:line:column, and rows are addressed by block
 * without re-tokenising the whole file (row offsets are found once, respecting quotes). */
#include "ts_records.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_io.h"

/* ------------------------------------------------------------------ schema ---- */

static char *dup_range(const char *a, const char *b) {
  while (a < b && isspace((unsigned char)*a)) a++;
  while (b > a && isspace((unsigned char)b[-1])) b--;
  char *s = malloc((size_t)(b - a) + 1);
  if (!s) return NULL;
  memcpy(s, a, (size_t)(b - a));
  s[b - a] = 0;
  return s;
}

static bool parse_num(const char *s, double *x) {
  char *end = NULL;
  errno = 0;
  *x = strtod(s, &end);
  return *s && end && !*end && !errno && isfinite(*x);
}

static bool parse_int(const char *s, long long *x) {
  char *end = NULL;
  errno = 0;
  *x = strtoll(s, &end, 10);
  return *s && end && !*end && !errno;
}

static bool name_ok(const char *s) {
  if (!*s) return false;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && !strchr("_.-", *s)) return false;
  return true;
}

#define SCHEMA_FAIL(...) TS_FAIL(TS_ECONFIG, "CONFIG_RECORDS_SCHEMA", __VA_ARGS__)

/* Parse one entry [a, b) into *f. */
static int parse_entry(const char *key, int idx, const char *a, const char *b, ts_rec_field *f) {
  int rc = 0;
  char *e = dup_range(a, b), *spec = NULL;
  if (!e) return ts_error_set(TS_ENOMEM, "OUT_OF_MEMORY", "schema entry");
  size_t len = strlen(e);
  if (len && e[len - 1] == '?') {
    e[--len] = 0;
    f->required = false;
  } else {
    f->required = true;
  }
  char *colon = strchr(e, ':');
  if (!colon) SCHEMA_FAIL("%s: entry %d ('%s') has no ':TYPE'", key, idx, e);
  *colon = 0;
  char *name = e, *type = colon + 1;
  size_t nl = strlen(name);
  while (nl && isspace((unsigned char)name[nl - 1])) name[--nl] = 0;
  while (isspace((unsigned char)*type)) type++;
  if (nl && name[nl - 1] == '*') {
    f->wildcard = true;
    name[--nl] = 0;
    if (!nl) SCHEMA_FAIL("%s: entry %d: a wildcard needs a prefix ('GENE*')", key, idx);
  }
  if (!name_ok(name)) SCHEMA_FAIL("%s: entry %d: bad column name '%s' (letters, digits, _ . -, optionally ending in *)", key, idx, name);
  f->name = strdup(name);
  char *br = type + strcspn(type, "[{");
  if (*br) {
    char close = *br == '[' ? ']' : '}';
    size_t sl = strlen(br);
    if (br[sl - 1] != close) SCHEMA_FAIL("%s: entry %d ('%s'): '%c' is not closed by '%c' at the end", key, idx, f->name, *br, close);
    spec = dup_range(br + 1, br + sl - 1);
    char open = *br;
    *br = 0;
    size_t tl = strlen(type);
    while (tl && isspace((unsigned char)type[tl - 1])) type[--tl] = 0;
    if (!strcmp(type, "float") || !strcmp(type, "int")) f->type = !strcmp(type, "float") ? TS_REC_FLOAT : TS_REC_INT;
    else if (!strcmp(type, "str")) f->type = TS_REC_CAT;
    else if (!strcmp(type, "id")) SCHEMA_FAIL("%s: entry %d ('%s'): an id takes no range or set", key, idx, f->name);
    else SCHEMA_FAIL("%s: entry %d ('%s'): unknown type '%s' (id, float, int, str)", key, idx, f->name, type);
    if (open == '[') {
      if (f->type == TS_REC_CAT) SCHEMA_FAIL("%s: entry %d ('%s'): str takes a set {a,b}, not a range", key, idx, f->name);
      char *comma = strchr(spec, ',');
      if (!comma || strchr(comma + 1, ',')) SCHEMA_FAIL("%s: entry %d ('%s'): a range is [lo,hi] (either may be empty)", key, idx, f->name);
      char *lo = dup_range(spec, comma), *hi = dup_range(comma + 1, spec + strlen(spec));
      bool ok = lo && hi;
      if (ok && *lo) ok = f->has_lo = parse_num(lo, &f->lo);
      if (ok && *hi) ok = f->has_hi = parse_num(hi, &f->hi);
      free(lo);
      free(hi);
      if (!ok) SCHEMA_FAIL("%s: entry %d ('%s'): range bounds must be numbers: [%s]", key, idx, f->name, spec);
      if (f->has_lo && f->has_hi && f->lo > f->hi) SCHEMA_FAIL("%s: entry %d ('%s'): empty range [%g,%g]", key, idx, f->name, f->lo, f->hi);
    } else {
      if (f->type == TS_REC_FLOAT) SCHEMA_FAIL("%s: entry %d ('%s'): float takes a range [lo,hi], not a set", key, idx, f->name);
      f->int_levels = f->type == TS_REC_INT;
      f->type = TS_REC_CAT;
      int cap = 1;
      for (const char *p = spec; *p; p++) cap += *p == ',';
      f->levels = calloc((size_t)cap, sizeof *f->levels);
      if (!f->levels) SCHEMA_FAIL("out of memory");
      for (const char *p = spec;;) {
        const char *q = p + strcspn(p, ",");
        char *lv = dup_range(p, q);
        if (!lv) SCHEMA_FAIL("out of memory");
        f->levels[f->n_levels++] = lv;
        if (!*lv) SCHEMA_FAIL("%s: entry %d ('%s'): empty value in the set {%s}", key, idx, f->name, spec);
        if (f->int_levels) {
          long long v;
          if (!parse_int(lv, &v)) SCHEMA_FAIL("%s: entry %d ('%s'): '%s' in the set is not an integer", key, idx, f->name, lv);
          char canon[32];
          snprintf(canon, sizeof canon, "%lld", v);
          free(f->levels[f->n_levels - 1]);
          lv = f->levels[f->n_levels - 1] = strdup(canon); /* lv must not point at the freed copy */
          if (!lv) SCHEMA_FAIL("out of memory");
        }
        for (int k = 0; k < f->n_levels - 1; k++)
          if (!strcmp(f->levels[k], f->levels[f->n_levels - 1])) SCHEMA_FAIL("%s: entry %d ('%s'): '%s' twice in the set", key, idx, f->name, lv);
        if (!*q) break;
        p = q + 1;
      }
    }
  } else if (!strcmp(type, "id")) {
    f->type = TS_REC_ID;
  } else if (!strcmp(type, "float")) {
    f->type = TS_REC_FLOAT;
  } else if (!strcmp(type, "int")) {
    f->type = TS_REC_INT;
  } else if (!strcmp(type, "str")) {
    SCHEMA_FAIL("%s: entry %d ('%s'): str needs its set of values, e.g. str{a,b}", key, idx, f->name);
  } else {
    SCHEMA_FAIL("%s: entry %d ('%s'): unknown type '%s' (id, float, int, str)", key, idx, f->name, type);
  }
  if (f->type == TS_REC_ID && (f->wildcard || !f->required))
    SCHEMA_FAIL("%s: entry %d ('%s'): the id column cannot be a wildcard or optional", key, idx, f->name);
out:
  free(spec);
  free(e);
  return rc;
}

int ts_rec_schema_parse(const char *text, const char *key, ts_rec_schema *out) {
  memset(out, 0, sizeof *out);
  int rc = 0, cap = 1, depth = 0;
  for (const char *p = text; *p; p++) cap += *p == ',';
  out->f = calloc((size_t)cap, sizeof *out->f);
  out->text = strdup(text);
  if (!out->f || !out->text) TS_FAIL(TS_ENOMEM, "OUT_OF_MEMORY", "schema");
  const char *a = text;
  for (const char *p = text;; p++) {
    if (*p == '[' || *p == '{') depth++;
    else if (*p == ']' || *p == '}') depth--;
    if (depth < 0) SCHEMA_FAIL("%s: unbalanced '%c' at character %d", key, *p, (int)(p - text) + 1);
    if ((*p == ',' && depth == 0) || !*p) {
      if (!*p && depth) SCHEMA_FAIL("%s: unclosed '[' or '{'", key);
      const char *s = a;
      while (s < p && isspace((unsigned char)*s)) s++;
      if (s == p) SCHEMA_FAIL("%s: empty entry %d", key, out->n + 1);
      TS_TRY(parse_entry(key, out->n + 1, a, p, &out->f[out->n]));
      out->n++;
      if (!*p) break;
      a = p + 1;
    }
  }
  int nid = 0;
  for (int i = 0; i < out->n; i++) {
    nid += out->f[i].type == TS_REC_ID;
    for (int j = 0; j < i; j++)
      if (!strcmp(out->f[i].name, out->f[j].name) && out->f[i].wildcard == out->f[j].wildcard)
        SCHEMA_FAIL("%s: column '%s' declared twice", key, out->f[i].name);
  }
  if (nid != 1) SCHEMA_FAIL("%s: exactly one column must have type id (the patient id), found %d", key, nid);
out:
  if (rc < 0) ts_rec_schema_clear(out);
  return rc;
}

void ts_rec_schema_clear(ts_rec_schema *s) {
  for (int i = 0; s->f && i < s->n; i++) {
    free(s->f[i].name);
    for (int k = 0; k < s->f[i].n_levels; k++) free(s->f[i].levels[k]);
    free(s->f[i].levels);
  }
  free(s->f);
  free(s->text);
  memset(s, 0, sizeof *s);
}

/* ------------------------------------------------------------------ CSV ------- */

/* Split [p, end) of one row into fields (unquoted, "" unescaped) in one malloc'd block. */
static int split_fields(const char *p, const char *end, char ***fields_out, int *n_out) {
  int n = 1;
  bool q = false;
  for (const char *s = p; s < end; s++) {
    if (*s == '"') q = !q;
    else if (*s == ',' && !q) n++;
  }
  size_t bytes = (size_t)n * sizeof(char *) + (size_t)(end - p) + (size_t)n;
  char **f = malloc(bytes);
  if (!f) return ts_error_set(TS_ENOMEM, "OUT_OF_MEMORY", "CSV row");
  char *w = (char *)(f + n);
  int k = 0;
  f[k++] = w;
  q = false;
  for (const char *s = p; s < end; s++) {
    if (*s == '"') {
      if (q && s + 1 < end && s[1] == '"') { *w++ = '"'; s++; }
      else q = !q;
    } else if (*s == ',' && !q) {
      *w++ = 0;
      f[k++] = w;
    } else if (!q && (*s == '\r' || *s == '\n')) {
      /* line end outside quotes: only at the very end */
    } else {
      *w++ = *s;
    }
  }
  *w = 0;
  /* trim unquoted surrounding blanks of each field */
  for (int i = 0; i < n; i++) {
    char *s = f[i];
    while (*s == ' ' || *s == '\t') s++;
    size_t l = strlen(s);
    while (l && (s[l - 1] == ' ' || s[l - 1] == '\t')) s[--l] = 0;
    f[i] = s;
  }
  *fields_out = f;
  *n_out = n;
  return 0;
}

int ts_rec_row_fields(const ts_rec_table *t, int64_t r, char ***fields_out, int *n_out) {
  TS_CALL(split_fields(t->data + t->row_off[r], t->data + t->row_off[r + 1], fields_out, n_out));
  if (*n_out != t->ncsv) {
    int n = *n_out;
    free(*fields_out);
    *fields_out = NULL;
    return ts_error_set(TS_EINPUT, "RECORDS_BAD_CSV", "%s:%d: %d fields, the header has %d", t->path, t->row_line[r], n, t->ncsv);
  }
  return 0;
}

static int match_header(ts_rec_table *t) {
  const ts_rec_schema *s = t->schema;
  int rc = 0;
  int *owner = malloc((size_t)t->ncsv * sizeof *owner);
  t->cols = calloc((size_t)t->ncsv, sizeof *t->cols);
  size_t ig_len = 1;
  for (int c = 0; c < t->ncsv; c++) ig_len += strlen(t->header[c]) + 1;
  t->ignored = calloc(ig_len, 1);
  if (!owner || !t->cols || !t->ignored) TS_FAIL(TS_ENOMEM, "OUT_OF_MEMORY", "header");
  for (int c = 0; c < t->ncsv; c++) {
    owner[c] = -1;
    if (!t->header[c][0]) TS_FAIL(TS_EINPUT, "RECORDS_BAD_HEADER", "%s:1:%d: empty column name", t->path, c + 1);
    for (int d = 0; d < c; d++)
      if (!strcmp(t->header[c], t->header[d]))
        TS_FAIL(TS_EINPUT, "RECORDS_BAD_HEADER", "%s:1:%d: column '%s' also at column %d", t->path, c + 1, t->header[c], d + 1);
  }
  /* exact names first, then wildcards over what is left */
  for (int pass = 0; pass < 2; pass++)
    for (int i = 0; i < s->n; i++) {
      const ts_rec_field *f = &s->f[i];
      if (f->wildcard != (pass == 1)) continue;
      int hits = 0;
      for (int c = 0; c < t->ncsv; c++) {
        bool m = f->wildcard ? !strncmp(t->header[c], f->name, strlen(f->name)) : !strcmp(t->header[c], f->name);
        if (m && owner[c] < 0) {
          owner[c] = i;
          hits++;
        }
      }
      if (!hits && f->required)
        TS_FAIL(TS_EINPUT, "RECORDS_MISSING_COLUMN", "%s:1:%d: required column '%s%s' (schema entry %d) is not in the header", t->path,
                t->ncsv + 1, f->name, f->wildcard ? "*" : "", i + 1);
    }
  /* kept columns in schema order, wildcard matches in header order */
  t->id_csv = -1;
  for (int i = 0; i < s->n; i++)
    for (int c = 0; c < t->ncsv; c++) {
      if (owner[c] != i) continue;
      if (s->f[i].type == TS_REC_ID) {
        t->id_csv = c;
        continue;
      }
      ts_rec_col *col = &t->cols[t->ncols++];
      col->name = t->header[c];
      col->csv = c;
      col->field = i;
      col->type = s->f[i].type;
      col->cat_off = t->n_cat;
      if (col->type == TS_REC_CAT) t->n_cat += s->f[i].n_levels;
    }
  for (int c = 0; c < t->ncsv; c++)
    if (owner[c] < 0) {
      if (t->ignored[0]) strcat(t->ignored, ",");
      strcat(t->ignored, t->header[c]);
    }
out:
  free(owner);
  return rc;
}

int ts_rec_table_open(const char *name, const char *path, const ts_rec_schema *schema, ts_rec_table **out) {
  *out = NULL;
  int rc = 0;
  size_t len = 0;
  ts_rec_table *t = calloc(1, sizeof *t);
  if (!t) return ts_error_set(TS_ENOMEM, "OUT_OF_MEMORY", "table");
  t->name = strdup(name);
  t->path = strdup(path);
  t->schema = schema;
  if (ts_io_read_all(path, &t->data, &len) < 0)
    TS_FAIL(TS_EINPUT, "RECORDS_MISSING_FILE", "%s: cannot read the %s table (%s)", path, name, ts_error_detail());
  ts_io_sha256(t->data, len, t->sha256);
  if (memchr(t->data, 0, len)) TS_FAIL(TS_EINPUT, "RECORDS_BAD_CSV", "%s: NUL byte: not a text file", path);
  /* row boundaries: newlines outside quotes; blank lines skipped */
  int64_t cap = 64;
  t->row_off = malloc((size_t)(cap + 1) * sizeof *t->row_off);
  t->row_line = malloc((size_t)cap * sizeof *t->row_line);
  if (!t->row_off || !t->row_line) TS_FAIL(TS_ENOMEM, "OUT_OF_MEMORY", "rows");
  int line = 1, hdr_line = 0;
  int64_t hdr_end = -1, n = 0;
  bool q = false;
  for (size_t i = 0; i < len;) {
    size_t start = i;
    int start_line = line;
    for (; i < len; i++) {
      if (t->data[i] == '"') q = !q;
      else if (t->data[i] == '\n') {
        line++;
        if (!q) break;
      }
    }
    if (q) TS_FAIL(TS_EINPUT, "RECORDS_BAD_CSV", "%s:%d: quote opened here is never closed", path, start_line);
    size_t stop = i < len ? i + 1 : i;
    i = stop;
    bool blank = true;
    for (size_t k = start; k < stop; k++)
      if (!isspace((unsigned char)t->data[k])) blank = false;
    if (blank) continue;
    if (hdr_end < 0) {
      hdr_line = start_line;
      char **h = NULL;
      int nh = 0;
      TS_TRY(split_fields(t->data + start, t->data + stop, &h, &nh));
      t->header = h;
      t->ncsv = nh;
      hdr_end = (int64_t)stop;
      continue;
    }
    if (n == cap) {
      cap *= 2;
      int64_t *o = realloc(t->row_off, (size_t)(cap + 1) * sizeof *o);
      if (o) t->row_off = o;
      int *l = realloc(t->row_line, (size_t)cap * sizeof *l);
      if (l) t->row_line = l;
      if (!o || !l) TS_FAIL(TS_ENOMEM, "OUT_OF_MEMORY", "rows");
    }
    t->row_off[n] = (int64_t)start;
    t->row_off[n + 1] = (int64_t)stop;
    t->row_line[n++] = start_line;
  }
  (void)hdr_line;
  if (hdr_end < 0) TS_FAIL(TS_EINPUT, "RECORDS_BAD_HEADER", "%s:1: empty file: no header row", path);
  t->nrows = n;
  if (n == 0) t->row_off[0] = hdr_end;
  *out = t; /* from here on the caller gets the table even on a header error */
  if (schema) TS_TRY(match_header(t));
  return 0;
out:
  if (!*out) ts_rec_table_free(&t);
  return rc;
}

void ts_rec_table_free(ts_rec_table **pt) {
  ts_rec_table *t = pt ? *pt : NULL;
  if (!t) return;
  free(t->name);
  free(t->path);
  free(t->data);
  free(t->row_off);
  free(t->row_line);
  free(t->header);
  free(t->cols);
  free(t->ignored);
  free(t);
  *pt = NULL;
}

/* ------------------------------------------------------------------ stats ----- */

int ts_rec_stats_init(ts_rec_stats *s, int ncols, int n_cat) {
  memset(s, 0, sizeof *s);
  s->ncols = ncols;
  s->n_cat = n_cat;
  size_t c = (size_t)(ncols > 0 ? ncols : 1), k = (size_t)(n_cat > 0 ? n_cat : 1);
  s->n = calloc(c, sizeof *s->n);
  s->missing = calloc(c, sizeof *s->missing);
  s->mean = calloc(c, sizeof *s->mean);
  s->m2 = calloc(c, sizeof *s->m2);
  s->shift = calloc(c, sizeof *s->shift);
  s->smean = calloc(c, sizeof *s->smean);
  s->cat_counts = calloc(k, sizeof *s->cat_counts);
  if (!s->n || !s->missing || !s->mean || !s->m2 || !s->shift || !s->smean || !s->cat_counts) {
    ts_rec_stats_clear(s);
    return ts_error_set(TS_ENOMEM, "OUT_OF_MEMORY", "statistics");
  }
  return 0;
}

void ts_rec_stats_clear(ts_rec_stats *s) {
  free(s->n);
  free(s->missing);
  free(s->mean);
  free(s->m2);
  free(s->shift);
  free(s->smean);
  free(s->cat_counts);
  memset(s, 0, sizeof *s);
}

void ts_rec_stats_push(ts_rec_stats *s, int j, double x) {
  /* Welford (1962) on data shifted by the column's first value: with a mean far from zero
   * (1e6 +- 1, say) plain Welford loses digits in mean += d/n at the mean's scale; shifted,
   * every operation works at the scale of the deviations. mean[] stays the true mean. */
  if (s->n[j] == 0) {
    s->shift[j] = x;
    s->smean[j] = 0;
  }
  int64_t n = ++s->n[j];
  double y = x - s->shift[j], d = y - s->smean[j];
  s->smean[j] += d / (double)n;
  s->m2[j] += d * (y - s->smean[j]);
  s->mean[j] = s->shift[j] + s->smean[j];
}

int ts_rec_stats_merge(ts_rec_stats *acc, const ts_rec_stats *b) {
  if (acc->ncols != b->ncols || acc->n_cat != b->n_cat)
    return ts_error_set(TS_EINVAL, "RECORDS_STATS_SHAPE", "statistics of %d/%d and %d/%d columns/levels", acc->ncols, acc->n_cat, b->ncols, b->n_cat);
  acc->rows += b->rows;
  for (int j = 0; j < acc->ncols; j++) {
    acc->missing[j] += b->missing[j];
    int64_t na = acc->n[j], nb = b->n[j], n = na + nb;
    if (nb == 0) continue;
    if (na == 0) {
      acc->n[j] = nb;
      acc->mean[j] = b->mean[j];
      acc->m2[j] = b->m2[j];
      acc->shift[j] = b->shift[j];
      acc->smean[j] = b->smean[j];
      continue;
    }
    /* Chan, Golub & LeVeque (1979), "Updating formulae and a pairwise algorithm ...". The
     * difference of the means is taken as (shift_b - shift_a) + (smean_b - smean_a): both
     * shifts are data values, so with a mean far from zero their difference is exact where
     * mean_b - mean_a would carry the rounding of two large numbers into d^2 na nb / n. */
    double d = (b->shift[j] - acc->shift[j]) + (b->smean[j] - acc->smean[j]);
    acc->smean[j] += d * (double)nb / (double)n;
    acc->m2[j] += b->m2[j] + d * d * (double)na * (double)nb / (double)n;
    acc->n[j] = n;
    acc->mean[j] = acc->shift[j] + acc->smean[j];
  }
  for (int k = 0; k < acc->n_cat; k++) acc->cat_counts[k] += b->cat_counts[k];
  return 0;
}

/* ------------------------------------------------------------------ validation  */

int ts_rec_cell(const ts_rec_table *t, int j, const char *cell, int line, double *x_out, int *level_out) {
  const ts_rec_col *c = &t->cols[j];
  const ts_rec_field *f = &t->schema->f[c->field];
  *x_out = NAN;
  *level_out = -1;
  if (!*cell || !strcmp(cell, "NA")) {
    if (f->required)
      return ts_error_set(TS_EINPUT, "RECORDS_MISSING_VALUE", "%s:%d:%d: column '%s' is required and this cell is empty", t->path, line, c->csv + 1, c->name);
    return 0;
  }
  if (c->type == TS_REC_CAT) {
    char canon[32];
    const char *v = cell;
    if (f->int_levels) {
      long long x;
      if (!parse_int(cell, &x))
        return ts_error_set(TS_EINPUT, "RECORDS_BAD_VALUE", "%s:%d:%d: column '%s': '%s' is not an integer", t->path, line, c->csv + 1, c->name, cell);
      snprintf(canon, sizeof canon, "%lld", x);
      v = canon;
    }
    for (int k = 0; k < f->n_levels; k++)
      if (!strcmp(v, f->levels[k])) {
        *level_out = k;
        return 0;
      }
    char set[256] = "";
    for (int k = 0; k < f->n_levels && strlen(set) < 200; k++) {
      strcat(set, k ? "," : "");
      strncat(set, f->levels[k], 40);
    }
    return ts_error_set(TS_EINPUT, "RECORDS_BAD_VALUE", "%s:%d:%d: column '%s': '%s' is not one of {%s}", t->path, line, c->csv + 1, c->name, cell, set);
  }
  double x;
  if (c->type == TS_REC_INT) {
    long long v;
    if (!parse_int(cell, &v))
      return ts_error_set(TS_EINPUT, "RECORDS_BAD_VALUE", "%s:%d:%d: column '%s': '%s' is not an integer", t->path, line, c->csv + 1, c->name, cell);
    x = (double)v;
  } else if (!parse_num(cell, &x)) {
    return ts_error_set(TS_EINPUT, "RECORDS_BAD_VALUE", "%s:%d:%d: column '%s': '%s' is not a finite number", t->path, line, c->csv + 1, c->name, cell);
  }
  if ((f->has_lo && x < f->lo) || (f->has_hi && x > f->hi)) {
    char lo[32] = "", hi[32] = "";
    if (f->has_lo) snprintf(lo, sizeof lo, "%g", f->lo);
    if (f->has_hi) snprintf(hi, sizeof hi, "%g", f->hi);
    return ts_error_set(TS_EINPUT, "RECORDS_BAD_VALUE", "%s:%d:%d: column '%s': %s is outside [%s,%s]", t->path, line, c->csv + 1, c->name, cell, lo, hi);
  }
  *x_out = x;
  return 0;
}

int ts_rec_block_stats(const ts_rec_table *t, int64_t r0, int64_t r1, ts_rec_stats *out) {
  TS_CALL(ts_rec_stats_init(out, t->ncols, t->n_cat));
  int rc = 0, first_code = 0, n_bad = 0;
  char first[1536] = "", first_tok[64] = "";
  for (int64_t r = r0; r < r1 && r < t->nrows; r++) {
    char **f = NULL;
    int nf = 0;
    int line = t->row_line[r];
    int e = ts_rec_row_fields(t, r, &f, &nf);
    if (e == 0 && !f[t->id_csv][0])
      e = ts_error_set(TS_EINPUT, "RECORDS_MISSING_VALUE", "%s:%d:%d: the id column '%s' is empty", t->path, line, t->id_csv + 1, t->header[t->id_csv]);
    for (int j = 0; e == 0 && j < t->ncols; j++) {
      double x;
      int lv;
      int ce = ts_rec_cell(t, j, f[t->cols[j].csv], line, &x, &lv);
      if (ce < 0) {
        if (!n_bad++) {
          first_code = ce;
          snprintf(first, sizeof first, "%s", ts_error_detail());
          snprintf(first_tok, sizeof first_tok, "%s", ts_error_token());
        }
        continue;
      }
      if (n_bad) continue; /* a failed block writes nothing: only count the other bad cells */
      if (t->cols[j].type == TS_REC_CAT) {
        if (lv < 0) out->missing[j]++;
        else out->cat_counts[t->cols[j].cat_off + lv]++;
      } else if (isnan(x)) {
        out->missing[j]++;
      } else {
        ts_rec_stats_push(out, j, x);
      }
    }
    if (e < 0 && !n_bad++) {
      first_code = e;
      snprintf(first, sizeof first, "%s", ts_error_detail());
      snprintf(first_tok, sizeof first_tok, "%s", ts_error_token());
    }
    free(f);
    out->rows++;
  }
  if (n_bad) {
    ts_rec_stats_clear(out);
    if (n_bad > 1) rc = ts_error_set(first_code, first_tok, "%s (and %d more bad cell(s) in rows %lld-%lld)", first, n_bad - 1, (long long)r0 + 1, (long long)r1);
    else rc = ts_error_set(first_code, first_tok, "%s", first);
  }
  return rc;
}
