/* cmd_synth.c — `tessera synth OUT_DIR ...`: the command-line face of ts_synth_cohort().
 *
 * A hand-written parser rather than getopt_long: no global state (optind), so the command can
 * be called more than once in one process (tests), and OUT_DIR may come before or after the
 * options. The output directory must be empty or missing unless --force: a user's files are
 * never touched, and with --force synth only replaces the files it writes itself (it deletes
 * nothing).
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ts_cli.h"
#include "ts_error.h"
#include "ts_synth.h"

static const char help_text[] =
    "usage: tessera synth OUT_DIR [--slides N] [--size PX] [--seed S] [--mpp X] [--no-mpp]\n"
    "                     [--genes N] [--quality Q] [--force] [--quiet]\n"
    "\n"
    "Write a synthetic cohort with known ground truth into OUT_DIR: H&E-looking pyramidal\n"
    "JPEG-tiled TIFF slides (Aperio-style description: OpenSlide reports vendor aperio, mpp and\n"
    "objective power), tissue and tumour masks, a cohort CSV, clinical and genomic CSVs drawn\n"
    "from known models, and a ready-to-run config.yaml. Same options, same bytes.\n"
    "\n"
    "  --slides N    number of slides, one patient each (default 6); about half have a\n"
    "                tumour (label 1); with N >= 3 one slide is blank\n"
    "  --size PX     level-0 side of each (square) slide, 512..200000 (default 8192);\n"
    "                100000 makes a gigapixel slide in bounded memory\n"
    "  --seed S      random seed, an unsigned 64-bit integer (default 1)\n"
    "  --mpp X       level-0 micrometres per pixel (default 0.25); objective power = 10 / X\n"
    "  --no-mpp      leave the pixel size out of the slides (the pixels are still drawn at X)\n"
    "  --genes N     genes in genomic.csv (default 300); 5 of them track tumour burden\n"
    "  --quality Q   JPEG quality 1..100 (default 80)\n"
    "  --force       write into a non-empty OUT_DIR (only synth's own files are replaced)\n"
    "  --quiet       no progress lines\n"
    "\n"
    "Files: slides/<id>.tiff, truth/{<id>.tissue.png,<id>.tumour.png,slides.csv,cox_truth.csv,\n"
    "genomic_truth.csv}, cohort.csv, clinical.csv, genomic.csv, config.yaml.\n"
    "Exit status: 0 done, 1 failed, 2 usage error.\n";

static int usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "USAGE: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n(see tessera synth --help)\n");
  va_end(ap);
  return 2;
}

static bool parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out) {
  if (!s || !*s) return false;
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || *end || v < lo || v > hi) return false;
  *out = v;
  return true;
}

static bool parse_u64(const char *s, uint64_t *out) {
  if (!s || !*s || *s == '-' || *s == '+') return false;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end) return false;
  *out = v;
  return true;
}

static bool parse_double(const char *s, double *out) {
  if (!s || !*s) return false;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || *end) return false;
  *out = v;
  return true;
}

/* 1: OUT_DIR is missing or empty, 0: it has entries, -1: it is not a readable directory. */
static int dir_is_empty(const char *path) {
  struct stat st;
  if (stat(path, &st) < 0) return errno == ENOENT ? 1 : -1;
  if (!S_ISDIR(st.st_mode)) return -1;
  DIR *d = opendir(path);
  if (!d) return -1;
  struct dirent *e;
  int empty = 1;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
      empty = 0;
      break;
    }
  closedir(d);
  return empty;
}

int ts_cmd_synth(int argc, char **argv) {
  ts_synth_opts o;
  ts_synth_opts_default(&o);
  bool force = false;
  const char *out_dir = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      fputs(help_text, stdout);
      return 0;
    }
    if (strcmp(a, "--no-mpp") == 0) {
      o.no_mpp = true;
      continue;
    }
    if (strcmp(a, "--force") == 0) {
      force = true;
      continue;
    }
    if (strcmp(a, "--quiet") == 0) {
      o.quiet = true;
      continue;
    }
    if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
      if (a[0] == '-' && a[1] != '\0') return usage("unknown option '%s'", a);
      if (out_dir) return usage("more than one OUT_DIR ('%s')", a);
      out_dir = a;
      continue;
    }
    /* --name VALUE or --name=VALUE */
    char name[32];
    const char *val, *eq = strchr(a, '=');
    if (eq) {
      size_t len = (size_t)(eq - a);
      if (len >= sizeof name) return usage("unknown option '%s'", a);
      memcpy(name, a, len);
      name[len] = '\0';
      val = eq + 1;
    } else {
      snprintf(name, sizeof name, "%s", a);
      val = NULL;
    }
    static const char *const valued[] = {"--slides", "--size",    "--seed", "--mpp",
                                         "--genes",  "--quality", NULL};
    bool known = false;
    for (int k = 0; valued[k]; k++)
      known |= strcmp(name, valued[k]) == 0;
    if (!known) return usage("unknown option '%s'", name);
    if (!val) {
      if (i + 1 >= argc) return usage("option '%s' needs a value", a);
      val = argv[++i];
    }
    int64_t v;
    if (strcmp(name, "--slides") == 0) {
      if (!parse_i64(val, 1, 99999, &v)) return usage("--slides wants 1..99999, not '%s'", val);
      o.n_slides = (int)v;
    } else if (strcmp(name, "--size") == 0) {
      if (!parse_i64(val, 512, 200000, &v)) return usage("--size wants 512..200000 px, not '%s'", val);
      o.size_px = v;
    } else if (strcmp(name, "--seed") == 0) {
      if (!parse_u64(val, &o.seed)) return usage("--seed wants an unsigned 64-bit integer, not '%s'", val);
    } else if (strcmp(name, "--mpp") == 0) {
      if (!parse_double(val, &o.mpp) || !(o.mpp >= 0.05 && o.mpp <= 10))
        return usage("--mpp wants 0.05..10 um/px, not '%s'", val);
    } else if (strcmp(name, "--genes") == 0) {
      if (!parse_i64(val, 1, 100000, &v)) return usage("--genes wants 1..100000, not '%s'", val);
      o.n_genes = (int)v;
    } else if (strcmp(name, "--quality") == 0) {
      if (!parse_i64(val, 1, 100, &v)) return usage("--quality wants 1..100, not '%s'", val);
      o.jpeg_q = (int)v;
    } else {
      return usage("unknown option '%s'", name);
    }
  }
  if (!out_dir) return usage("missing OUT_DIR");
  int empty = dir_is_empty(out_dir);
  if (empty < 0) {
    fprintf(stderr, "SYNTH_OUT_DIR: '%s' exists and is not a readable directory\n", out_dir);
    return 1;
  }
  if (!empty && !force) {
    fprintf(stderr,
            "SYNTH_OUT_NOT_EMPTY: '%s' is not empty; choose a new directory, or pass --force "
            "to replace the files synth writes (nothing else is touched)\n",
            out_dir);
    return 1;
  }
  o.out_dir = out_dir;
  if (ts_synth_cohort(&o) < 0) {
    fprintf(stderr, "%s\n", ts_error_message());
    if (getenv("TESSERA_DEBUG")) fprintf(stderr, "%s\n", ts_error_trace());
    return 1;
  }
  if (!o.quiet) fprintf(stderr, "synth: wrote %d slides to %s\n", o.n_slides, out_dir);
  return 0;
}
