/* test_config.c — config loading: defaults, types, unknown keys, --set, hashes, line numbers. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ts_config.h"
#include "ts_error.h"

static char dir[256];

/* Returns a path that stays valid until the suite ends (a ring of buffers). */
static const char *write_cfg(const char *name, const char *text) {
  static char paths[8][512];
  static int next;
  char *path = paths[next++ % 8];
  snprintf(path, 512, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  fputs(text, f);
  fclose(f);
  return path;
}

static int setup(void) {
  snprintf(dir, sizeof dir, "/tmp/ts_test_config_XXXXXX");
  return mkdtemp(dir) ? 0 : 1;
}
static int teardown(void) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  return system(cmd) == 0 ? 0 : 1;
}

static void test_config_defaults_and_paths(void) {
  ts_config *c = NULL;
  const char *p = write_cfg("a.yaml", "cohort:\n  csv: cohort.csv\ntile:\n  size: 512\n");
  CU_ASSERT_EQUAL_FATAL(ts_config_load(p, NULL, 0, &c), 0);
  CU_ASSERT_EQUAL(c->tile.size, 512);
  CU_ASSERT_DOUBLE_EQUAL(c->tile.mpp, 0.5, 1e-12);   /* default from the schema */
  CU_ASSERT_EQUAL(c->scheduler.max_attempts, 2);
  char want[600];
  char real[512];
  CU_ASSERT_PTR_NOT_NULL(realpath(dir, real));
  snprintf(want, sizeof want, "%s/cohort.csv", real);
  CU_ASSERT_STRING_EQUAL(c->cohort.csv, want);        /* relative to the config file */
  snprintf(want, sizeof want, "%s/run", real);
  CU_ASSERT_STRING_EQUAL(c->run.dir, want);
  CU_ASSERT_EQUAL(strlen(c->hash), 64);
  ts_config_free(&c);
  CU_ASSERT_PTR_NULL(c);
}

static void test_config_unknown_key_names_line(void) {
  ts_config *c = NULL;
  const char *p = write_cfg("b.yaml", "cohort:\n  csv: x.csv\ntile:\n  size: 256\n  szie: 3\n");
  CU_ASSERT_EQUAL(ts_config_load(p, NULL, 0, &c), TS_ECONFIG);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "CONFIG_UNKNOWN_KEY");
  CU_ASSERT_PTR_NOT_NULL(strstr(ts_error_message(), "b.yaml:5:"));
  CU_ASSERT_PTR_NOT_NULL(strstr(ts_error_message(), "tile.szie"));
  CU_ASSERT_PTR_NULL(c);
}

static void test_config_wrong_type_and_range(void) {
  ts_config *c = NULL;
  const char *p = write_cfg("c.yaml", "cohort:\n  csv: x.csv\ntile:\n  mpp: fast\n");
  CU_ASSERT_EQUAL(ts_config_load(p, NULL, 0, &c), TS_ECONFIG);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "CONFIG_TYPE");
  CU_ASSERT_PTR_NOT_NULL(strstr(ts_error_message(), "c.yaml:4:"));
  p = write_cfg("d.yaml", "cohort:\n  csv: x.csv\ntile:\n  min_tissue: 1.5\n");
  CU_ASSERT_EQUAL(ts_config_load(p, NULL, 0, &c), TS_ECONFIG);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "CONFIG_RANGE");
  p = write_cfg("e.yaml", "cohort:\n  csv: x.csv\ntile:\n  size: [1, 2]\n");
  CU_ASSERT_EQUAL(ts_config_load(p, NULL, 0, &c), TS_ECONFIG);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "CONFIG_TYPE");
}

static void test_config_missing_required_and_file(void) {
  ts_config *c = NULL;
  const char *p = write_cfg("f.yaml", "tile:\n  size: 256\n");
  CU_ASSERT_EQUAL(ts_config_load(p, NULL, 0, &c), TS_ECONFIG);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "CONFIG_MISSING_KEY");
  CU_ASSERT_PTR_NOT_NULL(strstr(ts_error_message(), "cohort.csv"));
  CU_ASSERT_EQUAL(ts_config_load("/nonexistent/x.yaml", NULL, 0, &c), TS_ECONFIG);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "CONFIG_MISSING_FILE");
  p = write_cfg("g.yaml", "cohort:\n  csv: [unclosed\n");
  CU_ASSERT_EQUAL(ts_config_load(p, NULL, 0, &c), TS_ECONFIG);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "CONFIG_SYNTAX");
}

static void test_config_set_overrides(void) {
  ts_config *c = NULL;
  const char *p = write_cfg("h.yaml", "cohort:\n  csv: x.csv\n");
  const char *sets[] = {"tile.size=128", "tissue.mpp=16"};
  CU_ASSERT_EQUAL_FATAL(ts_config_load(p, sets, 2, &c), 0);
  CU_ASSERT_EQUAL(c->tile.size, 128);
  CU_ASSERT_DOUBLE_EQUAL(c->tissue.mpp, 16.0, 0);
  ts_config_free(&c);
  const char *bad[] = {"tile.size=big"};
  CU_ASSERT_EQUAL(ts_config_load(p, bad, 1, &c), TS_ECONFIG);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "CONFIG_TYPE");
  CU_ASSERT_PTR_NOT_NULL(strstr(ts_error_message(), "--set tile.size"));
  const char *unknown[] = {"tile.colour=red"};
  CU_ASSERT_EQUAL(ts_config_load(p, unknown, 1, &c), TS_ECONFIG);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "CONFIG_UNKNOWN_KEY");
  const char *malformed[] = {"tilesize"};
  CU_ASSERT_EQUAL(ts_config_load(p, malformed, 1, &c), TS_ECONFIG);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "CONFIG_BAD_SET");
}

static void test_config_hashes_stable_and_per_section(void) {
  ts_config *a = NULL, *b = NULL, *c = NULL;
  /* same values written differently (order, explicit default, float spelling) → same hash */
  const char *pa = write_cfg("i.yaml", "cohort:\n  csv: x.csv\ntile:\n  size: 256\n  mpp: 0.5\n");
  const char *pb = write_cfg("j.yaml", "tile:\n  mpp: 0.50\ncohort:\n  csv: x.csv\n");
  const char *pc = write_cfg("k.yaml", "cohort:\n  csv: x.csv\ntile:\n  size: 512\n");
  CU_ASSERT_EQUAL_FATAL(ts_config_load(pa, NULL, 0, &a), 0);
  CU_ASSERT_EQUAL_FATAL(ts_config_load(pb, NULL, 0, &b), 0);
  CU_ASSERT_EQUAL_FATAL(ts_config_load(pc, NULL, 0, &c), 0);
  CU_ASSERT_STRING_EQUAL(a->hash, b->hash);
  CU_ASSERT_STRING_NOT_EQUAL(a->hash, c->hash);
  const char *tissue[] = {"cohort.csv", "tissue", NULL}, *tile[] = {"tile", NULL};
  char ha[65], hc[65];
  ts_config_hash_keys(a, tissue, ha);
  ts_config_hash_keys(c, tissue, hc);
  CU_ASSERT_STRING_EQUAL(ha, hc);       /* tile.size does not touch the tissue keys */
  ts_config_hash_keys(a, tile, ha);
  ts_config_hash_keys(c, tile, hc);
  CU_ASSERT_STRING_NOT_EQUAL(ha, hc);
  /* the canonical text reloads to the same config */
  ts_config *r = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_config_from_text(a->text, "canonical", &r), 0);
  CU_ASSERT_STRING_EQUAL(r->hash, a->hash);
  CU_ASSERT_EQUAL(r->tile.size, 256);
  CU_ASSERT_STRING_EQUAL(r->cohort.csv, a->cohort.csv);
  ts_config_free(&r);
  ts_config_free(&a);
  ts_config_free(&b);
  ts_config_free(&c);
}

static void test_config_unknown_key_suggests_nearest(void) {
  ts_config *c = NULL;
  /* in the file: a key of the same section, the token and file:line kept */
  const char *p = write_cfg("s1.yaml", "cohort:\n  csv: x.csv\ntile:\n  mp: 0.5\n");
  CU_ASSERT_EQUAL(ts_config_load(p, NULL, 0, &c), TS_ECONFIG);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "CONFIG_UNKNOWN_KEY");
  CU_ASSERT_PTR_NOT_NULL(strstr(ts_error_message(), "s1.yaml:4:"));
  CU_ASSERT_PTR_NOT_NULL(strstr(ts_error_message(), "did you mean tile.mpp?"));
  p = write_cfg("s2.yaml", "cohort:\n  csv: x.csv\nextract:\n  encodr: resnet18\n");
  CU_ASSERT_EQUAL(ts_config_load(p, NULL, 0, &c), TS_ECONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(ts_error_message(), "did you mean extract.encoder?"));
  /* a swapped pair of letters is one typo */
  p = write_cfg("s3.yaml", "cohort:\n  csv: x.csv\ntile:\n  szie: 3\n");
  CU_ASSERT_EQUAL(ts_config_load(p, NULL, 0, &c), TS_ECONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(ts_error_message(), "did you mean tile.size?"));
  /* the right key in the wrong section */
  p = write_cfg("s4.yaml", "cohort:\n  csv: x.csv\ntile:\n  batch: 8\n");
  CU_ASSERT_EQUAL(ts_config_load(p, NULL, 0, &c), TS_ECONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(ts_error_message(), "did you mean extract.batch?"));
  /* an unknown section: the nearest section, file:line of the section */
  p = write_cfg("s5.yaml", "cohort:\n  csv: x.csv\ntiel:\n  size: 3\n");
  CU_ASSERT_EQUAL(ts_config_load(p, NULL, 0, &c), TS_ECONFIG);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "CONFIG_UNKNOWN_KEY");
  CU_ASSERT_PTR_NOT_NULL(strstr(ts_error_message(), "s5.yaml:3:"));
  CU_ASSERT_PTR_NOT_NULL(strstr(ts_error_message(), "did you mean tile?"));
  /* nothing near: no guess */
  p = write_cfg("s6.yaml", "cohort:\n  csv: x.csv\ntile:\n  colour: red\n");
  CU_ASSERT_EQUAL(ts_config_load(p, NULL, 0, &c), TS_ECONFIG);
  CU_ASSERT_PTR_NULL(strstr(ts_error_message(), "did you mean"));
  p = write_cfg("s7.yaml", "cohort:\n  csv: x.csv\nwhatever:\n  size: 3\n");
  CU_ASSERT_EQUAL(ts_config_load(p, NULL, 0, &c), TS_ECONFIG);
  CU_ASSERT_PTR_NULL(strstr(ts_error_message(), "did you mean"));
  /* --set: same suggestions, across sections too */
  p = write_cfg("s8.yaml", "cohort:\n  csv: x.csv\n");
  const char *set1[] = {"tile.mp=0.25"};
  CU_ASSERT_EQUAL(ts_config_load(p, set1, 1, &c), TS_ECONFIG);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "CONFIG_UNKNOWN_KEY");
  CU_ASSERT_PTR_NOT_NULL(strstr(ts_error_message(), "--set tile.mp=0.25"));
  CU_ASSERT_PTR_NOT_NULL(strstr(ts_error_message(), "did you mean tile.mpp?"));
  const char *set2[] = {"extrat.encoder=resnet18"};
  CU_ASSERT_EQUAL(ts_config_load(p, set2, 1, &c), TS_ECONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(ts_error_message(), "did you mean extract.encoder?"));
  CU_ASSERT_PTR_NULL(c);
}

/* The --help text, captured. */
static char *schema_text(void) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  ts_config_print_schema(f);
  fclose(f);
  return buf;
}

/* The line of the schema text that holds the key row of name (4 spaces, then name). */
static const char *schema_row(const char *text, const char *name) {
  size_t n = strlen(name);
  for (const char *line = text; line && *line;) {
    if (!strncmp(line, "    ", 4) && !strncmp(line + 4, name, n) && line[4 + n] == ' ') return line;
    line = strchr(line, '\n');
    if (line) line++;
  }
  return NULL;
}

static int column_of(const char *row, const char *cell) {
  const char *nl = strchr(row, '\n');
  const char *p = strstr(row, cell);
  return p && (!nl || p < nl) ? (int)(p - row) : -1;
}

static void test_config_schema_ranges_and_columns(void) {
  char *t = schema_text();
  CU_ASSERT_PTR_NOT_NULL_FATAL(t);
  /* ranges from the table */
  const char *size = schema_row(t, "size"), *mpp = schema_row(t, "min_tissue"), *f16 = schema_row(t, "float16");
  const char *seed = schema_row(t, "seed");
  CU_ASSERT_PTR_NOT_NULL_FATAL(size);
  CU_ASSERT_PTR_NOT_NULL_FATAL(mpp);
  CU_ASSERT_PTR_NOT_NULL_FATAL(f16);
  CU_ASSERT_PTR_NOT_NULL_FATAL(seed);
  CU_ASSERT(column_of(size, "[16, 8192]") > 0);
  CU_ASSERT(column_of(mpp, "[0, 1]") > 0);
  CU_ASSERT(column_of(f16, "true|false") > 0);
  CU_ASSERT(column_of(seed, "[0, 4294967295]") > 0); /* an integer bound printed whole */
  /* every column starts at the same place on every row, long keys included */
  int c_type = column_of(size, "integer"), c_def = column_of(size, "256"), c_range = column_of(size, "[16");
  CU_ASSERT(c_type > 0 && c_def > c_type && c_range > c_def);
  const char *rows[] = {"max_attempts", "clinical_schema", "decode_threads", "min_area_um2", "encoder", "seed"};
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    const char *r = schema_row(t, rows[i]);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT(r[c_type - 1] == ' ' && r[c_type] != ' ');
    CU_ASSERT(r[c_type - 2] == ' '); /* two spaces at least after the longest key */
  }
  const char *enc = schema_row(t, "encoder");
  CU_ASSERT_EQUAL(column_of(enc, "resnet50_trunc"), c_def);
  CU_ASSERT_EQUAL(column_of(enc, " - ") + 1, c_range);
  /* an overlong default (records.clinical_schema, 110 characters) does not shift the other
   * columns: it wraps under the default column, then the row goes on at the range column */
  const char *cs = schema_row(t, "clinical_schema");
  CU_ASSERT_EQUAL(column_of(cs, "patient_id:id"), c_def);
  const char *next = strchr(cs, '\n') + 1;
  CU_ASSERT_EQUAL((int)strspn(next, " "), c_def);           /* the default's second line */
  CU_ASSERT_PTR_NOT_NULL(strstr(next, "event:int{0,1}"));
  next = strchr(next, '\n') + 1;
  CU_ASSERT_EQUAL(column_of(next, "- "), c_range);
  CU_ASSERT_EQUAL(column_of(next, "schema of cohort.clinical"), column_of(size, "tile side"));
  /* no line past 100 columns */
  for (const char *p = t; *p;) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    CU_ASSERT(len <= 100);
    p = nl ? nl + 1 : p + len;
  }
  /* the long extract.threads doc wraps with a hanging indent under the doc column */
  const char *th = schema_row(t, "threads");
  CU_ASSERT_PTR_NOT_NULL_FATAL(th);
  int doc_col = column_of(th, "LibTorch");
  CU_ASSERT(doc_col > c_range);
  const char *cont = strchr(th, '\n') + 1;
  CU_ASSERT(doc_col > 0 && (int)strspn(cont, " ") == doc_col);
  CU_ASSERT_EQUAL(column_of(size, "tile side"), doc_col);
  free(t);
}

static void test_config_diff_keys(void) {
  ts_config *a = NULL, *b = NULL;
  const char *pa = write_cfg("d1.yaml", "cohort:\n  csv: x.csv\n");
  const char *pb = write_cfg("d2.yaml", "cohort:\n  csv: x.csv\ntile:\n  size: 512\nextract:\n  batch: 8\n");
  CU_ASSERT_EQUAL_FATAL(ts_config_load(pa, NULL, 0, &a), 0);
  CU_ASSERT_EQUAL_FATAL(ts_config_load(pb, NULL, 0, &b), 0);
  char buf[256];
  CU_ASSERT_EQUAL(ts_config_diff_keys(a->text, a->text, buf, sizeof buf), 0);
  CU_ASSERT_STRING_EQUAL(buf, "");
  CU_ASSERT_EQUAL(ts_config_diff_keys(a->text, b->text, buf, sizeof buf), 2);
  CU_ASSERT_STRING_EQUAL(buf, "tile.size, extract.batch");
  /* a key present in only one text counts; old order first, then the new-only keys */
  const char *o = "# c\nrun:\n  seed: 1\ntile:\n  size: 256\n  mpp: 0.5\n";
  const char *n = "run:\n  seed: 1\n\ntile:\n  mpp: 0.5\n  overlap: 0\nextract:\n  batch: 8\n";
  CU_ASSERT_EQUAL(ts_config_diff_keys(o, n, buf, sizeof buf), 3);
  CU_ASSERT_STRING_EQUAL(buf, "tile.size, tile.overlap, extract.batch");
  /* string values compare as written, quotes included */
  CU_ASSERT_EQUAL(ts_config_diff_keys("extract:\n  encoder: \"a\"\n", "extract:\n  encoder: \"a b\"\n", buf, sizeof buf), 1);
  CU_ASSERT_STRING_EQUAL(buf, "extract.encoder");
  /* truncation: whole names then ", ...", the count still complete */
  CU_ASSERT_EQUAL(ts_config_diff_keys(o, n, buf, 30), 3);
  CU_ASSERT_STRING_EQUAL(buf, "tile.size, tile.overlap, ...");
  CU_ASSERT_EQUAL(ts_config_diff_keys(o, n, buf, 29), 3);
  CU_ASSERT_STRING_EQUAL(buf, "tile.size, tile.overlap, ...");
  CU_ASSERT_EQUAL(ts_config_diff_keys(o, n, buf, 28), 3);
  CU_ASSERT_STRING_EQUAL(buf, "tile.size, ...");
  CU_ASSERT_EQUAL(ts_config_diff_keys(o, n, buf, 6), 3);
  CU_ASSERT_STRING_EQUAL(buf, "...");
  CU_ASSERT_EQUAL(ts_config_diff_keys(a->text, b->text, buf, 25), 2); /* exactly fits */
  CU_ASSERT_STRING_EQUAL(buf, "tile.size, extract.batch");
  CU_ASSERT_EQUAL(ts_config_diff_keys(a->text, b->text, NULL, 0), 2);
  /* not canonical: negative, CONFIG_SYNTAX naming the text and line */
  CU_ASSERT_EQUAL(ts_config_diff_keys(a->text, "tile:\nsize: 3\n", buf, sizeof buf), TS_ECONFIG);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "CONFIG_SYNTAX");
  CU_ASSERT_PTR_NOT_NULL(strstr(ts_error_message(), "new config text:2:"));
  CU_ASSERT_STRING_EQUAL(buf, "");
  CU_ASSERT(ts_config_diff_keys("  size: 3\n", a->text, buf, sizeof buf) < 0);
  CU_ASSERT(ts_config_diff_keys("tile:\n  size: 3\n  size: 4\n", a->text, buf, sizeof buf) < 0);
  ts_config_free(&a);
  ts_config_free(&b);
}

int ts_test_register(void) {
  CU_pSuite s = CU_add_suite("config", setup, teardown);
  if (!s) return -1;
  CU_add_test(s, "test_config_defaults_and_paths", test_config_defaults_and_paths);
  CU_add_test(s, "test_config_unknown_key_names_line", test_config_unknown_key_names_line);
  CU_add_test(s, "test_config_wrong_type_and_range", test_config_wrong_type_and_range);
  CU_add_test(s, "test_config_missing_required_and_file", test_config_missing_required_and_file);
  CU_add_test(s, "test_config_set_overrides", test_config_set_overrides);
  CU_add_test(s, "test_config_hashes_stable_and_per_section", test_config_hashes_stable_and_per_section);
  CU_add_test(s, "test_config_unknown_key_suggests_nearest", test_config_unknown_key_suggests_nearest);
  CU_add_test(s, "test_config_schema_ranges_and_columns", test_config_schema_ranges_and_columns);
  CU_add_test(s, "test_config_diff_keys", test_config_diff_keys);
  return 0;
}
