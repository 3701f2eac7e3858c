#!/usr/bin/env bash
# Installs what memel needs from Debian's packages. Idempotent: returns at once
# when everything is present.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libeigen3-dev nlohmann-json3-dev doctest-dev libstb-dev
      libopenblas-dev zlib1g-dev dataset-fashion-mnist wordnet-base fortunes python3-torch python3-torchvision python3-numpy)
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
