#!/usr/bin/env bash
# cvm verify --tee tdx against dcap-qvl (PyPI) on the same quotes and collateral. Prints
# ratios; nothing here is a pass/fail test.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p cvm-launcher --bin cvm -p cvm-tests --bin bench_verify
venv=target/bench-venv
if ! "$venv/bin/python" -c "import dcap_qvl" 2>/dev/null; then
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install -q dcap-qvl==0.7.0
fi
target/release/bench_verify --python "$venv/bin/python" --cvm target/release/cvm
