# tests/crash_lib.sh — shared by it_crash.sh and it_sigterm.sh (sourced after lib.sh).
# Checks that a run directory's ledger and files agree after interruptions.

# read-only (mode=ro): a plain connect() of a ledger not made yet would create an empty
# ledger.sqlite, which tessera then (rightly) refuses as LEDGER_NOT_A_LEDGER
ledger_q() { $PY -c "import sqlite3,sys; print('\n'.join('|'.join(map(str,r)) for r in sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True).execute(sys.argv[2])))" "$1/ledger.sqlite" "$2"; }

# output checksums of a run directory (everything but the report, which carries times)
out_sums() { (cd "$1" && find tissue tiles features -type f 2>/dev/null | LC_ALL=C sort | xargs -r sha256sum); }

# every unit recorded done at most once; outputs named in the ledger are real files (never a
# temporary) whose SHA-256 is the one recorded; no temporary is left behind.
check_ledger_consistent() {
  local rd=$1 what=$2
  # (the report stage is redone by design on every run)
  check "$what: no unit recorded done twice" test -z "$(ledger_q "$rd" "select stage, unit from events where event='done' and stage<>'report' group by stage, unit having count(*) > 1")"
  check "$what: no temporary recorded as an output" test -z "$(ledger_q "$rd" "select output from units where output like '%.tmp.%'")"
  local bad
  bad=$(cd "$rd" && ledger_q . "select output, checksum from units where state='done' and output is not null" |
        while IFS='|' read -r o c; do [ "$(sha256sum "$o" | cut -d' ' -f1)" = "$c" ] || echo "$o"; done)
  check "$what: every recorded output matches its checksum" test -z "$bad"
  check "$what: no temporary file left" test -z "$(find "$rd" -name '*.tmp.*')"
}

# a finished run: every slide merged, so no shard file is left in scratch/
check_no_scratch() { check "$2: no shard file left once every slide is merged" test -z "$(find "$1/scratch" -type f 2>/dev/null)"; }

# the pids of the ranks that mpirun $1 started
rank_pids() { pgrep -P "$1" -f 'tessera run' || true; }
