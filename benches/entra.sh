#!/usr/bin/env bash
# End-to-end benchmark for JSON sign-in logs: N thousand generated Entra ID sign-in records
# (diagnostic-settings JSON, one per line, ~2 KB each) ingested by `ztlake ingest` into a fresh
# local lake, side by side with DuckDB's read_json → zstd Parquet (2 threads) on the same file,
# mapping the same columns. Prints records/s of both and the ratios, plus ztlake's peak RSS.
# DuckDB runs twice: with the `source` and `event_uid` columns every canonical row carries (the
# ratio the target is about) and, for reference, without them.
#
#   benches/entra.sh [THOUSAND_RECORDS=500] [WORKDIR=target/bench-e2e]
set -euo pipefail
cd "$(dirname "$0")/.."
THOUSANDS="${1:-500}"
WORK="${2:-target/bench-e2e}"
RECORDS=$((THOUSANDS * 1000))
BIN="${ZTLAKE_BIN:-target/release/ztlake}"
PY="${PYTHON:-python3}"

[ -x "$BIN" ] || cargo build --release --bin ztlake
mkdir -p "$WORK"
INPUT="$WORK/entra-${THOUSANDS}k.ndjson"
if [ ! -s "$INPUT" ]; then
  echo "generating $RECORDS records into $INPUT"
  "$BIN" generate entra --count "$RECORDS" --seed 42 --output "$INPUT"
fi
SIZE=$(stat -c %s "$INPUT")
cat "$INPUT" > /dev/null   # warm the page cache for both tools alike

rm -rf "$WORK/lake-entra"
echo "== ztlake ingest ($RECORDS records, $((SIZE / 1000000)) MB)"
START=$(date +%s.%N)
/usr/bin/time -f "%M" -o "$WORK/ztlake-entra.rss" "$BIN" --lake "$WORK/lake-entra" ingest \
  --format azure-entra-signin "$INPUT" > "$WORK/ztlake-entra.out"
END=$(date +%s.%N)
ZT_SECS=$(echo "$END - $START" | bc -l)
ZT_RATE=$(echo "$RECORDS / $ZT_SECS" | bc -l)
printf "ztlake: %.2f s, %.0f records/s, peak RSS %d MB\n" "$ZT_SECS" "$ZT_RATE" \
  "$(( $(cat "$WORK/ztlake-entra.rss") / 1024 ))"
head -4 "$WORK/ztlake-entra.out"

if ! "$PY" -c 'import duckdb' 2>/dev/null; then
  echo "duckdb not installed (pip install duckdb): no peer figure"
  exit 0
fi
echo "== DuckDB $("$PY" -c 'import duckdb; print(duckdb.__version__)') read_json → Parquet (2 threads)"
# Twice: with the columns ztlake writes incl. source + event_uid, and without (see the script).
"$PY" benches/duckdb-peer.py entra "$INPUT" "$WORK/duckdb-entra.parquet" "$RECORDS" "$ZT_SECS"
