/* test_synth.c — CUnit suite for the synthetic cohort (workers/synth*.c, pipeline/cmd_synth.c).
 *
 * Small cohorts (3 slides of 2048 px) in a mkdtemp directory, removed at the end. OpenSlide is
 * the oracle for the slide format: vendor aperio, mpp, objective power, levels.
 */
#define _GNU_SOURCE
#include <CUnit/CUnit.h>
#include <dirent.h>
#include <ftw.h>
#include <math.h>
#include <openslide.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vips/vips.h>

#include "ts_cli.h"
#include "ts_error.h"
#include "ts_io.h"
#include "ts_synth.h"

#define N_SLIDES 3
#define SIZE 2048
#define N_GENES 37

static char root[] = "/tmp/ts_test_synth_XXXXXX";
static char dir_a[TS_PATH_MAX], dir_b[TS_PATH_MAX], dir_c[TS_PATH_MAX], dir_n[TS_PATH_MAX];

/* dir/name into buf. */
static void pjoin(char *buf, size_t n, const char *dir, const char *name) {
  if (ts_io_join(dir, name, buf, n) < 0) buf[0] = '\0';
}

static int make_cohort(char *dir, size_t n, const char *name, uint64_t seed, bool no_mpp) {
  pjoin(dir, n, root, name);
  ts_synth_opts o;
  ts_synth_opts_default(&o);
  o.out_dir = dir;
  o.n_slides = N_SLIDES;
  o.size_px = SIZE;
  o.seed = seed;
  o.no_mpp = no_mpp;
  o.n_genes = N_GENES;
  o.quiet = true;
  int rc = ts_synth_cohort(&o);
  if (rc < 0) fprintf(stderr, "synth %s: %s\n", name, ts_error_message());
  return rc;
}

static int suite_init(void) {
  if (VIPS_INIT("test_synth")) return -1;
  if (!mkdtemp(root)) return -1;
  if (make_cohort(dir_a, sizeof dir_a, "a", 7, false) < 0) return -1;
  if (make_cohort(dir_b, sizeof dir_b, "b", 7, false) < 0) return -1;
  if (make_cohort(dir_c, sizeof dir_c, "c", 8, false) < 0) return -1;
  if (make_cohort(dir_n, sizeof dir_n, "n", 7, true) < 0) return -1;
  return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static int suite_cleanup(void) {
  if (root[strlen(root) - 1] != 'X') nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  return 0;
}

/* Every file synth writes, relative to the cohort directory. */
static int list_files(char names[][64], int max) {
  const char *fixed[] = {
      "cohort.csv",          "clinical.csv",           "genomic.csv", "config.yaml", "truth/slides.csv",
      "truth/cox_truth.csv", "truth/genomic_truth.csv"};
  int n = 0;
  for (size_t i = 0; i < sizeof fixed / sizeof *fixed && n < max; i++)
    snprintf(names[n++], 64, "%s", fixed[i]);
  for (int s = 1; s <= N_SLIDES && n + 3 <= max; s++) {
    snprintf(names[n++], 64, "slides/S%04d.tiff", s);
    snprintf(names[n++], 64, "truth/S%04d.tissue.png", s);
    snprintf(names[n++], 64, "truth/S%04d.tumour.png", s);
  }
  return n;
}

static int read_rel(const char *dir, const char *rel, char **data, size_t *len) {
  char path[TS_PATH_MAX];
  pjoin(path, sizeof path, dir, rel);
  return ts_io_read_all(path, data, len);
}

static bool same_file(const char *d1, const char *d2, const char *rel) {
  char *a = NULL, *b = NULL;
  size_t la = 0, lb = 0;
  bool same =
      read_rel(d1, rel, &a, &la) == 0 && read_rel(d2, rel, &b, &lb) == 0 && la == lb && memcmp(a, b, la) == 0;
  free(a);
  free(b);
  return same;
}

static int count_entries(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
      n++;
      if (strstr(e->d_name, ".tmp.")) n += 1000; /* a left-over temporary is a failure */
    }
  closedir(d);
  return n;
}

static void test_synth_same_seed_identical(void) {
  char names[64][64];
  int n = list_files(names, 64);
  for (int i = 0; i < n; i++) {
    bool same = same_file(dir_a, dir_b, names[i]);
    if (!same) fprintf(stderr, "differs: %s\n", names[i]);
    CU_ASSERT(same);
  }
  /* Exactly these files, and no temporaries. */
  char sub[TS_PATH_MAX];
  pjoin(sub, sizeof sub, dir_a, "slides");
  CU_ASSERT_EQUAL(count_entries(sub), N_SLIDES);
  pjoin(sub, sizeof sub, dir_a, "truth");
  CU_ASSERT_EQUAL(count_entries(sub), 2 * N_SLIDES + 3);
  CU_ASSERT_EQUAL(count_entries(dir_a), 6);
}

static void test_synth_other_seed_differs(void) {
  CU_ASSERT_FALSE(same_file(dir_a, dir_c, "slides/S0001.tiff"));
  CU_ASSERT_FALSE(same_file(dir_a, dir_c, "clinical.csv"));
  CU_ASSERT_FALSE(same_file(dir_a, dir_c, "genomic.csv"));
  /* no_mpp changes the description and the config only, not the labels */
  CU_ASSERT_FALSE(same_file(dir_a, dir_n, "slides/S0001.tiff"));
  CU_ASSERT_TRUE(same_file(dir_a, dir_n, "cohort.csv"));
  CU_ASSERT_TRUE(same_file(dir_a, dir_n, "truth/S0001.tissue.png"));
}

static void test_synth_openslide_aperio(void) {
  for (int s = 1; s <= N_SLIDES; s++) {
    char path[TS_PATH_MAX], rel[64];
    snprintf(rel, sizeof rel, "slides/S%04d.tiff", s);
    pjoin(path, sizeof path, dir_a, rel);
    const char *vendor = openslide_detect_vendor(path);
    CU_ASSERT(vendor && strcmp(vendor, "aperio") == 0);
    openslide_t *osr = openslide_open(path);
    CU_ASSERT_PTR_NOT_NULL_FATAL(osr);
    CU_ASSERT_PTR_NULL(openslide_get_error(osr));
    const char *v = openslide_get_property_value(osr, OPENSLIDE_PROPERTY_NAME_VENDOR);
    CU_ASSERT(v && strcmp(v, "aperio") == 0);
    const char *mx = openslide_get_property_value(osr, OPENSLIDE_PROPERTY_NAME_MPP_X);
    const char *my = openslide_get_property_value(osr, OPENSLIDE_PROPERTY_NAME_MPP_Y);
    CU_ASSERT(mx && fabs(atof(mx) - 0.25) < 1e-9);
    CU_ASSERT(my && fabs(atof(my) - 0.25) < 1e-9);
    const char *op = openslide_get_property_value(osr, OPENSLIDE_PROPERTY_NAME_OBJECTIVE_POWER);
    CU_ASSERT(op && strcmp(op, "40") == 0);
    CU_ASSERT(openslide_get_level_count(osr) > 1);
    int64_t w = 0, h = 0;
    openslide_get_level0_dimensions(osr, &w, &h);
    CU_ASSERT_EQUAL(w, SIZE);
    CU_ASSERT_EQUAL(h, SIZE);
    /* a read in the middle works and is not all zero (transparent) */
    uint32_t buf[64 * 64];
    openslide_read_region(osr, buf, SIZE / 2, SIZE / 2, 0, 64, 64);
    CU_ASSERT_PTR_NULL(openslide_get_error(osr));
    CU_ASSERT_EQUAL(buf[0] >> 24, 0xff);
    openslide_close(osr);
  }
}

static void test_synth_no_mpp(void) {
  char path[TS_PATH_MAX];
  pjoin(path, sizeof path, dir_n, "slides/S0001.tiff");
  openslide_t *osr = openslide_open(path);
  CU_ASSERT_PTR_NOT_NULL_FATAL(osr);
  const char *v = openslide_get_property_value(osr, OPENSLIDE_PROPERTY_NAME_VENDOR);
  CU_ASSERT(v && strcmp(v, "aperio") == 0);
  CU_ASSERT_PTR_NULL(openslide_get_property_value(osr, OPENSLIDE_PROPERTY_NAME_MPP_X));
  CU_ASSERT_PTR_NULL(openslide_get_property_value(osr, OPENSLIDE_PROPERTY_NAME_MPP_Y));
  openslide_close(osr);
  char *cfg = NULL;
  CU_ASSERT_EQUAL_FATAL(read_rel(dir_n, "config.yaml", &cfg, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL(strstr(cfg, "\n  # mpp: 0.25\n"));
  free(cfg);
  CU_ASSERT_EQUAL_FATAL(read_rel(dir_a, "config.yaml", &cfg, NULL), 0);
  CU_ASSERT_STRING_EQUAL(cfg, "# tessera config written by `tessera synth` (seed 7, 3 slides, "
                              "size 2048)\nrun:\n  dir: run\ncohort:\n  csv: cohort.csv\n"
                              "  clinical: clinical.csv\n  genomic: genomic.csv\n"
                              "tile:\n  size: 256\n  mpp: 0.5\n");
  free(cfg);
}

/* Max pixel value of a PNG and its size. */
static int png_info(const char *path, int *w, int *h, double *max) {
  VipsImage *im = vips_image_new_from_file(path, "access", VIPS_ACCESS_SEQUENTIAL, NULL);
  if (!im) return -1;
  *w = im->Xsize;
  *h = im->Ysize;
  int rc = vips_max(im, max, NULL);
  g_object_unref(im);
  return rc;
}

static void test_synth_truth_matches(void) {
  char *truth = NULL, *cohort = NULL;
  CU_ASSERT_EQUAL_FATAL(read_rel(dir_a, "truth/slides.csv", &truth, NULL), 0);
  CU_ASSERT_EQUAL_FATAL(read_rel(dir_a, "cohort.csv", &cohort, NULL), 0);
  const char *hdr = "slide_id,label,tissue_fraction,tumour_burden,blank,pen,pieces,"
                    "truth_downsample,width,height\n";
  CU_ASSERT_EQUAL(strncmp(truth, hdr, strlen(hdr)), 0);
  CU_ASSERT_EQUAL(strncmp(cohort, "slide_id,patient_id,path,label\n", 31), 0);
  char *tl = strchr(truth, '\n') + 1, *cl = strchr(cohort, '\n') + 1;
  int blanks = 0, positives = 0;
  for (int s = 1; s <= N_SLIDES; s++) {
    char id[16], pid[16], path[64];
    int label, blank, pen, pieces, ds, cl_label;
    double tf, tb;
    long long w, h;
    CU_ASSERT_EQUAL_FATAL(sscanf(tl, "%15[^,],%d,%lf,%lf,%d,%d,%d,%d,%lld,%lld", id, &label, &tf, &tb, &blank,
                                 &pen, &pieces, &ds, &w, &h),
                          10);
    CU_ASSERT_EQUAL_FATAL(sscanf(cl, "%15[^,],%15[^,],%63[^,],%d", id, pid, path, &cl_label), 4);
    char want[16];
    snprintf(want, sizeof want, "S%04d", s);
    CU_ASSERT_STRING_EQUAL(id, want);
    CU_ASSERT_EQUAL(label, cl_label);
    CU_ASSERT_EQUAL(w, SIZE);
    CU_ASSERT_EQUAL(ds, ts__synth_truth_downsample(SIZE));
    blanks += blank;
    positives += label;

    char p[TS_PATH_MAX];
    int mw, mh;
    double max;
    char rel[64];
    snprintf(rel, sizeof rel, "truth/%s.tissue.png", id);
    pjoin(p, sizeof p, dir_a, rel);
    CU_ASSERT_EQUAL_FATAL(png_info(p, &mw, &mh, &max), 0);
    CU_ASSERT_EQUAL(mw, (SIZE + ds - 1) / ds);
    CU_ASSERT_EQUAL(mh, (SIZE + ds - 1) / ds);
    CU_ASSERT_EQUAL(max, blank ? 0 : 255);
    CU_ASSERT(blank ? tf == 0 && pieces == 0 : tf > 0.05 && pieces >= 1);
    snprintf(rel, sizeof rel, "truth/%s.tumour.png", id);
    pjoin(p, sizeof p, dir_a, rel);
    CU_ASSERT_EQUAL_FATAL(png_info(p, &mw, &mh, &max), 0);
    CU_ASSERT_EQUAL(max, label ? 255 : 0);
    CU_ASSERT(label ? tb > 0 : tb == 0);
    if (blank) CU_ASSERT_EQUAL(label, 0);
    tl = strchr(tl, '\n') + 1;
    cl = strchr(cl, '\n') + 1;
  }
  CU_ASSERT_EQUAL(blanks, 1);
  CU_ASSERT_EQUAL(positives, 1); /* N_SLIDES / 2 */
  free(truth);
  free(cohort);
}

static int count_char(const char *s, char c) {
  int n = 0;
  for (; *s; s++)
    n += *s == c;
  return n;
}

static void test_synth_tables(void) {
  char *g = NULL, *c = NULL, *t = NULL;
  CU_ASSERT_EQUAL_FATAL(read_rel(dir_a, "genomic.csv", &g, NULL), 0);
  CU_ASSERT_EQUAL(count_char(g, '\n'), N_SLIDES + 1);
  char *eol = strchr(g, '\n');
  *eol = '\0';
  CU_ASSERT_EQUAL(count_char(g, ','), N_GENES); /* patient_id + N_GENES columns */
  CU_ASSERT_EQUAL(strncmp(g, "patient_id,GENE0001,GENE0002", 28), 0);
  CU_ASSERT_PTR_NOT_NULL(strstr(g, ",GENE0037"));
  CU_ASSERT_EQUAL(count_char(eol + 1, ','), N_SLIDES * N_GENES);
  CU_ASSERT_EQUAL_FATAL(read_rel(dir_a, "clinical.csv", &c, NULL), 0);
  CU_ASSERT_EQUAL(strncmp(c, "patient_id,age,sex,grade,stage,time,event\nP0001,", 48), 0);
  CU_ASSERT_EQUAL(count_char(c, '\n'), N_SLIDES + 1);
  CU_ASSERT_EQUAL_FATAL(read_rel(dir_a, "truth/cox_truth.csv", &t, NULL), 0);
  CU_ASSERT_EQUAL(strncmp(t, "covariate,beta\ntumour_burden,", 29), 0);
  CU_ASSERT_EQUAL(count_char(t, '\n'), 5);
  free(g);
  free(c);
  free(t);
  CU_ASSERT_EQUAL_FATAL(read_rel(dir_a, "truth/genomic_truth.csv", &t, NULL), 0);
  CU_ASSERT_EQUAL(count_char(t, '\n'), 6); /* header + 5 tracking genes */
  free(t);
}

static void test_synth_bad_options(void) {
  ts_synth_opts o;
  char dir[TS_PATH_MAX];
  pjoin(dir, sizeof dir, root, "bad");
  struct {
    int slides;
    int64_t size;
    double mpp;
    int genes, q;
  } cases[] = {{0, 2048, 0.25, 10, 80},  {3, 100, 0.25, 10, 80}, {3, 2048, 0, 10, 80},
               {3, 2048, 0.25, 0, 80},   {3, 2048, 0.25, 10, 0}, {3, 2048, 0.25, 10, 101},
               {3, 300000, 0.25, 10, 80}};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    ts_synth_opts_default(&o);
    o.out_dir = dir;
    o.n_slides = cases[i].slides;
    o.size_px = cases[i].size;
    o.mpp = cases[i].mpp;
    o.n_genes = cases[i].genes;
    o.jpeg_q = cases[i].q;
    CU_ASSERT(ts_synth_cohort(&o) < 0);
    CU_ASSERT_STRING_EQUAL(ts_error_token(), "SYNTH_BAD_OPTION");
  }
  ts_synth_opts_default(&o);
  CU_ASSERT(ts_synth_cohort(&o) < 0); /* no out_dir */
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "SYNTH_BAD_OPTION");
  CU_ASSERT_FALSE(ts_io_exists(dir)); /* nothing created */
}

static int cli(const char *a0, ...) {
  char *argv[32];
  int argc = 0;
  va_list ap;
  va_start(ap, a0);
  for (const char *a = a0; a && argc < 31; a = va_arg(ap, const char *))
    argv[argc++] = (char *)a;
  va_end(ap);
  argv[argc] = NULL;
  return ts_cmd_synth(argc, argv);
}

static void test_synth_cli(void) {
  char dir[TS_PATH_MAX], user[TS_PATH_MAX];
  pjoin(dir, sizeof dir, root, "cli");
  CU_ASSERT_EQUAL(cli("synth", NULL), 2);                       /* no OUT_DIR */
  CU_ASSERT_EQUAL(cli("synth", dir, "--slides", "0", NULL), 2); /* out of range */
  CU_ASSERT_EQUAL(cli("synth", dir, "--size", "12x", NULL), 2); /* not a number */
  CU_ASSERT_EQUAL(cli("synth", dir, "--bogus", NULL), 2);       /* unknown */
  CU_ASSERT_EQUAL(cli("synth", dir, "--seed", NULL), 2);        /* no value */
  CU_ASSERT_EQUAL(cli("synth", dir, "other", NULL), 2);         /* two dirs */
  CU_ASSERT_FALSE(ts_io_exists(dir));
  CU_ASSERT_EQUAL(cli("synth", dir, "--slides", "1", "--size=512", "--seed", "3", "--genes", "4", "--quality",
                      "70", "--mpp", "0.5", "--quiet", NULL),
                  0);
  CU_ASSERT_TRUE(ts_io_exists(dir));
  {
    /* --mpp 0.5 → objective power 20 */
    char path[TS_PATH_MAX];
    pjoin(path, sizeof path, dir, "slides/S0001.tiff");
    openslide_t *osr = openslide_open(path);
    CU_ASSERT_PTR_NOT_NULL_FATAL(osr);
    CU_ASSERT_PTR_NULL(openslide_get_error(osr));
    const char *op = openslide_get_property_value(osr, OPENSLIDE_PROPERTY_NAME_OBJECTIVE_POWER);
    CU_ASSERT(op && strcmp(op, "20") == 0);
    const char *mx = openslide_get_property_value(osr, OPENSLIDE_PROPERTY_NAME_MPP_X);
    CU_ASSERT(mx && fabs(atof(mx) - 0.5) < 1e-9);
    openslide_close(osr);
  }
  /* a user's file: synth refuses the directory, and --force leaves the file alone */
  pjoin(user, sizeof user, dir, "notes.txt");
  CU_ASSERT_EQUAL(ts_io_write_atomic(user, "mine", 4), 0);
  CU_ASSERT_EQUAL(cli("synth", dir, "--slides", "1", "--size", "512", "--quiet", NULL), 1);
  CU_ASSERT_EQUAL(cli("synth", dir, "--slides", "1", "--size", "512", "--quiet", "--force", NULL), 0);
  char *data = NULL;
  CU_ASSERT_EQUAL(ts_io_read_all(user, &data, NULL), 0);
  CU_ASSERT(data && strcmp(data, "mine") == 0);
  free(data);
  /* OUT_DIR that is a file */
  CU_ASSERT_EQUAL(cli("synth", user, "--quiet", NULL), 1);
}

int ts_test_register(void) {
  CU_pSuite s = CU_add_suite("synth", suite_init, suite_cleanup);
  if (!s) return -1;
  if (!CU_add_test(s, "test_synth_same_seed_identical", test_synth_same_seed_identical) ||
      !CU_add_test(s, "test_synth_other_seed_differs", test_synth_other_seed_differs) ||
      !CU_add_test(s, "test_synth_openslide_aperio", test_synth_openslide_aperio) ||
      !CU_add_test(s, "test_synth_no_mpp", test_synth_no_mpp) ||
      !CU_add_test(s, "test_synth_truth_matches", test_synth_truth_matches) ||
      !CU_add_test(s, "test_synth_tables", test_synth_tables) ||
      !CU_add_test(s, "test_synth_bad_options", test_synth_bad_options) ||
      !CU_add_test(s, "test_synth_cli", test_synth_cli))
    return -1;
  return 0;
}
