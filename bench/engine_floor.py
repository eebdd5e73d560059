#!/usr/bin/env python3
"""What the database engines alone take for the writes ingestion makes per event (issue 3).

The journey bench's floor (`cargo bench --bench journey`) writes events through Voxtur's own
store functions. This goes one step further down: no Voxtur code runs while it measures. It
applies the real schema (`voxtur migrate` into a fresh SQLite file or PostgreSQL schema), adds a
workspace and 16,000 contacts, writes `--preload` events, then times 500-event batches made of the
statements ingestion sends, in the engines' own clients:

  events     the event insert (the table and its indexes as migrated)
  required   the same with only the indexes issue 3 names (id, contact/time, type/time)
  activity   events, then the contacts' `last_activity_at` / `first_seen_at` update
  tallies    events, then the tally upsert (`events::tally`, one new time a row)
  all        events, activity and tallies: what every ingested batch writes

SQLite: `pysqlite3` (pip install pysqlite3-binary), one writer connection as the server has, a
passive checkpoint every 250 ms from a second thread as the server runs it. PostgreSQL: `pgbench`
with `--clients` sessions. Each mode starts from a fresh database. Rows are generated inside the
engine (SQLite: `json_each` over one JSON parameter, as the server passes tallies; PostgreSQL:
`generate_series`), so the client's own cost is small; the result is an upper bound on what
ingestion through these statements can reach on the machine, whatever the server does.

    python3 bench/engine_floor.py --backend sqlite [--modes events,all] [--batches 300]
    python3 bench/engine_floor.py --backend postgres [--clients 4] [--seconds 15]

The statements copy the server's (`events::insert_events`, `events::touch_activity`,
`tally::add` with `tally::fold`); keep them in step when those change.
"""

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODES = ["events", "required", "activity", "tallies", "all"]
CONTACTS = 16_000
WORKSPACE = uuid.UUID("00000000-0000-4000-8000-000000000001")


def machine_cpu_ms():
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    # user, nice, system, irq, softirq, steal (not idle, not iowait), in clock ticks
    busy = fields[0] + fields[1] + fields[2] + fields[5] + fields[6]
    return busy * 1000 / os.sysconf("SC_CLK_TCK")


def migrate(env):
    binary = os.path.join(ROOT, "target", "release", "voxtur")
    if not os.path.exists(binary):
        sys.exit(f"{binary} is missing: run `cargo build --release` first")
    subprocess.run([binary, "migrate"], env={**os.environ, **env}, check=True, stdout=subprocess.DEVNULL)


# --- SQLite ---------------------------------------------------------------------------------

SQLITE_TIME = "%Y-%m-%dT%H:%M:%S"


def sqlite_time(seconds):
    whole = int(seconds)
    return time.strftime(SQLITE_TIME, time.gmtime(whole)) + ".%06d+00:00" % int((seconds - whole) * 1e6)


SQLITE_EVENTS = """INSERT INTO event (id, workspace_id, contact_id, event_type, name, occurred_at, received_at,
    source, channel, campaign, utm_source, utm_medium, utm_campaign, utm_term, utm_content, properties, message_id)
  SELECT unhex(value ->> 0), unhex(?2), unhex(value ->> 1), value ->> 2, 'Product', value ->> 3, value ->> 3,
    'segment', NULL, 'spring', 'google', 'cpc', 'spring', NULL, NULL, value ->> 4, value ->> 5
  FROM json_each(?1)"""

SQLITE_ACTIVITY = """WITH v(id, first_at, last_at) AS (
    SELECT unhex(value ->> 1), min(value ->> 3), max(value ->> 3) FROM json_each(?1) GROUP BY 1)
  UPDATE contact SET
    last_activity_at = MAX(COALESCE(contact.last_activity_at, v.last_at), v.last_at),
    first_seen_at = MIN(COALESCE(contact.first_seen_at, v.first_at), v.first_at)
  FROM v WHERE contact.id = v.id
    AND (contact.last_activity_at IS NULL OR contact.last_activity_at < v.last_at
         OR contact.first_seen_at IS NULL OR contact.first_seen_at > v.first_at)"""

SQLITE_TALLIES = """INSERT INTO event_tally (contact_id, event_type, workspace_id, total, last_at, recent)
  SELECT unhex(value ->> 1), value ->> 2, unhex(?2), 1, value ->> 3, json_array(value ->> 3)
  FROM json_each(?1) WHERE true
  ON CONFLICT (contact_id, event_type) DO UPDATE SET
    total = event_tally.total + excluded.total,
    last_at = MAX(event_tally.last_at, excluded.last_at),
    recent = CASE WHEN excluded.total = 1 AND excluded.last_at >= event_tally.last_at AND event_tally.recent <> '[]'
      THEN json_remove('[' || json_quote(excluded.last_at) || ',' || substr(event_tally.recent, 2), '$[10]')
      ELSE (SELECT json_group_array(m ORDER BY m DESC) FROM
             (SELECT value AS m FROM json_each(event_tally.recent)
              UNION ALL SELECT value FROM json_each(excluded.recent) ORDER BY m DESC LIMIT 10)) END"""


def sqlite_batches(contacts, count, start, clock):
    """`count` JSON batches of 500 events: one event per (contact, type) in a batch, as the
    server's tally upsert takes them; 80% page views, later events later."""
    batches = []
    for b in range(count):
        rows, seen = [], set()
        while len(rows) < 500:
            contact = random.choice(contacts)
            kind = "page_viewed" if random.random() < 0.8 else "order_completed"
            if (contact, kind) in seen:
                continue
            seen.add((contact, kind))
            n = start + b * 500 + len(rows)
            clock += 0.0005
            event_id = uuid.UUID(int=(int(clock * 1000) << 80) | random.getrandbits(80)).hex
            rows.append([event_id, contact, kind, sqlite_time(clock), json.dumps({"path": f"/p/{n % 300}"}),
                         uuid.uuid4().hex])
        batches.append(json.dumps(rows))
    return batches, clock


def run_sqlite(mode, args):
    import pysqlite3 as sqlite3

    directory = tempfile.mkdtemp(prefix="engine-floor-")
    path = os.path.join(directory, "floor.db")
    migrate({"DATABASE_URL": f"sqlite://{path}?mode=rwc"})

    def connect():
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # The server's settings (db::connect).
        for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "foreign_keys = ON", "temp_store = MEMORY",
                       "wal_autocheckpoint = 20000", "busy_timeout = 10000"):
            db.execute(f"PRAGMA {pragma}")
        return db

    db = connect()
    now = time.time() - 86_400
    db.execute("INSERT INTO workspace (id, name, created_at) VALUES (?, 'floor', ?)", (WORKSPACE.bytes, sqlite_time(now)))
    db.execute(
        """WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < ?2 - 1)
           INSERT INTO contact (id, workspace_id, email, lifecycle_stage, consent_email, consent_sms, consent_phone,
             consent_letter, consent_visit, dnc_email, dnc_sms, dnc_phone, dnc_letter, dnc_visit, custom_fields,
             created_at, updated_at, anonymous)
           SELECT randomblob(16), ?1, 'c' || n || '@example.com', 'lead', 'unknown', 'unknown', 'unknown', 'unknown',
             'unknown', 0, 0, 0, 0, 0, '{}', ?3, ?3, 0 FROM s""",
        (WORKSPACE.bytes, CONTACTS, sqlite_time(now)),
    )
    if mode == "required":
        db.execute("DROP INDEX event_workspace_time")
    contacts = [row[0].hex() for row in db.execute("SELECT id FROM contact")]
    statements = {
        "events": [SQLITE_EVENTS],
        "required": [SQLITE_EVENTS],
        "activity": [SQLITE_EVENTS, SQLITE_ACTIVITY],
        "tallies": [SQLITE_EVENTS, SQLITE_TALLIES],
        "all": [SQLITE_EVENTS, SQLITE_ACTIVITY, SQLITE_TALLIES],
    }[mode]
    preload, clock = sqlite_batches(contacts, args.preload // 500, 0, now)
    for batch in preload:
        db.execute("BEGIN IMMEDIATE")
        for sql in [SQLITE_EVENTS, SQLITE_ACTIVITY, SQLITE_TALLIES]:
            db.execute(sql, (batch, WORKSPACE.hex) if "?2" in sql else (batch,))
        db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    measured, _ = sqlite_batches(contacts, args.batches, args.preload, clock)

    stop = threading.Event()

    def checkpoint():
        checkpointer = connect()
        while not stop.wait(0.25):
            checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    checkpointer = threading.Thread(target=checkpoint)
    checkpointer.start()
    cpu, started = machine_cpu_ms(), time.perf_counter()
    for batch in measured:
        db.execute("BEGIN IMMEDIATE")
        for sql in statements:
            db.execute(sql, (batch, WORKSPACE.hex) if "?2" in sql else (batch,))
        db.execute("COMMIT")
    elapsed, cpu = time.perf_counter() - started, machine_cpu_ms() - cpu
    stop.set()
    checkpointer.join()
    db.close()
    subprocess.run(["rm", "-rf", directory], check=True)
    return args.batches * 500 / elapsed, cpu / args.batches


# --- PostgreSQL -----------------------------------------------------------------------------

PG_BATCH = """BEGIN;
CREATE TEMP TABLE IF NOT EXISTS v (id uuid, contact_id uuid, event_type text, at timestamptz, n int) ON COMMIT DELETE ROWS;
-- One event per (contact, type) in a batch, as the server's tally upsert takes them.
INSERT INTO v SELECT DISTINCT ON (c.id, s.t)
    (lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0') || substr(md5(random()::text), 1, 20))::uuid,
    c.id, s.t, clock_timestamp(), s.g
  FROM (SELECT g, (random() * :contacts)::int % :contacts AS k,
               CASE WHEN random() < 0.8 THEN 'page_viewed' ELSE 'order_completed' END AS t
        FROM generate_series(1, 510) g) s
  JOIN floor_contacts c USING (k) LIMIT 500;
INSERT INTO event (id, workspace_id, contact_id, event_type, name, occurred_at, received_at, source, channel, campaign,
    utm_source, utm_medium, utm_campaign, utm_term, utm_content, properties, message_id)
  SELECT id, '{workspace}', contact_id, event_type, 'Product', at, at, 'segment', NULL, 'spring', 'google', 'cpc', 'spring',
    NULL, NULL, jsonb_build_object('path', '/p/' || (n % 300)), md5(id::text) FROM v;
\\if :activity
UPDATE contact SET
    last_activity_at = GREATEST(COALESCE(contact.last_activity_at, x.last_at), x.last_at),
    first_seen_at = LEAST(COALESCE(contact.first_seen_at, x.first_at), x.first_at)
  FROM (SELECT contact_id, min(at) AS first_at, max(at) AS last_at FROM v GROUP BY 1 ORDER BY 1) x
  WHERE contact.id = x.contact_id
    AND (contact.last_activity_at IS NULL OR contact.last_activity_at < x.last_at
         OR contact.first_seen_at IS NULL OR contact.first_seen_at > x.first_at);
\\endif
\\if :tallies
INSERT INTO event_tally (contact_id, event_type, workspace_id, total, last_at, recent)
  SELECT contact_id, event_type, '{workspace}', 1, at, ARRAY[at] FROM v ORDER BY 1, 2
  ON CONFLICT (contact_id, event_type) DO UPDATE SET
    total = event_tally.total + excluded.total,
    last_at = GREATEST(event_tally.last_at, excluded.last_at),
    recent = CASE WHEN excluded.recent[cardinality(excluded.recent)] >= event_tally.recent[1]
      THEN (excluded.recent || event_tally.recent)[1:10]
      ELSE ARRAY(SELECT m FROM unnest(event_tally.recent || excluded.recent) AS m ORDER BY m DESC LIMIT 10) END;
\\endif
COMMIT;
"""


def run_postgres(mode, args):
    schema = "engine_floor"
    url = args.database_url

    def psql(*statements):
        command = ["psql", "-q", "-v", "ON_ERROR_STOP=1", url]
        for sql in statements:
            command += ["-c", sql]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "PGOPTIONS": "-c client_min_messages=warning"})

    psql(f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")
    migrate({"DATABASE_URL": url, "VOXTUR__DATABASE__SCHEMA": schema})
    psql(
        f"""SET search_path = {schema};
        INSERT INTO workspace (id, name, created_at) VALUES ('{WORKSPACE}', 'floor', now());
        CREATE TABLE floor_contacts (k int PRIMARY KEY, id uuid NOT NULL);
        INSERT INTO floor_contacts SELECT g, gen_random_uuid() FROM generate_series(0, {CONTACTS - 1}) g;
        INSERT INTO contact (id, workspace_id, email, lifecycle_stage, consent_email, consent_sms, consent_phone,
            consent_letter, consent_visit, dnc_email, dnc_sms, dnc_phone, dnc_letter, dnc_visit, custom_fields,
            created_at, updated_at, anonymous)
          SELECT id, '{WORKSPACE}', 'c' || k || '@example.com', 'lead', 'unknown', 'unknown', 'unknown', 'unknown',
            'unknown', false, false, false, false, false, '{{}}', now(), now(), false FROM floor_contacts;
        {"DROP INDEX event_workspace_time;" if mode == "required" else ""}
        ANALYZE"""
    )
    script = tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False)
    script.write(PG_BATCH.replace("{workspace}", str(WORKSPACE)))
    script.close()
    pgbench = next((p for p in ["/usr/lib/postgresql/15/bin/pgbench", "pgbench"] if os.path.exists(p)), "pgbench")
    options = f"options=-csearch_path%3D{schema}"
    target = url + ("&" if "?" in url else "?") + options

    def bench(activity, tallies, limit):
        command = [pgbench, "-n", "-c", str(args.clients), "-j", "2", "--max-tries=20", "-f", script.name,
                   "-D", f"activity={activity}", "-D", f"tallies={tallies}", "-D", f"contacts={CONTACTS}",
                   *limit, target]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        done = int(re.search(r"actually processed: (\d+)", output).group(1))
        failed = re.search(r"number of failed transactions: (\d+)", output)
        if failed and int(failed.group(1)):
            sys.exit(f"pgbench: {failed.group(1)} transactions failed\n{output}")
        return done

    bench(1, 1, ["-t", str(max(1, args.preload // 500 // args.clients))])
    psql("CHECKPOINT", f"SET search_path = {schema}", "VACUUM ANALYZE event, event_tally, contact")
    activity, tallies = {"events": (0, 0), "required": (0, 0), "activity": (1, 0), "tallies": (0, 1), "all": (1, 1)}[mode]
    cpu, started = machine_cpu_ms(), time.perf_counter()
    done = bench(activity, tallies, ["-T", str(args.seconds)])
    elapsed, cpu = time.perf_counter() - started, machine_cpu_ms() - cpu
    os.unlink(script.name)
    psql(f"DROP SCHEMA {schema} CASCADE")
    return done * 500 / elapsed, cpu / done


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--preload", type=int, default=150_000, help="events written before the measure")
    parser.add_argument("--batches", type=int, default=300, help="SQLite: batches measured")
    parser.add_argument("--clients", type=int, default=4, help="PostgreSQL: concurrent sessions")
    parser.add_argument("--seconds", type=int, default=15, help="PostgreSQL: length of the measure")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    for mode in args.modes.split(","):
        if mode not in MODES:
            sys.exit(f"unknown mode {mode}; one of {', '.join(MODES)}")
        run = run_sqlite if args.backend == "sqlite" else run_postgres
        rate, cpu = run(mode, args)
        print(f"{args.backend} {mode:9} {rate:9,.0f} events/s   machine CPU a batch {cpu:5.1f} ms", flush=True)


if __name__ == "__main__":
    main()
