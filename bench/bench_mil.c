/* bench_mil.c — MIL training throughput (bags/s) of tessera's ABMIL and CLAM-SB; the PyTorch
 * baseline (bench/mil_torch.py) trains the same models on the same bags, and bench/bench_mil.sh
 * runs both, alternating, and prints the ratios.
 *
 *     bench_mil gen   PREFIX [bags=200] [min=500] [max=5000] [dim=1024] [seed=7]
 *     bench_mil train PREFIX MODEL [threads=1] [warmup=20] [tune_malloc=1]
 *
 * gen writes the bags once, so that both sides train on exactly the same numbers:
 *   PREFIX.txt  "bags dim seed", then one line "n label" per bag;
 *   PREFIX.f32  every bag's [n, dim] float32 rows (little-endian, row-major), one after another.
 * Bag b (0-based) has n = min + r % (max - min + 1) tiles and label (r >> 32) & 1, r the first
 * draw of a xorshift64* stream seeded with splitmix64(seed ^ b); features are the next draws
 * mapped to [0, 1) (non-negative, like a ReLU encoder's). A fixed distribution: the bag sizes
 * of the default set average ~2750 tiles, a mid-sized slide at 20x.
 *
 * train holds every bag in memory as a tensor (built before timing: this measures the model,
 * not I/O), builds MODEL ("abmil" or "clam_sb", D = dim, C = 2, L 512, Dₐ 256, dropout 0.25,
 * k_sample 8: ts_mil_opts_default), AdamW (lr 2e-4, betas 0.9/0.999, eps 1e-8, weight decay 1e-5:
 * the mil stage's defaults), sets `threads` intra-op threads, deterministic algorithms (as
 * stages/mil.c does; TS_BENCH_NONDET=1 in the environment turns them off, for measuring their
 * cost: ~8 % of ABMIL's bags/s on 2026-12-01) and, unless tune_malloc is 0, tessera's glibc malloc settings
 * (ts_nn_tune_malloc). Then batch 1: for each bag forward (training, with the label, so CLAM
 * computes its instance loss), loss (CLAM: 0.7 bag CE + 0.3 instance CE), zero_grad, backward,
 * step, loss.item() — stages/mil.c's train_epoch without the bag reads. The first `warmup` bags
 * train untimed (optimiser state, allocator); then one timed epoch over all bags in file order.
 * Prints
 *     RESULT side=tessera model=abmil bags=200 tiles=550123 seconds=12.3 bags_per_s=16.2 mean_loss=0.69
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ts_mil.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int die(void) {
  fprintf(stderr, "bench_mil: %s\n", ts_error_message());
  return 1;
}

static uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

static uint64_t xs64(uint64_t *s) { /* xorshift64* (Vigna 2016) */
  *s ^= *s >> 12, *s ^= *s << 25, *s ^= *s >> 27;
  return *s * 0x2545F4914F6CDD1Dull;
}

static int gen(const char *prefix, int bags, int64_t lo, int64_t hi, int64_t dim, uint64_t seed) {
  char path[4096];
  snprintf(path, sizeof path, "%s.txt", prefix);
  FILE *t = fopen(path, "w");
  snprintf(path, sizeof path, "%s.f32", prefix);
  FILE *f = fopen(path, "wb");
  float *row = malloc(sizeof *row * (size_t)dim);
  int rc = 1;
  if (!t || !f || !row) {
    perror(path);
    goto out;
  }
  fprintf(t, "%d %lld %llu\n", bags, (long long)dim, (unsigned long long)seed);
  int64_t total = 0;
  for (int b = 0; b < bags; b++) {
    uint64_t s = splitmix64(seed ^ (uint64_t)b) | 1;
    uint64_t r = xs64(&s);
    int64_t n = lo + (int64_t)(r % (uint64_t)(hi - lo + 1));
    fprintf(t, "%lld %d\n", (long long)n, (int)((r >> 32) & 1));
    for (int64_t i = 0; i < n; i++) {
      for (int64_t j = 0; j < dim; j++)
        row[j] = (float)(xs64(&s) >> 40) * (1.0f / 16777216.0f);
      if (fwrite(row, sizeof *row, (size_t)dim, f) != (size_t)dim) {
        perror(path);
        goto out;
      }
    }
    total += n;
  }
  printf("bench_mil: wrote %d bags, %lld tiles of %lld floats to %s.{txt,f32}\n", bags, (long long)total,
         (long long)dim, prefix);
  rc = 0;
out:
  if (t && fclose(t)) rc = 1;
  if (f && fclose(f)) rc = 1;
  free(row);
  return rc;
}

static int train(const char *prefix, const char *arch, int threads, int warmup, int tune) {
  char path[4096];
  int bags = 0, rc = 1;
  long long dim = 0;
  unsigned long long seed = 0;
  ts_tensor **x = NULL;
  int64_t *label = NULL, tiles = 0;
  ts_mil *m = NULL;
  ts_optim *opt = NULL;
  float *buf = NULL;
  FILE *f = NULL;
  snprintf(path, sizeof path, "%s.txt", prefix);
  FILE *t = fopen(path, "r");
  if (!t || fscanf(t, "%d %lld %llu", &bags, &dim, &seed) != 3 || bags < 1 || dim < 1) {
    fprintf(stderr, "bench_mil: %s: not a bag list (run `bench_mil gen` first)\n", path);
    goto out;
  }
  x = calloc((size_t)bags, sizeof *x);
  label = calloc((size_t)bags, sizeof *label);
  snprintf(path, sizeof path, "%s.f32", prefix);
  f = fopen(path, "rb");
  if (!x || !label || !f) {
    perror(path);
    goto out;
  }
  if (tune && ts_nn_tune_malloc() < 0) goto fail;
  if (ts_nn_set_num_threads(threads) < 0 || ts_nn_set_deterministic(!getenv("TS_BENCH_NONDET")) < 0 || ts_nn_manual_seed(seed) < 0)
    goto fail;
  for (int b = 0; b < bags; b++) {
    long long n;
    int y;
    if (fscanf(t, "%lld %d", &n, &y) != 2 || n < 1) {
      fprintf(stderr, "bench_mil: %s.txt: bag %d: bad line\n", prefix, b);
      goto out;
    }
    label[b] = y;
    size_t cnt = (size_t)n * (size_t)dim;
    float *nb = realloc(buf, cnt * sizeof *buf);
    if (!nb) goto out;
    buf = nb;
    if (fread(buf, sizeof *buf, cnt, f) != cnt) {
      fprintf(stderr, "bench_mil: %s: short file at bag %d\n", path, b);
      goto out;
    }
    int64_t shape[2] = {n, dim};
    if (ts_tensor_from_data(buf, TS_NN_F32, shape, 2, &x[b]) < 0) goto fail;
    tiles += n;
  }
  free(buf);
  buf = NULL;

  ts_mil_opts o;
  ts_mil_opts_default(&o);
  o.in_dim = dim, o.n_classes = 2, o.seed = seed;
  const ts_tensor *const *p = NULL;
  int np = 0;
  if (ts_mil_new(arch, &o, &m) < 0 || ts_mil_params(m, &p, &np) < 0 ||
      ts_optim_adamw_new(p, np, 2e-4, 0.9, 0.999, 1e-8, 1e-5, &opt) < 0)
    goto fail;
  if (warmup > bags) warmup = bags;
  double t0 = 0, sum = 0;
  for (int i = -warmup; i < bags; i++) {
    int b = i < 0 ? i + warmup : i;
    if (i == 0) t0 = now();
    ts_mil_out r = {0};
    ts_tensor *loss = NULL;
    double v = 0;
    int e = 0;
    if ((e = ts_mil_forward(m, x[b], true, &label[b], &r)) >= 0 && (e = ts_mil_loss(m, &r, (double)label[b], &loss)) >= 0 &&
        (e = ts_optim_zero_grad(opt)) >= 0 && (e = ts_tensor_backward(loss)) >= 0 && (e = ts_optim_step(opt)) >= 0)
      e = ts_tensor_item(loss, &v);
    ts_mil_out_free(&r);
    ts_tensor_free(&loss);
    if (e < 0) goto fail;
    if (i >= 0) sum += v;
  }
  double secs = now() - t0;
  printf("RESULT side=tessera model=%s bags=%d tiles=%lld seconds=%.3f bags_per_s=%.3f mean_loss=%.4f threads=%d "
         "malloc=%s libtorch=%s\n",
         arch, bags, (long long)tiles, secs, bags / secs, sum / bags, threads, tune ? "tuned" : "default",
         ts_nn_version());
  rc = 0;
  goto out;
fail:
  rc = die();
out:
  if (t) fclose(t);
  if (f) fclose(f);
  free(buf);
  if (x)
    for (int b = 0; b < bags; b++)
      ts_tensor_free(&x[b]);
  free(x);
  free(label);
  ts_optim_free(&opt);
  ts_mil_free(&m);
  return rc;
}

int main(int argc, char **argv) {
  if (argc >= 3 && !strcmp(argv[1], "gen")) {
    int bags = argc > 3 ? atoi(argv[3]) : 200;
    long long lo = argc > 4 ? atoll(argv[4]) : 500, hi = argc > 5 ? atoll(argv[5]) : 5000;
    long long dim = argc > 6 ? atoll(argv[6]) : 1024;
    unsigned long long seed = argc > 7 ? strtoull(argv[7], NULL, 10) : 7;
    if (bags < 1 || lo < 1 || hi < lo || dim < 1) {
      fprintf(stderr, "bench_mil gen: need bags >= 1, 1 <= min <= max, dim >= 1\n");
      return 2;
    }
    return gen(argv[2], bags, lo, hi, dim, seed);
  }
  if (argc >= 4 && !strcmp(argv[1], "train")) {
    int threads = argc > 4 ? atoi(argv[4]) : 1, warmup = argc > 5 ? atoi(argv[5]) : 20;
    int tune = argc > 6 ? atoi(argv[6]) : 1;
    if (threads < 1 || warmup < 0) {
      fprintf(stderr, "bench_mil train: need threads >= 1, warmup >= 0\n");
      return 2;
    }
    return train(argv[2], argv[3], threads, warmup, tune);
  }
  fprintf(stderr, "usage: bench_mil gen PREFIX [bags=200] [min=500] [max=5000] [dim=1024] [seed=7]\n"
                  "       bench_mil train PREFIX abmil|clam_sb [threads=1] [warmup=20] [tune_malloc=1]\n"
                  "(bench/bench_mil.sh runs both sides and prints the ratios)\n");
  return 2;
}
