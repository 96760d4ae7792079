#!/usr/bin/env bash
# Reproduce docs/images/trace-phoenix.png: run Arize Phoenix locally, send it the trace of
# examples/tracing_pipeline.py over OTLP/HTTP, and screenshot the trace view with headless
# Chromium. Not run by CI.
#
# Needs: python3 (3.11+), the project installed with the otel extra (`make test` does it),
# curl, and Chromium (Debian: `apt-get install chromium`). Phoenix is installed from PyPI into
# its own virtualenv on first use (it has many dependencies; keep them out of the project's).
# Last run with arize-phoenix 20.26.1 and Debian 12's chromium 156; the clicks below rely on
# Phoenix's trace view (tabs with role=tab), so a much newer Phoenix may need them adjusted.
#
# Usage: scripts/phoenix_screenshot.sh [output.png]
# Settings (environment):
#   PYTHON         interpreter with tta_dev_primitives[otel]   (default: .venv/bin/python)
#   PHOENIX_VENV   virtualenv for arize-phoenix                (default: ~/.cache/tta-phoenix/venv)
#   PHOENIX_PORT   HTTP port for the UI and OTLP/HTTP          (default: 6006)
#   PHOENIX_GRPC_PORT  OTLP/gRPC port Phoenix also opens       (default: 4317)
#   CHROMIUM       browser binary                              (default: chromium)
#   SPAN           span to select in the trace view            (default: search_memory)
#   TAB            tab of the span's details to open, or empty (default: Attributes)
#   WIDTH, HEIGHT  size of the screenshot in pixels            (default: 1600 x 1400, tall
#                  enough to show every attribute of search_memory)
#   KEEP_PHOENIX=1 leave Phoenix running afterwards, to browse the trace yourself
set -euo pipefail

cd "$(dirname "$0")/.."
OUT=${1:-docs/images/trace-phoenix.png}
PYTHON=${PYTHON:-.venv/bin/python}
PHOENIX_VENV=${PHOENIX_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/tta-phoenix/venv}
export PHOENIX_PORT=${PHOENIX_PORT:-6006}
export PHOENIX_GRPC_PORT=${PHOENIX_GRPC_PORT:-4317}
CHROMIUM=${CHROMIUM:-chromium}
SPAN=${SPAN:-search_memory}
TAB=${TAB-Attributes}
WIDTH=${WIDTH:-1600}
HEIGHT=${HEIGHT:-1400}
PROJECT=tracing-pipeline
BASE="http://127.0.0.1:${PHOENIX_PORT}"

log() { printf '==> %s\n' "$*" >&2; }

command -v "$CHROMIUM" >/dev/null || { echo "Chromium not found (apt-get install chromium)" >&2; exit 1; }
[ -x "$PYTHON" ] || { echo "$PYTHON not found: run 'make test' first, or set PYTHON" >&2; exit 1; }
if curl -s -o /dev/null "$BASE/"; then
    echo "something already listens on $BASE; stop it or set PHOENIX_PORT" >&2
    exit 1
fi

if [ ! -x "$PHOENIX_VENV/bin/phoenix" ]; then
    log "installing arize-phoenix into $PHOENIX_VENV"
    python3 -m venv "$PHOENIX_VENV"
    "$PHOENIX_VENV/bin/pip" install --disable-pip-version-check -q arize-phoenix
fi

WORKDIR=$(mktemp -d)
PHOENIX_PID=
CHROMIUM_PID=
cleanup() {
    if [ -n "$CHROMIUM_PID" ]; then
        kill "$CHROMIUM_PID" 2>/dev/null || true
        wait "$CHROMIUM_PID" 2>/dev/null || true
    fi
    if [ -n "$PHOENIX_PID" ] && [ "${KEEP_PHOENIX:-0}" != 1 ]; then
        kill "$PHOENIX_PID" 2>/dev/null || true
        wait "$PHOENIX_PID" 2>/dev/null || true
        rm -rf "$WORKDIR"
    fi
}
trap cleanup EXIT

log "starting Phoenix on $BASE (data in a fresh temporary directory)"
PHOENIX_WORKING_DIR="$WORKDIR" PHOENIX_HOST=127.0.0.1 PHOENIX_TELEMETRY_ENABLED=false \
    "$PHOENIX_VENV/bin/phoenix" serve >"$WORKDIR/phoenix.log" 2>&1 &
PHOENIX_PID=$!
for _ in $(seq 1 120); do
    curl -sf -o /dev/null "$BASE/healthz" && break
    kill -0 "$PHOENIX_PID" 2>/dev/null || { cat "$WORKDIR/phoenix.log" >&2; exit 1; }
    sleep 1
done
curl -sf -o /dev/null "$BASE/healthz" || { echo "Phoenix did not start" >&2; exit 1; }

log "running examples/tracing_pipeline.py with OTLP/HTTP export to Phoenix"
# openinference.project.name is how Phoenix files spans into a project.
OTEL_EXPORTER_OTLP_ENDPOINT="$BASE" \
    OTEL_RESOURCE_ATTRIBUTES="openinference.project.name=$PROJECT" \
    "$PYTHON" examples/tracing_pipeline.py --capture-content

log "finding the trace in Phoenix's REST API"
URL=
for _ in $(seq 1 30); do
    URL=$("$PYTHON" - "$BASE" "$PROJECT" "$SPAN" <<'EOF' || true
import json
import sys
import urllib.request

base, project, wanted = sys.argv[1:4]
with urllib.request.urlopen(f"{base}/v1/projects/{project}") as r:
    project_id = json.load(r)["data"]["id"]
with urllib.request.urlopen(f"{base}/v1/projects/{project}/spans?limit=100") as r:
    spans = json.load(r)["data"]
chosen = [s for s in spans if s["name"] == wanted]
if not chosen:
    sys.exit(1)
span = chosen[0]
trace_id = span["context"]["trace_id"]
# Wait until the whole trace is in (its root has arrived).
if not any(s["parent_id"] is None and s["context"]["trace_id"] == trace_id for s in spans):
    sys.exit(1)
print(f"{base}/projects/{project_id}/traces/{trace_id}?selectedSpanNodeId={span['id']}")
EOF
)
    [ -n "$URL" ] && break
    sleep 1
done
[ -n "$URL" ] || { echo "no trace with a $SPAN span reached Phoenix" >&2; exit 1; }
log "trace view: $URL"

log "screenshot -> $OUT"
mkdir -p "$(dirname "$OUT")"
# Chromium is driven over the DevTools protocol (with the websockets package Phoenix brings) so
# the script can open the span's Attributes tab before the shot. The resolver rule keeps the
# browser on loopback: nothing is fetched from the internet.
"$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --hide-scrollbars \
    --host-resolver-rules="MAP * ~NOTFOUND, EXCLUDE 127.0.0.1" \
    --user-data-dir="$WORKDIR/chromium" --window-size="$WIDTH,$HEIGHT" \
    --remote-debugging-address=127.0.0.1 --remote-debugging-port=0 about:blank \
    2>"$WORKDIR/chromium.log" &
CHROMIUM_PID=$!
"$PHOENIX_VENV/bin/python" - "$WORKDIR/chromium/DevToolsActivePort" "$URL" "$OUT" "$TAB" "$WIDTH" "$HEIGHT" <<'EOF' \
    || { cat "$WORKDIR/chromium.log" >&2; exit 1; }
import base64
import json
import sys
import time
import urllib.request
from pathlib import Path

from websockets.sync.client import connect

port_file, url, out, tab = sys.argv[1:5]
width, height = int(sys.argv[5]), int(sys.argv[6])


def wait(what, check, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.3)
    return value


def port():
    try:
        return Path(port_file).read_text().split()[0]
    except (OSError, IndexError):
        return None


with urllib.request.urlopen(f"http://127.0.0.1:{wait('Chromium', port)}/json/list") as r:
    page = next(t for t in json.load(r) if t["type"] == "page")

with connect(page["webSocketDebuggerUrl"], max_size=None) as ws:
    ids = iter(range(1, 1_000_000))

    def call(method, **params):
        msg_id = next(ids)
        ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads(ws.recv())
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def js(expr):
        return call("Runtime.evaluate", expression=expr, returnByValue=True)["result"].get("value")

    call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
         mobile=False)
    call("Page.navigate", url=url)
    tabs = "Array.from(document.querySelectorAll('[role=tab]'))"
    find = f"{tabs}.find(t => t.textContent.trim().startsWith({json.dumps(tab)}))"
    wait("the span details to render", lambda: js(f"!!({find if tab else tabs + '.length'})"))
    if tab:
        js(f"({find}).click()")
    time.sleep(2)  # let the page settle (fonts, the opened tab)
    shot = call("Page.captureScreenshot", format="png")["data"]
    Path(out).write_bytes(base64.b64decode(shot))
    call("Browser.close")
EOF
[ -s "$OUT" ] || { echo "no screenshot written" >&2; exit 1; }
log "done: $OUT"
if [ "${KEEP_PHOENIX:-0}" = 1 ]; then
    log "Phoenix keeps running (pid $PHOENIX_PID): open $URL"
fi
