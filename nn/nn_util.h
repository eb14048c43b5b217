/* nn_util.h — what the model families of nn/ (encoder.c, mil.c, survnet.c) share: private to
 * nn/ (the double underscore), not part of ts_nn.h's API. */
#ifndef TS_NN_UTIL_H
#define TS_NN_UTIL_H

#include <stdint.h>

#include "ts_nn.h"

/* splitmix64 of (seed, entry index): one private generator seed per weight tensor, so that the
 * same seed gives the same weights whatever else the process runs; never 0 (0 means LibTorch's
 * global generator to ts_tensor_randn/_rand). */
uint64_t ts__nn_mix_seed(uint64_t seed, uint64_t i);

/* Take ownership of *t (freed, set NULL, also on failure): make it trainable, add it to state as
 * `name` and append the state's borrowed handle to the growable list (*params, *n, *cap); the
 * handle also goes to *borrowed. `who` names the model in the out-of-memory message. */
int ts__nn_add_trainable(ts_nn_state *state, const ts_tensor ***params, int *n, int *cap, const char *name, ts_tensor **t,
                         ts_tensor **borrowed, const char *who);

#endif
