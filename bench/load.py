#!/usr/bin/env python3
"""Load harness: generates a workspace, starts the real server on it and drives it over HTTP with
wrk, scenario by scenario; optionally serves the same reads with PostGraphile on the same database
and reports the ratio. See BENCHMARKS.md for the recorded figures.

    cargo build --release
    python3 bench/load.py --contacts 1000000 --events-per-contact 10 --concurrency 16 --duration 3 --rounds 10 --peer

Needs wrk (Debian: apt-get install wrk) and, for --peer, Node.js (`npm ci` in bench/peer is run
for you). Standard library only.
"""

import argparse
import base64
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STATE_DIR = os.path.join(ROOT, "target", "bench-load")

LIST = ("{ contacts(first: 50, filter: {lifecycleStage: {eq: LEAD}}, orderBy: [{createdAt: DESC}]) "
        "{ nodes { id email firstName lastName company { name } owner { name } } pageInfo { endCursor hasNextPage } } }")
TIMELINE = ("query($id: ID!) { node(id: $id) { ... on Contact { id email "
            "timeline(first: 20) { nodes { type name occurredAt } } } } }")
UPSERT = "mutation($i: [ContactUpsertInput!]!) { contactsUpsert(inputs: $i) { createdCount updatedCount userErrors { code } } }"

# The same questions in PostGraphile's generated schema. It has no tenancy, so the workspace is a
# condition; relations are named after their foreign keys.
PEER_LIST = ("{ allContacts(first: 50, condition: {workspaceId: \"%s\", lifecycleStage: \"lead\"}, orderBy: CREATED_AT_DESC) "
             "{ nodes { id email firstName lastName companyByCompanyId { name } appUserByOwnerId { name } } "
             "pageInfo { endCursor hasNextPage } } }")
PEER_TIMELINE = ("query($id: UUID!) { contactById(id: $id) { id email "
                 "eventsByContactId(first: 20, orderBy: OCCURRED_AT_DESC) { nodes { eventType name occurredAt } } } }")

# wrk scripts. Every response is checked: a non-2xx status or a GraphQL `errors` member counts as
# an error, and the harness fails when there is any.
LUA_COMMON = r"""
errors = 0
local threads = {}
function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end
function init(args)
  errors = 0
  counter = 0
  math.randomseed(tid * 7919)
end
function response(status, headers, body)
  if status < 200 or status > 299 or string.find(body, '"errors"', 1, true) then
    errors = errors + 1
    if errors == 1 then io.stderr:write("first error: " .. status .. " " .. string.sub(body, 1, 300) .. "\n") end
  end
end
function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("errors") end
  io.write(string.format("ERRORS %d\n", total))
end
local function jstr(s) return '"' .. string.gsub(s, '(["\\])', '\\%1') .. '"' end
"""

LUA_DELAY = r"""
function delay()
  return DELAY_MS * (0.5 + math.random())
end
"""


def lua_static(body, headers):
    return LUA_COMMON + f"""
wrk.method = "POST"
wrk.body = {lua_quote(body)}
{lua_headers(headers)}
"""


def lua_timeline(ids, headers, peer):
    id_list = ", ".join(lua_quote(i) for i in ids)
    query = PEER_TIMELINE if peer else TIMELINE
    return LUA_COMMON + f"""
wrk.method = "POST"
{lua_headers(headers)}
local ids = {{ {id_list} }}
local query = {lua_quote(query)}
function request()
  local id = ids[math.random(#ids)]
  return wrk.format(nil, nil, nil, '{{"query":' .. jstr(query) .. ',"variables":{{"id":"' .. id .. '"}}}}')
end
"""


def lua_upsert(headers):
    return LUA_COMMON + f"""
wrk.method = "POST"
{lua_headers(headers)}
local query = {lua_quote(UPSERT)}
local stages = {{ "LEAD", "SUBSCRIBER", "MARKETING_QUALIFIED" }}
function request()
  local items = {{}}
  for i = 1, 100 do
    -- A pool of 50,000 addresses: early calls create, later calls mostly update.
    local n = math.random(50000)
    items[i] = '{{"email":"load' .. n .. '@upsert.example","firstName":"Load' .. math.random(1000) ..
      '","lifecycleStage":"' .. stages[math.random(3)] .. '","tags":["load-test"]}}'
  end
  return wrk.format(nil, nil, nil, '{{"query":' .. jstr(query) .. ',"variables":{{"i":[' .. table.concat(items, ",") .. ']}}}}')
end
"""


def lua_ingest(headers, pool="load"):
    # The journey bench's mix: 78% page views by returning anonymous visitors, 20% tracks by known
    # users, 2% identify calls that stitch a visitor to a user. Message ids never repeat, across
    # runs too (a repeated id is acknowledged and skipped, which is cheaper than storing it).
    # Visitors and users are named within `pool`: a new pool starts with none of them known.
    run = uuid.uuid4().hex[:12]
    return LUA_COMMON + f"""
wrk.method = "POST"
{lua_headers(headers)}
function request()
  counter = counter + 1
  local items = {{}}
  for i = 1, 500 do
    local n = math.random(1000000)
    local id = '"messageId":"{run}-' .. tid .. '-' .. counter .. '-' .. i .. '","timestamp":"' .. os.date("!%Y-%m-%dT%H:%M:%SZ") .. '"'
    if n % 50 == 0 then
      items[i] = '{{"type":"identify","userId":"{pool}-user-' .. (n % 20000) .. '","anonymousId":"{pool}-anon-' .. (n % 50000) ..
        '","traits":{{"email":"{pool}-person' .. (n % 20000) .. '@load.example"}},' .. id .. '}}'
    elseif n % 5 == 0 then
      items[i] = '{{"type":"track","userId":"{pool}-user-' .. (n % 20000) .. '","event":"Order Completed","properties":{{"total":' .. (n % 500) .. '}},' .. id .. '}}'
    else
      items[i] = '{{"type":"page","anonymousId":"{pool}-anon-' .. (n % 50000) .. '","name":"Product","properties":{{"path":"/p/' .. (n % 300) ..
        '"}},"context":{{"campaign":{{"source":"google","medium":"cpc","name":"spring"}}}},' .. id .. '}}'
    end
  end
  return wrk.format(nil, nil, nil, '{{"batch":[' .. table.concat(items, ",") .. ']}}')
end
"""


def lua_quote(text):
    return "[==[" + text + "]==]"


def lua_headers(headers):
    return "\n".join(f"wrk.headers[ {lua_quote(k)} ] = {lua_quote(v)}" for k, v in headers.items())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid, field="VmRSS"):
    """Resident memory of a process and its children, in KiB."""
    total = 0
    for p in [pid] + children(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def children(pid):
    out = []
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            for child in f.read().split():
                out.append(int(child))
                out.extend(children(int(child)))
    except FileNotFoundError:
        pass
    return out


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """CPU time (user and system) used so far by a process and its children, and by every
    PostgreSQL process: the application's side and the database's side of a request."""
    def ticks(p):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return int(fields[11]) + int(fields[12])
        except (FileNotFoundError, ProcessLookupError):
            return 0
    app = sum(ticks(p) for p in [pid] + children(pid))
    postgres = 0
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/comm") as f:
                    if f.read().strip() == "postgres":
                        postgres += ticks(p)
            except (FileNotFoundError, ProcessLookupError):
                pass
    return app / CLOCK_TICKS, postgres / CLOCK_TICKS


def post(url, body, headers):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"content-type": "application/json", **headers})
    with urllib.request.urlopen(request, timeout=60) as response:
        data = json.loads(response.read())
    if data.get("errors"):
        sys.exit(f"error from {url}: {json.dumps(data['errors'])[:500]}")
    return data["data"]


def wait_ready(url, process, timeout=60.0):
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            sys.exit(f"server exited with {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except Exception:
            time.sleep(0.002)
    sys.exit(f"{url} not ready after {timeout} s")


def run(cmd, env=None, capture=True):
    result = subprocess.run(cmd, env=env, capture_output=capture, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout


def wrk(args, url, script, workdir, delay_ms=None, pid=None):
    path = os.path.join(workdir, "scenario.lua")
    if delay_ms is not None:
        script += LUA_DELAY.replace("DELAY_MS", f"{delay_ms:.3f}")
    with open(path, "w") as f:
        f.write(script)
    threads = min(args.threads, args.concurrency)
    before = cpu_seconds(pid) if pid else None
    result = subprocess.run(["wrk", "-t", str(threads), "-c", str(args.concurrency), "-d", f"{args.duration}s",
                             "--timeout", "30s", "--latency", "-s", path, url], capture_output=True, text=True)
    out = result.stdout
    if result.returncode != 0 or "ERRORS" not in out:
        sys.exit(f"wrk failed ({result.returncode}):\n{out}\n{result.stderr}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    errors = int(re.search(r"ERRORS (\d+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    socket_errors = re.search(r"Socket errors: (.*)", out)
    if errors or socket_errors or requests == 0:
        sys.exit(f"scenario had errors ({errors} bad responses, {socket_errors.group(1) if socket_errors else 'no socket errors'}, "
                 f"{requests} requests):\n{out}\n{result.stderr}")
    out = {"rps": rps, "p50_ms": to_ms(latency["50"]), "p99_ms": to_ms(latency["99"]), "requests": requests}
    if before:
        after = cpu_seconds(pid)
        out["app_cpu_s"], out["postgres_cpu_s"] = after[0] - before[0], after[1] - before[1]
    return out


def to_ms(text):
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def dataset(args, env):
    """Generates the workspace, or reuses the last one generated with the same parameters."""
    os.makedirs(STATE_DIR, exist_ok=True)
    params = {"backend": args.backend, "contacts": args.contacts, "events_per_contact": args.events_per_contact,
              "seed": args.seed, "schema": args.schema, "database_url": args.database_url}
    state_path = os.path.join(STATE_DIR, f"{args.backend}-{args.schema}.json")
    if args.reuse and os.path.exists(state_path):
        with open(state_path) as f:
            state = json.load(f)
        if state["params"] != params:
            sys.exit(f"--reuse: the stored dataset was made with {state['params']}, not {params}; "
                     "pass the same options, or drop --reuse to generate anew")
        print(f"dataset: reusing {state['summary']['contacts']} contacts, {state['summary']['events']} events")
        return state["summary"]
    if args.backend == "postgres":
        run(["psql", args.database_url, "-qc", f"DROP SCHEMA IF EXISTS {args.schema} CASCADE; CREATE SCHEMA {args.schema}"])
    elif os.path.exists(args.sqlite_path):
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(args.sqlite_path + suffix):
                os.remove(args.sqlite_path + suffix)
    run([args.binary, "migrate"], env)
    started = time.monotonic()
    out = run([args.binary, "demo", "generate", "--json", "--contacts", str(args.contacts),
               "--events-per-contact", str(args.events_per_contact), "--seed", str(args.seed), "--name", "Load"], env)
    summary = json.loads(out.strip().splitlines()[-1])
    print(f"dataset: generated {summary['contacts']} contacts, {summary['companies']} companies, "
          f"{summary['events']} events in {time.monotonic() - started:.1f} s (busiest contact: {summary['busiest_contact_events']} events)")
    with open(state_path, "w") as f:
        json.dump({"params": params, "summary": summary}, f)
    return summary


def stop(process):
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--schema", default="voxtur_load", help="PostgreSQL schema holding the dataset")
    parser.add_argument("--sqlite-path", default=os.path.join(STATE_DIR, "load.db"))
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--events-per-contact", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reuse", action="store_true", help="reuse the dataset of an earlier run with the same parameters")
    parser.add_argument("--concurrency", type=int, default=32, help="open connections")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--duration", type=int, default=20, help="seconds per scenario")
    parser.add_argument("--scenarios", default="contacts_list,contact_timeline,contacts_upsert,ingest_batch")
    parser.add_argument("--half-load", action="store_true", help="also run contacts_list at half its saturated throughput")
    parser.add_argument("--peer", action="store_true", help="also serve the reads with PostGraphile (PostgreSQL only)")
    parser.add_argument("--warm-up", type=int, default=15,
                        help="seconds of unmeasured load on each side before a side-by-side scenario")
    parser.add_argument("--rounds", type=int, default=1,
                        help="with --peer: run each read scenario this many times on each, in turns")
    parser.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "voxtur"))
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    if not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install wrk")
    if not os.path.exists(args.binary):
        sys.exit(f"{args.binary} not found: cargo build --release (or pass --binary)")
    if args.peer and args.backend != "postgres":
        sys.exit("--peer needs --backend postgres")

    # The harness measures the server at full speed from one key; the per-key cost bucket (a
    # production guard) would meter it instead.
    env = dict(os.environ, VOXTUR__LOG__FILTER="warn", VOXTUR__LIMITS__QUERY_COST_PER_SECOND="0",
               VOXTUR__LIMITS__TRACKING_CALLS_PER_MINUTE="0")
    env.pop("DATABASE_URL", None)
    if args.backend == "postgres":
        env.update(VOXTUR__DATABASE__URL=args.database_url, VOXTUR__DATABASE__SCHEMA=args.schema)
    else:
        os.makedirs(os.path.dirname(args.sqlite_path), exist_ok=True)
        env.update(VOXTUR__DATABASE__URL=f"sqlite://{args.sqlite_path}?mode=rwc")
    summary = dataset(args, env)
    results = {"machine": machine(), "args": vars(args), "dataset": {k: v for k, v in summary.items() if not k.endswith("_key")},
               "scenarios": {}, "peer": {}}

    workdir = tempfile.mkdtemp(prefix="voxtur-load-")
    peer = start_peer(args, summary) if args.peer else None
    if peer:
        results["peer"]["idle_rss_mib"] = peer["idle_rss_mib"]

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server_log = open(os.path.join(workdir, "server.log"), "w")
    server = subprocess.Popen([args.binary, "serve", "--port", str(port)], env=env, stdout=server_log, stderr=subprocess.STDOUT)
    try:
        startup = wait_ready(f"{base}/readyz", server)
        time.sleep(2)
        results["server"] = {"startup_ms": round(startup * 1000, 1), "idle_rss_mib": round(rss_kib(server.pid) / 1024, 1)}
        print(f"server: ready in {startup * 1000:.0f} ms, idle RSS {results['server']['idle_rss_mib']} MiB")
        auth = {"Authorization": f"Bearer {summary['api_key']}", "Content-Type": "application/json"}
        ids = contact_ids(base, auth)
        scenarios = {
            "contacts_list": ("/graphql", lambda: lua_static(json.dumps({"query": LIST}), auth)),
            "contact_timeline": ("/graphql", lambda: lua_timeline(ids, auth, peer=False)),
            "contacts_upsert": ("/graphql", lambda: lua_upsert(auth)),
            "ingest_batch": ("/v1/batch", lambda: lua_ingest({
                "Authorization": "Basic " + base64.b64encode(f"{summary['write_key']}:".encode()).decode(),
                "Content-Type": "application/json"})),
        }
        for name in args.scenarios.split(","):
            path, script = scenarios[name]

            def ours(warm=False):
                if warm:
                    return wrk(warm_up(args), base + path, script(), workdir)
                result = wrk(args, base + path, script(), workdir, pid=server.pid)
                result["peak_rss_mib"] = round(rss_kib(server.pid, "VmHWM") / 1024, 1)
                return result

            if peer and name in peer["scripts"]:
                result, theirs = side_by_side(args, name, ours, peer, workdir)
                results["peer"][name] = theirs
                report(f"peer {name}", theirs)
            else:
                result = ours()
            results["scenarios"][name] = result
            report(name, result)
            if peer and name in peer["scripts"]:
                print(f"{name}: Voxtur / PostGraphile throughput = {theirs['voxtur_ratio']:.2f}x "
                      f"(by round: {', '.join(f'{r:.2f}x ({v:.0f}/{p:.0f})' for r, (v, p) in zip(theirs['round_ratios'], theirs['round_rps']))}); "
                      f"PostGraphile / Voxtur CPU a request = {theirs['cpu_ratio']:.2f}x", flush=True)
            if name == "contacts_list" and args.half_load:
                # Each connection waits between requests so the whole runs at about half the rate:
                # a connection's cycle is its wait plus the latency, and the latency at half load
                # is not the saturated one, so a first paced run measures it and a second keeps
                # the pace with it.
                cycle_ms = args.concurrency / (result["rps"] / 2) * 1000
                half = wrk(args, base + path, script(), workdir, delay_ms=max(cycle_ms - result["p50_ms"], 0))
                half = wrk(args, base + path, script(), workdir, delay_ms=max(cycle_ms - half["p50_ms"], 0))
                results["scenarios"]["contacts_list_half_load"] = half
                report("contacts_list_half_load", half)
    except SystemExit:
        stop(server)
        server_log.close()
        with open(server_log.name) as f:
            errors = [line for line in f if "ERROR" in line or "WARN" in line]
        print("server log (warnings and errors, last 20):\n" + "".join(errors[-20:])[-6000:], file=sys.stderr)
        raise
    finally:
        stop(server)
        server_log.close()
        if peer:
            stop(peer["process"])

    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    shutil.rmtree(workdir, ignore_errors=True)


def contact_ids(base, auth):
    """A spread of contacts for the timeline scenario: the newest and the oldest (the busiest)."""
    query = "query($o: [ContactOrderBy!]) { contacts(first: 100, orderBy: $o) { nodes { id } } }"
    out = []
    for order in ("DESC", "ASC"):
        data = post(f"{base}/graphql", {"query": query, "variables": {"o": [{"createdAt": order}]}}, auth)
        out.extend(node["id"] for node in data["contacts"]["nodes"])
    if not out:
        sys.exit("the dataset has no contacts")
    return out


def start_peer(args, summary):
    """Starts PostGraphile on the dataset; returns it with its scripts for the read scenarios."""
    peer_dir = os.path.join(ROOT, "bench", "peer")
    if not os.path.exists(os.path.join(peer_dir, "node_modules", ".bin", "postgraphile")):
        run(["npm", "ci", "--no-audit", "--no-fund", "--prefix", peer_dir])
    # A read-only role: PostGraphile sees the tables and can change nothing. Events carry no
    # foreign key to their contact on PostgreSQL (migration m20261202_000006), so PostGraphile
    # gets the relation from a smart comment instead.
    run(["psql", args.database_url, "-qc",
         "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'voxtur_peer') THEN CREATE ROLE voxtur_peer LOGIN; END IF; END $$; "
         f"GRANT USAGE ON SCHEMA {args.schema} TO voxtur_peer; GRANT SELECT ON ALL TABLES IN SCHEMA {args.schema} TO voxtur_peer; "
         f"COMMENT ON TABLE {args.schema}.event IS E'@foreignKey (contact_id) references {args.schema}.contact (id)'"])
    url = re.sub(r"//[^@/]*@", "//voxtur_peer@", args.database_url)
    if "@" not in url:
        url = url.replace("//", "//voxtur_peer@", 1)
    port = free_port()
    process = subprocess.Popen(
        ["node", os.path.join(peer_dir, "node_modules", ".bin", "postgraphile"), "-c", url, "--schema", args.schema,
         "--host", "127.0.0.1", "--port", str(port), "--disable-query-log", "--disable-default-mutations",
         "--cluster-workers", str(os.cpu_count())],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=dict(os.environ, NODE_ENV="production"))
    try:
        base = f"http://127.0.0.1:{port}"
        started = time.monotonic()
        while True:
            if process.poll() is not None:
                sys.exit(f"PostGraphile exited: {process.stderr.read()[-2000:]}")
            try:
                post(f"{base}/graphql", {"query": "{ __typename }"}, {})
                break
            except Exception:
                if time.monotonic() - started > 120:
                    sys.exit("PostGraphile did not start")
                time.sleep(0.2)
        headers = {"Content-Type": "application/json"}
        ids = run(["psql", args.database_url, "-Atc",
                   f"(SELECT id FROM {args.schema}.contact WHERE workspace_id = '{summary['workspace_id']}' ORDER BY created_at DESC LIMIT 100) "
                   f"UNION ALL (SELECT id FROM {args.schema}.contact WHERE workspace_id = '{summary['workspace_id']}' ORDER BY created_at LIMIT 100)"]).split()
        list_query = PEER_LIST % summary["workspace_id"]
        post(f"{base}/graphql", {"query": list_query}, headers)
        time.sleep(1)
        idle = round(rss_kib(process.pid) / 1024, 1)
    except BaseException:
        stop(process)
        raise
    print(f"peer: PostGraphile ready, idle RSS {idle} MiB")
    return {"process": process, "url": f"{base}/graphql", "idle_rss_mib": idle,
            "scripts": {"contacts_list": lua_static(json.dumps({"query": list_query}), headers),
                        "contact_timeline": lua_timeline(ids, headers, peer=True)}}


def side_by_side(args, name, ours, peer, workdir):
    """Runs a read scenario on Voxtur and on the peer in turns, `--rounds` slices each, so both
    meet the same phases of a shared machine. Throughput is over all slices; p50 and p99 are the
    medians of the slices'."""
    slices = {"voxtur": [], "peer": []}
    # One unmeasured slice each first: PostGraphile runs on V8, which keeps compiling its hot
    # paths for the first ten seconds or so of load (unwarmed, or warmed for 6 s, its first
    # round ran at about two thirds of its later ones), and both sides fill their caches
    # (parsed queries, prepared statements, plans).
    if args.warm_up > 0:
        wrk(warm_up(args), peer["url"], peer["scripts"][name], workdir)
        ours(warm=True)
    for _ in range(args.rounds):
        result = wrk(args, peer["url"], peer["scripts"][name], workdir, pid=peer["process"].pid)
        result["peak_rss_mib"] = round(rss_kib(peer["process"].pid, "VmHWM") / 1024, 1)
        slices["peer"].append(result)
        slices["voxtur"].append(ours())
    combined = {side: combine(results) for side, results in slices.items()}
    combined["peer"]["voxtur_ratio"] = round(combined["voxtur"]["rps"] / combined["peer"]["rps"], 2)
    combined["peer"]["round_ratios"] = [round(v["rps"] / p["rps"], 2) for v, p in zip(slices["voxtur"], slices["peer"])]
    combined["peer"]["round_rps"] = [(v["rps"], p["rps"]) for v, p in zip(slices["voxtur"], slices["peer"])]
    # Throughput follows the machine's phase; CPU a request much less. Its inverse ratio is what
    # the throughput ratio would be on a quiet machine where both are CPU-bound.
    combined["peer"]["cpu_ratio"] = round(cpu_ms(combined["peer"]) / cpu_ms(combined["voxtur"]), 2)
    return combined["voxtur"], combined["peer"]


def warm_up(args):
    """The arguments of an unmeasured warm-up slice."""
    return argparse.Namespace(**{**vars(args), "duration": args.warm_up})


def combine(results):
    seconds = sum(r["requests"] / r["rps"] for r in results)
    requests = sum(r["requests"] for r in results)
    out = {"rps": round(requests / seconds, 1), "requests": requests,
           "p50_ms": statistics.median(r["p50_ms"] for r in results),
           "p99_ms": statistics.median(r["p99_ms"] for r in results)}
    if any("peak_rss_mib" in r for r in results):
        out["peak_rss_mib"] = max(r.get("peak_rss_mib", 0) for r in results)
    for side in ("app_cpu_s", "postgres_cpu_s"):
        if all(side in r for r in results):
            out[side.replace("_s", "_ms_per_request")] = round(sum(r[side] for r in results) * 1000 / requests, 3)
    return out


def cpu_ms(result):
    """CPU a request, the application's and PostgreSQL's, in ms."""
    return result["app_cpu_ms_per_request"] + result["postgres_cpu_ms_per_request"]


def report(name, result):
    rss = f", peak RSS {result['peak_rss_mib']} MiB" if "peak_rss_mib" in result else ""
    cpu = ""
    if "app_cpu_ms_per_request" in result:
        cpu = (f"  CPU/request {cpu_ms(result):.3f} ms (app {result['app_cpu_ms_per_request']:.3f}"
               f" + PostgreSQL {result['postgres_cpu_ms_per_request']:.3f})")
    print(f"{name:>28}: {result['rps']:9.1f} req/s  p50 {result['p50_ms']:7.2f} ms  p99 {result['p99_ms']:7.2f} ms"
          f"  ({result['requests']} requests{rss}){cpu}", flush=True)


def machine():
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cores": os.cpu_count(), "memory_gib": round(mem_kib / 1024 / 1024, 1), "cpu": model}


if __name__ == "__main__":
    main()
