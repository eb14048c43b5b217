#!/usr/bin/env bash
# scripts/demo.sh BUILD_DIR — the main job: generate a synthetic cohort (once) and run the
# whole pipeline on it under `mpirun -np 2`. The last line printed is the run directory.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$here/build}" && pwd)
. "$here/scripts/env.sh"
tessera="$build/tessera"
demo="$build/demo"
cohort="$demo/cohort"
# 24 slides (12 per class): enough patients for 3 folds of the MIL stage, each with a
# validation and a test part per class; 8000² keeps the whole demo to a few minutes on 2 cores
if [ ! -f "$cohort/.demo-24x8000" ]; then
  if [ -e "$cohort" ]; then
    echo "demo: $cohort is an older demo cohort: moving it aside to $cohort.old.$$"
    mv "$cohort" "$cohort.old.$$"
  fi
  echo "demo: generating a synthetic cohort in $cohort"
  "$tessera" synth "$cohort" --slides 24 --size 8000 --seed 2026
  touch "$cohort/.demo-24x8000"
fi
mil=(--set mil.models=abmil,clam_sb --set mil.folds=3 --set mil.test_frac=0.3 # 3 disjoint test parts: every patient tested once
     --set survival.models=cox_clinical,amil,snn,mmf_concat,mmf_bilinear,coattn --set survival.folds=3 --set survival.time_bins=2
     --set survival.epochs=10 --set survival.batch=4)
echo "demo: mpirun -np 2 tessera run $cohort/config.yaml --reconfigure ${mil[*]}"
set +e
# --reconfigure: the demo's run directory is ours; a newer tessera (new config keys) redoes
# only the stages whose settings changed instead of refusing
mpirun -np 2 "$tessera" run "$cohort/config.yaml" --reconfigure "${mil[@]}"
rc=$?
set -e
if [ $rc -ne 0 ]; then
  echo "demo: tessera run exited $rc (1 = some units failed; see tessera status below)"
fi
"$tessera" status "$cohort/run" || true
echo "demo: tiles in $cohort/run/tiles, features in $cohort/run/features, QC images in $cohort/run/tissue and $cohort/run/tiles"
echo "demo: slide classifiers (ABMIL, CLAM-SB, 3 folds) in $cohort/run/mil: summary.csv, per fold model.h5, predictions.csv, attention.h5, heatmaps/"
echo "demo: survival models (clinical Cox; AMIL, SNN, MMF concat/bilinear, co-attention on the discrete-time NLL; 3 folds) in $cohort/run/survival: summary.json, excluded.csv, per fold model.json, risks.csv, km.csv, metrics.json; deep models also model.h5, curve.csv, attention.h5, heatmaps/"
echo "demo: report: $cohort/run/report/index.html (report.json beside it)"
echo "$cohort/run"
exit $rc
