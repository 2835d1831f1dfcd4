#!/usr/bin/env bash
# cvm measure vs sev-snp-measure (PyPI) and the hashing floor, on the largest reference
# configuration; then cvm measure --tee tdx against its SHA-384 floor, and --tee cca
# against its SHA-256 floor. Prints ratios;
# nothing here is a pass/fail test.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p cvm-launcher --bin cvm -p cvm-tests --bin bench_measure --bin bench_tdx --bin bench_cca
venv=target/tools-venv
if [ ! -x "$venv/bin/sev-snp-measure" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q sev-snp-measure==0.0.13
fi
target/release/bench_measure --cvm target/release/cvm --reference-tool "$venv/bin/sev-snp-measure"
echo
target/release/bench_tdx --cvm target/release/cvm
echo
target/release/bench_cca --cvm target/release/cvm
