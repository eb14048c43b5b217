/* test_error.c — the thread-local error state (base/ts_error.c): token, message, detail, and a
 * caller wrapping the previous error in a new one. ts_error_set(..., "%s", ts_error_detail())
 * is how a driver re-tokens a lower error (COHORT_MISSING_FILE around an I/O error); when the
 * message was formatted in place over the text it was reading, `tessera run missing.yaml`
 * printed "(SSING_FILE: ..." (issue 10). */
#include <CUnit/CUnit.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "ts_error.h"

static void test_error_set_token_message_detail(void) {
  ts_error_clear();
  CU_ASSERT_EQUAL(ts_error_code(), 0);
  CU_ASSERT_STRING_EQUAL(ts_error_message(), "");
  CU_ASSERT_EQUAL(ts_error_set(TS_EINPUT, "SLIDE_MISSING", "slide %s: no file %s", "S1", "/x/S1.svs"),
                  TS_EINPUT);
  CU_ASSERT_EQUAL(ts_error_code(), TS_EINPUT);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "SLIDE_MISSING");
  CU_ASSERT_STRING_EQUAL(ts_error_message(), "SLIDE_MISSING: slide S1: no file /x/S1.svs");
  CU_ASSERT_STRING_EQUAL(ts_error_detail(), "slide S1: no file /x/S1.svs");
  ts_error_clear();
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "");
  CU_ASSERT_STRING_EQUAL(ts_error_detail(), "");
}

/* A new token around the previous detail: the text must be the old detail, intact. */
static void test_error_wrap_own_detail(void) {
  ts_error_set(TS_EIO, "IO_OPEN", "missing.yaml: No such file or directory");
  ts_error_set(TS_ECONFIG, "CONFIG_MISSING_FILE", "%s", ts_error_detail());
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "CONFIG_MISSING_FILE");
  CU_ASSERT_STRING_EQUAL(ts_error_message(), "CONFIG_MISSING_FILE: missing.yaml: No such file or directory");
  CU_ASSERT_EQUAL(ts_error_code(), TS_ECONFIG);
  /* a longer token than the old one (the message shifts right over what it reads) */
  ts_error_set(TS_EIO, "E", "abcdefghijklmnopqrstuvwxyz");
  ts_error_set(TS_ECONFIG, "A_MUCH_LONGER_TOKEN_THAN_BEFORE", "config: %s (%d)", ts_error_detail(), 7);
  CU_ASSERT_STRING_EQUAL(ts_error_message(),
                         "A_MUCH_LONGER_TOKEN_THAN_BEFORE: config: abcdefghijklmnopqrstuvwxyz (7)");
  /* and a shorter one (it shifts left) */
  ts_error_set(TS_EIO, "A_VERY_LONG_TOKEN_INDEED", "the quick brown fox");
  ts_error_set(TS_EIO, "X", "%s!", ts_error_detail());
  CU_ASSERT_STRING_EQUAL(ts_error_message(), "X: the quick brown fox!");
  CU_ASSERT_STRING_EQUAL(ts_error_detail(), "the quick brown fox!");
}

/* The whole previous message (token included) as the new detail. */
static void test_error_wrap_own_message(void) {
  ts_error_set(TS_EINPUT, "SLIDE_MISSING", "slide S2: /data/S2.svs: no such file");
  ts_error_set(TS_EINPUT, "UPSTREAM_FAILED", "tissue failed: %s", ts_error_message());
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "UPSTREAM_FAILED");
  CU_ASSERT_STRING_EQUAL(
      ts_error_message(),
      "UPSTREAM_FAILED: tissue failed: SLIDE_MISSING: slide S2: /data/S2.svs: no such file");
  ts_error_set(TS_EINPUT, "T", "%s", ts_error_message());
  CU_ASSERT_STRING_EQUAL(
      ts_error_message(),
      "T: UPSTREAM_FAILED: tissue failed: SLIDE_MISSING: slide S2: /data/S2.svs: no such file");
  /* the previous message and the previous token, twice in one format */
  ts_error_set(TS_EIO, "IO_READ", "short read");
  ts_error_set(TS_EIO, "WRAP", "[%s] [%s] [%s]", ts_error_token(), ts_error_message(), ts_error_detail());
  CU_ASSERT_STRING_EQUAL(ts_error_message(), "WRAP: [IO_READ] [IO_READ: short read] [short read]");
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "WRAP");
}

/* A message at the length limit wrapped again stays NUL-terminated and starts with the token. */
static void test_error_wrap_long_message(void) {
  char big[4000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  ts_error_set(TS_EIO, "LONG", "%s", big);
  size_t n1 = strlen(ts_error_message());
  CU_ASSERT(n1 > 1000 && n1 < sizeof big);
  ts_error_set(TS_EIO, "LONGER_TOKEN", "%s", ts_error_message());
  const char *m = ts_error_message();
  CU_ASSERT(strncmp(m, "LONGER_TOKEN: LONG: xxxx", 24) == 0);
  CU_ASSERT(strlen(m) <= n1 + 16);
  CU_ASSERT(strspn(m + 20, "x") == strlen(m + 20));
}

static void *other_thread(void *arg) {
  (void)arg;
  static char seen[64];
  snprintf(seen, sizeof seen, "%s", ts_error_token());
  ts_error_set(TS_EIO, "THREAD_B", "set on another thread");
  return seen;
}

static void test_error_thread_local(void) {
  ts_error_set(TS_EINPUT, "THREAD_A", "main");
  pthread_t t;
  void *ret = NULL;
  CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, other_thread, NULL), 0);
  pthread_join(t, &ret);
  CU_ASSERT_STRING_EQUAL((const char *)ret, ""); /* a new thread starts with no error */
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "THREAD_A");
  CU_ASSERT_STRING_EQUAL(ts_error_message(), "THREAD_A: main");
}

int ts_test_register(void) {
  CU_pSuite s = CU_add_suite("error", NULL, NULL);
  if (!s) return -1;
  CU_add_test(s, "test_error_set_token_message_detail", test_error_set_token_message_detail);
  CU_add_test(s, "test_error_wrap_own_detail", test_error_wrap_own_detail);
  CU_add_test(s, "test_error_wrap_own_message", test_error_wrap_own_message);
  CU_add_test(s, "test_error_wrap_long_message", test_error_wrap_long_message);
  CU_add_test(s, "test_error_thread_local", test_error_thread_local);
  return 0;
}
