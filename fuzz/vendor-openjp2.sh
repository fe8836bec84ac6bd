#!/usr/bin/env bash
# Unpacks openjp2 0.6.1 (the JPEG 2000 decoder under dicom-pixeldata) into fuzz/vendor/ and
# applies openjp2-fuzz-build.patch, which fuzz/Cargo.toml patches in for the fuzz build only.
#
# Why: openjp2 0.6.1 passes null pointers to `std::alloc::dealloc` when it frees code blocks that
# never got decoded data (tcd.rs, two places). That breaks `dealloc`'s contract; with the system
# allocator it ends in `free(NULL)`, a no-op, so the viewer is not affected, but the fuzz build
# (debug assertions on, nightly std) stops on "unsafe precondition(s) violated" at the first
# JPEG 2000 film, which made JPEG 2000 unfuzzable. The patch skips `dealloc` for null pointers.
# It also makes one addition wrap, as the C original (OpenJPEG's unsigned arithmetic) and the
# viewer's release build do: t2.rs `numbps as u32 + 1` for a negative numbps (OpenJPEG PR #1488's
# case), on which the fuzz build's overflow checks stopped (tests/fuzz_regressions.rs has the
# input). Nothing else changes. Remove it once openjp2 releases a fix.
set -euo pipefail
cd "$(dirname "$0")"
(cd .. && cargo fetch --locked --quiet)
crate=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/openjp2-0.6.1.crate | head -n 1)
rm -rf vendor/openjp2-0.6.1
mkdir -p vendor
tar xzf "$crate" -C vendor
patch -d vendor -p1 < openjp2-fuzz-build.patch
echo "vendor/openjp2-0.6.1 patched"
