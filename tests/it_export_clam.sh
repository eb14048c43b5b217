#!/usr/bin/env bash
# labels: export
# `tessera export clam`: a run's features as CLAM's data root (pt_files/<slide>.pt for
# Generic_MIL_Dataset's torch.load, h5_files/<slide>.h5 with features and coords). The oracle is
# Debian's python3-torch and h5py reading the run's own feature files: exact float32 equality,
# shape, dtype, coords and their attributes; float16 runs export float32; exporting again
# changes nothing; a user's file with other content is left alone (EXPORT_EXISTS) unless --force;
# features the ledger does not record done are skipped (EXPORT_NOT_DONE); OUT_DIR inside the run
# and a missing run directory are refused before anything is written.
. "$(dirname "$0")/lib.sh"
cd "$WORK"
expect_rc 0 "$TESSERA" synth cohort --slides 3 --size 4096 --seed 31 --quiet
expect_rc 0 "$TESSERA" run cohort/config.yaml --set extract.encoder=resnet_tiny --quiet
expect_rc 0 "$TESSERA" run cohort/config.yaml --set extract.encoder=resnet_tiny --set extract.float16=true \
  --set run.dir=run16 --quiet

# the oracle: every .pt and h5 of OUT against the run's features/<enc>/*.h5
cat > oracle.py <<'PY'
import glob, os, sys
import h5py, numpy as np, torch
run, out, enc = sys.argv[1:4]
src = sorted(glob.glob(f"{run}/features/{enc}/*.h5"))
slides = [os.path.basename(p)[:-3] for p in src]
assert slides, "no features in the run"
pts = sorted(os.path.basename(p)[:-3] for p in glob.glob(f"{out}/pt_files/*.pt"))
assert pts == slides, (pts, slides)
for s, p in zip(slides, src):
    f = h5py.File(p, "r")
    want = f["features"][:].astype(np.float32)          # exact for float32 and for float16
    t = torch.load(f"{out}/pt_files/{s}.pt")             # as CLAM's Generic_MIL_Dataset does
    assert isinstance(t, torch.Tensor), type(t)
    assert t.dtype == torch.float32 and tuple(t.shape) == want.shape, (t.dtype, t.shape, want.shape)
    assert t.is_contiguous() and not t.requires_grad and t.device.type == "cpu"
    assert t.numpy().tobytes() == want.tobytes(), f"{s}: .pt values differ from {p}"
    t2 = torch.load(f"{out}/pt_files/{s}.pt", weights_only=True)   # the safe loader accepts it too
    assert torch.equal(t, t2)
    g = h5py.File(f"{out}/h5_files/{s}.h5", "r")
    assert set(g.keys()) == {"features", "coords"}, list(g.keys())
    F, C = g["features"], g["coords"]
    assert F.dtype == np.float32 and F.shape == want.shape, (F.dtype, F.shape)
    assert F[:].tobytes() == want.tobytes(), f"{s}: h5 features differ"
    assert C.dtype == f["coords"].dtype and C.shape == (want.shape[0], 2), (C.dtype, C.shape)
    assert (C[:] == f["coords"][:]).all(), f"{s}: coords differ"
    for k, v in f["coords"].attrs.items():       # patch_size, patch_level, ... as the run has them
        assert np.array_equal(C.attrs[k], v), (s, k)
    for k, v in f["features"].attrs.items():     # provenance: encoder, weights_hash, ...
        assert np.array_equal(F.attrs[k], v), (s, k)
    # CLAM's h5 path: torch.from_numpy(features) next to coords
    assert torch.equal(torch.from_numpy(F[:]), t)
    print(s, tuple(t.shape), "ok")
PY

expect_rc 0 "$TESSERA" export clam cohort/run clam
cat "$WORK/out"
check "progress line" grep -q "^export: 3/3 slides (3 exported, 0 unchanged" "$WORK/out"
expect_rc 0 $PY oracle.py cohort/run clam resnet_tiny
cat "$WORK/out"

# again: nothing changes (same bytes, same inodes)
ls -li clam/pt_files clam/h5_files > before.txt
expect_rc 0 "$TESSERA" export clam cohort/run clam
check "re-export leaves every file as it is" grep -q "(0 exported, 3 unchanged, 0 skipped, 0 failed)" "$WORK/out"
ls -li clam/pt_files clam/h5_files > after.txt
check "same inodes and sizes" cmp -s before.txt after.txt

# a user's files: an unrelated one stays; one with other content is refused, untouched, unless --force
s1=$(basename "$(ls cohort/run/features/resnet_tiny/*.h5 | head -1)" .h5)
echo "mine" > clam/pt_files/notes.pt
echo "user data" > "clam/pt_files/$s1.pt"
cp "clam/h5_files/$s1.h5" h5_before
expect_rc 1 "$TESSERA" export clam cohort/run clam
check "EXPORT_EXISTS names the file" grep -q "^EXPORT_EXISTS: clam/pt_files/$s1.pt exists" "$WORK/out"
check "the other slides were still exported" grep -q "(0 exported, 2 unchanged, 0 skipped, 1 failed)" "$WORK/out"
check "user's file untouched" grep -qx "user data" "clam/pt_files/$s1.pt"
check "its h5 untouched" cmp -s h5_before "clam/h5_files/$s1.h5"
check "no temporary left" bash -c "! ls clam/pt_files clam/h5_files | grep -q '\.tmp\.'"
expect_rc 0 "$TESSERA" export clam cohort/run clam --force --quiet
check "unrelated file kept" grep -qx "mine" clam/pt_files/notes.pt
rm clam/pt_files/notes.pt
expect_rc 0 $PY oracle.py cohort/run clam resnet_tiny

# float16 features come out float32 (exactly the half values)
expect_rc 0 "$TESSERA" export clam cohort/run16 clam16 --encoder resnet_tiny --quiet
expect_rc 0 $PY -c "import h5py, glob, sys; sys.exit(0 if all(h5py.File(p,'r')['features'].dtype == 'float16' for p in glob.glob('cohort/run16/features/resnet_tiny/*.h5')) else 1)"
expect_rc 0 $PY oracle.py cohort/run16 clam16 resnet_tiny

# a features file the ledger does not record done (copied in by hand) is skipped
cp -r cohort/run runx
cp "runx/features/resnet_tiny/$s1.h5" runx/features/resnet_tiny/S9999.h5
expect_rc 1 "$TESSERA" export clam runx clamx
check "EXPORT_NOT_DONE names the file" grep -q "^EXPORT_NOT_DONE: runx/features/resnet_tiny/S9999.h5" "$WORK/out"
check "not exported" test ! -e clamx/pt_files/S9999.pt -a ! -e clamx/h5_files/S9999.h5
check "the others were" test -s "clamx/pt_files/$s1.pt"
# a recorded file changed after the run (checksum) is skipped too
cp "runx/features/resnet_tiny/S9999.h5" "runx/features/resnet_tiny/$(basename "$(ls runx/features/resnet_tiny/*.h5 | sed -n 2p)")"
expect_rc 1 "$TESSERA" export clam runx clamx2 --quiet
check "changed file: EXPORT_NOT_DONE (checksum)" grep -q "^EXPORT_NOT_DONE: .*differs from the file the ledger recorded" "$WORK/out"

# several encoders: --encoder chooses
mkdir runx/features/other_encoder
expect_rc 2 "$TESSERA" export clam runx clamy
check "EXPORT_ENCODER lists them" grep -q "^EXPORT_ENCODER: .*other_encoder resnet_tiny" "$WORK/out"
expect_rc 2 "$TESSERA" export clam runx clamy --encoder nope
check "unknown encoder: EXPORT_ENCODER" grep -q "^EXPORT_ENCODER: no runx/features/nope" "$WORK/out"
check "nothing written" test ! -e clamy

# refused before anything is written
expect_rc 2 "$TESSERA" export clam no_such_run clamz
check "missing run dir: EXPORT_NO_RUN" grep -q "^EXPORT_NO_RUN: no_such_run" "$WORK/out"
check "nothing written" test ! -e clamz
expect_rc 2 "$TESSERA" export clam cohort/run cohort/run/clam
check "OUT_DIR inside RUN_DIR: EXPORT_OUT_IN_RUN" grep -q "^EXPORT_OUT_IN_RUN: " "$WORK/out"
check "nothing written in the run" test ! -e cohort/run/clam
expect_rc 2 "$TESSERA" export clam cohort/run cohort/run/../run/deeper/x
check "OUT_DIR inside RUN_DIR via ..: refused" grep -q "^EXPORT_" "$WORK/out"
expect_rc 2 "$TESSERA" export trident cohort/run clamw
check "unknown format: EXPORT_USAGE" grep -q "^EXPORT_USAGE: unknown export format 'trident'" "$WORK/out"
expect_rc 0 "$TESSERA" export --help
check "--help names the layout" grep -q "pt_files/<slide>.pt" "$WORK/out"
finish
