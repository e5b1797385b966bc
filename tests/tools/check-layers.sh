#!/usr/bin/env bash
# Enforce the include rule between layers (CONVENTIONS.md, "Layout and
# layering"): a header of a higher layer pulled into a lower one is how a
# dependency cycle starts, and the Makefile's per-layer archives would then
# link only by accident.
#
#   tests/tools/check-layers.sh [ROOT]      (ROOT defaults to the repository)
#
# Every #include "..." (and <...> naming a layer folder) in the .c/.h files
# of the repository is resolved the way the compiler would with -I. : first
# next to the including file, then from the root. The layer of the target is
# its top-level folder. Prints each violation as file:line and exits 1, or
# prints one OK line.
set -euo pipefail

root=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
cd "$root"

layers=(common protocol wal meta storage broker)
declare -A allowed=(
    [common]="common"
    [protocol]="common protocol"
    [wal]="common protocol wal"
    [meta]="common protocol meta"
    [storage]="common protocol wal meta storage"
    [broker]="common protocol wal meta storage broker"
)
is_layer() { [[ " ${layers[*]} " == *" $1 "* ]]; }

# Generated and third-party trees are not ours to police.
mapfile -t files < <(find . \( -path ./build -o -path './build-*' -o -path ./.git \
    -o -name node_modules \) -prune -o -type f \( -name '*.c' -o -name '*.h' \) -print |
    sed 's|^\./||' | sort)

violations=0
checked=0
for f in "${files[@]}"; do
    from=${f%%/*}
    [ "$from" = "$f" ] && from=.            # a file at the root
    # tests/ may include anything: unit tests reach into every layer.
    [ "$from" = tests ] && continue
    dir=$(dirname "$f")
    while IFS=: read -r line text; do
        target=$(sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*["<]([^">]*)[">].*/\1/' <<<"$text")
        angle=0
        [[ $text =~ \#[[:space:]]*include[[:space:]]*\< ]] && angle=1
        resolved=
        if [ $angle -eq 0 ] && [ -e "$dir/$target" ]; then
            resolved=$(realpath -m --relative-to=. "$dir/$target")
        elif [ -e "$target" ]; then
            resolved=$(realpath -m --relative-to=. "$target")
        elif [ $angle -eq 0 ] || is_layer "${target%%/*}"; then
            # Not there (yet): judge by the spelling, as -I. would find it.
            resolved=$(realpath -m --relative-to=. "$target")
        fi
        [ -n "$resolved" ] || continue       # a system header
        to=${resolved%%/*}
        is_layer "$to" || continue
        checked=$((checked + 1))
        if is_layer "$from"; then
            [[ " ${allowed[$from]} " == *" $to "* ]] && continue
            echo "$f:$line: $from/ may not include $to/ (\"$target\")"
            violations=$((violations + 1))
        elif [ "$to" = broker ]; then
            echo "$f:$line: only broker/ and tests/ may include broker/ (\"$target\")"
            violations=$((violations + 1))
        fi
    done < <(grep -n -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*["<]' "$f" || true)
done

if [ $violations -gt 0 ]; then
    echo "check-layers: $violations violation(s) of the include rule (see CONVENTIONS.md)"
    exit 1
fi
echo "check-layers: OK (${#files[@]} files, $checked layer includes)"
