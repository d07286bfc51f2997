#!/usr/bin/env bash
# Host check of the Android JNI glue (no NDK or device here): compile sparq_jni.c against the host
# libsparq.so and drive it from a desktop JVM with the same native methods as Sparq.kt.
# Needs a JDK (javac, jni.h). Run from anywhere; uses target/capi (built by the C API test) or builds it.
set -euo pipefail
cd "$(dirname "$0")/../.."
jdk=$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")")
cargo build --release -p sparq-capi --target-dir target/capi
out=target/jni-check
mkdir -p "$out"
cc -O2 -Wall -Wextra -Werror -shared -fPIC -I "$jdk/include" -I "$jdk/include/linux" -I runtime/include \
  targets/android/sparq_jni.c -L target/capi/release -lsparq -Wl,-rpath,"$PWD/target/capi/release" \
  -o "$out/libsparq_jni.so"
javac -d "$out" targets/android/jvm-check/dev/sparq/Sparq.java
java -Djava.library.path="$out" -cp "$out" dev.sparq.Sparq tests/golden/residual_int8_packed.sparq 1152
