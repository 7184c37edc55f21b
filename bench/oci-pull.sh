#!/usr/bin/env bash
# Pull of a ~20 MB component from a local registry: `wharf pull` vs `skopeo copy docker:// oci:`,
# measured in the same hyperfine run. Each run starts from an empty store / layout, so both
# download every blob. Needs: docker-registry, skopeo, hyperfine (scripts/setup.sh installs
# the first two; hyperfine: `apt-get install hyperfine`). Prints a Markdown table; RUNS=20,
# SIZE_MIB=20 (the random payload added to the component).
#
#   bash bench/oci-pull.sh [WHARF_BINARY]      (default: target/release/wharf)
set -euo pipefail
cd "$(dirname "$0")/.."
WHARF=${1:-${CARGO_TARGET_DIR:-target}/release/wharf}
WORK=$(mktemp -d)
trap 'kill $REGISTRY_PID 2>/dev/null || true; rm -rf "$WORK"' EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
HOST=127.0.0.1:$PORT
cat > "$WORK/registry.yml" <<YAML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $WORK/registry
http:
  addr: $HOST
YAML
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
REGISTRY_PID=$!
for _ in $(seq 100); do curl -fs "http://$HOST/v2/" >/dev/null && break; sleep 0.1; done

# A ~20 MB component: the cli_echo test guest plus a 20 MiB custom section of random bytes
# (incompressible, like real code; custom sections are valid anywhere in a component).
BASE=$(ls "${CARGO_TARGET_DIR:-target}"/debug/build/test-programs-artifacts-*/out/guests/wasm32-wasip2/release/cli_echo.wasm | head -1)
python3 - "$BASE" "$WORK/big.wasm" "${SIZE_MIB:-20}" <<'PY'
import os, sys
base = open(sys.argv[1], "rb").read()
name = b"wharf-bench"
payload = bytes([len(name)]) + name + os.urandom(int(sys.argv[3]) * 1024 * 1024)
size, leb = len(payload), bytearray()
while True:
    byte, size = size & 0x7F, size >> 7
    leb.append(byte | (0x80 if size else 0))
    if not size:
        break
open(sys.argv[2], "wb").write(base + b"\x00" + bytes(leb) + payload)
PY
ls -l "$WORK/big.wasm"

export WHARF_DATA_DIR=$WORK/wharf-data
"$WHARF" push --insecure "$HOST" "$WORK/big.wasm" "$HOST/bench/big:v1"

echo "load average $(cut -d' ' -f1-3 /proc/loadavg), $(skopeo --version)"
echo
hyperfine --warmup 2 --runs "${RUNS:-20}" --style basic --export-markdown "$WORK/table.md" \
    --prepare "rm -rf $WORK/wharf-data $WORK/skopeo-layout" \
    -n wharf "$WHARF pull --insecure $HOST $HOST/bench/big:v1" \
    -n skopeo "skopeo --insecure-policy copy -q --src-tls-verify=false docker://$HOST/bench/big:v1 oci:$WORK/skopeo-layout:v1" >&2
cat "$WORK/table.md"
