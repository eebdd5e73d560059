#!/usr/bin/env bash
# Refresh the vendored GraphiQL assets from the npm registry.
#
#   api/server/assets/graphiql/update.sh [GRAPHIQL_VERSION] [REACT_VERSION]
#
# Defaults to the pinned versions below. GraphiQL must be a release that ships the
# browser-ready UMD bundle (graphiql.min.js / graphiql.min.css at the package root,
# i.e. GraphiQL 3.x); React must be 18.x (React 19 no longer ships umd/ builds).
# Needs npm, tar and sha256sum; writes only into this script's own folder.
# Afterwards: update the versions/sha256 table in README.md from the printed listing
# (SHA256SUMS is rewritten by this script), then load the page and check it renders.
set -euo pipefail

GRAPHIQL_VERSION="${1:-3.9.0}"
REACT_VERSION="${2:-18.3.1}"

DEST="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

cd "$WORK"
# npm pack checks each tarball against the registry's integrity hash.
for spec in "graphiql@${GRAPHIQL_VERSION}" "react@${REACT_VERSION}" "react-dom@${REACT_VERSION}"; do
  pkg="${spec%@*}"
  tgz="${pkg}-${spec##*@}.tgz"
  npm pack --silent "$spec" >/dev/null
  mkdir "$pkg"
  tar -xzf "$tgz" -C "$pkg" --strip-components=1
done

# source file (relative to $WORK) -> name served under /graphiql/<name>
copy() {
  local src="$1" name="$2"
  if [[ ! -f "$src" ]]; then
    echo "error: $src is missing from the package (wrong version?)" >&2
    exit 1
  fi
  cp "$src" "$DEST/$name"
}
copy graphiql/graphiql.min.js                   graphiql.min.js
copy graphiql/graphiql.min.css                  graphiql.min.css
copy react/umd/react.production.min.js          react.production.min.js
copy react-dom/umd/react-dom.production.min.js  react-dom.production.min.js

{
  echo "Licences of the files vendored in this folder (copied from each npm package's LICENSE)."
  echo "All three packages are MIT-licensed."
  for pkg in graphiql react react-dom; do
    ver="$(node -p "require('./$pkg/package.json').version")"
    lic="$(node -p "require('./$pkg/package.json').license")"
    echo
    echo "================================================================================"
    echo "${pkg}@${ver} (${lic}) -- https://www.npmjs.com/package/${pkg}"
    echo "================================================================================"
    echo
    cat "$pkg/LICENSE"
  done
} > "$DEST/LICENSES"

cd "$DEST"
sha256sum graphiql.min.js graphiql.min.css react.production.min.js react-dom.production.min.js > SHA256SUMS

echo "graphiql ${GRAPHIQL_VERSION}, react/react-dom ${REACT_VERSION}"
for f in "$WORK"/*.tgz; do
  echo "tarball $(basename "$f"): sha512-$(openssl dgst -sha512 -binary "$f" | base64 -w0)"
done
echo
echo "bytes  file"
wc -c graphiql.min.js graphiql.min.css react.production.min.js react-dom.production.min.js
echo
echo "sha256 (also in SHA256SUMS):"
cat SHA256SUMS
