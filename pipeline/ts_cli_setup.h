/* ts_cli_setup.h — the two subcommands that get a user from a folder of slides to a run:
 * `tessera init SLIDE_DIR` (writes cohort.csv and a starter config.yaml) and
 * `tessera check CONFIG` (opens every slide of the cohort and says what is wrong with each).
 * Same calling convention as ts_cli.h: argv[0] is the subcommand, the result the exit code. */
#ifndef TS_CLI_SETUP_H
#define TS_CLI_SETUP_H

/* Exit 0 written, 2 usage error, nothing found, or a file that would be overwritten. */
int ts_cmd_init(int argc, char **argv);
/* Exit 0 every slide opens with a pixel size, 1 some slides are bad, 2 config/cohort error. */
int ts_cmd_check(int argc, char **argv);

#endif
