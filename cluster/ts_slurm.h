/* ts_slurm.h — Slurm batch scripts for `tessera run`, and their submission with sbatch.
 *
 *     ts_slurm_job job = {.nodes = 2, .ntasks_per_node = 8, .time = "12:00:00",
 *                         .run_dir = "/scratch/run1", .tessera = "/opt/tessera/bin/tessera",
 *                         .config = "/home/me/cohort.yaml"};
 *     char *script = NULL, id[64];
 *     TS_CALL(ts_slurm_script(&job, &script));            // text of the sbatch script
 *     TS_CALL(ts_io_write_atomic(path, script, strlen(script)));
 *     TS_CALL(ts_slurm_sbatch(path, id, sizeof id));       // "12345"
 *     free(script);
 *
 * The script (one per submission, kept in RUN_DIR/slurm/ so a run directory documents how it
 * was run) is made of
 *   - #SBATCH lines: resources, --requeue, --open-mode=append, output to RUN_DIR/slurm/%j.out,
 *     and --signal=B:USR1@<grace>: Slurm signals the batch shell <grace> seconds before the time
 *     limit. The shell passes SIGTERM on to the ranks (through srun), which stop cleanly, and
 *     then requeues the job itself (`scontrol requeue`): the next start of the same job id runs
 *     `tessera run` again, which does only what the ledger does not record done.
 *   - `srun --mpi=pmix ... TESSERA run CONFIG [--set k=v ...]`, every word single-quoted.
 *
 * Quoting. Words in the shell body are single-quoted ('it'\''s'): inside single quotes the
 * shell expands nothing ($(...), `...`, $VAR, globs, newlines are all literal), so a path or a
 * --set value can never run code. #SBATCH lines are not read by a shell but by sbatch's own
 * tokenizer, which knows double quotes and backslash escapes and treats '#' as a comment: values
 * there are double-quoted with '"' and '\' backslash-escaped, and '%' (a Slurm file-name
 * pattern) doubled. Slurm also treats a '\' in an output file name as "no % patterns" and cannot
 * carry a newline in an #SBATCH line: a run directory with either is refused (SLURM_BAD_PATH).
 *
 * Tokens: SLURM_SBATCH (sbatch missing, failing, or printing no job id: the message carries its
 * stderr), SLURM_BAD_PATH, SLURM_BAD_VALUE (a resource value with characters Slurm would not
 * accept). Not thread-safe only in that ts_slurm_sbatch forks.
 */
#ifndef TS_SLURM_H
#define TS_SLURM_H

#include <stddef.h>

typedef struct ts_slurm_job {
  int nodes;                /* --nodes; 0: not set (Slurm's default, 1) */
  int ntasks_per_node;      /* --ntasks-per-node: MPI ranks per node; 0: not set */
  int cpus_per_task;        /* --cpus-per-task: threads of a rank (extract.threads); 0: not set */
  const char *time;         /* --time, Slurm's format ("30", "4:00:00", "1-12"); NULL: not set */
  const char *partition;    /* NULL: the cluster's default partition */
  const char *account;      /* NULL: the user's default account */
  const char *job_name;     /* NULL: "tessera" */
  int signal_grace_s;       /* seconds before the time limit for the stop signal; 0: 120 */
  const char *run_dir;      /* absolute; the script's log goes to run_dir/slurm/%j.out */
  const char *tessera;      /* absolute path of the tessera binary the job runs */
  const char *config;       /* absolute path of the config */
  const char *const *sets;  /* n_sets "section.key=value" overrides, passed on as --set */
  int n_sets;
  int reconfigure;          /* pass --reconfigure to tessera run */
  const char *submitted_by; /* a comment line (command, date); NULL: none */
} ts_slurm_job;

/* Append s to *buf (malloc'd, grown as needed; *buf may be NULL at first) as one shell word in
 * single quotes. Returns 0 or TS_ENOMEM. */
int ts_slurm_quote(char **buf, size_t *len, size_t *cap, const char *s);

/* The sbatch script of job into *script_out (malloc'd, caller frees). Checks the values
 * (SLURM_BAD_VALUE, SLURM_BAD_PATH; status TS_EINVAL). */
int ts_slurm_script(const ts_slurm_job *job, char **script_out);

/* Run `sbatch --parsable script_path` (sbatch found on PATH) and put the job id into id_out.
 * SLURM_SBATCH (TS_EIO) with sbatch's stderr when it cannot be run, fails or prints no id. */
int ts_slurm_sbatch(const char *script_path, char *id_out, size_t n);

#endif
