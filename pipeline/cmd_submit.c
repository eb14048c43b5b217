/* cmd_submit.c — `tessera submit CONFIG [...]`: run the pipeline as a Slurm batch job.
 *
 * Loads the config as `tessera run` would (so a bad config fails here, exit 2, and not hours
 * later in the queue), writes the job script (cluster/slurm.c) to RUN_DIR/slurm/submit-<n>.sbatch
 * and hands it to `sbatch --parsable`. The job id goes to stdout alone, so that scripts can do
 * `id=$(tessera submit cohort.yaml)`; what was written and where the log goes, to stderr.
 *
 * The run directory is made here when it does not exist, with its ledger: `tessera run` refuses
 * a non-empty directory without a ledger (it never writes into a directory it did not make), and
 * after this command the directory holds slurm/. For the same reason a non-empty directory
 * without a ledger is refused here too (RUN_DIR_NOT_EMPTY), and a run directory whose frozen
 * config.yaml differs from CONFIG needs --reconfigure here, as it would in the job
 * (RUN_CONFIG_CHANGED). */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ts_cli.h"
#include "ts_config.h"
#include "ts_error.h"
#include "ts_io.h"
#include "ts_ledger.h"
#include "ts_slurm.h"
#include "ts_version.h"

static void submit_usage(FILE *f) {
  fprintf(f,
          "usage: tessera submit CONFIG.yaml [--nodes N] [--ntasks-per-node M] [--cpus-per-task C]\n"
          "                      [--time T] [--partition P] [--account A] [--job-name NAME]\n"
          "                      [--set section.key=value ...] [--reconfigure] [--dry-run]\n\n"
          "Submits `srun --mpi=pmix tessera run CONFIG` as a Slurm batch job and prints its job id.\n"
          "The job script is written to RUN_DIR/slurm/submit-<n>.sbatch (RUN_DIR: the config's\n"
          "run.dir, made if needed); the job's log goes to RUN_DIR/slurm/<jobid>.out. The job asks\n"
          "for a signal 120 s before its time limit: the ranks then stop cleanly and the job requeues\n"
          "itself; every start, like every `tessera run`, does only what the ledger does not record\n"
          "done. Follow it with `tessera status RUN_DIR`. The environment of this shell (OMPI_MCA_*,\n"
          "PATH, ...) is the job's (sbatch --export=ALL).\n\n"
          "options:\n"
          "  --nodes N                nodes (sbatch --nodes)\n"
          "  --ntasks-per-node M      MPI ranks per node\n"
          "  --cpus-per-task C        cores per rank (set extract.threads to match)\n"
          "  --time T                 time limit, Slurm's format: MIN, H:MM:SS, D-HH, D-HH:MM:SS\n"
          "  --partition P, --account A, --job-name NAME   (default job name: tessera-<run dir name>)\n"
          "  --set section.key=value  config override, checked now and passed on to tessera run\n"
          "  --reconfigure            passed on to tessera run (a changed config on an existing run)\n"
          "  --dry-run                print the job script; write and submit nothing\n\n"
          "exit codes: 0 submitted (or printed), 2 usage or config error, or sbatch missing or\n"
          "failing (SLURM_SBATCH, with sbatch's message); nothing was submitted.\n");
}

static int parse_count(const char *opt, const char *v, int *out) {
  char *end = NULL;
  errno = 0;
  long x = strtol(v, &end, 10);
  if (errno || !*v || *end || x < 1 || x > 1000000)
    return ts_error_set(TS_EINVAL, "USAGE", "%s wants a positive integer, not '%s'", opt, v);
  *out = (int)x;
  return 0;
}

/* "--name V" or "--name=V": the value, advancing *i; NULL when argv[*i] is not that option. */
static const char *opt_value(int argc, char **argv, int *i, const char *name, bool *missing) {
  size_t n = strlen(name);
  if (strncmp(argv[*i], name, n)) return NULL;
  if (argv[*i][n] == '=') return argv[*i] + n + 1;
  if (argv[*i][n] != '\0') return NULL;
  if (*i + 1 >= argc) {
    *missing = true;
    return NULL;
  }
  return argv[++*i];
}

static bool dir_is_empty(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return false;
  int n = 0;
  for (struct dirent *e; (e = readdir(d));)
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
  closedir(d);
  return n == 0;
}

/* Refuse what `tessera run` would refuse in the job; make the run directory and its ledger. */
static int prepare_run_dir(const ts_config *cfg, bool reconfigure, bool create) {
  const char *dir = cfg->run.dir;
  char path[TS_PATH_MAX];
  TS_CALL(ts_io_join(dir, "ledger.sqlite", path, sizeof path));
  bool has_ledger = ts_io_exists(path);
  if (ts_io_exists(dir) && !has_ledger && !dir_is_empty(dir))
    return ts_error_set(TS_ECONFIG, "RUN_DIR_NOT_EMPTY",
                        "%s exists, is not empty and holds no tessera ledger: choose another run.dir (tessera never writes into a directory it did not make)",
                        dir);
  char cpath[TS_PATH_MAX];
  TS_CALL(ts_io_join(dir, "config.yaml", cpath, sizeof cpath));
  if (ts_io_exists(cpath) && !reconfigure) {
    char *old = NULL;
    TS_CALL(ts_io_read_all(cpath, &old, NULL));
    bool same = !strcmp(old, cfg->text);
    free(old);
    if (!same)
      return ts_error_set(TS_ECONFIG, "RUN_CONFIG_CHANGED",
                          "%s was made with a different config (see %s): pass --reconfigure to redo the stages whose settings changed, or choose another run.dir",
                          dir, cpath);
  }
  if (!create) return 0;
  char sdir[TS_PATH_MAX];
  TS_CALL(ts_io_join(dir, "slurm", sdir, sizeof sdir));
  TS_CALL(ts_io_mkdirs(sdir, 0755));
  if (!has_ledger) {
    ts_ledger *l = NULL;
    TS_CALL(ts_ledger_open(path, false, &l));
    ts_ledger_close(&l);
  }
  return 0;
}

int ts_cmd_submit(int argc, char **argv) {
  if (ts_cli_wants_help(argc, argv)) {
    submit_usage(stdout);
    return TS_EXIT_OK;
  }
  ts_slurm_job job;
  memset(&job, 0, sizeof job);
  const char *config_arg = NULL;
  const char **sets = calloc((size_t)argc + 1, sizeof *sets);
  bool dry_run = false, reconfigure = false;
  int code = TS_EXIT_USAGE, rc = 0;
  ts_config *cfg = NULL;
  char *script = NULL;
  if (!sets) {
    fprintf(stderr, "NO_MEMORY: arguments\n");
    return TS_EXIT_USAGE;
  }

  for (int i = 1; i < argc; i++) {
    bool missing = false;
    const char *v;
    if ((v = opt_value(argc, argv, &i, "--nodes", &missing))) rc = parse_count("--nodes", v, &job.nodes);
    else if ((v = opt_value(argc, argv, &i, "--ntasks-per-node", &missing)))
      rc = parse_count("--ntasks-per-node", v, &job.ntasks_per_node);
    else if ((v = opt_value(argc, argv, &i, "--cpus-per-task", &missing)))
      rc = parse_count("--cpus-per-task", v, &job.cpus_per_task);
    else if ((v = opt_value(argc, argv, &i, "--time", &missing))) job.time = v;
    else if ((v = opt_value(argc, argv, &i, "--partition", &missing))) job.partition = v;
    else if ((v = opt_value(argc, argv, &i, "--account", &missing))) job.account = v;
    else if ((v = opt_value(argc, argv, &i, "--job-name", &missing))) job.job_name = v;
    else if ((v = opt_value(argc, argv, &i, "--set", &missing))) sets[job.n_sets++] = v;
    else if (missing) rc = ts_error_set(TS_EINVAL, "USAGE", "%s needs a value", argv[i]);
    else if (!strcmp(argv[i], "--dry-run")) dry_run = true;
    else if (!strcmp(argv[i], "--reconfigure")) reconfigure = true;
    else if (argv[i][0] == '-' || config_arg)
      rc = ts_error_set(TS_EINVAL, "USAGE", "unexpected argument '%s'", argv[i]);
    else config_arg = argv[i];
    if (rc < 0) break;
  }
  if (rc >= 0 && !config_arg) rc = ts_error_set(TS_EINVAL, "USAGE", "missing CONFIG");
  if (rc < 0) {
    fprintf(stderr, "%s\n\n", ts_error_message());
    submit_usage(stderr);
    goto out;
  }

  /* The job runs elsewhere, later, maybe in another directory: everything absolute. */
  char config_abs[PATH_MAX], tessera_abs[PATH_MAX];
  if ((rc = ts_config_load(config_arg, sets, job.n_sets, &cfg)) < 0) goto report;
  if (!realpath(config_arg, config_abs)) {
    rc = ts_error_set(TS_ECONFIG, "CONFIG_MISSING_FILE", "%s: %s", config_arg, strerror(errno));
    goto report;
  }
  ssize_t k = readlink("/proc/self/exe", tessera_abs, sizeof tessera_abs - 1);
  if (k <= 0) {
    rc = ts_error_set(TS_EIO, "SUBMIT_SELF", "cannot find the tessera binary (/proc/self/exe): %s", strerror(errno));
    goto report;
  }
  tessera_abs[k] = '\0';

  char name[160], stamp[32];
  const char *base = strrchr(cfg->run.dir, '/');
  base = base && base[1] ? base + 1 : cfg->run.dir;
  size_t nl = (size_t)snprintf(name, sizeof name, "tessera-");
  for (const char *c = base; *c && nl + 1 < sizeof name; c++)
    name[nl++] = (strchr("_.-", *c) || (*c >= '0' && *c <= '9') || ((*c | 32) >= 'a' && (*c | 32) <= 'z')) ? *c : '_';
  name[nl] = '\0';
  ts_now_iso(stamp);
  char by[128];
  snprintf(by, sizeof by, "tessera %s, %s", TS_VERSION, stamp);
  job.run_dir = cfg->run.dir;
  job.tessera = tessera_abs;
  job.config = config_abs;
  job.sets = sets;
  job.reconfigure = reconfigure;
  job.submitted_by = by;
  if (!job.job_name) job.job_name = name;

  if ((rc = ts_slurm_script(&job, &script)) < 0) goto report;
  if ((rc = prepare_run_dir(cfg, reconfigure, !dry_run)) < 0) goto report;
  if (dry_run) {
    fputs(script, stdout);
    code = TS_EXIT_OK;
    goto out;
  }

  char path[TS_PATH_MAX];
  for (int n = 1;; n++) {
    char rel[64];
    snprintf(rel, sizeof rel, "slurm/submit-%d.sbatch", n);
    if ((rc = ts_io_join(cfg->run.dir, rel, path, sizeof path)) < 0) goto report;
    if (!ts_io_exists(path)) break;
  }
  if ((rc = ts_io_write_atomic(path, script, strlen(script))) < 0) goto report;
  char id[64];
  if ((rc = ts_slurm_sbatch(path, id, sizeof id)) < 0) goto report;
  printf("%s\n", id);
  fflush(stdout);
  fprintf(stderr,
          "submitted job %s: script %s\n  log      %s/slurm/%s.out\n  progress tessera status %s\n", id, path,
          cfg->run.dir, id, cfg->run.dir);
  code = TS_EXIT_OK;
  goto out;

report:
  fprintf(stderr, "%s\n", ts_error_message());
out:
  free(script);
  ts_config_free(&cfg);
  free(sets);
  return code;
}
