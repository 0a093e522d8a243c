#!/usr/bin/env bash
# Run the criterion benches (release) and print their summary tables with ratios.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
echo "==> cargo bench -p cairn --bench checkpoint" >&2
cargo bench -p cairn --bench checkpoint -- "$@"
