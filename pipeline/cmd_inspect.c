/* cmd_inspect.c — `tessera inspect FILE.h5`: every group and dataset with shape, type and
 * attributes, so a user can see an output's provenance without Python. */
#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ts_cli.h"

static void print_type(hid_t t) {
  H5T_class_t cls = H5Tget_class(t);
  size_t sz = H5Tget_size(t);
  switch (cls) {
  case H5T_INTEGER: printf("%sint%zu", H5Tget_sign(t) == H5T_SGN_NONE ? "u" : "", sz * 8); break;
  case H5T_FLOAT: printf("float%zu", sz * 8); break;
  case H5T_STRING: printf("string"); break;
  default: printf("class%d", (int)cls); break;
  }
}

static void print_attr_value(hid_t a) {
  hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
  hssize_t n = H5Sget_simple_extent_npoints(sp);
  H5T_class_t cls = H5Tget_class(t);
  if (cls == H5T_STRING) {
    if (H5Tis_variable_str(t) > 0) {
      char *s = NULL;
      hid_t mt = H5Tget_native_type(t, H5T_DIR_ASCEND);
      if (n == 1 && H5Aread(a, mt, &s) >= 0) {
        printf("\"%s\"", s ? s : "");
        H5free_memory(s);
      }
      H5Tclose(mt);
    } else {
      size_t sz = H5Tget_size(t);
      char *s = calloc(sz * (size_t)(n > 0 ? n : 1) + 1, 1);
      if (s && H5Aread(a, t, s) >= 0) printf("\"%.*s\"", (int)(sz * (size_t)n), s);
      free(s);
    }
  } else if (cls == H5T_INTEGER || cls == H5T_FLOAT) {
    double *v = calloc((size_t)(n > 0 ? n : 1), sizeof *v);
    if (v && H5Aread(a, H5T_NATIVE_DOUBLE, v) >= 0) {
      if (n != 1) printf("[");
      for (hssize_t i = 0; i < n && i < 16; i++) printf("%s%.10g", i ? ", " : "", v[i]);
      if (n > 16) printf(", ...");
      if (n != 1) printf("]");
    }
    free(v);
  } else {
    printf("(");
    print_type(t);
    printf(")");
  }
  H5Sclose(sp);
  H5Tclose(t);
}

static herr_t attr_cb(hid_t loc, const char *name, const H5A_info_t *info, void *depth) {
  (void)info;
  hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
  if (a < 0) return 0;
  printf("%*s@%s = ", *(int *)depth * 2 + 2, "", name);
  print_attr_value(a);
  printf("\n");
  H5Aclose(a);
  return 0;
}

static herr_t visit(hid_t root, const char *name, const H5O_info_t *info, void *op) {
  (void)op;
  int depth = 0;
  for (const char *p = name; *p; p++) depth += *p == '/';
  if (info->type == H5O_TYPE_GROUP) {
    printf("%s/ (group)\n", strcmp(name, ".") ? name : "");
    hid_t g = H5Oopen(root, name, H5P_DEFAULT);
    H5Aiterate2(g, H5_INDEX_NAME, H5_ITER_INC, NULL, attr_cb, &depth);
    H5Oclose(g);
  } else if (info->type == H5O_TYPE_DATASET) {
    hid_t d = H5Dopen2(root, name, H5P_DEFAULT);
    hid_t sp = H5Dget_space(d), t = H5Dget_type(d), pl = H5Dget_create_plist(d);
    hsize_t dims[8] = {0}, chunk[8] = {0};
    int nd = H5Sget_simple_extent_ndims(sp);
    H5Sget_simple_extent_dims(sp, dims, NULL);
    printf("%s  ", name);
    print_type(t);
    printf(" [");
    for (int i = 0; i < nd; i++) printf("%s%llu", i ? " x " : "", (unsigned long long)dims[i]);
    printf("]");
    if (H5Pget_layout(pl) == H5D_CHUNKED) {
      int nc = H5Pget_chunk(pl, 8, chunk);
      printf(" chunks [");
      for (int i = 0; i < nc; i++) printf("%s%llu", i ? " x " : "", (unsigned long long)chunk[i]);
      printf("]");
    }
    printf("\n");
    H5Aiterate2(d, H5_INDEX_NAME, H5_ITER_INC, NULL, attr_cb, &depth);
    H5Pclose(pl);
    H5Tclose(t);
    H5Sclose(sp);
    H5Dclose(d);
  }
  return 0;
}

int ts_cmd_inspect(int argc, char **argv) {
  if (ts_cli_wants_help(argc, argv) || argc != 2) {
    printf("usage: tessera inspect FILE.h5\n\nPrints every group and dataset of an HDF5 file (tiles, features, masks) with\n"
           "type, shape, chunking and all attributes (provenance: mpp, source, config hash, version).\n");
    return argc == 2 ? 0 : TS_EXIT_USAGE;
  }
  /* Say what is wrong with the path before HDF5 does (its answer to a missing file is a
   * stack of "unable to open file" frames that never says "no such file"). */
  struct stat st;
  if (stat(argv[1], &st) < 0) {
    fprintf(stderr, "H5_MISSING: %s: no such file (%s)\n", argv[1], strerror(errno));
    return 1;
  }
  if (S_ISDIR(st.st_mode)) {
    fprintf(stderr, "H5_MISSING: %s: is a directory, not an HDF5 file\n", argv[1]);
    return 1;
  }
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  hid_t f = H5Fopen(argv[1], H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) {
    fprintf(stderr, "H5_OPEN: %s: not a readable HDF5 file\n", argv[1]);
    return 1;
  }
  printf("%s\n", argv[1]);
  H5Ovisit2(f, H5_INDEX_NAME, H5_ITER_INC, visit, NULL, H5O_INFO_BASIC);
  H5Fclose(f);
  return 0;
}
