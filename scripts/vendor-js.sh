#!/usr/bin/env bash
# Re-fetches the JavaScript the dashboard ships (htmx, Chart.js) from the npm registry at
# pinned versions into src/mtasts/web/static/vendor/, with their licences. The files are
# committed: running the service or the tests needs no npm and no network. Run this only
# to change a version (edit the pins below), then commit the result.
set -euo pipefail
HTMX_VERSION=2.0.11
CHARTJS_VERSION=4.6.1
here="$(cd "$(dirname "$0")/.." && pwd)"
dest="$here/src/mtasts/web/static/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "htmx.org@$HTMX_VERSION" "chart.js@$CHARTJS_VERSION" >/dev/null
mkdir -p htmx chartjs "$dest"
tar xzf "htmx.org-$HTMX_VERSION.tgz" -C htmx
tar xzf "chart.js-$CHARTJS_VERSION.tgz" -C chartjs
cp htmx/package/dist/htmx.min.js "$dest/htmx.min.js"
cp htmx/package/LICENSE "$dest/htmx.LICENSE"
cp chartjs/package/dist/chart.umd.min.js "$dest/chart.umd.min.js"
cp chartjs/package/LICENSE.md "$dest/chart.js.LICENSE.md"
cat >"$dest/VERSIONS" <<END
htmx.org $HTMX_VERSION (dist/htmx.min.js, BSD Zero Clause licence: htmx.LICENSE)
chart.js $CHARTJS_VERSION (dist/chart.umd.min.js, MIT licence: chart.js.LICENSE.md)
Fetched from the npm registry by scripts/vendor-js.sh.
END
(cd "$dest" && sha256sum htmx.min.js chart.umd.min.js)
