#!/usr/bin/env bash
# Size of the shipped binary, section by section, against the 60 MB target; and proof that a
# panic in it still prints a symbolized backtrace with file:line (the symbols and line tables
# are split into `wharf.debug` and `wharf.dwp` beside it by scripts/dist.sh).
#
#   bash bench/size.sh            builds target/dist/wharf with scripts/dist.sh
#   WHARF_BIN=path bash bench/size.sh     (e.g. target/release/wharf, the unsplit build)
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
[ -n "${WHARF_BIN:-}" ] || bash scripts/dist.sh > /dev/null
bin=${WHARF_BIN:-$target/dist/wharf}
limit_mb=${LIMIT_MB:-60}
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1e6 }'; }

echo "| part of \`$(basename "$bin")\` | MB |"
echo "|---|---:|"
readelf -SW "$bin" | awk '
    # Hex to a number; strtonum is gawk only (Debian ships mawk).
    function hex(s,    i, n) {
        n = 0; s = tolower(s)
        for (i = 1; i <= length(s); i++) n = n * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
        return n
    }
    # Section lines: "[Nr] Name Type Address Off Size ..."; the size is hex.
    match($0, /\] +[^ ]+ +[A-Z_]+ +[0-9a-f]+ +[0-9a-f]+ +[0-9a-f]+/) {
        split(substr($0, RSTART + 1, RLENGTH), f, / +/)
        name = f[2]; size = hex(f[6])
        if (name ~ /^\.text|^\.init|^\.fini|^\.plt/) part = "code (.text)"
        else if (name ~ /^\.eh_frame|^\.gcc_except_table/) part = "unwind tables (.eh_frame, ...)"
        else if (name ~ /^\.debug_|^\.zdebug_/) part = "debug info left in the binary (.debug_*, compressed)"
        else if (name ~ /^\.symtab|^\.strtab/) part = "symbol table (.symtab, .strtab)"
        else part = "data, relocations, dynamic linking, ..."
        sum[part] += size
    }
    END { for (p in sum) printf "| %s | %.1f |\n", p, sum[p] / 1e6 }' | sort
size=$(stat -c %s "$bin")
echo "| **whole file** | **$(mb "$size")** |"
for f in "$bin.debug" "$bin.dwp"; do
    [ -f "$f" ] && echo "| (beside it, read only for a backtrace: \`$(basename "$f")\`) | $(mb "$(stat -c %s "$f")") |"
done
echo

# A real panic, no test hook: `wharf cache dir` prints with println!, which panics when stdout
# is a pipe nobody reads (Rust ignores SIGPIPE, so the write fails with EPIPE).
panic_trace() {
    python3 - "$1" <<'PY'
import os, subprocess, sys, tempfile
r, w = os.pipe()
os.close(r)
env = dict(os.environ, RUST_BACKTRACE="1", WHARF_CACHE_DIR=tempfile.mkdtemp())
out = subprocess.run([sys.argv[1], "cache", "dir"], stdout=w, stderr=subprocess.PIPE, env=env)
sys.stdout.write(out.stderr.decode(errors="replace"))
PY
}
frames() { grep -cE '^ +[0-9]+: ' <<<"$1" || true; }
trace=$(panic_trace "$bin")
# Our frame's file:line, whatever it is named: read from the .dwp, a frame has its short DWARF
# name (`execute`), inlined frames included; from the symbol table, its full path name.
frame=$(grep -oE "crates/wharf/src/commands/cache\.rs:[0-9]+(:[0-9]+)?" <<<"$trace" | head -1 || true)
ok=1
if [ -n "$frame" ]; then
    echo "panic backtrace: symbolized, with file:line (\`$frame\`)"
else
    echo "panic backtrace: NO file:line for wharf's own frame; it was:"
    echo "$trace"
    ok=0
fi
# Are the debug files read? The same panic from a copy of the binary without them beside: the
# inlined frames (tokio's block_on, ...) exist only in the .dwp, so the count must drop.
if [ -f "$bin.dwp" ] || [ -f "$bin.debug" ]; then
    alone=$(mktemp -d)
    cp "$bin" "$alone/wharf"
    without=$(frames "$(panic_trace "$alone/wharf")")
    rm -rf "$alone"
    with=$(frames "$trace")
    if [ "$with" -gt "$without" ]; then
        echo "the debug files beside it are read: $with frames with them, $without without"
    else
        echo "the debug files beside it are NOT read: $with frames with them, $without without (stale or from another link?)"
        ok=0
    fi
fi
if [ "$size" -le $((limit_mb * 1000 * 1000)) ]; then
    echo "size: $(mb "$size") MB <= $limit_mb MB"
else
    echo "size: $(mb "$size") MB > $limit_mb MB"
    ok=0
fi
[ "$ok" = 1 ]
