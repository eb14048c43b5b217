/* slide.c — ts_slide over OpenSlide 3.4.1 (see ts_slide.h).
 *
 * Design: the handle caches what OpenSlide knows about the geometry (level sizes and
 * downsamples, vendor, quickhash, objective power, mpp) at open time, so that the accessors
 * never touch OpenSlide and cannot fail. Reads go through openslide_read_region() in bounded
 * row strips, so a large read never needs a w*h*4 scratch buffer.
 *
 * Errors follow OpenSlide's own model: once openslide_get_error() is non-NULL the handle is
 * useless until it is closed and reopened (openslide.h: "the only useful operation on an
 * errored handle is openslide_close()"). We mirror that: the first read error is kept, every
 * later read fails with the same message and zeroes the caller's buffer, until
 * ts_slide_reopen().
 *
 * Transparency: OpenSlide returns premultiplied ARGB; pixels outside the scanned area have
 * alpha 0. We composite over white (c + 255 - a, exact for premultiplied data), so empty
 * regions look like glass, not like black tissue.
 */
#include "ts_slide.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <openslide/openslide.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

struct ts_slide {
  char *path, *id;
  openslide_t *osr;
  char vendor[64];
  char quickhash[80];
  int levels;
  int64_t *lw, *lh;
  double *ds;
  double objective_power;
  double file_mpp;
  double mpp;
  enum ts_mpp_source mpp_source;
  char *sticky; /* first read error, NULL when healthy */
};

/* Rows per openslide_read_region() call: bounds the ARGB scratch to STRIP_PX pixels. */
#define STRIP_PX (4 << 20)

static double prop_double(openslide_t *osr, const char *name) {
  const char *v = openslide_get_property_value(osr, name);
  if (!v || !*v) return 0.0;
  char *end = NULL;
  errno = 0;
  double d = strtod(v, &end);
  if (errno || end == v || !isfinite(d) || d <= 0) return 0.0;
  return d;
}

static void slide_destroy(ts_slide *s) {
  if (!s) return;
  if (s->osr) openslide_close(s->osr);
  free(s->path);
  free(s->id);
  free(s->lw);
  free(s->lh);
  free(s->ds);
  free(s->sticky);
  free(s);
}

void ts_slide_free(ts_slide **s) {
  if (!s) return;
  slide_destroy(*s);
  *s = NULL;
}

/* Why OpenSlide 3.4.1 may not recognise a file, for the two cases users meet most: a DICOM
 * WSI (PS3.10 file: 128-byte preamble, then "DICM"; or a folder of .dcm instances, one per
 * pyramid level) and a TIFF stored in strips (OpenSlide's generic-tiff driver wants
 * TileWidth, tags 322-324; TIFF 6.0 section 15; BigTIFF uses 8-byte counts and offsets). */
static const char DICOM_ADVICE[] =
    "Debian's OpenSlide 3.4.1 reads no DICOM (OpenSlide 4.0 does), and neither does vips: "
    "convert it to a tiled pyramidal TIFF with a tool that reads DICOM WSI (e.g. Bio-Formats' "
    "bfconvert, or Python's wsidicom plus tifffile) and point the cohort CSV's path at the TIFF";

static bool dir_has_dcm(const char *path) {
  DIR *d = opendir(path);
  if (!d) return false;
  bool found = false;
  for (struct dirent *e; !found && (e = readdir(d));) {
    size_t n = strlen(e->d_name);
    found = n > 4 && !strcasecmp(e->d_name + n - 4, ".dcm");
  }
  closedir(d);
  return found;
}

static uint64_t get_uint(const unsigned char *p, int nbytes, bool big_endian) {
  uint64_t v = 0;
  for (int i = 0; i < nbytes; i++)
    v |= (uint64_t)p[big_endian ? nbytes - 1 - i : i] << (8 * i);
  return v;
}

/* 1: a TIFF whose first IFD has StripOffsets and no TileWidth; 0 otherwise (not a TIFF, tiled,
 * unreadable). */
static int tiff_is_stripped(FILE *f) {
  unsigned char h[16];
  if (fseek(f, 0, SEEK_SET) || fread(h, 1, 16, f) != 16) return 0;
  bool be;
  if (h[0] == 'I' && h[1] == 'I')
    be = false;
  else if (h[0] == 'M' && h[1] == 'M')
    be = true;
  else
    return 0;
  uint64_t magic = get_uint(h + 2, 2, be), ifd;
  int cnt_sz, ent_sz;
  if (magic == 42) {
    ifd = get_uint(h + 4, 4, be);
    cnt_sz = 2;
    ent_sz = 12;
  } else if (magic == 43) {
    ifd = get_uint(h + 8, 8, be);
    cnt_sz = 8;
    ent_sz = 20;
  } else {
    return 0;
  }
  unsigned char c[8], e[20];
  if (ifd > (uint64_t)LONG_MAX || fseek(f, (long)ifd, SEEK_SET) ||
      fread(c, 1, (size_t)cnt_sz, f) != (size_t)cnt_sz)
    return 0;
  uint64_t n = get_uint(c, cnt_sz, be);
  bool strips = false, tiles = false;
  for (uint64_t i = 0; i < n && i < 4096; i++) {
    if (fread(e, 1, (size_t)ent_sz, f) != (size_t)ent_sz) return 0;
    uint64_t tag = get_uint(e, 2, be);
    if (tag == 273) strips = true;
    if (tag >= 322 && tag <= 324) tiles = true;
  }
  return strips && !tiles;
}

/* SLIDE_NOT_A_SLIDE with the reason when we can tell it. */
static int not_a_slide(const char *path, const char *id) {
  unsigned char pre[132];
  FILE *f = fopen(path, "rb");
  bool dicom = false, strips = false;
  if (f) {
    dicom = fread(pre, 1, sizeof pre, f) == sizeof pre && !memcmp(pre + 128, "DICM", 4);
    strips = !dicom && tiff_is_stripped(f);
    fclose(f);
  }
  if (dicom)
    return ts_error_set(TS_EINPUT, "SLIDE_NOT_A_SLIDE",
                        "slide '%s' (%s): a DICOM file ('DICM' at byte 128). %s", id, path, DICOM_ADVICE);
  if (strips)
    return ts_error_set(TS_EINPUT, "SLIDE_NOT_A_SLIDE",
                        "slide '%s' (%s): a TIFF stored in strips, not tiles; OpenSlide reads "
                        "only tiled TIFFs. Convert it: vips tiffsave IN OUT.tif --tile --pyramid "
                        "--compression jpeg --tile-width 256 --tile-height 256, and point the "
                        "cohort CSV's path at OUT.tif",
                        id, path);
  return ts_error_set(TS_EINPUT, "SLIDE_NOT_A_SLIDE",
                      "slide '%s' (%s): OpenSlide does not recognise this file format", id, path);
}

/* Open path through OpenSlide with the token ladder of ts_slide.h. */
static int open_osr(const char *path, const char *id, openslide_t **osr_out) {
  *osr_out = NULL;
  struct stat st;
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode) && dir_has_dcm(path))
    return ts_error_set(TS_EINPUT, "SLIDE_NOT_A_SLIDE",
                        "slide '%s' (%s): a directory of DICOM (.dcm) files, i.e. a DICOM WSI. %s", id, path,
                        DICOM_ADVICE);
  errno = 0;
  if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) || access(path, R_OK) < 0)
    return ts_error_set(TS_EINPUT, "SLIDE_MISSING", "slide '%s' (%s): %s", id, path,
                        errno ? strerror(errno) : "not a regular readable file");
  const char *vendor = openslide_detect_vendor(path);
  if (!vendor) return not_a_slide(path, id);
  openslide_t *osr = openslide_open(path);
  if (!osr)
    return ts_error_set(TS_EINPUT, "SLIDE_UNOPENABLE", "slide '%s' (%s): OpenSlide (%s) could not open it",
                        id, path, vendor);
  const char *err = openslide_get_error(osr);
  if (err) {
    int rc = ts_error_set(TS_EINPUT, "SLIDE_UNOPENABLE", "slide '%s' (%s): OpenSlide (%s): %s", id, path,
                          vendor, err);
    openslide_close(osr);
    return rc;
  }
  *osr_out = osr;
  return 0;
}

int ts_slide_open(const char *path, const char *id, ts_slide **out) {
  int rc = 0;
  ts_slide *s = NULL;
  if (!out) return ts_error_set(TS_EINVAL, "EINVAL", "ts_slide_open: out is NULL");
  *out = NULL;
  if (!path || !*path) return ts_error_set(TS_EINVAL, "EINVAL", "ts_slide_open: empty path");
  if (!id) id = path;
  s = calloc(1, sizeof *s);
  if (!s) return ts_error_set(TS_ENOMEM, "ENOMEM", "ts_slide_open: out of memory");
  s->path = strdup(path);
  s->id = strdup(id);
  if (!s->path || !s->id) TS_FAIL(TS_ENOMEM, "ENOMEM", "ts_slide_open: out of memory");
  TS_TRY(open_osr(path, id, &s->osr));

  const char *v = openslide_get_property_value(s->osr, OPENSLIDE_PROPERTY_NAME_VENDOR);
  snprintf(s->vendor, sizeof s->vendor, "%s", v ? v : "unknown");
  v = openslide_get_property_value(s->osr, OPENSLIDE_PROPERTY_NAME_QUICKHASH1);
  snprintf(s->quickhash, sizeof s->quickhash, "%s", v ? v : "");
  s->objective_power = prop_double(s->osr, OPENSLIDE_PROPERTY_NAME_OBJECTIVE_POWER);
  double mx = prop_double(s->osr, OPENSLIDE_PROPERTY_NAME_MPP_X);
  double my = prop_double(s->osr, OPENSLIDE_PROPERTY_NAME_MPP_Y);
  s->file_mpp = (mx > 0 && my > 0) ? 0.5 * (mx + my) : (mx > 0 ? mx : my);

  int32_t n = openslide_get_level_count(s->osr);
  if (n < 1 || openslide_get_error(s->osr))
    TS_FAIL(TS_EINPUT, "SLIDE_UNOPENABLE", "slide '%s' (%s): no pyramid levels (%s)", id, path,
            openslide_get_error(s->osr) ? openslide_get_error(s->osr) : "level count < 1");
  s->levels = n;
  s->lw = calloc((size_t)n, sizeof *s->lw);
  s->lh = calloc((size_t)n, sizeof *s->lh);
  s->ds = calloc((size_t)n, sizeof *s->ds);
  if (!s->lw || !s->lh || !s->ds) TS_FAIL(TS_ENOMEM, "ENOMEM", "ts_slide_open: out of memory");
  for (int l = 0; l < n; l++) {
    openslide_get_level_dimensions(s->osr, l, &s->lw[l], &s->lh[l]);
    s->ds[l] = openslide_get_level_downsample(s->osr, l);
    if (s->lw[l] <= 0 || s->lh[l] <= 0 || !(s->ds[l] > 0))
      TS_FAIL(TS_EINPUT, "SLIDE_UNOPENABLE", "slide '%s' (%s): level %d has no size", id, path, l);
  }
  *out = s;
  s = NULL;
out:
  slide_destroy(s);
  return rc;
}

int ts_slide_reopen(ts_slide *s) {
  if (!s) return ts_error_set(TS_EINVAL, "EINVAL", "ts_slide_reopen: NULL slide");
  if (s->osr) openslide_close(s->osr);
  s->osr = NULL;
  free(s->sticky);
  s->sticky = NULL;
  return open_osr(s->path, s->id, &s->osr);
}

const char *ts_slide_id(const ts_slide *s) {
  return s->id;
}
const char *ts_slide_path(const ts_slide *s) {
  return s->path;
}
const char *ts_slide_vendor(const ts_slide *s) {
  return s->vendor;
}
const char *ts_slide_quickhash(const ts_slide *s) {
  return s->quickhash;
}
int ts_slide_level_count(const ts_slide *s) {
  return s->levels;
}
double ts_slide_objective_power(const ts_slide *s) {
  return s->objective_power;
}
double ts_slide_file_mpp(const ts_slide *s) {
  return s->file_mpp;
}
double ts_slide_mpp(const ts_slide *s) {
  return s->mpp;
}
enum ts_mpp_source ts_slide_mpp_source_enum(const ts_slide *s) {
  return s->mpp_source;
}

void ts_slide_level_dims(const ts_slide *s, int level, int64_t *w_out, int64_t *h_out) {
  int64_t w = -1, h = -1;
  if (level >= 0 && level < s->levels) {
    w = s->lw[level];
    h = s->lh[level];
  }
  if (w_out) *w_out = w;
  if (h_out) *h_out = h;
}

double ts_slide_level_downsample(const ts_slide *s, int level) {
  return (level >= 0 && level < s->levels) ? s->ds[level] : -1.0;
}

const char *ts_slide_mpp_source(const ts_slide *s) {
  switch (s->mpp_source) {
  case TS_MPP_FILE:
    return "file";
  case TS_MPP_COHORT:
    return "cohort";
  case TS_MPP_CONFIG:
    return "config";
  default:
    return "none";
  }
}

int ts_slide_resolve_mpp(ts_slide *s, double cohort_mpp, double config_mpp) {
  if (!s) return ts_error_set(TS_EINVAL, "EINVAL", "ts_slide_resolve_mpp: NULL slide");
  if (s->file_mpp > 0) {
    s->mpp = s->file_mpp;
    s->mpp_source = TS_MPP_FILE;
  } else if (cohort_mpp > 0 && isfinite(cohort_mpp)) {
    s->mpp = cohort_mpp;
    s->mpp_source = TS_MPP_COHORT;
  } else if (config_mpp > 0 && isfinite(config_mpp)) {
    s->mpp = config_mpp;
    s->mpp_source = TS_MPP_CONFIG;
  } else {
    s->mpp = 0;
    s->mpp_source = TS_MPP_NONE;
    return ts_error_set(TS_EINPUT, "SLIDE_NO_MPP",
                        "slide '%s' (%s): no pixel size in the file (vendor %s); give it in the "
                        "cohort CSV's mpp column (this slide) or as cohort.mpp in the config "
                        "(every slide whose file has none), in um/px",
                        s->id, s->path, s->vendor);
  }
  return 0;
}

int ts_slide_best_level(const ts_slide *s, double target_mpp) {
  if (!s || !(s->mpp > 0) || !(target_mpp > 0)) return 0;
  int best = 0;
  /* Relative tolerance so that a level at exactly the target (up to the rounding of
   * OpenSlide's downsample) counts as "at the target". */
  for (int l = 0; l < s->levels; l++)
    if (s->mpp * s->ds[l] <= target_mpp * (1.0 + 1e-6) && s->ds[l] >= s->ds[best]) best = l;
  return best;
}

int ts_slide_read_rgb(ts_slide *s, int level, int64_t x, int64_t y, int w, int h, uint8_t *rgb_out) {
  if (!s || !rgb_out || w < 0 || h < 0)
    return ts_error_set(TS_EINVAL, "EINVAL", "ts_slide_read_rgb: bad arguments");
  size_t npx = (size_t)w * (size_t)h;
  if (npx == 0) return 0;
  if (level < 0 || level >= s->levels) {
    memset(rgb_out, 0, npx * 3);
    return ts_error_set(TS_EINVAL, "EINVAL", "ts_slide_read_rgb: level %d of %d", level, s->levels);
  }
  if (s->sticky || !s->osr) {
    memset(rgb_out, 0, npx * 3);
    return ts_error_set(TS_EINPUT, "SLIDE_UNREADABLE", "slide '%s' (%s): %s", s->id, s->path,
                        s->sticky ? s->sticky : "handle closed");
  }
  int rows = (int)(STRIP_PX / (size_t)w);
  if (rows < 1) rows = 1;
  if (rows > h) rows = h;
  uint32_t *argb = malloc((size_t)rows * (size_t)w * sizeof *argb);
  if (!argb) {
    memset(rgb_out, 0, npx * 3);
    return ts_error_set(TS_ENOMEM, "ENOMEM", "ts_slide_read_rgb: %d x %d", w, rows);
  }
  double ds = s->ds[level];
  for (int r0 = 0; r0 < h; r0 += rows) {
    int nr = h - r0 < rows ? h - r0 : rows;
    /* Strip origin in level-0 px: y + r0 level px, as OpenSlide addresses level-0. */
    int64_t y0 = y + (int64_t)llround((double)r0 * ds);
    openslide_read_region(s->osr, argb, x, y0, level, w, nr);
    const char *err = openslide_get_error(s->osr);
    if (err) {
      s->sticky = strdup(err);
      free(argb);
      memset(rgb_out, 0, npx * 3);
      return ts_error_set(TS_EINPUT, "SLIDE_UNREADABLE",
                          "slide '%s' (%s): reading level %d at (%lld, %lld) %dx%d: %s", s->id, s->path,
                          level, (long long)x, (long long)y0, w, nr, err);
    }
    uint8_t *o = rgb_out + (size_t)r0 * (size_t)w * 3;
    size_t n = (size_t)nr * (size_t)w;
    for (size_t i = 0; i < n; i++) {
      uint32_t p = argb[i];
      unsigned a = p >> 24, bg = 255u - a;
      o[3 * i + 0] = (uint8_t)(((p >> 16) & 0xff) + bg);
      o[3 * i + 1] = (uint8_t)(((p >> 8) & 0xff) + bg);
      o[3 * i + 2] = (uint8_t)((p & 0xff) + bg);
    }
  }
  free(argb);
  return 0;
}
