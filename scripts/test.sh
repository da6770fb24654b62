#!/usr/bin/env bash
# The test suite: installs what is missing, builds everything (the `zoo` executable too: the CLI and
# MPI tests run it) in release mode, and runs every test (numeric code in debug builds is 10-50x slower).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
bash scripts/install-deps.sh
swift build -c release -Xswiftc -enable-testing --build-tests
swift test -c release -Xswiftc -enable-testing --skip-build --disable-swift-testing "$@"
