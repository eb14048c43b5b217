#!/usr/bin/env bash
# labels: unit layers
# The layers of docs/architecture.md hold: scripts/check_layers.sh finds no include against the
# arrows, and the build itself refuses one: a file compiled with base/'s flags (from the build's
# compile_commands.json) cannot include a header of api/ or pipeline/, while it can include
# base/'s own (the control, so that the refusal is not just a broken command).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bash "$TS_SOURCE_DIR/scripts/check_layers.sh" "$TS_SOURCE_DIR"
cc_json="$TS_BINARY_DIR/compile_commands.json"
[ -f "$cc_json" ] || { echo "FAIL - no $cc_json (CMAKE_EXPORT_COMPILE_COMMANDS)"; exit 1; }
probe() { # $1: layer's source file, $2: header → exit status of compiling an include of it
  local src="$1" hdr="$2" tmp="$WORK/probe_$RANDOM.c"
  printf '#include "%s"\nint ts_probe(void) { return 0; }\n' "$hdr" >"$tmp"
  /usr/bin/python3 - "$cc_json" "$src" "$tmp" <<'PY'
import json, shlex, subprocess, sys
db, src, probe = sys.argv[1:]
for e in json.load(open(db)):
    if e["file"].endswith(src):
        args = shlex.split(e["command"])
        out = []
        skip = False
        for a in args:
            if skip: skip = False; continue
            if a in ("-o", "-c"): skip = a == "-o"; continue
            if a.endswith(src): continue
            out.append(a)
        r = subprocess.run(out + ["-fsyntax-only", probe], cwd=e["directory"], capture_output=True, text=True)
        sys.exit(r.returncode)
sys.exit(99)
PY
}
set +e
probe base/ts_io.c ts_error.h; ok=$?
probe base/ts_io.c ts_stage.h; up1=$?
probe base/ts_io.c ts_ledger.h; up2=$?
probe workers/tiles.c ts_report.h; up3=$?
probe api/cohort.c ts_sched.h; up4=$?
probe stages/tile.c ts_ledger.h; up5=$?
set -e
check "control: base/ includes its own ts_error.h" test "$ok" = 0
n=0
for s in $up1 $up2 $up3 $up4 $up5; do
  n=$((n + 1))
  check "upward include $n found in compile_commands.json" test "$s" != 99
  check "upward include $n refused by the build" test "$s" != 0
done
finish
