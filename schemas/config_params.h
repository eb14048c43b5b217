/* config_params.h — THE config schema of tessera: every key, its type, default, range and doc,
 * declared once (libvips' VIPS_ARG_* habit). The YAML validator, the libcyaml schema,
 * `tessera run --help`, the resolved config and the per-stage config hashes all come from
 * this table; nothing else lists config keys.
 *
 * TS_PARAM(section, key, type, default, min, max, required, doc)
 *   type: STR, INT, FLOAT, BOOL. default: the YAML text of the default (NULL: none).
 *   min/max: inclusive range for INT and FLOAT (ignored for others).
 *   Relative paths (keys whose doc starts with "path:") are resolved against the directory
 *   of the config file. Keys whose doc starts with "exec:" change how a result is computed,
 *   never the result (bytes included): they are left out of the stage hashes.
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
TS_PARAM(extract, encoder, STR, "resnet50_trunc", 0, 0, 0,
         "encoder: resnet50_trunc (1024-d, CLAM's), resnet50, resnet18, resnet_tiny, or torchscript:PATH")
TS_PARAM(extract, checkpoint, STR, "", 0, 0, 0,
         "path: HDF5 checkpoint of a built-in encoder (empty: seeded initialisation from run.seed)")
TS_PARAM(extract, input_size, INT, "224", 16, 4096, 0, "network input side in px (tiles are resized)")
TS_PARAM(extract, mean, STR, "0.485,0.456,0.406", 0, 0, 0, "per-channel mean of [0,1] RGB")
TS_PARAM(extract, std, STR, "0.229,0.224,0.225", 0, 0, 0, "per-channel standard deviation")
TS_PARAM(extract, batch, INT, "32", 1, 4096, 0, "tiles per batch fed to the encoder")
TS_PARAM(extract, threads, INT, "1", 0, 256, 0,
         "LibTorch threads per rank; features are bitwise reproducible only for the same value, so the default is fixed: run one rank per core (0: cores / ranks on the node)")
TS_PARAM(extract, decode_threads, INT, "1", 1, 64, 0, "exec: tile-decoding threads per rank")
TS_PARAM(extract, shard_tiles, INT, "1024", 0, 1e9, 0,
         "exec: tiles per extraction unit (a slide's shard; one merge unit per slide joins them); a multiple of extract.batch; 0: one unit per slide")
TS_PARAM(extract, float16, BOOL, "false", 0, 0, 0, "store features as float16 instead of float32")
/* records: the clinical and genomic tables (stages/records.c). A schema is a comma-separated
 * list of NAME:TYPE[SPEC][?] (workers/ts_records.h): TYPE id | float | int | str; SPEC a range
 * [lo,hi] (either end may be empty) or a set {a,b,c} (a categorical column, one-hot encoded);
 * NAME may end in '*' (every CSV column with that prefix); '?' marks an optional column. */
TS_PARAM(records, clinical_schema, STR,
         "patient_id:id, age:float[0,120], sex:int{0,1}, grade:int{1,2,3}, stage:int{1,2,3,4}, time:float[0,], event:int{0,1}",
         0, 0, 0, "schema of cohort.clinical (exactly one id column: the patient id)")
TS_PARAM(records, genomic_schema, STR, "patient_id:id, GENE*:float", 0, 0, 0,
         "schema of cohort.genomic")
TS_PARAM(records, block_rows, INT, "64", 1, 10000000, 0, "CSV rows per unit (row block)")
/* mil: attention-MIL slide classifiers over the extract stage's features (stages/mil.c), trained
 * per (model, fold) on patient-level splits written before any training (splits/splits.csv). */
TS_PARAM(mil, models, STR, "", 0, 0, 0,
         "MIL models to train, comma-separated: abmil, clam_sb, clam_mb, transmil (empty: the stage is skipped)")
TS_PARAM(mil, task, STR, "classification", 0, 0, 0,
         "classification (the cohort's label: classes 0..C-1) or regression (label: a continuous score; MSE loss, Pearson and Spearman r)")
TS_PARAM(mil, classes, INT, "0", 0, 1000, 0, "number of classes C (0: the largest label + 1); a label outside 0..C-1 stops the run")
TS_PARAM(mil, folds, INT, "10", 2, 100, 0, "cross-validation folds (CLAM's 10)")
TS_PARAM(mil, val_frac, FLOAT, "0.1", 0.01, 0.5, 0, "share of each class's (regression: score quartile's) patients in a fold's validation part")
TS_PARAM(mil, test_frac, FLOAT, "0.1", 0.01, 0.5, 0, "share of each class's patients in a fold's test part")
TS_PARAM(mil, splits, STR, "", 0, 0, 0,
         "path: a splits CSV (fold,set,slide_id,patient_id,label) to use instead of making them")
TS_PARAM(mil, features, STR, "", 0, 0, 0,
         "path: a folder of <slide_id>.h5 feature files (datasets features N x D, coords N x 2: tessera's, CLAM's or TRIDENT's) to train on instead of the extract stage's")
TS_PARAM(mil, epochs, INT, "20", 1, 100000, 0, "most training epochs per fold")
TS_PARAM(mil, min_epochs, INT, "5", 0, 100000, 0, "epochs before early stopping may stop (CLAM's stop_epoch)")
TS_PARAM(mil, patience, INT, "5", 1, 100000, 0, "epochs without a lower validation loss before stopping")
TS_PARAM(mil, optimizer, STR, "adam", 0, 0, 0,
         "adam (L2 weight decay, what CLAM trains with) or adamw (decoupled weight decay)")
TS_PARAM(mil, lr, FLOAT, "2e-4", 0, 10, 0, "learning rate")
TS_PARAM(mil, weight_decay, FLOAT, "1e-5", 0, 10, 0, "weight decay (adam: L2 added to the gradient; adamw: decoupled)")
TS_PARAM(mil, dropout, FLOAT, "0.25", 0, 0.95, 0, "dropout after the first layer and in the attention branches")
TS_PARAM(mil, k_sample, INT, "8", 1, 4096, 0, "CLAM: tiles per side of the instance loss")
TS_PARAM(mil, balanced, BOOL, "false", 0, 0, 0, "sample training bags inversely to their class frequency (CLAM's --weighted_sample)")
TS_PARAM(mil, threads, INT, "1", 1, 256, 0,
         "LibTorch threads per rank for training; models are bitwise reproducible for the same value")
/* survival: patient risk models (stages/survival.c), per (model, fold) on patient-level splits
 * stratified by event and time bin, written before any fit (survival/splits.csv). */
TS_PARAM(survival, models, STR, "", 0, 0, 0,
         "survival models, comma-separated: cox_clinical, cox_lasso (clinical + genomic, elastic net) (empty: the stage is skipped)")
TS_PARAM(survival, time, STR, "time", 0, 0, 0, "column of cohort.clinical with the follow-up time (>= 0)")
TS_PARAM(survival, event, STR, "event", 0, 0, 0, "column of cohort.clinical with the event indicator (1 event, 0 censored)")
TS_PARAM(survival, covariates, STR, "age,sex,grade,stage", 0, 0, 0, "numeric columns of cohort.clinical that cox_clinical fits")
TS_PARAM(survival, folds, INT, "5", 2, 100, 0, "cross-validation folds")
TS_PARAM(survival, val_frac, FLOAT, "0.15", 0.01, 0.5, 0, "share of each stratum's patients in a fold's validation part")
TS_PARAM(survival, test_frac, FLOAT, "0.2", 0.01, 0.5, 0, "share of each stratum's patients in a fold's test part")
TS_PARAM(survival, time_bins, INT, "4", 1, 20, 0, "time quantile bins that, with the event, stratify the splits")
TS_PARAM(survival, lasso_alpha, FLOAT, "1", 0.01, 1, 0,
         "cox_lasso: elastic-net mixing (1 lasso, smaller towards ridge; glmnet's alpha); lambda is chosen on the validation part")
TS_PARAM(survival, loss, STR, "nll", 0, 0, 0,
         "deep models' loss: nll (discrete-time negative log-likelihood, PORPOISE/MCAT) or cox (weighted Cox partial likelihood, risk sets within a batch)")
TS_PARAM(survival, nll_bins, INT, "4", 1, 50, 0, "nll: time bins at quantiles of the training part's uncensored times (PORPOISE's 4)")
TS_PARAM(survival, nll_alpha, FLOAT, "0", 0, 1, 0, "nll: weight moved off the censored term (PORPOISE's --alpha_surv, 0)")
TS_PARAM(survival, cox_ties, STR, "efron", 0, 0, 0, "cox loss: efron or breslow ties")
TS_PARAM(survival, cox_weights, STR, "none", 0, 0, 0,
         "cox loss: per-patient weights: none, events (survival.event_weight for events, 1 for censored) or inverse_time_bin_frequency")
TS_PARAM(survival, event_weight, FLOAT, "3", 0.001, 1000, 0, "cox_weights events: the weight of a patient with an event")
TS_PARAM(survival, batch, INT, "16", 1, 100000, 0, "deep models: patients per optimiser step (cox: the risk sets' batch; nll: the loss averaged, as PORPOISE's gradient accumulation)")
TS_PARAM(survival, epochs, INT, "20", 1, 100000, 0, "deep models: most training epochs per fold")
TS_PARAM(survival, min_epochs, INT, "5", 0, 100000, 0, "deep models: epochs before early stopping may stop")
TS_PARAM(survival, patience, INT, "5", 1, 100000, 0, "deep models: epochs without a lower validation loss before stopping")
TS_PARAM(survival, lr, FLOAT, "2e-4", 0, 10, 0, "deep models: learning rate (Adam, PORPOISE's 2e-4)")
TS_PARAM(survival, weight_decay, FLOAT, "1e-5", 0, 10, 0, "deep models: L2 weight decay (Adam, PORPOISE's 1e-5)")
TS_PARAM(survival, dropout, FLOAT, "0.25", 0, 0.95, 0, "deep models: dropout (AlphaDropout in the genomic branch)")
TS_PARAM(survival, omic_groups, INT, "6", 1, 1000, 0, "coattn: genomic tokens (the genomic + clinical vector cut into this many groups; MCAT's 6 signatures)")
TS_PARAM(survival, heatmaps, INT, "2", 0, 1000, 0, "attention heatmaps drawn per fold for the highest- and for the lowest-risk test patients (every tile's attention is kept in attention.h5)")
TS_PARAM(survival, bootstrap, INT, "1000", 0, 100000, 0, "bootstrap resamples of the test patients for the C-index CIs (0: none)")
TS_PARAM(survival, threads, INT, "1", 1, 256, 0, "deep models: LibTorch threads per rank; bitwise reproducible for the same value")
