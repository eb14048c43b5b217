#!/usr/bin/env bash
# labels: cli
# it_inspect_errors.sh — `tessera inspect` on paths that are not HDF5 files: a missing file
# says so (token + path), not an HDF5 error stack; a directory and a non-HDF5 file likewise.
. "$(dirname "$0")/lib.sh"
cd "$WORK"
expect_rc 1 "$TESSERA" inspect missing.h5
check "missing file: token, path and 'no such file'" grep -q '^H5_MISSING: missing.h5: no such file' "$WORK/out"
check "missing file: no HDF5 stack" bash -c "! grep -q 'HDF5-DIAG\|H5F' '$WORK/out'"
check "missing file: one line" test "$(wc -l <"$WORK/out")" = 1
mkdir adir
expect_rc 1 "$TESSERA" inspect adir
check "directory: said so" grep -q '^H5_MISSING: adir: is a directory' "$WORK/out"
echo "not hdf5" >plain.h5
expect_rc 1 "$TESSERA" inspect plain.h5
check "not HDF5: H5_OPEN" grep -q '^H5_OPEN: plain.h5: not a readable HDF5 file' "$WORK/out"
check "not HDF5: no HDF5 stack" bash -c "! grep -q 'HDF5-DIAG' '$WORK/out'"
finish
