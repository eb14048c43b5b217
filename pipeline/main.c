/* main.c — the `tessera` command: dispatch to subcommands (pipeline/cmd_*.c, run.c). */
#include <stdio.h>
#include <string.h>
#include <vips/vips.h>

#include "ts_cli.h"
#include "ts_cli_setup.h"
#include "ts_version.h"

static const struct {
  const char *name;
  int (*fn)(int, char **);
  const char *summary;
} commands[] = {
    {"synth", ts_cmd_synth, "generate a synthetic cohort (slides, truth, clinical, genomic, config)"},
    {"run", ts_cmd_run, "run the pipeline of a config (under mpirun/srun for several ranks)"},
    {"status", ts_cmd_status, "per-stage done/failed/pending counts and failures of a run"},
    {"inspect", ts_cmd_inspect, "datasets, shapes and attributes of an HDF5 output"},
    {"report", ts_cmd_report, "write the run report (report/index.html + report.json) of a run directory"},
    {"compare", ts_cmd_compare, "which outputs and results of two runs (dirs or report.json) are identical"},
    {"rerun", ts_cmd_rerun, "repeat the run a report.json describes, in a new run directory"},
    {"cox", ts_cmd_cox, "fit a Cox proportional-hazards model to a CSV"},
    {"km", ts_cmd_km, "Kaplan-Meier curves and log-rank test of a CSV"},
    {"export", ts_cmd_export, "write a run's features where other tools read them (export clam: CLAM's pt_files/, h5_files/)"},
    {"init", ts_cmd_init, "write cohort.csv and a starter config.yaml for a folder of slides"},
    {"check", ts_cmd_check, "open every slide of a config's cohort and say what is wrong with each"},
    {"submit", ts_cmd_submit, "submit the run of a config as a Slurm batch job (sbatch; srun --mpi=pmix)"},
};

static void usage(FILE *f) {
  fprintf(f,
          "tessera %s — distributed computational-pathology pipeline\n\n"
          "usage: tessera COMMAND [ARGS]   (tessera COMMAND --help for each)\n\ncommands:\n",
          TS_VERSION);
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
  fprintf(f,
          "\nexit codes: 0 all done, 1 some units failed (the rest completed),\n"
          "            2 usage or configuration error (nothing was run),\n"
          "            3 stopped by SIGTERM/SIGINT: run again to resume\n");
}

int ts_cli_wants_help(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return 1;
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return TS_EXIT_USAGE;
  }
  if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
    printf("tessera %s (%s)\n", TS_VERSION, TS_BUILD_TYPE);
    return 0;
  }
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
    usage(stdout);
    return 0;
  }
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
    if (strcmp(argv[1], commands[i].name)) continue;
    if (VIPS_INIT(argv[0])) {
      fprintf(stderr, "VIPS_INIT: %s\n", vips_error_buffer());
      return TS_EXIT_USAGE;
    }
    int rc = commands[i].fn(argc - 1, argv + 1);
    vips_shutdown();
    return rc;
  }
  fprintf(stderr, "USAGE: unknown command '%s'\n\n", argv[1]);
  usage(stderr);
  return TS_EXIT_USAGE;
}
