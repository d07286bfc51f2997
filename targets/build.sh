#!/usr/bin/env bash
# Cross-build sparq for device profiles (targets/profiles/*.toml): the `sparq` CLI and the runtime
# C libraries (libsparq.a, libsparq.so, with runtime/include/sparq.h) into dist/<profile>/, the
# minimal no_std C libraries (one thread, no mmap; see sparq.h) into dist/<profile>/minimal/, and
# for 64-bit Linux profiles (rpi4, rpi5) the Python wheel when maturin is on PATH.
#
#   targets/build.sh                 # every profile
#   targets/build.sh rpi4 rpi-armv7  # some
#   targets/build.sh --libs rpi5     # libraries only (no CLI: skips compiling tract for the target)
#
# Needs the Rust targets (rustup target add <triple>) and Debian's cross compilers
# (gcc-aarch64-linux-gnu, gcc-arm-linux-gnueabihf); .cargo/config.toml names the linkers.
# Android: no NDK here, so only the static library is built (cargo rustc --crate-type staticlib);
# linking it into an app is the NDK's job (see README, "Android").
set -euo pipefail
cd "$(dirname "$0")/.."
libs_only=0
if [ "${1:-}" = "--libs" ]; then libs_only=1; shift; fi
profiles=("$@")
if [ ${#profiles[@]} -eq 0 ]; then
  for f in targets/profiles/*.toml; do profiles+=("$(basename "$f" .toml)"); done
fi
tdir="${CARGO_TARGET_DIR:-target}"
field() { sed -n "s/^$2 *= *\"\(.*\)\"/\1/p" "targets/profiles/$1.toml"; }
for p in "${profiles[@]}"; do
  [ -f "targets/profiles/$p.toml" ] || { echo "unknown profile $p (see targets/profiles/)" >&2; exit 1; }
  triple=$(field "$p" triple)
  out="dist/$p"
  mkdir -p "$out"
  cp runtime/include/sparq.h "$out/"
  echo "== $p ($triple)"
  mkdir -p "$out/minimal"
  minimal=(-p sparq-capi --no-default-features --profile device-nostd --target "$triple")
  if [ "$triple" = "aarch64-linux-android" ]; then
    cargo rustc --profile device -p sparq-capi --target "$triple" --crate-type staticlib
    cp "$tdir/$triple/device/libsparq.a" "$out/"
    cargo rustc "${minimal[@]}" --crate-type staticlib
    cp "$tdir/$triple/device-nostd/libsparq.a" "$out/minimal/"
  else
    cargo build --profile device -p sparq-capi --target "$triple"
    cp "$tdir/$triple/device/libsparq.a" "$tdir/$triple/device/libsparq.so" "$out/"
    cargo build "${minimal[@]}"
    cp "$tdir/$triple/device-nostd/libsparq.a" "$tdir/$triple/device-nostd/libsparq.so" "$out/minimal/"
    if [ $libs_only = 0 ]; then
      # Resolved with the Python package (-p sparq-python): the wheel below then reuses every compiled dependency.
      cargo build --profile device-app -p sparq -p sparq-python --bin sparq --target "$triple"
      cp "$tdir/$triple/device-app/sparq" "$out/"
      # 64-bit Linux (Raspberry Pi OS): the Python package as an abi3 wheel, when maturin is installed.
      if [ "$triple" = "aarch64-unknown-linux-gnu" ] && command -v maturin >/dev/null; then
        rm -f "$out"/sparq-*.whl
        (cd python && maturin build --quiet --profile device-app --target "$triple" -o "../$out")
      fi
    fi
  fi
  ls -l "$out" "$out/minimal" | awk '/^-/ { printf "  %-14s %10d bytes\n", $9, $5 } /minimal:$/ { print "  minimal/" }'
done
