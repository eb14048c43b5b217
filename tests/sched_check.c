/* sched_check.c — the scheduler under mpirun (driven by tests/it_sched.sh): sched_check DIR
 *
 * 2000 units that do nothing but: units with i % 13 == 5 fail with bad input (must not be
 * retried), units with i % 11 == 4 fail with an I/O error every time (must be tried exactly
 * max_attempts times), the rest succeed. Every fourth unit (i % 4 == 3) waits for the three
 * before it: it must run only after all three succeeded (it checks the marker files they left
 * in DIR) and fail with UPSTREAM_FAILED, without running, when one of them failed. Units with
 * i % 7 == 3 report i % 5 + 1 bad items, which must reach rank 0 intact. Rank 0 checks that
 * every unit is reported exactly once, with the right outcome and attempt count, and that
 * with N > 1 ranks every rank did work. */
#include <fcntl.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ts_error.h"
#include "ts_sched.h"

#define N 2000
#define MAX_ATTEMPTS 3

static int seen[N], outcome[N], attempts[N], by_rank[64], bad_ok[N];
static char dir[4096];

static bool waits(int i) { return i % 4 == 3; }
static bool fails_itself(int i) { return i % 13 == 5 || i % 11 == 4; }

static int work(void *ctx, int64_t idx, const char *id, ts_unit_record *rec) {
  (void)ctx;
  int i = atoi(id + 1);
  char p[4200];
  if (i != idx) return ts_error_set(TS_EINTERNAL, "MISMATCH", "idx %lld for %s", (long long)idx, id);
  if (waits(i))
    for (int j = i - 3; j < i; j++) {
      snprintf(p, sizeof p, "%s/u%d", dir, j);
      if (access(p, F_OK) != 0) return ts_error_set(TS_EINPUT, "ORDER", "unit %d ran before unit %d was done", i, j);
    }
  if (i % 13 == 5) return ts_error_set(TS_EINPUT, "BAD_INPUT", "unit %d is bad input", i);
  if (i % 11 == 4) return ts_error_set(TS_EIO, "FLAKY", "unit %d: I/O error", i);
  snprintf(p, sizeof p, "%s/u%d", dir, i);
  int fd = open(p, O_CREAT | O_WRONLY, 0644);
  if (fd < 0) return ts_error_set(TS_EIO, "MARKER", "cannot create %s", p);
  close(fd);
  if (i % 7 == 3) {
    rec->n_bad = i % 5 + 1;
    rec->bad = calloc((size_t)rec->n_bad, sizeof *rec->bad);
    if (!rec->bad) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "bad items");
    for (int k = 0; k < rec->n_bad; k++) {
      rec->bad[k] = (ts_bad_item){.item = (int64_t)i * 100 + k, .x = k, .y = i};
      snprintf(rec->bad[k].token, sizeof rec->bad[k].token, "BAD_%d", k);
    }
    snprintf(rec->bad_message, sizeof rec->bad_message, "unit %d: %d bad items", i, i % 5 + 1);
  }
  rec->items = 1;
  return 0;
}

static int on_result(void *ctx, const ts_sched_result *r) {
  (void)ctx;
  int i = (int)r->idx;
  seen[i]++;
  outcome[i] = r->ok ? 1 : !strcmp(r->token, "BAD_INPUT") ? 2 : !strcmp(r->token, "FLAKY") ? 3 : !strcmp(r->token, "UPSTREAM_FAILED") ? 5 : 4;
  if (outcome[i] == 4) printf("unit %d: unexpected failure %s: %s\n", i, r->token, r->message);
  attempts[i] = r->attempts;
  if (r->rank >= 0 && r->rank < 64) by_rank[r->rank]++;
  int want_bad = r->ok && i % 7 == 3 ? i % 5 + 1 : 0;
  bool ok = r->rec.n_bad == want_bad;
  for (int k = 0; ok && k < want_bad; k++) {
    char tok[16];
    snprintf(tok, sizeof tok, "BAD_%d", k);
    ok = r->rec.bad[k].item == (int64_t)i * 100 + k && r->rec.bad[k].x == k && r->rec.bad[k].y == i && !strcmp(r->rec.bad[k].token, tok);
  }
  if (ok && want_bad) {
    char msg[64];
    snprintf(msg, sizeof msg, "unit %d: %d bad items", i, want_bad);
    ok = !strcmp(r->rec.bad_message, msg);
  }
  bad_ok[i] = ok;
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
  if (argc < 2) {
    if (rank == 0) fprintf(stderr, "usage: sched_check DIR (a directory for marker files)\n");
    MPI_Finalize();
    return 2;
  }
  snprintf(dir, sizeof dir, "%s/np%d", argv[1], nranks);
  if (rank == 0) mkdir(dir, 0755);
  MPI_Barrier(MPI_COMM_WORLD);
  static char names[N][16];
  static int64_t then[N];
  static const char *ids[N];
  static int64_t idx[N];
  for (int i = 0; i < N; i++) {
    snprintf(names[i], sizeof names[i], "u%d", i);
    ids[i] = names[i];
    idx[i] = i;
    then[i] = waits(i) ? -1 : i - i % 4 + 3 < N ? i - i % 4 + 3 : -1;
  }
  ts_sched_cb cb = {.work = work, .on_result = on_result, .output_path = out_path, .stage = "check",
                    .max_attempts = MAX_ATTEMPTS, .progress = false};
  double t0 = MPI_Wtime();
  int rc = ts_sched_stage(&cb, ids, idx, then, rank == 0 ? N : 0);
  double dt = MPI_Wtime() - t0;
  int passed = 0, failed = 0;
  if (rank == 0) {
#define CHECK(cond, ...) do { if (cond) passed++; else { failed++; printf("FAIL - " __VA_ARGS__); printf("\n"); } } while (0)
    CHECK(rc == 0, "scheduler returned %d: %s", rc, ts_error_message());
    int once = 0, right = 0, tries = 0, bads = 0, upstream = 0, merged = 0;
    for (int i = 0; i < N; i++) {
      once += seen[i] == 1;
      bool dep_failed = false;
      for (int j = i - 3; waits(i) && j < i; j++) dep_failed |= fails_itself(j);
      int want = dep_failed ? 5 : i % 13 == 5 ? 2 : i % 11 == 4 ? 3 : 1;
      right += outcome[i] == want;
      upstream += want == 5;
      merged += waits(i) && want == 1;
      int want_attempts = want == 3 ? MAX_ATTEMPTS : want == 5 ? 0 : 1;
      tries += attempts[i] == want_attempts;
      bads += bad_ok[i];
    }
    CHECK(once == N, "%d of %d units reported exactly once", once, N);
    CHECK(right == N, "%d of %d units with the expected outcome (%d waiting units ran after their three, %d failed upstream)", right, N, merged, upstream);
    CHECK(upstream > 10 && merged > 10, "both kinds of waiting unit occur (%d ran, %d failed upstream)", merged, upstream);
    CHECK(tries == N, "%d of %d units with the expected attempt count (bad input never retried)", tries, N);
    CHECK(bads == N, "%d of %d units with their bad items intact", bads, N);
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
