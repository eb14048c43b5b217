/* report.c — the report core (see ts_report.h): open the run read-only, load every section
 * once (the core's generic ones, then each registered stage's own, in registry order), let
 * each write its JSON and its HTML from what it loaded, write report/index.html,
 * report/report.json, the thumbnails and the further pages atomically.
 *
 * Why no JavaScript and no charting library: the page must open offline, years later, in
 * whatever browser a reviewer has, and render the same in a headless test. Inline SVG and
 * <details> cover what the report needs (bar charts, collapsible config) with no script, so
 * there is nothing that can fail to load and nothing that can print a console error. */
#include "ts_report.h"

#include <glib.h>
#include <limits.h>
#include <sys/stat.h>
#include <vips/vips.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ts_error.h"
#include "ts_io.h"
#include "ts_report_internal.h"
#include "ts_stage.h"

#define MAX_DEPTH 64

#define MAX_SECTIONS 128

struct ts_report {
  char dir[TS_PATH_MAX];
  sqlite3 *db;
  ts_config *cfg;
  ts_report_opts opts;
  const struct ts_stage *const *stages; /* never NULL */
  int nsec;
  const struct ts_report_section *sec[MAX_SECTIONS];
  void *data[MAX_SECTIONS];
  bool on[MAX_SECTIONS];
};

struct ts_report_out {
  const ts_report *r;
  bool subpage;
  FILE *f;
  char *buf;
  size_t len;
  bool err;
  int depth;
  bool first[MAX_DEPTH];
  char close[MAX_DEPTH]; /* the bracket that ends each open level */
};

/* ---- accessors ---- */
const char *ts_report_run_dir(const ts_report *r) { return r->dir; }
sqlite3 *ts_report_ledger(const ts_report *r) { return r->db; }
const struct ts_stage *const *ts_report_stages(const ts_report *r) { return r->stages; }
const struct ts_stage *ts_report_stage(const ts_report *r, const char *name) {
  for (int i = 0; name && r->stages[i]; i++)
    if (!strcmp(r->stages[i]->name, name)) return r->stages[i];
  return NULL;
}
const ts_config *ts_report_config(const ts_report *r) { return r->cfg; }
const ts_report_opts *ts_report_options(const ts_report *r) { return &r->opts; }
int ts_report_path(const ts_report *r, const char *rel, char *buf, size_t n) { return ts_io_join(r->dir, rel, buf, n); }

char *ts_report_read_text(const ts_report *r, const char *rel) {
  char path[TS_PATH_MAX];
  char *text = NULL;
  if (ts_report_path(r, rel, path, sizeof path) < 0 || !ts_io_exists(path) || ts_io_read_all(path, &text, NULL) < 0) {
    ts_error_clear();
    return NULL;
  }
  return text;
}

bool ts_report_exists(const ts_report *r, const char *rel) {
  char path[TS_PATH_MAX];
  bool ok = ts_report_path(r, rel, path, sizeof path) == 0 && ts_io_exists(path);
  ts_error_clear();
  return ok;
}

int ts_report_csv_split(char *line, char **f, int max) {
  size_t len = strlen(line);
  if (len && line[len - 1] == '\r') line[len - 1] = '\0';
  int n = 0;
  for (char *p = line; n < max;) {
    f[n++] = p;
    char *c = strchr(p, ',');
    if (!c) break;
    *c = '\0';
    p = c + 1;
  }
  return n;
}

bool ts_report_has_table(const ts_report *r, const char *table) {
  sqlite3_stmt *st = NULL;
  bool yes = false;
  if (sqlite3_prepare_v2(r->db, "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", -1, &st, NULL) == SQLITE_OK) {
    sqlite3_bind_text(st, 1, table, -1, SQLITE_TRANSIENT);
    yes = sqlite3_step(st) == SQLITE_ROW;
  }
  sqlite3_finalize(st);
  return yes;
}

bool ts_report_has_column(const ts_report *r, const char *table, const char *column) {
  sqlite3_stmt *st = NULL;
  bool yes = false;
  if (sqlite3_prepare_v2(r->db, "SELECT 1 FROM pragma_table_info(?) WHERE name=?", -1, &st, NULL) == SQLITE_OK) {
    sqlite3_bind_text(st, 1, table, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, column, -1, SQLITE_TRANSIENT);
    yes = sqlite3_step(st) == SQLITE_ROW;
  }
  sqlite3_finalize(st);
  return yes;
}

int ts__report_sql(const ts_report *r, const char *sql, sqlite3_stmt **st) {
  if (sqlite3_prepare_v2(r->db, sql, -1, st, NULL) != SQLITE_OK)
    return ts_error_set(TS_EIO, "REPORT_LEDGER", "ledger query failed: %s", sqlite3_errmsg(r->db));
  return 0;
}

const char *ts__report_col(sqlite3_stmt *st, int i) {
  const unsigned char *t = sqlite3_column_text(st, i);
  return t ? (const char *)t : NULL;
}

/* ---- output buffers ---- */
static int out_open(ts_report_out *o, const ts_report *r) {
  memset(o, 0, sizeof *o);
  o->r = r;
  o->first[0] = true;
  o->f = open_memstream(&o->buf, &o->len);
  if (!o->f) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "report buffer");
  return 0;
}

/* Close the stream; returns the text (caller frees) or NULL when a write failed. */
static char *out_close(ts_report_out *o) {
  if (o->f && fclose(o->f) != 0) o->err = true;
  o->f = NULL;
  if (o->err) {
    free(o->buf);
    o->buf = NULL;
  }
  return o->buf;
}

void ts_report_html(ts_report_out *o, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (vfprintf(o->f, fmt, ap) < 0) o->err = true;
  va_end(ap);
}

void ts_report_html_text(ts_report_out *o, const char *s) {
  for (; s && *s; s++) {
    switch (*s) {
    case '<': fputs("&lt;", o->f); break;
    case '>': fputs("&gt;", o->f); break;
    case '&': fputs("&amp;", o->f); break;
    case '"': fputs("&quot;", o->f); break;
    case '\'': fputs("&#39;", o->f); break;
    default: fputc(*s, o->f);
    }
  }
}

/* The thumbnail of src at dst (JPEG, long side <= TS_REPORT_THUMB_PX), unless dst is newer. */
static int make_thumb(const char *src, const char *dst) {
  struct stat ss, ds;
  if (stat(src, &ss) < 0) return ts_error_set(TS_EIO, "REPORT_IO", "%s: no such image", src);
  if (stat(dst, &ds) == 0 && ds.st_mtime >= ss.st_mtime) return 0;
  char tmp[TS_PATH_MAX];
  TS_CALL(ts_io_tmp_path(dst, tmp, sizeof tmp));
  VipsImage *img = NULL;
  if (vips_thumbnail(src, &img, TS_REPORT_THUMB_PX, NULL) < 0) {
    int rc = ts_error_set(TS_EIO, "REPORT_IO", "%s: cannot make a thumbnail: %s", src, vips_error_buffer());
    vips_error_clear();
    return rc;
  }
  int rc = 0;
  if (vips_jpegsave(img, tmp, "Q", 80, "strip", TRUE, NULL) < 0) {
    rc = ts_error_set(TS_EIO, "REPORT_IO", "%s: cannot write: %s", tmp, vips_error_buffer());
    vips_error_clear();
    unlink(tmp);
  }
  g_object_unref(img);
  if (rc == 0) rc = ts_io_commit(tmp, dst);
  return rc;
}

void ts_report_html_thumb(ts_report_out *o, const char *src, const char *thumb_name, const char *alt) {
  char path[TS_PATH_MAX], dir[TS_PATH_MAX], dst[TS_PATH_MAX], rel[600];
  bool ok = ts_id_is_safe(thumb_name) && src[0] != '/' && !strstr(src, "..") &&
            ts_io_join(o->r->dir, src, path, sizeof path) == 0 &&
            ts_io_join(o->r->dir, "report/thumbs", dir, sizeof dir) == 0 && ts_io_mkdirs(dir, 0755) == 0 &&
            snprintf(rel, sizeof rel, "thumbs/%s.jpg", thumb_name) < (int)sizeof rel &&
            snprintf(dst, sizeof dst, "%s/%s.jpg", dir, thumb_name) < (int)sizeof dst && make_thumb(path, dst) == 0;
  if (!ok) {
    ts_error_clear();
    ts_report_html(o, "<div class=\"missing\">no QC image</div>");
    return;
  }
  ts_report_html(o, "<a href=\"../");
  ts_report_html_text(o, src);
  ts_report_html(o, "\"><img loading=\"lazy\" alt=\"");
  ts_report_html_text(o, alt);
  ts_report_html(o, "\" src=\"");
  ts_report_html_text(o, rel);
  ts_report_html(o, "\"></a>");
}

bool ts_report_html_is_subpage(const ts_report_out *o) { return o->subpage; }

static void fmt_value(char *buf, size_t n, double v) {
  if (v >= 100) snprintf(buf, n, "%.0f", v);
  else if (v >= 10) snprintf(buf, n, "%.1f", v);
  else snprintf(buf, n, "%.3g", v);
}

void ts_report_html_bars(ts_report_out *o, const char *title, const char *unit, const char *const *labels,
                         const double *values, int n) {
  const int W = 700, left = 200, right = 90, bar = 20, gap = 6, top = 26;
  double max = 0;
  for (int i = 0; i < n; i++)
    if (isfinite(values[i]) && values[i] > max) max = values[i];
  double mean = 0;
  for (int i = 0; i < n; i++) mean += isfinite(values[i]) ? values[i] : 0;
  mean = n ? mean / n : 0;
  int H = top + n * (bar + gap) + 18;
  int span = W - left - right;
  ts_report_html(o, "<svg class=\"chart\" role=\"img\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\"><title>", W, H, W, H);
  ts_report_html_text(o, title);
  ts_report_html(o, "</title><text x=\"0\" y=\"16\" class=\"ct\">");
  ts_report_html_text(o, title);
  ts_report_html(o, "</text>");
  for (int i = 0; i < n; i++) {
    double v = isfinite(values[i]) && values[i] > 0 ? values[i] : 0;
    int y = top + i * (bar + gap);
    int w = max > 0 ? (int)lround(span * v / max) : 0;
    char vb[32];
    fmt_value(vb, sizeof vb, v);
    ts_report_html(o, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" class=\"cl\">", left - 8, y + bar - 6);
    ts_report_html_text(o, labels[i]);
    ts_report_html(o, "</text><rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" class=\"cb\"/>"
                      "<text x=\"%d\" y=\"%d\" class=\"cv\">%s ",
                   left, y, w > 0 ? w : 1, bar, left + w + 6, y + bar - 6, vb);
    ts_report_html_text(o, unit);
    ts_report_html(o, "</text>");
  }
  if (max > 0 && n > 1) {
    int x = left + (int)lround(span * mean / max);
    ts_report_html(o, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" class=\"cm\"/>"
                      "<text x=\"%d\" y=\"%d\" class=\"cv\">mean</text>",
                   x, top - 4, x, top + n * (bar + gap) - gap + 2, x + 3, H - 4);
  }
  ts_report_html(o, "</svg>");
}

/* ---- JSON writer ---- */
static void json_string(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
    else if (c == '\n') fputs("\\n", f);
    else if (c == '\t') fputs("\\t", f);
    else if (c == '\r') fputs("\\r", f);
    else if (c < 0x20) fprintf(f, "\\u%04x", c);
    else fputc(c, f);
  }
  fputc('"', f);
}

static void json_key(ts_report_out *o, const char *key) {
  if (!o->first[o->depth]) fputc(',', o->f);
  o->first[o->depth] = false;
  fprintf(o->f, "\n%*s", 2 * o->depth, "");
  if (key) {
    json_string(o->f, key);
    fputs(": ", o->f);
  }
}

static void json_open(ts_report_out *o, const char *key, char c) {
  json_key(o, key);
  fputc(c, o->f);
  if (o->depth + 1 >= MAX_DEPTH) {
    o->err = true;
    return;
  }
  o->first[++o->depth] = true;
  o->close[o->depth] = c == '{' ? '}' : ']';
}

void ts_report_json_object(ts_report_out *o, const char *key) { json_open(o, key, '{'); }
void ts_report_json_array(ts_report_out *o, const char *key) { json_open(o, key, '['); }

void ts_report_json_end(ts_report_out *o) {
  if (o->depth <= 0) {
    o->err = true;
    return;
  }
  bool empty = o->first[o->depth];
  char c = o->close[o->depth];
  o->depth--;
  if (!empty) fprintf(o->f, "\n%*s", 2 * o->depth, "");
  fputc(c, o->f);
}

void ts_report_json_str(ts_report_out *o, const char *key, const char *v) {
  json_key(o, key);
  if (v) json_string(o->f, v);
  else fputs("null", o->f);
}
void ts_report_json_int(ts_report_out *o, const char *key, int64_t v) {
  json_key(o, key);
  fprintf(o->f, "%lld", (long long)v);
}
void ts_report_json_num(ts_report_out *o, const char *key, double v) {
  json_key(o, key);
  if (isfinite(v)) fprintf(o->f, "%.17g", v);
  else fputs("null", o->f);
}
void ts_report_json_bool(ts_report_out *o, const char *key, bool v) {
  json_key(o, key);
  fputs(v ? "true" : "false", o->f);
}
void ts_report_json_count(ts_report_out *o, const char *key, int64_t v) {
  if (v >= 0)
    ts_report_json_int(o, key, v);
  else
    ts_report_json_null(o, key);
}

void ts_report_json_nums(ts_report_out *o, const char *key, const double *v, size_t n) {
  ts_report_json_array(o, key);
  for (size_t i = 0; i < n; i++) ts_report_json_num(o, NULL, v[i]);
  ts_report_json_end(o);
}

void ts_report_json_pair(ts_report_out *o, const char *key, double a, double b) {
  double v[2] = {a, b};
  ts_report_json_nums(o, key, v, 2);
}

void ts_report_json_null(ts_report_out *o, const char *key) {
  json_key(o, key);
  fputs("null", o->f);
}

/* ---- formatting helpers ---- */
void ts_report_fmt_bytes(char *buf, size_t n, double b) {
  const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int i = 0;
  while (b >= 1024 && i < 4) {
    b /= 1024;
    i++;
  }
  snprintf(buf, n, i ? "%.1f %s" : "%.0f %s", b, u[i]);
}

void ts_report_fmt_seconds(char *buf, size_t n, double s) {
  if (!isfinite(s) || s < 0) snprintf(buf, n, "–");
  else if (s < 120) snprintf(buf, n, "%.2f s", s);
  else if (s < 7200) snprintf(buf, n, "%.1f min", s / 60);
  else snprintf(buf, n, "%.2f h", s / 3600);
}

/* 12345 → "12,345"; small values with 3 significant digits. */
void ts_report_fmt_num(char *buf, size_t n, double v) {
  if (!isfinite(v)) {
    snprintf(buf, n, "–");
    return;
  }
  if (fabs(v) < 1000) {
    snprintf(buf, n, "%.3g", v);
    return;
  }
  char digits[64];
  snprintf(digits, sizeof digits, "%.0f", fabs(v));
  size_t len = strlen(digits), k = 0;
  if (v < 0 && k + 1 < n) buf[k++] = '-';
  for (size_t i = 0; i < len && k + 2 < n; i++) {
    if (i && (len - i) % 3 == 0) buf[k++] = ',';
    buf[k++] = digits[i];
  }
  buf[k] = '\0';
}

const char *ts_report_msg_body(const char *token, const char *message) {
  size_t n = token ? strlen(token) : 0;
  if (n && message && !strncmp(message, token, n) && message[n] == ':') return message + n + 1 + (message[n + 1] == ' ');
  return message;
}

void ts__report_kv(ts_report_out *o, const char *k, const char *v, const char *id) {
  ts_report_html(o, "<tr><th>%s</th><td", k);
  if (id) ts_report_html(o, " id=\"%s\"", id);
  ts_report_html(o, ">");
  ts_report_html_text(o, v ? v : "–");
  ts_report_html(o, "</td></tr>\n");
}

/* ---- open / close the run, load the sections ---- */
static const struct ts_stage *const no_stages[] = {NULL};

static void report_close(ts_report *r) {
  for (int i = 0; i < r->nsec; i++)
    if (r->on[i] && r->sec[i]->release) r->sec[i]->release(r->data[i]);
  sqlite3_close(r->db);
  ts_config_free(&r->cfg);
  memset(r, 0, sizeof *r);
}

static int add_section(ts_report *r, const struct ts_report_section *s, const char *owner) {
  if (!s || s->abi != TS_REPORT_SECTION_ABI || !s->name || !s->html || !s->json)
    return ts_error_set(TS_EINTERNAL, "REPORT_SECTION", "report section %s of %s is incomplete or of another ABI (want %u)",
                        s && s->name ? s->name : "?", owner, TS_REPORT_SECTION_ABI);
  for (int j = 0; j < r->nsec; j++)
    if (!strcmp(r->sec[j]->name, s->name))
      return ts_error_set(TS_EINTERNAL, "REPORT_SECTION", "report section name '%s' (%s) used twice", s->name, owner);
  if (r->nsec == MAX_SECTIONS) return ts_error_set(TS_EINTERNAL, "REPORT_SECTION", "more than %d report sections", MAX_SECTIONS);
  r->sec[r->nsec++] = s;
  return 0;
}

static int report_open(const char *run_dir, const struct ts_stage *const *stages, const ts_report_opts *opts, ts_report *r) {
  memset(r, 0, sizeof *r);
  r->stages = stages ? stages : no_stages;
  if (opts) r->opts = *opts;
  /* the table of sections first: a bad one is a programmer error, whatever the run */
  const struct ts_report_section *core[] = {&ts__report_section_run, &ts__report_section_stages, &ts__report_section_failures,
                                            &ts__report_section_repro};
  for (size_t i = 0; i < sizeof core / sizeof core[0]; i++) TS_CALL(add_section(r, core[i], "the report core"));
  for (int i = 0; r->stages[i]; i++)
    for (int k = 0; r->stages[i]->report && r->stages[i]->report[k]; k++) {
      char owner[128];
      snprintf(owner, sizeof owner, "stage %s", r->stages[i]->name);
      TS_CALL(add_section(r, r->stages[i]->report[k], owner));
    }
  char path[TS_PATH_MAX], *text = NULL;
  if (!realpath(run_dir, r->dir))
    return ts_error_set(TS_EINPUT, "REPORT_NO_LEDGER", "%s: no such run directory", run_dir);
  TS_CALL(ts_io_join(r->dir, "ledger.sqlite", path, sizeof path));
  if (!ts_io_exists(path))
    return ts_error_set(TS_EINPUT, "REPORT_NO_LEDGER", "%s has no ledger.sqlite: is it a tessera run directory?", run_dir);
  if (sqlite3_open_v2(path, &r->db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
    int rc = ts_error_set(TS_EIO, "REPORT_LEDGER", "%s: %s", path, r->db ? sqlite3_errmsg(r->db) : "out of memory");
    report_close(r);
    return rc;
  }
  sqlite3_busy_timeout(r->db, 10000);
  TS_CALL(ts_io_join(r->dir, "config.yaml", path, sizeof path));
  if (ts_io_read_all(path, &text, NULL) < 0 || ts_config_from_text(text, path, &r->cfg) < 0) {
    int rc = ts_error_set(TS_EINPUT, "REPORT_CONFIG", "%s: cannot read the run's resolved config: %s", path, ts_error_message());
    free(text);
    report_close(r);
    return rc;
  }
  free(text);
  /* load every section once; both files are rendered from what they loaded */
  for (int i = 0; i < r->nsec; i++) {
    const struct ts_report_section *s = r->sec[i];
    void *data = NULL;
    int k = s->load ? s->load(r, &data) : 1;
    if (k < 0) {
      int rc = ts_error_set(k, ts_error_token()[0] ? ts_error_token() : "REPORT_SECTION", "report section %s: %s", s->name,
                            ts_error_message());
      report_close(r);
      return rc;
    }
    r->on[i] = k > 0;
    r->data[i] = data;
    if (!r->on[i] && s->release) s->release(data);
  }
  return 0;
}

int ts__report_repro_parts(const ts_report *r, enum ts_report_repro_part part, ts_report_out *o) {
  for (int i = 0; i < r->nsec; i++)
    if (r->on[i] && r->sec[i]->repro) TS_CALL(r->sec[i]->repro(r, r->data[i], part, o));
  return 0;
}

static int build_json(ts_report *r, char **out) {
  ts_report_out o;
  *out = NULL;
  TS_CALL(out_open(&o, r));
  char now[32];
  ts_now_iso(now);
  int rc = 0;
  fputc('{', o.f); /* depth 0: the document's object, closed below */
  ts_report_json_str(&o, "schema", TS_REPORT_SCHEMA);
  ts_report_json_str(&o, "generated", now);
  ts_report_json_str(&o, "run_dir", r->dir);
  ts_report_json_array(&o, "sections");
  for (int i = 0; i < r->nsec; i++)
    if (r->on[i]) ts_report_json_str(&o, NULL, r->sec[i]->name);
  ts_report_json_end(&o);
  for (int i = 0; i < r->nsec; i++) {
    const struct ts_report_section *s = r->sec[i];
    if (!r->on[i]) continue;
    int depth = o.depth;
    ts_report_json_object(&o, s->name);
    rc = s->json(r, r->data[i], &o);
    if (rc < 0) break;
    if (o.depth != depth + 1) {
      rc = ts_error_set(TS_EINTERNAL, "REPORT_SECTION", "report section '%s' left %d JSON bracket(s) open", s->name, o.depth - depth - 1);
      break;
    }
    ts_report_json_end(&o);
  }
  fputs("\n}\n", o.f);
  char *text = out_close(&o);
  if (rc < 0) {
    free(text);
    return rc;
  }
  if (!text) return ts_error_set(TS_ENOMEM, "REPORT_IO", "report.json: out of memory");
  *out = text;
  return 0;
}

static const char css[] =
    "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;margin:0;color:#1d2430;background:#f6f7f9}"
    "header{background:#22304a;color:#fff;padding:18px 28px}header h1{margin:0 0 4px;font-size:22px}"
    "header .sub{opacity:.85;font-size:13px}nav{padding:8px 28px;background:#e8ebf0;font-size:13px}"
    "nav a{margin-right:14px;color:#22304a;text-decoration:none}main{padding:8px 28px 40px;max-width:1200px}"
    "section{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:10px 18px 16px;margin:16px 0}"
    "h2{font-size:18px;margin:8px 0 10px;color:#22304a}h3{font-size:15px;margin:14px 0 6px}"
    "table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}th,td{border-bottom:1px solid #e4e7ec;padding:4px 10px;text-align:left;vertical-align:top}"
    "th{background:#f0f2f5;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}"
    "table.kv th{width:190px;background:none;color:#556}code,pre{font-family:'DejaVu Sans Mono',Menlo,monospace;font-size:12px}"
    "pre{background:#f4f5f7;padding:8px;overflow:auto;border-radius:4px}.ok{color:#17803d;font-weight:600}.bad{color:#b42318;font-weight:600}"
    ".warn{color:#a15c07;font-weight:600}.tok{font-family:monospace;background:#fde8e7;color:#b42318;padding:1px 4px;border-radius:3px}"
    ".wtok{font-family:monospace;background:#fdf1dc;color:#a15c07;padding:1px 4px;border-radius:3px}"
    ".slides{display:flex;flex-wrap:wrap;gap:14px}.slide{border:1px solid #dde1e7;border-radius:6px;padding:8px;width:410px;background:#fcfcfd}"
    ".slide.warned{border-color:#e8b35a;background:#fffaf0}.slide.failed{border-color:#e59a93;background:#fff6f5}"
    ".slide img{width:200px;height:auto;border:1px solid #ccd;margin-right:4px}.slide .imgs{display:flex}"
    ".slide h3{margin:2px 0 6px}.missing{width:200px;height:120px;display:flex;align-items:center;justify-content:center;background:#eee;color:#888}"
    ".pager a,.pager b{margin-right:8px}"
    "svg.chart{display:block;margin:6px 0}svg .ct{font-size:13px;font-weight:600;fill:#22304a}svg .cl{font-size:12px;fill:#334}"
    "svg .cv{font-size:11px;fill:#556}svg .cb{fill:#4f7cc3}svg .cm{stroke:#b42318;stroke-dasharray:4 3}"
    ".hash{font-family:monospace;font-size:12px;word-break:break-all}footer{color:#778;font-size:12px;padding:0 28px 20px}";

static void page_head(ts_report_out *o, const ts_report *r, const char *title) {
  char now[32];
  ts_now_iso(now);
  ts_report_html(o, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                    "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src 'self' file: data:; style-src 'unsafe-inline'\">"
                    "<title>");
  ts_report_html_text(o, title);
  ts_report_html(o, ": ");
  ts_report_html_text(o, r->dir);
  ts_report_html(o, "</title><style>%s</style></head>\n<body><header><h1>", css);
  ts_report_html_text(o, title);
  ts_report_html(o, "</h1><div class=\"sub\"><span id=\"run-dir\">");
  ts_report_html_text(o, r->dir);
  ts_report_html(o, "</span> · config <span class=\"hash\" id=\"config-hash\">%s</span> · report written %s</div></header>\n<nav>",
                 r->cfg->hash, now);
  for (int i = 0; i < r->nsec; i++)
    if (r->on[i]) {
      ts_report_html(o, "<a href=\"%s#%s\">", o->subpage ? "index.html" : "", r->sec[i]->name);
      ts_report_html_text(o, r->sec[i]->title ? r->sec[i]->title : r->sec[i]->name);
      ts_report_html(o, "</a>");
    }
  ts_report_html(o, "<a href=\"report.json\">report.json</a></nav>\n<main>\n");
}

static void page_foot(ts_report_out *o) {
  ts_report_html(o, "</main><footer>Written by tessera from the run's ledger (ledger.sqlite) and outputs. "
                    "The same facts are in report.json next to this file; <code>tessera rerun report.json NEW_DIR</code> "
                    "repeats the run and <code>tessera compare</code> checks the result.</footer></body></html>\n");
}

static bool page_name_ok(const char *file) {
  size_t n = strlen(file);
  if (n < 6 || n > 128 || strcmp(file + n - 5, ".html") || !strcmp(file, "index.html")) return false;
  for (size_t i = 0; i < n - 5; i++)
    if (!g_ascii_islower(file[i]) && !g_ascii_isdigit(file[i]) && file[i] != '_' && file[i] != '-') return false;
  return true;
}

int ts_report_html_page(ts_report_out *o, const char *file, const char *title, int (*body)(void *ctx, ts_report_out *page),
                        void *ctx) {
  const ts_report *r = o->r;
  if (!page_name_ok(file)) return ts_error_set(TS_EINTERNAL, "REPORT_SECTION", "report page name '%s' is not [a-z0-9_-]+.html", file);
  ts_report_out p;
  TS_CALL(out_open(&p, r));
  p.subpage = true;
  page_head(&p, r, title);
  int rc = body(ctx, &p);
  page_foot(&p);
  char *text = out_close(&p);
  if (rc >= 0 && !text) rc = ts_error_set(TS_ENOMEM, "REPORT_IO", "%s: out of memory", file);
  char path[TS_PATH_MAX];
  if (rc >= 0 && snprintf(path, sizeof path, "%s/report/%s", r->dir, file) >= (int)sizeof path)
    rc = ts_error_set(TS_EINPUT, "REPORT_IO", "%s: path too long", file);
  if (rc >= 0) rc = ts_io_write_atomic(path, text, strlen(text));
  free(text);
  return rc;
}

static int build_html(ts_report *r, char **out) {
  ts_report_out o;
  *out = NULL;
  TS_CALL(out_open(&o, r));
  int rc = 0;
  page_head(&o, r, "tessera run report");
  for (int i = 0; i < r->nsec; i++) {
    const struct ts_report_section *s = r->sec[i];
    if (!r->on[i]) continue;
    ts_report_html(&o, "<section id=\"%s\"><h2>", s->name);
    ts_report_html_text(&o, s->title ? s->title : s->name);
    ts_report_html(&o, "</h2>\n");
    if ((rc = s->html(r, r->data[i], &o)) < 0) break;
    ts_report_html(&o, "</section>\n");
  }
  page_foot(&o);
  char *text = out_close(&o);
  if (rc < 0) {
    free(text);
    return rc;
  }
  if (!text) return ts_error_set(TS_ENOMEM, "REPORT_IO", "index.html: out of memory");
  *out = text;
  return 0;
}

int ts_report_build_json(const char *run_dir, const struct ts_stage *const *stages, char **json_out) {
  ts_report r;
  *json_out = NULL;
  TS_CALL(report_open(run_dir, stages, NULL, &r));
  int rc = build_json(&r, json_out);
  report_close(&r);
  return rc;
}

int ts_report_write(const char *run_dir, const struct ts_stage *const *stages, const ts_report_opts *opts) {
  ts_report r;
  char *json = NULL, *html = NULL, dir[TS_PATH_MAX], path[TS_PATH_MAX];
  int rc = 0;
  if (VIPS_INIT("tessera")) /* the thumbnails; at once when main did it */
    return ts_error_set(TS_EINTERNAL, "REPORT_IO", "libvips: %s", vips_error_buffer());
  TS_CALL(report_open(run_dir, stages, opts, &r));
  TS_TRY(ts_io_join(r.dir, "report", dir, sizeof dir));
  TS_TRY(ts_io_mkdirs(dir, 0755));
  TS_TRY(build_json(&r, &json));
  TS_TRY(build_html(&r, &html)); /* writes thumbs/ and further pages as it goes */
  TS_TRY(ts_io_join(dir, "report.json", path, sizeof path));
  TS_TRY(ts_io_write_atomic(path, json, strlen(json)));
  TS_TRY(ts_io_join(dir, "index.html", path, sizeof path));
  TS_TRY(ts_io_write_atomic(path, html, strlen(html)));
  if (!r.opts.quiet) fprintf(stderr, "report: %s\n", path);
out:
  free(json);
  free(html);
  report_close(&r);
  return rc;
}
