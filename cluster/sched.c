/* sched.c — dynamic unit dispatch over MPI (see ts_sched.h).
 *
 * Why a thread on rank 0 instead of a dedicated coordinator rank: on a 2-core node a rank that
 * only coordinates wastes half the machine, and the issue asks every rank to work. Only rank
 * 0's main thread calls MPI (MPI_THREAD_FUNNELED suffices); its worker thread talks to it
 * through a mutex-protected queue.
 *
 * Why polling with sleeps: Open MPI's blocking receive spins at 100% CPU. Waiting ranks would
 * steal the core that a worker on the same node needs, so we poll with MPI_Test/MPI_Iprobe and
 * nanosleep, backing off from 20 us to 1 ms. */
#include "ts_sched.h"

#include <mpi.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ts_error.h"
#include "ts_io.h"
#include "ts_stop.h"

enum { TAG_REQUEST = 7101, TAG_UNIT = 7102 };

/* Most bad items one unit reports (64 MB of message); the unit's own output lists them all. */
#define MAX_BAD (1 << 20)

/* Wire format of a request (worker → rank 0): a fixed header (~2.8 KB) and n_bad items. */
typedef struct wire_result {
  int64_t has_result, idx, bytes, items, ok, attempts, code, n_bad;
  double seconds;
  int64_t n_more;
  char output[1024], checksum[65], token[64], message[1024], bad_message[512], note[256];
  ts_unit_file more[TS_UNIT_MAX_OUTPUTS - 1];
  ts_bad_item bad[];
} wire_result;

typedef struct wire_unit {
  int64_t idx; /* -1: stage over */
  char id[256];
} wire_unit;

static size_t wire_size(int64_t n_bad) { return sizeof(wire_result) + (size_t)n_bad * sizeof(ts_bad_item); }

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void backoff_sleep(long *ns) {
  struct timespec t = {0, *ns};
  nanosleep(&t, NULL);
  *ns = *ns * 2 > 1000000 ? 1000000 : *ns * 2;
}

static int mpi_fail(int e, const char *what) {
  char s[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(e, s, &len);
  return ts_error_set(TS_EIO, "MPI_ERROR", "%s: %s", what, s);
}

/* Make *buf (capacity *cap bytes) hold at least `need` bytes; keeps it when large enough, so
 * that a rank reuses one buffer unit after unit (a malloc/free of ~3 KB per unit, freed on
 * another thread than the one that allocated it, halved the dispatch rate). */
static bool wire_reserve(wire_result **buf, size_t *cap, size_t need) {
  if (*buf && *cap >= need) return true;
  wire_result *n = realloc(*buf, need);
  if (!n) return false;
  *buf = n;
  *cap = need;
  return true;
}

/* Run one unit here; its result into *buf (grown as needed; abort on no memory at all: the
 * scheduler cannot go on without a result to report). */
static void do_unit(const ts_sched_cb *cb, int64_t idx, const char *id, wire_result **buf, size_t *cap) {
  ts_unit_record rec;
  memset(&rec, 0, sizeof rec);
  ts_error_clear();
  double t0 = now_s();
  int rc = cb->work(cb->ctx, idx, id, &rec);
  if (rc >= 0 && rec.output[0]) {
    char abs[TS_PATH_MAX];
    rc = cb->output_path(cb->ctx, rec.output, abs, sizeof abs);
    if (rc >= 0) rc = ts_io_sha256_file(abs, rec.checksum, &rec.bytes);
  }
  for (int k = 0; rc >= 0 && k < rec.n_more && k < TS_UNIT_MAX_OUTPUTS - 1; k++) {
    char abs[TS_PATH_MAX];
    rc = cb->output_path(cb->ctx, rec.more[k].path, abs, sizeof abs);
    if (rc >= 0) rc = ts_io_sha256_file(abs, rec.more[k].checksum, &rec.more[k].bytes);
  }
  int64_t nb = rc >= 0 && rec.bad && rec.n_bad > 0 ? rec.n_bad : 0;
  if (nb > MAX_BAD) nb = MAX_BAD;
  if (!wire_reserve(buf, cap, wire_size(nb))) {
    nb = 0;
    rc = ts_error_set(TS_ENOMEM, "NO_MEMORY", "unit %s: reporting %lld bad items", id, (long long)rec.n_bad);
    if (!wire_reserve(buf, cap, wire_size(0))) abort();
  }
  wire_result *w = *buf;
  memset(w, 0, sizeof *w); /* the header; the bad items follow */
  w->has_result = 1;
  w->idx = idx;
  w->seconds = now_s() - t0;
  if (rc >= 0) {
    w->ok = 1;
    w->bytes = rec.bytes;
    w->items = rec.items;
    memcpy(w->output, rec.output, sizeof w->output);
    memcpy(w->checksum, rec.checksum, sizeof w->checksum);
    w->n_bad = nb;
    if (nb) memcpy(w->bad, rec.bad, (size_t)nb * sizeof *w->bad);
    w->n_more = rec.n_more < 0 ? 0 : rec.n_more > TS_UNIT_MAX_OUTPUTS - 1 ? TS_UNIT_MAX_OUTPUTS - 1 : rec.n_more;
    memcpy(w->more, rec.more, sizeof w->more);
    memcpy(w->note, rec.note, sizeof w->note);
    w->note[sizeof w->note - 1] = '\0';
    memcpy(w->bad_message, rec.bad_message, sizeof w->bad_message);
    w->bad_message[sizeof w->bad_message - 1] = '\0';
  } else {
    w->ok = 0;
    w->code = rc;
    snprintf(w->token, sizeof w->token, "%s", ts_error_token()[0] ? ts_error_token() : "UNIT_FAILED");
    snprintf(w->message, sizeof w->message, "%s", ts_error_message()[0] ? ts_error_message() : "unit failed without a message");
  }
  free(rec.bad);
}

/* ---------------- worker ranks ---------------- */

/* Units run on a worker thread on every rank (rank 0's is below), never on a main thread: the
 * same code path everywhere, so a unit's numbers cannot depend on the rank that ran it (LibTorch
 * measurably rounds differently on a process's main thread and on a pthread), and the main
 * thread stays free for MPI. */
typedef struct runner {
  const ts_sched_cb *cb;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool has_unit, done, quit;
  wire_unit u;
  wire_result *w; /* result of the unit just done; the main thread sends it before the next */
  size_t cap;
} runner;

static void *runner_main(void *arg) {
  runner *r = arg;
  pthread_mutex_lock(&r->mu);
  for (;;) {
    while (!r->has_unit && !r->quit) pthread_cond_wait(&r->cv, &r->mu);
    if (r->quit) break;
    wire_unit u = r->u;
    pthread_mutex_unlock(&r->mu);
    do_unit(r->cb, u.idx, u.id, &r->w, &r->cap); /* the main thread waits meanwhile */
    pthread_mutex_lock(&r->mu);
    r->has_unit = false;
    r->done = true;
    pthread_cond_broadcast(&r->cv);
  }
  pthread_mutex_unlock(&r->mu);
  return NULL;
}

static int worker_loop(const ts_sched_cb *cb) {
  runner *r = calloc(1, sizeof *r);
  if (!r) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "worker");
  r->cb = cb;
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->cv, NULL);
  pthread_t th;
  r->w = calloc(1, wire_size(0)); /* the first request carries no result */
  r->cap = wire_size(0);
  if (!r->w) {
    free(r);
    return ts_error_set(TS_ENOMEM, "NO_MEMORY", "worker");
  }
  bool th_ok = pthread_create(&th, NULL, runner_main, r) == 0;
  int rc = 0;
  for (;;) {
    int e = MPI_Send(r->w, (int)wire_size(r->w->n_bad), MPI_BYTE, 0, TAG_REQUEST, MPI_COMM_WORLD);
    if (e != MPI_SUCCESS) { rc = mpi_fail(e, "send request"); break; }
    wire_unit u;
    MPI_Request req;
    e = MPI_Irecv(&u, (int)sizeof u, MPI_BYTE, 0, TAG_UNIT, MPI_COMM_WORLD, &req);
    if (e != MPI_SUCCESS) { rc = mpi_fail(e, "receive unit"); break; }
    long ns = 20000;
    for (int flag = 0;;) {
      e = MPI_Test(&req, &flag, MPI_STATUS_IGNORE);
      if (e != MPI_SUCCESS || flag) break;
      backoff_sleep(&ns);
    }
    if (e != MPI_SUCCESS) { rc = mpi_fail(e, "wait unit"); break; }
    if (u.idx < 0) break;
    u.id[sizeof u.id - 1] = '\0';
    if (!th_ok) { /* no thread: run it here */
      do_unit(cb, u.idx, u.id, &r->w, &r->cap);
      continue;
    }
    pthread_mutex_lock(&r->mu);
    r->u = u;
    r->has_unit = true;
    r->done = false;
    pthread_cond_broadcast(&r->cv);
    while (!r->done) pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
  }
  if (th_ok) {
    pthread_mutex_lock(&r->mu);
    r->quit = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(th, NULL);
  }
  pthread_mutex_destroy(&r->mu);
  pthread_cond_destroy(&r->cv);
  free(r->w);
  free(r);
  return rc;
}

/* ---------------- rank 0 ---------------- */

typedef struct local_item { wire_result *w; size_t cap; struct local_item *next; } local_item;

typedef struct coord {
  const ts_sched_cb *cb;
  const char *const *ids;
  const int64_t *idx;
  const int64_t *then;       /* NULL or the unit waiting for each unit */
  int64_t n;
  /* deque of positions (0..n-1) to hand out: released dependents go to the front */
  int64_t *queue, qhead, qtail, qcap;
  int *attempts;
  int64_t *wait;             /* prerequisites not over yet (main thread only) */
  bool *closed;              /* per unit: reported, or abandoned by a stop (main thread only) */
  char **dep_fail;           /* why a waiting unit cannot run, NULL (main thread only) */
  pthread_mutex_t mu;
  pthread_cond_t cv_queue;   /* local worker waits for work or the end */
  bool over;
  local_item *results;       /* local worker's finished units */
  local_item *spare;         /* handled items, for the local worker to reuse */
  /* progress */
  int64_t done, failed, items, stopped;
  double t0, last_print;
} coord;

static int64_t q_slot(const coord *c, int64_t i) { return ((i % c->qcap) + c->qcap) % c->qcap; }
static bool q_pop(coord *c, int64_t *pos) {
  if (c->qhead == c->qtail) return false;
  *pos = c->queue[q_slot(c, c->qhead++)];
  return true;
}
static void q_push(coord *c, int64_t pos) { c->queue[q_slot(c, c->qtail++)] = pos; }
static void q_push_front(coord *c, int64_t pos) { c->queue[q_slot(c, --c->qhead)] = pos; }
/* Main thread: queue pos for the workers (the local one is woken). */
static void enqueue(coord *c, int64_t pos, bool front) {
  pthread_mutex_lock(&c->mu);
  if (front) q_push_front(c, pos);
  else q_push(c, pos);
  pthread_cond_signal(&c->cv_queue);
  pthread_mutex_unlock(&c->mu);
}

static void *local_worker(void *arg) {
  coord *c = arg;
  for (;;) {
    int64_t pos;
    pthread_mutex_lock(&c->mu);
    while (!c->over && c->qhead == c->qtail) pthread_cond_wait(&c->cv_queue, &c->mu);
    if (!q_pop(c, &pos)) { /* over */
      pthread_mutex_unlock(&c->mu);
      return NULL;
    }
    local_item *it = c->spare;
    if (it) c->spare = it->next;
    pthread_mutex_unlock(&c->mu);
    if (!it && !(it = calloc(1, sizeof *it))) abort(); /* out of memory in the scheduler is not recoverable */
    do_unit(c->cb, pos, c->ids[pos], &it->w, &it->cap);
    pthread_mutex_lock(&c->mu);
    it->next = c->results;
    c->results = it;
    pthread_mutex_unlock(&c->mu);
  }
}

static void progress(coord *c, bool final) {
  if (!c->cb->progress) return;
  double t = now_s();
  bool tty = isatty(2);
  /* a terminal gets a bar redrawn in place; a log file (Slurm) a line every few seconds */
  if (!final && t - c->last_print < (tty ? 0.2 : 5.0)) return;
  if (tty) {
    c->last_print = t;
    double el = t - c->t0;
    int64_t fin = c->done + c->failed;
    double rate = el > 0 ? (double)fin / el : 0;
    int w = 30, fill = c->n ? (int)(w * fin / c->n) : w;
    char bar[64];
    for (int i = 0; i < w; i++) bar[i] = i < fill ? '#' : '.';
    bar[w] = '\0';
    char tput[64] = "";
    if (c->cb->items_unit) snprintf(tput, sizeof tput, "  %.1f %s/s", el > 0 ? (double)c->items / el : 0.0, c->cb->items_unit);
    fprintf(stderr, "\r%-8s [%s] %lld/%lld units  %lld failed%s  ETA %.0f s   %s", c->cb->stage, bar, (long long)fin,
            (long long)c->n, (long long)c->failed, tput, rate > 0 ? (double)(c->n - fin) / rate : 0.0, final ? "\n" : "");
    return;
  }
  c->last_print = t;
  double el = t - c->t0;
  int64_t fin = c->done + c->failed;
  double rate = el > 0 ? (double)fin / el : 0;
  double eta = rate > 0 ? (double)(c->n - fin) / rate : 0;
  char tput[64] = "";
  if (c->cb->items_unit) snprintf(tput, sizeof tput, ", %.1f %s/s", el > 0 ? (double)c->items / el : 0.0, c->cb->items_unit);
  fprintf(stderr, "%s: %lld/%lld units (%lld failed)%s, %.0f s elapsed%s", c->cb->stage, (long long)fin, (long long)c->n,
          (long long)c->failed, tput, el, final ? "\n" : "");
  if (!final) fprintf(stderr, ", ETA %.0f s\n", eta);
}

/* Unit pos is over: done (outcome 1), failed for good (0, why says how) or abandoned because
 * the run stops (-1). The unit waiting for it, if any, learns it: it runs when all it waits for
 * is done, fails with UPSTREAM_FAILED when something it waits for failed, and is abandoned
 * (left pending for the next run) with it. Main thread only. */
static int release(coord *c, int64_t pos, int outcome, const char *why, int64_t *resolved) {
  while (c->then && c->then[pos] >= 0) {
    int64_t d = c->then[pos];
    if (c->closed[d]) return 0;
    if (outcome < 0) { /* abandoned with it */
      c->closed[d] = true;
      c->stopped++;
      (*resolved)++;
      pos = d;
      continue;
    }
    if (outcome == 0 && !c->dep_fail[d]) {
      char buf[1400];
      snprintf(buf, sizeof buf, "waits for unit %s, which failed: %.1200s", c->ids[pos], why);
      c->dep_fail[d] = strdup(buf);
      if (!c->dep_fail[d]) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "scheduler");
    }
    if (--c->wait[d] > 0) return 0;
    if (!c->dep_fail[d]) { /* ready: ahead of the queue, so that it does not wait behind new work */
      enqueue(c, d, true);
      return 0;
    }
    /* fails without running */
    c->closed[d] = true;
    ts_sched_result r;
    memset(&r, 0, sizeof r);
    r.idx = c->idx[d];
    r.id = c->ids[d];
    r.rank = -1;
    snprintf(r.token, sizeof r.token, "UPSTREAM_FAILED");
    snprintf(r.message, sizeof r.message, "UPSTREAM_FAILED: unit %s %s", c->ids[d], c->dep_fail[d]);
    c->failed++;
    (*resolved)++;
    TS_CALL(c->cb->on_result(c->cb->ctx, &r));
    why = r.message;
    outcome = 0;
    pos = d;
  }
  return 0;
}

/* A result arrived (rank r, position pos). Returns <0 if the ledger failed. */
static int handle(coord *c, int rank, const wire_result *w, int64_t *resolved) {
  int64_t pos = w->idx;
  if (pos < 0 || pos >= c->n || c->closed[pos])
    return ts_error_set(TS_EINTERNAL, "SCHED_PROTOCOL", "rank %d reported unit %lld, which is not running", rank, (long long)pos);
  if (!w->ok && w->code == TS_ESTOP) { /* interrupted: stays pending for the next run */
    ts_stop_request(ts_stop_signal()); /* one rank was told to stop: the whole run stops */
    c->closed[pos] = true;
    c->stopped++;
    (*resolved)++;
    return release(c, pos, -1, NULL, resolved);
  }
  c->attempts[pos]++;
  /* Bad input (TS_EINPUT) and bad settings (TS_ECONFIG) fail the same way every time: only
   * other failures (I/O, memory, library) are worth another attempt. */
  bool retryable = w->code != TS_EINPUT && w->code != TS_ECONFIG;
  if (!w->ok && retryable && c->attempts[pos] < c->cb->max_attempts) {
    enqueue(c, pos, false);
    return 0;
  }
  c->closed[pos] = true;
  ts_sched_result r;
  memset(&r, 0, sizeof r);
  r.idx = c->idx[pos];
  r.id = c->ids[pos];
  r.ok = w->ok != 0;
  r.rank = rank;
  r.attempts = c->attempts[pos];
  r.seconds = w->seconds;
  if (r.ok) {
    memcpy(r.rec.output, w->output, sizeof r.rec.output);
    memcpy(r.rec.checksum, w->checksum, sizeof r.rec.checksum);
    memcpy(r.rec.bad_message, w->bad_message, sizeof r.rec.bad_message);
    r.rec.output[sizeof r.rec.output - 1] = r.rec.checksum[64] = r.rec.bad_message[sizeof r.rec.bad_message - 1] = '\0';
    r.rec.bytes = w->bytes;
    r.rec.n_more = (int)w->n_more;
    memcpy(r.rec.more, w->more, sizeof r.rec.more);
    for (int k = 0; k < TS_UNIT_MAX_OUTPUTS - 1; k++) r.rec.more[k].path[sizeof r.rec.more[k].path - 1] = r.rec.more[k].checksum[64] = '\0';
    memcpy(r.rec.note, w->note, sizeof r.rec.note);
    r.rec.note[sizeof r.rec.note - 1] = '\0';
    r.rec.items = w->items;
    r.rec.seconds = w->seconds;
    r.rec.n_bad = w->n_bad;
    r.rec.bad = w->n_bad ? (ts_bad_item *)w->bad : NULL;
    c->done++;
    c->items += w->items;
  } else {
    snprintf(r.token, sizeof r.token, "%s", w->token);
    snprintf(r.message, sizeof r.message, "%s", w->message);
    c->failed++;
  }
  (*resolved)++;
  progress(c, false);
  TS_CALL(c->cb->on_result(c->cb->ctx, &r));
  char why[1200];
  snprintf(why, sizeof why, "%s: %.1100s", r.token, r.message);
  return release(c, pos, r.ok ? 1 : 0, why, resolved);
}

/* Receive the request a rank sent (its size is known from the probe) into *buf (reused). */
static int recv_request(const MPI_Status *st, wire_result **buf, size_t *cap) {
  int count = 0;
  int e = MPI_Get_count(st, MPI_BYTE, &count);
  if (e != MPI_SUCCESS) return mpi_fail(e, "request size");
  if (count < (int)sizeof(wire_result)) return ts_error_set(TS_EINTERNAL, "SCHED_PROTOCOL", "request of %d bytes from rank %d", count, st->MPI_SOURCE);
  if (!wire_reserve(buf, cap, (size_t)count)) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "request of %d bytes", count);
  e = MPI_Recv(*buf, count, MPI_BYTE, st->MPI_SOURCE, TAG_REQUEST, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  if (e != MPI_SUCCESS) return mpi_fail(e, "receive request");
  if ((*buf)->n_bad < 0 || (*buf)->n_more < 0 || (*buf)->n_more > TS_UNIT_MAX_OUTPUTS - 1 || wire_size((*buf)->n_bad) != (size_t)count)
    return ts_error_set(TS_EINTERNAL, "SCHED_PROTOCOL", "malformed request from rank %d", st->MPI_SOURCE);
  return 0;
}

/* then[] must point inside the plan and have no cycle (a unit waiting on itself would never run). */
static int check_deps(const int64_t *then, int64_t n) {
  if (!then) return 0;
  int64_t *mark = calloc((size_t)(n ? n : 1), sizeof *mark);
  if (!mark) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "scheduler");
  int rc = 0;
  for (int64_t i = 0; i < n && rc == 0; i++) {
    int64_t j = i;
    while (j >= 0 && !mark[j]) {
      mark[j] = i + 1;
      if (then[j] < -1 || then[j] >= n) {
        rc = ts_error_set(TS_EINTERNAL, "SCHED_DEPS", "unit %lld waits-for link points outside the plan", (long long)j);
        break;
      }
      j = then[j];
    }
    if (rc == 0 && j >= 0 && mark[j] == i + 1)
      rc = ts_error_set(TS_EINTERNAL, "SCHED_DEPS", "units wait for each other in a cycle (through unit %lld)", (long long)j);
  }
  free(mark);
  return rc;
}

static int coordinator(const ts_sched_cb *cb, const char *const *ids, const int64_t *idx, const int64_t *then, int64_t n) {
  int nranks = 1, rc = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &nranks);
  coord c;
  memset(&c, 0, sizeof c);
  c.cb = cb;
  c.ids = ids;
  c.idx = idx;
  c.then = then;
  c.n = n;
  c.qcap = n * (cb->max_attempts > 0 ? cb->max_attempts : 1) + 1;
  c.queue = malloc(sizeof *c.queue * (size_t)c.qcap);
  size_t nn = (size_t)(n ? n : 1);
  c.attempts = calloc(nn, sizeof *c.attempts);
  c.wait = calloc(nn, sizeof *c.wait);
  c.closed = calloc(nn, sizeof *c.closed);
  c.dep_fail = calloc(nn, sizeof *c.dep_fail);
  bool *waiting = calloc((size_t)nranks, sizeof *waiting);
  if (!c.queue || !c.attempts || !c.wait || !c.closed || !c.dep_fail || !waiting) {
    free(c.queue); free(c.attempts); free(c.wait); free(c.closed); free(c.dep_fail); free(waiting);
    return ts_error_set(TS_ENOMEM, "NO_MEMORY", "scheduler queue of %lld units", (long long)n);
  }
  pthread_mutex_init(&c.mu, NULL);
  pthread_cond_init(&c.cv_queue, NULL);
  c.t0 = c.last_print = now_s();
  pthread_t th;
  bool th_ok = false;
  int64_t resolved = 0;
  long ns = 20000;
  wire_result *rbuf = NULL; /* requests of other ranks (and inline units), reused */
  size_t rcap = 0;
  if ((rc = check_deps(then, n)) < 0) goto finish;
  for (int64_t i = 0; then && i < n; i++)
    if (then[i] >= 0) c.wait[then[i]]++;
  for (int64_t i = 0; i < n; i++)
    if (!c.wait[i]) q_push(&c, i);
  th_ok = pthread_create(&th, NULL, local_worker, &c) == 0;
  if (!th_ok) fprintf(stderr, "%s: warning: no worker thread on rank 0; other ranks do the work\n", cb->stage);
  if (!th_ok && nranks == 1) {
    /* run inline */
    int64_t pos;
    while (rc >= 0 && q_pop(&c, &pos)) {
      do_unit(cb, pos, ids[pos], &rbuf, &rcap);
      rc = handle(&c, 0, rbuf, &resolved);
    }
    goto finish;
  }

  while (resolved < n) {
    bool busy = false;
    /* results of the local worker */
    pthread_mutex_lock(&c.mu);
    local_item *list = c.results;
    c.results = NULL;
    pthread_mutex_unlock(&c.mu);
    while (list) {
      local_item *next = list->next;
      if (rc >= 0) rc = handle(&c, 0, list->w, &resolved);
      pthread_mutex_lock(&c.mu); /* back to the local worker, buffer and all */
      list->next = c.spare;
      c.spare = list;
      pthread_mutex_unlock(&c.mu);
      list = next;
      busy = true;
    }
    if (rc < 0) break;
    /* requests of other ranks */
    for (;;) {
      int flag = 0;
      MPI_Status st;
      int e = MPI_Iprobe(MPI_ANY_SOURCE, TAG_REQUEST, MPI_COMM_WORLD, &flag, &st);
      if (e != MPI_SUCCESS) { rc = mpi_fail(e, "probe"); break; }
      if (!flag) break;
      if ((rc = recv_request(&st, &rbuf, &rcap)) < 0) break;
      busy = true;
      waiting[st.MPI_SOURCE] = true;
      if (rbuf->has_result) rc = handle(&c, st.MPI_SOURCE, rbuf, &resolved);
      if (rc < 0) break;
    }
    if (rc < 0) break;
    if (ts_stop_requested()) { /* hand out nothing more; what is queued stays pending */
      int64_t pos;
      for (;;) {
        pthread_mutex_lock(&c.mu);
        bool got = q_pop(&c, &pos);
        pthread_mutex_unlock(&c.mu);
        if (!got) break;
        c.closed[pos] = true;
        c.stopped++;
        resolved++;
        release(&c, pos, -1, NULL, &resolved);
      }
    }
    /* hand work to waiting ranks */
    for (int r = 1; r < nranks; r++) {
      if (!waiting[r]) continue;
      int64_t pos;
      pthread_mutex_lock(&c.mu);
      bool got = q_pop(&c, &pos);
      pthread_mutex_unlock(&c.mu);
      if (!got) break;
      wire_unit u = {.idx = pos};
      snprintf(u.id, sizeof u.id, "%s", ids[pos]);
      int e = MPI_Send(&u, (int)sizeof u, MPI_BYTE, r, TAG_UNIT, MPI_COMM_WORLD);
      if (e != MPI_SUCCESS) { rc = mpi_fail(e, "send unit"); break; }
      waiting[r] = false;
      busy = true;
    }
    if (rc < 0) break;
    if (busy) ns = 20000;
    else backoff_sleep(&ns);
  }

finish:
  pthread_mutex_lock(&c.mu);
  c.over = true;
  c.qhead = c.qtail; /* on error: drop what is left */
  pthread_cond_broadcast(&c.cv_queue);
  pthread_mutex_unlock(&c.mu);
  if (th_ok) pthread_join(th, NULL);
  /* results the local worker finished while we were stopping (error path only) */
  for (int k = 0; k < 2; k++)
    for (local_item *it = k ? c.spare : c.results, *next; it; it = next) {
      next = it->next;
      free(it->w);
      free(it);
    }
  /* every other rank has one request outstanding or on its way: answer it with "over" */
  for (int r = 1; r < nranks; r++) {
    if (!waiting[r]) {
      long wns = 20000;
      for (int flag = 0;;) {
        MPI_Status st;
        if (MPI_Iprobe(r, TAG_REQUEST, MPI_COMM_WORLD, &flag, &st) != MPI_SUCCESS) break;
        if (flag) {
          int e = recv_request(&st, &rbuf, &rcap);
          if (e < 0 && rc >= 0) rc = e;
          break;
        }
        backoff_sleep(&wns);
      }
    }
    wire_unit u = {.idx = -1};
    MPI_Send(&u, (int)sizeof u, MPI_BYTE, r, TAG_UNIT, MPI_COMM_WORLD);
  }
  progress(&c, true);
  if (c.stopped && cb->progress)
    fprintf(stderr, "%s: stopped by signal %d: %lld unit(s) left pending for the next run\n", cb->stage,
            ts_stop_signal(), (long long)c.stopped);
  pthread_mutex_destroy(&c.mu);
  pthread_cond_destroy(&c.cv_queue);
  for (int64_t i = 0; i < n; i++) free(c.dep_fail[i]);
  free(c.dep_fail);
  free(rbuf);
  free(c.queue);
  free(c.attempts);
  free(c.wait);
  free(c.closed);
  free(waiting);
  return rc;
}

int ts_sched_stage(const ts_sched_cb *cb, const char *const *ids, const int64_t *idx, const int64_t *then,
                   int64_t n) {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank == 0 ? coordinator(cb, ids, idx, then, n) : worker_loop(cb);
}
