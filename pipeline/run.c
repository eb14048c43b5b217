/* run.c — `tessera run CONFIG`: the driver. Rank 0 resolves the config, prepares the run
 * directory and the ledger, and plans each stage; every rank then works through the stage's
 * units with the scheduler (cluster/sched.c). Stage by stage, in registry order.
 *
 * Resume semantics: a stage's hash covers the config keys it declares and the hashes of the
 * stages it needs. Same hash → only units not recorded done run. Different hash → all of the
 * stage's units are forgotten and redone (and, through the chained hash, every later stage). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ts_cli.h"
#include "ts_comm.h"
#include "ts_config.h"
#include "ts_error.h"
#include "ts_io.h"
#include "ts_ledger.h"
#include "ts_run_impl.h"
#include "ts_sched.h"
#include "ts_stage.h"
#include "ts_stop.h"
#include "ts_version.h"

static void run_usage_short(FILE *f) {
  fprintf(f,
          "usage: tessera run CONFIG.yaml [--set section.key=value ...] [--stages a,b | --until STAGE]\n"
          "                   [--reconfigure] [--quiet]\n"
          "       mpirun -np N tessera run CONFIG.yaml ...     (srun --mpi=pmix under Slurm)\n"
          "tessera run --help lists the options and every config key.\n");
}

static void run_usage(FILE *f) {
  fprintf(f,
          "usage: tessera run CONFIG.yaml [--set section.key=value ...] [--stages a,b | --until STAGE]\n"
          "                   [--reconfigure] [--quiet]\n"
          "       mpirun -np N tessera run CONFIG.yaml ...     (srun --mpi=pmix under Slurm)\n\n"
          "Runs the stages of the pipeline on the cohort of CONFIG. Outputs, the resolved config\n"
          "and the ledger go to run.dir. Running again does only what is missing; a changed config\n"
          "section, cohort row or input file redoes exactly the units that depend on it (a changed\n"
          "config needs --reconfigure on an existing run).\n\n"
          "options:\n"
          "  --set section.key=value  override one config value (validated like the file)\n"
          "  --stages a,b             run only these stages (their inputs must be done); the report\n"
          "                           is always written\n"
          "  --until STAGE            run the stages up to and including STAGE\n"
          "  --reconfigure            accept a config that differs from the run directory's\n"
          "  --quiet                  no progress lines\n\n"
          "stages, in order:");
  for (int i = 0; ts_stages[i]; i++) fprintf(f, "%s %s", i ? "," : "", ts_stages[i]->name);
  fprintf(f, "\n\nconfig keys:\n");
  ts_config_print_schema(f);
  fprintf(f, "\nexit codes: 0 all units done, 1 some units failed (the rest completed), 2 usage or config error\n"
             "            (nothing was run), 3 stopped by SIGTERM/SIGINT (units in flight stay pending: run\n"
             "            again to resume)\n");
}

typedef struct run_state {
  ts_run run;
  const struct ts_stage *stage;
  char stage_hash[65];
  int64_t n_failed_now;
  bool quiet;
  ts_ledger *ledger; /* rank 0 */
  ts_run_record record;
} run_state;

static int bcast_text(char **s, int rank) {
  long long len = (rank == 0 && *s) ? (long long)strlen(*s) + 1 : 0;
  MPI_Bcast(&len, 1, MPI_LONG_LONG, 0, MPI_COMM_WORLD);
  if (rank != 0) {
    free(*s);
    *s = len ? malloc((size_t)len) : NULL;
    if (len && !*s) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "broadcast");
  }
  if (len) MPI_Bcast(*s, (int)len, MPI_CHAR, 0, MPI_COMM_WORLD);
  return 0;
}

static int cb_work(void *ctx, int64_t pos, const char *id, ts_unit_record *rec) {
  run_state *s = ctx;
  ts_unit u = {.idx = pos, .id = id};
  return s->stage->work(&s->run, &u, rec);
}

static int cb_output(void *ctx, const char *rel, char *buf, size_t n) {
  run_state *s = ctx;
  return ts_run_path(&s->run, rel, buf, n);
}

static int cb_result(void *ctx, const ts_sched_result *r) {
  run_state *s = ctx;
  if (r->ok) {
    TS_CALL(ts_ledger_unit_done(s->ledger, s->stage->name, r->id, r->rank, r->attempts, s->run.run_id, &r->rec));
    if (r->rec.n_bad > 0 && !s->quiet)
      fprintf(stderr, "%s: unit %s done with %lld bad item(s), recorded: %s\n", s->stage->name, r->id, (long long)r->rec.n_bad,
              r->rec.bad_message);
    if (r->rec.note[0]) fprintf(stderr, "%s: warning: unit %s: %s\n", s->stage->name, r->id, r->rec.note);
    return s->stage->unit_done ? s->stage->unit_done(&s->run, r->id) : 0;
  }
  s->n_failed_now++;
  fprintf(stderr, "%s: unit %s failed on rank %d after %d attempt(s): %s\n", s->stage->name, r->id, r->rank,
          r->attempts, r->message);
  return ts_ledger_unit_failed(s->ledger, s->stage->name, r->id, r->rank, r->attempts, s->run.run_id,
                               r->seconds, r->token, r->message);
}

/* Rank 0: hash of a stage = its config keys + the hashes of the stages it needs. */
static void stage_hash(const ts_run *run, const struct ts_stage *st, char (*hashes)[65], char out[65]) {
  char keys[65], buf[64 * 70 + 200];
  ts_config_hash_keys(run->cfg, st->config_keys, keys);
  int n = snprintf(buf, sizeof buf, "%s:%s", st->name, keys);
  const char *all[64 + 16];
  int n_all = 0;
  for (int k = 0; st->needs && st->needs[k] && n_all < 64; k++) all[n_all++] = st->needs[k];
  if (st->needs_for) n_all += st->needs_for(run->cfg, all + n_all, 16);
  for (int k = 0; k < n_all; k++)
    for (int j = 0; ts_stages[j] && j < 64; j++)
      if (!strcmp(ts_stages[j]->name, all[k]) && n < (int)sizeof buf - 70)
        n += snprintf(buf + n, sizeof buf - (size_t)n, "|%s", hashes[j]);
  ts_io_sha256(buf, strlen(buf), out);
}

static int dir_entries(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  int n = 0;
  for (struct dirent *e; (e = readdir(d));)
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
  closedir(d);
  return n;
}

/* Remove our own temporaries ("<name>.tmp.<pid>") that a killed run left in the run directory
 * (and its subdirectories, three levels down: scratch/extract/<slide>/). They were never outputs — only a committed rename
 * makes a file an output — so this loses nothing; it only frees the space. */
static void remove_stale_tmp(const char *dir, int depth) {
  DIR *d = opendir(dir);
  if (!d) return;
  for (struct dirent *e; (e = readdir(d));) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    char p[TS_PATH_MAX];
    if (ts_io_join(dir, e->d_name, p, sizeof p) < 0) continue;
    struct stat st;
    if (lstat(p, &st) < 0) continue;
    if (S_ISDIR(st.st_mode) && depth > 0) remove_stale_tmp(p, depth - 1);
    else if (S_ISREG(st.st_mode) && strstr(e->d_name, ".tmp.")) unlink(p);
  }
  closedir(d);
}

/* Rank 0: prepare the run directory, after the config and the cohort were validated (so that
 * a wrong path leaves nothing behind). Returns TS_ECONFIG for anything the user must fix.
 * The lock comes first, the emptiness check after it: two runs started at once on a new
 * directory then give the loser RUN_LOCKED, never RUN_DIR_NOT_EMPTY (it saw the winner's lock
 * file). When this call made the directory and fails, it removes what it made. */
static int prepare_dir(const ts_config *cfg, bool reconfigure, int *lock_fd, bool *created_out) {
  const char *dir = cfg->run.dir;
  char path[TS_PATH_MAX], lock[TS_PATH_MAX];
  bool exists = ts_io_exists(dir);
  *created_out = false;
  TS_CALL(ts_io_mkdirs(dir, 0755));
  *created_out = !exists;
  TS_CALL(ts_io_join(dir, ".lock", lock, sizeof lock));
  bool lock_existed = ts_io_exists(lock);
  *lock_fd = open(lock, O_CREAT | O_RDWR, 0644);
  if (*lock_fd < 0 || flock(*lock_fd, LOCK_EX | LOCK_NB) < 0) {
    if (*lock_fd >= 0) close(*lock_fd);
    *lock_fd = -1;
    *created_out = false; /* the other run owns it now */
    return ts_error_set(TS_ECONFIG, "RUN_LOCKED", "%s: another tessera run is using this run directory (wait for it, or choose another run.dir)", dir);
  }
  TS_CALL(ts_io_join(dir, "ledger.sqlite", path, sizeof path));
  if (!ts_io_exists(path)) {
    /* a directory we did not make: refuse unless it is empty (but for our lock) */
    if (dir_entries(dir) - 1 > 0) { /* -1: the lock file */
      if (!lock_existed) unlink(lock);
      return ts_error_set(TS_ECONFIG, "RUN_DIR_NOT_EMPTY", "%s exists, is not empty and holds no tessera ledger: choose another run.dir (tessera never writes into a directory it did not make)", dir);
    }
  }
  remove_stale_tmp(dir, 3); /* we hold the lock: nobody else is writing here */
  TS_CALL(ts_io_join(dir, "config.yaml", path, sizeof path));
  if (ts_io_exists(path)) {
    char *old = NULL;
    TS_CALL(ts_io_read_all(path, &old, NULL));
    bool same = !strcmp(old, cfg->text);
    if (!same && !reconfigure) {
      char keys[600] = "";
      int nk = ts_config_diff_keys(old, cfg->text, keys, sizeof keys);
      free(old);
      return ts_error_set(TS_ECONFIG, "RUN_CONFIG_CHANGED",
                          "%s was made with a different config (%s; see %s): pass --reconfigure to redo the stages whose settings changed, or choose another run.dir",
                          dir, nk > 0 ? keys : "its text differs", path);
    }
    free(old);
    if (same) return 0; /* nothing to rewrite */
  }
  return ts_io_write_atomic(path, cfg->text, strlen(cfg->text));
}

/* Undo what a failed setup made in a directory it created: the lock, the config, the ledger
 * (only ours: the directory was new), then the directory itself. */
static void unmake_dir(const char *dir) {
  static const char *const ours[] = {".lock", "config.yaml", "ledger.sqlite", "ledger.sqlite-wal", "ledger.sqlite-shm", NULL};
  for (int i = 0; ours[i]; i++) {
    char p[TS_PATH_MAX];
    if (ts_io_join(dir, ours[i], p, sizeof p) >= 0) unlink(p);
  }
  rmdir(dir); /* fails, harmlessly, if anything else is there */
}

/* --stages a,b / --until STAGE → which registry positions run. Summary stages (the report)
 * always run. Unknown names: RUN_BAD_STAGE (TS_ECONFIG). */
static int select_stages(const char *list, const char *until, bool *on) {
  int n = 0;
  while (ts_stages[n]) n++;
  for (int i = 0; i < n; i++) on[i] = !list && !until;
  char names[512] = "";
  for (int i = 0, k = 0; i < n; i++) k += snprintf(names + k, sizeof names - (size_t)k, "%s%s", i ? ", " : "", ts_stages[i]->name);
  if (until) {
    int at = -1;
    for (int i = 0; i < n; i++)
      if (!strcmp(ts_stages[i]->name, until)) at = i;
    if (at < 0) return ts_error_set(TS_ECONFIG, "RUN_BAD_STAGE", "--until %s: no such stage (stages: %s)", until, names);
    for (int i = 0; i <= at; i++) on[i] = true;
  }
  if (list) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
      while (*t == ' ') t++;
      int at = -1;
      for (int i = 0; i < n; i++)
        if (!strcmp(ts_stages[i]->name, t)) at = i;
      if (at < 0) return ts_error_set(TS_ECONFIG, "RUN_BAD_STAGE", "--stages: no stage '%s' (stages: %s)", t, names);
      on[at] = true;
    }
  }
  for (int i = 0; i < n; i++)
    if (ts_stages[i]->flags & TS_STAGE_SUMMARY) on[i] = true;
  return 0;
}

static void join_argv(int argc, char **argv, char *buf, size_t n) {
  size_t k = 0;
  buf[0] = '\0';
  for (int i = 0; i < argc && k < n; i++) k += (size_t)snprintf(buf + k, n - k, "%s%s", i ? " " : "tessera ", argv[i]);
}

/* Rank 0: "extract: 2 of 3 slides to do (as 4 shards and 2 merges)". Units named "<u>#..." are
 * parts of unit <u> (api/ts_stage.h); the stage's unit_noun names the whole ones. */
static void say_plan(const struct ts_stage *st, const ts_units *units, const int64_t *todo_idx, int64_t n_todo) {
  const char *noun = st->unit_noun ? st->unit_noun : "unit";
  int64_t whole = 0, whole_todo = 0, parts_todo = 0;
  for (int64_t u = 0; u < units->n; u++) whole += !strchr(units->ids[u], '#');
  for (int64_t p = 0; p < n_todo; p++) {
    if (strchr(units->ids[todo_idx[p]], '#')) parts_todo++;
    else whole_todo++;
  }
  if (n_todo == 0) {
    fprintf(stderr, "%s: all %lld %s%s already done or failed upstream: nothing to do\n", st->name, (long long)whole, noun,
            whole == 1 ? "" : "s");
  } else if (parts_todo) {
    fprintf(stderr, "%s: %lld of %lld %s%s to do (as %lld %s%s and %lld merge%s)\n", st->name, (long long)whole_todo, (long long)whole,
            noun, whole == 1 ? "" : "s", (long long)parts_todo, st->part_noun ? st->part_noun : "part", parts_todo == 1 ? "" : "s",
            (long long)whole_todo, whole_todo == 1 ? "" : "s");
  } else {
    fprintf(stderr, "%s: %lld of %lld %s%s to do\n", st->name, (long long)whole_todo, (long long)whole, noun, whole == 1 ? "" : "s");
  }
}

typedef struct ckpt_pick {
  const ts_run *run;
  int64_t step;
  char path[1024];
} ckpt_pick;

/* Latest first: the first checkpoint whose file still has its recorded checksum. */
static int ckpt_try(void *ctx, int64_t step, const char *path, const char *checksum) {
  ckpt_pick *k = ctx;
  char abs[TS_PATH_MAX], sum[65];
  int64_t bytes;
  if (ts_run_path(k->run, path, abs, sizeof abs) < 0 || ts_io_sha256_file(abs, sum, &bytes) < 0 || strcmp(sum, checksum)) {
    fprintf(stderr, "%s: checkpoint of step %lld (%s) is gone or changed: trying an earlier one\n", k->run->stage_name, (long long)step, path);
    ts_error_clear();
    return 0;
  }
  k->step = step;
  snprintf(k->path, sizeof k->path, "%s", path);
  return 1;
}

/* Checksums of a collective unit's outputs (rank 0 wrote them). */
static int checksum_outputs(const ts_run *run, ts_unit_record *rec) {
  char abs[TS_PATH_MAX];
  if (rec->output[0]) {
    TS_CALL(ts_run_path(run, rec->output, abs, sizeof abs));
    TS_CALL(ts_io_sha256_file(abs, rec->checksum, &rec->bytes));
  }
  for (int k = 0; k < rec->n_more && k < TS_UNIT_MAX_OUTPUTS - 1; k++) {
    TS_CALL(ts_run_path(run, rec->more[k].path, abs, sizeof abs));
    TS_CALL(ts_io_sha256_file(abs, rec->more[k].checksum, &rec->more[k].bytes));
  }
  return 0;
}

/* Every rank: run a collective stage's one unit (when rank 0 says it is to do). Returns <0
 * only when the run cannot go on (ledger); a failed unit is recorded and counted. */
static int run_collective(run_state *s, bool todo_here, int64_t resume_step, char *resume_path) {
  const struct ts_stage *st = s->stage;
  int rank = s->run.rank;
  int todo = todo_here;
  MPI_Bcast(&todo, 1, MPI_INT, 0, MPI_COMM_WORLD);
  if (!todo) return 0;
  long long rs = (long long)resume_step;
  MPI_Bcast(&rs, 1, MPI_LONG_LONG, 0, MPI_COMM_WORLD);
  MPI_Bcast(resume_path, 1024, MPI_CHAR, 0, MPI_COMM_WORLD);
  s->run.resume_step = rs;
  s->run.resume_checkpoint = rs >= 0 ? resume_path : NULL;
  if (rank == 0 && !s->quiet) {
    if (rs >= 0) fprintf(stderr, "%s: resuming from the checkpoint of step %lld (%s) on %d rank(s)\n", st->name, rs, resume_path, s->run.nranks);
    else fprintf(stderr, "%s: training on %d rank(s) together\n", st->name, s->run.nranks);
  }
  ts_comm *comm = NULL;
  ts_unit_record rec;
  memset(&rec, 0, sizeof rec);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  ts_error_clear();
  int rc = ts_comm_world(&comm);
  if (rc >= 0) rc = st->collective(&s->run, comm, &rec);
  if (rc >= 0 && rank == 0) rc = checksum_outputs(&s->run, &rec);
  rc = comm ? ts_comm_agree(comm, rc) : rc;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  rec.seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
  ts_comm_free(&comm);
  free(rec.bad);
  rec.bad = NULL;
  rec.n_bad = 0;
  if (rank != 0) return 0;
  if (rc == TS_ESTOP) {
    ts_stop_request(ts_stop_signal() ? ts_stop_signal() : 15);
    fprintf(stderr, "%s: stopped: the last recorded checkpoint is where the next run resumes\n", st->name);
    return 0;
  }
  if (rc >= 0) {
    TS_CALL(ts_ledger_unit_done(s->ledger, st->name, st->name, 0, 1, s->run.run_id, &rec));
    if (rec.note[0]) fprintf(stderr, "%s: warning: %s\n", st->name, rec.note);
    return 0;
  }
  s->n_failed_now++;
  fprintf(stderr, "%s: failed: %s\n", st->name, ts_error_message());
  return ts_ledger_unit_failed(s->ledger, st->name, st->name, 0, 1, s->run.run_id, rec.seconds, ts_error_token(), ts_error_message());
}

int ts_cmd_run(int argc, char **argv) {
  if (ts_cli_wants_help(argc, argv)) {
    run_usage(stdout);
    return 0;
  }
  if (argc < 2) { /* no arguments: the short usage, not the 50-line key table */
    run_usage_short(stderr);
    return TS_EXIT_USAGE;
  }
  const char *config_path = NULL, *stages_list = NULL, *until = NULL;
  const char **sets = calloc((size_t)argc, sizeof *sets);
  int n_sets = 0;
  bool reconfigure = false, quiet = false;
  int usage_err = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--set") && i + 1 < argc) sets[n_sets++] = argv[++i];
    else if (!strncmp(argv[i], "--set=", 6)) sets[n_sets++] = argv[i] + 6;
    else if (!strcmp(argv[i], "--stages") && i + 1 < argc) stages_list = argv[++i];
    else if (!strncmp(argv[i], "--stages=", 9)) stages_list = argv[i] + 9;
    else if (!strcmp(argv[i], "--until") && i + 1 < argc) until = argv[++i];
    else if (!strncmp(argv[i], "--until=", 8)) until = argv[i] + 8;
    else if (!strcmp(argv[i], "--reconfigure")) reconfigure = true;
    else if (!strcmp(argv[i], "--quiet")) quiet = true;
    else if (argv[i][0] == '-' || config_path) usage_err = i;
    else config_path = argv[i];
  }

  int provided = 0;
  /* Started without mpirun/srun, Open MPI's singleton MPI_Init forks an orted to host a
   * one-process job (about half of MPI_Init's ~1 s on the development VM): an isolated
   * singleton needs none, and tessera never spawns or connects to other jobs. Only the
   * singleton reads this parameter (mpirun and srun use other ess components); a value the
   * user set wins. */
  setenv("OMPI_MCA_ess_singleton_isolated", "1", 0);
  /* FUNNELED: only the main thread of a rank calls MPI (the scheduler's and the collective
   * stages' communication both run there; worker threads never do). */
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  ts_stop_install(); /* after MPI_Init: SIGTERM stops us cleanly, not the MPI library's default */
  int rank = 0, nranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nranks);

  run_state s;
  memset(&s, 0, sizeof s);
  ts_config *cfg = NULL;
  ts_cohort cohort;
  memset(&cohort, 0, sizeof cohort);
  char *cfg_text = NULL, *cohort_text = NULL, *cohort_path = NULL;
  int lock_fd = -1, exit_code = TS_EXIT_OK, rc = 0;
  ts_ledger *ledger = NULL;
  bool created = false;
  int n_stages = 0;
  while (ts_stages[n_stages]) n_stages++;
  bool *selected = calloc((size_t)n_stages + 1, sizeof *selected);

  /* ---- rank 0: everything that can be wrong with the invocation, config or cohort is found
   * before the run directory is touched; then the directory, its lock and the ledger ---- */
  int setup = 0;
  if (rank == 0) {
    size_t len = 0;
    if (usage_err || !config_path) {
      fprintf(stderr, "USAGE: %s\n", usage_err ? "unexpected argument" : "missing CONFIG");
      if (usage_err) fprintf(stderr, "  at '%s'\n", argv[usage_err]);
      run_usage_short(stderr);
      setup = TS_EXIT_USAGE;
    } else if (!selected || (rc = ts_stages_check()) < 0 || (rc = select_stages(stages_list, until, selected)) < 0 ||
               (rc = ts_config_load(config_path, sets, n_sets, &cfg)) < 0) {
      fprintf(stderr, "%s\n", selected ? ts_error_message() : "NO_MEMORY");
      setup = TS_EXIT_USAGE;
    }
    for (int i = 0; !setup && ts_stages[i]; i++) /* every stage checks its own keys, run or not */
      if (ts_stages[i]->check && (rc = ts_stages[i]->check(cfg)) < 0) {
        fprintf(stderr, "%s\n", ts_error_message());
        setup = TS_EXIT_USAGE;
      }
    if (!setup && ts_io_read_all(cfg->cohort.csv, &cohort_text, &len) < 0) {
      fprintf(stderr, "COHORT_MISSING_FILE: %s: cannot read the cohort CSV named by cohort.csv (%s)\n", cfg->cohort.csv, ts_error_detail());
      setup = TS_EXIT_USAGE;
    } else if (!setup && ts_cohort_parse(cfg->cohort.csv, cohort_text, &cohort) < 0) {
      fprintf(stderr, "%s\n", ts_error_message());
      setup = TS_EXIT_USAGE;
    }
    if (!setup && (rc = prepare_dir(cfg, reconfigure, &lock_fd, &created)) < 0) {
      fprintf(stderr, "%s\n", ts_error_message());
      setup = TS_EXIT_USAGE;
    }
    if (!setup) {
      char lp[TS_PATH_MAX];
      ts_io_join(cfg->run.dir, "ledger.sqlite", lp, sizeof lp);
      if (ts_ledger_open(lp, false, &ledger) < 0) {
        fprintf(stderr, "%s\n", ts_error_message());
        setup = TS_EXIT_USAGE;
      }
    }
    if (setup && created && cfg) unmake_dir(cfg->run.dir);
    if (!setup) {
      cfg_text = strdup(cfg->text);
      cohort_path = strdup(cfg->cohort.csv);
    }
  }
  MPI_Bcast(&setup, 1, MPI_INT, 0, MPI_COMM_WORLD);
  if (setup) {
    exit_code = setup;
    goto out;
  }
  MPI_Bcast(selected, n_stages, MPI_C_BOOL, 0, MPI_COMM_WORLD);
  bcast_text(&cfg_text, rank);
  bcast_text(&cohort_text, rank);
  bcast_text(&cohort_path, rank);
  if (rank != 0) {
    if (ts_config_from_text(cfg_text, "resolved config", &cfg) < 0 || ts_cohort_parse(cohort_path, cohort_text, &cohort) < 0) {
      fprintf(stderr, "rank %d: %s\n", rank, ts_error_message());
      MPI_Abort(MPI_COMM_WORLD, 3); /* cannot happen: rank 0 parsed the same bytes */
    }
  }

  /* hosts, for the ledger */
  char host[MPI_MAX_PROCESSOR_NAME] = "";
  int hl = 0;
  MPI_Get_processor_name(host, &hl);
  char *hosts = rank == 0 ? calloc((size_t)nranks, MPI_MAX_PROCESSOR_NAME) : NULL;
  MPI_Gather(host, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, hosts, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, 0, MPI_COMM_WORLD);

  s.run.cfg = cfg;
  s.run.dir = cfg->run.dir;
  s.run.cohort = &cohort;
  s.run.stages = ts_stages;
  s.run.rank = rank;
  s.run.nranks = nranks;
  s.run.resume_step = -1;
  s.record.ledger = ledger;
  s.run.ops = rank == 0 ? &ts_run_ledger_ops : NULL;
  s.run.impl = rank == 0 ? &s.record : NULL;
  s.ledger = ledger;
  s.quiet = quiet;

  if (rank == 0) {
    char argbuf[4096], hostlist[4096] = "";
    join_argv(argc, argv, argbuf, sizeof argbuf);
    size_t k = 0;
    for (int r = 0; r < nranks; r++) {
      const char *h = hosts + (size_t)r * MPI_MAX_PROCESSOR_NAME;
      bool seen = false;
      for (int q = 0; q < r; q++) seen |= !strcmp(h, hosts + (size_t)q * MPI_MAX_PROCESSOR_NAME);
      if (!seen && k < sizeof hostlist) k += (size_t)snprintf(hostlist + k, sizeof hostlist - k, "%s%s", k ? "," : "", h);
    }
    if (ts_ledger_run_begin(ledger, cfg->hash, argbuf, nranks, hostlist, TS_VERSION, &s.run.run_id) < 0) {
      fprintf(stderr, "%s\n", ts_error_message());
      rc = -1;
    }
    s.record.run_id = s.run.run_id;
    if (!quiet)
      fprintf(stderr, "tessera %s: run %s, %d rank(s) on %s, config %.12s\n", TS_VERSION, cfg->run.dir, nranks, hostlist, cfg->hash);
  }
  free(hosts);

  char hashes[64][65];
  memset(hashes, 0, sizeof hashes);
  bool stopped = false, run_end_recorded = false;
  for (int i = 0; ts_stages[i]; i++) {
    const struct ts_stage *st = ts_stages[i];
    s.stage = st;
    s.run.stage_name = st->name;
    ts_units units;
    memset(&units, 0, sizeof units);
    char **todo_ids = NULL;
    int64_t *todo_idx = NULL, *todo_then = NULL, n_todo = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char started[32];
    ts_now_iso(started);
    bool collective = st->kind == TS_COLLECTIVE;
    int64_t resume_step = -1;
    char resume_path[1024] = "";
    /* 1 run, 0 not selected or skipped: a stage left out still has its hash (later stages chain it) */
    int go = 1;
    if (rank == 0 && rc >= 0) stage_hash(&s.run, st, hashes, hashes[i]);
    if (rank == 0 && rc >= 0 && !selected[i]) {
      go = 0;
      if (!quiet) fprintf(stderr, "%s: not selected (%s%s)\n", st->name, stages_list ? "--stages " : "--until ", stages_list ? stages_list : until);
    }
    if (rank == 0 && rc >= 0 && go && st->skip) {
      char why[512] = "";
      s.run.stage_hash = hashes[i];
      int k = st->skip(&s.run, why, sizeof why);
      if (k < 0) rc = k;
      else if (k > 0) {
        go = 0;
        fprintf(stderr, "%s: skipped: %s\n", st->name, why);
        bool reset = false;
        rc = ts_ledger_stage_prepare(ledger, st->name, i, hashes[i], &reset);
        if (rc >= 0) rc = ts_ledger_stage_note(ledger, st->name, why);
      }
    }
    if (rank == 0 && rc >= 0 && go && (st->flags & TS_STAGE_SUMMARY) && !run_end_recorded) {
      /* the summary (the report) describes a finished run: record the outcome first */
      ts_stage_counts *counts = NULL;
      int nc = 0;
      int64_t failed = 0, pending = 0;
      if (ts_ledger_counts(ledger, &counts, &nc) >= 0) {
        for (int c = 0; c < nc; c++)
          for (int j = 0; ts_stages[j]; j++)
            if (selected[j] && !(ts_stages[j]->flags & TS_STAGE_SUMMARY) && !strcmp(ts_stages[j]->name, counts[c].name)) {
              failed += counts[c].failed;
              pending += counts[c].pending;
            }
        free(counts);
      }
      exit_code = (failed || pending) ? TS_EXIT_FAILED_UNITS : TS_EXIT_OK;
      if (ts_ledger_run_end(ledger, s.run.run_id, exit_code) >= 0) run_end_recorded = true;
    }
    if (rank == 0 && rc >= 0 && go) {
      bool reset = false;
      rc = ts_ledger_stage_prepare(ledger, st->name, i, hashes[i], &reset);
      if (rc >= 0) rc = ts_ledger_stage_note(ledger, st->name, NULL);
      if (rc >= 0 && reset && !quiet) fprintf(stderr, "%s: settings changed since the last run: redoing every unit\n", st->name);
      s.run.stage_hash = hashes[i];
      if (rc >= 0) rc = collective ? ts_units_add(&units, st->name) : st->plan(&s.run, &units);
      todo_ids = calloc((size_t)(units.n + 1), sizeof *todo_ids);
      todo_idx = calloc((size_t)(units.n + 1), sizeof *todo_idx);
      todo_then = calloc((size_t)(units.n + 1), sizeof *todo_then);
      int64_t *pos_of = calloc((size_t)(units.n + 1), sizeof *pos_of); /* plan index → todo position */
      if (rc >= 0 && (!todo_ids || !todo_idx || !todo_then || !pos_of))
        rc = ts_error_set(TS_ENOMEM, "NO_MEMORY", "%s: plan of %lld units", st->name, (long long)units.n);
      /* a unit waiting for one that fails already fails with it */
      for (int64_t u = 0; rc >= 0 && u < units.n; u++) {
        int64_t d = units.then[u];
        if (units.fail_token[u] && d >= 0 && !units.fail_token[d]) {
          char msg[1400];
          snprintf(msg, sizeof msg, "UPSTREAM_FAILED: unit %s waits for unit %s, which failed: %.1000s", units.ids[d], units.ids[u],
                   units.fail_message[u] ? units.fail_message[u] : units.fail_token[u]);
          units.fail_token[d] = strdup("UPSTREAM_FAILED");
          units.fail_message[d] = strdup(msg);
        }
      }
      int64_t n_changed = 0;
      if (rc >= 0) rc = ts_ledger_begin(ledger); /* the whole plan: one transaction */
      if (rc >= 0) rc = ts_ledger_units_mark_stale(ledger, st->name);
      for (int64_t u = 0; rc >= 0 && u < units.n; u++) {
        char state[16];
        bool redo = false;
        pos_of[u] = -1;
        rc = ts_ledger_unit_add(ledger, st->name, units.ids[u], u);
        if (rc >= 0 && units.key[u]) rc = ts_ledger_unit_key(ledger, st->name, units.ids[u], units.key[u], &redo);
        if (rc >= 0) rc = ts_ledger_unit_state(ledger, st->name, units.ids[u], state);
        if (rc < 0) break;
        n_changed += redo;
        if (!strcmp(state, "done") && !(st->flags & TS_STAGE_ALWAYS)) continue;
        if (units.fail_token[u]) {
          s.n_failed_now++;
          rc = ts_ledger_unit_failed(ledger, st->name, units.ids[u], 0, 0, s.run.run_id, 0, units.fail_token[u], units.fail_message[u]);
          if (!quiet) fprintf(stderr, "%s: unit %s failed: %s\n", st->name, units.ids[u], units.fail_message[u]);
          continue;
        }
        pos_of[u] = n_todo;
        todo_ids[n_todo] = units.ids[u];
        todo_idx[n_todo++] = u;
      }
      int64_t n_stale = 0;
      if (rc >= 0) rc = ts_ledger_units_drop_stale(ledger, st->name, &n_stale);
      if (rc >= 0) rc = ts_ledger_commit(ledger);
      /* dependencies among the units still to do (a done unit waits for nothing) */
      for (int64_t p = 0; rc >= 0 && p < n_todo; p++) {
        int64_t d = units.then[todo_idx[p]];
        todo_then[p] = d >= 0 ? pos_of[d] : -1;
      }
      free(pos_of);
      if (rc >= 0 && collective && n_todo > 0) {
        ckpt_pick pick = {.run = &s.run, .step = -1};
        rc = ts_ledger_checkpoints(ledger, st->name, hashes[i], ckpt_try, &pick);
        resume_step = pick.step;
        snprintf(resume_path, sizeof resume_path, "%s", pick.path);
      }
      if (rc < 0) fprintf(stderr, "%s\n", ts_error_message());
      else if (!quiet) {
        if (n_stale > 0) fprintf(stderr, "%s: forgot %lld unit(s) the plan no longer has\n", st->name, (long long)n_stale);
        if (n_changed > 0) fprintf(stderr, "%s: %lld unit(s) whose inputs changed since they were done: redoing them\n", st->name, (long long)n_changed);
        say_plan(st, &units, todo_idx, n_todo);
      }
    }
    int flags[2] = {rc >= 0, go};
    MPI_Bcast(flags, 2, MPI_INT, 0, MPI_COMM_WORLD);
    if (!flags[0]) {
      free(todo_ids); free(todo_idx); free(todo_then); ts_units_clear(&units);
      break;
    }
    if (!flags[1]) {
      free(todo_ids); free(todo_idx); free(todo_then); ts_units_clear(&units);
      continue;
    }
    MPI_Bcast(hashes[i], 65, MPI_CHAR, 0, MPI_COMM_WORLD); /* workers write it into outputs */
    s.run.stage_hash = hashes[i];
    long long n_bcast = (long long)n_todo;
    MPI_Bcast(&n_bcast, 1, MPI_LONG_LONG, 0, MPI_COMM_WORLD);
    if (collective) {
      int crc = run_collective(&s, n_todo > 0, resume_step, resume_path);
      if (crc < 0 && rank == 0) {
        fprintf(stderr, "%s\n", ts_error_message());
        rc = crc;
      }
      s.run.resume_step = -1;
      s.run.resume_checkpoint = NULL;
    } else if (n_bcast > 0) {
      ts_sched_cb cb = {.ctx = &s, .work = cb_work, .on_result = cb_result, .output_path = cb_output, .stage = st->name,
                        .items_unit = st->items_unit, .max_attempts = (int)cfg->scheduler.max_attempts, .progress = !quiet};
      int src = ts_sched_stage(&cb, (const char *const *)todo_ids, todo_idx, todo_then, rank == 0 ? n_todo : 0);
      if (src < 0 && rank == 0) {
        fprintf(stderr, "%s\n", ts_error_message());
        rc = src;
      }
    }
    /* peak memory and CPU time of every rank after the stage, for the report */
    double mine[2] = {0, 0};
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
      mine[0] = (double)ru.ru_maxrss; /* kB on Linux */
      mine[1] = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + 1e-6 * (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
    }
    double *all = rank == 0 ? calloc((size_t)nranks * 2, sizeof *all) : NULL;
    MPI_Gather(mine, 2, MPI_DOUBLE, all, 2, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    if (rank == 0 && all && n_bcast > 0 && rc >= 0)
      for (int r = 0; r < nranks; r++) ts_ledger_rusage(ledger, s.run.run_id, st->name, r, (int64_t)all[2 * r], all[2 * r + 1]);
    free(all);
    if (rank == 0 && rc >= 0) {
      if (st->finish && (rc = st->finish(&s.run)) < 0) fprintf(stderr, "%s\n", ts_error_message());
      clock_gettime(CLOCK_MONOTONIC, &t1);
      char finished[32];
      ts_now_iso(finished);
      if (n_todo > 0) ts_ledger_stage_times(ledger, st->name, started, finished, (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    }
    free(todo_ids);
    free(todo_idx);
    free(todo_then);
    ts_units_clear(&units);
    int stop = ts_stop_requested();
    MPI_Allreduce(MPI_IN_PLACE, &stop, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (stop) {
      stopped = true;
      break;
    }
  }

  if (rank == 0) {
    ts_stage_counts *counts = NULL;
    int nc = 0;
    int64_t failed = 0, pending = 0;
    if (rc >= 0 && ts_ledger_counts(ledger, &counts, &nc) >= 0) {
      for (int c = 0; c < nc; c++) {
        int j = -1;
        for (int q = 0; ts_stages[q]; q++)
          if (!strcmp(ts_stages[q]->name, counts[c].name)) j = q;
        if (j < 0 || !selected[j]) continue; /* the exit code is about what this run was asked to do */
        failed += counts[c].failed;
        pending += counts[c].pending;
        if (!quiet) fprintf(stderr, "  %-10s %6lld done %6lld failed %6lld pending\n", counts[c].name, (long long)counts[c].done, (long long)counts[c].failed, (long long)counts[c].pending);
      }
      free(counts);
    }
    exit_code = rc == TS_ECONFIG ? TS_EXIT_USAGE : rc < 0 ? TS_EXIT_FAILED_UNITS : stopped ? TS_EXIT_STOPPED : (failed || pending) ? TS_EXIT_FAILED_UNITS : TS_EXIT_OK;
    if (stopped)
      fprintf(stderr, "stopped by a signal: every unit not recorded done stays pending; run the same command again to resume\n");
    if (rc >= 0 && failed && !quiet) fprintf(stderr, "some units failed: `tessera status %s` lists them\n", cfg->run.dir);
    ts_ledger_run_end(ledger, s.run.run_id, exit_code);
  }
  MPI_Bcast(&exit_code, 1, MPI_INT, 0, MPI_COMM_WORLD);

out:
  ts_ledger_close(&ledger);
  if (lock_fd >= 0) close(lock_fd);
  ts_cohort_clear(&cohort);
  ts_config_free(&cfg);
  free(cfg_text);
  free(cohort_text);
  free(cohort_path);
  free(sets);
  free(selected);
  MPI_Finalize();
  return exit_code;
}
