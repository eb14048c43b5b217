/* cmd_report.c — `tessera report RUN_DIR`, `tessera compare A B`, `tessera rerun REPORT NEW_DIR`.
 *
 * compare: A and B are run directories (their report facts are rebuilt in memory, nothing is
 * written) or report.json files. Rules, in order:
 *   config   equal when the *portable* config hashes are (the resolved config without run.dir:
 *            a run and its rerun live in different directories by construction);
 *   inputs   cohort CSV SHA-256 and each slide's OpenSlide quickhash;
 *   outputs  every ledger output by path, equal when its content hash is (HDF5: data and
 *            attributes except save_path, savetodir, config_hash, slide_path — see
 *            ts_report.h; other files: the file SHA-256);
 *   results  every other leaf of report.json outside "run" and "reproducibility", matched by
 *            path (array elements by name/slide_id/unit/rank); numbers must be equal, and the
 *            relative difference is shown when they are not;
 *   performance  leaves under keys ending in seconds/_per_s/_per_h/_kb/per_rank/retried and
 *            started/finished: shown with their ratio B/A, never a difference.
 *   Library versions that differ are shown as a note.
 * Exit 0 identical, 1 different, 2 usage (or a side that cannot be read).
 *
 * rerun: the config text of report.json (the run's resolved config: every path absolute) is
 * written to a temporary file and run as `tessera run TMP --set run.dir=NEW_RUN_DIR`, after
 * checking that the cohort CSV and every slide still have the recorded checksum/quickhash
 * (INPUT_CHANGED, exit 2, unless --force). In-process, so `mpirun -np N tessera rerun ...`
 * works like `mpirun -np N tessera run ...`. The new run directory's config.yaml then differs
 * from the old one in run.dir only, so `tessera compare OLD NEW` compares like with like. */
#include <glib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ts_cli.h"
#include "ts_error.h"
#include "ts_io.h"
#include "ts_ledger.h"
#include "ts_report.h"
#include "ts_slide.h"
#include "ts_stage.h"

/* ===================================================================== report */

int ts_cmd_report(int argc, char **argv) {
  if (ts_cli_wants_help(argc, argv)) {
    printf("usage: tessera report RUN_DIR [--quiet]\n\n"
           "Writes RUN_DIR/report/index.html (one self-contained page: open it offline in any browser)\n"
           "and RUN_DIR/report/report.json (the same facts; schema in schemas/report.schema.json):\n"
           "what ran (version, build, config and hash, command lines, ranks, hosts, times, machine,\n"
           "library versions), per stage units done/failed/retried, wall time, throughput and time per\n"
           "rank, per slide QC images, tile count, mpp and its source and failures with their tokens,\n"
           "and what `tessera rerun` and `tessera compare` need (config, seeds, input and output\n"
           "checksums). Read-only on the ledger: safe while a run goes on. The pipeline's last stage\n"
           "(report) writes the same files at the end of every `tessera run`.\n"
           "Prints the path of index.html. Exit code: 0 written, 2 not a run directory or cannot write.\n");
    return 0;
  }
  const char *dir = NULL;
  bool quiet = false;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--quiet")) quiet = true;
    else if (!dir && argv[i][0] != '-') dir = argv[i];
    else {
      fprintf(stderr, "USAGE: unexpected argument '%s' (tessera report RUN_DIR [--quiet])\n", argv[i]);
      return TS_EXIT_USAGE;
    }
  }
  if (!dir) {
    fprintf(stderr, "USAGE: tessera report RUN_DIR [--quiet]\n");
    return TS_EXIT_USAGE;
  }
  ts_report_opts o = {.peak_rss_kb = 0, .quiet = true};
  char lp[TS_PATH_MAX];
  ts_ledger *l = NULL; /* the ledger's checks first (LEDGER_CORRUPT, ...): the report reads it raw */
  if (ts_io_join(dir, "ledger.sqlite", lp, sizeof lp) == 0 && ts_io_exists(lp) && ts_ledger_open(lp, true, &l) < 0) {
    fprintf(stderr, "%s\n", ts_error_message());
    return TS_EXIT_USAGE;
  }
  ts_ledger_close(&l);
  if (ts_report_write(dir, ts_stages, &o) < 0) {
    fprintf(stderr, "%s\n", ts_error_message());
    return TS_EXIT_USAGE;
  }
  char path[TS_PATH_MAX], abs[TS_PATH_MAX];
  if (!realpath(dir, abs)) snprintf(abs, sizeof abs, "%s", dir);
  snprintf(path, sizeof path, "%.4000s/report/index.html", abs);
  if (!quiet) printf("%s\n", path);
  return TS_EXIT_OK;
}

/* ==================================================================== compare */

static int load_side(const char *arg, ts_json *out) {
  struct stat sb;
  char *text = NULL;
  if (stat(arg, &sb) < 0) return ts_error_set(TS_EINPUT, "COMPARE_MISSING", "%s: no such run directory or report.json", arg);
  if (S_ISDIR(sb.st_mode)) TS_CALL(ts_report_build_json(arg, ts_stages, &text));
  else TS_CALL(ts_io_read_all(arg, &text, NULL));
  int rc = ts_json_parse(text, out);
  free(text);
  if (rc < 0) return ts_error_set(TS_EINPUT, "COMPARE_BAD_JSON", "%s: %s", arg, ts_error_message());
  if (!ts_json_str(out, "schema") || strcmp(ts_json_str(out, "schema"), TS_REPORT_SCHEMA)) {
    ts_json_clear(out);
    return ts_error_set(TS_EINPUT, "COMPARE_BAD_JSON", "%s: not a tessera report (schema %s expected)", arg, TS_REPORT_SCHEMA);
  }
  return 0;
}

static bool perf_key(const char *key) {
  static const char *const suffix[] = TS_REPORT_PERF_SUFFIXES;
  size_t n = strlen(key);
  for (int i = 0; suffix[i]; i++) {
    size_t m = strlen(suffix[i]);
    if (n >= m && !strcmp(key + n - m, suffix[i])) return true;
  }
  return false;
}

typedef struct leaf {
  const ts_json *v;
  bool perf;
} leaf;

/* Label of an array element: its name-like member, else its index. */
static void elem_label(const ts_json *e, int i, char *buf, size_t n) {
  static const char *const ids[] = {"name", "slide_id", "unit", "id", "rank", "path", NULL};
  for (int k = 0; ids[k]; k++) {
    const ts_json *v = ts_json_get(e, ids[k]);
    if (v && v->type == TS_JSTR) { snprintf(buf, n, "%s", v->str); return; }
    if (v && v->type == TS_JNUM) { snprintf(buf, n, "%s=%g", ids[k], v->num); return; }
  }
  snprintf(buf, n, "%d", i);
}

static void flatten(const ts_json *j, const char *path, bool perf, GHashTable *out) {
  char sub[1024];
  if (j->type == TS_JOBJ) {
    for (int i = 0; i < j->n; i++) {
      snprintf(sub, sizeof sub, "%s%s%s", path, path[0] ? "." : "", j->keys[i]);
      flatten(&j->kids[i], sub, perf || perf_key(j->keys[i]), out);
    }
  } else if (j->type == TS_JARR) {
    for (int i = 0; i < j->n; i++) {
      char lab[256];
      elem_label(&j->kids[i], i, lab, sizeof lab);
      snprintf(sub, sizeof sub, "%s[%s]", path, lab);
      flatten(&j->kids[i], sub, perf, out);
    }
  } else {
    leaf *l = g_new(leaf, 1);
    l->v = j;
    l->perf = perf;
    g_hash_table_insert(out, g_strdup(path), l);
  }
}

static void leaf_text(const ts_json *v, char *buf, size_t n) {
  switch (v ? v->type : TS_JNULL) {
  case TS_JNUM: snprintf(buf, n, "%.10g", v->num); break;
  case TS_JSTR: snprintf(buf, n, "\"%.200s\"", v->str); break;
  case TS_JBOOL: snprintf(buf, n, "%s", v->num ? "true" : "false"); break;
  default: snprintf(buf, n, "%s", v ? "null" : "(absent)"); break;
  }
}

static bool leaf_equal(const ts_json *a, const ts_json *b) {
  if (!a || !b || a->type != b->type) return false;
  if (a->type == TS_JNUM || a->type == TS_JBOOL) return a->num == b->num;
  if (a->type == TS_JSTR) return !strcmp(a->str, b->str);
  return true;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

typedef struct cmp_state {
  int differ;   /* counts toward the verdict */
  bool verbose;
} cmp_state;

static void compare_results(const ts_json *A, const ts_json *B, cmp_state *cs) {
  GHashTable *ha = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  GHashTable *hb = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  static const char *const skip[] = {"schema", "generated", "run_dir", "sections", "run", "reproducibility", NULL};
  const ts_json *sides[2] = {A, B};
  GHashTable *hs[2] = {ha, hb};
  for (int s = 0; s < 2; s++)
    for (int i = 0; i < sides[s]->n; i++) {
      bool sk = false;
      for (int k = 0; skip[k]; k++) sk |= !strcmp(sides[s]->keys[i], skip[k]);
      if (!sk) flatten(&sides[s]->kids[i], sides[s]->keys[i], perf_key(sides[s]->keys[i]), hs[s]);
    }
  /* all paths of both sides, sorted */
  GHashTable *all = g_hash_table_new(g_str_hash, g_str_equal);
  GHashTableIter it;
  gpointer k, v;
  for (int s = 0; s < 2; s++) {
    g_hash_table_iter_init(&it, hs[s]);
    while (g_hash_table_iter_next(&it, &k, &v)) g_hash_table_add(all, k);
  }
  guint n = 0;
  char **keys = (char **)g_hash_table_get_keys_as_array(all, &n);
  qsort(keys, n, sizeof *keys, cmp_str);
  int same = 0, diff = 0, perf = 0;
  for (guint i = 0; i < n; i++) {
    leaf *la = g_hash_table_lookup(ha, keys[i]), *lb = g_hash_table_lookup(hb, keys[i]);
    bool is_perf = (la && la->perf) || (lb && lb->perf);
    const ts_json *va = la ? la->v : NULL, *vb = lb ? lb->v : NULL;
    char ta[256], tb[256];
    leaf_text(va, ta, sizeof ta);
    leaf_text(vb, tb, sizeof tb);
    if (is_perf) {
      if (va && vb && va->type == TS_JNUM && vb->type == TS_JNUM && cs->verbose) {
        if (va->num != 0) printf("  perf     %-52s %12.4g  %12.4g  x%.3f\n", keys[i], va->num, vb->num, vb->num / va->num);
        else printf("  perf     %-52s %12.4g  %12.4g\n", keys[i], va->num, vb->num);
      }
      perf++;
      continue;
    }
    if (leaf_equal(va, vb)) {
      same++;
      continue;
    }
    diff++;
    if (va && vb && va->type == TS_JNUM && vb->type == TS_JNUM) {
      double d = vb->num - va->num, rel = va->num != 0 ? d / fabs(va->num) : NAN;
      printf("  DIFFERS  %s: %s → %s (%+g", keys[i], ta, tb, d);
      if (isfinite(rel)) printf(", %+.3g%%", 100 * rel);
      printf(")\n");
    } else {
      printf("  DIFFERS  %s: %s → %s\n", keys[i], ta, tb);
    }
  }
  printf("results      %d identical, %d differ (%d performance figures, informational%s)\n", same, diff, perf,
         cs->verbose ? "" : "; --verbose lists them");
  cs->differ += diff;
  g_free(keys);
  g_hash_table_destroy(all);
  g_hash_table_destroy(ha);
  g_hash_table_destroy(hb);
}

static const ts_json *find_by(const ts_json *arr, const char *key, const char *val) {
  for (int i = 0; arr && arr->type == TS_JARR && i < arr->n; i++) {
    const char *s = ts_json_str(&arr->kids[i], key);
    if (s && !strcmp(s, val)) return &arr->kids[i];
  }
  return NULL;
}

static bool str_eq(const char *a, const char *b) { return a && b && !strcmp(a, b); }

static void compare_repro(const ts_json *A, const ts_json *B, cmp_state *cs) {
  /* config */
  const char *pa = ts_json_str(A, "reproducibility.config.portable_sha256"), *pb = ts_json_str(B, "reproducibility.config.portable_sha256");
  if (str_eq(pa, pb))
    printf("config       identical (portable sha256 %.16s…%s)\n", pa,
           str_eq(ts_json_str(A, "reproducibility.config.sha256"), ts_json_str(B, "reproducibility.config.sha256")) ? "" : "; run.dir differs");
  else {
    printf("config       DIFFERS (portable sha256 %.16s… vs %.16s…): diff the two config texts in report.json\n", pa ? pa : "?", pb ? pb : "?");
    cs->differ++;
  }
  /* inputs */
  int in_diff = 0, in_same = 0;
  const char *ca = ts_json_str(A, "reproducibility.inputs.cohort_csv.sha256"), *cb = ts_json_str(B, "reproducibility.inputs.cohort_csv.sha256");
  if (str_eq(ca, cb)) in_same++;
  else { in_diff++; printf("  DIFFERS  input cohort CSV sha256 %.16s… vs %.16s…\n", ca ? ca : "?", cb ? cb : "?"); }
  const ts_json *sa = ts_json_get(A, "reproducibility.inputs.slides"), *sb = ts_json_get(B, "reproducibility.inputs.slides");
  for (int i = 0; sa && sa->type == TS_JARR && i < sa->n; i++) {
    const char *id = ts_json_str(&sa->kids[i], "slide_id");
    const ts_json *o = id ? find_by(sb, "slide_id", id) : NULL;
    const char *qa = ts_json_str(&sa->kids[i], "quickhash"), *qb = o ? ts_json_str(o, "quickhash") : NULL;
    if (o && ((!qa && !qb) || str_eq(qa, qb))) in_same++;
    else { in_diff++; printf("  DIFFERS  input slide %s: quickhash %.16s vs %.16s\n", id ? id : "?", qa ? qa : "-", qb ? qb : (o ? "-" : "(absent)")); }
  }
  for (int i = 0; sb && sb->type == TS_JARR && i < sb->n; i++) {
    const char *id = ts_json_str(&sb->kids[i], "slide_id");
    if (id && !find_by(sa, "slide_id", id)) { in_diff++; printf("  DIFFERS  input slide %s only in B\n", id); }
  }
  printf("inputs       %d identical, %d differ\n", in_same, in_diff);
  cs->differ += in_diff;
  /* outputs */
  int o_same = 0, o_diff = 0, only_a = 0, only_b = 0;
  const ts_json *oa = ts_json_get(A, "reproducibility.outputs"), *ob = ts_json_get(B, "reproducibility.outputs");
  for (int i = 0; oa && oa->type == TS_JARR && i < oa->n; i++) {
    const char *p = ts_json_str(&oa->kids[i], "path");
    const ts_json *o = p ? find_by(ob, "path", p) : NULL;
    if (!o) { only_a++; printf("  ONLY A   output %s\n", p ? p : "?"); continue; }
    const char *ha = ts_json_str(&oa->kids[i], "content_sha256"), *hb = ts_json_str(o, "content_sha256");
    if (!ha || !hb) { ha = ts_json_str(&oa->kids[i], "sha256"); hb = ts_json_str(o, "sha256"); }
    if (str_eq(ha, hb)) o_same++;
    else { o_diff++; printf("  DIFFERS  output %s (content sha256 %.12s… vs %.12s…)\n", p, ha ? ha : "?", hb ? hb : "?"); }
  }
  for (int i = 0; ob && ob->type == TS_JARR && i < ob->n; i++) {
    const char *p = ts_json_str(&ob->kids[i], "path");
    if (p && !find_by(oa, "path", p)) { only_b++; printf("  ONLY B   output %s\n", p); }
  }
  printf("outputs      %d identical, %d differ, %d only in A, %d only in B\n", o_same, o_diff, only_a, only_b);
  cs->differ += o_diff + only_a + only_b;
  /* versions: a note */
  const ts_json *va = ts_json_get(A, "reproducibility.versions"), *vb = ts_json_get(B, "reproducibility.versions");
  for (int i = 0; va && va->type == TS_JOBJ && i < va->n; i++) {
    const char *x = va->kids[i].type == TS_JSTR ? va->kids[i].str : NULL;
    const char *y = ts_json_str(vb, va->keys[i]);
    if (!str_eq(x, y)) printf("note         %s version %s → %s\n", va->keys[i], x ? x : "?", y ? y : "?");
  }
}

int ts_cmd_compare(int argc, char **argv) {
  if (ts_cli_wants_help(argc, argv)) {
    printf("usage: tessera compare A B [--verbose]\n\n"
           "A and B: run directories or report.json files. Says which outputs are identical (by content\n"
           "checksum), which inputs and config differ, and which result figures differ and by how much.\n"
           "  config       portable config hash (the resolved config without run.dir)\n"
           "  inputs       cohort CSV SHA-256, each slide's OpenSlide quickhash\n"
           "  outputs      each ledger output's content hash (HDF5: data and attributes, except the\n"
           "               run-specific save_path, savetodir, config_hash and slide_path attributes)\n"
           "  results      every other figure of report.json (tile counts, units done/failed, mpp, ...)\n"
           "  performance  times, throughput, memory, placement on ranks: shown with --verbose as B/A\n"
           "               ratios, never a difference\n"
           "Exit code: 0 identical, 1 different, 2 usage or a side that cannot be read.\n");
    return 0;
  }
  const char *a = NULL, *b = NULL;
  cmp_state cs = {0, false};
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--verbose") || !strcmp(argv[i], "-v")) cs.verbose = true;
    else if (argv[i][0] != '-' && !a) a = argv[i];
    else if (argv[i][0] != '-' && !b) b = argv[i];
    else {
      fprintf(stderr, "USAGE: unexpected argument '%s' (tessera compare A B [--verbose])\n", argv[i]);
      return TS_EXIT_USAGE;
    }
  }
  if (!a || !b) {
    fprintf(stderr, "USAGE: tessera compare A B [--verbose]   (run directories or report.json files)\n");
    return TS_EXIT_USAGE;
  }
  ts_json ja, jb;
  if (load_side(a, &ja) < 0) {
    fprintf(stderr, "%s\n", ts_error_message());
    return TS_EXIT_USAGE;
  }
  if (load_side(b, &jb) < 0) {
    fprintf(stderr, "%s\n", ts_error_message());
    ts_json_clear(&ja);
    return TS_EXIT_USAGE;
  }
  printf("A %s\nB %s\n", a, b);
  compare_repro(&ja, &jb, &cs);
  compare_results(&ja, &jb, &cs);
  printf("verdict      %s\n", cs.differ ? "DIFFERENT" : "IDENTICAL");
  ts_json_clear(&ja);
  ts_json_clear(&jb);
  return cs.differ ? TS_EXIT_FAILED_UNITS : TS_EXIT_OK;
}

/* ====================================================================== rerun */

static int check_inputs(const ts_json *j) {
  int bad = 0;
  const char *csv = ts_json_str(j, "reproducibility.inputs.cohort_csv.path");
  const char *want = ts_json_str(j, "reproducibility.inputs.cohort_csv.sha256");
  char hex[65];
  int64_t bytes = 0;
  if (csv && want) {
    if (ts_io_sha256_file(csv, hex, &bytes) < 0) {
      fprintf(stderr, "INPUT_CHANGED: cohort CSV %s cannot be read\n", csv);
      bad++;
    } else if (strcmp(hex, want)) {
      fprintf(stderr, "INPUT_CHANGED: cohort CSV %s has sha256 %s, the report recorded %s\n", csv, hex, want);
      bad++;
    }
  }
  const ts_json *slides = ts_json_get(j, "reproducibility.inputs.slides");
  for (int i = 0; slides && slides->type == TS_JARR && i < slides->n; i++) {
    const char *id = ts_json_str(&slides->kids[i], "slide_id"), *path = ts_json_str(&slides->kids[i], "path");
    const char *qh = ts_json_str(&slides->kids[i], "quickhash");
    if (!id || !path || !qh) continue; /* nothing recorded: the slide failed before hashing */
    ts_slide *s = NULL;
    if (ts_slide_open(path, id, &s) < 0) {
      fprintf(stderr, "INPUT_CHANGED: slide %s (%s): %s\n", id, path, ts_error_message());
      bad++;
      continue;
    }
    if (strcmp(ts_slide_quickhash(s), qh)) {
      fprintf(stderr, "INPUT_CHANGED: slide %s (%s) has quickhash %s, the report recorded %s\n", id, path, ts_slide_quickhash(s), qh);
      bad++;
    }
    ts_slide_free(&s);
  }
  return bad;
}

int ts_cmd_rerun(int argc, char **argv) {
  if (ts_cli_wants_help(argc, argv)) {
    printf("usage: tessera rerun REPORT.json NEW_RUN_DIR [--force] [tessera run options...]\n"
           "       mpirun -np N tessera rerun REPORT.json NEW_RUN_DIR ...\n\n"
           "Repeats the run that REPORT.json describes in NEW_RUN_DIR: the run's resolved config (every\n"
           "path in it absolute) with run.dir replaced, run as `tessera run` in this process. First\n"
           "checks that the cohort CSV still has the recorded SHA-256 and every slide the recorded\n"
           "OpenSlide quickhash (INPUT_CHANGED, exit 2, unless --force). Afterwards\n"
           "`tessera compare OLD_RUN_DIR NEW_RUN_DIR` says whether the results reproduced.\n"
           "Other options (--quiet, --set section.key=value) go to `tessera run`.\n"
           "Exit code: that of `tessera run`; 2 for a usage error or changed inputs.\n");
    return 0;
  }
  const char *report = NULL, *dir = NULL;
  bool force = false;
  char **pass = calloc((size_t)argc + 4, sizeof *pass);
  int np = 0;
  if (!pass) return TS_EXIT_USAGE;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--force")) force = true;
    else if (!strcmp(argv[i], "--set") && i + 1 < argc) { pass[np++] = argv[i]; pass[np++] = argv[++i]; }
    else if (argv[i][0] == '-') pass[np++] = argv[i];
    else if (!report) report = argv[i];
    else if (!dir) dir = argv[i];
    else {
      fprintf(stderr, "USAGE: unexpected argument '%s'\n", argv[i]);
      free(pass);
      return TS_EXIT_USAGE;
    }
  }
  if (!report || !dir) {
    fprintf(stderr, "USAGE: tessera rerun REPORT.json NEW_RUN_DIR [--force] [tessera run options...]\n");
    free(pass);
    return TS_EXIT_USAGE;
  }
  int code = TS_EXIT_USAGE;
  char *text = NULL, tmp[64] = "", abs_dir[TS_PATH_MAX], set[TS_PATH_MAX + 16];
  ts_json j;
  memset(&j, 0, sizeof j);
  if (ts_io_read_all(report, &text, NULL) < 0 || ts_json_parse(text, &j) < 0) {
    fprintf(stderr, "%s\n", ts_error_message());
    goto out;
  }
  const char *cfg = ts_json_str(&j, "reproducibility.config.text");
  if (!str_eq(ts_json_str(&j, "schema"), TS_REPORT_SCHEMA) || !cfg) {
    fprintf(stderr, "RERUN_BAD_REPORT: %s is not a tessera report.json with a config\n", report);
    goto out;
  }
  if (check_inputs(&j) && !force) {
    fprintf(stderr, "the inputs differ from those of the report: not rerunning (--force to run anyway)\n");
    goto out;
  }
  if (dir[0] == '/') snprintf(abs_dir, sizeof abs_dir, "%s", dir);
  else {
    char cwd[TS_PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) goto out;
    snprintf(abs_dir, sizeof abs_dir, "%.2000s/%.2000s", cwd, dir);
  }
  snprintf(tmp, sizeof tmp, "/tmp/tessera-rerun-XXXXXX.yaml");
  int fd = mkstemps(tmp, 5);
  if (fd < 0) {
    fprintf(stderr, "RERUN_IO: cannot create a temporary config file in /tmp\n");
    tmp[0] = '\0';
    goto out;
  }
  size_t len = strlen(cfg);
  bool ok = write(fd, cfg, len) == (ssize_t)len;
  close(fd);
  if (!ok) {
    fprintf(stderr, "RERUN_IO: cannot write %s\n", tmp);
    goto out;
  }
  snprintf(set, sizeof set, "run.dir=%s", abs_dir);
  char *run_argv[8 + 64], argv0[TS_PATH_MAX * 2 + 32];
  int ra = 0;
  /* argv[0] is what the ledger records before the rest: say where the config came from */
  snprintf(argv0, sizeof argv0, "rerun %.4000s %.4000s: run", report, dir);
  run_argv[ra++] = argv0;
  run_argv[ra++] = tmp;
  run_argv[ra++] = "--set";
  run_argv[ra++] = set;
  for (int i = 0; i < np && ra < (int)(sizeof run_argv / sizeof run_argv[0]) - 1; i++) run_argv[ra++] = pass[i];
  run_argv[ra] = NULL;
  code = ts_cmd_run(ra, run_argv);
out:
  if (tmp[0]) unlink(tmp);
  ts_json_clear(&j);
  free(text);
  free(pass);
  return code;
}
