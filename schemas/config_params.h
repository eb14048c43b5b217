/* config_params.h — THE config schema of tessera: every key, its type, default, range and doc,
 * declared once (libvips' VIPS_ARG_* habit). The YAML validator, the libcyaml schema,
 * `tessera run --help`, the resolved config and the per-stage config hashes all come from
 * this table; nothing else lists config keys.
 *
 * TS_PARAM(section, key, type, default, min, max, required, doc)
 *   type: STR, INT, FLOAT, BOOL. default: the YAML text of the default (NULL: none).
 *   min/max: inclusive range for INT and FLOAT (ignored for others).
 *   Relative paths (keys whose doc starts with "path:") are resolved against the directory
 *   of the config file.
 */
TS_PARAM(run, dir, STR, "run", 0, 0, 0,
         "path: run directory (outputs, ledger, resolved config)")
TS_PARAM(run, seed, INT, "1", 0, 4294967295.0, 0, "seed of everything random in the run")
TS_PARAM(cohort, csv, STR, NULL, 0, 0, 1,
         "path: cohort CSV with columns slide_id,patient_id,path[,label][,mpp]")
TS_PARAM(cohort, clinical, STR, "", 0, 0, 0, "path: clinical CSV, one row per patient")
TS_PARAM(cohort, genomic, STR, "", 0, 0, 0, "path: genomic CSV, one row per patient")
TS_PARAM(cohort, mpp, FLOAT, "0", 0, 100, 0,
         "level-0 um/px for slides whose file has none (0: refuse them with SLIDE_NO_MPP)")
TS_PARAM(tissue, mpp, FLOAT, "8", 1, 64, 0, "um/px of the view the tissue mask is computed on")
TS_PARAM(tissue, median, INT, "7", 1, 31, 0, "median filter size in mask px (odd)")
TS_PARAM(tissue, close, INT, "5", 0, 31, 0, "morphological closing size in mask px")
TS_PARAM(tissue, min_area_um2, FLOAT, "20000", 0, 1e12, 0,
         "tissue pieces smaller than this (um^2) are dropped")
TS_PARAM(tissue, min_hole_um2, FLOAT, "8000", 0, 1e12, 0,
         "holes smaller than this (um^2) are filled")
TS_PARAM(tissue, sat_floor, INT, "15", 0, 255, 0, "lowest saturation threshold Otsu may pick")
TS_PARAM(tile, size, INT, "256", 16, 8192, 0, "tile side in px at tile.mpp")
TS_PARAM(tile, mpp, FLOAT, "0.5", 0.05, 64, 0, "tile pixel size, um/px (0.5 ~ 20x)")
TS_PARAM(tile, overlap, INT, "0", 0, 4096, 0, "px at tile.mpp shared by neighbouring tiles")
TS_PARAM(tile, min_tissue, FLOAT, "0.25", 0, 1, 0,
         "smallest tissue fraction of a tile that is kept")
TS_PARAM(scheduler, max_attempts, INT, "2", 1, 100, 0,
         "tries per unit within one run before it is recorded failed")
