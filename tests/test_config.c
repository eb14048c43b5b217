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

int ts_test_register(void) {
  CU_pSuite s = CU_add_suite("config", setup, teardown);
  if (!s) return -1;
  CU_add_test(s, "test_config_defaults_and_paths", test_config_defaults_and_paths);
  CU_add_test(s, "test_config_unknown_key_names_line", test_config_unknown_key_names_line);
  CU_add_test(s, "test_config_wrong_type_and_range", test_config_wrong_type_and_range);
  CU_add_test(s, "test_config_missing_required_and_file", test_config_missing_required_and_file);
  CU_add_test(s, "test_config_set_overrides", test_config_set_overrides);
  CU_add_test(s, "test_config_hashes_stable_and_per_section", test_config_hashes_stable_and_per_section);
  return 0;
}
