#!/usr/bin/env python3
"""Client compatibility check: real, unmodified third-party client libraries against a Voxtur
server (see README.md). Prints one PASS/FAIL line per check; exits 1 if any check fails.

    python3 tests/clients/run.py --binary PATH [--database-url postgres://... [--schema NAME]]
        [--fuzz N] [--fuzz-seed S]
"""
import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import fuzz_graphql

HERE = Path(__file__).resolve().parent
SCREENSHOTS = HERE.parent.parent / "target" / "screenshots"
CHROMIUM = "/usr/bin/chromium"  # Debian's; playwright-core downloads no browser
FAILURES = []


def check(name, ok, detail=""):
    if not ok:
        FAILURES.append(name)
    print(f"{'PASS' if ok else 'FAIL'} {name}" + (f" ({detail})" if detail else ""), flush=True)
    return ok


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """The voxtur binary: CLI calls, and `serve` on a free port, logging to a file."""

    def __init__(self, binary, url, schema, workdir):
        self.binary, self.url, self.workdir = binary, url, workdir
        self.env = dict(os.environ, VOXTUR__LOG__FILTER="warn")
        if schema:
            self.env["VOXTUR__DATABASE__SCHEMA"] = schema
        self.proc = None
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = Path(workdir) / "server.log"

    def cli(self, *args):
        out = subprocess.run([self.binary, "--database-url", self.url, *args], env=self.env, cwd=self.workdir,
                             capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"voxtur {' '.join(args)} failed: {out.stderr.strip()}")
        return out.stdout.strip().splitlines()[-1].strip()

    def start(self):
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen([self.binary, "--database-url", self.url, "serve", "--port", str(self.port)],
                                         env=self.env, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.base}/healthz", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("server did not answer /healthz within 90 s")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class GraphQL:
    def __init__(self, base, api_key):
        self.url, self.api_key = f"{base}/graphql", api_key

    def __call__(self, query, **variables):
        body = json.dumps({"query": query, "variables": variables}).encode()
        req = urllib.request.Request(self.url, data=body, headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {self.api_key}"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                result = json.load(r)
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"GraphQL HTTP {e.code}: {e.read().decode()[:500]}") from None
        if result.get("errors"):
            raise RuntimeError(f"GraphQL errors: {json.dumps(result['errors'])[:500]}")
        return result["data"]


def plan(p):
    """The calls each library sends: (method, snake_case keyword arguments). `p` keeps ids apart."""
    a, b, anon = f"{p}-user-a", f"{p}-user-b", f"{p}-anon-a"
    return [
        ("page", dict(anonymous_id=anon, name="Landing", properties={"path": "/"})),
        ("identify", dict(user_id=a, traits={"email": f"{p}-a@example.com", "firstName": "Ada"})),
        ("track", dict(user_id=a, event="Product Viewed", properties={"sku": "X-1", "price": 9.5})),
        ("track", dict(user_id=a, event="Product Added", properties={"sku": "X-1", "quantity": 2})),
        ("track", dict(user_id=a, event="Plan Chosen", properties={"plan": "pro", "seats": 3, "tags": ["a", "b"]})),
        ("page", dict(user_id=a, name="Pricing", properties={"path": "/pricing"})),
        ("group", dict(user_id=a, group_id=f"{p}-bare-group")),
        ("alias", dict(previous_id=anon, user_id=a)),
        ("track", dict(anonymous_id=anon, event="After Alias")),
        ("identify", dict(user_id=b, traits={"email": f"{p}-b@example.com", "firstName": "Bob"})),
        ("track", dict(user_id=b, event="Signed Up", properties={"plan": "free"})),
        ("group", dict(user_id=b, group_id=f"{p}-acme",
                       traits={"name": f"{p} Acme", "website": f"https://{p}-acme.example.com"})),
    ]


def send_python(module, plan_, settings):
    """Sends with a module-level Python client (Segment's or RudderStack's); returns its errors."""
    errors = []
    for key, value in settings.items():
        setattr(module, key, value)
    module.on_error = lambda error, batch: errors.append(f"{error} ({len(batch)} messages)")
    for method, args in plan_:
        getattr(module, method)(**args)
    module.flush()
    module.shutdown()
    return errors


def send_segment_python(host, write_key, plan_):
    import segment.analytics as analytics
    return send_python(analytics, plan_, dict(write_key=write_key, host=host, gzip=True, max_retries=2))


def send_rudderstack_python(host, write_key, plan_):
    import rudderstack.analytics as rudder_analytics
    # Its defaults otherwise: gzip on, identify traits in context.traits, POST /v1/batch.
    return send_python(rudder_analytics, plan_, dict(write_key=write_key, dataPlaneUrl=host, max_retries=2))


def send_segment_node(host, write_key, plan_):
    out = subprocess.run(["node", str(HERE / "segment_node.mjs"), host, write_key], input=json.dumps(plan_),
                         capture_output=True, text=True, timeout=120, cwd=HERE)
    return [] if out.returncode == 0 else [f"exit {out.returncode}: {(out.stdout + out.stderr).strip()[-500:]}"]


CONTACT = """query($email: String!) {
  contacts(filter: {email: {eq: $email}}, first: 2) { totalCount nodes {
    id email firstName company { name domain }
    timeline(first: 100) { totalCount nodes { type name properties } } } } }"""


def verify(gql, p, plan_, errors, anon_before):
    check(f"{p}: library reported no delivery error", not errors, "; ".join(errors))
    a_email, b_email = f"{p}-a@example.com", f"{p}-b@example.com"
    ids_of_a = {f"{p}-user-a", f"{p}-anon-a"}  # the alias joins them
    # Stored as events: track, page and identify; group and alias only change profiles.
    expected = {a_email: 0, b_email: 0}
    for method, args in plan_:
        if method in ("track", "page", "identify"):
            expected[a_email if (args.get("user_id") or args["anonymous_id"]) in ids_of_a else b_email] += 1
    contacts = {}
    for email in expected:
        conn = gql(CONTACT, email=email)["contacts"]
        check(f"{p}: identify email {email} landed on one contact", conn["totalCount"] == 1,
              f"{conn['totalCount']} contacts")
        if conn["nodes"]:
            contacts[email] = conn["nodes"][0]
    if len(contacts) < 2:
        return
    a, b = contacts[a_email], contacts[b_email]
    check(f"{p}: identify traits (firstName)", (a["firstName"], b["firstName"]) == ("Ada", "Bob"),
          f"got {a['firstName']!r}, {b['firstName']!r}")
    got = {email: c["timeline"]["totalCount"] for email, c in contacts.items()}
    check(f"{p}: every track/page/identify stored as an event", got == expected,
          f"events per contact {got}, sent {expected}")
    events = {(e["type"], e["name"]): e for e in a["timeline"]["nodes"]}
    chosen = events.get(("CUSTOM", "Plan Chosen"), {}).get("properties", {})
    check(f"{p}: track properties round-trip",
          {k: chosen.get(k) for k in ("plan", "seats", "tags")} == {"plan": "pro", "seats": 3, "tags": ["a", "b"]},
          f"Plan Chosen properties {chosen}")
    check(f"{p}: standard event names map to types",
          {("PRODUCT_VIEWED", None), ("CART_UPDATED", None), ("PAGE_VIEWED", "Pricing")} <= events.keys(),
          f"types and names {sorted(map(str, events))}")
    anon_after = anonymous_contacts(gql)
    check(f"{p}: alias joins the previous (anonymous) id to the user",
          {("PAGE_VIEWED", "Landing"), ("CUSTOM", "After Alias")} <= events.keys() and anon_after == anon_before,
          f"anonymous profiles {anon_before} -> {anon_after}")
    check(f"{p}: group with traits links the contact to that company",
          b["company"] == {"name": f"{p} Acme", "domain": f"{p}-acme.example.com"}, f"company {b['company']}")
    check(f"{p}: group with only groupId links the contact to a company named by the id",
          a["company"] == {"name": f"{p}-bare-group", "domain": None}, f"company {a['company']}")


def check_wrong_key(host):
    """The error path: the server's 401 for an unknown write key reaches each library's error report."""
    import logging
    from rudderstack.analytics import Client as RudderClient
    from segment.analytics import Client as SegmentClient
    refused = [("track", dict(user_id="nobody", event="Refused"))]
    reports = {}
    for name, client_class, logger in (("segment-python", SegmentClient, "segment"),
                                       ("rudder-sdk-python", RudderClient, "rudderstack")):
        logging.getLogger(logger).setLevel(logging.CRITICAL)  # the 401 is expected; on_error has it
        errors = []
        client = client_class("wrong-key", host=host, max_retries=1,
                              on_error=lambda e, _, errors=errors: errors.append(str(e)))
        for method, args in refused:
            getattr(client, method)(**args)
        client.flush()
        client.join()
        reports[name] = errors
    reports["analytics-node"] = send_segment_node(host, "wrong-key", refused)
    check("a wrong write key: every library reports the 401", all("401" in str(r) for r in reports.values()),
          "; ".join(f"{name}: {r}" for name, r in reports.items()))


def anonymous_contacts(gql):
    return gql("{ contacts(filter: {anonymous: true}) { totalCount } }")["contacts"]["totalCount"]


def check_introspection(gql):
    import graphql
    variants = {"standard": {}, "every option": dict(specified_by_url=True, directive_is_repeatable=True,
                                                      schema_description=True, input_value_deprecation=True)}
    for label, options in variants.items():
        name = f"graphql-core: introspection ({label}) builds a client schema"
        try:
            schema = graphql.build_client_schema(gql(graphql.get_introspection_query(descriptions=True, **options)))
            sdl = graphql.print_schema(schema)
            query, mutation = schema.query_type, schema.mutation_type
            check(name, query is not None and query.name == "Query" and "contacts" in query.fields
                  and mutation is not None and mutation.name == "Mutation" and "contactCreate" in mutation.fields
                  and len(sdl) > 0, f"{len(schema.type_map)} types, {len(sdl)} characters of SDL")
        except Exception as e:  # noqa: BLE001 - a failure of the library or the server is the result
            check(name, False, f"{type(e).__name__}: {str(e)[:300]}")


FORM_CREATE = """mutation($input: FormInput!) {
  formCreate(input: $input) { form { id submitPath successMessage } userErrors { field message } } }"""
PAGE_CREATE = """mutation($input: LandingPageInput!) {
  landingPageCreate(input: $input) { landingPage { id path } userErrors { field message } } }"""
LANDING_FORM = {
    "name": "Spring offer", "successMessage": "Thanks, we will be in touch within a day.",
    "fields": [
        {"key": "email", "label": "Work e-mail", "type": "EMAIL", "mapsTo": "email", "required": True},
        {"key": "firstName", "label": "First name", "type": "TEXT", "mapsTo": "firstName", "required": True},
        {"key": "company", "label": "Company", "type": "TEXT"},
        {"key": "message", "label": "Message", "type": "TEXTAREA"},
        {"key": "interest", "label": "Interested in", "type": "SELECT",
         "options": ["Email campaigns", "Landing pages", "Analytics"]},
    ],
    "consents": [{"channel": "EMAIL", "label": "Send me product news by e-mail"}],
}


def create_landing(gql, base, workspace):
    """A form and two published pages embedding it, one with its own CSS; (form, {slug: url})."""
    made = gql(FORM_CREATE, input=LANDING_FORM)["formCreate"]
    if made["userErrors"] or not made["form"]:
        raise RuntimeError(f"formCreate: {json.dumps(made['userErrors'])}")
    urls = {}
    for slug, extra in (("spring-offer", {}), ("spring-offer-dark", {"css": "body { background: rgb(1, 2, 3); }"})):
        page = gql(PAGE_CREATE, input={
            "slug": slug, "title": "Spring offer", "formId": made["form"]["id"], "published": True,
            "bodyHtml": "<h1>Spring offer</h1><p>Leave your details and we will get back to you within a day.</p>",
            **extra})["landingPageCreate"]
        if page["userErrors"] or not page["landingPage"]:
            raise RuntimeError(f"landingPageCreate ({slug}): {json.dumps(page['userErrors'])}")
        path = f"/p/{workspace}/{slug}"
        if page["landingPage"]["path"] != path:
            raise RuntimeError(f"landingPage.path is {page['landingPage']['path']!r}, not {path!r}")
        urls[slug] = base + path
    return made["form"], urls


def post_json(url, body):
    """A JSON client's submission: (status, content type, parsed body or the text)."""
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={
        "Content-Type": "application/json", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, ctype, raw = r.status, r.headers.get_content_type(), r.read()
    except urllib.error.HTTPError as e:
        status, ctype, raw = e.code, e.headers.get_content_type(), e.read()
    try:
        return status, ctype, json.loads(raw)
    except ValueError:
        return status, ctype, raw.decode(errors="replace")[:200]


def contact_first_name(gql, email):
    found = gql("query($email: String!) { contacts(filter: {email: {eq: $email}}, first: 2) "
                "{ totalCount nodes { firstName } } }", email=email)["contacts"]
    return found["totalCount"], [c["firstName"] for c in found["nodes"]]


def check_browser(server, gql, workspace, api_key):
    """GraphiQL offline and a landing page's form, in headless Chromium (browser.mjs)."""
    if not os.access(CHROMIUM, os.X_OK):
        check(f"browser checks: {CHROMIUM}", False, "missing; install it: apt-get update && apt-get install -y chromium")
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    email, first_name = f"browser-{os.getpid()}@example.com", "Grace"
    landing = form = None
    try:
        form, urls = create_landing(gql, server.base, workspace)
        landing = dict(url=urls["spring-offer"], cssUrl=urls["spring-offer-dark"], email=email, firstName=first_name,
                       successMessage=LANDING_FORM["successMessage"])
        check("landing page: form and pages created", True, ", ".join(urls.values()))
    except Exception as e:  # noqa: BLE001 - the GraphiQL checks run anyway
        check("landing page: form and pages created", False, f"{type(e).__name__}: {str(e)[:300]}")
    spec = dict(base=server.base, screenshots=str(SCREENSHOTS), graphiql=dict(apiKey=api_key), landing=landing)
    t0 = time.monotonic()
    out = subprocess.run(["node", str(HERE / "browser.mjs")], input=json.dumps(spec), capture_output=True, text=True,
                         timeout=180, cwd=HERE)
    try:
        report = json.loads(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        check("browser.mjs ran", False, f"exit {out.returncode}: {(out.stdout + out.stderr).strip()[-800:]}")
        return
    print(f"---- browser: {len(report['checks'])} checks in {time.monotonic() - t0:.1f} s", flush=True)
    for name, ok, detail in report["checks"]:
        check(name, ok, detail)
    for path in report["screenshots"]:
        print(f"---- screenshot: {os.path.relpath(path, HERE.parent.parent)}", flush=True)
    if not form:
        return
    count, names = contact_first_name(gql, email)
    check("browser submit, valid: the contact exists with its first name", count == 1 and names == [first_name],
          f"{count} contact(s) with {email}, first names {names}")
    submit_url = server.base + form["submitPath"]
    for label, body, want in (("invalid", {"email": "not-an-email", "firstName": "Json"}, (422, False)),
                              ("valid", {"email": f"json-{email}", "firstName": "Json"}, (200, True))):
        status, ctype, answer = post_json(submit_url, body)
        check(f"JSON client, {label} submission: JSON back with success {str(want[1]).lower()}",
              (status, ctype) == (want[0], "application/json") and isinstance(answer, dict)
              and answer.get("success") is want[1], f"{status} {ctype} {json.dumps(answer)[:200]}")


def psql(url, sql):
    command = ["psql", url, "-v", "ON_ERROR_STOP=1", "-qc", f"SET client_min_messages = warning; {sql}"]
    return subprocess.run(command, timeout=60).returncode == 0


def main():
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--binary", required=True, help="the voxtur binary")
    args.add_argument("--database-url", help="PostgreSQL URL (default: SQLite in a temporary directory)")
    args.add_argument("--schema", help="PostgreSQL schema to create and drop (default: clients_<pid>)")
    args.add_argument("--fuzz", type=int, default=300, metavar="N", help="GraphQL fuzz operations (0: none)")
    args.add_argument("--fuzz-seed", type=int, metavar="S", help="the fuzz run's seed (default: a new one, printed)")
    opts = args.parse_args()
    started = time.monotonic()
    url, schema = opts.database_url, None
    if url and url.startswith("postgres"):
        schema = opts.schema or f"clients_{os.getpid()}"
        if not psql(url, f'CREATE SCHEMA "{schema}"'):  # never drop a schema this run did not make
            sys.exit(f"could not create schema {schema!r} (does it exist already?)")
    workdir = tempfile.mkdtemp(prefix="voxtur-clients-")
    if not url:
        url = f"sqlite://{workdir}/voxtur.db?mode=rwc"
    server = Server(os.path.abspath(opts.binary), url, schema, workdir)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        workspace = server.cli("workspace", "create", "client-compat")
        scopes = "contacts:read,contacts:write,analytics:read,workspace:admin,campaigns:read,campaigns:write"
        api_key = server.cli("api-key", "create", "--workspace", workspace, "--scopes", scopes)
        server.start()
        gql = GraphQL(server.base, api_key)
        created = gql('mutation { writeKeyCreate(name: "sdk") { secret writeKey { id } userErrors { message } } }')
        created = created["writeKeyCreate"]
        if not check("writeKeyCreate returns a secret", bool(created["secret"]) and not created["userErrors"],
                     json.dumps(created["userErrors"])):
            raise RuntimeError("no write key to send with")
        write_key = created["secret"]
        libraries = [("seg-py", send_segment_python), ("rs-py", send_rudderstack_python),
                     ("seg-node", send_segment_node)]
        for prefix, send in libraries:
            calls, anon_before, t0 = plan(prefix), anonymous_contacts(gql), time.monotonic()
            errors = send(server.base, write_key, calls)
            print(f"---- {prefix}: sent {len(calls)} calls in {time.monotonic() - t0:.1f} s", flush=True)
            verify(gql, prefix, calls, errors, anon_before)
        check_wrong_key(server.base)
        check_introspection(gql)
        check_browser(server, gql, workspace, api_key)
        if opts.fuzz > 0:
            seed = opts.fuzz_seed if opts.fuzz_seed is not None else random.SystemRandom().randrange(10**6)
            fuzz_graphql.run(server.base, api_key, seed, opts.fuzz, check)
    except Exception as e:  # noqa: BLE001 - report, then stop the server
        check("run completed", False, f"{type(e).__name__}: {e}")
    finally:
        server.stop()
        if schema:
            psql(url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        if FAILURES and server.log.exists() and server.log.stat().st_size:
            print(f"server log (last lines):\n{server.log.read_text()[-2000:]}")
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{'FAILED' if FAILURES else 'OK'}: {len(FAILURES)} failing check(s) in {time.monotonic() - started:.0f} s")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
