#!/usr/bin/env bash
# labels: mil slow
# Learning works on real images (issue 11): MIL on bags of Fashion-MNIST images (Debian's
# dataset-fashion-mnist), Ilse et al.'s MNIST-bags scheme with class 9 (ankle boot) as the
# target: bag sizes ~ N(10, 2), a bag is positive when it holds an ankle boot; instance vectors
# are a fixed seeded random projection of the 784 pixels to 64 dims; 200 training, 50 validation
# and 100 test bags (tests/mil_fmnist.py). tessera's real mil stage trains ABMIL on them (feature
# files through mil.features, the one-fold split through mil.splits) and a PyTorch script trains
# the same architecture with the same hyper-parameters on the same bags. For run seeds 1 and 2:
#  - torch.nn loaded with tessera's model.h5 gives tessera's test probabilities (1e-5) and raw
#    attention (1e-4): the stage's outputs are those of its model;
#  - each tessera test AUC >= 0.95, and the mean of tessera's within 0.02 of PyTorch's.
. "$(dirname "$0")/lib.sh"
cd "$WORK"
FM=/usr/share/datasets/fashion-mnist
[ -s "$FM/train-images-idx3-ubyte.gz" ] || { fail "Fashion-MNIST missing: apt-get install dataset-fashion-mnist (scripts/setup.sh)"; finish; }
$PY -c 'import torch, sklearn, h5py' || { fail "python3-torch, python3-sklearn and python3-h5py are needed"; finish; }
export FMNIST_TARGET=9
MIN_AUC=0.95
mkdir bags
expect_rc 0 $PY "$TS_SOURCE_DIR/tests/mil_fmnist.py" make bags
cat "$WORK/out"
t_aucs=() p_aucs=()
for s in 1 2; do
  expect_rc 0 "$TESSERA" run bags/config.yaml --stages mil --set run.seed=$s --set run.dir=run$s
  grep -E "^mil: [0-9]/|failed" "$WORK/out" | sed 's/^/    /' || true
  cat bags/run$s/mil/abmil/fold0/metrics.json | sed 's/^/    /'
  expect_rc 0 $PY "$TS_SOURCE_DIR/tests/mil_fmnist.py" oracle bags/run$s bags
  grep oracle "$WORK/out" | sed 's/^/    /'
  check "seed $s: torch.nn on tessera's model.h5 gives its predictions and attention" grep -q "^TESSERA_AUC" "$WORK/out"
  t=$(sed -n 's/^TESSERA_AUC //p' "$WORK/out")
  expect_rc 0 $PY "$TS_SOURCE_DIR/tests/mil_fmnist.py" torch bags $s
  grep "^torch" "$WORK/out" | sed 's/^/    /'
  p=$(sed -n 's/^TORCH_AUC //p' "$WORK/out")
  echo "fmnist: seed $s: tessera test AUC ${t:-?}, PyTorch test AUC ${p:-?}"
  check "seed $s: tessera's test AUC ${t:-?} >= $MIN_AUC" awk -v a="${t:-0}" -v m=$MIN_AUC 'BEGIN { exit !(a >= m) }'
  t_aucs+=("${t:-0}") p_aucs+=("${p:-0}")
done
tm=$(echo "${t_aucs[@]}" | awk '{ print ($1 + $2) / 2 }')
pm=$(echo "${p_aucs[@]}" | awk '{ print ($1 + $2) / 2 }')
echo "fmnist: mean test AUC over seeds 1, 2: tessera $tm, PyTorch $pm"
check "tessera's mean test AUC $tm within 0.02 of PyTorch's $pm" awk -v a="$tm" -v b="$pm" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 0.02) }'
finish
