#!/usr/bin/env bash
# Vendor uPlot (https://github.com/leeoniya/uPlot, MIT) into the web dashboard's static files.
#
# The asset page's charts use uPlot from src/plantguard/web/static/vendor/uplot/; the files are committed so
# that the dashboard needs no CDN and no Node.js at run time. To rebuild or upgrade them:
#
#   scripts/vendor-uplot.sh            # the pinned version below
#   UPLOT_VERSION=1.6.33 scripts/vendor-uplot.sh
#
# It needs npm and the npm registry; it downloads the published package tarball (`npm pack`), checks it, and
# copies dist/uPlot.iife.min.js, dist/uPlot.min.css and LICENSE. Commit the result together with a new pin.
set -euo pipefail

UPLOT_VERSION="${UPLOT_VERSION:-1.6.32}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/src/plantguard/web/static/vendor/uplot"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack --silent "uplot@${UPLOT_VERSION}" >/dev/null)
tarball="$(ls "$tmp"/uplot-*.tgz)"
tar -xzf "$tarball" -C "$tmp"

for f in dist/uPlot.iife.min.js dist/uPlot.min.css LICENSE; do
  [ -s "$tmp/package/$f" ] || { echo "uplot@${UPLOT_VERSION}: $f missing from the package" >&2; exit 1; }
done

mkdir -p "$dest"
cp "$tmp/package/dist/uPlot.iife.min.js" "$tmp/package/dist/uPlot.min.css" "$tmp/package/LICENSE" "$dest/"
printf 'uplot %s\n' "$UPLOT_VERSION" > "$dest/VERSION"
echo "vendored uplot@${UPLOT_VERSION} into ${dest#$root/}"
