/* config.c — YAML config against the table in schemas/config_params.h (see ts_config.h).
 *
 * Why two passes: libcyaml 1.3 validates structure but reports neither line numbers nor
 * defaults, and our users need "config.yaml:12: unknown key tile.szie". So libyaml's
 * document API (which keeps marks) validates and resolves, and libcyaml loads the canonical
 * text we produce into the C struct, against a schema built from the same table. */
#include "ts_config.h"

#include <cyaml/cyaml.h>
#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "ts_error.h"
#include "ts_io.h"

typedef enum { P_STR, P_INT, P_FLOAT, P_BOOL } ptype;

typedef struct param {
  const char *section, *key;
  ptype type;
  const char *def;
  double min, max;
  int required;
  const char *doc;
  size_t offset, size;
} param;

static const param params[] = {
#define TS_PARAM(s, k, t, d, mn, mx, r, doc)                                                  \
  {#s, #k, P_##t, d, mn, mx, r, doc, offsetof(ts_config, s.k), sizeof(((ts_config *)0)->s.k)},
#include "config_params.h"
#undef TS_PARAM
};
#define N_PARAMS ((int)(sizeof params / sizeof params[0]))

static const char *type_name(ptype t) {
  switch (t) {
  case P_STR: return "string";
  case P_INT: return "integer";
  case P_FLOAT: return "number";
  case P_BOOL: return "boolean";
  }
  return "?";
}

static int find_param(const char *section, const char *key) {
  for (int i = 0; i < N_PARAMS; i++)
    if (!strcmp(params[i].section, section) && !strcmp(params[i].key, key)) return i;
  return -1;
}

static bool section_exists(const char *section) {
  for (int i = 0; i < N_PARAMS; i++)
    if (!strcmp(params[i].section, section)) return true;
  return false;
}

/* ---- "did you mean ...?" for unknown keys ----
 * Optimal string alignment distance (Levenshtein plus adjacent transpositions, so "szie" is
 * one edit from "size"): the typos people make in a config are a dropped, doubled or swapped
 * letter. Names are short (< 64 chars); longer ones are compared on their first 63. */
static int edit_distance(const char *a, const char *b) {
  enum { M = 64 };
  int la = (int)strnlen(a, M - 1), lb = (int)strnlen(b, M - 1);
  int rows[3][M]; /* rows i-2, i-1, i of the dynamic programme, used in rotation */
  for (int j = 0; j <= lb; j++) rows[0][j] = j;
  for (int i = 1; i <= la; i++) {
    int *prev2 = rows[(i + 1) % 3], *prev = rows[(i - 1) % 3], *cur = rows[i % 3];
    cur[0] = i;
    for (int j = 1; j <= lb; j++) {
      int v = prev[j] + 1;
      if (cur[j - 1] + 1 < v) v = cur[j - 1] + 1;
      if (prev[j - 1] + (a[i - 1] != b[j - 1]) < v) v = prev[j - 1] + (a[i - 1] != b[j - 1]);
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && prev2[j - 2] + 1 < v)
        v = prev2[j - 2] + 1;
      cur[j] = v;
    }
  }
  return rows[la % 3][lb];
}

/* How many edits still read as a typo of a name of len characters (and not another word). */
static int typo_budget(size_t len) { return len <= 3 ? 1 : len <= 7 ? 2 : 3; }

/* The table's key nearest to section.key, or -1 when none is close enough. The cost is the
 * key's edit distance plus the section's, the section's capped at 2: a right key in the wrong
 * section (tile.batch for extract.batch) is one mistake, not a rewrite of the word. */
static int nearest_param(const char *section, const char *key) {
  int best = -1, best_cost = 0;
  for (int i = 0; i < N_PARAMS; i++) {
    int ds = edit_distance(section, params[i].section);
    int cost = edit_distance(key, params[i].key) + (ds > 2 ? 2 : ds);
    if (best < 0 || cost < best_cost) best = i, best_cost = cost;
  }
  return best >= 0 && best_cost <= typo_budget(strlen(key)) ? best : -1;
}

/* The table's section nearest to section, or NULL when none is close enough. */
static const char *nearest_section(const char *section) {
  const char *best = NULL;
  int best_d = 0;
  for (int i = 0; i < N_PARAMS; i++) {
    int d = edit_distance(section, params[i].section);
    if (!best || d < best_d) best = params[i].section, best_d = d;
  }
  return best && best_d <= typo_budget(strlen(section)) ? best : NULL;
}

/* " (did you mean tile.mpp? see `tessera run --help` for the keys)" into buf. */
static const char *key_hint(const char *section, const char *key, char *buf, size_t n) {
  int i = nearest_param(section, key);
  if (i >= 0) snprintf(buf, n, "did you mean %s.%s? see `tessera run --help` for the keys", params[i].section, params[i].key);
  else snprintf(buf, n, "see `tessera run --help` for the keys");
  return buf;
}

/* Check one scalar against param p; on success write its canonical text into canon. */
static int check_value(const param *p, const char *v, const char *where, char *canon, size_t n) {
  char *end = NULL;
  switch (p->type) {
  case P_STR:
    snprintf(canon, n, "%s", v);
    return 0;
  case P_BOOL:
    if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on")) snprintf(canon, n, "true");
    else if (!strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcasecmp(v, "off")) snprintf(canon, n, "false");
    else return ts_error_set(TS_ECONFIG, "CONFIG_TYPE", "%s: %s.%s must be a boolean (true/false), got '%s'", where, p->section, p->key, v);
    return 0;
  case P_INT: {
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || errno)
      return ts_error_set(TS_ECONFIG, "CONFIG_TYPE", "%s: %s.%s must be an integer, got '%s'", where, p->section, p->key, v);
    if ((double)x < p->min || (double)x > p->max)
      return ts_error_set(TS_ECONFIG, "CONFIG_RANGE", "%s: %s.%s = %lld is outside [%g, %g]", where, p->section, p->key, x, p->min, p->max);
    snprintf(canon, n, "%lld", x);
    return 0;
  }
  case P_FLOAT: {
    errno = 0;
    double x = strtod(v, &end);
    if (!*v || *end || errno || !isfinite(x))
      return ts_error_set(TS_ECONFIG, "CONFIG_TYPE", "%s: %s.%s must be a number, got '%s'", where, p->section, p->key, v);
    if (x < p->min || x > p->max)
      return ts_error_set(TS_ECONFIG, "CONFIG_RANGE", "%s: %s.%s = %g is outside [%g, %g]", where, p->section, p->key, x, p->min, p->max);
    /* shortest text that reads back to the same double */
    for (int prec = 1; prec <= 17; prec++) {
      snprintf(canon, n, "%.*g", prec, x);
      if (strtod(canon, NULL) == x) break;
    }
    return 0;
  }
  }
  return TS_EINVAL;
}

static bool is_path_param(const param *p) { return p->type == P_STR && !strncmp(p->doc, "path:", 5); }
/* "exec:" keys say how a result is computed, never what it is (shard size, decoding threads):
 * they are left out of the stage hashes, so changing one redoes nothing. */
static bool is_exec_param(const param *p) { return !strncmp(p->doc, "exec:", 5); }

/* Values being resolved: canonical text per param, and where each came from. */
typedef struct resolve {
  char *val[N_PARAMS > 0 ? N_PARAMS : 1];
  int line[N_PARAMS > 0 ? N_PARAMS : 1];
} resolve;

static void resolve_clear(resolve *r) {
  for (int i = 0; i < N_PARAMS; i++) free(r->val[i]);
}

static int set_val(resolve *r, int i, const char *raw, const char *where) {
  char canon[4096];
  TS_CALL(check_value(&params[i], raw, where, canon, sizeof canon));
  free(r->val[i]);
  r->val[i] = strdup(canon);
  if (!r->val[i]) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "config");
  return 0;
}

/* Pass 1: walk the YAML document of `path`. */
static int walk_yaml(const char *path, const char *text, size_t len, resolve *r) {
  yaml_parser_t parser;
  yaml_document_t doc;
  int rc = 0;
  if (!yaml_parser_initialize(&parser)) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "yaml parser");
  yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
  if (!yaml_parser_load(&parser, &doc)) {
    rc = ts_error_set(TS_ECONFIG, "CONFIG_SYNTAX", "%s:%zu: %s%s%s", path,
                      parser.problem_mark.line + 1, parser.problem ? parser.problem : "YAML error",
                      parser.context ? " " : "", parser.context ? parser.context : "");
    yaml_parser_delete(&parser);
    return rc;
  }
  yaml_node_t *root = yaml_document_get_root_node(&doc);
  if (!root) goto out; /* empty document: only defaults */
  if (root->type != YAML_MAPPING_NODE)
    TS_FAIL(TS_ECONFIG, "CONFIG_TYPE", "%s:%zu: the config must be a mapping of sections (run:, cohort:, tile:, ...)", path, root->start_mark.line + 1);
  for (yaml_node_pair_t *sp = root->data.mapping.pairs.start; sp < root->data.mapping.pairs.top; sp++) {
    yaml_node_t *sk = yaml_document_get_node(&doc, sp->key);
    yaml_node_t *sv = yaml_document_get_node(&doc, sp->value);
    size_t sline = sk->start_mark.line + 1;
    if (sk->type != YAML_SCALAR_NODE)
      TS_FAIL(TS_ECONFIG, "CONFIG_TYPE", "%s:%zu: section names must be plain words", path, sline);
    const char *sname = (const char *)sk->data.scalar.value;
    if (!section_exists(sname)) {
      const char *near = nearest_section(sname);
      TS_FAIL(TS_ECONFIG, "CONFIG_UNKNOWN_KEY", "%s:%zu: unknown section '%s' (%s%s%ssee `tessera run --help` for the keys)", path, sline, sname,
              near ? "did you mean " : "", near ? near : "", near ? "? " : "");
    }
    if (sv->type == YAML_SCALAR_NODE && sv->data.scalar.length == 0) continue; /* "tile:" alone */
    if (sv->type != YAML_MAPPING_NODE)
      TS_FAIL(TS_ECONFIG, "CONFIG_TYPE", "%s:%zu: section '%s' must be a mapping of keys", path, sline, sname);
    for (yaml_node_pair_t *kp = sv->data.mapping.pairs.start; kp < sv->data.mapping.pairs.top; kp++) {
      yaml_node_t *kk = yaml_document_get_node(&doc, kp->key);
      yaml_node_t *kv = yaml_document_get_node(&doc, kp->value);
      size_t kline = kk->start_mark.line + 1;
      const char *kname = kk->type == YAML_SCALAR_NODE ? (const char *)kk->data.scalar.value : "?";
      int i = find_param(sname, kname);
      char hint[200];
      if (i < 0)
        TS_FAIL(TS_ECONFIG, "CONFIG_UNKNOWN_KEY", "%s:%zu: unknown key '%s.%s' (%s)", path, kline, sname, kname, key_hint(sname, kname, hint, sizeof hint));
      if (r->line[i])
        TS_FAIL(TS_ECONFIG, "CONFIG_DUPLICATE_KEY", "%s:%zu: key '%s.%s' already set on line %d", path, kline, sname, kname, r->line[i]);
      if (kv->type != YAML_SCALAR_NODE)
        TS_FAIL(TS_ECONFIG, "CONFIG_TYPE", "%s:%zu: %s.%s must be a %s, got a %s", path, kline, sname, kname, type_name(params[i].type), kv->type == YAML_MAPPING_NODE ? "mapping" : "list");
      char where[TS_PATH_MAX + 32];
      snprintf(where, sizeof where, "%s:%zu", path, kline);
      TS_TRY(set_val(r, i, (const char *)kv->data.scalar.value, where));
      r->line[i] = (int)kline;
    }
  }
out:
  yaml_document_delete(&doc);
  yaml_parser_delete(&parser);
  return rc;
}

static int apply_set(resolve *r, const char *set) {
  const char *eq = strchr(set, '=');
  const char *dot = strchr(set, '.');
  if (!eq || !dot || dot > eq)
    return ts_error_set(TS_ECONFIG, "CONFIG_BAD_SET", "--set %s: expected section.key=value", set);
  char section[64], key[64];
  snprintf(section, sizeof section, "%.*s", (int)(dot - set), set);
  snprintf(key, sizeof key, "%.*s", (int)(eq - dot - 1), dot + 1);
  int i = find_param(section, key);
  char hint[200];
  if (i < 0)
    return ts_error_set(TS_ECONFIG, "CONFIG_UNKNOWN_KEY", "--set %s: unknown key '%s.%s' (%s)", set, section, key, key_hint(section, key, hint, sizeof hint));
  char where[256];
  snprintf(where, sizeof where, "--set %s.%s", section, key);
  TS_CALL(set_val(r, i, eq + 1, where));
  r->line[i] = -1;
  return 0;
}

/* YAML double-quoted scalar. */
static void put_quoted(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') fprintf(f, "\\%c", *s);
    else if ((unsigned char)*s < 0x20) fprintf(f, "\\x%02x", (unsigned char)*s);
    else fputc(*s, f);
  }
  fputc('"', f);
}

static char *canonical_text(const resolve *r) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) return NULL;
  fprintf(f, "# tessera resolved config: defaults filled in, paths absolute. Written by tessera run.\n");
  const char *cur = "";
  for (int i = 0; i < N_PARAMS; i++) {
    if (strcmp(cur, params[i].section)) {
      cur = params[i].section;
      fprintf(f, "%s:\n", cur);
    }
    fprintf(f, "  %s: ", params[i].key);
    if (params[i].type == P_STR) put_quoted(f, r->val[i]);
    else fputs(r->val[i], f);
    fputc('\n', f);
  }
  fclose(f);
  return buf;
}

/* ---- libcyaml schema, built from the table once ---- */
static cyaml_schema_field_t cy_fields[N_PARAMS + 16];
static cyaml_schema_field_t cy_sections[16];
static cyaml_schema_value_t cy_top;
static pthread_once_t cy_once = PTHREAD_ONCE_INIT;

static void cy_build(void) {
  int nf = 0, ns = 0;
  for (int i = 0; i < N_PARAMS;) {
    const char *sec = params[i].section;
    size_t sec_off = params[i].offset; /* first key of a section is its struct's first member */
    int first = nf;
    size_t end = 0;
    for (; i < N_PARAMS && !strcmp(params[i].section, sec); i++) {
      cyaml_schema_field_t *fl = &cy_fields[nf++];
      memset(fl, 0, sizeof *fl);
      fl->key = params[i].key;
      fl->data_offset = (uint32_t)(params[i].offset - sec_off);
      fl->value.flags = CYAML_FLAG_OPTIONAL;
      fl->value.data_size = (uint32_t)params[i].size;
      switch (params[i].type) {
      case P_STR:
        fl->value.type = CYAML_STRING;
        fl->value.flags |= CYAML_FLAG_POINTER;
        fl->value.data_size = 1;
        fl->value.string.min = 0;
        fl->value.string.max = CYAML_UNLIMITED;
        break;
      case P_INT: fl->value.type = CYAML_INT; break;
      case P_FLOAT: fl->value.type = CYAML_FLOAT; break;
      case P_BOOL: fl->value.type = CYAML_BOOL; break;
      }
      if (params[i].offset + params[i].size > end) end = params[i].offset + params[i].size;
    }
    memset(&cy_fields[nf++], 0, sizeof cy_fields[0]); /* CYAML_FIELD_END */
    cyaml_schema_field_t *s = &cy_sections[ns++];
    memset(s, 0, sizeof *s);
    s->key = sec;
    s->data_offset = (uint32_t)sec_off;
    s->value.type = CYAML_MAPPING;
    s->value.flags = CYAML_FLAG_OPTIONAL;
    s->value.data_size = (uint32_t)(end - sec_off);
    s->value.mapping.fields = &cy_fields[first];
  }
  memset(&cy_sections[ns], 0, sizeof cy_sections[0]);
  memset(&cy_top, 0, sizeof cy_top);
  cy_top.type = CYAML_MAPPING;
  cy_top.flags = CYAML_FLAG_POINTER;
  cy_top.data_size = sizeof(ts_config);
  cy_top.mapping.fields = cy_sections;
}

static _Thread_local char cy_log_buf[512];
static void cy_log(cyaml_log_t level, void *ctx, const char *fmt, va_list args) {
  (void)ctx;
  if (level >= CYAML_LOG_ERROR && !cy_log_buf[0]) vsnprintf(cy_log_buf, sizeof cy_log_buf, fmt, args);
}

static const cyaml_config_t cy_cfg = {
    .log_fn = cy_log, .mem_fn = cyaml_mem, .log_level = CYAML_LOG_ERROR, .flags = CYAML_CFG_DEFAULT};

int ts_config_from_text(const char *text, const char *origin, ts_config **out) {
  *out = NULL;
  pthread_once(&cy_once, cy_build);
  ts_config *c = NULL;
  cy_log_buf[0] = '\0';
  cyaml_err_t e = cyaml_load_data((const uint8_t *)text, strlen(text), &cy_cfg, &cy_top, (cyaml_data_t **)&c, NULL);
  if (e != CYAML_OK)
    return ts_error_set(TS_ECONFIG, "CONFIG_INVALID", "%s: %s%s%s", origin, cyaml_strerror(e), cy_log_buf[0] ? ": " : "", cy_log_buf);
  c->text = strdup(text);
  if (!c->text) {
    cyaml_free(&cy_cfg, &cy_top, c, 0);
    return ts_error_set(TS_ENOMEM, "NO_MEMORY", "config");
  }
  ts_io_sha256(text, strlen(text), c->hash);
  *out = c;
  return 0;
}

void ts_config_free(ts_config **c) {
  if (!c || !*c) return;
  free((*c)->text);
  (*c)->text = NULL;
  cyaml_free(&cy_cfg, &cy_top, *c, 0);
  *c = NULL;
}

int ts_config_load(const char *path, const char *const *sets, int n_sets, ts_config **out) {
  *out = NULL;
  resolve r;
  memset(&r, 0, sizeof r);
  char *text = NULL, *canon = NULL;
  size_t len = 0;
  int rc = 0;
  if (ts_io_read_all(path, &text, &len) < 0)
    return ts_error_set(TS_ECONFIG, "CONFIG_MISSING_FILE", "%s: cannot read the config file (%s)", path, ts_error_detail());
  TS_TRY(walk_yaml(path, text, len, &r));
  for (int s = 0; s < n_sets; s++) TS_TRY(apply_set(&r, sets[s]));
  char dir[TS_PATH_MAX], abs_dir[TS_PATH_MAX];
  snprintf(dir, sizeof dir, "%s", path);
  if (!realpath(dirname(dir), abs_dir)) snprintf(abs_dir, sizeof abs_dir, "%s", ".");
  for (int i = 0; i < N_PARAMS; i++) {
    if (!r.val[i]) {
      if (params[i].required || !params[i].def)
        TS_FAIL(TS_ECONFIG, "CONFIG_MISSING_KEY", "%s: missing required key '%s.%s' (%s)", path, params[i].section, params[i].key, params[i].doc);
      TS_TRY(set_val(&r, i, params[i].def, "default"));
    }
    /* "torchscript:PATH" names a file too: resolve a relative PATH like the path keys */
    if (!strcmp(params[i].key, "encoder") && !strncmp(r.val[i], "torchscript:", 12) && r.val[i][12] &&
        r.val[i][12] != '/') {
      char joined[TS_PATH_MAX], spec[TS_PATH_MAX + 16];
      TS_TRY(ts_io_join(abs_dir, r.val[i] + 12, joined, sizeof joined));
      snprintf(spec, sizeof spec, "torchscript:%s", joined);
      free(r.val[i]);
      r.val[i] = strdup(spec);
    }
    if (is_path_param(&params[i]) && r.val[i][0] && r.val[i][0] != '/') {
      char joined[TS_PATH_MAX];
      TS_TRY(ts_io_join(abs_dir, r.val[i], joined, sizeof joined));
      free(r.val[i]);
      r.val[i] = strdup(joined);
    }
  }
  canon = canonical_text(&r);
  if (!canon) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "config text");
  TS_TRY(ts_config_from_text(canon, path, out));
out:
  resolve_clear(&r);
  free(text);
  free(canon);
  return rc;
}

void ts_config_hash_keys(const ts_config *c, const char *const *deps, char hex_out[65]) {
  /* Re-read the canonical text: "section:" lines then "  key: value" lines. */
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  char section[64] = "";
  const char *p = c->text;
  while (f && p && *p) {
    const char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) : strlen(p);
    if (n && p[0] != '#' && p[0] != ' ' && p[n - 1] == ':') {
      snprintf(section, sizeof section, "%.*s", (int)(n - 1), p);
    } else if (n > 2 && p[0] == ' ') {
      const char *k = p + 2, *colon = memchr(k, ':', n - 2);
      char key[96] = "";
      if (colon) snprintf(key, sizeof key, "%.*s", (int)(colon - k), k);
      int pi = colon ? find_param(section, key) : -1;
      if (colon && !(pi >= 0 && is_exec_param(&params[pi]))) {
        char full[160];
        snprintf(full, sizeof full, "%s.%s", section, key);
        for (int d = 0; deps && deps[d]; d++) {
          size_t dl = strlen(deps[d]);
          if (!strcmp(deps[d], full) || (!strncmp(deps[d], full, dl) && full[dl] == '.')) {
            fprintf(f, "%s=%.*s\n", full, (int)(n - (size_t)(colon + 2 - p)), colon + 2);
            break;
          }
        }
      }
    }
    p = nl ? nl + 1 : NULL;
  }
  if (f) fclose(f);
  ts_io_sha256(buf ? buf : "", buf ? len : 0, hex_out);
  free(buf);
}

/* ---- --help: the table as aligned columns ----
 * Columns: key, type, default, range, doc. Each column is as wide as its longest cell, except
 * that a cell longer than its cap (the records schemas' defaults run to 100+ characters) does
 * not widen the column for everyone: it wraps in the room left on the line, under its own
 * column, and the rest of its row goes on at the next line, so every column still starts where
 * the others do. The doc wraps at SCHEMA_WIDTH with a hanging indent under the doc column; a
 * word too long for any line (a CSV column list) breaks after a comma. */
enum { SCHEMA_INDENT = 4, SCHEMA_WIDTH = 100, SCHEMA_CAP = 20, SCHEMA_MIN_DOC = 30, SCHEMA_COLS = 5 };

/* A bound as short as it reads exactly: whole numbers below 1e6 in full, others in the
 * shortest %g text that reads back to the same double (1e+12, 4294967295, 0.05). */
static void schema_bound(double x, char *buf, size_t n) {
  if (x == floor(x) && fabs(x) < 1e6) {
    snprintf(buf, n, "%.0f", x);
    return;
  }
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(buf, n, "%.*g", prec, x);
    if (strtod(buf, NULL) == x) return;
  }
}

/* The range column: [min, max] for numbers, the allowed words for booleans, "-" for strings
 * (the table gives them no range). */
static void schema_range(const param *p, char *buf, size_t n) {
  char lo[32], hi[32];
  switch (p->type) {
  case P_INT:
  case P_FLOAT:
    schema_bound(p->min, lo, sizeof lo);
    schema_bound(p->max, hi, sizeof hi);
    snprintf(buf, n, "[%s, %s]", lo, hi);
    return;
  case P_BOOL: snprintf(buf, n, "true|false"); return;
  case P_STR: snprintf(buf, n, "-"); return;
  }
  snprintf(buf, n, "?");
}

static const char *schema_default(const param *p) {
  return p->def ? (p->def[0] ? p->def : "\"\"") : "(required)";
}

/* Move to column col of the current line (one space at least), or start a new line there. */
static int schema_goto(FILE *f, int cur, int col) {
  if (cur >= col) {
    fputc('\n', f);
    cur = 0;
  }
  for (; cur < col; cur++) fputc(' ', f);
  return cur;
}

/* Print text from column col (the cursor is there), word-wrapped so that lines end by column
 * SCHEMA_WIDTH (but hold SCHEMA_MIN_DOC characters at least), continuation lines indented to
 * col; a word longer than a line is kept whole. Returns the cursor's column. */
static int schema_wrap(FILE *f, int col, const char *text) {
  int width = SCHEMA_WIDTH - col < SCHEMA_MIN_DOC ? SCHEMA_MIN_DOC : SCHEMA_WIDTH - col;
  int used = 0;
  for (const char *w = text; *w;) {
    while (*w == ' ') w++;
    if (!*w) break;
    int len = (int)strcspn(w, " ");
    if (len > width) { /* a word no line holds (a CSV column list): break it after a comma */
      int room = used ? width - used - 1 : width, cut = 0;
      for (int k = 0; k < len && k < room; k++)
        if (w[k] == ',') cut = k + 1;
      if (!cut && used) room = width; /* try again on a line of its own */
      if (!cut)
        for (int k = 0; k < len && k < room; k++)
          if (w[k] == ',') cut = k + 1;
      if (cut) len = cut;
    }
    if (used && used + 1 + len > width) {
      fputc('\n', f);
      for (int c = 0; c < col; c++) fputc(' ', f);
      used = 0;
    }
    if (used) fputc(' ', f), used++;
    fprintf(f, "%.*s", len, w);
    used += len;
    w += len;
    if (*w && *w != ' ') { /* the rest of a broken word starts the next line */
      fputc('\n', f);
      for (int c = 0; c < col; c++) fputc(' ', f);
      used = 0;
    }
  }
  return col + used;
}

void ts_config_print_schema(FILE *f) {
  static const char *const head[SCHEMA_COLS] = {"key", "type", "default", "range", "doc"};
  int width[SCHEMA_COLS - 1];
  for (int c = 0; c < SCHEMA_COLS - 1; c++) width[c] = (int)strlen(head[c]);
  for (int i = 0; i < N_PARAMS; i++) {
    char range[96];
    schema_range(&params[i], range, sizeof range);
    const char *cell[SCHEMA_COLS - 1] = {params[i].key, type_name(params[i].type), schema_default(&params[i]), range};
    for (int c = 0; c < SCHEMA_COLS - 1; c++) {
      int len = (int)strlen(cell[c]);
      if (len > width[c] && (len <= SCHEMA_CAP || c < 2)) width[c] = len; /* keys and types always fit */
    }
  }
  int col[SCHEMA_COLS];
  col[0] = SCHEMA_INDENT;
  for (int c = 1; c < SCHEMA_COLS; c++) col[c] = col[c - 1] + width[c - 1] + 2;

  int cur = 0;
  for (int c = 0; c < SCHEMA_COLS; c++) {
    cur = schema_goto(f, cur, col[c]);
    cur += fprintf(f, "%s", head[c]);
  }
  fputc('\n', f);
  const char *section = "";
  for (int i = 0; i < N_PARAMS; i++) {
    const param *p = &params[i];
    if (strcmp(section, p->section)) {
      section = p->section;
      fprintf(f, "  %s:\n", section);
    }
    char range[96];
    schema_range(p, range, sizeof range);
    const char *cell[SCHEMA_COLS - 1] = {p->key, type_name(p->type), schema_default(p), range};
    cur = 0;
    for (int c = 0; c < SCHEMA_COLS - 1; c++) {
      cur = schema_goto(f, cur, col[c]);
      /* a cell wider than its column wraps in the room left on the line; the row goes on at the
       * next column of the line after it */
      cur = schema_wrap(f, col[c], cell[c]);
      if ((int)strlen(cell[c]) > width[c]) cur = col[c + 1]; /* schema_goto: next line */
    }
    cur = schema_goto(f, cur, col[SCHEMA_COLS - 1]);
    char doc[1024];
    snprintf(doc, sizeof doc, "%s%s", is_path_param(p) || is_exec_param(p) ? p->doc + 6 : p->doc,
             is_path_param(p) ? " (relative to the config file)" : is_exec_param(p) ? " (changes speed, never results)" : "");
    schema_wrap(f, col[SCHEMA_COLS - 1], doc);
    fputc('\n', f);
  }
}

/* ---- diff of two canonical texts ---- */
typedef struct kv_line {
  char *name;        /* "section.key" */
  const char *value; /* into the text, value_len bytes */
  size_t value_len;
} kv_line;

/* Split a canonical text ("section:" lines, "  key: value" lines, '#' comments, blank lines)
 * into kv lines. *out is malloc'd; names are malloc'd; values point into text. */
static int parse_canonical(const char *text, const char *which, kv_line **out, int *n_out) {
  kv_line *v = NULL;
  int n = 0, cap = 0, line = 0, rc = 0;
  char section[128] = "";
  *out = NULL;
  *n_out = 0;
  for (const char *p = text; p && *p;) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    line++;
    if (len == 0 || p[0] == '#') {
      /* blank or comment */
    } else if (p[0] != ' ') {
      if (p[len - 1] != ':' || len - 1 >= sizeof section || memchr(p, ' ', len))
        TS_FAIL(TS_ECONFIG, "CONFIG_SYNTAX", "%s config text:%d: expected 'section:'", which, line);
      snprintf(section, sizeof section, "%.*s", (int)(len - 1), p);
    } else {
      const char *k = p;
      while (k < p + len && *k == ' ') k++;
      const char *colon = memchr(k, ':', len - (size_t)(k - p));
      if (!section[0] || !colon || colon == k)
        TS_FAIL(TS_ECONFIG, "CONFIG_SYNTAX", "%s config text:%d: expected '  key: value' under a section", which, line);
      const char *val = colon + 1;
      while (val < p + len && *val == ' ') val++;
      if (n == cap) {
        cap = cap ? 2 * cap : 64;
        kv_line *nv = realloc(v, (size_t)cap * sizeof *v);
        if (!nv) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "config diff");
        v = nv;
      }
      size_t name_len = strlen(section) + 1 + (size_t)(colon - k) + 1;
      v[n].name = malloc(name_len);
      if (!v[n].name) TS_FAIL(TS_ENOMEM, "NO_MEMORY", "config diff");
      snprintf(v[n].name, name_len, "%s.%.*s", section, (int)(colon - k), k);
      v[n].value = val;
      v[n].value_len = (size_t)(p + len - val);
      n++;
      for (int j = 0; j < n - 1; j++)
        if (!strcmp(v[j].name, v[n - 1].name))
          TS_FAIL(TS_ECONFIG, "CONFIG_SYNTAX", "%s config text:%d: key '%s' appears twice", which, line, v[n - 1].name);
    }
    p = nl ? nl + 1 : NULL;
  }
out:
  if (rc < 0) {
    for (int j = 0; j < n; j++) free(v[j].name);
    free(v);
    return rc;
  }
  *out = v;
  *n_out = n;
  return 0;
}

static const kv_line *kv_find(const kv_line *v, int n, const char *name) {
  for (int i = 0; i < n; i++)
    if (!strcmp(v[i].name, name)) return &v[i];
  return NULL;
}

/* Append name to the list in buf (n bytes, used bytes so far), reserving room for ", ..." while
 * more names may follow; once a name does not fit, ", ..." ends the list for good. */
static void list_add(char *buf, size_t n, size_t *used, bool *full, const char *name, bool more_may_follow) {
  if (!buf || !n || *full) return;
  size_t sep = *used ? 2 : 0, len = strlen(name), reserve = more_may_follow ? 5 : 0;
  if (*used + sep + len + reserve < n) {
    snprintf(buf + *used, n - *used, "%s%s", sep ? ", " : "", name);
    *used += sep + len;
    return;
  }
  /* the previous name reserved room for ", ..."; a first name that does not fit leaves "..." */
  snprintf(buf + *used, n - *used, "%s", *used ? ", ..." : "...");
  *full = true;
}

int ts_config_diff_keys(const char *old_text, const char *new_text, char *buf, size_t n) {
  kv_line *a = NULL, *b = NULL;
  int na = 0, nb = 0, rc = 0, count = 0;
  size_t used = 0;
  bool full = false;
  if (buf && n) buf[0] = '\0';
  if (!old_text || !new_text) return ts_error_set(TS_EINVAL, "EINVAL", "ts_config_diff_keys: NULL text");
  TS_TRY(parse_canonical(old_text, "old", &a, &na));
  TS_TRY(parse_canonical(new_text, "new", &b, &nb));
  /* first pass counts, so that the last name listed knows it is the last */
  int total = 0;
  for (int pass = 0; pass < 2; pass++) {
    count = 0;
    for (int i = 0; i < na; i++) {
      const kv_line *o = kv_find(b, nb, a[i].name);
      if (o && o->value_len == a[i].value_len && !memcmp(o->value, a[i].value, o->value_len)) continue;
      count++;
      if (pass) list_add(buf, n, &used, &full, a[i].name, count < total);
    }
    for (int i = 0; i < nb; i++) {
      if (kv_find(a, na, b[i].name)) continue;
      count++;
      if (pass) list_add(buf, n, &used, &full, b[i].name, count < total);
    }
    total = count;
  }
  rc = count;
out:
  for (int i = 0; i < na; i++) free(a[i].name);
  for (int i = 0; i < nb; i++) free(b[i].name);
  free(a);
  free(b);
  return rc;
}
