#!/usr/bin/env bash
# containerd shim: N sequential `ctr run --rm` of a hello command through
# `containerd-shim-wharf-v1` (the examples/hello component, tar-layer image) beside runc running
# Debian's static busybox `echo` in a one-file rootfs image, on one throwaway containerd.
# Needs root, containerd, runc, busybox-static (`scripts/setup.sh`; `apt-get install busybox-static`).
# N=50 by default; prints a Markdown table for BENCHMARKS.md. The last row is the floor any
# runtime pays through `ctr run --rm`: the same ctr calls and containerd work with no task.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
N=${N:-50}
target=${CARGO_TARGET_DIR:-$root/target}
profile=${PROFILE:-release}   # PROFILE=dev only to try the script quickly
# SHIM_DIR=dir (holding containerd-shim-wharf-v1) skips the build.
[ -n "${SHIM_DIR:-}" ] || cargo build --quiet --profile "$profile" --locked -p wharf-shim
bin=${SHIM_DIR:-$target/$([ "$profile" = dev ] && echo debug || echo "$profile")}
cargo build --quiet --release --locked --target wasm32-wasip2 --manifest-path examples/hello/Cargo.toml
hello=$root/examples/hello/target/wasm32-wasip2/release/hello.wasm
command -v busybox >/dev/null || { echo "busybox-static not installed" >&2; exit 1; }
work=$(mktemp -d /tmp/wharf-bench-shim.XXXXXX)
ctd_pid=
cleanup() { [ -n "$ctd_pid" ] && { kill "$ctd_pid"; wait "$ctd_pid"; } 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
cat > "$work/config.toml" <<TOML
version = 2
root = "$work/root"
state = "$work/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$work/containerd.sock"
[ttrpc]
  address = "$work/containerd.sock.ttrpc"
[debug]
  address = "$work/debug.sock"
TOML
PATH="$bin:$PATH" WHARF_CACHE_DIR="$work/cache" containerd --config "$work/config.toml" 2>"$work/containerd.log" &
ctd_pid=$!
ctr=(ctr --address "$work/containerd.sock" --namespace bench)
for _ in $(seq 100); do "${ctr[@]}" version >/dev/null 2>&1 && break; sleep 0.1; done

# One image each, as OCI layouts with a single tar layer (python writes the layout).
python3 - "$work" "$hello" "$(command -v busybox)" <<'PY'
import hashlib, io, json, os, sys, tarfile
work, hello, busybox = sys.argv[1:4]
def layout(name, files, config, platform):
    out = os.path.join(work, name); blobs = os.path.join(out, "blobs/sha256"); os.makedirs(blobs)
    def put(data, mt):
        d = hashlib.sha256(data).hexdigest(); open(os.path.join(blobs, d), "wb").write(data)
        return {"mediaType": mt, "digest": "sha256:" + d, "size": len(data)}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for path, src, mode in files:
            info = t.gettarinfo(src, arcname=path); info.mode = mode; info.uid = info.gid = 0
            t.addfile(info, open(src, "rb"))
    layer = buf.getvalue()
    config["rootfs"] = {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}
    m = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
         "config": put(json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json"),
         "layers": [put(layer, "application/vnd.oci.image.layer.v1.tar")]}
    md = put(json.dumps(m).encode(), "application/vnd.oci.image.manifest.v1+json")
    md["annotations"] = {"io.containerd.image.name": f"docker.io/bench/{name}:latest"}
    md["platform"] = platform
    json.dump({"schemaVersion": 2, "manifests": [md]}, open(os.path.join(out, "index.json"), "w"))
    open(os.path.join(out, "oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
layout("hello", [("hello.wasm", hello, 0o644)],
       {"architecture": "wasm", "os": "wasi", "config": {"Entrypoint": ["/hello.wasm"]}},
       {"architecture": "wasm", "os": "wasi"})
layout("busybox", [("busybox", busybox, 0o755)],
       {"architecture": "amd64", "os": "linux", "config": {"Entrypoint": ["/busybox", "echo", "hello"]}},
       {"architecture": "amd64", "os": "linux"})
PY
for name in hello busybox; do
  tar -cf "$work/$name.tar" -C "$work/$name" .
  platform=linux/amd64; [ $name = hello ] && platform=wasi/wasm
  "${ctr[@]}" images import --platform $platform "$work/$name.tar" >/dev/null
done
echo "machine: $(nproc) cores, $(uname -sr), $(containerd --version | awk '{print $3}'), runc $(runc --version | awk 'NR==1{print $3}')"
python3 "$root/bench/shim.py" "$(printf '%s\n' "${ctr[@]}" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read().split()))')" "$N" \
  "wharf shim (hello.wasm)|io.containerd.wharf.v1|docker.io/bench/hello:latest|" \
  "runc (static busybox echo)|io.containerd.runc.v2|docker.io/bench/busybox:latest|" \
  "floor: ctr + containerd, no task (create + delete the container)|none|docker.io/bench/busybox:latest|"
