#!/usr/bin/env python3
"""Segment benchmark on the load harness's PostgreSQL dataset (run bench/load.py first, which
generates it and keeps its keys): a three-condition segment (a field, an event count in 30 days,
a tag) built, rebuilt and previewed through the API, side by side with the SQL a DBA would write
for the same question; then membership latency under a steady ingest load.

    python3 bench/load.py --contacts 1000000 --events-per-contact 10 --scenarios contacts_list --duration 1
    python3 bench/segments.py

SQLite: generate into a file, then point the bench at it and at the generator's JSON summary:

    target/release/voxtur --database-url "sqlite://target/bench-load/seg.db?mode=rwc" demo generate \
        --contacts 1000000 --events-per-contact 10 --json > target/bench-load/sqlite-seg.json
    python3 bench/segments.py --sqlite target/bench-load/seg.db --summary target/bench-load/sqlite-seg.json
"""

import argparse
import json
import sqlite3
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load  # noqa: E402

FILTER = {
    "lifecycleStage": {"eq": "LEAD"},
    "events": [{"type": "PAGE_VIEWED", "atLeast": 3, "withinLastDays": 30}],
    "tags": {"hasAny": ["newsletter"]},
}

HAND_WRITTEN = """
SELECT count(*) FROM {schema}.contact c
WHERE c.workspace_id = '{ws}' AND c.lifecycle_stage = 'lead' AND NOT c.anonymous
  AND EXISTS (SELECT 1 FROM {schema}.contact_tag t WHERE t.contact_id = c.id AND t.tag = 'newsletter')
  AND c.id IN (SELECT e.contact_id FROM {schema}.event e
               WHERE e.workspace_id = '{ws}' AND e.event_type = 'page_viewed'
                 AND e.occurred_at >= now() - interval '30 days'
               GROUP BY e.contact_id HAVING count(*) >= 3)
"""


# The same question as a DBA would write it over the event tallies (migration 8), which the
# segment's behaviour condition reads: "the third latest page view is within 30 days", from the
# column PostgreSQL's tallies keep it in, over its own index (migration 10).
HAND_WRITTEN_TALLY = """
SELECT count(*) FROM {schema}.contact c
WHERE c.workspace_id = '{ws}' AND c.lifecycle_stage = 'lead' AND NOT c.anonymous
  AND EXISTS (SELECT 1 FROM {schema}.contact_tag t WHERE t.contact_id = c.id AND t.tag = 'newsletter')
  AND c.id IN (SELECT t.contact_id FROM {schema}.event_tally t
               WHERE t.workspace_id = '{ws}' AND t.event_type = 'page_viewed'
                 AND t.third_at >= now() - interval '30 days')
"""


def gql(base, key, query, variables=None):
    started = time.monotonic()
    data = load.post(f"{base}/graphql", {"query": query, "variables": variables or {}}, {"Authorization": f"Bearer {key}"})
    return data, (time.monotonic() - started) * 1000


HAND_WRITTEN_SQLITE = """
SELECT count(*) FROM contact c
WHERE c.workspace_id = ? AND c.lifecycle_stage = 'lead' AND NOT c.anonymous
  AND EXISTS (SELECT 1 FROM contact_tag t WHERE t.contact_id = c.id AND t.tag = 'newsletter')
  AND c.id IN (SELECT e.contact_id FROM event e
               WHERE e.workspace_id = ? AND e.event_type = 'page_viewed'
                 AND e.occurred_at >= strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now', '-30 days')
               GROUP BY e.contact_id HAVING count(*) >= 3)
"""


HAND_WRITTEN_TALLY_SQLITE = """
SELECT count(*) FROM contact c
WHERE c.workspace_id = ? AND c.lifecycle_stage = 'lead' AND NOT c.anonymous
  AND EXISTS (SELECT 1 FROM contact_tag t WHERE t.contact_id = c.id AND t.tag = 'newsletter')
  AND c.id IN (SELECT t.contact_id FROM event_tally t
               WHERE t.workspace_id = ? AND t.event_type = 'page_viewed'
                 AND t.third_at >= strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now', '-30 days'))
"""


def sqlite_ms(path, ws, sql=HAND_WRITTEN_SQLITE):
    """A hand-written count on SQLite, best of three, and its result. pysqlite3-binary (a recent
    SQLite, nearer the one the server bundles) is used when installed, else Python's own."""
    import uuid
    try:
        import pysqlite3 as driver
    except ImportError:
        driver = sqlite3
    blob = uuid.UUID(ws).bytes
    db = driver.connect(path)
    times, count = [], None
    for _ in range(3):
        started = time.monotonic()
        count = db.execute(sql, (blob, blob)).fetchone()[0]
        times.append((time.monotonic() - started) * 1000)
    db.close()
    return min(times), count


# The server's session settings (see api/store/src/db/mod.rs), so both sides get the same memory to hash in.
PG_SESSION = dict(os.environ, PGOPTIONS="-c work_mem=32MB -c max_parallel_workers_per_gather=0")


def psql_ms(url, sql):
    """Execution time of a statement, best of three, from EXPLAIN ANALYZE."""
    times = []
    for _ in range(3):
        out = load.run(["psql", url, "-Atc", "EXPLAIN (ANALYZE, FORMAT JSON) " + sql], env=PG_SESSION)
        times.append(json.loads(out)[0]["Execution Time"])
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--schema", default="voxtur_load")
    parser.add_argument("--binary", default=os.path.join(load.ROOT, "target", "release", "voxtur"))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=4, help="ingest clients during the latency run")
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--sqlite", help="a SQLite file made by `voxtur demo generate` instead of PostgreSQL")
    parser.add_argument("--summary", help="with --sqlite: the generator's --json output")
    parser.add_argument("--only-ingest", action="store_true",
                        help="only the latency run, with the segment an earlier run left (to compare builds)")
    parser.add_argument("--pool", default="load",
                        help="names the ingested visitors and users; a new name starts with none of them known")
    args = parser.parse_args()
    if args.sqlite:
        with open(args.summary) as f:
            summary = json.loads(f.read().strip().splitlines()[-1])
    else:
        state_path = os.path.join(load.STATE_DIR, f"postgres-{args.schema}.json")
        if not os.path.exists(state_path):
            sys.exit(f"{state_path} not found: run bench/load.py first")
        with open(state_path) as f:
            summary = json.load(f)["summary"]
    ws, key = summary["workspace_id"], summary["api_key"]

    env = dict(os.environ, VOXTUR__LOG__FILTER=os.environ.get("BENCH_LOG", "warn"))
    if args.sqlite:
        env.update(VOXTUR__DATABASE__URL=f"sqlite://{args.sqlite}?mode=rwc")
    else:
        env.update(VOXTUR__DATABASE__URL=args.database_url, VOXTUR__DATABASE__SCHEMA=args.schema)
    env.pop("DATABASE_URL", None)
    port = load.free_port()
    base = f"http://127.0.0.1:{port}"
    workdir = tempfile.mkdtemp(prefix="voxtur-segments-")
    log = open(os.path.join(workdir, "server.log"), "w")
    server = subprocess.Popen([args.binary, "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        load.wait_ready(f"{base}/readyz", server)
        if args.only_ingest:
            data, _ = gql(base, key, "{ segments(first: 100) { nodes { memberCount } } }")
            if not data["segments"]["nodes"]:
                sys.exit("--only-ingest: no segment left by an earlier run")
        else:
            measure_segment(args, base, key, ws, summary)
    finally:
        load.stop(server)
        log.close()
    ingest_latency(args, env, port, base, summary, workdir)


def measure_segment(args, base, key, ws, summary):
    """Build, rebuild and preview beside the hand-written SQL."""
    # Start clean: earlier runs' segments go.
    data, _ = gql(base, key, "{ segments(first: 100) { nodes { id } } }")
    for node in data["segments"]["nodes"]:
        gql(base, key, "mutation($id: ID!) { segmentDelete(id: $id) { deletedId } }", {"id": node["id"]})

    if args.sqlite:
        hand_ms, count = sqlite_ms(args.sqlite, ws)
        tally_ms, tally_count = sqlite_ms(args.sqlite, ws, HAND_WRITTEN_TALLY_SQLITE)
    else:
        # What autovacuum (off on the bench machine) does after a bulk load: it marks pages
        # all-visible, which index-only scans need.
        load.run(["psql", args.database_url, "-qc", f"VACUUM (ANALYZE) {args.schema}.event"])
        hand_ms = psql_ms(args.database_url, HAND_WRITTEN.format(schema=args.schema, ws=ws))
        count = int(load.run(["psql", args.database_url, "-Atc", HAND_WRITTEN.format(schema=args.schema, ws=ws)]).strip())
        load.run(["psql", args.database_url, "-qc", f"VACUUM (ANALYZE) {args.schema}.event_tally"])
        tally_sql = HAND_WRITTEN_TALLY.format(schema=args.schema, ws=ws)
        tally_ms = psql_ms(args.database_url, tally_sql)
        tally_count = int(load.run(["psql", args.database_url, "-Atc", tally_sql]).strip())
    assert tally_count == count, (tally_count, count)

    preview = []
    for _ in range(args.repeat):
        data, ms = gql(base, key, "query($f: ContactFilter!) { segmentPreview(filter: $f, first: 1) { totalCount } }", {"f": FILTER})
        preview.append(ms)
        assert data["segmentPreview"]["totalCount"] == count, (data, count)

    data, create_ms = gql(base, key, "mutation($i: SegmentCreateInput!) { segmentCreate(input: $i) { segment { id memberCount } userErrors { message } } }",
                          {"i": {"name": "Bench: engaged newsletter leads", "filter": FILTER}})
    segment = data["segmentCreate"]["segment"]
    assert segment and segment["memberCount"] == count, data
    rebuild = []
    for _ in range(args.repeat):
        data, ms = gql(base, key, "mutation($id: ID!) { segmentRebuild(id: $id) { enteredCount exitedCount } }", {"id": segment["id"]})
        rebuild.append(ms)

    print(f"segment: {count} members of {summary['contacts']} contacts")
    how = "wall time in-process" if args.sqlite else "EXPLAIN ANALYZE"
    print(f"hand-written SQL (count, {how}, best of 3): {hand_ms:.0f} ms")
    print(f"hand-written SQL over the event tallies (count, {how}, best of 3): {tally_ms:.0f} ms")
    print(f"segmentPreview count (HTTP, median of {args.repeat}): {statistics.median(preview):.0f} ms "
          f"({statistics.median(preview) / hand_ms:.2f}x the hand-written SQL)")
    print(f"segmentCreate, first build of {count} members (HTTP): {create_ms:.0f} ms")
    print(f"segmentRebuild, steady state (HTTP, median of {args.repeat}): {statistics.median(rebuild):.0f} ms "
          f"({statistics.median(rebuild) / hand_ms:.2f}x the hand-written SQL)")


def ingest_latency(args, env, port, base, summary, workdir):
    # Latency: with the segment in place, ingestion re-evaluates it for each batch's contacts
    # before answering, so a batch's response time bounds event-to-`segment_entered` time.
    ns = argparse.Namespace(concurrency=args.concurrency, threads=2, duration=args.duration)
    log = open(os.path.join(workdir, "server-ingest.log"), "w")
    server = subprocess.Popen([args.binary, "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        load.wait_ready(f"{base}/readyz", server)
        import base64
        script = load.lua_ingest({"Authorization": "Basic " + base64.b64encode(f"{summary['write_key']}:".encode()).decode(),
                                  "Content-Type": "application/json"}, pool=args.pool)
        result = load.wrk(ns, f"{base}/v1/batch", script, workdir)
        print(f"ingestion with the segment kept current, {args.concurrency} clients, saturated: {result['rps'] * 500:.0f} events/s, "
              f"batch p50 {result['p50_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms (event to membership at most this)")
        # A steady load below saturation: each client waits between batches so the whole runs at
        # about half the saturated rate (at saturation the p99 is mostly time spent queueing).
        delay_ms = args.concurrency / (result["rps"] / 2) * 1000
        half = load.wrk(ns, f"{base}/v1/batch", script, workdir, delay_ms=max(delay_ms - result["p50_ms"], 0))
        print(f"ingestion with the segment kept current, {args.concurrency} clients, about half: {half['rps'] * 500:.0f} events/s, "
              f"batch p50 {half['p50_ms']:.0f} ms, p99 {half['p99_ms']:.0f} ms")
    finally:
        load.stop(server)
        log.close()


if __name__ == "__main__":
    main()
