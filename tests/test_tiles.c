/* test_tiles.c — the tile grid (counts, coordinates, exact area-weighted tissue fraction,
 * overlap, physical tile size) and tiles/<slide>.h5: read back with the HDF5 C API and with
 * h5py (Debian's /usr/bin/python3 + python3-h5py: the oracle CLAM/TRIDENT users have). */
#include <CUnit/Basic.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <vips/vips.h>

#include "ts_tiles.h"

static char tmpdir[256];

static int suite_init(void) {
  if (VIPS_INIT("test_tiles")) return -1;
  snprintf(tmpdir, sizeof tmpdir, "/tmp/ts_test_tiles_XXXXXX");
  return mkdtemp(tmpdir) ? 0 : -1;
}

static int suite_clean(void) {
  static const char *files[] = {"a.h5", "b.h5", "empty.h5", "check.py", NULL};
  char p[600];
  for (int i = 0; files[i]; i++) {
    snprintf(p, sizeof p, "%s/%s", tmpdir, files[i]);
    unlink(p);
  }
  rmdir(tmpdir);
  return 0;
}

/* A w×h mask at `scale` level-0 px per mask px; tissue where x_l0 < split (mask px centres). */
static ts_mask make_mask(int w, int h, double scale, double split) {
  ts_mask m = {0};
  m.w = w;
  m.h = h;
  m.scale_x = m.scale_y = scale;
  m.mpp = scale * 0.25;
  m.data = calloc((size_t)w * h, 1);
  for (int i = 0; i < h; i++)
    for (int j = 0; j < w; j++)
      m.data[(size_t)i * w + j] = (j + 0.5) * scale < split ? 255 : 0;
  return m;
}

static void test_tiles_full_mask(void) {
  ts_mask m = make_mask(313, 313, 32, 1e18);
  ts_grid_params p = {.size = 256, .mpp = 0.5, .overlap = 0, .min_tissue = 0.5};
  ts_grid g;
  CU_ASSERT_EQUAL_FATAL(ts_grid_build(10000, 10000, 0.25, &m, &p, &g), 0);
  CU_ASSERT_DOUBLE_EQUAL(g.tile_l0, 512.0, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(g.step_l0, 512.0, 1e-12);
  CU_ASSERT_EQUAL(g.size_l0, 512);
  CU_ASSERT_EQUAL(g.n, 19 * 19); /* 18*512 + 512 = 9728 <= 10000 < 10240 */
  CU_ASSERT(g.coords[0] == 0 && g.coords[1] == 0);
  CU_ASSERT(g.coords[2] == 512 && g.coords[3] == 0); /* row-major: x first */
  CU_ASSERT(g.coords[2 * 19] == 0 && g.coords[2 * 19 + 1] == 512);
  CU_ASSERT(g.coords[2 * (g.n - 1)] == 9216 && g.coords[2 * (g.n - 1) + 1] == 9216);
  for (int64_t i = 0; i < g.n; i++)
    CU_ASSERT(g.coords[2 * i] + g.size_l0 <= 10000 && g.coords[2 * i + 1] + g.size_l0 <= 10000);
  ts_grid_clear(&g);
  /* No mask: every tile that fits. */
  CU_ASSERT_EQUAL(ts_grid_build(10000, 10000, 0.25, NULL, &p, &g), 0);
  CU_ASSERT_EQUAL(g.n, 361);
  ts_grid_clear(&g);
  ts_mask_clear(&m);
}

static void test_tiles_empty_mask(void) {
  ts_mask m = make_mask(100, 100, 100, -1);
  ts_grid_params p = {.size = 256, .mpp = 0.5, .overlap = 0, .min_tissue = 0.01};
  ts_grid g;
  CU_ASSERT_EQUAL_FATAL(ts_grid_build(10000, 10000, 0.25, &m, &p, &g), 0);
  CU_ASSERT_EQUAL(g.n, 0);
  ts_grid_clear(&g);
  /* A slide smaller than one tile has no tiles either. */
  CU_ASSERT_EQUAL(ts_grid_build(300, 300, 0.25, NULL, &p, &g), 0);
  CU_ASSERT_EQUAL(g.n, 0);
  ts_grid_clear(&g);
  ts_mask_clear(&m);
}

static void test_tiles_half_mask_area_weighted(void) {
  /* Tissue on x < 5000 (mask px of 40 level-0 px: columns 0..124). The tile at x = 4608
   * covers 392 of its 512 px with tissue: fraction 0.7656 (area weighting, exact). */
  ts_mask m = make_mask(250, 250, 40, 5000);
  ts_grid_params p = {.size = 256, .mpp = 0.5, .overlap = 0, .min_tissue = 0.5};
  ts_grid g;
  CU_ASSERT_EQUAL_FATAL(ts_grid_build(10000, 10000, 0.25, &m, &p, &g), 0);
  CU_ASSERT_EQUAL(g.n, 10 * 19);
  ts_grid_clear(&g);
  p.min_tissue = 0.76;
  CU_ASSERT_EQUAL(ts_grid_build(10000, 10000, 0.25, &m, &p, &g), 0);
  CU_ASSERT_EQUAL(g.n, 10 * 19);
  ts_grid_clear(&g);
  p.min_tissue = 0.77;
  CU_ASSERT_EQUAL(ts_grid_build(10000, 10000, 0.25, &m, &p, &g), 0);
  CU_ASSERT_EQUAL(g.n, 9 * 19);
  for (int64_t i = 0; i < g.n; i++)
    CU_ASSERT(g.coords[2 * i] + 512 <= 5000);
  ts_grid_clear(&g);
  /* A mask pixel straddling the tile edge counts by its overlapping area: column 125
   * (centre 5020, covering [5000, 5040)) becomes tissue. Tile at 4608: (5040 - 4608) / 512
   * = 0.84375. */
  ts_mask_clear(&m);
  m = make_mask(250, 250, 40, 5021);
  p.min_tissue = 0.84;
  CU_ASSERT_EQUAL(ts_grid_build(10000, 10000, 0.25, &m, &p, &g), 0);
  CU_ASSERT_EQUAL(g.n, 10 * 19);
  ts_grid_clear(&g);
  p.min_tissue = 0.85;
  CU_ASSERT_EQUAL(ts_grid_build(10000, 10000, 0.25, &m, &p, &g), 0);
  CU_ASSERT_EQUAL(g.n, 9 * 19);
  ts_grid_clear(&g);
  ts_mask_clear(&m);
}

static void test_tiles_overlap_and_physical_size(void) {
  ts_grid_params p = {.size = 256, .mpp = 0.5, .overlap = 64, .min_tissue = 0};
  ts_grid g;
  CU_ASSERT_EQUAL_FATAL(ts_grid_build(10000, 6000, 0.25, NULL, &p, &g), 0);
  CU_ASSERT_DOUBLE_EQUAL(g.step_l0, 384.0, 1e-12);
  int64_t nx = (10000 - 512) / 384 + 1, ny = (6000 - 512) / 384 + 1;
  CU_ASSERT_EQUAL(g.n, nx * ny);
  CU_ASSERT_EQUAL(g.coords[2], 384);
  CU_ASSERT_EQUAL(g.coords[2 * nx + 1], 384);
  ts_grid_clear(&g);
  /* Non-integer ratio: 256 px at 0.5 um/px on a 0.499 um/px scan. */
  p.overlap = 0;
  CU_ASSERT_EQUAL(ts_grid_build(2220, 2967, 0.499, NULL, &p, &g), 0);
  CU_ASSERT_DOUBLE_EQUAL(g.tile_l0, 256 * 0.5 / 0.499, 1e-9);
  CU_ASSERT_EQUAL(g.size_l0, 257);
  CU_ASSERT_EQUAL(g.n, 8 * 11);
  CU_ASSERT_EQUAL(g.coords[2], llround(g.step_l0));     /* 256.51 -> 257 */
  CU_ASSERT_EQUAL(g.coords[4], llround(2 * g.step_l0)); /* 513.03 -> 513 */
  ts_grid_clear(&g);
  /* Bad parameters carry a token. */
  p.overlap = 256;
  CU_ASSERT(ts_grid_build(1000, 1000, 0.25, NULL, &p, &g) < 0);
  CU_ASSERT_STRING_EQUAL(ts_error_token(), "TILE_BAD_PARAMS");
}

static ts_tiles_meta test_meta(void) {
  ts_tiles_meta m = {.slide_id = "case-01",
                     .slide_path = "/data/case-01.svs",
                     .quickhash = "abc123",
                     .mpp_source = "file",
                     .config_hash = "cfg0",
                     .version = "0.1.0",
                     .mpp0 = 0.25,
                     .objective_power = 40,
                     .w0 = 10000,
                     .h0 = 10000,
                     .read_level = 1,
                     .read_downsample = 2.0,
                     .read_w = 5000,
                     .read_h = 5000};
  return m;
}

static double attr_f64(hid_t d, const char *name) {
  double v = NAN;
  hid_t a = H5Aopen(d, name, H5P_DEFAULT);
  if (a < 0) return NAN;
  H5Aread(a, H5T_NATIVE_DOUBLE, &v);
  H5Aclose(a);
  return v;
}

static void test_tiles_write_h5_c_api(void) {
  ts_grid_params p = {.size = 256, .mpp = 0.5, .overlap = 0, .min_tissue = 0.25};
  ts_grid g;
  CU_ASSERT_EQUAL_FATAL(ts_grid_build(100000, 50000, 0.25, NULL, &p, &g), 0);
  CU_ASSERT(g.n > 1024); /* several chunks */
  ts_tiles_meta meta = test_meta();
  meta.w0 = 100000;
  meta.h0 = 50000;
  char path[600], path2[600];
  snprintf(path, sizeof path, "%s/a.h5", tmpdir);
  snprintf(path2, sizeof path2, "%s/b.h5", tmpdir);
  CU_ASSERT_EQUAL_FATAL(ts_tiles_write_h5(path, &g, &p, &meta), 0);
  CU_ASSERT_EQUAL(ts_tiles_write_h5(path2, &g, &p, &meta), 0);
  char cmd[1300];
  snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", path, path2);
  CU_ASSERT_EQUAL(system(cmd), 0); /* byte-reproducible */
  /* the stages' path: written under the temporary name, committed with the unit's other
   * outputs; the same bytes (save_path is the final directory, not the temporary name's) */
  char tmp2[700];
  snprintf(tmp2, sizeof tmp2, "%s.tmp.7", path2);
  unlink(path2);
  CU_ASSERT_EQUAL_FATAL(ts_tiles_write_h5_to_tmp(path2, tmp2, &g, &p, &meta), 0);
  CU_ASSERT_EQUAL_FATAL(ts_outputs_commit((const char *const[]){tmp2}, (const char *const[]){path2}, 1), 0);
  CU_ASSERT_EQUAL(system(cmd), 0);

  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  CU_ASSERT_FATAL(f >= 0);
  hid_t d = H5Dopen2(f, "coords", H5P_DEFAULT);
  CU_ASSERT_FATAL(d >= 0);
  hid_t sp = H5Dget_space(d);
  hsize_t dims[2];
  CU_ASSERT_EQUAL(H5Sget_simple_extent_dims(sp, dims, NULL), 2);
  CU_ASSERT_EQUAL(dims[0], (hsize_t)g.n);
  CU_ASSERT_EQUAL(dims[1], 2);
  hid_t dcpl = H5Dget_create_plist(d);
  hsize_t ch[2];
  CU_ASSERT_EQUAL(H5Pget_chunk(dcpl, 2, ch), 2);
  CU_ASSERT(ch[0] == 1024 && ch[1] == 2);
  H5Pclose(dcpl);
  int64_t *c = malloc((size_t)g.n * 2 * sizeof *c);
  CU_ASSERT(H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, c) >= 0);
  CU_ASSERT(memcmp(c, g.coords, (size_t)g.n * 2 * sizeof *c) == 0);
  free(c);
  CU_ASSERT_DOUBLE_EQUAL(attr_f64(d, "patch_size"), 256, 0); /* 512 l0 px at level 1 (ds 2) */
  CU_ASSERT_DOUBLE_EQUAL(attr_f64(d, "patch_level"), 1, 0);
  CU_ASSERT_DOUBLE_EQUAL(attr_f64(d, "patch_size_level0"), 512, 0);
  CU_ASSERT_DOUBLE_EQUAL(attr_f64(d, "level0_magnification"), 40, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(attr_f64(d, "target_magnification"), 20, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(attr_f64(d, "level0_width"), 100000, 0);
  CU_ASSERT_DOUBLE_EQUAL(attr_f64(d, "mpp_level0"), 0.25, 0);
  CU_ASSERT_DOUBLE_EQUAL(attr_f64(d, "target_mpp"), 0.5, 0);
  CU_ASSERT_DOUBLE_EQUAL(attr_f64(d, "min_tissue"), 0.25, 0);
  CU_ASSERT_DOUBLE_EQUAL(attr_f64(d, "tile_size_px"), 256, 0);
  static const char *need[] = {"downsample",      "downsampled_level_dim",
                               "level_dim",       "name",
                               "save_path",       "overlap",
                               "savetodir",       "level0_height",
                               "mpp_source",      "config_hash",
                               "tessera_version", "slide_quickhash",
                               "slide_path",      NULL};
  for (int i = 0; need[i]; i++)
    CU_ASSERT(H5Aexists(d, need[i]) > 0);
  H5Sclose(sp);
  H5Dclose(d);
  H5Fclose(f);
  ts_grid_clear(&g);
}

static void test_tiles_write_h5_h5py(void) {
  if (access("/usr/bin/python3", X_OK) != 0) {
    CU_FAIL("/usr/bin/python3 missing (Debian python3 + python3-h5py are test dependencies)");
    return;
  }
  /* a.h5 from the test above (2 readers, one file) and an empty grid. */
  ts_grid g = {0};
  ts_grid_params p = {.size = 224, .mpp = 0.5, .overlap = 0, .min_tissue = 0.5};
  ts_tiles_meta meta = test_meta();
  g.size_l0 = 448;
  g.tile_l0 = g.step_l0 = 448;
  char empty[600], a[600], py[600];
  snprintf(empty, sizeof empty, "%s/empty.h5", tmpdir);
  snprintf(a, sizeof a, "%s/a.h5", tmpdir);
  snprintf(py, sizeof py, "%s/check.py", tmpdir);
  CU_ASSERT_EQUAL_FATAL(ts_tiles_write_h5(empty, &g, &p, &meta), 0);
  FILE *f = fopen(py, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fputs("import sys, h5py, numpy as np\n"
        "def check(path, n):\n"
        "    with h5py.File(path, 'r') as f:\n"
        "        d = f['coords']\n"
        "        assert d.shape == (n, 2), d.shape\n"
        "        assert d.dtype == np.int64, d.dtype\n"
        "        c = d[:]\n"
        "        assert c.shape == (n, 2)\n"
        "        a = d.attrs\n"
        "        for k in ('patch_size','patch_level','patch_size_level0','overlap',\n"
        "                  'level0_width','level0_height','tile_size_px'):\n"
        "            assert isinstance(a[k], np.integer), (k, type(a[k]))\n"
        "        for k in ('level0_magnification','target_magnification','mpp_level0',\n"
        "                  'target_mpp','min_tissue'):\n"
        "            assert isinstance(a[k], np.floating), (k, type(a[k]))\n"
        "        for k in ('name','save_path','savetodir','mpp_source','config_hash',\n"
        "                  'tessera_version','slide_quickhash','slide_path'):\n"
        "            assert isinstance(a[k], str), (k, type(a[k]))\n"
        "        assert a['name'] == 'case-01'\n"
        "        assert list(a['downsample']) == [2.0, 2.0]\n"
        "        assert list(a['level_dim']) == [5000, 5000]\n"
        "        assert list(a['downsampled_level_dim']) == [5000, 5000]\n"
        "        ps0 = a['patch_size'] * a['level0_magnification'] / a['target_magnification']\n"
        "        assert abs(ps0 - a['patch_size_level0']) < 1e-6, ps0\n"
        "        if n:\n"
        "            assert c[0].tolist() == [0, 0] and c[1].tolist() == [512, 0]\n"
        "            assert d.chunks == (1024, 2), d.chunks\n"
        "check(sys.argv[1], int(sys.argv[2]))\n"
        "check(sys.argv[3], 0)\n"
        "print('h5py ok', h5py.__version__)\n",
        f);
  fclose(f);
  /* a.h5 holds the 100000x50000 full grid of 512-px tiles: 195 x 97. */
  char cmd[2000];
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s' %d '%s'", py, a, 195 * 97, empty);
  CU_ASSERT_EQUAL(system(cmd), 0);
}

int ts_test_register(void) {
  CU_pSuite su = CU_add_suite("tiles", suite_init, suite_clean);
  if (!su) return -1;
  if (!CU_add_test(su, "test_tiles_full_mask", test_tiles_full_mask) ||
      !CU_add_test(su, "test_tiles_empty_mask", test_tiles_empty_mask) ||
      !CU_add_test(su, "test_tiles_half_mask_area_weighted", test_tiles_half_mask_area_weighted) ||
      !CU_add_test(su, "test_tiles_overlap_and_physical_size", test_tiles_overlap_and_physical_size) ||
      !CU_add_test(su, "test_tiles_write_h5_c_api", test_tiles_write_h5_c_api) ||
      !CU_add_test(su, "test_tiles_write_h5_h5py", test_tiles_write_h5_h5py))
    return -1;
  return 0;
}
