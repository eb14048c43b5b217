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
    if (!section_exists(sname))
      TS_FAIL(TS_ECONFIG, "CONFIG_UNKNOWN_KEY", "%s:%zu: unknown section '%s' (see `tessera run --help` for the keys)", path, sline, sname);
    if (sv->type == YAML_SCALAR_NODE && sv->data.scalar.length == 0) continue; /* "tile:" alone */
    if (sv->type != YAML_MAPPING_NODE)
      TS_FAIL(TS_ECONFIG, "CONFIG_TYPE", "%s:%zu: section '%s' must be a mapping of keys", path, sline, sname);
    for (yaml_node_pair_t *kp = sv->data.mapping.pairs.start; kp < sv->data.mapping.pairs.top; kp++) {
      yaml_node_t *kk = yaml_document_get_node(&doc, kp->key);
      yaml_node_t *kv = yaml_document_get_node(&doc, kp->value);
      size_t kline = kk->start_mark.line + 1;
      const char *kname = kk->type == YAML_SCALAR_NODE ? (const char *)kk->data.scalar.value : "?";
      int i = find_param(sname, kname);
      if (i < 0)
        TS_FAIL(TS_ECONFIG, "CONFIG_UNKNOWN_KEY", "%s:%zu: unknown key '%s.%s' (see `tessera run --help` for the keys)", path, kline, sname, kname);
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
  if (i < 0)
    return ts_error_set(TS_ECONFIG, "CONFIG_UNKNOWN_KEY", "--set %s: unknown key '%s.%s' (see `tessera run --help`)", set, section, key);
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

void ts_config_print_schema(FILE *f) {
  const char *cur = "";
  for (int i = 0; i < N_PARAMS; i++) {
    if (strcmp(cur, params[i].section)) {
      cur = params[i].section;
      fprintf(f, "  %s:\n", cur);
    }
    const char *doc = is_path_param(&params[i]) || is_exec_param(&params[i]) ? params[i].doc + 6 : params[i].doc;
    fprintf(f, "    %-14s %-8s %-10s %s%s\n", params[i].key, type_name(params[i].type),
            params[i].def ? (params[i].def[0] ? params[i].def : "\"\"") : "(required)", doc,
            is_path_param(&params[i]) ? " (relative to the config file)" : is_exec_param(&params[i]) ? " (changes speed, never results)" : "");
  }
}
