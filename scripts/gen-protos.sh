#!/usr/bin/env bash
# Regenerates the Swift protobuf code in Sources/Protos/ from the schemas in
# Sources/Protos/proto/. The generated *.pb.swift files are committed, so an
# ordinary build needs neither protoc nor the plugin; run this only after
# editing a schema, and commit the schemas and the regenerated files together.
#
# Needs:
#   protoc             apt-get install -y protobuf-compiler   (or set PROTOC=/path/to/protoc)
#   protoc-gen-swift   swift-protobuf's plugin, at the SAME version as the
#                      SwiftProtobuf runtime in Package.swift (1.39.0). Build it
#                      outside this repository, then point PROTOC_GEN_SWIFT at it:
#
#     git clone --branch 1.39.0 https://github.com/apple/swift-protobuf /tmp/swift-protobuf
#     (cd /tmp/swift-protobuf && swift build -c release --product protoc-gen-swift)
#     PROTOC_GEN_SWIFT=/tmp/swift-protobuf/.build/release/protoc-gen-swift bash scripts/gen-protos.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/Sources/Protos"
SCHEMAS="$OUT/proto"
PROTOC="${PROTOC:-protoc}"
PLUGIN="${PROTOC_GEN_SWIFT:-}"
EXPECTED_VERSION="1.39.0"

if [ -z "$PLUGIN" ]; then
  echo "gen-protos: set PROTOC_GEN_SWIFT to a built protoc-gen-swift $EXPECTED_VERSION (see the top of this script)" >&2
  exit 2
fi
if [ ! -x "$PLUGIN" ]; then
  echo "gen-protos: PROTOC_GEN_SWIFT=$PLUGIN is not an executable file" >&2
  exit 2
fi
if ! command -v "$PROTOC" >/dev/null 2>&1; then
  echo "gen-protos: protoc not found (apt-get install -y protobuf-compiler, or set PROTOC)" >&2
  exit 2
fi
PLUGIN_VERSION="$("$PLUGIN" --version 2>/dev/null | awk '{print $NF}')"
if [ "$PLUGIN_VERSION" != "$EXPECTED_VERSION" ]; then
  echo "gen-protos: $PLUGIN is version '$PLUGIN_VERSION', expected $EXPECTED_VERSION (the runtime version in Package.swift)" >&2
  exit 2
fi

cd "$SCHEMAS"
"$PROTOC" \
  --plugin=protoc-gen-swift="$PLUGIN" \
  --swift_opt=Visibility=Public \
  --swift_opt=FileNaming=DropPath \
  --swift_out="$OUT" \
  -I . \
  mindspore_checkpoint.proto onnx.proto tensorboard_event.proto

echo "gen-protos: wrote $(cd "$OUT" && ls *.pb.swift | tr '\n' ' ')with $("$PROTOC" --version) and protoc-gen-swift $PLUGIN_VERSION"
