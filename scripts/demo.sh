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
if [ ! -f "$cohort/config.yaml" ]; then
  echo "demo: generating a synthetic cohort in $cohort"
  "$tessera" synth "$cohort" --slides 6 --size 16000 --seed 2026
fi
echo "demo: mpirun -np 2 tessera run $cohort/config.yaml --reconfigure"
set +e
# --reconfigure: the demo's run directory is ours; a newer tessera (new config keys) redoes
# only the stages whose settings changed instead of refusing
mpirun -np 2 "$tessera" run "$cohort/config.yaml" --reconfigure
rc=$?
set -e
if [ $rc -ne 0 ]; then
  echo "demo: tessera run exited $rc (1 = some units failed; see tessera status below)"
fi
"$tessera" status "$cohort/run" || true
echo "demo: tiles in $cohort/run/tiles, features in $cohort/run/features, QC images in $cohort/run/tissue and $cohort/run/tiles"
echo "demo: report: $cohort/run/report/index.html (report.json beside it)"
echo "$cohort/run"
exit $rc
