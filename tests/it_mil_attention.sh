#!/usr/bin/env bash
# labels: mil mpi
# Attention finds the truth. On a synthetic cohort (24 slides of 4000 px at 0.25 um/px, seed 5),
# resnet_tiny features of 32 px tiles at 0.5 um/px (64 level-0 px, ~16 um: ~500-1200 tiles a
# slide), ABMIL and CLAM-SB over 3 patient-level folds under mpirun -np 2: for EVERY positive test
# slide, the AUC of the raw (pre-softmax) attention scores of mil/<model>/fold<k>/attention.h5 for
# "the tile overlaps the tumour mask" (truth/<slide>.tumour.png from the generator; one mask pixel
# is enough) is >= 0.9, for ABMIL and for CLAM-SB.
# The oracle is the generator's truth, read here in Python (h5py, PIL, sklearn) and not from the
# stage: tile footprints are placed on the mask from the coords of attention.h5, which must equal
# the tile stage's coords, with a footprint that must be tile.size * tile.mpp / slide mpp = 64 px.
# Also printed, not asserted: the AUC with the tiles that touch the tumour by less than 10% of their
# area left out (how much the one-pixel definition costs).
# The settings, and why (bench/mil_attention_truth.py measures a run the same way):
#  - small tiles: the one-pixel definition makes every tile on the tumour's border positive, and a
#    border tile is mostly normal tissue; their share of the positives falls with the footprint.
#    With 128 px tiles (256 level-0 px) on 3000 px slides even a linear probe trained on TILE
#    labels of the other slides reaches only 0.81 on the worst slide; with 64 level-0 px tiles on
#    4000 px slides it reaches 0.97.
#  - a training budget: at initialisation the attention already splits tumour from normal tiles
#    but with a random sign (after 1 epoch: AUC 0.02-0.06 on 4 of the 6 slides, this test fails);
#    training turns it the right way once the loss leaves its initial plateau (~0.69), and loses
#    the ranking when it trains on to a near-zero loss (softmax attention sharpens onto a few
#    tiles, and the other tumour tiles fall among the normal ones): 20 epochs at lr 2e-4 with no
#    early stop before the last (min_epochs = epochs), and a strong decoupled weight decay
#    (mil.optimizer adamw, 5) that holds the model off that regime (with weight decay 1e-5, 40
#    epochs take ABMIL's worst slide to ~0.72; with 5, 20 and 40 epochs both give ~0.95). The
#    optimizer and the split fractions are set here, not left to the defaults (adam, whose L2
#    decay of 5 would swamp the gradient, and test_frac 0.1: one positive test slide a fold).
#  - extract.input_size 112: the encoder sees 32 px tiles upsampled 3.5x (as good as 224, 2.5x
#    faster).
# Measured here: worst slide ABMIL 0.945 (median 0.966), CLAM-SB 0.940 (median 0.964); CLAM-SB's
# floor is the same 0.9 (its worst slide stayed at 0.94-0.95 from 15 to 40 epochs). The figures
# hold for this seed and run.seed 1 (synth seed 7: 0.950 / 0.948); the encoder is random (no
# weights here), and run.seed 2 draws one with ~4x smaller features that 20 epochs do not train
# far enough (ABMIL 0.882, CLAM-SB 0.197).
. "$(dirname "$0")/lib.sh"
cd "$WORK"
t0=$(date +%s)

expect_rc 0 "$TESSERA" synth cohort --slides 24 --size 4000 --seed 5 --quiet
sets=(--set extract.encoder=resnet_tiny --set tile.size=32 --set tile.mpp=0.5 --set extract.input_size=112
      --set mil.models=abmil,clam_sb --set mil.folds=3 --set mil.val_frac=0.1 --set mil.test_frac=0.2
      --set mil.epochs=20 --set mil.min_epochs=20 --set mil.optimizer=adamw --set mil.lr=2e-4 --set mil.weight_decay=5)
expect_rc 0 mpirun -np 2 "$TESSERA" run cohort/config.yaml "${sets[@]}" --until mil
grep -E '^(extract|mil): .*units' "$WORK/out" | sed 's/^/    /'
check "mil: 6 units done (abmil, clam_sb x 3 folds)" grep -q '^mil: 6/6 units (0 failed)' "$WORK/out"

expect_rc 0 $PY - cohort <<'PY'
import csv, math, os, sys
import h5py, numpy as np
from PIL import Image
from sklearn.metrics import roc_auc_score

cohort = sys.argv[1]
run = os.path.join(cohort, "run")
FLOOR = {"abmil": 0.9, "clam_sb": 0.9}
TILE_L0 = 32 * 0.5 / 0.25  # tile.size * tile.mpp / the slides' mpp (synth --mpp default 0.25)
truth = {r["slide_id"]: r for r in csv.DictReader(open(os.path.join(cohort, "truth", "slides.csv")))}
splits = list(csv.DictReader(open(os.path.join(run, "splits", "splits.csv"))))
tests = {}  # fold -> positive test slides
for r in splits:
    if r["set"] == "test":
        assert int(float(r["label"])) == int(truth[r["slide_id"]]["label"]), r
        if int(truth[r["slide_id"]]["label"]) == 1:
            tests.setdefault(int(r["fold"]), []).append(r["slide_id"])
assert sorted(tests) == [0, 1, 2], tests

def tile_truth(s, xy):
    """Per tile: the share of its mask pixels in the tumour (> 0: the tile overlaps the tumour)."""
    t = truth[s]
    W, H, ds = int(t["width"]), int(t["height"]), int(t["truth_downsample"])
    m = np.asarray(Image.open(os.path.join(cohort, "truth", s + ".tumour.png"))) > 0
    assert m.shape == (math.ceil(H / ds), math.ceil(W / ds)), (s, m.shape)
    with h5py.File(os.path.join(run, "tiles", s + ".h5"), "r") as f:
        a = f["coords"].attrs
        assert int(a["patch_size_level0"]) == TILE_L0, (s, a["patch_size_level0"])
        assert (int(a["level0_width"]), int(a["level0_height"])) == (W, H), s
        tiles = f["coords"][:]
    assert np.array_equal(np.asarray(xy), tiles), f"{s}: attention.h5 coords differ from tiles/{s}.h5"
    ts = int(TILE_L0)
    frac = []
    for x0, y0 in xy:  # mask pixel (i, j) covers level-0 [i ds, (i + 1) ds) x [j ds, (j + 1) ds)
        sub = m[y0 // ds:-(-(y0 + ts) // ds), x0 // ds:-(-(x0 + ts) // ds)]
        frac.append(sub.mean())
    return np.array(frac)

bad = []
for model in ("abmil", "clam_sb"):
    aucs = []
    print(f"{model}: fold slide tiles tumour_tiles border(<10%) AUC AUC_without_border")
    for fold in sorted(tests):
        with h5py.File(os.path.join(run, "mil", model, f"fold{fold}", "attention.h5"), "r") as f:
            for s in tests[fold]:
                if s not in f:
                    bad.append(f"{model} fold {fold}: no attention for positive test slide {s}")
                    continue
                g = f[s]
                att, xy = g["attention"][()], g["coords"][()]
                assert att.shape == (1, len(xy)), (model, s, att.shape)
                fr = tile_truth(s, xy)
                y = fr > 0
                if y.all() or not y.any():
                    bad.append(f"{model} {s}: {y.sum()} of {len(y)} tiles on the tumour: no AUC")
                    continue
                auc = roc_auc_score(y, att[0])
                keep = (fr == 0) | (fr >= 0.1)
                auc_nb = roc_auc_score(y[keep], att[0][keep])
                aucs.append(auc)
                print(f"  {fold} {s} {len(y):5d} {int(y.sum()):4d} {int(((fr > 0) & (fr < 0.1)).sum()):3d}  {auc:.3f} {auc_nb:.3f}")
                if auc < FLOOR[model]:
                    bad.append(f"{model} fold {fold} {s}: attention AUC {auc:.3f} < {FLOOR[model]}")
    if aucs:
        print(f"{model}: {len(aucs)} positive test slides, attention AUC min {min(aucs):.3f} median {np.median(aucs):.3f}")
    if len(aucs) < 6:
        bad.append(f"{model}: {len(aucs)} positive test slides measured (want >= 6: 2 per fold)")
# the negative test slides have no tumour at all (the generator's labels and masks agree)
for r in splits:
    if r["set"] == "test" and int(truth[r["slide_id"]]["label"]) == 0:
        m = np.asarray(Image.open(os.path.join(cohort, "truth", r["slide_id"] + ".tumour.png")))
        if m.any():
            bad.append(f"negative slide {r['slide_id']} has tumour in its mask")
assert not bad, "\n".join(bad)
print("attention finds the tumour on every positive test slide")
PY
cat "$WORK/out"
check "ABMIL and CLAM-SB attention AUC >= 0.9 on every positive test slide (tile overlaps truth/<slide>.tumour.png)" \
  grep -q "attention finds the tumour on every positive test slide" "$WORK/out"
echo "wall $(($(date +%s) - t0)) s"
finish
