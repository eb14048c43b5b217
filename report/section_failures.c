/* section_failures.c — the report's "failures" section: every failed unit of every stage with
 * its token and message, counts by token, and every unit that completed with a warning (its
 * note: SLIDE_NO_TILES for a blank slide), so that nothing that went wrong is green and silent.
 * Generic over the stages; loaded once through the read API (ts_report_units_load). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_error.h"
#include "ts_report.h"
#include "ts_report_internal.h"

typedef struct failures_data {
  ts_report_units all;
  int64_t n_failed, n_warned;
} failures_data;

static void failures_release(void *p) {
  failures_data *d = p;
  if (!d) return;
  ts_report_units_clear(&d->all);
  free(d);
}

static int failures_load(const ts_report *r, void **data_out) {
  failures_data *d = calloc(1, sizeof *d);
  if (!d) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "report failures");
  if (ts_report_units_load(r, NULL, &d->all) < 0) {
    free(d);
    return -1;
  }
  for (int64_t i = 0; i < d->all.n; i++) {
    d->n_failed += !strcmp(d->all.v[i].state, "failed");
    d->n_warned += !strcmp(d->all.v[i].state, "done") && d->all.v[i].note[0];
  }
  *data_out = d;
  return 1;
}

/* The token of a note ("SLIDE_NO_TILES: ..." → "SLIDE_NO_TILES"), "" when it has none. */
static void note_token(const char *note, char *buf, size_t n) {
  size_t k = strspn(note, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
  if (k == 0 || note[k] != ':' || k >= n) k = 0;
  memcpy(buf, note, k);
  buf[k] = '\0';
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int failures_json(const ts_report *r, const void *data, ts_report_out *o) {
  (void)r;
  const failures_data *d = data;
  const ts_report_units *u = &d->all;
  /* by token, sorted */
  const char **tok = calloc((size_t)(d->n_failed + 1), sizeof *tok);
  if (!tok) return ts_error_set(TS_ENOMEM, "NO_MEMORY", "report failures");
  int64_t nt = 0;
  for (int64_t i = 0; i < u->n; i++)
    if (!strcmp(u->v[i].state, "failed")) tok[nt++] = u->v[i].error_token;
  qsort(tok, (size_t)nt, sizeof *tok, cmp_str);
  ts_report_json_object(o, "by_token");
  for (int64_t i = 0, j; i < nt; i = j) {
    for (j = i; j < nt && !strcmp(tok[j], tok[i]); j++) {}
    ts_report_json_int(o, tok[i], j - i);
  }
  ts_report_json_end(o);
  free(tok);
  ts_report_json_array(o, "units");
  for (int64_t i = 0; i < u->n; i++) {
    const ts_report_unit *x = &u->v[i];
    if (strcmp(x->state, "failed")) continue;
    ts_report_json_object(o, NULL);
    ts_report_json_str(o, "stage", x->stage);
    ts_report_json_str(o, "unit", x->unit);
    ts_report_json_str(o, "token", x->error_token);
    ts_report_json_str(o, "message", x->error_message);
    ts_report_json_end(o);
  }
  ts_report_json_end(o);
  ts_report_json_array(o, "warnings");
  for (int64_t i = 0; i < u->n; i++) {
    const ts_report_unit *x = &u->v[i];
    if (strcmp(x->state, "done") || !x->note[0]) continue;
    char t[64];
    note_token(x->note, t, sizeof t);
    ts_report_json_object(o, NULL);
    ts_report_json_str(o, "stage", x->stage);
    ts_report_json_str(o, "unit", x->unit);
    ts_report_json_str(o, "token", t);
    ts_report_json_str(o, "message", x->note);
    ts_report_json_end(o);
  }
  ts_report_json_end(o);
  return 0;
}

static int failures_html(const ts_report *r, const void *data, ts_report_out *o) {
  (void)r;
  const failures_data *d = data;
  const ts_report_units *u = &d->all;
  if (d->n_failed) {
    ts_report_html(o, "<table id=\"failure-table\"><tr><th>stage</th><th>unit</th><th>token</th><th>message</th><th>attempts</th></tr>\n");
    for (int64_t i = 0; i < u->n; i++) {
      const ts_report_unit *x = &u->v[i];
      if (strcmp(x->state, "failed")) continue;
      ts_report_html(o, "<tr><td>");
      ts_report_html_text(o, x->stage);
      ts_report_html(o, "</td><td>");
      ts_report_html_text(o, x->unit);
      ts_report_html(o, "</td><td><span class=\"tok\">");
      ts_report_html_text(o, x->error_token);
      ts_report_html(o, "</span></td><td>");
      ts_report_html_text(o, ts_report_msg_body(x->error_token, x->error_message));
      ts_report_html(o, "</td><td class=\"n\">%lld</td></tr>\n", (long long)x->attempts);
    }
    ts_report_html(o, "</table>\n<p>Failed units are retried by the next <code>tessera run</code> of this run "
                      "directory only if their input changed or the failure was transient.</p>\n");
  } else {
    ts_report_html(o, "<p class=\"ok\" id=\"no-failures\">No unit failed.</p>\n");
  }
  if (d->n_warned) {
    ts_report_html(o, "<h3 class=\"warn\">Warnings: units done with a note</h3>\n"
                      "<table id=\"warning-table\"><tr><th>stage</th><th>unit</th><th>token</th><th>note</th></tr>\n");
    for (int64_t i = 0; i < u->n; i++) {
      const ts_report_unit *x = &u->v[i];
      if (strcmp(x->state, "done") || !x->note[0]) continue;
      char t[64];
      note_token(x->note, t, sizeof t);
      ts_report_html(o, "<tr><td>");
      ts_report_html_text(o, x->stage);
      ts_report_html(o, "</td><td>");
      ts_report_html_text(o, x->unit);
      ts_report_html(o, "</td><td><span class=\"wtok\">");
      ts_report_html_text(o, t);
      ts_report_html(o, "</span></td><td>");
      ts_report_html_text(o, ts_report_msg_body(t, x->note));
      ts_report_html(o, "</td></tr>\n");
    }
    ts_report_html(o, "</table>\n");
  }
  return 0;
}

const struct ts_report_section ts__report_section_failures = {.abi = TS_REPORT_SECTION_ABI,
                                                              .name = "failures",
                                                              .title = "Failures",
                                                              .load = failures_load,
                                                              .release = failures_release,
                                                              .html = failures_html,
                                                              .json = failures_json};
