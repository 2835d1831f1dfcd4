#!/usr/bin/env bash
# cvm launch --tee none vs qemu-system-x86_64 -enable-kvm on the same payload (the test
# firmware assembled from launcher/guest/reset.s). Prints times, the ratio and peak RSS;
# nothing here is a pass/fail test. Needs /dev/kvm and Debian's qemu-system-x86 and time.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v qemu-system-x86_64 >/dev/null || [ ! -x /usr/bin/time ]; then
    sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get install -y -q qemu-system-x86 time >/dev/null
fi
cargo build --release -q -p cvm-launcher --bin cvm -p cvm-tests --bin bench_launch
firmware=$(ls -t target/release/build/cvm-launcher-*/out/reset.bin | head -1)
target/release/bench_launch --cvm target/release/cvm --qemu "$(command -v qemu-system-x86_64)" --firmware "$firmware"
