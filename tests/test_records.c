/* test_records.c — the records module: schema strings, CSV validation errors naming
 * file:line:column, and the Chan et al. reduction of block statistics against a direct
 * two-pass computation. */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ts_records.h"

static char dir[64];

static const char *write_tmp(const char *name, const char *text) {
  static char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  fputs(text, f);
  fclose(f);
  return path;
}

static const char *CLIN =
    "patient_id:id, age:float[0,120], sex:int{0,1}, grade:int{1,2,3}, stage:int{1,2,3,4}, time:float[0,], event:int{0,1}";

static void test_records_schema_parse(void) {
  ts_rec_schema s;
  CU_ASSERT_EQUAL_FATAL(ts_rec_schema_parse(CLIN, "k", &s), 0);
  CU_ASSERT_EQUAL(s.n, 7);
  CU_ASSERT_EQUAL(s.f[0].type, TS_REC_ID);
  CU_ASSERT_EQUAL(s.f[1].type, TS_REC_FLOAT);
  CU_ASSERT(s.f[1].has_lo && s.f[1].has_hi && s.f[1].lo == 0 && s.f[1].hi == 120);
  CU_ASSERT_EQUAL(s.f[3].type, TS_REC_CAT);
  CU_ASSERT(s.f[3].int_levels);
  CU_ASSERT_EQUAL(s.f[3].n_levels, 3);
  CU_ASSERT_STRING_EQUAL(s.f[3].levels[2], "3");
  CU_ASSERT(s.f[5].has_lo && !s.f[5].has_hi);
  CU_ASSERT(s.f[6].required);
  ts_rec_schema_clear(&s);

  CU_ASSERT_EQUAL_FATAL(ts_rec_schema_parse(" id : id , GENE*:float, site:str{a, b ,c}?, n:int[,+05]", "k", &s), 0);
  CU_ASSERT_EQUAL(s.n, 4);
  CU_ASSERT(s.f[1].wildcard);
  CU_ASSERT_STRING_EQUAL(s.f[1].name, "GENE");
  CU_ASSERT(!s.f[2].required && !s.f[2].int_levels && s.f[2].n_levels == 3);
  CU_ASSERT_STRING_EQUAL(s.f[2].levels[1], "b");
  CU_ASSERT(!s.f[3].has_lo && s.f[3].has_hi && s.f[3].hi == 5);
  ts_rec_schema_clear(&s);

  const char *bad[] = {"p:id, age:float[0,", "p:id, age:blob",         "a:float, b:int",      "p:id, q:id",
                       "p:id, x:str",        "p:id?, a:float",         "p:id, g:int{1,1}",    "p:id, a:float[5,1]",
                       "p:id, a:float{1,2}", "p:id, g:int{1,x}",       "p:id,, a:float",      "p:id, a b:float",
                       "p:id, a:float, a:int", "p:id, *:float",        "p:id, a",             "p:id, a:float[1]"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    int rc = ts_rec_schema_parse(bad[i], "records.clinical_schema", &s);
    CU_ASSERT_EQUAL(rc, TS_ECONFIG);
    CU_ASSERT_STRING_EQUAL(ts_error_token(), "CONFIG_RECORDS_SCHEMA");
    if (rc != TS_ECONFIG) fprintf(stderr, "accepted bad schema '%s'\n", bad[i]);
    CU_ASSERT(strstr(ts_error_message(), "records.clinical_schema") != NULL);
  }
}

/* Open t from text; validate rows [0, nrows) in one block; return the status. */
static int validate(const char *schema, const char *text, char *msg, size_t n) {
  ts_rec_schema s;
  ts_rec_table *t = NULL;
  ts_rec_stats st;
  if (ts_rec_schema_parse(schema, "k", &s) < 0) return -100;
  const char *p = write_tmp("v.csv", text);
  int rc = ts_rec_table_open("clinical", p, &s, &t);
  if (rc == 0) {
    rc = ts_rec_block_stats(t, 0, t->nrows, &st);
    if (rc == 0) ts_rec_stats_clear(&st);
  }
  snprintf(msg, n, "%s", rc < 0 ? ts_error_message() : "");
  ts_rec_table_free(&t);
  ts_rec_schema_clear(&s);
  return rc;
}

static void expect(const char *schema, const char *text, const char *token, const char *where) {
  char msg[2048], want[300];
  int rc = validate(schema, text, msg, sizeof msg);
  CU_ASSERT_EQUAL(rc, TS_EINPUT);
  CU_ASSERT(!strncmp(msg, token, strlen(token)));
  snprintf(want, sizeof want, "%s/v.csv:%s", dir, where);
  CU_ASSERT(strstr(msg, want) != NULL);
  if (rc != TS_EINPUT || strncmp(msg, token, strlen(token)) || !strstr(msg, want))
    fprintf(stderr, "\nwant %s at %s, got (%d) %s\n", token, want, rc, msg);
}

static void test_records_validation_errors(void) {
  const char *H = "patient_id,age,sex,grade,stage,time,event\n";
  char text[1024], msg[2048];
  snprintf(text, sizeof text, "%sP1,50,0,3,2,9.98,0\nP2,63,1,2,1,59.35,1\n", H);
  CU_ASSERT_EQUAL(validate(CLIN, text, msg, sizeof msg), 0);
  /* a value out of range: line 3, column 2 */
  snprintf(text, sizeof text, "%sP1,50,0,3,2,9.98,0\nP2,130,1,2,1,59.35,1\n", H);
  expect(CLIN, text, "RECORDS_BAD_VALUE", "3:2:");
  /* not in the set; blank lines count as lines */
  snprintf(text, sizeof text, "%sP1,50,0,3,2,9.98,0\n\nP2,63,1,5,1,59.35,1\n", H);
  expect(CLIN, text, "RECORDS_BAD_VALUE", "4:4:");
  /* not a number */
  snprintf(text, sizeof text, "%sP1,50,0,3,2,abc,0\n", H);
  expect(CLIN, text, "RECORDS_BAD_VALUE", "2:6:");
  /* an int column given a real */
  snprintf(text, sizeof text, "%sP1,50,0.5,3,2,1,0\n", H);
  expect(CLIN, text, "RECORDS_BAD_VALUE", "2:3:");
  /* an empty required cell */
  snprintf(text, sizeof text, "%sP1,50,0,3,2,1,\n", H);
  expect(CLIN, text, "RECORDS_MISSING_VALUE", "2:7:");
  /* an empty id */
  snprintf(text, sizeof text, "%s,50,0,3,2,1,0\n", H);
  expect(CLIN, text, "RECORDS_MISSING_VALUE", "2:1:");
  /* a quoted newline: the next row starts two lines later */
  snprintf(text, sizeof text, "%s\"P\n1\",50,0,3,2,1,0\nP2,50,0,3,2,-1,0\n", H);
  expect(CLIN, text, "RECORDS_BAD_VALUE", "4:6:");
  /* wrong field count */
  snprintf(text, sizeof text, "%sP1,50,0,3,2,1\n", H);
  expect(CLIN, text, "RECORDS_BAD_CSV", "2:");
  /* a missing required column (the header is line 1) */
  expect(CLIN, "patient_id,age,sex,grade,time,event\nP1,50,0,3,1,0\n", "RECORDS_MISSING_COLUMN", "1:");
  CU_ASSERT(strstr(ts_error_message(), "'stage'") != NULL);
  /* an optional column may be absent, and its cells empty */
  CU_ASSERT_EQUAL(validate("p:id, a:float?, b:float", "p,b\nx,1\n", msg, sizeof msg), 0);
  CU_ASSERT_EQUAL(validate("p:id, a:float?, b:float", "p,a,b\nx,,1\n", msg, sizeof msg), 0);
  /* a wildcard must match something unless optional */
  expect("p:id, GENE*:float", "p,a\nx,1\n", "RECORDS_MISSING_COLUMN", "1:");
  /* a duplicate header */
  expect("p:id, a:float", "p,a,a\nx,1,2\n", "RECORDS_BAD_HEADER", "1:3:");
  /* the first bad cell is the message, the others are counted */
  snprintf(text, sizeof text, "%sP1,500,0,3,2,1,0\nP2,50,7,3,2,1,0\n", H);
  CU_ASSERT_EQUAL(validate(CLIN, text, msg, sizeof msg), TS_EINPUT);
  CU_ASSERT(strstr(msg, ":2:2:") && strstr(msg, "1 more bad cell"));
  /* a missing file */
  ts_rec_schema s;
  ts_rec_table *t = NULL;
  ts_rec_schema_parse(CLIN, "k", &s);
  CU_ASSERT_EQUAL(ts_rec_table_open("clinical", "/nonexistent/x.csv", &s, &t), TS_EINPUT);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "RECORDS_MISSING_FILE");
  CU_ASSERT_PTR_NULL(t);
  ts_rec_schema_clear(&s);
}

static double relerr(double a, double b) {
  return fabs(a - b) / fmax(fabs(b), 1e-300);
}

/* Three blocks of a CSV column with a large offset (where sum-of-squares formulas lose every
 * digit) merged by Chan et al. equal the two-pass statistics of the whole column. */
static void test_records_reduction_three_partials(void) {
  enum { N = 257 };
  double x[N], y[N];
  char *text = malloc(N * 64 + 64);
  size_t k = (size_t)sprintf(text, "id,x,y,c\n");
  srand(7);
  for (int i = 0; i < N; i++) {
    double u = (rand() + 1.0) / ((double)RAND_MAX + 2.0), v = (rand() + 1.0) / ((double)RAND_MAX + 2.0);
    double z = sqrt(-2 * log(u)) * cos(2 * M_PI * v);
    x[i] = 1e6 + z;                 /* mean 1e6, sd 1 */
    y[i] = -3.5 + 1e-3 * (double)i; /* a ramp */
    k += (size_t)sprintf(text + k, "id%d,%.17g,%.17g,%s\n", i, x[i], y[i], i % 3 ? "a" : "b");
  }
  ts_rec_schema s;
  ts_rec_table *t = NULL;
  CU_ASSERT_EQUAL_FATAL(ts_rec_schema_parse("id:id, x:float, y:float, c:str{a,b}", "k", &s), 0);
  CU_ASSERT_EQUAL_FATAL(ts_rec_table_open("t", write_tmp("r.csv", text), &s, &t), 0);
  CU_ASSERT_EQUAL(t->nrows, N);
  int64_t cut[4] = {0, 40, 200, N};
  ts_rec_stats acc, part;
  ts_rec_stats_init(&acc, t->ncols, t->n_cat);
  for (int b = 0; b < 3; b++) {
    CU_ASSERT_EQUAL_FATAL(ts_rec_block_stats(t, cut[b], cut[b + 1], &part), 0);
    /* through a partial file, as the stage does */
    char p[256];
    snprintf(p, sizeof p, "%s/part-%d.h5", dir, b);
    CU_ASSERT_EQUAL(ts_rec_partial_write(p, t, b, cut[b], cut[b + 1], &part), 0);
    ts_rec_stats_clear(&part);
    CU_ASSERT_EQUAL_FATAL(ts_rec_partial_read(p, t, &part), 0);
    CU_ASSERT_EQUAL(part.rows, cut[b + 1] - cut[b]);
    CU_ASSERT_EQUAL(ts_rec_stats_merge(&acc, &part), 0);
    ts_rec_stats_clear(&part);
  }
  const double *cols[2] = {x, y};
  for (int j = 0; j < 2; j++) {
    double m = 0, m2 = 0;
    for (int i = 0; i < N; i++) m += cols[j][i];
    m /= N;
    for (int i = 0; i < N; i++) m2 += (cols[j][i] - m) * (cols[j][i] - m);
    CU_ASSERT_EQUAL(acc.n[j], N);
    CU_ASSERT(relerr(acc.mean[j], m) < 1e-12);
    CU_ASSERT(relerr(acc.m2[j], m2) < 1e-12);
    if (relerr(acc.m2[j], m2) >= 1e-12) fprintf(stderr, "\ncol %d: M2 %.17g vs %.17g\n", j, acc.m2[j], m2);
  }
  CU_ASSERT_EQUAL(acc.cat_counts[0] + acc.cat_counts[1], N);
  CU_ASSERT_EQUAL(acc.cat_counts[1], (N + 2) / 3);
  /* a partial of other bytes is refused */
  ts_rec_table *t2 = NULL;
  text[k] = '\n'; /* one more (blank) line: other bytes, same rows */
  text[k + 1] = 0;
  CU_ASSERT_EQUAL_FATAL(ts_rec_table_open("t", write_tmp("r2.csv", text), &s, &t2), 0);
  char p[256];
  snprintf(p, sizeof p, "%s/part-0.h5", dir);
  CU_ASSERT_EQUAL(ts_rec_partial_read(p, t2, &part), TS_EINPUT);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "RECORDS_STALE");
  ts_rec_table_free(&t2);
  ts_rec_stats_clear(&acc);
  ts_rec_table_free(&t);
  ts_rec_schema_clear(&s);
  free(text);
}

/* Merging in any grouping gives the same answer (associativity up to rounding), and an empty
 * side is the identity. */
static void test_records_merge_identity(void) {
  ts_rec_stats a, b, e;
  ts_rec_stats_init(&a, 1, 0);
  ts_rec_stats_init(&b, 1, 0);
  ts_rec_stats_init(&e, 1, 0);
  ts_rec_stats_push(&a, 0, 1);
  ts_rec_stats_push(&a, 0, 2);
  ts_rec_stats_push(&b, 0, 4);
  CU_ASSERT_EQUAL(ts_rec_stats_merge(&e, &a), 0);
  CU_ASSERT_EQUAL(e.n[0], 2);
  CU_ASSERT_DOUBLE_EQUAL(e.mean[0], 1.5, 1e-15);
  CU_ASSERT_EQUAL(ts_rec_stats_merge(&e, &b), 0);
  CU_ASSERT_DOUBLE_EQUAL(e.mean[0], 7.0 / 3, 1e-15);
  CU_ASSERT_DOUBLE_EQUAL(e.m2[0], (1 - 7.0 / 3) * (1 - 7.0 / 3) + (2 - 7.0 / 3) * (2 - 7.0 / 3) + (4 - 7.0 / 3) * (4 - 7.0 / 3), 1e-14);
  ts_rec_stats bad;
  ts_rec_stats_init(&bad, 2, 0);
  CU_ASSERT_EQUAL(ts_rec_stats_merge(&e, &bad), TS_EINVAL);
  ts_rec_stats_clear(&bad);
  ts_rec_stats_clear(&a);
  ts_rec_stats_clear(&b);
  ts_rec_stats_clear(&e);
}

static int suite_init(void) {
  snprintf(dir, sizeof dir, "/tmp/ts_rec.XXXXXX");
  return mkdtemp(dir) ? 0 : 1;
}

static int suite_clean(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : 1;
}

int ts_test_register(void) {
  CU_pSuite s = CU_add_suite("records", suite_init, suite_clean);
  if (!s) return 1;
  if (!CU_add_test(s, "test_records_schema_parse", test_records_schema_parse) ||
      !CU_add_test(s, "test_records_validation_errors", test_records_validation_errors) ||
      !CU_add_test(s, "test_records_reduction_three_partials", test_records_reduction_three_partials) ||
      !CU_add_test(s, "test_records_merge_identity", test_records_merge_identity))
    return 1;
  return 0;
}
