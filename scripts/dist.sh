#!/usr/bin/env bash
# Release binaries for shipping: `wharf` and `containerd-shim-wharf-v1` built with the release
# profile, then split the way Debian's dh_strip does, so the executable carries code and data
# only and a panic's backtrace still has function names and file:line:
#   DIR/wharf         stripped of symbols and debug sections, with a `.gnu_debuglink` to ...
#   DIR/wharf.debug   its symbol table and line tables (`objcopy --only-keep-debug`)
#   DIR/wharf.dwp     the split DWARF cargo packed (`split-debuginfo = "packed"`)
# Rust's backtrace reads both from beside the executable; ship the three together (or install
# the two debug files where the system keeps them, e.g. /usr/lib/debug). Stripping changes no
# code, so the compile-cache key (the engine's fingerprint) is the same as the unsplit binary's.
#
#   bash scripts/dist.sh [DIR]      (default DIR: target/dist; CARGO_TARGET_DIR is honoured)
set -euo pipefail
cd "$(dirname "$0")/.."
target=$(realpath -m "${CARGO_TARGET_DIR:-target}")
dist=$(realpath -m "${1:-$target/dist}")
cargo build --release --locked -p wharf -p wharf-shim
mkdir -p "$dist"
for name in wharf containerd-shim-wharf-v1; do
    bin="$target/release/$name"
    # Write beside, then rename: cargo's own copy in target/release stays as built.
    objcopy --only-keep-debug "$bin" "$dist/$name.debug.tmp"
    mv "$dist/$name.debug.tmp" "$dist/$name.debug"
    (cd "$dist" && objcopy --strip-debug --strip-unneeded --add-gnu-debuglink="$name.debug" "$bin" "$name.tmp")
    mv "$dist/$name.tmp" "$dist/$name"
    cp "$bin.dwp" "$dist/$name.dwp"
    echo "$dist/$name: $(stat -c %s "$dist/$name") bytes (+ $name.debug, $name.dwp)"
done
