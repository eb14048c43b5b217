#!/usr/bin/env bash
# labels: mpi extract
# The extract stage under mpirun -np 2: feature files open with h5py and carry coords, features
# and provenance; features of a tile equal the encoder on that tile read alone; a rerun in a
# fresh run directory gives bitwise-identical features; float16 storage; a TorchScript encoder
# written by Debian's python3-torch works through the config like a built-in one.
. "$(dirname "$0")/lib.sh"
: "${EXTRACT_CHECK:?}"
cd "$WORK"
expect_rc 0 "$TESSERA" synth cohort --slides 2 --size 6144 --seed 21 --quiet
expect_rc 0 mpirun -np 2 "$TESSERA" run cohort/config.yaml --set extract.encoder=resnet_tiny --quiet
expect_rc 0 $PY - cohort <<'PY'
import h5py, glob, sys, numpy as np
files = sorted(glob.glob(sys.argv[1] + "/run/features/resnet_tiny/*.h5"))
assert len(files) == 2, files
for p in files:
    f = h5py.File(p, "r")
    t = h5py.File(p.replace("features/resnet_tiny", "tiles"), "r")
    F, C = f["features"], f["coords"]
    assert F.dtype == np.float32 and F.shape == (C.shape[0], 64), (F.dtype, F.shape)
    assert (C[:] == t["coords"][:]).all(), "coords differ from the tile file"
    for k in ("patch_size", "patch_level", "patch_size_level0", "mpp_level0", "target_mpp", "mpp_source"):
        assert k in C.attrs, k
    a = F.attrs
    assert a["encoder"] == "resnet_tiny" and len(a["weights_hash"]) == 64, dict(a)
    assert F.chunks[1] == 64 and F.chunks[0] == min(1024, F.shape[0]), F.chunks
    assert f["bad_tiles"].shape == (0,)
    assert np.isfinite(F[:]).all() and F.shape[0] == 0 or F[:].std() > 0
    print(p, F.shape)
PY
cat "$WORK/out"
s1=$(ls cohort/slides/*.tiff | head -1); id=$(basename "$s1" .tiff)
expect_rc 0 "$EXTRACT_CHECK" "cohort/run/features/resnet_tiny/$id.h5" "$s1" resnet_tiny 6
cat "$WORK/out"

# rerun from scratch in another run directory: bitwise-identical features
expect_rc 0 "$TESSERA" run cohort/config.yaml --set extract.encoder=resnet_tiny --set run.dir=run2 --quiet
expect_rc 0 $PY -c "
import h5py, glob, numpy as np, sys
for p in sorted(glob.glob('cohort/run/features/resnet_tiny/*.h5')):
    a = h5py.File(p, 'r')['features'][:]; b = h5py.File(p.replace('/run/', '/run2/'), 'r')['features'][:]
    sys.exit(0 if a.tobytes() == b.tobytes() else 1)"

# float16 storage
expect_rc 0 "$TESSERA" run cohort/config.yaml --set extract.encoder=resnet_tiny --set extract.float16=true --set run.dir=run16 --quiet
expect_rc 0 $PY -c "
import h5py, glob, numpy as np, sys
for p in sorted(glob.glob('cohort/run16/features/resnet_tiny/*.h5')):
    h = h5py.File(p, 'r')['features']; f = h5py.File(p.replace('/run16/', '/run/'), 'r')['features'][:]
    assert h.dtype == np.float16, h.dtype
    assert np.allclose(h[:].astype(np.float32), f, rtol=2e-3, atol=2e-3)"

# a TorchScript encoder written by PyTorch, named through the config (relative to it)
cat > mk_ts.py <<'PY'
import torch
class Enc(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 16, 5, stride=4)
        self.fc = torch.nn.Linear(16, 12)
    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))
torch.jit.script(Enc()).save("cohort/tiny_ts.pt")
PY
expect_rc 0 $PY mk_ts.py   # from a file: torch.jit.script reads the class's source
expect_rc 0 mpirun -np 2 "$TESSERA" run cohort/config.yaml --set extract.encoder=torchscript:tiny_ts.pt --set run.dir=runts --quiet
expect_rc 0 $PY -c "
import h5py, glob, numpy as np
ps = sorted(glob.glob('cohort/runts/features/torchscript-tiny_ts/*.h5'))
assert len(ps) == 2, ps
for p in ps:
    F = h5py.File(p, 'r')['features']
    assert F.shape[1] == 12 and np.isfinite(F[:]).all(), F.shape
    assert F.attrs['encoder'].startswith('torchscript:') and F.attrs['encoder'].endswith('/cohort/tiny_ts.pt')"
expect_rc 0 "$EXTRACT_CHECK" "cohort/runts/features/torchscript-tiny_ts/$id.h5" "$s1" "torchscript:$WORK/cohort/tiny_ts.pt" 4
cat "$WORK/out"
finish
