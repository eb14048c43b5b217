/* bench_survnet.c — training throughput of a survival model (nn/ts_survnet.h), patients/s.
 *
 *     bench_survnet ARCH [threads=1] [steps=60] [warmup=5] [tiles=2000] [omic=200] [tune_malloc=1]
 *
 * PAT = 8 synthetic patients held in memory (this measures the model, not I/O): bag i has
 * tiles - 400 + (137 i mod 801) tiles of D = 1024 standard-normal float32 features (private
 * generators, seed 7 + i), an omic vector of `omic` values, bin i mod 4, censored when i mod 3 == 0.
 * One patient per step, as PORPOISE and MCAT train (batch 1): forward (training, dropout on),
 * ts_surv_loss_nll (alpha 0, 4 bins), zero_grad, backward, Adam step (lr 2e-4, weight decay 1e-5:
 * PORPOISE's optimiser), loss.item(). Deterministic algorithms on (as the stages), `threads`
 * intra-op threads, tessera's malloc settings unless tune_malloc is 0. The first `warmup` steps are
 * untimed; wall time and the process's CPU time (CLOCK_PROCESS_CPUTIME_ID: on a shared machine
 * the steadier figure at 1 thread) are both reported. TS_BENCH_DROPOUT (env) overrides the dropout (0.25), to
 * see what the masks cost. Prints RESULT side=tessera model=mmf_bilinear steps=60 tiles=... seconds=...
 * patients_per_s=... ... bench/bench_survnet.sh runs it against bench/survnet_torch_bench.py.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ts_nn.h"
#include "ts_surv_loss.h"
#include "ts_survnet.h"

enum { PAT = 8, D = 1024 };

static double clock_s(clockid_t c) {
  struct timespec t;
  clock_gettime(c, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double now(void) {
  return clock_s(CLOCK_MONOTONIC);
}

/* bench_survnet --dropout [reps=20]: ms per call of ts_nn_dropout and ts_nn_dropout_fast on a
 * [2000, 1024] float32 tensor, p 0.25, training (what the survival models' dropouts cost). */
static int dropout_micro(int reps) {
  int64_t s[2] = {2000, 1024};
  ts_tensor *x = NULL;
  if (ts_nn_tune_malloc() < 0 || ts_nn_set_num_threads(1) < 0 || ts_tensor_randn(s, 2, TS_NN_F32, 1, &x) < 0)
    return 1;
  const char *names[4] = {"ts_nn_dropout", "ts_nn_dropout_fast", "ts_tensor_rand (global generator)",
                          "ts_nn_mul"};
  for (int k = 0; k < 4; k++) {
    double t0 = now();
    for (int r = 0; r < reps; r++) {
      ts_tensor *y = NULL;
      int e = k == 0   ? ts_nn_dropout(x, 0.25, true, &y)
              : k == 1 ? ts_nn_dropout_fast(x, 0.25, true, &y)
              : k == 2 ? ts_tensor_rand(s, 2, TS_NN_F32, 0, &y)
                       : ts_nn_mul(x, x, &y);
      if (e < 0) return 1;
      ts_tensor_free(&y);
    }
    printf("%s: %.2f ms per [2000, 1024] float32\n", names[k], 1e3 * (now() - t0) / reps);
  }
  ts_tensor_free(&x);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "--dropout")) return dropout_micro(argc > 2 ? atoi(argv[2]) : 20);
  if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
    fprintf(stderr, "usage: bench_survnet ARCH [threads=1] [steps=60] [warmup=5] [tiles=2000] [omic=200] "
                    "[tune_malloc=1]\n");
    return 2;
  }
  const char *arch = argv[1];
  int threads = argc > 2 ? atoi(argv[2]) : 1, steps = argc > 3 ? atoi(argv[3]) : 60,
      warmup = argc > 4 ? atoi(argv[4]) : 5, tune = argc > 7 ? atoi(argv[7]) : 1;
  int64_t tiles = argc > 5 ? atoll(argv[5]) : 2000, g = argc > 6 ? atoll(argv[6]) : 200;
  if (threads < 1 || steps < 1 || warmup < 0 || tiles < 401 || g < 1) {
    fprintf(stderr, "bench_survnet: bad arguments\n");
    return 2;
  }
  ts_tensor *bag[PAT] = {0}, *omic[PAT] = {0};
  int64_t bin[PAT], total_tiles = 0;
  int cens[PAT];
  ts_survnet *m = NULL;
  ts_optim *opt = NULL;
  int rc = 1;
  if (tune && ts_nn_tune_malloc() < 0) goto fail;
  if (ts_nn_set_num_threads(threads) < 0 || ts_nn_set_deterministic(true) < 0 || ts_nn_manual_seed(7) < 0)
    goto fail;
  for (int i = 0; i < PAT; i++) {
    int64_t bs[2] = {tiles - 400 + (137 * i) % 801, D}, os[2] = {1, g};
    if (ts_tensor_randn(bs, 2, TS_NN_F32, 7 + (uint64_t)i, &bag[i]) < 0 ||
        ts_tensor_randn(os, 2, TS_NN_F32, 100 + (uint64_t)i, &omic[i]) < 0)
      goto fail;
    bin[i] = i % 4;
    cens[i] = i % 3 == 0;
  }
  ts_survnet_opts o;
  ts_survnet_opts_default(&o);
  o.path_dim = D, o.omic_dim = g, o.n_out = 4, o.seed = 1;
  if (getenv("TS_BENCH_DROPOUT")) o.dropout = atof(getenv("TS_BENCH_DROPOUT")); /* exploration only */
  const ts_tensor *const *p = NULL;
  int np = 0;
  if (ts_survnet_new(arch, &o, &m) < 0 || ts_survnet_params(m, &p, &np) < 0 ||
      ts_optim_adam_new(p, np, 2e-4, 0.9, 0.999, 1e-8, 1e-5, &opt) < 0)
    goto fail;
  double t0 = 0, c0 = 0, sum = 0;
  for (int i = -warmup; i < steps; i++) {
    int b = ((i % PAT) + PAT) % PAT;
    if (i == 0) t0 = now(), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    ts_survnet_out r = {0};
    ts_tensor *loss = NULL;
    double v = 0;
    int e = 0;
    if ((e = ts_survnet_forward(m, bag[b], omic[b], true, &r)) >= 0 &&
        (e = ts_surv_loss_nll(r.logits, &bin[b], &cens[b], 0.0, &loss)) >= 0 &&
        (e = ts_optim_zero_grad(opt)) >= 0 && (e = ts_tensor_backward(loss)) >= 0 &&
        (e = ts_optim_step(opt)) >= 0)
      e = ts_tensor_item(loss, &v);
    ts_survnet_out_free(&r);
    ts_tensor_free(&loss);
    if (e < 0) goto fail;
    if (i >= 0) {
      sum += v;
      total_tiles += ts_tensor_size(bag[b], 0);
    }
  }
  double secs = now() - t0, cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
  printf("RESULT side=tessera model=%s steps=%d tiles=%lld seconds=%.3f patients_per_s=%.3f cpu_seconds=%.3f "
         "patients_per_cpu_s=%.3f mean_loss=%.4f threads=%d params=%lld malloc=%s libtorch=%s\n",
         arch, steps, (long long)total_tiles, secs, steps / secs, cpu, steps / cpu, sum / steps, threads,
         (long long)ts_survnet_param_count(m), tune ? "tuned" : "default", ts_nn_version());
  rc = 0;
  goto out;
fail:
  fprintf(stderr, "bench_survnet: %s\n", ts_error_message());
out:
  for (int i = 0; i < PAT; i++)
    ts_tensor_free(&bag[i]), ts_tensor_free(&omic[i]);
  ts_optim_free(&opt);
  ts_survnet_free(&m);
  return rc;
}
