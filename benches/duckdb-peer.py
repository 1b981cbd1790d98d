#!/usr/bin/env python3
"""The DuckDB peer of benches/e2e.sh (flows) and benches/entra.sh (Entra sign-ins).

    duckdb-peer.py flows|entra SRC DST RECORDS ZTLAKE_SECONDS

Normalizes SRC to zstd Parquet at DST with DuckDB (2 threads, a fresh connection per query)
twice and prints the time, rate and ztlake/DuckDB ratio of each:

- "full": the columns ztlake writes for these records, including the two every canonical row
  carries: `source` (path:line) and `event_uid` (a hash of that position). DuckDB gives a line
  number only through WITH ORDINALITY (row_number() OVER () costs the same); hex() is its
  cheapest text of a hash. This is the ratio the targets are about.
- "subset": the same without `source` and `event_uid`, a lighter query, for reference.
"""
import sys
import time

import duckdb

FLOW_COLUMNS = """columns={'version':'INTEGER','account-id':'VARCHAR','interface-id':'VARCHAR',
  'srcaddr':'VARCHAR','dstaddr':'VARCHAR','srcport':'INTEGER','dstport':'INTEGER',
  'protocol':'INTEGER','packets':'BIGINT','bytes':'BIGINT','start':'BIGINT',
  'end':'BIGINT','action':'VARCHAR','log-status':'VARCHAR'}"""

FLOW_SELECT = """to_timestamp("start") AS time, to_timestamp("end") AS end_time, 'aws' AS provider,
  "account-id" AS account, "interface-id" AS resource,
  srcaddr AS src_ip, srcport AS src_port, dstaddr AS dst_ip, dstport AS dst_port,
  protocol, packets, bytes,
  CASE action WHEN 'ACCEPT' THEN 'allow' WHEN 'REJECT' THEN 'deny' END AS action,
  lower("log-status") AS status"""

ENTRA_SELECT = """CAST("time" AS TIMESTAMP) AS time, 'azure' AS provider, tenantId AS account,
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


def queries(kind, src):
    """(full, subset) SELECTs of `kind` over `src`."""
    if kind == "flows":
        scan = f"read_csv('{src}', delim=' ', header=true, nullstr='-', {FLOW_COLUMNS})"
        select = FLOW_SELECT
        line = "ordinality + 1"  # the header is line 1: record n sits on line n + 1
    elif kind == "entra":
        scan = f"read_json('{src}', format = 'newline_delimited')"
        select = ENTRA_SELECT
        line = "ordinality"
    else:
        sys.exit(f"duckdb-peer.py: unknown kind {kind!r} (flows or entra)")
    full = f"""SELECT {select}, '{src}:' || ({line}) AS source,
                      hex(hash('{src}', {line})) AS event_uid
               FROM {scan} WITH ORDINALITY"""
    return full, f"SELECT {select} FROM {scan}"


def main():
    kind, src, dst, records, ztlake_secs = sys.argv[1:6]
    records, ztlake_secs = int(records), float(ztlake_secs)
    rate_text = (lambda r: f"{r / 1e6:.2f} M rows/s") if kind == "flows" else (
        lambda r: f"{r:.0f} records/s")
    full, subset = queries(kind, src)
    for what, query in [("same columns as ztlake, incl. source + event_uid", full),
                        ("without source + event_uid", subset)]:
        con = duckdb.connect()
        con.execute("SET threads = 2")
        started = time.time()
        con.execute(f"COPY ({query}) TO '{dst}' (FORMAT parquet, COMPRESSION zstd)")
        secs = time.time() - started
        con.close()
        ratio = secs / ztlake_secs if ztlake_secs > 0 else float("nan")
        print(f"duckdb ({what}): {secs:.2f} s, {rate_text(records / secs)} "
              f"-> ratio ztlake/duckdb {ratio:.2f}x", flush=True)


if __name__ == "__main__":
    main()
