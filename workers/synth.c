/* synth.c — the synthetic cohort: labels, slides (synth_slide.c), clinical and genomic tables
 * drawn from known models, and a ready-to-run config (see ts_synth.h for the file layout).
 *
 * Randomness: one splitmix64-seeded xoshiro256** stream per purpose (labels, slide i, clinical,
 * genes), each derived from the cohort seed and a fixed stream tag, so that e.g. the pixels of
 * slide 3 do not depend on how many genes were asked for. Numbers are printed with GLib's
 * locale-independent g_ascii_formatd: a "," decimal separator would break both the CSVs and
 * byte-identical output.
 *
 * Survival model (the truth is written to truth/cox_truth.csv): proportional hazards
 *   h(t | x) = h0(t) exp(b_burden burden + b_age (age - 60) / 10 + b_grade (grade - 2)
 *                        + b_stage (stage - 2))
 * with a Weibull baseline h0(t) = (k / s) (t / s)^(k - 1), k = 1.3, s = 72 months, sampled by
 * inversion, T = s (-ln U / exp(lp))^(1/k) (Bender, Augustin & Blettner 2005, Stat Med 24:1713).
 * Censoring is independent of T: exponential dropout (rate 1/140 per month) and the end of
 * follow-up at 120 months, which together censor about 30% of patients.
 */
#include <glib.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vips/vips.h>

#include "ts_error.h"
#include "ts_io.h"
#include "ts_synth.h"

#define COX_B_BURDEN 3.0
#define COX_B_AGE 0.25
#define COX_B_GRADE 0.35
#define COX_B_STAGE 0.5
#define WEIBULL_SHAPE 1.3
#define WEIBULL_SCALE 72.0 /* months */
#define DROPOUT_RATE (1.0 / 140.0)
#define FOLLOW_UP 120.0
#define N_TRACKING_GENES 5

/* Stream tags: arbitrary, fixed forever (changing one changes every cohort). */
enum { STREAM_LABELS = 1, STREAM_CLINICAL = 2, STREAM_GENES = 3, STREAM_GENOMIC = 4, STREAM_SLIDE = 100 };

void ts_synth_opts_default(ts_synth_opts *o) {
  memset(o, 0, sizeof *o);
  o->n_slides = 6;
  o->size_px = 8192;
  o->seed = 1;
  o->mpp = 0.25;
  o->n_genes = 300;
  o->jpeg_q = 80;
}

static uint64_t stream_seed(uint64_t seed, uint64_t tag) {
  return ts__synth_mix(ts__synth_mix(seed) ^ ts__synth_mix(tag * 0xA0761D6478BD642FULL));
}

static double normal(ts__synth_rng *g) {
  double u1 = 1.0 - ts__synth_unif(g), u2 = ts__synth_unif(g);
  return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

static int pick(ts__synth_rng *g, const double *p, int n) {
  double u = ts__synth_unif(g), acc = 0;
  for (int i = 0; i < n - 1; i++)
    if (u < (acc += p[i])) return i;
  return n - 1;
}

/* Append a double formatted with fmt, locale-independent. */
static void put_num(GString *s, const char *fmt, double v) {
  char buf[G_ASCII_DTOSTR_BUF_SIZE];
  g_string_append(s, g_ascii_formatd(buf, sizeof buf, fmt, v));
}

static int write_gstring(const char *dir, const char *name, const GString *s) {
  char path[TS_PATH_MAX];
  TS_CALL(ts_io_join(dir, name, path, sizeof path));
  int rc = ts_io_write_atomic(path, s->str, s->len);
  if (rc < 0) return ts_error_set(rc, "SYNTH_WRITE", "%s", ts_error_detail());
  return 0;
}

static int check_opts(const ts_synth_opts *o) {
  if (!o || !o->out_dir || !o->out_dir[0])
    return ts_error_set(TS_EINVAL, "SYNTH_BAD_OPTION", "no output directory");
  if (o->n_slides < 1 || o->n_slides > 99999)
    return ts_error_set(TS_EINVAL, "SYNTH_BAD_OPTION", "slides must be 1..99999, not %d", o->n_slides);
  if (o->size_px < 512 || o->size_px > 200000)
    return ts_error_set(TS_EINVAL, "SYNTH_BAD_OPTION", "size must be 512..200000 px, not %lld",
                        (long long)o->size_px);
  if (!(o->mpp >= 0.05 && o->mpp <= 10))
    return ts_error_set(TS_EINVAL, "SYNTH_BAD_OPTION", "mpp must be 0.05..10 um/px, not %g", o->mpp);
  if (o->n_genes < 1 || o->n_genes > 100000)
    return ts_error_set(TS_EINVAL, "SYNTH_BAD_OPTION", "genes must be 1..100000, not %d", o->n_genes);
  if (o->jpeg_q < 1 || o->jpeg_q > 100)
    return ts_error_set(TS_EINVAL, "SYNTH_BAD_OPTION", "quality must be 1..100, not %d", o->jpeg_q);
  return 0;
}

typedef struct slide_rec {
  char slide_id[16], patient_id[16];
  int label;
  ts__synth_slide s;
} slide_rec;

/* Labels: about half positive (n / 2, at least one); with n >= 3 one negative slide is blank. */
static void assign_labels(slide_rec *r, int n, uint64_t seed) {
  ts__synth_rng g;
  ts__synth_rng_seed(&g, stream_seed(seed, STREAM_LABELS));
  int *perm = g_new(int, n);
  for (int i = 0; i < n; i++)
    perm[i] = i;
  for (int i = n - 1; i > 0; i--) {
    int j = (int)(ts__synth_unif(&g) * (i + 1));
    int t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
  int npos = n >= 2 ? n / 2 : 1;
  for (int i = 0; i < n; i++)
    r[perm[i]].label = i < npos;
  if (n >= 3) r[perm[npos + (int)(ts__synth_unif(&g) * (n - npos))]].s.blank = true;
  g_free(perm);
}

static int write_truth_csv(const char *dir, const slide_rec *r, int n) {
  GString *s = g_string_new("slide_id,label,tissue_fraction,tumour_burden,blank,pen,pieces,"
                            "truth_downsample,width,height\n");
  for (int i = 0; i < n; i++) {
    g_string_append_printf(s, "%s,%d,", r[i].slide_id, r[i].label);
    put_num(s, "%.6f", r[i].s.tissue_fraction);
    g_string_append_c(s, ',');
    put_num(s, "%.6f", r[i].s.tumour_burden);
    g_string_append_printf(s, ",%d,%d,%d,%d,%lld,%lld\n", r[i].s.blank, r[i].s.pen, r[i].s.pieces,
                           r[i].s.truth_downsample, (long long)r[i].s.width, (long long)r[i].s.height);
  }
  int rc = write_gstring(dir, "truth/slides.csv", s);
  g_string_free(s, TRUE);
  return rc;
}

static int write_cohort_csv(const char *dir, const slide_rec *r, int n) {
  GString *s = g_string_new("slide_id,patient_id,path,label\n");
  for (int i = 0; i < n; i++)
    g_string_append_printf(s, "%s,%s,slides/%s.tiff,%d\n", r[i].slide_id, r[i].patient_id, r[i].slide_id,
                           r[i].label);
  int rc = write_gstring(dir, "cohort.csv", s);
  g_string_free(s, TRUE);
  return rc;
}

static int write_clinical(const char *dir, const slide_rec *r, int n, uint64_t seed) {
  ts__synth_rng g;
  ts__synth_rng_seed(&g, stream_seed(seed, STREAM_CLINICAL));
  static const double grade_pos[3] = {0.15, 0.45, 0.40}, grade_neg[3] = {0.40, 0.40, 0.20};
  static const double stage_pos[4] = {0.20, 0.30, 0.30, 0.20};
  static const double stage_neg[4] = {0.45, 0.30, 0.15, 0.10};
  GString *s = g_string_new("patient_id,age,sex,grade,stage,time,event\n");
  for (int i = 0; i < n; i++) {
    double a = round(62.0 + 11.0 * normal(&g));
    int age = a < 25 ? 25 : a > 90 ? 90 : (int)a;
    int sex = ts__synth_unif(&g) < 0.5;
    int grade = 1 + pick(&g, r[i].label ? grade_pos : grade_neg, 3);
    int stage = 1 + pick(&g, r[i].label ? stage_pos : stage_neg, 4);
    double lp = COX_B_BURDEN * r[i].s.tumour_burden + COX_B_AGE * (age - 60) / 10.0 +
                COX_B_GRADE * (grade - 2) + COX_B_STAGE * (stage - 2);
    double u = 1.0 - ts__synth_unif(&g); /* (0, 1] */
    double t = WEIBULL_SCALE * pow(-log(u) / exp(lp), 1.0 / WEIBULL_SHAPE);
    double c = -log(1.0 - ts__synth_unif(&g)) / DROPOUT_RATE;
    if (c > FOLLOW_UP) c = FOLLOW_UP;
    int event = t <= c;
    double time = event ? t : c;
    if (time < 0.01) time = 0.01; /* printed with 2 decimals: never 0.00 */
    g_string_append_printf(s, "%s,%d,%d,%d,%d,", r[i].patient_id, age, sex, grade, stage);
    put_num(s, "%.2f", time);
    g_string_append_printf(s, ",%d\n", event);
  }
  int rc = write_gstring(dir, "clinical.csv", s);
  g_string_free(s, TRUE);
  if (rc < 0) return rc;

  s = g_string_new("covariate,beta\n");
  g_string_append(s, "tumour_burden,");
  put_num(s, "%.4f", COX_B_BURDEN);
  g_string_append(s, "\nage_per_10y,");
  put_num(s, "%.4f", COX_B_AGE);
  g_string_append(s, "\ngrade,");
  put_num(s, "%.4f", COX_B_GRADE);
  g_string_append(s, "\nstage,");
  put_num(s, "%.4f", COX_B_STAGE);
  g_string_append_c(s, '\n');
  rc = write_gstring(dir, "truth/cox_truth.csv", s);
  g_string_free(s, TRUE);
  return rc;
}

static int write_genomic(const char *dir, const slide_rec *r, int n, int n_genes, uint64_t seed) {
  ts__synth_rng gg, gv;
  ts__synth_rng_seed(&gg, stream_seed(seed, STREAM_GENES));
  ts__synth_rng_seed(&gv, stream_seed(seed, STREAM_GENOMIC));
  double *base = g_new(double, n_genes), *sd = g_new(double, n_genes);
  double *load = g_new0(double, n_genes);
  for (int j = 0; j < n_genes; j++) {
    base[j] = 7.0 + 1.5 * normal(&gg);
    sd[j] = ts__synth_range(&gg, 0.3, 1.0);
  }
  int ntrack = n_genes < N_TRACKING_GENES ? n_genes : N_TRACKING_GENES;
  for (int k = 0; k < ntrack;) {
    int j = (int)(ts__synth_unif(&gg) * n_genes);
    if (load[j] != 0) continue;
    double mag = ts__synth_range(&gg, 3.0, 6.0);
    load[j] = ts__synth_unif(&gg) < 0.7 ? mag : -mag;
    k++;
  }
  GString *s = g_string_new("patient_id");
  for (int j = 0; j < n_genes; j++)
    g_string_append_printf(s, ",GENE%04d", j + 1);
  g_string_append_c(s, '\n');
  for (int i = 0; i < n; i++) {
    g_string_append(s, r[i].patient_id);
    for (int j = 0; j < n_genes; j++) {
      g_string_append_c(s, ',');
      put_num(s, "%.3f", base[j] + load[j] * r[i].s.tumour_burden + sd[j] * normal(&gv));
    }
    g_string_append_c(s, '\n');
  }
  int rc = write_gstring(dir, "genomic.csv", s);
  g_string_free(s, TRUE);
  if (rc == 0) {
    s = g_string_new("gene,loading\n");
    for (int j = 0; j < n_genes; j++)
      if (load[j] != 0) {
        g_string_append_printf(s, "GENE%04d,", j + 1);
        put_num(s, "%.4f", load[j]);
        g_string_append_c(s, '\n');
      }
    rc = write_gstring(dir, "truth/genomic_truth.csv", s);
    g_string_free(s, TRUE);
  }
  g_free(base);
  g_free(sd);
  g_free(load);
  return rc;
}

static int write_config(const char *dir, const ts_synth_opts *o) {
  GString *s = g_string_new(NULL);
  g_string_append_printf(s,
                         "# tessera config written by `tessera synth` (seed %" PRIu64
                         ", %d slides, size %lld)\n"
                         "run:\n  dir: run\n"
                         "cohort:\n  csv: cohort.csv\n  clinical: clinical.csv\n"
                         "  genomic: genomic.csv\n",
                         o->seed, o->n_slides, (long long)o->size_px);
  if (o->no_mpp) {
    g_string_append(s, "  # The slides carry no pixel size (synth --no-mpp); they were drawn at "
                       "the mpp below: uncomment it, or choose your own.\n  # mpp: ");
    put_num(s, "%.4g", o->mpp);
    g_string_append_c(s, '\n');
  }
  g_string_append(s, "tile:\n  size: 256\n  mpp: 0.5\n");
  int rc = write_gstring(dir, "config.yaml", s);
  g_string_free(s, TRUE);
  return rc;
}

int ts_synth_cohort(const ts_synth_opts *o) {
  TS_CALL(check_opts(o));
  /* Safe when main already did it: vips_init() returns at once the second time. */
  if (VIPS_INIT("tessera"))
    return ts_error_set(TS_EINTERNAL, "SYNTH_VIPS", "cannot initialise libvips: %s", vips_error_buffer());

  int rc = 0, n = o->n_slides;
  const char *dir = o->out_dir;
  slide_rec *r = g_new0(slide_rec, n);
  int width = n >= 10000 ? 5 : 4; /* n <= 99999 (check_opts) */

  char sub[TS_PATH_MAX];
  const char *subs[] = {"slides", "truth"};
  for (int i = 0; i < 2; i++) {
    TS_TRY(ts_io_join(dir, subs[i], sub, sizeof sub));
    if ((rc = ts_io_mkdirs(sub, 0777)) < 0) TS_FAIL(rc, "SYNTH_WRITE", "%s", ts_error_detail());
  }

  for (int i = 0; i < n; i++) {
    snprintf(r[i].slide_id, sizeof r[i].slide_id, "S%0*d", width, (i + 1) % 100000);
    snprintf(r[i].patient_id, sizeof r[i].patient_id, "P%0*d", width, (i + 1) % 100000);
  }
  assign_labels(r, n, o->seed);

  for (int i = 0; i < n; i++) {
    ts__synth_slide *s = &r[i].s;
    s->slide_id = r[i].slide_id;
    s->seed = stream_seed(o->seed, STREAM_SLIDE + (uint64_t)i);
    s->width = s->height = o->size_px;
    s->mpp = o->mpp;
    s->no_mpp = o->no_mpp;
    s->jpeg_q = o->jpeg_q;
    s->positive = r[i].label == 1;
    char tiff[TS_PATH_MAX], tis[TS_PATH_MAX], tum[TS_PATH_MAX], name[64];
    snprintf(name, sizeof name, "slides/%s.tiff", r[i].slide_id);
    TS_TRY(ts_io_join(dir, name, tiff, sizeof tiff));
    snprintf(name, sizeof name, "truth/%s.tissue.png", r[i].slide_id);
    TS_TRY(ts_io_join(dir, name, tis, sizeof tis));
    snprintf(name, sizeof name, "truth/%s.tumour.png", r[i].slide_id);
    TS_TRY(ts_io_join(dir, name, tum, sizeof tum));
    gint64 t0 = g_get_monotonic_time();
    TS_TRY(ts__synth_slide_write(s, tiff, tis, tum));
    if (!o->quiet)
      fprintf(stderr, "synth: slide %d/%d %s label=%d tissue=%.1f%% tumour=%.1f%%%s%s %.1f s\n", i + 1, n,
              r[i].slide_id, r[i].label, 100 * s->tissue_fraction, 100 * s->tumour_burden,
              s->blank ? " blank" : "", s->pen ? " pen" : "", (double)(g_get_monotonic_time() - t0) / 1e6);
  }

  TS_TRY(write_truth_csv(dir, r, n));
  TS_TRY(write_cohort_csv(dir, r, n));
  TS_TRY(write_clinical(dir, r, n, o->seed));
  TS_TRY(write_genomic(dir, r, n, o->n_genes, o->seed));
  TS_TRY(write_config(dir, o));
out:
  g_free(r);
  return rc;
}
