/* ts_report_internal.h — shared-internal helpers of the report files (pipeline/report*.c):
 * facts read back from the HDF5 outputs of the tile and tissue stages. Not for stages. */
#ifndef TS_REPORT_INTERNAL_H
#define TS_REPORT_INTERNAL_H

#include <stdint.h>

typedef struct ts__tiles_facts {
  int64_t n;            /* rows of coords, -1 unknown */
  double mpp0;          /* mpp_level0 (um/px), NaN unknown */
  double target_mpp;    /* target_mpp, NaN unknown */
  char mpp_source[32];  /* "file", "cohort", "config" */
  char quickhash[96];   /* slide_quickhash */
} ts__tiles_facts;

/* Read tiles/<slide>.h5: 0, or -1 when the file or its coords cannot be read. */
int ts__report_tiles_facts(const char *path, ts__tiles_facts *out);
/* um/px of the mask in tissue/<slide>.h5 (NaN when unreadable). */
double ts__report_tissue_mpp(const char *path);

#endif
