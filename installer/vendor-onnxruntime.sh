#!/usr/bin/env bash
# Reproduces vendor/onnxruntime/ from the official onnxruntime wheel on PyPI: extracts
# libonnxruntime.so, compresses it with zstd and checks both against the pinned SHA-256s
# in vendor/onnxruntime/SHA256SUMS. The binary embeds the compressed library
# (src/pii/ner/runtime.rs) and loads it from memory at start. Needs PyPI and zstd.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=1.31.1
WHEEL=onnxruntime-${VERSION}-cp311-cp311-manylinux_2_28_x86_64.whl
WHEEL_SHA256=$(awk -v w="$WHEEL" '$2 == w {print $1}' vendor/onnxruntime/SHA256SUMS)
out=vendor/onnxruntime
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --platform manylinux_2_28_x86_64 --python-version 3.11 \
    "onnxruntime==${VERSION}" -d "$work"
echo "${WHEEL_SHA256}  $work/$WHEEL" | sha256sum -c --quiet
(cd "$work" && python3 -m zipfile -e "$WHEEL" wheel)

lib="$work/wheel/onnxruntime/capi/libonnxruntime.so.${VERSION}"
cp "$work/wheel/onnxruntime/LICENSE" "$out/LICENSE"
cp "$work/wheel/onnxruntime/ThirdPartyNotices.txt" "$out/ThirdPartyNotices.txt"
(cd "$work/wheel/onnxruntime/capi" && grep " libonnxruntime.so.${VERSION}\$" "$OLDPWD/vendor/onnxruntime/SHA256SUMS" | sha256sum -c --quiet) \
    || { echo "libonnxruntime.so differs from the pinned SHA-256" >&2; exit 1; }
zstd -q -19 --no-progress -f "$lib" -o "$out/libonnxruntime.so.zst"
echo "vendor/onnxruntime: libonnxruntime.so ${VERSION} ($(du -h "$out/libonnxruntime.so.zst" | cut -f1) compressed)" >&2
