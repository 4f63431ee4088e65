#!/usr/bin/env bash
# Set up and run the main job: install dependencies, build tdconv (Release) into build/, run `tdconv demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build
build/tdconv demo
