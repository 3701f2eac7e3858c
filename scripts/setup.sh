#!/usr/bin/env bash
# Installs what memel needs from Debian's packages. Idempotent: returns at once
# when everything is present.
#   bash scripts/setup.sh        the build, the tests and the main job
#   bash scripts/setup.sh fuzz   also clang and libFuzzer for scripts/fuzz.sh
# The ASan+UBSan and TSan builds (scripts/sanitize.sh) use GCC's sanitizer runtimes,
# which build-essential already brings (libasan8, libubsan1, libtsan2 via libgcc-12-dev).
set -euo pipefail
pkgs=(build-essential cmake pkg-config libeigen3-dev nlohmann-json3-dev doctest-dev libstb-dev
      libopenblas-dev zlib1g-dev dataset-fashion-mnist wordnet-base fortunes python3-torch python3-torchvision python3-numpy
      libopenmpi-dev openmpi-bin libdnnl-dev)
case "${1:-}" in
  "") ;;
  # libFuzzer (libclang_rt.fuzzer) is in libclang-rt-14-dev on Debian 12, which clang only
  # recommends; libclang-rt-dev depends on the default clang's version of it.
  fuzz) pkgs+=(clang libclang-rt-dev) ;;
  *) echo "usage: scripts/setup.sh [fuzz]" >&2; exit 2 ;;
esac
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
echo "[setup] installing: ${missing[*]}"
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "[setup] done"
