/* toy_collective.c — a collective stage that exercises the whole ABI-2 collective path, for
 * tests/it_collective.sh: every rank at once, allreduce of f64, f32 and i64 buffers, broadcast,
 * checkpoints recorded in the ledger and resumed from, agreed stop, several outputs.
 *
 * The "training" is heavy-ball descent on a fixed vector: at step s every rank r contributes a
 * gradient that depends only on (run.seed, s, r) — never on a global generator or on what the
 * rank did before — so an interrupted run resumed from a checkpoint must end with the very bytes
 * of an uninterrupted one (the property the SSL stage needs). Steps, checkpoint interval and the
 * time per step come from the environment (TOY_STEPS, TOY_EVERY, TOY_STEP_MS) so the test can
 * make the run long enough to be killed in the middle.
 *
 * This binary (tessera_toy) is the real tessera — pipeline/main.c and every library — with this
 * registry instead of pipeline/registry.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ts_comm.h"
#include "ts_error.h"
#include "ts_io.h"
#include "ts_stage.h"
#include "ts_stop.h"

#define DIM 16
#define MAX_STEPS 4096

typedef struct toy_state {
  char magic[8];
  int64_t step; /* steps done */
  int64_t contributions;
  double x[DIM], v[DIM];
  float fsum[DIM];
  double norm[MAX_STEPS]; /* |x| after each step: the training curve */
} toy_state;

static const char MAGIC[8] = {'T', 'S', 'T', 'O', 'Y', 'C', 'K', '1'};

static int64_t env_int(const char *name, int64_t def) {
  const char *v = getenv(name);
  return v && *v ? strtoll(v, NULL, 10) : def;
}

static int load_checkpoint(const ts_run *run, toy_state *st) {
  char abs[TS_PATH_MAX];
  char *data = NULL;
  size_t len = 0;
  TS_CALL(ts_run_path(run, run->resume_checkpoint, abs, sizeof abs));
  TS_CALL(ts_io_read_all(abs, &data, &len));
  int rc = 0;
  if (len != sizeof *st || memcmp(data, MAGIC, sizeof MAGIC))
    rc = ts_error_set(TS_EINPUT, "TOY_CHECKPOINT", "%s is not a toy checkpoint", abs);
  else memcpy(st, data, sizeof *st);
  free(data);
  if (rc == 0 && st->step != run->resume_step)
    rc = ts_error_set(TS_EINPUT, "TOY_CHECKPOINT", "%s holds step %lld, the ledger says %lld", abs, (long long)st->step, (long long)run->resume_step);
  return rc;
}

static int save_checkpoint(const ts_run *run, const toy_state *st) {
  char rel[256], dir[TS_PATH_MAX], abs[TS_PATH_MAX];
  TS_CALL(ts_run_path(run, "ckpt/toy", dir, sizeof dir));
  TS_CALL(ts_io_mkdirs(dir, 0755));
  snprintf(rel, sizeof rel, "ckpt/toy/step-%06lld.bin", (long long)st->step);
  TS_CALL(ts_run_path(run, rel, abs, sizeof abs));
  TS_CALL(ts_io_write_atomic(abs, st, sizeof *st));
  return ts_run_checkpoint_record(run, st->step, rel);
}

static int write_outputs(const ts_run *run, const toy_state *st, ts_unit_record *rec) {
  char dir[TS_PATH_MAX], abs[TS_PATH_MAX];
  TS_CALL(ts_run_path(run, "toy", dir, sizeof dir));
  TS_CALL(ts_io_mkdirs(dir, 0755));
  char buf[8192];
  int k = 0;
  for (int i = 0; i < DIM; i++) k += snprintf(buf + k, sizeof buf - (size_t)k, "x[%d] = %.17g  f[%d] = %.9g\n", i, st->x[i], i, (double)st->fsum[i]);
  k += snprintf(buf + k, sizeof buf - (size_t)k, "contributions = %lld\n", (long long)st->contributions);
  TS_CALL(ts_run_path(run, "toy/result.txt", abs, sizeof abs));
  TS_CALL(ts_io_write_atomic(abs, buf, (size_t)k));
  TS_CALL(ts_unit_add_output(rec, "toy/result.txt"));
  char *curve = malloc((size_t)st->step * 40 + 32);
  if (!curve) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "curve");
  int c = sprintf(curve, "step,norm\n");
  for (int64_t s = 0; s < st->step; s++) c += sprintf(curve + c, "%lld,%.17g\n", (long long)s + 1, st->norm[s]);
  int rc = ts_run_path(run, "toy/curve.csv", abs, sizeof abs);
  if (rc >= 0) rc = ts_io_write_atomic(abs, curve, (size_t)c);
  free(curve);
  TS_CALL(rc);
  TS_CALL(ts_unit_add_output(rec, "toy/curve.csv"));
  rec->items = st->step;
  return 0;
}

static int collective(const ts_run *run, ts_comm *comm, ts_unit_record *rec) {
  int64_t steps = env_int("TOY_STEPS", 40), every = env_int("TOY_EVERY", 5), ms = env_int("TOY_STEP_MS", 20);
  if (steps < 1 || steps > MAX_STEPS || every < 1) return ts_error_set(TS_ECONFIG, "TOY_CONFIG", "TOY_STEPS 1..%d, TOY_EVERY >= 1", MAX_STEPS);
  toy_state *st = calloc(1, sizeof *st);
  if (!st) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "toy state");
  int rc = 0, rank = ts_comm_rank(comm);
  memcpy(st->magic, MAGIC, sizeof MAGIC);
  for (int i = 0; i < DIM; i++) st->x[i] = 1.0 + i;
  /* rank 0 reads the checkpoint and broadcasts it: no rank needs the run directory's files */
  if (run->resume_checkpoint && rank == 0) rc = load_checkpoint(run, st);
  if ((rc = ts_comm_agree(comm, rc)) < 0) goto out;
  if ((rc = ts_comm_bcast(comm, st, sizeof *st, 0)) < 0) goto out;
  if (getenv("TOY_FAIL_RANK") && atoi(getenv("TOY_FAIL_RANK")) == rank) /* a failure on one rank reaches every rank */
    rc = ts_error_set(TS_EINPUT, "TOY_FAILED", "rank %d was told to fail", rank);
  if ((rc = ts_comm_agree(comm, rc)) < 0) goto out;
  while (st->step < steps) {
    int64_t s = st->step;
    double g[DIM];
    float gf[DIM];
    int64_t one = 1;
    for (int i = 0; i < DIM; i++) {
      g[i] = sin((double)run->cfg->run.seed + 31.0 * (double)s + 7.0 * rank + i) * (1.0 + 0.1 * rank);
      gf[i] = (float)g[i];
    }
    if ((rc = ts_comm_allreduce_f64(comm, g, DIM, TS_COMM_SUM)) < 0 || (rc = ts_comm_allreduce_f32(comm, gf, DIM, TS_COMM_SUM)) < 0 ||
        (rc = ts_comm_allreduce_i64(comm, &one, 1, TS_COMM_SUM)) < 0)
      goto out;
    double nn = 0;
    for (int i = 0; i < DIM; i++) {
      st->v[i] = 0.9 * st->v[i] + g[i];
      st->x[i] -= 0.01 * st->v[i];
      st->fsum[i] += gf[i];
      nn += st->x[i] * st->x[i];
    }
    st->contributions += one;
    st->norm[s] = sqrt(nn);
    st->step = s + 1;
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
    if (st->step % every == 0 && st->step < steps) {
      if (rank == 0) rc = save_checkpoint(run, st);
      if ((rc = ts_comm_agree(comm, rc)) < 0) goto out;
    }
    if (ts_comm_stop_agreed(comm)) { /* SIGTERM: the checkpoint above is where the next run resumes */
      rc = ts_stop_error("toy");
      goto out;
    }
  }
  if (rank == 0) rc = write_outputs(run, st, rec);
out:
  free(st);
  return rc;
}

static const char *const needs[] = {NULL};
static const char *const keys[] = {"run.seed", NULL};

const struct ts_stage ts_stage_toy = {
    .abi = TS_STAGE_ABI,
    .name = "toy",
    .kind = TS_COLLECTIVE,
    .needs = needs,
    .config_keys = keys,
    .collective = collective,
    .items_unit = "steps",
    .unit_noun = "training run",
};

const struct ts_stage *const ts_stages[] = {&ts_stage_toy, NULL};
