#!/usr/bin/env bash
# cvm verify --tee snp against the sev crate's OpenSSL path (bench/snp-openssl, a
# workspace of its own so OpenSSL stays out of cvm) and snpguest 0.11 (crates.io, when it
# installs: it needs libssl-dev and pkg-config), on the same reports and certificates.
# Prints ratios; nothing here is a pass/fail test.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p cvm-launcher --bin cvm
cargo build --release -q --manifest-path bench/snp-openssl/Cargo.toml --target-dir target
tools=target/bench-tools
if [ ! -x "$tools/bin/snpguest" ]; then
    cargo install -q --locked snpguest --version 0.11.0 --root "$tools" ||
        echo "snpguest 0.11.0 did not install; comparing without it"
fi
snpguest=()
[ -x "$tools/bin/snpguest" ] && snpguest=(--snpguest "$tools/bin/snpguest")
target/release/bench_snp_openssl --cvm target/release/cvm "${snpguest[@]}"
