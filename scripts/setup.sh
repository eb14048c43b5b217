#!/usr/bin/env bash
# Install every Debian 12 package that the build, the demo and the tests of tessera need.
# Idempotent and non-interactive: a no-op (no apt-get call at all) when everything is present.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config git bc
  libopenmpi-dev openmpi-bin
  libhdf5-openmpi-dev
  libvips-dev libvips-tools
  libopenslide-dev openslide-tools
  libtorch-dev python3-torch python3-torchvision
  libsqlite3-dev sqlite3
  libcyaml-dev libyaml-dev
  libcunit1-dev
  libopenblas-dev
  python3 python3-h5py python3-numpy python3-pil python3-openslide
  python3-opencv
  chromium python3-jsonschema
  slurm-wlm munge
  r-base-core r-cran-survival r-cran-proc r-cran-glmnet
  python3-sklearn
  dataset-fashion-mnist
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "setup: all ${#PKGS[@]} packages present"
  exit 0
fi

echo "setup: installing ${#missing[@]} packages: ${missing[*]}"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
