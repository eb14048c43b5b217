/* test_ledger.c — the SQLite ledger and the cohort CSV parser. */
#include <CUnit/CUnit.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ts_error.h"
#include "ts_ledger.h"
#include "ts_stage.h"
#include "ts_io.h"

static char dir[256], path[300];

static int setup(void) {
  snprintf(dir, sizeof dir, "/tmp/ts_test_ledger_XXXXXX");
  if (!mkdtemp(dir)) return 1;
  snprintf(path, sizeof path, "%s/ledger.sqlite", dir);
  return 0;
}
static int teardown(void) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  return system(cmd) == 0 ? 0 : 1;
}

typedef struct seen { int n; char unit[8][32], token[8][32]; } seen;
static void on_fail(void *ctx, const char *unit, const char *token, const char *message) {
  seen *s = ctx;
  (void)message;
  if (s->n < 8) {
    snprintf(s->unit[s->n], 32, "%s", unit);
    snprintf(s->token[s->n], 32, "%s", token);
  }
  s->n++;
}

static void test_ledger_units_and_counts(void) {
  ts_ledger *l = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_ledger_open(path, false, &l), 0);
  bool reset = true;
  CU_ASSERT_EQUAL(ts_ledger_stage_prepare(l, "tile", 1, "h1", &reset), 0);
  CU_ASSERT_FALSE(reset); /* first time: nothing to forget */
  int64_t run = 0;
  CU_ASSERT_EQUAL(ts_ledger_run_begin(l, "cfg", "tessera run x", 2, "host", "0.1", &run), 0);
  CU_ASSERT(run > 0);
  for (int i = 0; i < 3; i++) {
    char id[8];
    snprintf(id, sizeof id, "S%d", i);
    CU_ASSERT_EQUAL(ts_ledger_unit_add(l, "tile", id, i), 0);
  }
  ts_unit_record r = {.output = "tiles/S0.h5", .checksum = "abc", .bytes = 10, .seconds = 0.5, .items = 7};
  CU_ASSERT_EQUAL(ts_ledger_unit_done(l, "tile", "S0", 1, 1, run, &r), 0);
  CU_ASSERT_EQUAL(ts_ledger_unit_failed(l, "tile", "S1", 0, 2, run, 0.1, "SLIDE_UNREADABLE", "SLIDE_UNREADABLE: x"), 0);
  char state[16];
  CU_ASSERT_EQUAL(ts_ledger_unit_state(l, "tile", "S0", state), 0);
  CU_ASSERT_STRING_EQUAL(state, "done");
  CU_ASSERT_EQUAL(ts_ledger_unit_state(l, "tile", "nope", state), 0);
  CU_ASSERT_STRING_EQUAL(state, "");
  char out[64], sum[65], tok[64];
  CU_ASSERT_EQUAL(ts_ledger_unit_output(l, "tile", "S0", out, sizeof out, sum), 0);
  CU_ASSERT_STRING_EQUAL(out, "tiles/S0.h5");
  CU_ASSERT_STRING_EQUAL(sum, "abc");
  CU_ASSERT_EQUAL(ts_ledger_unit_error(l, "tile", "S1", tok), 0);
  CU_ASSERT_STRING_EQUAL(tok, "SLIDE_UNREADABLE");
  ts_ledger_close(&l);
  CU_ASSERT_PTR_NULL(l);

  /* reopen read-only: everything committed is there */
  CU_ASSERT_EQUAL_FATAL(ts_ledger_open(path, true, &l), 0);
  ts_stage_counts *c = NULL;
  int n = 0;
  CU_ASSERT_EQUAL_FATAL(ts_ledger_counts(l, &c, &n), 0);
  CU_ASSERT_EQUAL_FATAL(n, 1);
  CU_ASSERT_STRING_EQUAL(c[0].name, "tile");
  CU_ASSERT_EQUAL(c[0].done, 1);
  CU_ASSERT_EQUAL(c[0].failed, 1);
  CU_ASSERT_EQUAL(c[0].pending, 1);
  CU_ASSERT_EQUAL(c[0].items, 7);
  free(c);
  seen s = {0};
  CU_ASSERT_EQUAL(ts_ledger_failures(l, "tile", on_fail, &s), 0);
  CU_ASSERT_EQUAL(s.n, 1);
  CU_ASSERT_STRING_EQUAL(s.unit[0], "S1");
  CU_ASSERT_STRING_EQUAL(s.token[0], "SLIDE_UNREADABLE");
  ts_ledger_close(&l);

  /* the journal is WAL (checked with SQLite itself) */
  sqlite3 *db = NULL;
  CU_ASSERT_EQUAL_FATAL(sqlite3_open(path, &db), SQLITE_OK);
  sqlite3_stmt *st = NULL;
  sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL);
  CU_ASSERT_EQUAL(sqlite3_step(st), SQLITE_ROW);
  CU_ASSERT_STRING_EQUAL((const char *)sqlite3_column_text(st, 0), "wal");
  sqlite3_finalize(st);
  sqlite3_close(db);
}

static void test_ledger_changed_hash_forgets_units(void) {
  ts_ledger *l = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_ledger_open(path, false, &l), 0);
  bool reset = false;
  CU_ASSERT_EQUAL(ts_ledger_stage_prepare(l, "tile", 1, "h1", &reset), 0);
  CU_ASSERT_FALSE(reset); /* same hash as before */
  char state[16];
  ts_ledger_unit_state(l, "tile", "S0", state);
  CU_ASSERT_STRING_EQUAL(state, "done");
  CU_ASSERT_EQUAL(ts_ledger_stage_prepare(l, "tile", 1, "h2", &reset), 0);
  CU_ASSERT_TRUE(reset);
  ts_ledger_unit_state(l, "tile", "S0", state);
  CU_ASSERT_STRING_EQUAL(state, "");
  char h[65];
  ts_ledger_stage_hash(l, "tile", h);
  CU_ASSERT_STRING_EQUAL(h, "h2");
  ts_ledger_close(&l);
}

/* One number, read through a second connection: what another reader (tessera status) sees. */
static int64_t count(const char *sql) {
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  int64_t v = -1;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK && sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

typedef struct bad_seen { int n; char unit[4][32]; int64_t count[4]; char token[4][32], message[4][64]; } bad_seen;
static void on_bad(void *ctx, const char *unit, int64_t n, const char *token, const char *message) {
  bad_seen *b = ctx;
  if (b->n < 4) {
    snprintf(b->unit[b->n], 32, "%s", unit);
    b->count[b->n] = n;
    snprintf(b->token[b->n], 32, "%s", token);
    snprintf(b->message[b->n], 64, "%s", message);
  }
  b->n++;
}

/* Bad items go in with the unit's done, are replaced when the unit is redone, and go with it;
 * stale units (not in the new plan) are forgotten unless done; consumed outputs are retired. */
static void test_ledger_bad_items_stale_retire(void) {
  ts_ledger *l = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_ledger_open(path, false, &l), 0);
  bool reset = false;
  CU_ASSERT_EQUAL(ts_ledger_stage_prepare(l, "extract", 3, "e1", &reset), 0);
  const char *ids[] = {"A#0-32", "A#32-40", "A", "B#0-8", "B"};
  for (int i = 0; i < 5; i++) CU_ASSERT_EQUAL(ts_ledger_unit_add(l, "extract", ids[i], i), 0);
  ts_bad_item bad[2] = {{.item = 3, .x = 512, .y = 1024, .token = "TILE_DECODE"}, {.item = 17, .x = 0, .y = 2048, .token = "TILE_DECODE"}};
  ts_unit_record r = {.output = "scratch/extract/A/0-32.bin", .checksum = "c1", .items = 32, .n_bad = 2, .bad = bad,
                      .bad_message = "Bogus marker length"};
  CU_ASSERT_EQUAL(ts_ledger_unit_done(l, "extract", "A#0-32", 0, 1, 1, &r), 0);
  CU_ASSERT_EQUAL(count("select count(*) from bad_items where stage='extract' and unit='A#0-32'"), 2);
  CU_ASSERT_EQUAL(count("select x + y from bad_items where item=3"), 1536);
  bad_seen b = {0};
  CU_ASSERT_EQUAL(ts_ledger_bad_items(l, "extract", on_bad, &b), 0);
  CU_ASSERT_EQUAL_FATAL(b.n, 1);
  CU_ASSERT_STRING_EQUAL(b.unit[0], "A#0-32");
  CU_ASSERT_EQUAL(b.count[0], 2);
  CU_ASSERT_STRING_EQUAL(b.token[0], "TILE_DECODE");
  CU_ASSERT_STRING_EQUAL(b.message[0], "Bogus marker length");
  /* redone with one bad item: the old rows are replaced, not added to */
  r.n_bad = 1;
  CU_ASSERT_EQUAL(ts_ledger_unit_done(l, "extract", "A#0-32", 1, 1, 2, &r), 0);
  CU_ASSERT_EQUAL(count("select count(*) from bad_items"), 1);
  /* inside a transaction too (a savepoint nests) */
  r.n_bad = 0;
  r.bad = NULL;
  CU_ASSERT_EQUAL(ts_ledger_begin(l), 0);
  CU_ASSERT_EQUAL(ts_ledger_unit_done(l, "extract", "A#32-40", 0, 1, 2, &r), 0);
  CU_ASSERT_EQUAL(ts_ledger_commit(l), 0);
  CU_ASSERT_EQUAL(count("select count(*) from units where stage='extract' and state='done'"), 2);
  /* retire the outputs of A's shards, not A's own nor B's */
  ts_unit_record ra = {.output = "features/x/A.h5", .checksum = "ca"};
  CU_ASSERT_EQUAL(ts_ledger_unit_done(l, "extract", "A", 0, 1, 2, &ra), 0);
  CU_ASSERT_EQUAL(ts_ledger_units_retire_outputs(l, "extract", "A#"), 0);
  CU_ASSERT_EQUAL(count("select count(*) from units where stage='extract' and unit like 'A#%' and output is null and checksum is not null"), 2);
  CU_ASSERT_EQUAL(count("select count(*) from units where unit='A' and output='features/x/A.h5'"), 1);
  /* a new plan without A's shards and without B#0-8 (pending): B#0-8 goes, done shards stay */
  CU_ASSERT_EQUAL(ts_ledger_units_mark_stale(l, "extract"), 0);
  CU_ASSERT_EQUAL(ts_ledger_unit_add(l, "extract", "A", 0), 0);
  CU_ASSERT_EQUAL(ts_ledger_unit_add(l, "extract", "B", 1), 0);
  int64_t dropped = -1;
  CU_ASSERT_EQUAL(ts_ledger_units_drop_stale(l, "extract", &dropped), 0);
  CU_ASSERT_EQUAL(dropped, 1);
  CU_ASSERT_EQUAL(count("select count(*) from units where stage='extract'"), 4);
  CU_ASSERT_EQUAL(count("select count(*) from units where unit='B#0-8'"), 0);
  CU_ASSERT_EQUAL(count("select count(*) from bad_items"), 1);
  /* a changed hash forgets the units and, with them, their bad items */
  CU_ASSERT_EQUAL(ts_ledger_stage_prepare(l, "extract", 3, "e2", &reset), 0);
  CU_ASSERT_TRUE(reset);
  CU_ASSERT_EQUAL(count("select count(*) from bad_items"), 0);
  ts_ledger_close(&l);
}

static void test_ledger_cohort_csv(void) {
  ts_cohort c;
  const char *ok = "slide_id,patient_id,path,label,mpp\nS1,P1,slides/a.svs,1,\n\"S,2\",P2,/abs/b.tiff,0,0.25\n";
  CU_ASSERT_EQUAL_FATAL(ts_cohort_parse("/data/cohort.csv", ok, &c), 0);
  CU_ASSERT_EQUAL(c.n, 2);
  CU_ASSERT_STRING_EQUAL(c.rows[0].path, "/data/slides/a.svs");
  CU_ASSERT_EQUAL(c.rows[0].label, 1);
  CU_ASSERT_DOUBLE_EQUAL(c.rows[0].mpp, 0, 0);
  CU_ASSERT_STRING_EQUAL(c.rows[1].slide_id, "S,2");
  CU_ASSERT_STRING_EQUAL(c.rows[1].path, "/abs/b.tiff");
  CU_ASSERT_DOUBLE_EQUAL(c.rows[1].mpp, 0.25, 0);
  CU_ASSERT_EQUAL(c.rows[1].line, 3);
  CU_ASSERT_PTR_NOT_NULL(ts_cohort_find(&c, "S1"));
  CU_ASSERT_PTR_NULL(ts_cohort_find(&c, "S3"));
  ts_cohort_clear(&c);

  CU_ASSERT_EQUAL(ts_cohort_parse("c.csv", "slide_id,path\nS1,a\n", &c), TS_ECONFIG);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "COHORT_MISSING_COLUMN");
  CU_ASSERT_PTR_NOT_NULL(strstr(ts_error_message(), "patient_id"));
  CU_ASSERT_EQUAL(ts_cohort_parse("c.csv", "slide_id,patient_id,path\nS1,P,a\n\nS1,P,b\n", &c), TS_ECONFIG);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "COHORT_DUPLICATE_ID");
  CU_ASSERT_PTR_NOT_NULL(strstr(ts_error_message(), "c.csv:4:"));
  CU_ASSERT_EQUAL(ts_cohort_parse("c.csv", "slide_id,patient_id,path,mpp\nS1,P,a,-1\n", &c), TS_ECONFIG);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "COHORT_BAD_VALUE");
  CU_ASSERT_PTR_NOT_NULL(strstr(ts_error_message(), "c.csv:2: column mpp"));
}

static void test_ledger_safe_ids(void) {
  CU_ASSERT_TRUE(ts_id_is_safe("TCGA-A1-0001.svs_1"));
  CU_ASSERT_FALSE(ts_id_is_safe("../etc"));
  CU_ASSERT_FALSE(ts_id_is_safe("a/b"));
  CU_ASSERT_FALSE(ts_id_is_safe(".hidden"));
  CU_ASSERT_FALSE(ts_id_is_safe(""));
  CU_ASSERT_FALSE(ts_id_is_safe("a b"));
}

/* ---- the open path: an existing ledger that cannot be trusted is refused, untouched ---- */

static void put_file(const char *p, const void *data, size_t n) {
  FILE *f = fopen(p, "wb");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  if (n) CU_ASSERT_EQUAL(fwrite(data, 1, n, f), n);
  fclose(f);
}

static int64_t user_version(const char *p) {
  sqlite3 *db = NULL;
  int64_t v = -1;
  sqlite3_stmt *st = NULL;
  if (sqlite3_open_v2(p, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
      sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

static void sql_on(const char *p, const char *sql) {
  sqlite3 *db = NULL;
  CU_ASSERT_EQUAL_FATAL(sqlite3_open(p, &db), SQLITE_OK);
  CU_ASSERT_EQUAL(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
}

/* Open bad (read-only and read-write): refused with token, TS_ECONFIG, the path in the message,
 * and the file byte-identical afterwards. */
static void expect_refused(const char *bad, const char *token, const char *what) {
  char *before = NULL, *after = NULL;
  size_t nb = 0, na = 0;
  CU_ASSERT_EQUAL_FATAL(ts_io_read_all(bad, &before, &nb), 0);
  for (int ro = 0; ro < 2; ro++) {
    ts_ledger *l = NULL;
    int rc = ts_ledger_open(bad, ro == 1, &l);
    CU_ASSERT_EQUAL(rc, TS_ECONFIG);
    CU_ASSERT_PTR_NULL(l);
    if (strcmp(ts_error_token(), token)) fprintf(stderr, "\n  %s (%s): got %s\n", what, ro ? "ro" : "rw", ts_error_message());
    CU_ASSERT_STRING_EQUAL(ts_error_token(), token);
    CU_ASSERT_PTR_NOT_NULL(strstr(ts_error_message(), bad));
    CU_ASSERT_PTR_NOT_NULL(strstr(ts_error_message(), strcmp(token, "LEDGER_TOO_NEW") ? "restore ledger.sqlite from a copy" : "use the newer tessera"));
    ts_ledger_close(&l);
  }
  CU_ASSERT_EQUAL_FATAL(ts_io_read_all(bad, &after, &na), 0);
  CU_ASSERT_EQUAL(na, nb);
  CU_ASSERT(na == nb && memcmp(before, after, nb) == 0);
  free(before);
  free(after);
}

static void test_ledger_open_refuses_untrusted(void) {
  char good[300], bad[300];
  snprintf(good, sizeof good, "%s/good.sqlite", dir);
  snprintf(bad, sizeof bad, "%s/bad.sqlite", dir);
  ts_ledger *l = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_ledger_open(good, false, &l), 0);
  bool reset = false;
  int64_t run = 0;
  CU_ASSERT_EQUAL(ts_ledger_stage_prepare(l, "tile", 1, "h", &reset), 0);
  CU_ASSERT_EQUAL(ts_ledger_run_begin(l, "cfg", "tessera run x", 1, "host", "0.1", &run), 0);
  CU_ASSERT_EQUAL(ts_ledger_begin(l), 0);
  for (int i = 0; i < 400; i++) { /* a few pages of units, so that the units b-tree has interior pages */
    char id[16];
    snprintf(id, sizeof id, "S%04d", i);
    CU_ASSERT_EQUAL(ts_ledger_unit_add(l, "tile", id, i), 0);
    ts_unit_record r = {.output = "tiles/x.h5", .checksum = "0123456789abcdef0123456789abcdef", .bytes = 10, .items = 3};
    CU_ASSERT_EQUAL(ts_ledger_unit_done(l, "tile", id, 0, 1, run, &r), 0);
  }
  CU_ASSERT_EQUAL(ts_ledger_commit(l), 0);
  ts_ledger_close(&l);
  CU_ASSERT_EQUAL(user_version(good), TS_LEDGER_SCHEMA); /* a new ledger records its schema */
  char *img = NULL;
  size_t n = 0;
  CU_ASSERT_EQUAL_FATAL(ts_io_read_all(good, &img, &n), 0);
  CU_ASSERT_FATAL(n > 8 * 4096);

  /* not SQLite: other bytes, an empty file */
  char *junk = malloc(n);
  CU_ASSERT_PTR_NOT_NULL_FATAL(junk);
  for (size_t i = 0; i < n; i++) junk[i] = (char)('a' + i % 26);
  put_file(bad, junk, n);
  expect_refused(bad, "LEDGER_NOT_A_LEDGER", "garbage");
  put_file(bad, "", 0);
  expect_refused(bad, "LEDGER_NOT_A_LEDGER", "empty");
  /* cut short: inside the header, inside page 1, at half */
  put_file(bad, img, 10);
  expect_refused(bad, "LEDGER_CORRUPT", "10 bytes");
  put_file(bad, img, 300);
  expect_refused(bad, "LEDGER_CORRUPT", "300 bytes");
  put_file(bad, img, n / 2);
  expect_refused(bad, "LEDGER_CORRUPT", "half");
  /* a b-tree page in the middle overwritten: the units table's root page's header */
  put_file(bad, img, n);
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  int64_t root = 0, psize = 0;
  CU_ASSERT_EQUAL_FATAL(sqlite3_open_v2(bad, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  if (sqlite3_prepare_v2(db, "SELECT rootpage, (SELECT page_size FROM pragma_page_size) FROM sqlite_master WHERE name='units'", -1, &st,
                         NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
    root = sqlite3_column_int64(st, 0);
    psize = sqlite3_column_int64(st, 1);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  CU_ASSERT_FATAL(root > 1 && psize >= 512 && (root - 1) * psize + 12 <= (int64_t)n);
  memcpy(junk, img, n);
  memset(junk + (root - 1) * psize, 0x7f, 12); /* page type, freeblock, cell count, content offset */
  put_file(bad, junk, n);
  expect_refused(bad, "LEDGER_CORRUPT", "b-tree page header");
  /* a newer schema */
  put_file(bad, img, n);
  sql_on(bad, "PRAGMA user_version = 3");
  expect_refused(bad, "LEDGER_TOO_NEW", "user_version 3");
  CU_ASSERT_PTR_NOT_NULL(strstr(ts_error_message(), "schema 3"));
  /* SQLite, but not ours */
  unlink(bad);
  sql_on(bad, "PRAGMA journal_mode=DELETE; CREATE TABLE notes(x); INSERT INTO notes VALUES(1)");
  expect_refused(bad, "LEDGER_NOT_A_LEDGER", "other tables");
  /* a directory where the ledger should be */
  char sub[320];
  snprintf(sub, sizeof sub, "%s/adir.sqlite", dir);
  CU_ASSERT_EQUAL_FATAL(ts_io_mkdirs(sub, 0755), 0);
  CU_ASSERT_EQUAL(ts_ledger_open(sub, false, &l), TS_ECONFIG);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "LEDGER_NOT_A_LEDGER");

  /* a ledger from before the version was recorded (user_version 0): opens, is upgraded */
  put_file(bad, img, n);
  sql_on(bad, "PRAGMA user_version = 0");
  CU_ASSERT_EQUAL(ts_ledger_open(bad, true, &l), 0); /* read-only: left as it is */
  ts_ledger_close(&l);
  CU_ASSERT_EQUAL(user_version(bad), 0);
  CU_ASSERT_EQUAL_FATAL(ts_ledger_open(bad, false, &l), 0);
  char state[16];
  CU_ASSERT_EQUAL(ts_ledger_unit_state(l, "tile", "S0399", state), 0);
  CU_ASSERT_STRING_EQUAL(state, "done");
  ts_ledger_close(&l);
  CU_ASSERT_EQUAL(user_version(bad), TS_LEDGER_SCHEMA);
  /* a new ledger leaves no temporary behind */
  char fresh[300], cmd[400];
  snprintf(fresh, sizeof fresh, "%s/fresh/ledger.sqlite", dir);
  snprintf(cmd, sizeof cmd, "%s/fresh", dir);
  CU_ASSERT_EQUAL_FATAL(ts_io_mkdirs(cmd, 0755), 0);
  CU_ASSERT_EQUAL_FATAL(ts_ledger_open(fresh, false, &l), 0);
  ts_ledger_close(&l);
  snprintf(cmd, sizeof cmd, "test -z \"$(ls %s/fresh | grep -v '^ledger.sqlite$')\"", dir);
  CU_ASSERT_EQUAL(system(cmd), 0);
  free(junk);
  free(img);
}

int ts_test_register(void) {
  CU_pSuite s = CU_add_suite("ledger", setup, teardown);
  if (!s) return -1;
  CU_add_test(s, "test_ledger_units_and_counts", test_ledger_units_and_counts);
  CU_add_test(s, "test_ledger_changed_hash_forgets_units", test_ledger_changed_hash_forgets_units);
  CU_add_test(s, "test_ledger_bad_items_stale_retire", test_ledger_bad_items_stale_retire);
  CU_add_test(s, "test_ledger_cohort_csv", test_ledger_cohort_csv);
  CU_add_test(s, "test_ledger_safe_ids", test_ledger_safe_ids);
  CU_add_test(s, "test_ledger_open_refuses_untrusted", test_ledger_open_refuses_untrusted);
  return 0;
}
