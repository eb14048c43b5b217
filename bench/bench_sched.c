/* bench_sched.c [N=200000] — coordinator capacity: units dispatched per second when the units
 * do nothing, so that only the scheduler is measured (MPI messages, queue, worker threads; the
 * ledger is left out: on_result does nothing). Run under mpirun by bench_sched.sh with 1 and 2
 * ranks. Prints "sched RANKS UNITS SECONDS". */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#include "ts_sched.h"

static int work(void *ctx, int64_t idx, const char *id, ts_unit_record *rec) {
  (void)ctx, (void)idx, (void)id, (void)rec;
  return 0;
}
static int on_result(void *ctx, const ts_sched_result *r) {
  (void)r;
  (*(int64_t *)ctx)++;
  return 0;
}
static int out_path(void *ctx, const char *rel, char *buf, size_t n) {
  (void)ctx, (void)rel, (void)buf, (void)n;
  return 0;
}

int main(int argc, char **argv) {
  int provided, rank, nranks;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nranks);
  int64_t n = argc > 1 ? atoll(argv[1]) : 200000, seen = 0;
  char **ids = NULL, *names = NULL;
  int64_t *idx = NULL;
  if (rank == 0) {
    ids = malloc(sizeof *ids * (size_t)n);
    idx = malloc(sizeof *idx * (size_t)n);
    names = malloc((size_t)n * 24);
    for (int64_t i = 0; i < n; i++) {
      ids[i] = names + i * 24;
      snprintf(ids[i], 24, "u%lld", (long long)i);
      idx[i] = i;
    }
  }
  ts_sched_cb cb = {.ctx = &seen, .work = work, .on_result = on_result, .output_path = out_path,
                    .stage = "bench", .max_attempts = 1, .progress = false};
  MPI_Barrier(MPI_COMM_WORLD);
  double t0 = MPI_Wtime();
  int rc = ts_sched_stage(&cb, (const char *const *)ids, idx, NULL, rank == 0 ? n : 0);
  double dt = MPI_Wtime() - t0;
  if (rank == 0) {
    if (rc < 0 || seen != n) {
      fprintf(stderr, "bench_sched: %lld of %lld units reported (rc %d)\n", (long long)seen, (long long)n, rc);
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    printf("sched %d %lld %.6f\n", nranks, (long long)n, dt);
  }
  free(ids);
  free(idx);
  free(names);
  MPI_Finalize();
  return 0;
}
