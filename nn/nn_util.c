/* nn_util.c — see nn_util.h. */
#include "nn_util.h"

#include <stdlib.h>

#include "ts_error.h"

uint64_t ts__nn_mix_seed(uint64_t seed, uint64_t i) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (i + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return z ? z : 1;
}

int ts__nn_add_trainable(ts_nn_state *state, const ts_tensor ***params, int *n, int *cap, const char *name, ts_tensor **t,
                         ts_tensor **borrowed, const char *who) {
  int rc = 0;
  TS_TRY(ts_tensor_set_requires_grad(*t, true));
  TS_TRY(ts_nn_state_add(state, name, *t));
  if (*n == *cap) {
    int c = *cap ? 2 * *cap : 16;
    const ts_tensor **p = realloc(*params, (size_t)c * sizeof *p);
    if (!p) TS_FAIL(TS_ENOMEM, "NN_OOM", "%s: out of memory", who);
    *params = p;
    *cap = c;
  }
  *borrowed = ts_nn_state_tensor(state, ts_nn_state_count(state) - 1);
  (*params)[(*n)++] = *borrowed;
out:
  ts_tensor_free(t);
  return rc;
}
