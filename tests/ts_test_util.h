/* ts_test_util.h — helpers the CUnit suites share (linked into every test with cu_main.c):
 * a per-suite temporary directory, running a Python script with Debian's /usr/bin/python3
 * (the `python3` on PATH is another interpreter without h5py/torch), and reading a file back. */
#ifndef TS_TEST_UTIL_H
#define TS_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* The suite's temporary directory, "" before ts_test_tmpdir_make(). */
extern char ts_test_tmpdir[256];
/* mkdtemp /tmp/<prefix>_XXXXXX into ts_test_tmpdir; 0 or -1. */
int ts_test_tmpdir_make(const char *prefix);
/* rm -rf ts_test_tmpdir; 0 or -1 (a CUnit suite-cleanup function). */
int ts_test_tmpdir_remove(void);
/* ts_test_tmpdir/name into buf. */
void ts_test_path(char *buf, size_t n, const char *name);
/* Write src to ts_test_tmpdir/name and run it there with /usr/bin/python3. Returns system()'s
 * status; prints the script's output on failure. */
int ts_test_python(const char *name, const char *src);
/* Contents of ts_test_tmpdir/name (malloc'd, NUL-terminated; NULL if unreadable). */
void *ts_test_read(const char *name, size_t *len);

/* A private deterministic generator for test data (splitmix64): the next 64 bits of state *s, a
 * uniform in (0, 1), a standard normal (Box-Muller, one draw per call). */
uint64_t ts_test_rng_next(uint64_t *s);
double ts_test_rng_unif(uint64_t *s);
double ts_test_rng_normal(uint64_t *s);

#endif
