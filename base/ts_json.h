/* ts_json.h — a minimal JSON tree reader (RFC 8259), used for report.json by `tessera compare`
 * and `tessera rerun`. No writer here: the report writes its JSON as it goes (ts_report.h).
 *
 *     ts_json j;
 *     if (ts_json_parse("{\"a\": {\"b\": \"x\"}}", &j) == 0) puts(ts_json_str(&j, "a.b")); // x
 *     ts_json_clear(&j);
 */
#ifndef TS_JSON_H
#define TS_JSON_H

/* A minimal JSON tree (enough for report.json: compare and rerun). */
typedef enum { TS_JNULL, TS_JBOOL, TS_JNUM, TS_JSTR, TS_JARR, TS_JOBJ } ts_json_type;
typedef struct ts_json {
  ts_json_type type;
  double num;          /* JNUM, JBOOL (0/1) */
  char *str;           /* JSTR */
  int n;               /* JARR, JOBJ: children */
  char **keys;         /* JOBJ */
  struct ts_json *kids;
} ts_json;
/* Parse text into *out (caller: ts_json_clear). Token REPORT_JSON with the byte offset. */
int ts_json_parse(const char *text, ts_json *out);
void ts_json_clear(ts_json *j);
/* Member of an object (NULL when absent or j not an object); path "a.b.c" for nested. */
const ts_json *ts_json_get(const ts_json *j, const char *path);
const char *ts_json_str(const ts_json *j, const char *path); /* NULL unless a string */
double ts_json_num(const ts_json *j, const char *path);       /* NaN unless a number (null too) */
/* A count at path: the number when it is one >= 0, else -1. */
long long ts_json_count(const ts_json *j, const char *path);
/* Element i of the array at path, NaN when absent or not a number. */
double ts_json_num_at(const ts_json *j, const char *path, int i);

#endif
