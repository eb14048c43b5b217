/* extract_check.c FEATURES.h5 SLIDE ENCODER [N] — the features the extract stage wrote for
 * the first N tiles equal the encoder applied to each tile read alone (ts_reader_read_tile,
 * one-tile batches), with the same settings (default normalisation, seed 1, 224 px).
 * Prints the largest absolute difference; exit 1 above 1e-5 relative to the feature scale. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vips/vips.h>

#include "h5util.h"
#include "ts_encoder.h"
#include "ts_reader.h"

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: extract_check FEATURES.h5 SLIDE ENCODER [N]\n");
    return 2;
  }
  if (VIPS_INIT(argv[0])) return 2;
  int want = argc > 4 ? atoi(argv[4]) : 4;
  ts__h5_quiet();
  hid_t f = H5Fopen(argv[1], H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) { fprintf(stderr, "cannot open %s\n", argv[1]); return 2; }
  hid_t dc = H5Dopen2(f, "coords", H5P_DEFAULT), df = H5Dopen2(f, "features", H5P_DEFAULT);
  hsize_t cd[2], fd[2];
  hid_t s1 = H5Dget_space(dc), s2 = H5Dget_space(df);
  H5Sget_simple_extent_dims(s1, cd, NULL);
  H5Sget_simple_extent_dims(s2, fd, NULL);
  int64_t n = (int64_t)cd[0], dim = (int64_t)fd[1];
  int64_t *xy = malloc(sizeof *xy * (size_t)(2 * n + 2));
  float *feat = malloc(sizeof *feat * (size_t)(n * dim + 1));
  double mpp0, target;
  int64_t size;
  H5Dread(dc, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, xy);
  H5Dread(df, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, feat);
  ts__h5_read_attr_f64(dc, "mpp_level0", &mpp0);
  ts__h5_read_attr_f64(dc, "target_mpp", &target);
  ts__h5_read_attr_i64(dc, "tile_size_px", &size);
  ts_reader *r = NULL;
  ts_encoder *e = NULL;
  if (ts_reader_open(argv[2], "check", mpp0, target, (int)size, NULL, &r) < 0 || ts_encoder_new(argv[3], NULL, &e) < 0) {
    fprintf(stderr, "%s\n", ts_error_message());
    return 2;
  }
  ts_nn_set_deterministic(true);
  if (ts_encoder_dim(e) != dim) { printf("FAIL - dim %d vs file %lld\n", ts_encoder_dim(e), (long long)dim); return 1; }
  uint8_t *rgb = malloc((size_t)(size * size * 3));
  float *one = malloc(sizeof *one * (size_t)dim);
  double maxdiff = 0, scale = 0;
  int checked = 0;
  for (int64_t i = 0; i < n && checked < want; i += (n / want > 0 ? n / want : 1), checked++) {
    if (ts_reader_read_tile(r, xy[2 * i], xy[2 * i + 1], rgb) < 0 ||
        ts_encoder_forward_u8(e, rgb, 1, (int)size, (int)size, one, (size_t)dim) < 0) {
      fprintf(stderr, "%s\n", ts_error_message());
      return 2;
    }
    for (int64_t k = 0; k < dim; k++) {
      double d = fabs((double)one[k] - (double)feat[i * dim + k]);
      if (d > maxdiff) maxdiff = d;
      if (fabs(one[k]) > scale) scale = fabs(one[k]);
    }
  }
  printf("extract_check: %d tiles of %lld, D=%lld, max |stage - alone| = %.3g (feature scale %.3g)\n", checked,
         (long long)n, (long long)dim, maxdiff, scale);
  ts_encoder_free(&e);
  ts_reader_free(&r);
  H5Sclose(s1); H5Sclose(s2); H5Dclose(dc); H5Dclose(df); H5Fclose(f);
  return checked > 0 && maxdiff <= 1e-5 * (scale > 1 ? scale : 1) ? 0 : 1;
}
