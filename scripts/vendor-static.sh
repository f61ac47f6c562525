#!/usr/bin/env bash
# Copy the front-end libraries installed by `npm ci` into static/vendor/ (served by the panel; no CDN).
set -euo pipefail
cd "$(dirname "$0")/.."
out=static/vendor
rm -rf "$out.tmp" && mkdir -p "$out.tmp/htmx" "$out.tmp/novnc" "$out.tmp/xterm"
cp node_modules/htmx.org/dist/htmx.min.js "$out.tmp/htmx/"
cp -r node_modules/@novnc/novnc/core node_modules/@novnc/novnc/vendor "$out.tmp/novnc/"
cp node_modules/@xterm/xterm/lib/xterm.js node_modules/@xterm/xterm/css/xterm.css "$out.tmp/xterm/"
rm -rf "$out" && mv "$out.tmp" "$out"
