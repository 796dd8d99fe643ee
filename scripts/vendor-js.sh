#!/usr/bin/env bash
# Re-fetches the JavaScript the dashboard ships (htmx, Chart.js, and Swagger UI for /api/docs)
# from the npm registry at
# pinned versions into src/mtasts/web/static/vendor/, with their licences. The files are
# committed: running the service or the tests needs no npm and no network. Run this only
# to change a version (edit the pins below), then commit the result.
set -euo pipefail
HTMX_VERSION=2.0.11
CHARTJS_VERSION=4.6.1
SWAGGER_UI_VERSION=5.35.0
here="$(cd "$(dirname "$0")/.." && pwd)"
dest="$here/src/mtasts/web/static/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "htmx.org@$HTMX_VERSION" "chart.js@$CHARTJS_VERSION" \
  "swagger-ui-dist@$SWAGGER_UI_VERSION" >/dev/null
mkdir -p htmx chartjs swagger "$dest"
tar xzf "htmx.org-$HTMX_VERSION.tgz" -C htmx
tar xzf "chart.js-$CHARTJS_VERSION.tgz" -C chartjs
tar xzf "swagger-ui-dist-$SWAGGER_UI_VERSION.tgz" -C swagger
cp htmx/package/dist/htmx.min.js "$dest/htmx.min.js"
cp htmx/package/LICENSE "$dest/htmx.LICENSE"
cp chartjs/package/dist/chart.umd.min.js "$dest/chart.umd.min.js"
cp chartjs/package/LICENSE.md "$dest/chart.js.LICENSE.md"
cp swagger/package/swagger-ui-bundle.js swagger/package/swagger-ui.css "$dest/"
cp swagger/package/LICENSE "$dest/swagger-ui.LICENSE"
cp swagger/package/favicon-32x32.png "$dest/swagger-favicon-32x32.png"
cat >"$dest/VERSIONS" <<END
htmx.org $HTMX_VERSION (dist/htmx.min.js, BSD Zero Clause licence: htmx.LICENSE)
chart.js $CHARTJS_VERSION (dist/chart.umd.min.js, MIT licence: chart.js.LICENSE.md)
swagger-ui-dist $SWAGGER_UI_VERSION (swagger-ui-bundle.js, swagger-ui.css, Apache-2.0 licence: swagger-ui.LICENSE)
Fetched from the npm registry by scripts/vendor-js.sh.
END
(cd "$dest" && sha256sum htmx.min.js chart.umd.min.js swagger-ui-bundle.js swagger-ui.css)
