/* slurm.c — the sbatch script of a tessera run, and its submission (see ts_slurm.h).
 *
 * Why the script looks the way it does:
 *  - `srun --mpi=pmix`: Open MPI 4 ranks started directly by Slurm find each other through the
 *    PMIx server in slurmd (Open MPI docs, "Running jobs under Slurm"); no mpirun, so none of
 *    mpirun's settings (OMPI_ALLOW_RUN_AS_ROOT*, rmaps oversubscribe) apply. The environment of
 *    the submitting shell reaches the job (sbatch's default --export=ALL): the OMPI_MCA_* settings
 *    a site needs come from there (for this machine, `. scripts/env.sh` before submitting).
 *  - `--cpu-bind=none`: ranks are not pinned, for the reason scripts/env.sh gives (a pinned rank
 *    picks other oneDNN kernels and rounds features differently).
 *  - `--signal=B:USR1@grace` goes to the batch shell only. The shell runs srun in the background
 *    and waits, so that its trap runs at once (bash defers traps while a foreground child runs);
 *    the trap sends SIGTERM to the ranks with `scancel --signal=TERM JOB` (job steps only: srun
 *    itself, given SIGTERM, cancels the step and SIGKILLs the ranks within a second). Ranks stop cleanly (units in
 *    flight are not recorded done) and the shell requeues the job. `--requeue` also lets Slurm
 *    requeue the job itself after a node failure or pre-emption; `--open-mode=append` keeps the
 *    log of every start in the same RUN_DIR/slurm/<jobid>.out.
 *  - `scancel --signal=TERM JOB` signals the job steps, not the batch shell: the ranks get SIGTERM,
 *    srun ends, the job ends without a requeue, and a later `tessera submit` resumes the run.
 */
#include "ts_slurm.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ts_error.h"

/* After this many restarts the time-limit requeue gives up (a run that never gets further). */
#define MAX_RESTARTS 20

typedef struct sbuf {
  char *s;
  size_t len, cap;
} sbuf;

static int grow(char **buf, size_t *len, size_t *cap, size_t more) {
  if (*buf && *len + more + 1 <= *cap) return 0;
  size_t c = *cap ? *cap : 1024;
  while (c < *len + more + 1) c *= 2;
  char *p = realloc(*buf, c);
  if (!p) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "slurm script of %zu bytes", c);
  if (!*buf) p[0] = '\0';
  *buf = p;
  *cap = c;
  return 0;
}

static int put(sbuf *b, const char *s) {
  size_t n = strlen(s);
  TS_CALL(grow(&b->s, &b->len, &b->cap, n));
  memcpy(b->s + b->len, s, n + 1);
  b->len += n;
  return 0;
}

static int putf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int putf(sbuf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return ts_error_set(TS_EINTERNAL, "SLURM_FORMAT", "bad format %s", fmt);
  TS_CALL(grow(&b->s, &b->len, &b->cap, (size_t)n));
  va_start(ap, fmt);
  vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return 0;
}

int ts_slurm_quote(char **buf, size_t *len, size_t *cap, const char *s) {
  /* 'abc' with every ' written as '\'' (close, escaped quote, reopen). */
  size_t n = 2;
  for (const char *c = s; *c; c++) n += *c == '\'' ? 4 : 1;
  TS_CALL(grow(buf, len, cap, n));
  char *o = *buf + *len;
  *o++ = '\'';
  for (const char *c = s; *c; c++) {
    if (*c == '\'') {
      memcpy(o, "'\\''", 4);
      o += 4;
    } else {
      *o++ = *c;
    }
  }
  *o++ = '\'';
  *o = '\0';
  *len = (size_t)(o - *buf);
  return 0;
}

static int word(sbuf *b, const char *s) {
  TS_CALL(put(b, " "));
  return ts_slurm_quote(&b->s, &b->len, &b->cap, s);
}

/* A value of an #SBATCH line: "..." with " and \ escaped, % doubled when pattern is set. */
static int sbatch_value(sbuf *b, const char *s, bool pattern) {
  TS_CALL(put(b, "\""));
  for (const char *c = s; *c; c++) {
    char t[4] = {0};
    if (*c == '"' || *c == '\\') t[0] = '\\', t[1] = *c;
    else if (*c == '%' && pattern) t[0] = '%', t[1] = '%';
    else t[0] = *c;
    TS_CALL(put(b, t));
  }
  return put(b, "\"");
}

static int check_value(const char *what, const char *v, const char *extra) {
  if (!v) return 0;
  if (!*v) return ts_error_set(TS_EINVAL, "SLURM_BAD_VALUE", "%s is empty", what);
  for (const char *c = v; *c; c++)
    if (!isalnum((unsigned char)*c) && !strchr(extra, *c))
      return ts_error_set(TS_EINVAL, "SLURM_BAD_VALUE", "%s '%s': character '%c' is not allowed (only letters, digits and \"%s\")",
                          what, v, isprint((unsigned char)*c) ? *c : '?', extra);
  return 0;
}

int ts_slurm_script(const ts_slurm_job *job, char **script_out) {
  int rc = 0;
  sbuf b = {0};
  *script_out = NULL;
  if (!job->run_dir || job->run_dir[0] != '/' || !job->tessera || job->tessera[0] != '/' || !job->config ||
      job->config[0] != '/')
    return ts_error_set(TS_EINVAL, "SLURM_BAD_PATH", "run directory, tessera and config must be absolute paths");
  if (strpbrk(job->run_dir, "\n\r\\"))
    return ts_error_set(TS_EINVAL, "SLURM_BAD_PATH",
                        "run directory '%s' holds a newline or a backslash, which an #SBATCH --output line cannot carry: choose another run.dir",
                        job->run_dir);
  TS_CALL(check_value("--time", job->time, ":-"));
  TS_CALL(check_value("--partition", job->partition, "_.,-"));
  TS_CALL(check_value("--account", job->account, "_.-"));
  TS_CALL(check_value("job name", job->job_name, "_.-"));
  if (job->nodes < 0 || job->ntasks_per_node < 0 || job->cpus_per_task < 0 || job->signal_grace_s < 0)
    return ts_error_set(TS_EINVAL, "SLURM_BAD_VALUE", "negative node, task, cpu or signal count");
  int grace = job->signal_grace_s ? job->signal_grace_s : 120;

  TS_TRY(put(&b, "#!/bin/bash\n# tessera job script, written by `tessera submit`"));
  if (job->submitted_by) {
    TS_TRY(put(&b, " ("));
    for (const char *c = job->submitted_by; *c; c++) {
      char t[2] = {(unsigned char)*c < 0x20 ? '?' : *c, 0};
      TS_TRY(put(&b, t));
    }
    TS_TRY(put(&b, ")"));
  }
  TS_TRY(put(&b, ".\n# Submit it again with `sbatch THIS_FILE` or `tessera submit`: a rerun does only what the\n"
                 "# ledger does not record done. Log: slurm/<jobid>.out in the run directory.\n"));
  TS_TRY(put(&b, "#SBATCH --job-name="));
  TS_TRY(sbatch_value(&b, job->job_name ? job->job_name : "tessera", false));
  TS_TRY(put(&b, "\n"));
  if (job->nodes) TS_TRY(putf(&b, "#SBATCH --nodes=%d\n", job->nodes));
  if (job->ntasks_per_node) TS_TRY(putf(&b, "#SBATCH --ntasks-per-node=%d\n", job->ntasks_per_node));
  if (job->cpus_per_task) TS_TRY(putf(&b, "#SBATCH --cpus-per-task=%d\n", job->cpus_per_task));
  if (job->time) TS_TRY(putf(&b, "#SBATCH --time=%s\n", job->time));
  if (job->partition) TS_TRY(putf(&b, "#SBATCH --partition=%s\n", job->partition));
  if (job->account) TS_TRY(putf(&b, "#SBATCH --account=%s\n", job->account));
  TS_TRY(put(&b, "#SBATCH --chdir="));
  TS_TRY(sbatch_value(&b, job->run_dir, false));
  TS_TRY(put(&b, "\n#SBATCH --output="));
  /* the run directory's own '%' doubled, then the %j pattern (the job id) inside the quotes */
  TS_TRY(sbatch_value(&b, job->run_dir, true));
  b.s[--b.len] = '\0';
  TS_TRY(put(&b, "/slurm/%j.out\"\n"));
  TS_TRY(put(&b, "#SBATCH --open-mode=append\n#SBATCH --requeue\n"));
  TS_TRY(putf(&b, "#SBATCH --signal=B:USR1@%d\n\n", grace));

  TS_TRY(putf(&b,
              "echo \"tessera: job ${SLURM_JOB_ID:-?} start ${SLURM_RESTART_COUNT:-0} on ${SLURM_JOB_NODELIST:-?},\" \\\n"
              "  \"${SLURM_NTASKS:-?} ranks, $(date -u +%%FT%%TZ)\"\n"
              "# USR1 (%d s before the time limit): SIGTERM to the ranks (scancel --signal signals the job\n"
              "# steps; a SIGTERM to srun itself would make it kill them), then requeue (below).\n"
              "# TERM (scancel): pass it on to the ranks. srun runs in the background so that the\n"
              "# traps run at once (bash defers them while a foreground command runs).\n"
              "stop=0\n"
              "trap 'stop=1; scancel --signal=TERM \"$SLURM_JOB_ID\" || kill -TERM \"$step\"' USR1\n"
              "trap 'kill -TERM \"$step\" 2>/dev/null' TERM\n"
              "srun --mpi=pmix --kill-on-bad-exit=1 --cpu-bind=none",
              grace));
  TS_TRY(word(&b, job->tessera));
  TS_TRY(put(&b, " run"));
  TS_TRY(word(&b, job->config));
  for (int i = 0; i < job->n_sets; i++) {
    TS_TRY(put(&b, " --set"));
    TS_TRY(word(&b, job->sets[i]));
  }
  if (job->reconfigure) TS_TRY(put(&b, " --reconfigure"));
  TS_TRY(putf(&b,
              " &\n"
              "step=$!\n"
              "while kill -0 \"$step\" 2>/dev/null; do wait \"$step\"; done\n"
              "wait \"$step\"\n"
              "rc=$?\n"
              "echo \"tessera: job ${SLURM_JOB_ID:-?} srun exit $rc, $(date -u +%%FT%%TZ)\"\n"
              "if [ \"$stop\" = 1 ] && [ \"$rc\" != 0 ] && [ \"${SLURM_RESTART_COUNT:-0}\" -lt %d ]; then\n"
              "  echo \"tessera: time limit near: requeueing job $SLURM_JOB_ID (the rerun does only what is missing)\"\n"
              "  scontrol requeue \"$SLURM_JOB_ID\" && exit 0\n"
              "fi\n"
              "exit \"$rc\"\n",
              MAX_RESTARTS));
  *script_out = b.s;
  b.s = NULL;
out:
  free(b.s);
  return rc;
}

int ts_slurm_sbatch(const char *script_path, char *id_out, size_t n) {
  int rc = 0, fd_out[2] = {-1, -1};
  FILE *err = tmpfile();
  char out[256] = "", msg[2048] = "";
  if (!err || pipe(fd_out) < 0) TS_FAIL(TS_EIO, "SLURM_SBATCH", "cannot run sbatch: %s", strerror(errno));
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) TS_FAIL(TS_EIO, "SLURM_SBATCH", "cannot run sbatch: fork: %s", strerror(errno));
  if (pid == 0) {
    dup2(fd_out[1], 1);
    dup2(fileno(err), 2);
    close(fd_out[0]);
    close(fd_out[1]);
    execlp("sbatch", "sbatch", "--parsable", script_path, (char *)NULL);
    fprintf(stderr, "cannot execute sbatch: %s (is Slurm installed and on PATH?)", strerror(errno));
    _exit(127);
  }
  close(fd_out[1]);
  fd_out[1] = -1;
  size_t k = 0;
  for (ssize_t r; k + 1 < sizeof out && (r = read(fd_out[0], out + k, sizeof out - 1 - k)) != 0;) {
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) break;
    k += (size_t)r;
  }
  out[k] = '\0';
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  rewind(err);
  size_t m = fread(msg, 1, sizeof msg - 1, err);
  msg[m] = '\0';
  while (m && (msg[m - 1] == '\n' || msg[m - 1] == ' ')) msg[--m] = '\0';
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    TS_FAIL(TS_EIO, "SLURM_SBATCH", "sbatch %s failed (%s %d): %s", script_path,
            WIFEXITED(status) ? "exit" : "signal", WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
            m ? msg : "(no message)");
  /* --parsable prints "jobid" or "jobid;cluster" */
  size_t idl = strspn(out, "0123456789");
  if (idl == 0 || idl >= n)
    TS_FAIL(TS_EIO, "SLURM_SBATCH", "sbatch %s printed no job id (stdout '%s', stderr '%s')", script_path, out, msg);
  memcpy(id_out, out, idl);
  id_out[idl] = '\0';
out:
  if (fd_out[0] >= 0) close(fd_out[0]);
  if (fd_out[1] >= 0) close(fd_out[1]);
  if (err) fclose(err);
  return rc;
}
