#!/usr/bin/env bash
# Installs what llama_tp needs to build and test (Debian/Ubuntu packages). The CUDA toolkit
# (nvcc, cuBLAS, NCCL) is used from /usr/local/cuda when present; without it the build is
# CPU-only. Run as root or with sudo available.
set -euo pipefail
packages=(build-essential cmake ninja-build pkg-config git
  libopenmpi-dev openmpi-bin libboost-program-options-dev libgtest-dev
  nlohmann-json3-dev libpcre2-dev libsentencepiece-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "setup: dependencies present"
