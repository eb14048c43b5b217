/* cmd_status.c — `tessera status RUN_DIR [--json]`: what the ledger says. Read-only: safe while
 * a run goes on (WAL readers never block the writer). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_cli.h"
#include "ts_error.h"
#include "ts_io.h"
#include "ts_ledger.h"

static void json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; s && *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
    else if (c == '\n') fputs("\\n", f);
    else if (c < 0x20) fprintf(f, "\\u%04x", c);
    else fputc(c, f);
  }
  fputc('"', f);
}

typedef struct fail_ctx { FILE *f; bool json; int n; } fail_ctx;

static void on_fail(void *ctx, const char *unit, const char *token, const char *message) {
  fail_ctx *c = ctx;
  if (c->json) {
    fprintf(c->f, "%s{\"unit\": ", c->n ? ", " : "");
    json_str(c->f, unit);
    fputs(", \"token\": ", c->f);
    json_str(c->f, token);
    fputs(", \"message\": ", c->f);
    json_str(c->f, message);
    fputc('}', c->f);
  } else {
    fprintf(c->f, "    FAILED %s: %s\n", unit, message);
  }
  c->n++;
}

static void on_bad(void *ctx, const char *unit, int64_t count, const char *token, const char *message) {
  fail_ctx *c = ctx;
  if (c->json) {
    fprintf(c->f, "%s{\"unit\": ", c->n ? ", " : "");
    json_str(c->f, unit);
    fprintf(c->f, ", \"count\": %lld, \"token\": ", (long long)count);
    json_str(c->f, token);
    fputs(", \"message\": ", c->f);
    json_str(c->f, message);
    fputc('}', c->f);
  } else {
    fprintf(c->f, "    BAD ITEMS %s: %lld (%s)%s%s\n", unit, (long long)count, token, message && message[0] ? ": " : "",
            message ? message : "");
  }
  c->n++;
}

int ts_cmd_status(int argc, char **argv) {
  if (ts_cli_wants_help(argc, argv)) {
    printf("usage: tessera status RUN_DIR [--json]\n\n"
           "Per stage: units done, failed and pending, every failed unit with its error token\n"
           "and message, and every done unit with bad items (tiles that did not decode: the\n"
           "slide's other tiles have features), as the run's ledger records them. --json prints\n"
           "{\"run_dir\", \"stages\": [{\"name\", \"done\", \"failed\", \"pending\", \"items\",\n"
           "  \"failures\": [{\"unit\", \"token\", \"message\"}],\n"
           "  \"bad_items\": [{\"unit\", \"count\", \"token\", \"message\"}]}]}.\n"
           "Exit code: 0 nothing failed or pending, 1 some units failed or are pending (or no stage\n"
           "has run yet), 2 no ledger.\n");
    return 0;
  }
  const char *dir = NULL;
  bool json = false;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--json")) json = true;
    else if (!dir && argv[i][0] != '-') dir = argv[i];
    else {
      fprintf(stderr, "USAGE: unexpected argument '%s' (tessera status RUN_DIR [--json])\n", argv[i]);
      return TS_EXIT_USAGE;
    }
  }
  if (!dir) {
    fprintf(stderr, "USAGE: tessera status RUN_DIR [--json]\n");
    return TS_EXIT_USAGE;
  }
  char path[TS_PATH_MAX];
  ts_io_join(dir, "ledger.sqlite", path, sizeof path);
  ts_ledger *l = NULL;
  if (!ts_io_exists(path) || ts_ledger_open(path, true, &l) < 0) {
    fprintf(stderr, "RUN_NO_LEDGER: %s has no readable ledger.sqlite: is it a tessera run directory?\n", dir);
    return TS_EXIT_USAGE;
  }
  ts_stage_counts *c = NULL;
  int n = 0, code = 0;
  if (ts_ledger_counts(l, &c, &n) < 0) {
    fprintf(stderr, "%s\n", ts_error_message());
    ts_ledger_close(&l);
    return TS_EXIT_USAGE;
  }
  if (json) {
    printf("{\"run_dir\": ");
    json_str(stdout, dir);
    printf(", \"stages\": [");
  } else {
    printf("run %s\n  %-10s %8s %8s %8s %10s\n", dir, "stage", "done", "failed", "pending", "items");
  }
  for (int i = 0; i < n; i++) {
    if (c[i].failed || c[i].pending) code = TS_EXIT_FAILED_UNITS;
    if (json) {
      printf("%s{\"name\": ", i ? ", " : "");
      json_str(stdout, c[i].name);
      printf(", \"done\": %lld, \"failed\": %lld, \"pending\": %lld, \"items\": %lld, \"failures\": [",
             (long long)c[i].done, (long long)c[i].failed, (long long)c[i].pending, (long long)c[i].items);
    } else {
      printf("  %-10s %8lld %8lld %8lld %10lld\n", c[i].name, (long long)c[i].done, (long long)c[i].failed,
             (long long)c[i].pending, (long long)c[i].items);
    }
    fail_ctx fc = {stdout, json, 0};
    ts_ledger_failures(l, c[i].name, on_fail, &fc);
    if (json) printf("], \"bad_items\": [");
    fail_ctx bc = {stdout, json, 0};
    ts_ledger_bad_items(l, c[i].name, on_bad, &bc); /* a ledger older than the table has none */
    if (json) printf("]}");
  }
  if (json) printf("]}\n");
  if (n == 0) { /* a run directory made by `tessera submit` whose job has not started yet */
    if (!json) printf("  no stage has run yet (a submitted job not started?): everything is pending\n");
    code = TS_EXIT_FAILED_UNITS;
  }
  free(c);
  ts_ledger_close(&l);
  return code;
}
