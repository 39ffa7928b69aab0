#!/usr/bin/env bash
# make-demo.sh: build public/demo.qcow2, the sample image the web app offers to open.
#
# Usage: scripts/make-demo.sh [OUTPUT]     (default: public/demo.qcow2 in the repository)
#
# 256 MiB virtual disk, 64 KiB clusters, built only with qemu-img and qemu-io, deterministic
# (fixed pseudo-random sequence, fixed patterns). Bitmaps, in directory order:
#   vm-running        enabled, left in_use by a writer killed with SIGKILL (a crashed/running VM)
#   weekly            64 KiB granularity, saw the "week" of writes, then disabled
#   daily-2026-11-24  enabled, 64 KiB granularity, scattered writes since it was created
#   fine-512          enabled, 512 B granularity, a few small writes at the end
#   backup-full       disabled, = weekly OR daily-2026-11-24 (qemu-img bitmap --merge)
# Guest writes: about 1 MiB of real data (pattern writes, so the dirty × allocation overlay
# has data to show), the rest zero-writes (no data clusters) so the file stays small (< 4 MB),
# and a "fstrim" in daily's time: discards of earlier data, dirty but now reading as zeros.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT="${1:-$ROOT/public/demo.qcow2}"
for tool in qemu-img qemu-io; do
  command -v "$tool" >/dev/null 2>&1 || { echo "make-demo.sh: missing $tool" >&2; exit 1; }
done

W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
IMG=demo.qcow2
MIB=$((1024 * 1024))
SIZE=$((256 * MIB))

qio() { local a=() c; for c in "$@"; do a+=(-c "$c"); done; (cd "$W" && qemu-io -f qcow2 "${a[@]}" "$IMG" >/dev/null); }
bm() { local name=$1; shift; (cd "$W" && qemu-img bitmap -f qcow2 "$@" "$IMG" "$name"); }

# Deterministic pseudo-random zero-writes: LCG (Knuth MMIX constants) in bash arithmetic.
STATE=20261124
next() { STATE=$(((STATE * 6364136223846793005 + 1442695040888963407) & 0x7FFFFFFFFFFFFFFF)); R=$((STATE >> 20)); }
scatter() { # scatter N MINOFF SPAN MAXLEN ALIGN [DATA_EVERY] -> CMDS array of qemu-io commands
  # every DATA_EVERY-th write carries data (a pattern, at most 64 KiB), the others write zeros
  local n=$1 base=$2 span=$3 maxlen=$4 align=$5 every=${6:-0} i len off
  CMDS=()
  for ((i = 0; i < n; i++)); do
    next; len=$(((R % (maxlen / align) + 1) * align))
    next; off=$((base + (R % ((span - len) / align)) * align))
    if ((every > 0 && i % every == 0)); then
      ((len > 65536)) && len=65536
      CMDS+=("write -P $((0x40 + i % 64)) $off $len")
    else
      CMDS+=("write -z $off $len")
    fi
  done
}

(cd "$W" && qemu-img create -q -f qcow2 -o cluster_size=65536 "$IMG" "$SIZE")
# 1. vm-running: a VM had the image open and died (SIGKILL after a flush): in_use stays set.
#    The same writer put a little real data (a "boot sector") on the disk.
bm vm-running --add
scatter 12 0 "$SIZE" $((512 * 1024)) 4096
a=(-c 'write -P 0xeb 0 512')
for c in "${CMDS[@]}"; do a+=(-c "$c"); done
(cd "$W" && qemu-io -f qcow2 "${a[@]}" -c flush -c 'sigraise 9' "$IMG" >/dev/null 2>&1 || true) 2>/dev/null

# 2. weekly: a week of writes, clustered in a few hot regions, then frozen
bm weekly --add -g 65536
scatter 10 $((16 * MIB)) $((32 * MIB)) $((2 * MIB)) 65536 2
WEEK=("${CMDS[@]}")
scatter 25 $((128 * MIB)) $((64 * MIB)) $((256 * 1024)) 4096 3
qio "${WEEK[@]}" "${CMDS[@]}"
bm weekly --disable

# 3. daily-2026-11-24: today's scattered writes
bm daily-2026-11-24 --add -g 65536
scatter 40 0 "$SIZE" $((192 * 1024)) 512 4
qio "${CMDS[@]}"
# the guest ran fstrim: data from the week is discarded (dirty for daily, but reads as zeros)
qio "discard $((16 * MIB)) $((16 * MIB))"

# 4. fine-512: small unaligned writes at sector granularity (also seen by daily)
bm fine-512 --add -g 512
qio "write -z $((64 * MIB + 512)) 1536" "write -z $((96 * MIB - 700)) 1400" \
  "write -P 0x5a 4096 512" "write -z $((SIZE - 512)) 512"
scatter 30 $((150 * MIB)) $((8 * MIB)) 8192 512
qio "${CMDS[@]}"

# 5. backup-full: what a full backup chain would need = weekly OR daily
bm backup-full --add -g 65536 --disable --merge weekly --merge daily-2026-11-24

mkdir -p "$(dirname "$OUT")"
mv "$W/$IMG" "$OUT"
qemu-img info "$OUT" | sed -n '/bitmaps:/,$p'
qemu-img check "$OUT" >/dev/null && echo "qemu-img check: clean"
echo "$OUT: $(stat -c %s "$OUT") bytes"
