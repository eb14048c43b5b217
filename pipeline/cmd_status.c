/* cmd_status.c — `tessera status RUN_DIR [--json]`: what the ledger says. Read-only: safe while
 * a run goes on (WAL readers never block the writer).
 *
 * Counts are of whole units, in the stage's own noun ("3 slides done"); a unit named
 * "<u>#<anything>" is a part of unit <u> (a shard of a slide, api/ts_stage.h) and is counted
 * apart under the stage's part_noun ("(12 shards)"), so that the numbers agree with the lines
 * `tessera run` prints ("extract: 3 of 3 slides to do (as 12 shards and 3 merges)"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_cli.h"
#include "ts_error.h"
#include "ts_io.h"
#include "ts_ledger.h"
#include "ts_stage.h"

static void json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; s && *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      fprintf(f, "\\%c", c);
    else if (c == '\n')
      fputs("\\n", f);
    else if (c < 0x20)
      fprintf(f, "\\u%04x", c);
    else
      fputc(c, f);
  }
  fputc('"', f);
}

typedef struct fail_ctx {
  FILE *f;
  bool json;
  int n;
} fail_ctx;

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
    fprintf(c->f, "    BAD ITEMS %s: %lld (%s)%s%s\n", unit, (long long)count, token,
            message && message[0] ? ": " : "", message ? message : "");
  }
  c->n++;
}

/* "slide"/"slides" and "row block"/"row blocks" by count. */
static const char *plural(int64_t n) {
  return n == 1 ? "" : "s";
}

/* One line per note ("unit\tnote\n" lines of ts_stage_counts.notes). */
static void print_notes(const ts_stage_counts *c, bool json) {
  int shown = 0;
  for (const char *p = c->notes; *p;) {
    const char *tab = strchr(p, '\t'), *nl = strchr(p, '\n');
    if (!nl) nl = p + strlen(p);
    if (!tab || tab > nl) break;
    char unit[512], note[1200];
    snprintf(unit, sizeof unit, "%.*s", (int)(tab - p), p);
    snprintf(note, sizeof note, "%.*s", (int)(nl - tab - 1), tab + 1);
    if (json) {
      printf("%s{\"unit\": ", shown ? ", " : "");
      json_str(stdout, unit);
      printf(", \"note\": ");
      json_str(stdout, note);
      printf("}");
    } else {
      printf("    WARNING %s: %s\n", unit, note);
    }
    shown++;
    p = *nl ? nl + 1 : nl;
  }
  if (!json && c->n_notes > shown)
    printf("    ... and %lld more warning(s) (sqlite3 RUN_DIR/ledger.sqlite \"select unit, note from units "
           "where stage='%s' and note is not null\")\n",
           (long long)(c->n_notes - shown), c->name);
}

int ts_cmd_status(int argc, char **argv) {
  if (ts_cli_wants_help(argc, argv)) {
    printf("usage: tessera status RUN_DIR [--json]\n\n"
           "Per stage: units done, failed and pending in the stage's own noun (slides, row blocks),\n"
           "the parts of units apart (the shards of a slide: \"3 slides done ... (12 shards)\"),\n"
           "every failed unit with its error token and message, every done unit with bad items\n"
           "(tiles that did not decode: the slide's other tiles have features), every warning a\n"
           "unit completed with (SLIDE_NO_TILES: a blank slide) and why a stage was skipped, as\n"
           "the run's ledger records them. --json prints\n"
           "{\"run_dir\", \"stages\": [{\"name\", \"unit_noun\", \"part_noun\", \"done\", \"failed\",\n"
           "  \"pending\", \"items\", \"items_unit\", \"parts\": {\"done\", \"failed\", \"pending\"},\n"
           "  \"skipped\" (why, or null), \"failures\": [{\"unit\", \"token\", \"message\"}],\n"
           "  \"bad_items\": [{\"unit\", \"count\", \"token\", \"message\"}],\n"
           "  \"notes\": [{\"unit\", \"note\"}]}]} (done, failed and pending count whole units).\n"
           "Exit code: 0 nothing failed or pending, 1 some units failed or are pending (or no stage\n"
           "has run yet), 2 no ledger.\n");
    return 0;
  }
  const char *dir = NULL;
  bool json = false;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--json"))
      json = true;
    else if (!dir && argv[i][0] != '-')
      dir = argv[i];
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
  if (!ts_io_exists(path)) {
    fprintf(stderr, "RUN_NO_LEDGER: %s has no ledger.sqlite: is it a tessera run directory?\n", dir);
    return TS_EXIT_USAGE;
  }
  if (ts_ledger_open(path, true, &l) < 0) { /* LEDGER_CORRUPT, LEDGER_TOO_NEW, ...: say which */
    fprintf(stderr, "%s\n", ts_error_message());
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
    printf("run %s\n", dir);
  }
  for (int i = 0; i < n; i++) {
    const ts_stage_counts *k = &c[i];
    const struct ts_stage *st = ts_stage_find(k->name); /* NULL: a stage this build lacks */
    const char *noun = st && st->unit_noun ? st->unit_noun : "unit";
    const char *part = st && st->part_noun ? st->part_noun : "part";
    const char *items_unit = st && st->items_unit ? st->items_unit : "items";
    int64_t parts = k->parts_done + k->parts_failed + k->parts_pending;
    if (k->failed || k->pending || k->parts_failed || k->parts_pending) code = TS_EXIT_FAILED_UNITS;
    if (json) {
      printf("%s{\"name\": ", i ? ", " : "");
      json_str(stdout, k->name);
      printf(", \"unit_noun\": ");
      json_str(stdout, noun);
      printf(", \"part_noun\": ");
      json_str(stdout, part);
      printf(", \"done\": %lld, \"failed\": %lld, \"pending\": %lld, \"items\": %lld, \"items_unit\": ",
             (long long)k->done, (long long)k->failed, (long long)k->pending, (long long)k->items);
      json_str(stdout, items_unit);
      printf(", \"parts\": {\"done\": %lld, \"failed\": %lld, \"pending\": %lld}, \"skipped\": ",
             (long long)k->parts_done, (long long)k->parts_failed, (long long)k->parts_pending);
      if (k->note[0])
        json_str(stdout, k->note);
      else
        printf("null");
      printf(", \"failures\": [");
    } else {
      printf("  %-10s %lld %s%s done, %lld failed, %lld pending", k->name, (long long)k->done, noun,
             plural(k->done), (long long)k->failed, (long long)k->pending);
      if (parts && !k->parts_failed && !k->parts_pending)
        printf(" (%lld %s%s)", (long long)parts, part, plural(parts));
      else if (parts)
        printf(" (%lld %s%s: %lld done, %lld failed, %lld pending)", (long long)parts, part, plural(parts),
               (long long)k->parts_done, (long long)k->parts_failed, (long long)k->parts_pending);
      if (st && st->items_unit) printf(", %lld %s", (long long)k->items, items_unit);
      printf("\n");
      if (k->note[0]) printf("    SKIPPED: %s\n", k->note);
    }
    fail_ctx fc = {stdout, json, 0};
    ts_ledger_failures(l, k->name, on_fail, &fc);
    if (json) printf("], \"bad_items\": [");
    fail_ctx bc = {stdout, json, 0};
    ts_ledger_bad_items(l, k->name, on_bad, &bc); /* a ledger older than the table has none */
    if (json) printf("], \"notes\": [");
    print_notes(k, json);
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
