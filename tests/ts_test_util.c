/* test_util.c — see ts_test_util.h. */
#include <math.h>
#include "ts_test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "ts_io.h"

char ts_test_tmpdir[256];

int ts_test_tmpdir_make(const char *prefix) {
  snprintf(ts_test_tmpdir, sizeof ts_test_tmpdir, "/tmp/%s_XXXXXX", prefix);
  return mkdtemp(ts_test_tmpdir) ? 0 : -1;
}

int ts_test_tmpdir_remove(void) {
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", ts_test_tmpdir);
  return system(cmd) == 0 ? 0 : -1;
}

void ts_test_path(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", ts_test_tmpdir, name); }

int ts_test_python(const char *name, const char *src) {
  char py[512], log[512], cmd[1600];
  ts_test_path(py, sizeof py, name);
  ts_test_path(log, sizeof log, "python.log");
  FILE *f = fopen(py, "w");
  if (!f) return -1;
  fputs(src, f);
  fclose(f);
  snprintf(cmd, sizeof cmd, "cd '%s' && /usr/bin/python3 '%s' > '%s' 2>&1", ts_test_tmpdir, py, log);
  int rc = system(cmd);
  if (rc != 0) {
    snprintf(cmd, sizeof cmd, "cat '%s' >&2", log);
    if (system(cmd) != 0) fprintf(stderr, "(no python log)\n");
  }
  return rc;
}

void *ts_test_read(const char *name, size_t *len) {
  char p[512], *data = NULL;
  ts_test_path(p, sizeof p, name);
  if (ts_io_read_all(p, &data, len) < 0) return NULL; /* the project's own reader */
  return data;
}

uint64_t ts_test_rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

double ts_test_rng_unif(uint64_t *s) { return ((double)(ts_test_rng_next(s) >> 11) + 0.5) / 9007199254740992.0; }

double ts_test_rng_normal(uint64_t *s) { return sqrt(-2 * log(ts_test_rng_unif(s))) * cos(2 * M_PI * ts_test_rng_unif(s)); }
