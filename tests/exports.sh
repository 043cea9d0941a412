#!/bin/bash
# Fails if a shared libweft exports a symbol that is not declared in a public header (or one of
# the two internals WEFT_PROCPOOL_FN expands to). Usage: exports.sh LIB.so INCLUDE_DIR
set -euo pipefail
lib=$1 inc=$2
declared=$(grep -ohE '\bweft_[A-Za-z0-9_]*\b' "$inc"/weft.h "$inc"/weft/*.h | sort -u)
allowed=$(printf '%s\n' $declared weft__procpool_enter_worker weft__procpool_late_entry | sort -u)
exported=$(nm -D --defined-only "$lib" | awk '{print $NF}' | sed 's/@.*//' | sort -u)
[ -n "$exported" ] || { echo "no dynamic symbols in $lib" >&2; exit 1; }
extra=$(comm -23 <(echo "$exported") <(echo "$allowed"))
if [ -n "$extra" ]; then
    echo "$lib exports symbols that are not public API:" >&2
    echo "$extra" >&2
    exit 1
fi
echo "$(echo "$exported" | wc -l) exported symbols, all public"
