/* cmd_init.c — `tessera init SLIDE_DIR [--out DIR]`: for a user with a folder of slides and no
 * cohort CSV. Scans the folder (and its subfolders: GDC downloads put each slide in a folder of
 * its own) for slide files, writes DIR/cohort.csv (slide_id,patient_id,path) and a starter
 * DIR/config.yaml whose every key is listed with its default and doc, commented out where the
 * default stands. The config text comes from schemas/config_params.h, the one table of keys,
 * so it cannot drift from what `tessera run` accepts.
 *
 * Ids: slide_id is the file name without its extension, made safe (ts_id_is_safe: characters
 * outside [A-Za-z0-9._-] become '_'; a second slide with the same stem gets "-2", "-3", ...);
 * patient_id is the first 12 characters of a TCGA barcode (TCGA-XX-XXXX, the participant),
 * else the slide id (one patient per slide: edit the CSV when patients have several).
 * Paths are absolute, so the CSV works from any directory.
 *
 * Never overwrites: if DIR/cohort.csv or DIR/config.yaml exists, nothing is written and the
 * command exits 2 with INIT_EXISTS. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <glib.h>

#include "ts_cli.h"
#include "ts_cli_setup.h"
#include "ts_error.h"
#include "ts_io.h"

static const char INIT_USAGE[] =
    "usage: tessera init SLIDE_DIR [--out DIR]\n"
    "\n"
    "Start a project from a folder of slides: finds the slide files in SLIDE_DIR and its\n"
    "subfolders (.svs .tif .tiff .ndpi .mrxs .scn .vms .vmu .bif .svslide) and writes\n"
    "  DIR/cohort.csv   slide_id,patient_id,path: slide_id from the file name (made safe),\n"
    "                   patient_id the TCGA participant (first 12 characters of TCGA-XX-XXXX\n"
    "                   names), else the slide id; absolute paths\n"
    "  DIR/config.yaml  run.dir and cohort.csv set, every other key with its default (commented)\n"
    "  --out DIR        where to write them (default: the current directory; created if missing)\n"
    "Existing files are never overwritten (INIT_EXISTS). Next: tessera check DIR/config.yaml.\n"
    "Exit: 0 written, 2 usage error, no slides found, or a file already there.\n";

static const char *const SLIDE_EXT[] = {".svs", ".tif", ".tiff", ".ndpi",    ".mrxs", ".scn",
                                        ".vms", ".vmu", ".bif",  ".svslide", NULL};

#define MAX_DEPTH 8 /* subfolder levels scanned (and a bound on symlink loops) */

typedef struct slide_file {
  char *path; /* absolute */
  char id[129], patient[129];
} slide_file;

typedef struct slide_list {
  slide_file *v;
  size_t n, cap;
} slide_list;

/* Length of the slide extension that name ends with, 0 if none. */
static size_t slide_ext_len(const char *name) {
  size_t n = strlen(name);
  for (const char *const *e = SLIDE_EXT; *e; e++) {
    size_t k = strlen(*e);
    if (n > k && !strcasecmp(name + n - k, *e)) return k;
  }
  return 0;
}

static int list_add(slide_list *l, const char *path) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 64;
    slide_file *v = realloc(l->v, cap * sizeof *v);
    if (!v) return ts_error_set(TS_ENOMEM, "OUT_OF_MEMORY", "init: %zu slides", l->n);
    l->v = v;
    l->cap = cap;
  }
  slide_file *f = &l->v[l->n];
  memset(f, 0, sizeof *f);
  if (!(f->path = strdup(path))) return ts_error_set(TS_ENOMEM, "OUT_OF_MEMORY", "init");
  l->n++;
  return 0;
}

static void list_free(slide_list *l) {
  for (size_t i = 0; i < l->n; i++)
    free(l->v[i].path);
  free(l->v);
  memset(l, 0, sizeof *l);
}

/* Add the slide files under dir (absolute) to l; hidden entries are skipped. */
static int scan(const char *dir, int depth, slide_list *l) {
  DIR *d = opendir(dir);
  if (!d) {
    if (depth == 0)
      return ts_error_set(TS_EINPUT, "INIT_NO_DIR", "%s: cannot read the slide folder (%s)", dir,
                          strerror(errno));
    return 0; /* an unreadable subfolder: not ours to judge */
  }
  int rc = 0;
  for (struct dirent *e; (e = readdir(d));) {
    if (e->d_name[0] == '.') continue;
    char p[TS_PATH_MAX];
    if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) >= (int)sizeof p) continue;
    struct stat st;
    if (stat(p, &st) < 0) continue;
    if (S_ISDIR(st.st_mode)) {
      if (depth + 1 < MAX_DEPTH) TS_TRY(scan(p, depth + 1, l));
    } else if (S_ISREG(st.st_mode) && slide_ext_len(e->d_name)) {
      if (strpbrk(p, "\n\r")) {
        fprintf(stderr, "init: skipping '%s': a line break in the path cannot go in a CSV\n", p);
        continue;
      }
      TS_TRY(list_add(l, p));
    }
  }
out:
  closedir(d);
  return rc;
}

static int cmp_path(const void *a, const void *b) {
  return strcmp(((const slide_file *)a)->path, ((const slide_file *)b)->path);
}

/* Safe id from the file name's stem (see the top of the file). */
static void make_id(const char *path, char id_out[129]) {
  const char *name = strrchr(path, '/');
  name = name ? name + 1 : path;
  size_t n = strlen(name) - slide_ext_len(name), k = 0;
  for (size_t i = 0; i < n && k < 128; i++) {
    unsigned char c = (unsigned char)name[i];
    id_out[k++] = (isalnum(c) || c == '.' || c == '_' || c == '-') && c < 0x80 ? (char)c : '_';
  }
  id_out[k] = '\0';
  if (id_out[0] == '.') id_out[0] = '_';
  if (!k) snprintf(id_out, 129, "slide");
}

/* TCGA barcode: TCGA-TSS-PART (e.g. TCGA-A7-A0CE-01Z-00-DX1): the participant is the patient. */
static bool tcga_patient(const char *id, char out[129]) {
  if (strncmp(id, "TCGA-", 5) || strlen(id) < 12) return false;
  for (int i = 5; i < 12; i++) {
    bool ok = i == 7 ? id[i] == '-' : isalnum((unsigned char)id[i]) != 0;
    if (!ok) return false;
  }
  if (id[12] && id[12] != '-' && id[12] != '.' && id[12] != '_') return false;
  memcpy(out, id, 12);
  out[12] = '\0';
  return true;
}

static void assign_ids(slide_list *l) {
  for (size_t i = 0; i < l->n; i++) {
    slide_file *f = &l->v[i];
    make_id(f->path, f->id);
    char base[129];
    memcpy(base, f->id, sizeof base);
    for (int k = 2;; k++) {
      bool dup = false;
      for (size_t j = 0; j < i && !dup; j++)
        dup = !strcmp(l->v[j].id, f->id);
      if (!dup) break;
      char suf[16];
      int sl = snprintf(suf, sizeof suf, "-%d", k);
      snprintf(f->id, sizeof f->id, "%.*s%s", 128 - sl, base, suf);
    }
    if (!tcga_patient(f->id, f->patient)) memcpy(f->patient, f->id, sizeof f->patient);
  }
}

/* RFC 4180 field: quoted when it holds a comma, a quote or surrounding blanks (the cohort
 * reader trims unquoted fields). */
static void csv_field(GString *s, const char *v) {
  size_t n = strlen(v);
  if (!strpbrk(v, ",\"") && !(n && (isspace((unsigned char)v[0]) || isspace((unsigned char)v[n - 1])))) {
    g_string_append(s, v);
    return;
  }
  g_string_append_c(s, '"');
  for (; *v; v++) {
    if (*v == '"') g_string_append_c(s, '"');
    g_string_append_c(s, *v);
  }
  g_string_append_c(s, '"');
}

/* ---------------------------------------------------------------- config.yaml ---- */

typedef struct param_doc {
  const char *section, *key, *type, *def, *doc;
} param_doc;

static const param_doc PARAMS[] = {
#define TS_PARAM(section, key, type, def, min, max, required, doc) {#section, #key, #type, def, doc},
#include "config_params.h"
#undef TS_PARAM
};

static void yaml_value(GString *s, const param_doc *p, const char *v) {
  if (strcmp(p->type, "STR")) {
    g_string_append(s, v);
    return;
  }
  g_string_append_c(s, '"');
  for (; *v; v++) {
    if (*v == '"' || *v == '\\') g_string_append_c(s, '\\');
    g_string_append_c(s, *v);
  }
  g_string_append_c(s, '"');
}

/* Sections run and cohort are live (run.dir and cohort.csv set); every other key is written
 * commented out with its default: uncomment a line (and its section's) to change it. */
static void config_text(GString *s, const char *slide_dir, size_t nslides) {
  g_string_append_printf(s,
                         "# tessera config written by `tessera init` for the %zu slides of %s.\n"
                         "# Next: `tessera check config.yaml` opens every slide and says what is\n"
                         "# wrong with each; then `tessera run config.yaml` (under mpirun/srun for\n"
                         "# several ranks). Relative paths are relative to this file. Commented\n"
                         "# lines show the defaults: uncomment a key (and its section) to change it.\n",
                         nslides, slide_dir);
  const char *section = "";
  bool live = false;
  for (size_t i = 0; i < sizeof PARAMS / sizeof PARAMS[0]; i++) {
    const param_doc *p = &PARAMS[i];
    if (strcmp(section, p->section)) {
      section = p->section;
      live = !strcmp(section, "run") || !strcmp(section, "cohort");
      g_string_append_printf(s, "%s%s:\n", live ? "" : "# ", section);
    }
    const char *set = NULL;
    if (!strcmp(section, "run") && !strcmp(p->key, "dir")) set = "run";
    if (!strcmp(section, "cohort") && !strcmp(p->key, "csv")) set = "cohort.csv";
    g_string_append(s, set ? "  " : live ? "  # " : "#   ");
    g_string_append_printf(s, "%s: ", p->key);
    yaml_value(s, p, set ? set : p->def ? p->def : "");
    g_string_append_printf(s, "   # %s\n", p->doc);
    if (!strcmp(section, "cohort") && !strcmp(p->key, "mpp"))
      g_string_append(s, "  #   (a per-slide mpp column in cohort.csv wins over it; `tessera check`\n"
                         "  #   lists the slides whose file has no pixel size)\n");
  }
}

/* ------------------------------------------------------------------- command ---- */

static int write_new(const char *path, const GString *s) {
  return ts_io_write_atomic(path, s->str, s->len);
}

int ts_cmd_init(int argc, char **argv) {
  const char *slide_dir = NULL, *out_dir = ".";
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      fputs(INIT_USAGE, stdout);
      return 0;
    }
    if (!strcmp(argv[i], "--out")) {
      if (i + 1 >= argc) {
        fprintf(stderr, "USAGE: --out needs a directory\n\n%s", INIT_USAGE);
        return TS_EXIT_USAGE;
      }
      out_dir = argv[++i];
    } else if (argv[i][0] == '-' && argv[i][1]) {
      fprintf(stderr, "USAGE: unknown option '%s'\n\n%s", argv[i], INIT_USAGE);
      return TS_EXIT_USAGE;
    } else if (slide_dir) {
      fprintf(stderr, "USAGE: more than one SLIDE_DIR ('%s')\n\n%s", argv[i], INIT_USAGE);
      return TS_EXIT_USAGE;
    } else {
      slide_dir = argv[i];
    }
  }
  if (!slide_dir) {
    fprintf(stderr, "USAGE: no SLIDE_DIR given\n\n%s", INIT_USAGE);
    return TS_EXIT_USAGE;
  }
  int ret = TS_EXIT_USAGE;
  slide_list l = {0};
  GString *csv = NULL, *cfg = NULL;
  char abs_dir[PATH_MAX], csv_path[TS_PATH_MAX], cfg_path[TS_PATH_MAX];
  if (!realpath(slide_dir, abs_dir)) {
    fprintf(stderr, "INIT_NO_DIR: %s: no such slide folder (%s)\n", slide_dir, strerror(errno));
    goto out;
  }
  struct stat st;
  if (stat(abs_dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
    fprintf(stderr, "INIT_NO_DIR: %s: not a folder; give the folder that holds the slides\n", slide_dir);
    goto out;
  }
  ts_io_join(out_dir, "cohort.csv", csv_path, sizeof csv_path);
  ts_io_join(out_dir, "config.yaml", cfg_path, sizeof cfg_path);
  const char *there = ts_io_exists(csv_path) ? csv_path : ts_io_exists(cfg_path) ? cfg_path : NULL;
  if (there) {
    fprintf(stderr,
            "INIT_EXISTS: %s already exists and tessera init never overwrites a file: move it "
            "away (or delete it), or pass --out DIR to write into another folder\n",
            there);
    goto out;
  }
  if (scan(abs_dir, 0, &l) < 0) {
    fprintf(stderr, "%s\n", ts_error_message());
    goto out;
  }
  if (l.n == 0) {
    fprintf(stderr,
            "INIT_NO_SLIDES: %s: no slide files (.svs .tif .tiff .ndpi .mrxs .scn .vms .vmu .bif "
            ".svslide) in it or its subfolders\n",
            slide_dir);
    goto out;
  }
  qsort(l.v, l.n, sizeof *l.v, cmp_path);
  assign_ids(&l);
  csv = g_string_new("slide_id,patient_id,path\n");
  size_t npatient = 0;
  for (size_t i = 0; i < l.n; i++) {
    bool seen = false;
    for (size_t j = 0; j < i && !seen; j++)
      seen = !strcmp(l.v[j].patient, l.v[i].patient);
    npatient += !seen;
    csv_field(csv, l.v[i].id);
    g_string_append_c(csv, ',');
    csv_field(csv, l.v[i].patient);
    g_string_append_c(csv, ',');
    csv_field(csv, l.v[i].path);
    g_string_append_c(csv, '\n');
  }
  cfg = g_string_new(NULL);
  config_text(cfg, abs_dir, l.n);
  if (ts_io_mkdirs(out_dir, 0755) < 0 || write_new(csv_path, csv) < 0 || write_new(cfg_path, cfg) < 0) {
    fprintf(stderr, "%s\n", ts_error_message());
    ret = 1;
    goto out;
  }
  printf("wrote %s (%zu slides, %zu patients) and %s\nnext: tessera check %s\n", csv_path, l.n, npatient,
         cfg_path, cfg_path);
  ret = 0;
out:
  if (csv) g_string_free(csv, TRUE);
  if (cfg) g_string_free(cfg, TRUE);
  list_free(&l);
  return ret;
}
