#!/usr/bin/env bash
# Runs every test file with node's own test runner (tsx for TypeScript) and prints a plain
# "N passed, N failed" closing line. Extra arguments select files (default: all of test/).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -gt 0 ]; then files=("$@"); else mapfile -t files < <(find test -name '*.test.ts' | sort); fi
exec node --import tsx --test --test-concurrency=1 \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=./scripts/summary_reporter.mjs --test-reporter-destination=stdout \
  "${files[@]}"
