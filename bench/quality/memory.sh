#!/usr/bin/env bash
# Peak memory of `cairn validate` and `cairn suite suggest` on a 5 GB CSV (issue 5: under 500 MB).
# Builds the file from a 50 MB block of random rows repeated, then runs both under
# /usr/bin/time -v and prints the maximum resident set size.
# Usage: cargo build --release && bash bench/quality/memory.sh [DIR] [GB]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cairn="${CAIRN_BIN:-$root/target/release/cairn}"
dir="${1:-/tmp/cairn-bench-memory}"
gb="${2:-5}"
mkdir -p "$dir"
csv="$dir/big.csv"
if [ ! -s "$csv" ]; then
  python3 - "$dir/block.csv" <<'EOF'
import random, sys
random.seed(7)
words = ["alpha", "beta", "gamma", "delta", "epsilon"]
with open(sys.argv[1], "w") as f:
    for i in range(600_000):
        f.write(f"{i},{random.gauss(0, 1):.6f},{random.gauss(5, 2):.6f},{random.randint(0, 999)},"
                f"{random.choice(words)},{'' if i % 97 == 0 else random.random():}\n")
EOF
  block_mb=$(( $(stat -c %s "$dir/block.csv") / 1000000 ))
  copies=$(( gb * 1000 / block_mb + 1 ))
  { echo "id,x,y,n,word,maybe"; for _ in $(seq "$copies"); do cat "$dir/block.csv"; done; } > "$csv"
fi
cat > "$dir/suite.yaml" <<'EOF'
name: memory
expectations:
  - expect_table_row_count_to_be_between: {min_value: 1}
  - expect_column_values_to_not_be_null: {column: maybe, mostly: 0.98}
  - expect_column_values_to_be_between: {column: x, min_value: -6, max_value: 6}
  - expect_column_values_to_be_in_set: {column: word, value_set: [alpha, beta, gamma, delta, epsilon]}
  - expect_column_values_to_match_regex: {column: word, regex: "^[a-z]+$"}
  - expect_column_mean_to_be_between: {column: y, min_value: 4, max_value: 6}
  - expect_column_max_to_be_between: {column: n, max_value: 999}
  - expect_column_value_lengths_to_be_between: {column: word, min_value: 4, max_value: 7}
  - expect_column_distinct_values_to_be_in_set: {column: word, value_set: [alpha, beta, gamma, delta, epsilon]}
EOF
echo "file: $(du -h "$csv" | cut -f1) ($csv)"
for cmd in "validate --suite $dir/suite.yaml $csv --quiet" "suite suggest $csv -o $dir/suggested.yaml"; do
  /usr/bin/time -v "$cairn" $cmd > "$dir/out.txt" 2> "$dir/time.txt" || true
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$dir/time.txt")
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$dir/time.txt")
  echo "cairn ${cmd%% *}: peak RSS $((rss / 1024)) MiB, wall $wall; $(tail -1 "$dir/out.txt")"
done
