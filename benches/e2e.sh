#!/usr/bin/env bash
# End-to-end benchmark: N million generated AWS VPC flow lines (default v2 format) ingested by
# `ztlake ingest` into a fresh local lake, side by side with DuckDB normalizing the same file to
# zstd Parquet with 2 threads (when the duckdb Python package is installed). Prints rows/s of
# both and the ratios, plus ztlake's peak resident memory. DuckDB runs twice: once writing the
# same columns ztlake writes for these records, including `source` and `event_uid` (the ratio the
# target is about), once without those two (a lighter query, printed for reference).
#
# With --pack: the cost of streaming detection instead. The same file is ingested into fresh
# lakes without and with `--detect` (the shipped streaming rule pack from detections/rules,
# detections/reference and runbooks), alternately, PACK_ROUNDS times (default 3); the script
# prints every pair's rates and the share of ingest throughput the pack costs, and exits 1 when
# the median share exceeds the 30% budget (PACK_BUDGET_PCT overrides it). The rates are those of
# the ingest itself (the command's own "records in N s": reading, detection, the data and alert
# commits). The `--detect` runs use on-call routes that reach nobody: the tens of thousands of
# alerts would otherwise become one outbox file each, whose deletion before the next run disturbs
# that run's timing (filesystem writeback). PACK_DELIVER=1 delivers them (into the outbox), and
# the delivery after the ingest is timed and printed separately.
#
#   benches/e2e.sh [MILLION_LINES=5] [WORKDIR=target/bench-e2e]
#   [PACK_ROUNDS=3] [PACK_DELIVER=1] benches/e2e.sh --pack [MILLION_LINES=5] [WORKDIR=target/bench-e2e]
set -euo pipefail
cd "$(dirname "$0")/.."
PACK=0
if [ "${1:-}" = "--pack" ]; then
  PACK=1
  shift
fi
MILLIONS="${1:-5}"
WORK="${2:-target/bench-e2e}"
LINES=$((MILLIONS * 1000000))
BIN="${ZTLAKE_BIN:-target/release/ztlake}"
PY="${PYTHON:-python3}"

[ -x "$BIN" ] || cargo build --release --bin ztlake
mkdir -p "$WORK"
INPUT="$WORK/flows-${MILLIONS}m.log"
if [ ! -s "$INPUT" ]; then
  echo "generating $LINES lines into $INPUT"
  "$BIN" generate vpcflow --count "$LINES" --seed 42 --output "$INPUT"
fi
SIZE=$(stat -c %s "$INPUT")
cat "$INPUT" > /dev/null   # warm the page cache for both tools alike

if [ "$PACK" = 1 ]; then
  BUDGET="${PACK_BUDGET_PCT:-30}"
  ROUNDS="${PACK_ROUNDS:-3}"
  ONCALL_CONFIG=""
  if [ "${PACK_DELIVER:-0}" != 1 ]; then
    ONCALL_CONFIG="$WORK/no-delivery.toml"
    printf '[oncall]\ndefault_targets = []\n[[oncall.targets]]\nname = "nobody"\nemail = ["nobody@localhost"]\n' \
      > "$ONCALL_CONFIG"
  fi
  # ingest NAME [EXTRA ARGS…]: a fresh lake $WORK/lake-NAME (with $CONFIG as the
  # configuration when set); sets SECS and RATE.
  ingest() {
    local name="$1"
    shift
    rm -rf "$WORK/lake-$name"
    # A previous run's lake is deleted and flushed before the clock starts: its I/O is not
    # this run's.
    sync
    local start end
    start=$(date +%s.%N)
    local settings=()
    [ -z "$CONFIG" ] || settings=("ZTLAKE_CONFIG=$CONFIG")
    env "${settings[@]}" /usr/bin/time -f "%M" -o "$WORK/ztlake-$name.rss" "$BIN" \
      --lake "$WORK/lake-$name" ingest --format aws-vpcflow "$@" "$INPUT" > "$WORK/ztlake-$name.out"
    end=$(date +%s.%N)
    local total
    total=$(echo "$end - $start" | bc -l)
    # The ingest's own time (without the on-call delivery that follows `--detect`).
    SECS=$(sed -n 's/.* records in \([0-9.]*\)s .*/\1/p' "$WORK/ztlake-$name.out" | head -1)
    [ -n "$SECS" ] || SECS=$total
    RATE=$(echo "$LINES / $SECS" | bc -l)
    printf "%s: %.2f s, %.2f M rows/s, peak RSS %d MB (command %.2f s, of which %.2f s after the ingest: on-call delivery)\n" \
      "$name" "$SECS" "$(echo "$RATE / 1000000" | bc -l)" "$(( $(cat "$WORK/ztlake-$name.rss") / 1024 ))" \
      "$total" "$(echo "$total - $SECS" | bc -l)"
  }
  echo "== ztlake ingest, streaming pack off vs on ($LINES lines, $((SIZE / 1000000)) MB), $ROUNDS rounds"
  COSTS=()
  # least BEST SECS: the smaller of the two (SECS when there is no BEST yet).
  least() {
    if [ -n "$1" ] && [ "$(echo "$1 <= $2" | bc -l)" = 1 ]; then echo "$1"; else echo "$2"; fi
  }
  BEST_OFF=""
  BEST_ON=""
  for round in $(seq 1 "$ROUNDS"); do
    CONFIG="" ingest pack-off
    OFF_RATE=$RATE
    BEST_OFF=$(least "$BEST_OFF" "$SECS")
    CONFIG="$ONCALL_CONFIG" ingest pack-on --detect
    ON_RATE=$RATE
    BEST_ON=$(least "$BEST_ON" "$SECS")
    COST=$(echo "(1 - $ON_RATE / $OFF_RATE) * 100" | bc -l)
    COSTS+=("$COST")
    printf "round %d: pack cost %.1f%% of ingest throughput\n" "$round" "$COST"
  done
  rm -rf "$WORK/lake-pack-off" "$WORK/lake-pack-on"
  grep -iE 'detect|rule|alert|window|on-call' "$WORK/ztlake-pack-on.out" || true
  MEDIAN=$(printf "%s\n" "${COSTS[@]}" | sort -g | sed -n "$(( (ROUNDS + 1) / 2 ))p")
  printf "pack cost: median %.1f%% of ingest throughput over %d rounds (budget %s%%)\n" \
    "$MEDIAN" "$ROUNDS" "$BUDGET"
  # The fastest run of each side, less sensitive to a round slowed by the rest of the machine.
  printf "best of %d rounds: pack-off %.2f s, pack-on %.2f s: pack cost %.1f%%\n" "$ROUNDS" \
    "$BEST_OFF" "$BEST_ON" "$(echo "(1 - $BEST_OFF / $BEST_ON) * 100" | bc -l)"
  if [ "$(echo "$MEDIAN > $BUDGET" | bc -l)" = 1 ]; then
    echo "OVER BUDGET"
    exit 1
  fi
  echo "within budget"
  exit 0
fi

rm -rf "$WORK/lake"
echo "== ztlake ingest ($LINES lines, $((SIZE / 1000000)) MB)"
START=$(date +%s.%N)
/usr/bin/time -f "%M" -o "$WORK/ztlake.rss" "$BIN" --lake "$WORK/lake" ingest --format aws-vpcflow "$INPUT" > "$WORK/ztlake.out"
END=$(date +%s.%N)
ZT_SECS=$(echo "$END - $START" | bc -l)
ZT_RATE=$(echo "$LINES / $ZT_SECS" | bc -l)
printf "ztlake: %.2f s, %.2f M rows/s, peak RSS %d MB\n" "$ZT_SECS" "$(echo "$ZT_RATE / 1000000" | bc -l)" "$(( $(cat "$WORK/ztlake.rss") / 1024 ))"
head -4 "$WORK/ztlake.out"

if "$PY" -c "import duckdb" 2>/dev/null; then
  echo "== DuckDB $("$PY" -c 'import duckdb; print(duckdb.__version__)') (2 threads), same file to zstd Parquet"
  # Twice: with the columns ztlake writes incl. source + event_uid, and without (see the script).
  "$PY" benches/duckdb-peer.py flows "$INPUT" "$WORK/duckdb.parquet" "$LINES" "$ZT_SECS"
else
  echo "(DuckDB not installed: pip install duckdb to compare)"
fi
