#!/usr/bin/env bash
# Measure a model's latency on a device with the device's own `sparq bench`: push the binary
# (dist/<profile>/sparq, from targets/build.sh) and the model, run, pull the JSON, print the table.
#
#   targets/bench-on-device.sh --profile rpi4 --ssh pi@raspberrypi.local --model m.sparq [--threads 4] [--iters 100]
#   targets/bench-on-device.sh --profile android-arm64 --adb [SERIAL] --model m.sparq
#   targets/bench-on-device.sh --profile rpi4 --qemu --model m.sparq      # smoke test under emulation
#
# Writes the JSON (p50_ms, p90_ms, p99_ms, per-op times, kernels, threads) to --out (default
# ./bench-<profile>.json). Under qemu the numbers only show that the path works: emulated latency is not meaningful.
set -euo pipefail
here=$PWD
cd "$(dirname "$0")/.."
profile="" mode="" dest="" model="" threads=1 iters=100 warmup=10 json=""
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile=$2; shift 2 ;;
    --ssh) mode=ssh; dest=$2; shift 2 ;;
    --adb) mode=adb; if [ $# -gt 1 ] && [ "${2#--}" = "$2" ]; then dest=$2; shift; fi; shift ;;
    --qemu) mode=qemu; shift ;;
    --model) model=$2; shift 2 ;;
    --out) json=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --iters) iters=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$profile" ] && [ -n "$mode" ] && [ -n "$model" ] || {
  echo "usage: $0 --profile NAME (--ssh USER@HOST | --adb [SERIAL] | --qemu) --model M.sparq [--threads N] [--iters N] [--out F.json]" >&2
  exit 2
}
conf="targets/profiles/$profile.toml"
[ -f "$conf" ] || { echo "unknown profile $profile (see targets/profiles/)" >&2; exit 2; }
bin="dist/$profile/sparq"
[ -x "$bin" ] || { echo "$bin missing: run targets/build.sh $profile first" >&2; exit 1; }
case "$model" in /*) ;; *) model="$here/$model" ;; esac
[ -f "$model" ] || { echo "$model: no such model" >&2; exit 1; }
name=$(basename "$model")
[ -n "$json" ] || json="bench-$profile.json"
case "$json" in /*) ;; *) json="$here/$json" ;; esac
args=(bench "$name" --threads "$threads" --iters "$iters" --warmup "$warmup" --per-op)
case "$mode" in
  ssh)
    ssh "$dest" 'mkdir -p /tmp/sparq-bench'
    scp -q "$bin" "$model" "$dest:/tmp/sparq-bench/"
    ssh "$dest" "cd /tmp/sparq-bench && ./sparq ${args[*]}"
    ssh "$dest" "cd /tmp/sparq-bench && ./sparq ${args[*]} --json" > "$json"
    ;;
  adb)
    a=(adb); [ -n "$dest" ] && a+=(-s "$dest")
    "${a[@]}" push "$bin" "$model" /data/local/tmp/ > /dev/null
    "${a[@]}" shell "cd /data/local/tmp && chmod +x sparq && ./sparq ${args[*]}"
    "${a[@]}" shell "cd /data/local/tmp && ./sparq ${args[*]} --json" | tr -d '\r' > "$json"
    ;;
  qemu)
    q=$(sed -n 's/^qemu *= *"\(.*\)"/\1/p' "$conf")
    [ -n "$q" ] || { echo "profile $profile has no qemu command" >&2; exit 2; }
    case "$(sed -n 's/^triple *= *"\(.*\)"/\1/p' "$conf")" in
      aarch64-*) sysroot=/usr/aarch64-linux-gnu ;;
      *) sysroot=/usr/arm-linux-gnueabihf ;;
    esac
    echo "NOTE: running under $q: this checks the device build end to end; emulated latency is not meaningful."
    dir=$(dirname "$model")
    root=$PWD
    (cd "$dir" && $q -L "$sysroot" "$root/$bin" "${args[@]}")
    (cd "$dir" && $q -L "$sysroot" "$root/$bin" "${args[@]}" --json) > "$json"
    ;;
esac
grep -q '"p50_ms"' "$json" || { echo "no latency JSON came back" >&2; exit 1; }
echo "wrote $json"
