/* ts_synth.h — a synthetic cohort with recorded ground truth (see `tessera synth --help`).
 *
 *     ts_synth_opts o;
 *     ts_synth_opts_default(&o);
 *     o.out_dir = "/tmp/cohort"; o.n_slides = 6; o.size_px = 8192; o.seed = 7;
 *     if (ts_synth_cohort(&o) < 0) fprintf(stderr, "%s\n", ts_error_message());
 *
 * Writes into out_dir:
 *   slides/<slide_id>.tiff   pyramidal JPEG-tiled (256 x 256) TIFF, Aperio-style ImageDescription
 *                            so that OpenSlide reports vendor "aperio" with openslide.mpp-x/y and
 *                            aperio.AppMag (= round(10 / mpp)); no MPP field when opts.no_mpp
 *   truth/<slide_id>.tissue.png, truth/<slide_id>.tumour.png   masks, 1 px = truth_downsample
 *                            level-0 px (0/255), size ceil(width / ds) x ceil(height / ds); pixel
 *                            (i, j) is the truth at level-0 centre ((i + 0.5) ds, (j + 0.5) ds)
 *   truth/slides.csv         slide_id,label,tissue_fraction,tumour_burden,blank,pen,pieces,
 *                            truth_downsample,width,height
 *                            tissue_fraction = tissue px / mask px; tumour_burden = tumour px /
 *                            tissue px (0 when no tissue); pen, blank 0/1; pieces = tissue pieces
 *   truth/cox_truth.csv      covariate,beta for the covariates tumour_burden (fraction 0..1),
 *                            age_per_10y ((age - 60) / 10), grade (grade - 2), stage (stage - 2);
 *                            the baseline is Weibull (see synth.c); times are in months
 *   truth/genomic_truth.csv  gene,loading: the genes that track tumour burden (value = base +
 *                            loading * tumour_burden + noise); every other gene is noise
 *   cohort.csv               slide_id,patient_id,path,label   (path relative to out_dir)
 *   clinical.csv             patient_id,age,sex,grade,stage,time,event   (one patient per slide;
 *                            age in years, sex 0/1, grade 1..3, stage 1..4, time in months,
 *                            event 1 = death observed, 0 = censored)
 *   genomic.csv              patient_id,GENE0001..GENEnnnn   (log2-expression-like values)
 *   config.yaml              ready to run (run.dir: run, cohort.csv: cohort.csv, ...)
 * Ids: slide_id "S" + index, patient_id "P" + index, zero-padded to max(4, digits(n_slides)),
 * counted from 1. Labels: 1 = the slide has a tumour region; about half are positive. When
 * n_slides >= 3 exactly one slide is blank (no tissue, label 0).
 *
 * Same options → byte-identical files (the generator uses its own PRNG, never rand(), and
 * per-pixel noise that depends only on the level-0 coordinate, so libvips threading cannot change
 * a byte). Memory stays bounded for size up to 200000 px: masks are drawn at 1/truth_downsample
 * in C buffers (at most 4096 px a side) and the full-resolution image is a lazy libvips pipeline
 * written tile by tile. Every file is written under a temporary name and renamed (ts_io).
 *
 * Errors: negative TS_E* status with tokens SYNTH_BAD_OPTION (an option out of range),
 * SYNTH_WRITE (a file or directory could not be written), SYNTH_VIPS (libvips failed),
 * NO_MEMORY. Not thread-safe: one cohort at a time per process (libvips itself is thread-safe,
 * the generator uses its threads).
 */
#ifndef TS_SYNTH_H
#define TS_SYNTH_H

#include <stdbool.h>
#include <stdint.h>

typedef struct ts_synth_opts {
  const char *out_dir; /* created (mkdir -p) when missing; existing files of ours are replaced */
  int n_slides;        /* 1 .. 99999; default 6 */
  int64_t size_px;     /* level-0 side (square slides), 512 .. 200000; default 8192 */
  uint64_t seed;       /* default 1 */
  double mpp;          /* level-0 um/px: drawn scale and the description; 0.05 .. 10, def. 0.25 */
  bool no_mpp;         /* leave MPP out of the description (the pixels still use mpp) */
  int n_genes;         /* 1 .. 100000; default 300 */
  int jpeg_q;          /* 1 .. 100; default 80 */
  bool quiet;          /* no progress lines on stderr */
} ts_synth_opts;

/* Fill o with the defaults above (out_dir NULL). */
void ts_synth_opts_default(ts_synth_opts *o);

/* Generate the whole cohort into o->out_dir. Calls VIPS_INIT itself when libvips is not yet
 * initialised. Returns 0 or a negative status with the error set (see above); files already
 * committed stay, config.yaml is written last. */
int ts_synth_cohort(const ts_synth_opts *o);

/* The command line, `tessera synth OUT_DIR ...`, is ts_cmd_synth() in pipeline/cmd_synth.c
 * (declared in ts_cli.h). */

/* ---- shared-internal (synth.c <-> synth_slide.c) -------------------------------------------- */

/* One slide to draw. The caller fills the inputs; ts__synth_slide_write fills the outputs. */
typedef struct ts__synth_slide {
  /* inputs */
  const char *slide_id;
  uint64_t seed; /* per-slide seed (already mixed with the cohort seed and the index) */
  int64_t width, height;
  double mpp;
  bool no_mpp;
  int jpeg_q;
  bool positive; /* draw a tumour region */
  bool blank;    /* draw no tissue */
  /* outputs */
  int truth_downsample;
  int mask_w, mask_h;
  double tissue_fraction, tumour_burden;
  bool pen;
  int pieces;
} ts__synth_slide;

/* Draw slide s and write tiff_path, tissue_png, tumour_png atomically. Token SYNTH_VIPS or
 * SYNTH_WRITE on failure. */
int ts__synth_slide_write(ts__synth_slide *s, const char *tiff_path, const char *tissue_png,
                          const char *tumour_png);

/* The truth downsample used for a slide of this size: 32, halved down to 4 while the mask would
 * be under 256 px, doubled while it would be over 4096 px. */
int ts__synth_truth_downsample(int64_t size_px);

/* splitmix64 (Steele, Lea, Flood 2014): seeds and hashes; xoshiro256** (Blackman, Vigna 2018)
 * for streams. Deterministic on every platform; never rand(). */
static inline uint64_t ts__synth_mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

typedef struct ts__synth_rng {
  uint64_t s[4];
} ts__synth_rng;

static inline void ts__synth_rng_seed(ts__synth_rng *r, uint64_t seed) {
  uint64_t z = seed;
  for (int i = 0; i < 4; i++) {
    z += 0x9e3779b97f4a7c15ULL;
    r->s[i] = ts__synth_mix(z);
  }
}

static inline uint64_t ts__synth_next(ts__synth_rng *r) {
  uint64_t *s = r->s;
  uint64_t x = s[1] * 5;
  uint64_t res = ((x << 7) | (x >> 57)) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = (s[3] << 45) | (s[3] >> 19);
  return res;
}

/* Uniform in [0, 1) with 53 random bits. */
static inline double ts__synth_unif(ts__synth_rng *r) {
  return (double)(ts__synth_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

static inline double ts__synth_range(ts__synth_rng *r, double lo, double hi) {
  return lo + (hi - lo) * ts__synth_unif(r);
}

#endif
