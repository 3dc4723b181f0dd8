#!/usr/bin/env bash
# Vendor the web dashboard's front-end libraries (and Swagger UI for /docs) into src/plantguard/web/static/vendor/<lib>/.
#
# The dashboard loads nothing from the internet at run time: each library's built file(s) and LICENSE are
# committed under static/vendor/<lib>/ with a VERSION file. This script rebuilds them from the npm registry
# (`npm pack` of the pinned version, no install, no scripts run) and needs npm only when you run it.
#
#   scripts/vendor-web.sh           # fetch every library at its pinned version
#   scripts/vendor-web.sh --check   # offline: every vendored VERSION matches its pin below
#
# To upgrade a library, change its pin, run the script, check the dashboard (tests/e2e), commit the result.
set -euo pipefail

# lib  version  files copied from the package (LICENSE is always copied)
LIBS=(
  "uplot 1.6.32 dist/uPlot.iife.min.js dist/uPlot.min.css"
  "swagger-ui-dist 5.35.0 swagger-ui-bundle.js swagger-ui.css favicon-32x32.png"
)

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
vendor="$root/src/plantguard/web/static/vendor"

if [[ "${1:-}" == "--check" ]]; then
  status=0
  for spec in "${LIBS[@]}"; do
    read -r lib version files <<<"$spec"
    want="$lib $version"
    have="$(cat "$vendor/$lib/VERSION" 2>/dev/null || echo "missing")"
    for f in $files LICENSE; do
      [ -s "$vendor/$lib/$(basename "$f")" ] || { echo "$lib: $(basename "$f") missing" >&2; status=1; }
    done
    [[ "$have" == "$want" ]] || { echo "$lib: vendored '$have', pinned '$want'" >&2; status=1; }
  done
  [[ $status == 0 ]] && echo "vendored front-end libraries match their pins"
  exit $status
fi

command -v npm >/dev/null || { echo "npm is needed to fetch the packages (only to rebuild them)" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

for spec in "${LIBS[@]}"; do
  read -r lib version files <<<"$spec"
  work="$tmp/$lib"
  mkdir -p "$work"
  (cd "$work" && npm pack --silent "${lib}@${version}" >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work"
  for f in $files LICENSE; do
    [ -s "$work/package/$f" ] || { echo "${lib}@${version}: $f missing from the package" >&2; exit 1; }
  done
  dest="$vendor/$lib"
  mkdir -p "$dest"
  for f in $files LICENSE; do cp "$work/package/$f" "$dest/"; done
  printf '%s %s\n' "$lib" "$version" > "$dest/VERSION"
  echo "vendored ${lib}@${version} into ${dest#$root/}"
done
