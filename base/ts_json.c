/* ts_json.c — a minimal JSON reader (RFC 8259): enough for report.json (compare, rerun) and
 * any small JSON a command reads. See ts_json.h. */
#include "ts_json.h"

#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

#include "ts_error.h"

/* ---- JSON reader (RFC 8259, enough for report.json) ---- */
typedef struct jp {
  const char *s, *p;
  int depth;
} jp;

static void ws(jp *j) {
  while (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t') j->p++;
}

static int jerr(jp *j, const char *what) {
  return ts_error_set(TS_EINPUT, "REPORT_JSON", "%s at byte %ld", what, (long)(j->p - j->s));
}

static void put_utf8(GString *g, unsigned cp) {
  char buf[8];
  int n = g_unichar_to_utf8(cp, buf);
  g_string_append_len(g, buf, n);
}

static int parse_string(jp *j, char **out) {
  if (*j->p != '"') return jerr(j, "expected a string");
  j->p++;
  GString *g = g_string_new(NULL);
  while (*j->p && *j->p != '"') {
    if (*j->p == '\\') {
      j->p++;
      char c = *j->p++;
      switch (c) {
      case 'n': g_string_append_c(g, '\n'); break;
      case 't': g_string_append_c(g, '\t'); break;
      case 'r': g_string_append_c(g, '\r'); break;
      case 'b': g_string_append_c(g, '\b'); break;
      case 'f': g_string_append_c(g, '\f'); break;
      case 'u': {
        unsigned cp = 0;
        if (sscanf(j->p, "%4x", &cp) != 1) {
          g_string_free(g, TRUE);
          return jerr(j, "bad \\u escape");
        }
        j->p += 4;
        if (cp >= 0xd800 && cp < 0xdc00 && j->p[0] == '\\' && j->p[1] == 'u') {
          unsigned lo = 0;
          if (sscanf(j->p + 2, "%4x", &lo) == 1 && lo >= 0xdc00 && lo < 0xe000) {
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            j->p += 6;
          }
        }
        put_utf8(g, cp);
        break;
      }
      case '\0': g_string_free(g, TRUE); return jerr(j, "unterminated string");
      default: g_string_append_c(g, c);
      }
    } else {
      g_string_append_c(g, *j->p++);
    }
  }
  if (*j->p != '"') {
    g_string_free(g, TRUE);
    return jerr(j, "unterminated string");
  }
  j->p++;
  *out = g_string_free(g, FALSE);
  return 0;
}

static int parse_value(jp *j, ts_json *v);

static int add_kid(ts_json *v, int *cap) {
  if (v->n == *cap) {
    *cap = *cap ? 2 * *cap : 8;
    ts_json *k = realloc(v->kids, sizeof *k * (size_t)*cap);
    if (!k) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "json");
    v->kids = k;
    if (v->type == TS_JOBJ) {
      char **ks = realloc(v->keys, sizeof *ks * (size_t)*cap);
      if (!ks) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "json");
      v->keys = ks;
    }
  }
  memset(&v->kids[v->n], 0, sizeof v->kids[v->n]);
  if (v->type == TS_JOBJ) v->keys[v->n] = NULL;
  v->n++;
  return 0;
}

static int parse_container(jp *j, ts_json *v, char close) {
  int cap = 0;
  j->p++;
  if (++j->depth > 200) return jerr(j, "nested too deeply");
  ws(j);
  if (*j->p == close) {
    j->p++;
    j->depth--;
    return 0;
  }
  for (;;) {
    ws(j);
    TS_CALL(add_kid(v, &cap));
    if (v->type == TS_JOBJ) {
      TS_CALL(parse_string(j, &v->keys[v->n - 1]));
      ws(j);
      if (*j->p != ':') return jerr(j, "expected ':'");
      j->p++;
    }
    TS_CALL(parse_value(j, &v->kids[v->n - 1]));
    ws(j);
    if (*j->p == ',') {
      j->p++;
      continue;
    }
    if (*j->p == close) {
      j->p++;
      j->depth--;
      return 0;
    }
    return jerr(j, "expected ',' or a closing bracket");
  }
}

static int parse_value(jp *j, ts_json *v) {
  ws(j);
  memset(v, 0, sizeof *v);
  switch (*j->p) {
  case '{': v->type = TS_JOBJ; return parse_container(j, v, '}');
  case '[': v->type = TS_JARR; return parse_container(j, v, ']');
  case '"': v->type = TS_JSTR; return parse_string(j, &v->str);
  case 't': if (!strncmp(j->p, "true", 4)) { j->p += 4; v->type = TS_JBOOL; v->num = 1; return 0; } break;
  case 'f': if (!strncmp(j->p, "false", 5)) { j->p += 5; v->type = TS_JBOOL; return 0; } break;
  case 'n': if (!strncmp(j->p, "null", 4)) { j->p += 4; v->type = TS_JNULL; return 0; } break;
  default: {
    char *end = NULL;
    v->num = strtod(j->p, &end);
    if (end != j->p && (*j->p == '-' || (*j->p >= '0' && *j->p <= '9'))) {
      v->type = TS_JNUM;
      j->p = end;
      return 0;
    }
  }
  }
  return jerr(j, "unexpected character");
}

void ts_json_clear(ts_json *v) {
  if (!v) return;
  for (int i = 0; i < v->n; i++) {
    ts_json_clear(&v->kids[i]);
    if (v->keys) free(v->keys[i]);
  }
  free(v->kids);
  free(v->keys);
  free(v->str);
  memset(v, 0, sizeof *v);
}

int ts_json_parse(const char *text, ts_json *out) {
  jp j = {text, text, 0};
  memset(out, 0, sizeof *out);
  int rc = parse_value(&j, out);
  if (rc == 0) {
    ws(&j);
    if (*j.p) rc = jerr(&j, "text after the JSON value");
  }
  if (rc < 0) ts_json_clear(out);
  return rc;
}

const ts_json *ts_json_get(const ts_json *j, const char *path) {
  char key[256];
  while (j && path && *path) {
    size_t n = strcspn(path, ".");
    snprintf(key, sizeof key, "%.*s", (int)n, path);
    path += n + (path[n] == '.');
    const ts_json *next = NULL;
    if (j->type == TS_JOBJ)
      for (int i = 0; i < j->n && !next; i++)
        if (!strcmp(j->keys[i], key)) next = &j->kids[i];
    j = next;
  }
  return j;
}

const char *ts_json_str(const ts_json *j, const char *path) {
  const ts_json *v = ts_json_get(j, path);
  return v && v->type == TS_JSTR ? v->str : NULL;
}

double ts_json_num(const ts_json *j, const char *path) {
  const ts_json *v = ts_json_get(j, path);
  return v && v->type == TS_JNUM ? v->num : NAN;
}

double ts_json_num_at(const ts_json *j, const char *path, int i) {
  const ts_json *v = ts_json_get(j, path);
  if (!v || v->type != TS_JARR || i < 0 || i >= v->n || v->kids[i].type != TS_JNUM) return NAN;
  return v->kids[i].num;
}

long long ts_json_count(const ts_json *j, const char *path) {
  double v = ts_json_num(j, path);
  return isfinite(v) && v >= 0 ? (long long)v : -1;
}
