#!/usr/bin/env bash
# Installs what tdconv needs to build and test on Debian 12 (bookworm): the compiler toolchain, CMake and Ninja,
# GoogleTest, nlohmann-json, Highway (SIMD dispatch), Debian's python3-torch / python3-numpy / python3-onnx used as
# test oracles, and the benchmark's peers.
#   scripts/install-deps.sh            the project's packages
#   scripts/install-deps.sh PKG...     those packages instead (scripts/fuzz.sh asks for clang and its runtimes)
set -euo pipefail
# libdnnl-dev (oneDNN) and OpenBLAS are the benchmark's peers: oneDNN in process, and PyTorch, which without
# OpenBLAS falls back to the slow reference BLAS. tdconv itself needs neither.
packages=(g++ cmake ninja-build libgtest-dev nlohmann-json3-dev libhwy-dev python3 python3-numpy python3-torch
  python3-onnx libdnnl-dev libopenblas0-pthread valgrind)
(($#)) && packages=("$@")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
