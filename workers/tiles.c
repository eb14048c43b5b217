/* tiles.c — the tile grid in physical units and the tiles/<slide>.h5 writer (see ts_tiles.h).
 *
 * Tissue fraction: exact area weighting. The mask is a piecewise-constant function on the
 * level-0 plane (mask pixel (i, j) covers [j*sx, (j+1)*sx) × [i*sy, (i+1)*sy)). Its integral
 * over [0, u) × [0, v) is bilinear inside each mask cell, so bilinear interpolation of the
 * summed-area table (Crow 1984) at fractional mask coordinates gives the exact tissue area
 * under any axis-aligned rectangle; four look-ups per tile, whatever the tile size. Area of
 * the tile outside the mask counts as no tissue.
 *
 * HDF5 layout (ARCHITECTURE.md, "Contracts"): dataset `coords`, N×2 int64 level-0 top-left
 * (x, y), chunked in blocks of up to 1024 rows, maxshape (unlimited, 2) like CLAM's, with:
 *  - CLAM (wsi_core/WholeSlideImage.py, process_contour/save_hdf5): patch_size, patch_level,
 *    downsample (2 × f64), downsampled_level_dim (2 × i64), level_dim (2 × i64), name,
 *    save_path. CLAM's extractor reads `patch_size` px at `patch_level` with OpenSlide, so
 *    patch_size is the tile side in pixels *of patch_level* (the level the reader uses).
 *  - TRIDENT (trident/wsi_objects/WSI.py, extract_tissue_coords): patch_size (the same
 *    attribute), patch_size_level0, level0_magnification, target_magnification, overlap,
 *    name, savetodir, level0_width, level0_height. TRIDENT reads
 *    patch_size*level0_mag/target_mag level-0 px and resizes to patch_size, so we write
 *    target_magnification = level0_mag * patch_size / patch_size_level0: the magnification
 *    of the patch_level pixel grid. Both readers then cut exactly the tessera tile; it is
 *    the user's target magnification (10/target_mpp-equivalent) whenever the slide has a
 *    level at the target mpp. `overlap` is in patch_size pixels.
 *  - tessera: mpp_level0, target_mpp, mpp_source, config_hash, tessera_version,
 *    slide_quickhash, slide_path, min_tissue, tile_size_px, tile_overlap_px.
 */
#include "ts_tiles.h"

#include <libgen.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "h5util.h"
#include "ts_io.h"

void ts_grid_clear(ts_grid *g) {
  if (!g) return;
  free(g->coords);
  memset(g, 0, sizeof *g);
}

/* Integral of the mask (0/1) over [0, u) × [0, v), u, v in mask px, clamped to the mask. */
static double sat_at(const uint32_t *S, int w, int h, double u, double v) {
  if (u <= 0 || v <= 0) return 0;
  if (u > w) u = w;
  if (v > h) v = h;
  int j = (int)floor(u), i = (int)floor(v);
  if (j >= w) j = w - 1;
  if (i >= h) i = h - 1;
  double fu = u - j, fv = v - i;
  size_t W1 = (size_t)w + 1;
  double s00 = (double)S[(size_t)i * W1 + j], s01 = (double)S[(size_t)i * W1 + j + 1];
  double s10 = (double)S[(size_t)(i + 1) * W1 + j], s11 = (double)S[(size_t)(i + 1) * W1 + j + 1];
  return s00 + fu * (s01 - s00) + fv * (s10 - s00) + fu * fv * (s11 - s10 - s01 + s00);
}

/* Positions along one axis: round(i*step) while the tile fits. */
static int64_t axis_count(int64_t len, double step, int64_t size) {
  if (len < size) return 0;
  int64_t n = (int64_t)floor((double)(len - size) / step) + 1;
  while (n > 0 && llround((double)(n - 1) * step) + size > len)
    n--;
  while (llround((double)n * step) + size <= len)
    n++;
  return n;
}

int ts_grid_build(int64_t w0, int64_t h0, double mpp0, const ts_mask *mask, const ts_grid_params *p,
                  ts_grid *out) {
  int rc = 0;
  uint32_t *S = NULL; /* mask pixels are < 2^28 (ts_tissue_mask): the counts fit 32 bits */
  if (!out || !p) return ts_error_set(TS_EINVAL, "EINVAL", "ts_grid_build: NULL argument");
  memset(out, 0, sizeof *out);
  if (!(mpp0 > 0) || !(p->mpp > 0) || p->size <= 0 || p->overlap < 0 || p->overlap >= p->size || w0 <= 0 ||
      h0 <= 0 || !(p->min_tissue >= 0) || p->min_tissue > 1)
    return ts_error_set(TS_EINVAL, "TILE_BAD_PARAMS",
                        "tile grid: size %d, overlap %d, mpp %g, mpp0 %g, min_tissue %g, "
                        "slide %lldx%lld",
                        p->size, p->overlap, p->mpp, mpp0, p->min_tissue, (long long)w0, (long long)h0);
  if (mask && (!mask->data || mask->w <= 0 || mask->h <= 0 || !(mask->scale_x > 0) || !(mask->scale_y > 0)))
    return ts_error_set(TS_EINVAL, "EINVAL", "ts_grid_build: empty mask");
  double r = p->mpp / mpp0;
  out->tile_l0 = p->size * r;
  out->step_l0 = (p->size - p->overlap) * r;
  out->size_l0 = llround(out->tile_l0);
  if (out->size_l0 < 1) out->size_l0 = 1;
  int64_t nx = axis_count(w0, out->step_l0, out->size_l0);
  int64_t ny = axis_count(h0, out->step_l0, out->size_l0);
  if (nx == 0 || ny == 0) return 0;
  out->coords = malloc((size_t)nx * (size_t)ny * 2 * sizeof *out->coords);
  if (!out->coords) TS_FAIL(TS_ENOMEM, "ENOMEM", "tile grid: %lld x %lld", (long long)nx, (long long)ny);
  int mw = 0, mh = 0;
  if (mask) {
    mw = mask->w;
    mh = mask->h;
    size_t W1 = (size_t)mw + 1;
    S = ts__huge_alloc(W1 * ((size_t)mh + 1) * sizeof *S); /* zeroed; few page faults */
    if (!S) TS_FAIL(TS_ENOMEM, "ENOMEM", "tile grid: integral image %dx%d", mw, mh);
    for (int i = 0; i < mh; i++) {
      uint32_t row = 0;
      for (int j = 0; j < mw; j++) {
        row += mask->data[(size_t)i * mw + j] ? 1 : 0;
        S[(size_t)(i + 1) * W1 + j + 1] = S[(size_t)i * W1 + j + 1] + row;
      }
    }
  }
  double sl = (double)out->size_l0;
  double area = mask ? (sl / mask->scale_x) * (sl / mask->scale_y) : 1.0;
  double need = p->min_tissue * (1.0 - 1e-9);
  for (int64_t iy = 0; iy < ny; iy++) {
    int64_t y = llround((double)iy * out->step_l0);
    for (int64_t ix = 0; ix < nx; ix++) {
      int64_t x = llround((double)ix * out->step_l0);
      if (mask) {
        double u0 = x / mask->scale_x, u1 = (x + sl) / mask->scale_x;
        double v0 = y / mask->scale_y, v1 = (y + sl) / mask->scale_y;
        double t = sat_at(S, mw, mh, u1, v1) - sat_at(S, mw, mh, u0, v1) - sat_at(S, mw, mh, u1, v0) +
                   sat_at(S, mw, mh, u0, v0);
        if (t / area < need) continue;
      }
      out->coords[2 * out->n] = x;
      out->coords[2 * out->n + 1] = y;
      out->n++;
    }
  }
out:
  ts__huge_free(S);
  if (rc < 0) ts_grid_clear(out);
  return rc;
}

static int write_attrs(hid_t d, const char *path, const ts_grid *g, const ts_grid_params *p,
                       const ts_tiles_meta *m) {
  char dirbuf[TS_PATH_MAX];
  snprintf(dirbuf, sizeof dirbuf, "%s", path);
  const char *dir = dirname(dirbuf);
  const char *name = m->slide_id ? m->slide_id : "";
  double rds = m->read_downsample > 0 ? m->read_downsample : 1.0;
  int64_t patch_size = llround((double)g->size_l0 / rds);
  if (patch_size < 1) patch_size = 1;
  double mag0 = m->objective_power > 0 ? m->objective_power : 10.0 / m->mpp0;
  double target_mag = mag0 * (double)patch_size / (double)g->size_l0;
  int64_t overlap = llround(p->overlap * (double)patch_size / p->size);
  double dsv[2] = {rds, rds};
  int64_t rdim[2] = {m->read_w, m->read_h};
  /* CLAM */
  TS_CALL(ts__h5_attr_i64(d, "patch_size", patch_size));
  TS_CALL(ts__h5_attr_i64(d, "patch_level", m->read_level));
  TS_CALL(ts__h5_attr_f64v(d, "downsample", dsv, 2));
  TS_CALL(ts__h5_attr_i64v(d, "downsampled_level_dim", rdim, 2));
  TS_CALL(ts__h5_attr_i64v(d, "level_dim", rdim, 2));
  TS_CALL(ts__h5_attr_str(d, "name", name));
  TS_CALL(ts__h5_attr_str(d, "save_path", dir));
  /* TRIDENT */
  TS_CALL(ts__h5_attr_i64(d, "patch_size_level0", g->size_l0));
  TS_CALL(ts__h5_attr_f64(d, "level0_magnification", mag0));
  TS_CALL(ts__h5_attr_f64(d, "target_magnification", target_mag));
  TS_CALL(ts__h5_attr_i64(d, "overlap", overlap));
  TS_CALL(ts__h5_attr_str(d, "savetodir", dir));
  TS_CALL(ts__h5_attr_i64(d, "level0_width", m->w0));
  TS_CALL(ts__h5_attr_i64(d, "level0_height", m->h0));
  /* tessera */
  TS_CALL(ts__h5_attr_f64(d, "mpp_level0", m->mpp0));
  TS_CALL(ts__h5_attr_f64(d, "target_mpp", p->mpp));
  TS_CALL(ts__h5_attr_str(d, "mpp_source", m->mpp_source));
  TS_CALL(ts__h5_attr_str(d, "config_hash", m->config_hash));
  TS_CALL(ts__h5_attr_str(d, "tessera_version", m->version));
  TS_CALL(ts__h5_attr_str(d, "slide_quickhash", m->quickhash));
  TS_CALL(ts__h5_attr_str(d, "slide_path", m->slide_path));
  TS_CALL(ts__h5_attr_f64(d, "min_tissue", p->min_tissue));
  TS_CALL(ts__h5_attr_i64(d, "tile_size_px", p->size));
  TS_CALL(ts__h5_attr_i64(d, "tile_overlap_px", p->overlap));
  return 0;
}

int ts_tiles_write_h5_to_tmp(const char *path, const char *tmp, const ts_grid *g, const ts_grid_params *p,
                             const ts_tiles_meta *m) {
  int rc = 0;
  hid_t f = -1, sp = -1, dcpl = -1, d = -1;
  if (!path || !tmp || !g || !p || !m || (g->n > 0 && !g->coords) || g->n < 0 || !(m->mpp0 > 0) || p->size <= 0)
    return ts_error_set(TS_EINVAL, "EINVAL", "ts_tiles_write_h5: bad arguments");
  f = ts__h5_create(tmp);
  if (f < 0) return ts__h5_fail(TS_EIO, "H5_WRITE", "cannot create %s", tmp);
  hsize_t dims[2] = {(hsize_t)g->n, 2}, maxd[2] = {H5S_UNLIMITED, 2};
  hsize_t chunk = g->n < 1 ? 1 : (g->n < 1024 ? (hsize_t)g->n : 1024);
  sp = H5Screate_simple(2, dims, maxd);
  dcpl = ts__h5_dcpl(1, chunk, 2, 0);
  if (sp < 0 || dcpl < 0) {
    rc = ts__h5_fail(TS_EIO, "H5_WRITE", "%s: coords dataspace", tmp);
    goto out;
  }
  d = H5Dcreate2(f, "coords", H5T_STD_I64LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  if (d < 0) {
    rc = ts__h5_fail(TS_EIO, "H5_WRITE", "%s: create coords", tmp);
    goto out;
  }
  if (g->n > 0 && H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, g->coords) < 0) {
    rc = ts__h5_fail(TS_EIO, "H5_WRITE", "%s: write coords", tmp);
    goto out;
  }
  TS_TRY(write_attrs(d, path, g, p, m));
out:
  if (d >= 0 && H5Dclose(d) < 0 && rc == 0) rc = ts__h5_fail(TS_EIO, "H5_WRITE", "close");
  if (dcpl >= 0) H5Pclose(dcpl);
  if (sp >= 0) H5Sclose(sp);
  if (f >= 0 && H5Fclose(f) < 0 && rc == 0) rc = ts__h5_fail(TS_EIO, "H5_WRITE", "closing %s", tmp);
  return rc;
}

int ts_tiles_write_h5(const char *path, const ts_grid *g, const ts_grid_params *p, const ts_tiles_meta *m) {
  char tmp[TS_PATH_MAX];
  if (!path) return ts_error_set(TS_EINVAL, "EINVAL", "ts_tiles_write_h5: bad arguments");
  TS_CALL(ts_io_tmp_path(path, tmp, sizeof tmp));
  int rc = ts_tiles_write_h5_to_tmp(path, tmp, g, p, m);
  if (rc == 0) rc = ts_io_commit(tmp, path);
  if (rc < 0) unlink(tmp);
  return rc;
}
