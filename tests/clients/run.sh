#!/usr/bin/env bash
# Client compatibility check (see README.md):
#   bash tests/clients/run.sh BINARY [--database-url postgres://... [--schema NAME]] [--fuzz N] [--fuzz-seed S]
# Installs the pinned clients (a venv in target/clients-venv, node_modules here), each again
# only when its pins change, then runs run.py with the venv's Python.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: bash tests/clients/run.sh BINARY [--database-url URL [--schema NAME]] [--fuzz N] [--fuzz-seed S]" >&2
  exit 2
fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
binary=$(realpath "$1")
shift
python=$(command -v python3.11 || command -v python3)
venv="$here/../../target/clients-venv"

stamp=$( (cat "$here/requirements.txt"; "$python" --version) | sha256sum | cut -d' ' -f1)
if [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  echo "$stamp" >"$venv/.requirements.sha256"
fi

stamp=$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$here/node_modules/.lock.sha256" 2>/dev/null)" != "$stamp" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$stamp" >"$here/node_modules/.lock.sha256"
fi

exec "$venv/bin/python" "$here/run.py" --binary "$binary" "$@"
