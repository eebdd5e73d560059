#!/usr/bin/env python3
"""Instructions the server spends per request of a read scenario, counted by callgrind.

Throughput on a shared 2-core machine moves by 10-20% from one minute to the next, more than
most single changes to the server. Instruction counts do not: for the same binary, dataset and
requests they repeat to a few parts in ten thousand. This runs each binary under
`valgrind --tool=callgrind` on the load harness's dataset (run `bench/load.py` once first), sends
the harness's query for the scenario (`list`: the contacts list; `timeline`: a contact and its
first 20 events, over the harness's spread of contacts) `--warm` times and then `--warm +
--requests` times in a second run, and reports the difference per request: start-up and warm-up
cancel out.

    python3 bench/instructions.py target/release/voxtur /tmp/voxtur-before [--scenario timeline]

Counts user-space instructions only: system calls (the kernel's side of a syscall) and time spent
waiting do not show. PostgreSQL's side is not counted either. Standard library only.
"""

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# The harness's own queries, so both measure the same thing.
from load import LIST, TIMELINE, contact_ids  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def instructions(binary, requests, args, api_key):
    """Total instructions of one server run that answers `requests` list queries."""
    out = tempfile.NamedTemporaryFile(prefix="callgrind.", delete=False).name
    env = dict(
        os.environ,
        VOXTUR__LOG__FILTER="warn",
        VOXTUR__DATABASE__URL=args.database_url,
        VOXTUR__DATABASE__SCHEMA=args.schema,
    )
    server = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", binary, "serve", "--port", str(args.port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(600):
            try:
                probe = http.client.HTTPConnection("127.0.0.1", args.port, timeout=5)
                probe.request("GET", "/healthz")
                probe.getresponse().read()
                break
            except OSError:
                time.sleep(0.1)
        else:
            sys.exit(f"{binary} did not start under valgrind")
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"}
        if args.scenario == "list":
            bodies = [json.dumps({"query": LIST})]
        else:
            ids = contact_ids(f"http://127.0.0.1:{args.port}", {"Authorization": headers["Authorization"]})
            bodies = [json.dumps({"query": TIMELINE, "variables": {"id": id}}) for id in ids]
        connection = http.client.HTTPConnection("127.0.0.1", args.port, timeout=60)
        for n in range(requests):
            connection.request("POST", "/graphql", bodies[n % len(bodies)], headers)
            response = connection.getresponse()
            data = response.read()
            if response.status != 200 or b'"errors"' in data:
                sys.exit(f"{binary}: the {args.scenario} query failed: {data[:300]!r}")
    finally:
        server.send_signal(signal.SIGINT)
        server.wait()
    with open(out) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                os.unlink(out)
                return int(line.split()[1])
    sys.exit(f"no totals in {out}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("binaries", nargs="+")
    parser.add_argument("--scenario", choices=["list", "timeline"], default="list")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warm", type=int, default=20)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/test")
    parser.add_argument("--schema", default="voxtur_load")
    parser.add_argument("--port", type=int, default=18090)
    args = parser.parse_args()
    summary = os.path.join(ROOT, "target", "bench-load", f"postgres-{args.schema}.json")
    try:
        api_key = json.load(open(summary))["summary"]["api_key"]
    except OSError:
        sys.exit(f"no dataset summary at {summary}: run bench/load.py first")
    first = None
    for binary in args.binaries:
        low = instructions(binary, args.warm, args, api_key)
        high = instructions(binary, args.warm + args.requests, args, api_key)
        per_request = (high - low) / args.requests
        first = first or per_request
        print(f"{binary}: {per_request:,.0f} instructions per {args.scenario} request ({per_request / first:.3f}x the first)")


if __name__ == "__main__":
    main()
