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
# Two peer queries on the same file. "full" writes the columns ztlake writes, including the two
# every canonical row carries: `source` (path:line) and `event_uid` (a hash of that position) —
# DuckDB gives the line number only through WITH ORDINALITY, and hex() is its cheapest way to
# print a hash. "subset" leaves both out.
read -r DUCK_FULL DUCK_SUBSET < <("$PY" - "$INPUT" "$WORK/duckdb-entra.parquet" <<'PY'
import sys, time, duckdb
src, dst = sys.argv[1], sys.argv[2]
select = """CAST("time" AS TIMESTAMP) AS time, 'azure' AS provider, tenantId AS account,
  properties.userPrincipalName AS "user", properties.userId AS user_id,
  CASE WHEN category IN ('ServicePrincipalSignInLogs', 'ManagedIdentitySignInLogs')
       THEN 'service' ELSE 'human' END AS user_type,
  CASE WHEN properties.status.errorCode = 0 THEN 'success' ELSE 'failure' END AS outcome,
  properties.status.failureReason AS failure_reason,
  properties.authenticationRequirement = 'multiFactorAuthentication' AS mfa,
  callerIpAddress AS src_ip, properties.userAgent AS user_agent,
  properties.deviceDetail.deviceId AS device_id,
  properties.deviceDetail.isManaged AS device_managed,
  properties.deviceDetail.isCompliant AS device_compliant,
  properties.riskLevelDuringSignIn AS risk_level,
  properties.location.countryOrRegion AS country, properties.appDisplayName AS app,
  properties.conditionalAccessStatus AS conditional_access,
  correlationId AS session_id, category AS event"""
queries = [
    f"""SELECT {select}, '{src}:' || ordinality AS source,
          hex(hash('{src}', ordinality)) AS event_uid
        FROM read_json('{src}', format = 'newline_delimited') WITH ORDINALITY""",
    f"SELECT {select} FROM read_json('{src}', format = 'newline_delimited')",
]
times = []
for q in queries:
    con = duckdb.connect()
    con.execute("SET threads = 2")
    t = time.time()
    con.execute(f"COPY ({q}) TO '{dst}' (FORMAT parquet, COMPRESSION zstd)")
    times.append(time.time() - t)
    con.close()
print(*times)
PY
)
for variant in full subset; do
  if [ "$variant" = full ]; then
    secs=$DUCK_FULL what="same columns as ztlake, incl. source + event_uid"
  else
    secs=$DUCK_SUBSET what="without source + event_uid"
  fi
  rate=$(echo "$RECORDS / $secs" | bc -l)
  printf "duckdb (%s): %.2f s, %.0f records/s -> ratio ztlake/duckdb %.2fx\n" "$what" "$secs" \
    "$rate" "$(echo "$ZT_RATE / $rate" | bc -l)"
done
