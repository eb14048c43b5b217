/* sched_check.c — the scheduler under mpirun (driven by tests/it_sched.sh).
 *
 * 2000 units that do nothing but: units with i % 13 == 5 fail with bad input (must not be
 * retried), units with i % 11 == 4 fail with an I/O error every time (must be tried exactly
 * max_attempts times), the rest succeed. Rank 0 checks that every unit is reported exactly once,
 * with the right outcome and attempt count, and that with N > 1 ranks every rank did work. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_error.h"
#include "ts_sched.h"

#define N 2000
#define MAX_ATTEMPTS 3

static int seen[N], outcome[N], attempts[N], by_rank[64];

static int work(void *ctx, int64_t idx, const char *id, ts_unit_record *rec) {
  (void)ctx;
  (void)rec;
  int i = atoi(id + 1);
  if (i != idx) return ts_error_set(TS_EINTERNAL, "MISMATCH", "idx %lld for %s", (long long)idx, id);
  if (i % 13 == 5) return ts_error_set(TS_EINPUT, "BAD_INPUT", "unit %d is bad input", i);
  if (i % 11 == 4) return ts_error_set(TS_EIO, "FLAKY", "unit %d: I/O error", i);
  rec->items = 1;
  return 0;
}

static int on_result(void *ctx, const ts_sched_result *r) {
  (void)ctx;
  int i = (int)r->idx;
  seen[i]++;
  outcome[i] = r->ok ? 1 : (!strcmp(r->token, "BAD_INPUT") ? 2 : !strcmp(r->token, "FLAKY") ? 3 : 4);
  attempts[i] = r->attempts;
  if (r->rank >= 0 && r->rank < 64) by_rank[r->rank]++;
  return 0;
}

static int out_path(void *ctx, const char *rel, char *buf, size_t n) {
  (void)ctx;
  snprintf(buf, n, "%s", rel);
  return 0;
}

int main(int argc, char **argv) {
  int provided, rank, nranks;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nranks);
  static char names[N][16];
  static const char *ids[N];
  static int64_t idx[N];
  for (int i = 0; i < N; i++) {
    snprintf(names[i], sizeof names[i], "u%d", i);
    ids[i] = names[i];
    idx[i] = i;
  }
  ts_sched_cb cb = {.work = work, .on_result = on_result, .output_path = out_path, .stage = "check",
                    .max_attempts = MAX_ATTEMPTS, .progress = false};
  double t0 = MPI_Wtime();
  int rc = ts_sched_stage(&cb, ids, idx, rank == 0 ? N : 0);
  double dt = MPI_Wtime() - t0;
  int passed = 0, failed = 0;
  if (rank == 0) {
#define CHECK(cond, ...) do { if (cond) passed++; else { failed++; printf("FAIL - " __VA_ARGS__); printf("\n"); } } while (0)
    CHECK(rc == 0, "scheduler returned %d: %s", rc, ts_error_message());
    int once = 0, right = 0, tries = 0;
    for (int i = 0; i < N; i++) {
      once += seen[i] == 1;
      int want = i % 13 == 5 ? 2 : i % 11 == 4 ? 3 : 1;
      right += outcome[i] == want;
      int want_attempts = want == 3 ? MAX_ATTEMPTS : 1;
      tries += attempts[i] == want_attempts;
    }
    CHECK(once == N, "%d of %d units reported exactly once", once, N);
    CHECK(right == N, "%d of %d units with the expected outcome", right, N);
    CHECK(tries == N, "%d of %d units with the expected attempt count (bad input never retried)", tries, N);
    int working = 0;
    for (int r = 0; r < nranks && r < 64; r++) working += by_rank[r] > 0;
    CHECK(working == nranks, "%d of %d ranks did units", working, nranks);
    printf("sched_check: %d ranks, %d units in %.3f s (%.0f units/s)\n", nranks, N, dt, N / dt);
    printf("%d passed, %d failed\n", passed, failed);
  }
  MPI_Bcast(&failed, 1, MPI_INT, 0, MPI_COMM_WORLD);
  MPI_Finalize();
  return failed ? 1 : 0;
}
