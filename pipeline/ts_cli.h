/* ts_cli.h — the subcommands of the `tessera` binary. Each takes (argc, argv) with argv[0] the
 * subcommand name and returns the process exit code:
 *   0 all done, 1 some units (or rows) failed and the rest completed, 2 usage or configuration
 *   error (nothing was run), 3 stopped by SIGTERM/SIGINT (run again to resume). */
#ifndef TS_CLI_H
#define TS_CLI_H

enum { TS_EXIT_OK = 0, TS_EXIT_FAILED_UNITS = 1, TS_EXIT_USAGE = 2, TS_EXIT_STOPPED = 3 };

int ts_cmd_run(int argc, char **argv);
int ts_cmd_status(int argc, char **argv);
int ts_cmd_inspect(int argc, char **argv);
int ts_cmd_synth(int argc, char **argv);
int ts_cmd_report(int argc, char **argv);
int ts_cmd_compare(int argc, char **argv);
int ts_cmd_rerun(int argc, char **argv);
int ts_cmd_cox(int argc, char **argv);
int ts_cmd_km(int argc, char **argv);
int ts_cmd_submit(int argc, char **argv);
int ts_cmd_export(int argc, char **argv);

/* True when argv has -h or --help. */
int ts_cli_wants_help(int argc, char **argv);

#endif
