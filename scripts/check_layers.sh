#!/usr/bin/env bash
# check_layers.sh — fail when a source file includes a header of a folder its layer may not use.
# The build already refuses most such includes (each folder's library sees only the folders it
# links); this check also catches relative includes ("../x/y.h") and headers that happen to be
# reachable another way. The table is docs/architecture.md's "Layers".
#   usage: scripts/check_layers.sh [SOURCE_DIR]
set -euo pipefail
root="${1:-$(cd "$(dirname "$0")/.." && pwd)}"
cd "$root"
declare -A may=(
  [schemas]="schemas"
  [base]="base schemas"
  [cluster]="cluster base schemas"
  [workers]="workers base schemas"
  [nn]="nn base schemas"
  [stats]="stats base schemas"
  [api]="api base schemas"
  [report]="report api base schemas"
  [stages]="stages report api workers nn stats cluster base schemas"
  [pipeline]="pipeline stages report api workers nn stats cluster base schemas"
)
# which folder owns each project header
declare -A owner=()
for dir in "${!may[@]}"; do
  for h in "$dir"/*.h "$dir"/*.h.in; do
    [ -e "$h" ] || continue
    b=$(basename "$h" .in)
    owner[$b]=$dir
  done
done
owner[ts_ledger_sql.h]=pipeline # generated from schemas/ledger.sql, read by the ledger only
owner[ts_version.h]=base        # generated
bad=0
for dir in "${!may[@]}"; do
  for f in "$dir"/*.c "$dir"/*.cpp "$dir"/*.h; do
    [ -e "$f" ] || continue
    while IFS= read -r line; do
      inc=$(sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"([^"]+)".*/\1/' <<<"$line")
      if [[ "$inc" == */* ]]; then
        echo "LAYER_VIOLATION: $f includes \"$inc\": include project headers by name, never by a relative path"
        bad=$((bad + 1)); continue
      fi
      o="${owner[$inc]:-}"
      [ -n "$o" ] || continue # a system or generated header
      if [[ " ${may[$dir]} " != *" $o "* ]]; then
        echo "LAYER_VIOLATION: $f ($dir) includes $inc ($o): $dir may use only: ${may[$dir]}"
        bad=$((bad + 1))
      fi
    done < <(grep -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" || true)
  done
done
if ((bad)); then echo "check_layers: $bad include(s) against the arrows"; exit 1; fi
echo "check_layers: every include follows the arrows"
