"""GraphQL fuzz smoke run (see README.md): random but valid operations built from the server's own
introspection, hostile argument values passed as variables. No answer may be a 5xx, not JSON, an
INTERNAL error or carry database or panic text. Called by run.py after its other checks:

    fuzz_graphql.run(base_url, api_key, seed, count, check)
"""
import base64
import json
import random
import re
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter

import graphql
from graphql import (GraphQLEnumType, GraphQLInputObjectType, GraphQLList, GraphQLNonNull, Undefined,
                     get_named_type, is_abstract_type, is_leaf_type)

# Text no answer may hold, compared lower-case: SQL types, engines and errors, panics.
LEAKS = ("varchar", "character varying", "sqlite", "sqlstate", "violates", "constraint", " at line ",
         "panicked", "syntax error at")
REFUSALS = {400, 413, 429}  # bad input, too large, throttled: fine with a GraphQL error body
MAX_DEPTH = 4  # levels of fields, the root field being 1
GLOBAL_ID = re.compile(r"[A-Za-z]+:[0-9a-f-]{36}")
NUL = "\u0000"  # the server refuses a whole request holding one (400), so it is drawn rarely

STRINGS = ["", "ünïcødé ✓ 𝄞 עברית 中文 \u202e", "x" * 5000, "'; DROP TABLE contact;--", "%_\\",
           '=HYPERLINK("x")', "fuzz@example.com", "fuzz", "fuzz", "https://example.com/p?q=1&r=<b>", "  padded  ", "0"]
INTS = [0, -1, 2**31 - 1, -2**31, 1, 2, 3, 5, 20, 100]
FLOATS = [0.0, -0.0, 1e308, -1e308, 5e-324, 0.5, -2.25, 100.0]
DATES = ["2024-05-01T12:30:00Z", "2024-05-01T12:30:00.123456+02:00", "0001-01-01T00:00:00Z",
         "9999-12-31T23:59:59Z", "1970-01-01T00:00:00-23:59"]
BAD_DATES = ["2024-02-30T00:00:00Z", "yesterday", "", "2024-05-01", "+275760-09-13T00:00:00Z"]


def b64(text):
    return base64.urlsafe_b64encode(text.encode() if isinstance(text, str) else text).decode().rstrip("=")


def post(url, api_key, payload):
    """(HTTP status or None, body bytes or the connection error's text)."""
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {api_key}"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError as e:  # refused, reset, timed out: the server may have died
        return None, f"{type(e).__name__}: {e}".encode()


class Fuzzer:
    def __init__(self, schema, one_of, rng):
        self.schema, self.one_of, self.rng = schema, one_of, rng
        self.ids, self.cursors = [], []  # seen in answers: updates and deletes find rows, pages go on

    def operation(self):
        """(query text, variables) of one random operation."""
        rng = self.rng
        kind, root = ("mutation", self.schema.mutation_type) if rng.random() < 0.25 else \
            ("query", self.schema.query_type)
        self.decls, self.vars, self.aliases = [], {}, 0
        names = [rng.choice(sorted(root.fields)) for _ in range(rng.randint(1, 3))]  # repeats: aliases
        roots = " ".join(f"r{i}: {self.field(name, root.fields[name], 1)}" for i, name in enumerate(names, 1))
        decls = f"({', '.join(self.decls)})" if self.decls else ""
        return f"{kind} Fuzz{decls} {{ {roots} }}", self.vars

    def field(self, name, field, depth):
        args = []
        for arg_name, arg in field.args.items():
            required = isinstance(arg.type, GraphQLNonNull) and arg.default_value is Undefined
            if required or self.rng.random() < 0.35:
                var = f"v{len(self.decls) + 1}"
                self.decls.append(f"${var}: {arg.type}")  # the exact type: the text stays valid
                self.vars[var] = self.value(arg.type, 0)
                if arg_name in ("after", "before"):
                    self.vars[var] = self.seen(self.cursors, 0.6, self.vars[var])
                args.append(f"{arg_name}: ${var}")
        text = name + (f"({', '.join(args)})" if args else "")
        named = get_named_type(field.type)
        return text if is_leaf_type(named) else f"{text} {self.selection(named, depth + 1)}"

    def selection(self, type_, depth, aliased=False):
        rng = self.rng
        if is_abstract_type(type_):  # interfaces and unions: a fragment on one or two possible types
            possible = sorted(self.schema.get_possible_types(type_), key=lambda t: t.name)
            picks = rng.sample(possible, min(len(possible), rng.randint(1, 2)))
            # Aliased inside: same-named fields of different types in sibling fragments would conflict.
            return "{ __typename " + " ".join(f"... on {t.name} {self.selection(t, depth, True)}"
                                               for t in picks) + " }"
        fields = type_.fields
        leaves = sorted(n for n, f in fields.items() if is_leaf_type(get_named_type(f.type)))
        pool = leaves if depth >= MAX_DEPTH else sorted(fields)
        names = rng.sample(pool, min(len(pool), rng.randint(1, 4))) if pool else []
        if not set(names) & set(leaves):
            names.append(rng.choice(leaves) if leaves else "__typename")
        parts = []
        for name in names:
            text = "__typename" if name == "__typename" else self.field(name, fields[name], depth)
            if aliased:
                self.aliases += 1
                text = f"a{self.aliases}: {text}"
            parts.append(text)
        return "{ " + " ".join(parts) + " }"

    def value(self, type_, depth, nullable=True):
        rng = self.rng
        if isinstance(type_, GraphQLNonNull):
            return self.value(type_.of_type, depth, nullable=False)
        if nullable and rng.random() < 0.08:
            return None
        if isinstance(type_, GraphQLList):
            return [self.value(type_.of_type, depth + 1) for _ in range(rng.randint(0, 3) if depth < 3 else 0)]
        if isinstance(type_, GraphQLEnumType):
            return rng.choice(sorted(type_.values))
        if isinstance(type_, GraphQLInputObjectType):
            fields = sorted(type_.fields.items())
            if type_.name in self.one_of:  # @oneOf: exactly one field, not null
                name, field = rng.choice(fields)
                return {name: self.value(field.type, depth + 1, nullable=False)}
            return {name: self.value(field.type, depth + 1) for name, field in fields
                    if (isinstance(field.type, GraphQLNonNull) and field.default_value is Undefined)
                    or (depth < 3 and rng.random() < 0.4)}
        return self.scalar(type_.name)

    def scalar(self, name):
        rng = self.rng
        if name == "Int":
            return rng.choice(INTS)
        if name == "Float":
            return rng.choice(FLOATS)
        if name == "Boolean":
            return rng.random() < 0.5
        if name == "DateTime":
            return rng.choice(BAD_DATES if rng.random() < 0.15 else DATES)  # a bad one fails the operation
        if name == "JSON":
            return self.junk(0)
        if name == "ID":
            made = rng.choice([b64(rng.randbytes(rng.randint(1, 40))), "", "not-an-id", b64("Contact:123"),
                               b64(f"Contact:{uuid.UUID(int=rng.getrandbits(128), version=4)}"),
                               b64(f"Nope:{uuid.UUID(int=rng.getrandbits(128), version=4)}"), "Q29udGFjdDo"])
            return self.seen(self.ids, 0.5, made)
        if rng.random() < 0.02:
            return rng.choice(["", "a"]) + NUL
        # Plausible ones too, from a few, so that creates succeed and collide (same email, slug, key).
        text, n = rng.choice(STRINGS), rng.randrange(8)
        return {"fuzz@example.com": f"fuzz-{n}@example.com", "fuzz": f"fuzz-{n}"}.get(text, text)

    def seen(self, pool, share, made):
        """One of `pool` (a `share` of the time, if any), else `made`. One draw whatever the pool
        holds (its values differ from run to run), so a seed replays the same operations."""
        pick = self.rng.random()
        return pool[int(pick / share * len(pool))] if pool and pick < share else made

    def junk(self, depth):
        """A JSON value with nested junk."""
        rng, leaves = self.rng, [None, True, 0, -1, 2**53, 1e308, -0.0, "", "x" * 300, "ü\u2028", [], {}]
        if depth >= 3 or rng.random() < 0.3:
            return rng.choice(leaves)
        if rng.random() < 0.5:
            return [self.junk(depth + 1) for _ in range(rng.randint(0, 3))]
        keys = ["", "a", "$where", "__proto__", "k.e.y", "ü", "x" * 100, "0"]
        return {rng.choice(keys): self.junk(depth + 1) for _ in range(rng.randint(0, 4))}

    def harvest(self, value):
        """Keeps an answer's cursors and global ids, not API keys' (revoking ours would end the run)."""
        if isinstance(value, dict):
            for key, item in value.items():
                if key in ("cursor", "startCursor", "endCursor") and isinstance(item, str) and len(self.cursors) < 999:
                    self.cursors.append(item)
                self.harvest(item)
        elif isinstance(value, list):
            for item in value:
                self.harvest(item)
        elif isinstance(value, str) and len(self.ids) < 1000 and value not in self.ids:
            try:
                text = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
            except ValueError:
                return
            if GLOBAL_ID.fullmatch(text) and not text.startswith("ApiKey:"):
                self.ids.append(value)


def problems(status, raw):
    """What is wrong with one answer (empty if nothing), and its error codes."""
    if status is None:
        return [f"no answer: {raw.decode()}"], []
    found = [] if status in REFUSALS | {200} else [f"HTTP {status}"]  # 5xx, and 401, 404, ...
    try:
        body = json.loads(raw)
    except ValueError:
        return found + ["the body is not JSON"], []
    errors = (body.get("errors") or []) if isinstance(body, dict) else []
    codes = [str((e.get("extensions") or {}).get("code") or "(none)") for e in errors if isinstance(e, dict)]
    if "INTERNAL" in codes:
        found.append("an INTERNAL error")
    if status in REFUSALS and not errors:
        found.append(f"HTTP {status} without a GraphQL error")
    text = raw.decode(errors="replace").lower()
    found += [f"the body holds {word!r}" for word in LEAKS if word in text]
    return found, codes


def shorten(value):
    """Long strings abbreviated (a 5,000-character string is that string's first 20 and its length)."""
    if isinstance(value, str) and len(value) > 200:
        return f"{value[:20]}…[{len(value)} chars]"
    if isinstance(value, list):
        return [shorten(v) for v in value]
    return {k: shorten(v) for k, v in value.items()} if isinstance(value, dict) else value


def run(base, api_key, seed, count, check):
    url, started = f"{base}/graphql", time.monotonic()
    print(f"---- graphql fuzz: {count} operations, seed {seed} (replay: run.sh BINARY --fuzz {count} "
          f"--fuzz-seed {seed})", flush=True)
    status, raw = post(url, api_key, {"query": graphql.get_introspection_query()})
    schema = graphql.build_client_schema(json.loads(raw)["data"])
    status, raw = post(url, api_key, {"query": "{ __schema { types { name isOneOf } } }"})
    try:
        one_of = {t["name"] for t in json.loads(raw)["data"]["__schema"]["types"] if t.get("isOneOf")}
    except (ValueError, KeyError, TypeError):
        one_of = set()  # a server without isOneOf: its @oneOf inputs get refused more often
    fuzzer = Fuzzer(schema, one_of, random.Random(seed))
    statuses, codes, failures, invalid, slowest = Counter(), Counter(), [], 0, 0.0
    for number in range(1, count + 1):
        query, variables = fuzzer.operation()
        invalid += bool(graphql.validate(schema, graphql.parse(query)))  # the fuzzer's own bug, if any
        sent = time.monotonic()
        status, raw = post(url, api_key, {"query": query, "variables": variables})
        slowest = max(slowest, time.monotonic() - sent)
        found, error_codes = problems(status, raw)
        statuses[status] += 1
        codes.update(error_codes)
        if found:
            failures.append((number, query, variables, found, raw))
        elif status == 200:
            fuzzer.harvest(json.loads(raw))
    summary = (f"seed {seed}, {time.monotonic() - started:.1f} s, slowest {slowest * 1000:.0f} ms; "
               f"HTTP {dict(sorted(statuses.items(), key=str))}; error codes {dict(codes.most_common())}; "
               f"{len(failures)} failing"
               + (f"; {invalid} generated operations invalid (a fuzzer bug)" if invalid else ""))
    check(f"graphql fuzz: {count} operations, no 5xx, no internal text", not failures, summary)
    for number, query, variables, found, raw in failures[:5]:
        print(f"---- fuzz operation {number} of seed {seed}: {'; '.join(found)}\n  query: {query[:1500]}\n"
              f"  variables: {json.dumps(shorten(variables), ensure_ascii=False)[:1500]}\n"
              f"  answer: {raw.decode(errors='replace')[:600]}", flush=True)
