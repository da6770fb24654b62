#!/usr/bin/env bash
# The test suite: installs what is missing, then runs every test in a release build (numeric code
# in debug builds is 10-50x slower).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
bash scripts/install-deps.sh
swift test -c release -Xswiftc -enable-testing "$@"
