#!/usr/bin/env bash
# make-fixtures.sh: build the qcow2 persistent-bitmap fixture corpus with QEMU's own tools.
#
# Usage: make-fixtures.sh [OUTDIR] [--large] [--large-only] [--manifest PATH]
#
#   OUTDIR        where the images go. Default: ./images next to this script (the committed set).
#   --large       also build the big sparse images (4 TiB, 64 TiB, 2 MiB clusters). They are
#                 generated at test time into a temporary directory and never committed.
#   --large-only  build only the big images (implies --large).
#   --manifest P  where to write the JSON manifest. Default: fixtures.json next to this script
#                 when OUTDIR is the default, otherwise OUTDIR/fixtures.json.
#
# Images are made with qemu-img and qemu-io only; the corrupt variants (and a few special ones)
# are produced by patching single fields of a good image at offsets computed from its header,
# bitmaps extension and bitmap directory (see the embedded python helper). Everything is
# deterministic: fixed sizes, fixed seeds for the "random" writes, fixed patterns, and snapshot
# timestamps are normalised. The manifest records for every image what QEMU (the oracle) says:
# whether `qemu-img info` opens it, the exit code of `qemu-img check`, the bitmap list, the
# QMP x-debug-block-dirty-bitmap-sha256 of every bitmap, and the dirty extents seen over NBD.
#
# Requirements: qemu-img, qemu-io, qemu-nbd, nbdinfo, qemu-system-x86_64, python3 (stdlib only).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DEFAULT_OUT="$SCRIPT_DIR/images"

OUTDIR=""
LARGE=0
SMALL=1
MANIFEST=""
while [ $# -gt 0 ]; do
  case "$1" in
    --large) LARGE=1 ;;
    --large-only) LARGE=1; SMALL=0 ;;
    --manifest) MANIFEST="$2"; shift ;;
    --manifest=*) MANIFEST="${1#--manifest=}" ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    -*) echo "make-fixtures.sh: unknown option $1" >&2; exit 2 ;;
    *) if [ -n "$OUTDIR" ]; then echo "make-fixtures.sh: more than one OUTDIR" >&2; exit 2; fi
       OUTDIR="$1" ;;
  esac
  shift
done

for tool in qemu-img qemu-io qemu-nbd nbdinfo qemu-system-x86_64 python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "make-fixtures.sh: missing $tool" >&2; exit 1; }
done

IS_DEFAULT=0
if [ -z "$OUTDIR" ]; then OUTDIR="$DEFAULT_OUT"; IS_DEFAULT=1; fi
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
[ "$OUTDIR" = "$DEFAULT_OUT" ] && IS_DEFAULT=1
if [ -z "$MANIFEST" ]; then
  if [ "$IS_DEFAULT" = 1 ]; then MANIFEST="$SCRIPT_DIR/fixtures.json"; else MANIFEST="$OUTDIR/fixtures.json"; fi
fi
case "$MANIFEST" in /*) ;; *) MANIFEST="$PWD/$MANIFEST" ;; esac

# Everything is built in a staging directory inside OUTDIR, then moved into OUTDIR.
# All cross-file references (backing file, external data file) are bare relative names.
B=$(mktemp -d "$OUTDIR/.staging.XXXXXX")
META="$B/.meta"
mkdir -p "$META"
PY="$META/fx.py"
cleanup() { rm -rf "$B"; }
trap cleanup EXIT

export LC_ALL=C.UTF-8 TZ=UTC
T0=$(date +%s)

# ----------------------------------------------------------------------------------------------
# Embedded python helper (stdlib only): deterministic offsets, named-field patches, manifest.
# ----------------------------------------------------------------------------------------------
cat >"$PY" <<'PYEOF'
import json, os, struct, subprocess, sys

MASK64 = (1 << 64) - 1

def splitmix(seed):
    state = seed & MASK64
    while True:
        state = (state + 0x9E3779B97F4A7C15) & MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        yield z ^ (z >> 31)

def cmd_writes(seed, n, span, align, maxlen, mode):
    """Print qemu-io commands: n writes inside [0, span), offsets multiple of align,
    lengths 1..maxlen multiples of align. mode: data | zero | mixed."""
    seed, n, span, align, maxlen = int(seed), int(n), int(span), int(align), int(maxlen)
    g = splitmix(seed)
    for i in range(n):
        units = max(1, maxlen // align)
        ln = (next(g) % units + 1) * align
        off = (next(g) % max(1, (span - ln) // align + 1)) * align
        z = mode == 'zero' or (mode == 'mixed' and next(g) % 2 == 0)
        if z:
            print('write -z %d %d' % (off, ln))
        else:
            print('write -P 0x%02x %d %d' % (0x11 + (seed * 7 + i) % 200, off, ln))

# ---- image parsing ---------------------------------------------------------------------------

HDR = '>IIQIIQIIQQIIQQQQII'
HDR_FIELDS = ['magic', 'version', 'backing_file_offset', 'backing_file_size', 'cluster_bits',
              'size', 'crypt_method', 'l1_size', 'l1_table_offset', 'refcount_table_offset',
              'refcount_table_clusters', 'nb_snapshots', 'snapshots_offset',
              'incompatible_features', 'compatible_features', 'autoclear_features',
              'refcount_order', 'header_length']
BITMAPS_EXT = 0x23852875

def align8(x):
    return (x + 7) & ~7

class Img:
    def __init__(self, path):
        self.path = path
        self.d = bytearray(open(path, 'rb').read())
        d = self.d
        vals = struct.unpack_from(HDR, d, 0)
        self.h = dict(zip(HDR_FIELDS, vals))
        h = self.h
        if h['version'] == 2:
            h['incompatible_features'] = h['compatible_features'] = h['autoclear_features'] = 0
            h['refcount_order'] = 4
            h['header_length'] = 72
        self.cs = 1 << h['cluster_bits']
        # extensions
        self.exts = []
        off = h['header_length']
        end = h['backing_file_offset'] or self.cs
        while off + 8 <= end:
            t, ln = struct.unpack_from('>II', d, off)
            if t == 0:
                break
            self.exts.append((t, ln, off))
            off += 8 + align8(ln)
        self.bext = None
        for t, ln, o in self.exts:
            if t == BITMAPS_EXT:
                self.bext = o
        self.entries = []
        if self.bext is not None:
            nb, res, dsize, doff = struct.unpack_from('>IIQQ', d, self.bext + 8)
            self.nb, self.dsize, self.doff = nb, dsize, doff
            p = doff
            while p < doff + dsize:
                toff, tsize, flags, typ, gb, nsz, ext = struct.unpack_from('>QIIBBHI', d, p)
                name_off = p + 24 + ext
                name = bytes(d[name_off:name_off + nsz])
                size = align8(24 + ext + nsz)
                self.entries.append(dict(off=p, table_offset=toff, table_size=tsize, flags=flags,
                                         type=typ, granularity_bits=gb, name_size=nsz,
                                         extra_data_size=ext, name=name, name_off=name_off,
                                         size=size))
                p += size

    def entry(self, name):
        for i, e in enumerate(self.entries):
            if e['name'] == name.encode():
                return i, e
        raise SystemExit('no bitmap %r in %s' % (name, self.path))

    def table(self, e):
        return [struct.unpack_from('>Q', self.d, e['table_offset'] + 8 * k)[0]
                for k in range(e['table_size'])]

    # refcounts
    def rc_loc(self, cluster):
        order = self.h['refcount_order']
        bits = 1 << order
        epb = self.cs * 8 // bits
        ti, bi = divmod(cluster, epb)
        ent = struct.unpack_from('>Q', self.d, self.h['refcount_table_offset'] + 8 * ti)[0]
        blk = ent & ~0x1FF
        if blk == 0:
            raise SystemExit('no refblock for cluster %d' % cluster)
        bitpos = bi * bits
        return blk, bits, bitpos

    def get_rc(self, cluster):
        blk, bits, bitpos = self.rc_loc(cluster)
        if bits >= 8:
            n = bits // 8
            return int.from_bytes(self.d[blk + bitpos // 8: blk + bitpos // 8 + n], 'big')
        byte = self.d[blk + bitpos // 8]
        return (byte >> (bitpos % 8)) & ((1 << bits) - 1)

    def set_rc(self, cluster, value):
        """Returns (offset, nbytes) of the bytes changed."""
        blk, bits, bitpos = self.rc_loc(cluster)
        if bits >= 8:
            n = bits // 8
            o = blk + bitpos // 8
            self.d[o:o + n] = value.to_bytes(n, 'big')
            return o, n
        o = blk + bitpos // 8
        m = ((1 << bits) - 1) << (bitpos % 8)
        self.d[o] = (self.d[o] & ~m & 0xFF) | ((value << (bitpos % 8)) & m)
        return o, 1

    def save(self):
        with open(self.path, 'wb') as f:
            f.write(self.d)


def cmd_patch(path, kind, out, *args):
    img = Img(path)
    d = img.d
    rec = {}

    def put(structure, field, off, width, new, **extra):
        old = bytes(d[off:off + width])
        if isinstance(new, int):
            new = new.to_bytes(width, 'big')
        assert len(new) == width
        d[off:off + width] = new
        rec.update(structure=structure, field=field, offset=off, **{'from': old.hex(), 'to': new.hex()})
        rec.update(extra)

    def ent(name):
        i, e = img.entry(name)
        return i, e

    ext = img.bext
    if kind == 'ext_length':
        put('bitmaps_extension_header', 'length', ext + 4, 4, int(args[0]))
    elif kind == 'reserved32':
        put('bitmaps_extension', 'reserved32', ext + 12, 4, int(args[0]))
    elif kind == 'nb_bitmaps':
        put('bitmaps_extension', 'nb_bitmaps', ext + 8, 4, eval(args[0], {}, {'nb': img.nb}))
    elif kind == 'dir_size':
        put('bitmaps_extension', 'bitmap_directory_size', ext + 16, 8,
            eval(args[0], {}, {'size': img.dsize}))
    elif kind == 'dir_offset':
        put('bitmaps_extension', 'bitmap_directory_offset', ext + 24, 8,
            eval(args[0], {}, {'off': img.doff, 'cs': img.cs}))
    elif kind in ('flags', 'type', 'granularity_bits', 'extra_data_size', 'bitmap_table_offset',
                  'bitmap_table_size', 'name_size'):
        i, e = ent(args[0])
        env = {'flags': e['flags'], 'type': e['type'], 'gb': e['granularity_bits'],
               'toff': e['table_offset'], 'tsize': e['table_size'], 'cs': img.cs}
        pos, width = {'bitmap_table_offset': (0, 8), 'bitmap_table_size': (8, 4),
                      'flags': (12, 4), 'type': (16, 1), 'granularity_bits': (17, 1),
                      'name_size': (18, 2), 'extra_data_size': (20, 4)}[kind]
        if kind == 'extra_data_size':
            # keep the padded entry size unchanged so the directory still parses
            assert align8(24 + int(args[1]) + e['name_size']) == e['size'], 'no room in padding'
        put('bitmap_directory_entry', kind, e['off'] + pos, width, eval(args[1], {}, env),
            entry=i, bitmap=e['name'].decode('utf-8', 'replace'))
    elif kind == 'table_entry':
        # table_entry NAME MODE: reserved | bit0 | past_eof  (first non-zero entry)
        i, e = ent(args[0])
        tab = img.table(e)
        k = next(k for k, v in enumerate(tab) if v > 1)
        v = tab[k]
        if args[1] == 'reserved':
            nv = v | 0x2
        elif args[1] == 'bit0':
            nv = v | 0x1
        elif args[1] == 'past_eof':
            nv = ((len(d) + img.cs - 1) // img.cs + 64) * img.cs
        else:
            raise SystemExit('bad mode')
        put('bitmap_table', 'bitmap_table_entry', e['table_offset'] + 8 * k, 8, nv,
            bitmap=e['name'].decode(), index=k, mode=args[1])
    elif kind == 'name':
        # name NAME NEWHEX (same length)
        i, e = ent(args[0])
        new = bytes.fromhex(args[1])
        assert len(new) == e['name_size'], 'name must keep its length'
        put('bitmap_directory_entry', 'name', e['name_off'], len(new), new, entry=i,
            bitmap=e['name'].decode())
    elif kind == 'refcount_zero':
        # zero the refcount of the first data cluster of bitmap NAME
        i, e = ent(args[0])
        tab = img.table(e)
        v = next(v for v in tab if v > 1)
        c = (v & 0x00FFFFFFFFFFFE00) // img.cs
        before = bytes(d)
        o, n = img.set_rc(c, 0)
        old = before[o:o + n].hex()
        rec.update(structure='refcount_block', field='refcount', offset=o, **{'from': old,
                   'to': bytes(d[o:o + n]).hex()}, cluster=c, refcount_bits=1 << img.h['refcount_order'],
                   bitmap=e['name'].decode(), reason='data cluster of bitmap')
    elif kind == 'leak':
        nclusters = (len(d) + img.cs - 1) // img.cs
        c = None
        for cand in range(1, nclusters):
            if img.get_rc(cand) == 0:
                c = cand
                break
        if c is None:
            c = nclusters
            d.extend(b'\0' * (c * img.cs - len(d) + img.cs))
        before = bytes(d)
        o, n = img.set_rc(c, 1)
        rec.update(structure='refcount_block', field='refcount', offset=o,
                   **{'from': before[o:o + n].hex(), 'to': bytes(d[o:o + n]).hex()}, cluster=c,
                   refcount_bits=1 << img.h['refcount_order'])
    elif kind == 'autoclear':
        v = d[95]
        nv = (v | 1) if args[0] == 'set' else (v & 0xFE)
        put('header', 'autoclear_features', 95, 1, nv, bit=0)
    elif kind == 'size':
        put('header', 'size', 24, 8, int(args[0]))
    else:
        raise SystemExit('unknown patch kind ' + kind)
    img.save()
    with open(out, 'w') as f:
        json.dump(rec, f)


def cmd_normalize_snapshots(path):
    """qemu-img snapshot -c stores the wall-clock time: replace it by a fixed date."""
    img = Img(path)
    d, h = img.d, img.h
    p = h['snapshots_offset']
    for i in range(h['nb_snapshots']):
        _, _, idl, nml = struct.unpack_from('>QIHH', d, p)
        struct.pack_into('>II', d, p + 16, 1764028800 + 3600 * i, 0)
        extra = struct.unpack_from('>I', d, p + 36)[0]
        p += align8(40 + extra + idl + nml)
    img.save()


def cmd_register(jsonl, name, file, large, desc, tags, extra):
    rec = dict(name=name, file=file, large=large == '1', description=desc,
               tags=[t for t in tags.split(',') if t])
    if extra:
        rec['extraFiles'] = [x for x in extra.split(',') if x]
    with open(jsonl, 'a') as f:
        f.write(json.dumps(rec) + '\n')

# ---- oracle queries ----------------------------------------------------------------------------

def run(args, cwd, timeout=300, inp=None):
    p = subprocess.run(args, cwd=cwd, input=inp, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    return p.returncode, p.stdout.decode('utf-8', 'replace'), p.stderr.decode('utf-8', 'replace')

def first_line(s):
    for line in s.splitlines():
        if line.strip():
            return line.strip()
    return None

def qmp_sha256(cwd, file, names):
    node = {"driver": "qcow2", "node-name": "n0", "read-only": True,
            "file": {"driver": "file", "filename": file}}
    cmds = [{"execute": "qmp_capabilities"}]
    for i, n in enumerate(names):
        cmds.append({"execute": "x-debug-block-dirty-bitmap-sha256",
                     "arguments": {"node": "n0", "name": n}, "id": "b%d" % i})
    cmds.append({"execute": "quit"})
    inp = ''.join(json.dumps(c) + '\n' for c in cmds).encode()
    rc, out, err = run(['qemu-system-x86_64', '-machine', 'none', '-nodefaults', '-display', 'none',
                        '-qmp', 'stdio', '-blockdev', json.dumps(node)], cwd, 300, inp)
    res, errs = {}, {}
    for line in out.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        mid = msg.get('id')
        if not isinstance(mid, str) or not mid.startswith('b'):
            continue
        n = names[int(mid[1:])]
        if 'return' in msg:
            res[n] = msg['return']['sha256']
        else:
            errs[n] = msg.get('error', {}).get('desc', 'error')
    if not res and not errs:
        errs['*'] = first_line(err) or 'qemu-system-x86_64 exit %d' % rc
    return res, errs

def nbd_extents(cwd, file, name, cap):
    rc, out, err = run(['nbdinfo', '--map=qemu:dirty-bitmap:' + name, '--json', '--',
                        '[', 'qemu-nbd', '-r', '-f', 'qcow2', '-B', name, file, ']'], cwd, 300)
    if rc != 0:
        return None, first_line(err) or 'nbdinfo exit %d' % rc
    merged = []
    for e in json.loads(out):
        if e['type'] & 1:
            if merged and merged[-1]['offset'] + merged[-1]['length'] == e['offset']:
                merged[-1]['length'] += e['length']
            else:
                merged.append({'offset': e['offset'], 'length': e['length']})
    if len(merged) > cap:
        return None, 'more than %d extents' % cap
    return merged, None

def cmd_assemble(outdir, jsonl, metadir, manifest):
    fixtures = [json.loads(l) for l in open(jsonl)]
    result = []
    for fx in fixtures:
        f = fx['file']
        rc, out, err = run(['qemu-img', 'info', '--output=json', f], outdir)
        fx['qemuOpens'] = rc == 0
        info = json.loads(out) if rc == 0 else {}
        if rc != 0:
            fx['qemuError'] = first_line(err)
        elif first_line(err):
            fx['qemuWarning'] = first_line(err)
        crc, cout, cerr = run(['qemu-img', 'check', '--output=json', f], outdir)
        fx['qemuCheckExit'] = crc
        try:
            cj = json.loads(cout)
            fx['qemuCheck'] = {k2: cj.get(k1, 0) for k1, k2 in
                               (('corruptions', 'corruptions'), ('leaks', 'leaks'),
                                ('check-errors', 'checkErrors'))}
        except ValueError:
            pass
        if info:
            fs = info.get('format-specific', {}).get('data', {})
            fx['virtualSize'] = info.get('virtual-size')
            fx['clusterSize'] = info.get('cluster-size')
            fx['compat'] = fs.get('compat')
            fx['refcountBits'] = fs.get('refcount-bits')
            fx['dirtyFlag'] = info.get('dirty-flag', False)
            for k1, k2 in (('backing-filename', 'backingFile'),):
                if k1 in info:
                    fx[k2] = info[k1]
            if 'data-file' in fs:
                fx['dataFile'] = fs['data-file']
        bitmaps = info.get('format-specific', {}).get('data', {}).get('bitmaps', []) if info else []
        fx['bitmaps'] = bitmaps
        fx['sha256'] = {}
        usable = [b['name'] for b in bitmaps if '\ufffd' not in b['name']]
        lossy = [b['name'] for b in bitmaps if '\ufffd' in b['name']]
        if lossy:
            fx['oracleSkipped'] = {n: 'name is not valid UTF-8 (qemu-img shows U+FFFD)' for n in lossy}
        if fx['qemuOpens'] and usable:
            sums, errs = qmp_sha256(outdir, f, usable)
            fx['sha256'] = sums
            if errs:
                fx['sha256Errors'] = errs
        if fx['qemuOpens'] and not fx['large'] and usable:
            ext, exterr = {}, {}
            for b in bitmaps:
                if b['name'] not in usable:
                    continue
                if 'in-use' in b['flags']:
                    exterr[b['name']] = 'in-use: qemu-nbd refuses inconsistent bitmaps'
                    continue
                e, why = nbd_extents(outdir, f, b['name'], 2000)
                if e is None:
                    exterr[b['name']] = why
                else:
                    ext[b['name']] = e
            fx['extents'] = ext
            if exterr:
                fx['extentsSkipped'] = exterr
        pfile = os.path.join(metadir, fx['name'] + '.patch.json')
        if os.path.exists(pfile):
            fx['patch'] = json.load(open(pfile))
        fx['fileSize'] = os.path.getsize(os.path.join(outdir, f))
        result.append(fx)
    order = ['name', 'file', 'extraFiles', 'large', 'description', 'tags', 'qemuOpens', 'qemuError',
             'qemuWarning', 'qemuCheckExit', 'qemuCheck', 'virtualSize', 'clusterSize', 'compat',
             'refcountBits', 'dirtyFlag', 'backingFile', 'dataFile', 'fileSize', 'patch',
             'bitmaps', 'sha256', 'sha256Errors', 'oracleSkipped', 'extents', 'extentsSkipped']
    result = [{k: fx[k] for k in order if k in fx} for fx in result]
    with open(manifest + '.tmp', 'w') as fh:
        fh.write('[\n' + ',\n'.join(json.dumps(fx, ensure_ascii=False) for fx in result) + '\n]\n')
    os.replace(manifest + '.tmp', manifest)
    bad = [fx['name'] for fx in result if fx['sha256'] == {} and fx['bitmaps'] and fx['qemuOpens']
           and not fx.get('oracleSkipped')]
    if bad:
        print('warning: no sha256 for ' + ', '.join(bad), file=sys.stderr)
    print('%d fixtures -> %s' % (len(result), manifest))

if __name__ == '__main__':
    cmd, args = sys.argv[1], sys.argv[2:]
    {'writes': cmd_writes, 'patch': cmd_patch, 'normalize-snapshots': cmd_normalize_snapshots,
     'register': cmd_register, 'assemble': cmd_assemble}[cmd](*args)
PYEOF

JSONL="$META/fixtures.jsonl"
: >"$JSONL"

# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------
KIB=1024; MIB=$((1024 * 1024)); GIB=$((1024 * MIB)); TIB=$((1024 * GIB))

create() { # create NAME SIZE [OPTS]
  local opts="${3:-cluster_size=4096}"
  # run inside $B: qemu-img create resolves a relative data_file name against the current
  # directory (opening resolves it against the image's directory)
  (cd "$B" && qemu-img create -q -f qcow2 -o "$opts" "$1.qcow2" "$2")
}
# Every QEMU command runs inside $B with a relative image name: QEMU 7.2 resolves a relative
# external data file name against the current directory (only `qemu-img info` copes without it).
bitmap() { # bitmap IMG BITMAP action... (qemu-img bitmap [actions] FILE BITMAP)
  local img="$1.qcow2" name=$2; shift 2
  (cd "$B" && qemu-img bitmap -f qcow2 "$@" "$img" "$name")
}
add() { # add IMG BITMAP [extra args]
  local img=$1 name=$2; shift 2
  (cd "$B" && qemu-img bitmap -f qcow2 --add "$@" "$img.qcow2" "$name")
}
qio() { # qio IMG cmd...   (one qemu-io process, commands in order)
  local img="$1.qcow2"; shift
  local a=() c
  for c in "$@"; do a+=(-c "$c"); done
  (cd "$B" && qemu-io -f qcow2 "${a[@]}" "$img" >/dev/null)
}
writes() { # writes SEED N SPAN ALIGN MAXLEN MODE -> qemu-io commands on stdout
  python3 "$PY" writes "$@"
}
qio_writes() { # qio_writes IMG SEED N SPAN ALIGN MAXLEN MODE
  local img=$1; shift
  local cmds
  mapfile -t cmds < <(writes "$@")
  qio "$img" "${cmds[@]}"
}
SIGRAISE=0
if qemu-io -c 'help sigraise' 2>/dev/null | grep -q sigraise; then SIGRAISE=1; fi
killed_writer() { # killed_writer IMG cmd... : open read-write, run cmds, flush, die by SIGKILL
  local img="$B/$1.qcow2"; shift  # (never used on the data-file image)
  local a=() c
  for c in "$@"; do a+=(-c "$c"); done
  if [ "$SIGRAISE" = 1 ]; then
    (qemu-io -f qcow2 "${a[@]}" -c flush -c 'sigraise 9' "$img" >/dev/null 2>&1 || true) 2>/dev/null
  else
    qemu-io -f qcow2 "${a[@]}" -c flush -c 'sleep 20000' "$img" >/dev/null 2>&1 &
    local pid=$! i
    for i in $(seq 1 400); do # the writer sets in_use on open; wait for its last command
      if qemu-img info -U --output=json "$img" 2>/dev/null | grep -q '"in-use"'; then break; fi
      sleep 0.05
    done
    sleep 0.5
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
}
register() { # register NAME LARGE DESCRIPTION TAGS [EXTRA_FILES]
  python3 "$PY" register "$JSONL" "$1" "$1.qcow2" "$2" "$3" "$4" "${5:-}"
}
patch() { # patch NEWNAME FROM KIND ARGS... : copy FROM.qcow2 to NEWNAME.qcow2 (unless the
  local new=$1 from=$2; shift 2  # same) and patch one named field; the record goes to the manifest
  [ "$new" = "$from" ] || cp "$B/$from.qcow2" "$B/$new.qcow2"
  python3 "$PY" patch "$B/$new.qcow2" "$1" "$META/$new.patch.json" "${@:2}"
}

# ----------------------------------------------------------------------------------------------
# The committed small set
# ----------------------------------------------------------------------------------------------
build_small() {
  # --- basics --------------------------------------------------------------------------------
  create no-bitmaps $((8 * MIB))
  qio no-bitmaps 'write -P 0x5a 0 8k' 'write -z 1M 1M'
  register no-bitmaps 0 "4 KiB clusters, 8 MiB, some data, no bitmaps extension at all" \
    "valid,no-bitmaps,cs4k"

  create empty-bitmap $((8 * MIB))
  add empty-bitmap empty
  register empty-bitmap 0 "4 KiB clusters, 8 MiB, one enabled bitmap 'empty' (granularity 4 KiB) that never saw a write: its table holds only all-zero entries" \
    "valid,one-bitmap,cs4k,g4k,empty-bitmap"

  create cs512-g512 $((8 * MIB)) cluster_size=512
  add cs512-g512 g512 -g 512
  add cs512-g512 g4k
  qio_writes cs512-g512 512 24 $((8 * MIB)) 512 8192 mixed
  # straddles the bitmap-cluster boundary of g512 (one 512 B bitmap cluster covers 2 MiB)
  # and a granule boundary of g4k
  qio cs512-g512 "write -P 0x77 $((2 * MIB - 1024)) 2048" "write -P 0x78 $((6 * MIB - 100)) 200"
  register cs512-g512 0 "512 B clusters, 8 MiB; bitmaps g512 (granularity 512 B, 4 table entries, each data cluster covers 2 MiB) and g4k (default 4 KiB); 24 seeded data/zero writes (seed 512) plus writes straddling the 2 MiB bitmap-cluster boundary and a granule boundary" \
    "valid,cs512,g512,g4k,random-writes,boundary-write,multi-table-entries"

  create cs4k-basic $((64 * MIB))
  add cs4k-basic b0
  add cs4k-basic b64k -g 65536
  qio_writes cs4k-basic 4096 32 $((64 * MIB)) 512 8192 mixed
  qio cs4k-basic "write -P 0x33 $((65536 - 100)) 200" "write -P 0x34 $((40 * MIB + 4096 - 1)) 2"
  register cs4k-basic 0 "4 KiB clusters, 64 MiB; bitmaps b0 (4 KiB) and b64k (64 KiB); 32 seeded data/zero writes (seed 4096) plus writes straddling a 64 KiB and a 4 KiB granule boundary" \
    "valid,cs4k,g4k,g64k,random-writes,boundary-write"

  create cs64k-basic $((64 * MIB)) cluster_size=65536
  add cs64k-basic b0
  qio_writes cs64k-basic 65536 16 $((64 * MIB)) 4096 $((1 * MIB)) zero
  qio cs64k-basic "write -z $((8 * MIB - 512)) 1024"
  register cs64k-basic 0 "64 KiB clusters (default), 64 MiB; bitmap b0 (64 KiB); 16 seeded zero-writes (seed 65536) and a zero-write straddling the 8 MiB granule boundary (zero-writes keep the file small: no guest data clusters)" \
    "valid,cs64k,g64k,random-writes,boundary-write"

  create granularities $((64 * MIB))
  add granularities g-512 -g 512
  add granularities g-4k -g 4096
  add granularities g-64k -g 65536
  add granularities g-1m -g $MIB
  add granularities g-2g -g $((2 * GIB))
  qio_writes granularities 777 20 $((64 * MIB)) 512 $((300 * KIB)) zero
  register granularities 0 "4 KiB clusters, 64 MiB; the same 20 seeded zero-writes (seed 777) recorded by bitmaps of granularity 512 B, 4 KiB, 64 KiB, 1 MiB and 2 GiB (1 bit for the whole disk)" \
    "valid,cs4k,g512,g4k,g64k,g1m,g2g,random-writes"

  local rb
  for rb in 1 2 4 8 16 32 64; do
    create refcount-bits-$rb $((2 * MIB)) cluster_size=512,refcount_bits=$rb
    add refcount-bits-$rb b0
    add refcount-bits-$rb fine -g 512 --disable
    qio_writes refcount-bits-$rb $((100 + rb)) 10 $((2 * MIB)) 512 4096 mixed
    register refcount-bits-$rb 0 "512 B clusters, refcount_bits=$rb, 2 MiB; bitmaps b0 (4 KiB, enabled) and fine (512 B, disabled, hence empty); 10 seeded data/zero writes (seed $((100 + rb)))" \
      "valid,cs512,refcount-bits-$rb,g4k,g512,disabled"
  done

  # --- many bitmaps, names ------------------------------------------------------------------------
  create many-bitmaps $((16 * MIB)) cluster_size=512
  local i g name
  for i in $(seq 0 19); do
    g=$((512 << (i % 8)))
    name=$(printf 'bm-%02d' "$i")
    add many-bitmaps "$name" -g "$g"
    qio_writes many-bitmaps $((1000 + i)) 3 $((16 * MIB)) 512 8192 zero
    if [ $((i % 3)) = 2 ]; then bitmap many-bitmaps "$name" --disable; fi
  done
  register many-bitmaps 0 "512 B clusters, 16 MiB; 20 bitmaps bm-00..bm-19 added one after another with granularity 512 B << (i % 8); after each add 3 seeded zero-writes (seed 1000+i), then every third bitmap (i % 3 == 2) is disabled: an enabled bitmap holds all writes made after its creation, a disabled one only the 3 writes right after it; the directory (20 entries, 640 bytes) spans two clusters, g512 bitmaps use 8 data clusters" \
    "valid,cs512,multi-cluster-directory,many-bitmaps,disabled,g512,g4k,g64k"

  create names-long-utf8 $((4 * MIB))
  local long
  long=$(python3 -c 'print(("long-name-" * 103)[:1023], end="")')
  add names-long-utf8 "$long"
  add names-long-utf8 'données-sauvegarde'
  add names-long-utf8 'バックアップ'
  add names-long-utf8 '🚀 rocket/with spaces'
  add names-long-utf8 'Ωmega.κ'
  qio_writes names-long-utf8 1023 6 $((4 * MIB)) 512 4096 mixed
  register names-long-utf8 0 "4 KiB clusters, 4 MiB; a bitmap with a 1023-byte ASCII name (the maximum), and UTF-8 names 'données-sauvegarde', 'バックアップ', '🚀 rocket/with spaces', 'Ωmega.κ'; 6 seeded writes" \
    "valid,cs4k,long-name,utf8-names"

  create ops-disable-merge-clear $((32 * MIB))
  add ops-disable-merge-clear live
  add ops-disable-merge-clear frozen -g 65536
  add ops-disable-merge-clear cleared
  add ops-disable-merge-clear reenabled
  qio_writes ops-disable-merge-clear 31 6 $((32 * MIB)) 512 16384 mixed
  bitmap ops-disable-merge-clear frozen --disable
  bitmap ops-disable-merge-clear reenabled --disable
  qio_writes ops-disable-merge-clear 32 6 $((32 * MIB)) 512 16384 mixed
  bitmap ops-disable-merge-clear reenabled --enable
  bitmap ops-disable-merge-clear cleared --clear
  qio_writes ops-disable-merge-clear 33 4 $((32 * MIB)) 512 16384 zero
  add ops-disable-merge-clear merged -g 512 --disable
  bitmap ops-disable-merge-clear merged --merge frozen --merge cleared
  register ops-disable-merge-clear 0 "4 KiB clusters, 32 MiB; live (enabled, all 16 writes), frozen (64 KiB, disabled after the first 6 writes), reenabled (disabled during writes 7-12, enabled again), cleared (cleared after 12 writes, then sees the last 4), merged (512 B, disabled, = frozen OR cleared, cross-granularity merge)" \
    "valid,cs4k,disabled,merged,cleared,enabled,g512,g4k,g64k"

  # fully dirty: nbits not a multiple of 64 (4 MiB + 5 sectors at 512 B granularity = 8197 bits)
  create fully-dirty $((4 * MIB + 2560)) cluster_size=512
  add fully-dirty all-512 -g 512
  add fully-dirty all-64k -g 65536
  qio fully-dirty "write -z 0 $((4 * MIB + 2560))"
  register fully-dirty 0 "512 B clusters, 4 MiB + 2560 B; every byte written (zero-write) so all-512 (8197 bits: two full data clusters plus a partial third) and all-64k (65 bits) are fully dirty; QEMU still writes real data clusters, not all-ones entries" \
    "valid,cs512,g512,g64k,fully-dirty,tail-bits"

  # odd sizes: qemu-img rounds 10000123 up to 10000384 (a multiple of 512)
  create odd-size 10000123
  add odd-size g64k -g 65536
  add odd-size g512 -g 512
  add odd-size g1m -g $MIB
  qio odd-size 'write -P 0x01 0 512' "write -P 0x02 $((10000384 - 512)) 512"
  register odd-size 0 "4 KiB clusters; created with size 10000123, which qemu-img rounds up to 10000384 (not a multiple of 64 KiB or 1 MiB); bitmaps g64k, g512, g1m; a write of the last 512 B (inside the last, partial granule of g64k and g1m)" \
    "valid,cs4k,odd-size,last-partial-granule,g64k,g512,g1m"

  cp "$B/odd-size.qcow2" "$B/odd-size-header-unaligned.qcow2"
  qio odd-size-header-unaligned "write -P 0x03 $((10000384 - 1024)) 512"
  patch odd-size-header-unaligned odd-size-header-unaligned size 10000123
  register odd-size-header-unaligned 0 "odd-size plus a write of [10000384-1024, +512), then the header size patched to 10000123 (not a multiple of 512). QEMU uses floor(size/512)*512 = 9999872 as disk length: g512 now has 19531 bits and its stored bit 19531 (the old last sector, written before the patch) is a tail bit inside the last 64-bit word: not dirty, but included in QEMU's sha256" \
    "valid,cs4k,odd-size,size-not-512-multiple,tail-bits,patched"

  # --- container features ----------------------------------------------------------------------
  create backing-base $((8 * MIB))
  add backing-base base-bm
  qio backing-base 'write -P 0xba 0 16k' 'write -P 0xbb 5M 4k' 'write -z 6M 1M'
  register backing-base 0 "backing file of backing-overlay: 4 KiB clusters, 8 MiB, bitmap base-bm with three writes" \
    "valid,cs4k,backing-base"
  (cd "$B" && qemu-img create -q -f qcow2 -o cluster_size=4096 -b backing-base.qcow2 -F qcow2 backing-overlay.qcow2)
  add backing-overlay overlay-bm
  add backing-overlay overlay-512 -g 512
  qio backing-overlay 'write -P 0x0a 4096 4096' 'write -P 0x0b 6M 1000' 'write -z 7M 64k'
  register backing-overlay 0 "overlay with relative backing file name 'backing-base.qcow2' (format qcow2, stored in a backing-format extension, name right after the end record); bitmaps overlay-bm and overlay-512 with 3 writes" \
    "valid,cs4k,backing-file,g512,g4k" backing-base.qcow2

  create extended-l2 $((16 * MIB)) extended_l2=on,cluster_size=65536
  add extended-l2 sub -g 2048
  add extended-l2 coarse
  qio extended-l2 'write -P 0x21 2048 1024' 'write -z 100k 8k' "write -z $((9 * MIB)) 2048"
  register extended-l2 0 "64 KiB clusters with extended L2 entries (32 subclusters of 2 KiB); bitmaps sub (2 KiB) and coarse (64 KiB); subcluster-sized writes" \
    "valid,cs64k,extended-l2,g2k,g64k"

  create zstd-compressed $((4 * MIB)) cluster_size=4096,compression_type=zstd
  add zstd-compressed b0
  # one cluster per compressed write: qemu compresses the clusters of one request in parallel
  # tasks and allocates in completion order, which is not deterministic
  qio zstd-compressed 'write -c -P 0x41 0 4k' 'write -c -P 0x41 4k 4k' 'write -c -P 0x42 64k 4k' "write -c -P 0x43 $((3 * MIB)) 4k" 'write -P 0x44 2M 512'
  register zstd-compressed 0 "4 KiB clusters, compression_type=zstd (incompatible bit 3, header_length 112), four compressed clusters written with qemu-io write -c (one cluster per request) and one plain write; bitmap b0" \
    "valid,cs4k,zstd,compressed-clusters"

  create lazy-refcounts $((4 * MIB)) cluster_size=4096,lazy_refcounts=on
  add lazy-refcounts b0
  qio lazy-refcounts 'write -P 0x4c 0 4k' 'write -P 0x4d 1M 8k'
  register lazy-refcounts 0 "4 KiB clusters, lazy_refcounts=on (compatible bit 0), closed cleanly so the dirty bit is clear; bitmap b0" \
    "valid,cs4k,lazy-refcounts"

  create lazy-refcounts-killed $((4 * MIB)) cluster_size=4096,lazy_refcounts=on
  add lazy-refcounts-killed b0
  qio lazy-refcounts-killed 'write -P 0x4c 0 4k'
  killed_writer lazy-refcounts-killed 'write -P 0x4d 1M 8k' 'write -P 0x4e 2M 4k'
  register lazy-refcounts-killed 0 "lazy refcounts, writer killed (SIGKILL after flush): incompatible dirty bit set, refcounts stale (qemu-img check reports errors), bitmap b0 in_use. Read-only for an editor" \
    "dirty-bit,in-use,cs4k,lazy-refcounts,killed-writer"

  create data-file $((128 * KIB)) cluster_size=4096,data_file=data-file.raw,data_file_raw=on
  add data-file b0 -g 512
  qio data-file 'write -P 0xdf 4096 8192' 'write -P 0xde 100000 100'
  register data-file 0 "external data file 'data-file.raw' (relative name, data_file_raw=on, incompatible bit 2, autoclear bit 1), 128 KiB; bitmap b0 (512 B) lives in the qcow2 file" \
    "valid,cs4k,data-file,g512" data-file.raw

  # --- in_use (crashed writer) -------------------------------------------------------------------
  create in-use-killed $((8 * MIB))
  add in-use-killed running
  add in-use-killed paused --disable
  qio in-use-killed 'write -P 0x91 0 8k'
  killed_writer in-use-killed 'write -P 0x92 1M 4k'
  register in-use-killed 0 "4 KiB clusters; bitmaps running (enabled) and paused (disabled), then a writer opened the image and was killed with SIGKILL: both have in_use set (QEMU: inconsistent, hashes them as zeros, qemu-nbd refuses them)" \
    "in-use,cs4k,killed-writer,disabled"

  create in-use-mixed $((8 * MIB))
  add in-use-mixed stale
  qio in-use-mixed 'write -P 0x93 0 8k'
  killed_writer in-use-mixed 'write -P 0x94 2M 4k'
  add in-use-mixed fresh
  qio in-use-mixed 'write -P 0x95 3M 4k' 'write -P 0x96 4M 100'
  register in-use-mixed 0 "4 KiB clusters; bitmap stale left in_use by a killed writer, then bitmap fresh added and two more writes: fresh is consistent, stale stays in_use (QEMU never rewrites inconsistent entries)" \
    "in-use,cs4k,killed-writer,mixed"

  # --- version 2 ---------------------------------------------------------------------------------
  create v2-plain $((4 * MIB)) cluster_size=4096,compat=0.10
  qio v2-plain 'write -P 0x22 0 8k'
  register v2-plain 0 "qcow2 version 2 (compat=0.10), no bitmaps (v2 cannot store any), 72-byte header" \
    "valid,v2,no-bitmaps,cs4k"

  create v2-amended-bitmaps $((4 * MIB))
  add v2-amended-bitmaps b0
  add v2-amended-bitmaps b1 -g 512
  qio v2-amended-bitmaps 'write -P 0x23 0 8k' 'write -P 0x24 1M 512'
  qemu-img amend -f qcow2 -o compat=0.10 "$B/v2-amended-bitmaps.qcow2"
  register v2-amended-bitmaps 0 "v3 image with bitmaps b0 and b1 amended to compat=0.10: QEMU 7.2 writes a v2 header that keeps the bitmaps extension; every open warns and ignores it, check reports the bitmap clusters as leaks" \
    "v2,stale-extension,leaks,cs4k"

  # --- autoclear bit 0 ---------------------------------------------------------------------------
  create corrupt-base $((4 * MIB)) cluster_size=512
  add corrupt-base b0
  add corrupt-base b1 --disable
  add corrupt-base b2 -g 512
  qio corrupt-base 'write -P 0xc0 0 4k' "write -P 0xc1 $((3 * MIB)) 1024" "write -z $((2 * MIB)) 64k" \
    "write -P 0xc2 $((4 * MIB - 512)) 512"
  register corrupt-base 0 "the good image every corrupt-* variant is patched from: 512 B clusters, 4 MiB, bitmaps b0 (4 KiB, enabled, 1 table entry), b1 (disabled, empty), b2 (512 B, enabled, 2 table entries, both data clusters in use)" \
    "valid,cs512,g4k,g512,disabled,corrupt-base"

  patch autoclear-cleared corrupt-base autoclear clear
  register autoclear-cleared 0 "corrupt-base with autoclear bit 0 (byte 95) cleared: the extension is present but untrusted; QEMU warns, ignores all bitmaps, check reports their clusters as leaks" \
    "stale-extension,autoclear,leaks,patched"

  create autoclear-set-no-ext $((4 * MIB))
  qio autoclear-set-no-ext 'write -P 0x31 0 4k'
  patch autoclear-set-no-ext autoclear-set-no-ext autoclear set
  register autoclear-set-no-ext 0 "image without a bitmaps extension but with autoclear bit 0 set (spec: error). QEMU 7.2 opens it; its first write would mark the image corrupt" \
    "autoclear,no-bitmaps,patched,inconsistent-header"

  # --- snapshot ------------------------------------------------------------------------------------
  create snapshot $((8 * MIB))
  add snapshot before
  qio snapshot 'write -P 0x51 0 8k' 'write -P 0x52 2M 4k'
  qemu-img snapshot -q -c snap1 "$B/snapshot.qcow2"
  add snapshot after -g 65536
  qio snapshot 'write -P 0x53 0 4k' 'write -P 0x54 5M 8k'
  python3 "$PY" normalize-snapshots "$B/snapshot.qcow2"
  register snapshot 0 "4 KiB clusters, 8 MiB, internal snapshot snap1 (date normalised to 2025-11-25T00:00Z) between two write batches; bitmaps before (sees all 4 writes) and after (64 KiB, added after the snapshot, sees 2)" \
    "valid,cs4k,snapshot,g64k"

  # --- corrupt variants of corrupt-base ------------------------------------------------------------
  patch corrupt-ext-length corrupt-base ext_length 16
  register corrupt-ext-length 0 "bitmaps extension length 16 instead of 24" "corrupt,extension"
  patch corrupt-reserved32 corrupt-base reserved32 1
  register corrupt-reserved32 0 "bitmaps extension reserved32 = 1" "corrupt,extension"
  patch corrupt-nb-bitmaps-zero corrupt-base nb_bitmaps 0
  register corrupt-nb-bitmaps-zero 0 "bitmaps extension nb_bitmaps = 0" "corrupt,extension"
  patch corrupt-nb-bitmaps-too-large corrupt-base nb_bitmaps nb+1
  register corrupt-nb-bitmaps-too-large 0 "nb_bitmaps = 4 but the directory holds 3 entries" "corrupt,extension,directory"
  patch corrupt-nb-bitmaps-too-small corrupt-base nb_bitmaps nb-1
  register corrupt-nb-bitmaps-too-small 0 "nb_bitmaps = 2 but the directory holds 3 entries" "corrupt,extension,directory"
  patch corrupt-dir-offset-unaligned corrupt-base dir_offset off+8
  register corrupt-dir-offset-unaligned 0 "bitmap_directory_offset moved by 8 bytes (not cluster aligned)" "corrupt,extension"
  patch corrupt-dir-size-too-big corrupt-base dir_size 67107848
  register corrupt-dir-size-too-big 0 "bitmap_directory_size = 67107848 (> 67107840 = 1024 * 65535)" "corrupt,extension"
  patch corrupt-dir-size-zero corrupt-base dir_size 0
  register corrupt-dir-size-zero 0 "bitmap_directory_size = 0" "corrupt,extension"
  patch corrupt-dir-size-short corrupt-base dir_size size-8
  register corrupt-dir-size-short 0 "bitmap_directory_size 8 bytes short of the entries' total (last entry passes the end)" "corrupt,extension,directory"
  patch corrupt-flags-bit2 corrupt-base flags b0 'flags|4'
  register corrupt-flags-bit2 0 "entry b0 flags bit 2 (extra_data_compatible) set; QEMU treats it as reserved" "corrupt,directory,flags"
  patch corrupt-flags-reserved corrupt-base flags b1 'flags|0x80000000'
  register corrupt-flags-reserved 0 "entry b1 flags bit 31 (reserved) set" "corrupt,directory,flags"
  patch corrupt-type corrupt-base type b0 2
  register corrupt-type 0 "entry b0 type = 2 (only 1, dirty tracking, is defined)" "corrupt,directory"
  patch corrupt-granularity-bits-8 corrupt-base granularity_bits b0 8
  register corrupt-granularity-bits-8 0 "entry b0 granularity_bits = 8 (QEMU minimum is 9)" "corrupt,directory,granularity"
  patch corrupt-granularity-bits-32 corrupt-base granularity_bits b1 32
  register corrupt-granularity-bits-32 0 "entry b1 granularity_bits = 32 (QEMU maximum is 31)" "corrupt,directory,granularity"
  patch corrupt-extra-data-size corrupt-base extra_data_size b0 4
  register corrupt-extra-data-size 0 "entry b0 extra_data_size = 4; the padded entry size stays 32 bytes, so the 4 extra-data bytes are the old name + 2 padding bytes and the 2-byte name is now read from the padding (two NULs)" "corrupt,directory,extra-data"
  patch corrupt-table-offset-unaligned corrupt-base bitmap_table_offset b0 toff+8
  register corrupt-table-offset-unaligned 0 "entry b0 bitmap_table_offset + 8 (not cluster aligned)" "corrupt,directory,table"
  patch corrupt-table-offset-zero corrupt-base bitmap_table_offset b1 0
  register corrupt-table-offset-zero 0 "entry b1 bitmap_table_offset = 0" "corrupt,directory,table"
  patch corrupt-table-size-zero corrupt-base bitmap_table_size b0 0
  register corrupt-table-size-zero 0 "entry b0 bitmap_table_size = 0" "corrupt,directory,table"
  patch corrupt-table-too-small corrupt-base bitmap_table_size b2 tsize-1
  register corrupt-table-too-small 0 "entry b2 bitmap_table_size 1 instead of 2 (in_use clear: too small for the disk)" "corrupt,directory,table"
  patch corrupt-table-too-big corrupt-base bitmap_table_size b0 tsize+1
  register corrupt-table-too-big 0 "entry b0 bitmap_table_size 2 instead of 1 (passes check_dir_entry, fails when the data is loaded)" "corrupt,directory,table"
  patch corrupt-table-entry-reserved corrupt-base table_entry b0 reserved
  register corrupt-table-entry-reserved 0 "first data entry of b0's table with reserved bit 1 set" "corrupt,table-entry"
  patch corrupt-table-entry-offset-bit0 corrupt-base table_entry b2 bit0
  register corrupt-table-entry-offset-bit0 0 "first data entry of b2's table: offset plus bit 0 (all-ones flag) set" "corrupt,table-entry"
  patch corrupt-table-entry-past-eof corrupt-base table_entry b0 past_eof
  register corrupt-table-entry-past-eof 0 "first data entry of b0's table points 64 clusters past the end of the file (QEMU reads zeros; check reports it)" "corrupt,table-entry,refcount"
  patch corrupt-duplicate-names corrupt-base name b1 "$(printf b0 | od -An -tx1 | tr -d ' \n')"
  register corrupt-duplicate-names 0 "entry b1 renamed to b0 (same length): two bitmaps named b0" "corrupt,directory,name"
  cp "$B/corrupt-base.qcow2" "$B/duplicate-name-in-use.qcow2"
  killed_writer duplicate-name-in-use 'write -P 0xc3 8k 512'
  patch duplicate-name-in-use duplicate-name-in-use name b1 "$(printf b0 | od -An -tx1 | tr -d ' \n')"
  register duplicate-name-in-use 0 "corrupt-base after a killed writer (all in_use), then entry b1 renamed to b0: QEMU skips the later in_use duplicate silently" \
    "in-use,directory,name,duplicate,patched,killed-writer"
  patch corrupt-name-invalid-utf8 corrupt-base name b1 fffe
  register corrupt-name-invalid-utf8 0 "entry b1 name bytes replaced by ff fe (not UTF-8). QEMU accepts it; qemu-img info shows U+FFFD U+FFFD; QMP cannot address it" \
    "name,invalid-utf8,patched"
  patch corrupt-refcount-zeroed corrupt-base refcount_zero b0
  register corrupt-refcount-zeroed 0 "refcount of b0's data cluster set to 0 (QEMU may hand the cluster out again); check exit 2" "corrupt,refcount"
  patch corrupt-leaked-cluster corrupt-base leak
  register corrupt-leaked-cluster 0 "a free cluster given refcount 1 without any reference: a leak; check exit 3" "leaks,refcount"

  cp "$B/corrupt-base.qcow2" "$B/stale-in-use-table-too-small.qcow2"
  killed_writer stale-in-use-table-too-small 'write -P 0xc4 8k 512'
  patch stale-in-use-table-too-small stale-in-use-table-too-small bitmap_table_size b2 tsize-1
  register stale-in-use-table-too-small 0 "all bitmaps in_use (killed writer), and b2's table size 1 instead of 2: accepted by QEMU because in_use bitmaps are not checked against the disk size. The data cluster of b2's dropped second table entry is now unreferenced, so check reports a leak (exit 3)" \
    "in-use,table,patched,killed-writer"
}

# ----------------------------------------------------------------------------------------------
# The large sparse set (test time only, never committed)
# ----------------------------------------------------------------------------------------------
build_large() {
  create large-4t $((4 * TIB)) cluster_size=65536
  add large-4t g64k -g 65536
  add large-4t g1m -g $MIB
  add large-4t g2g -g $((2 * GIB))
  qio_writes large-4t 4444 12 $((4 * TIB)) 65536 $((4 * MIB)) zero
  bitmap large-4t g1m --disable
  # one g64k bitmap cluster covers 64 KiB * 8 * 64 KiB = 32 GiB; straddle that, a 2 GiB
  # granule boundary, and touch the very end of the disk
  qio large-4t "write -z $((32 * GIB - 4096)) 8192" "write -P 0x4b $((6 * GIB - 512)) 1024" \
    "write -z $((4 * TIB - 65536)) 65536"
  register large-4t 1 "4 TiB sparse, 64 KiB clusters; g64k (2^26 bits, 128 table entries), g1m (disabled after 12 seeded writes), g2g (2 GiB, 2048 bits); writes straddling the 32 GiB bitmap-cluster boundary and a 2 GiB granule boundary, and the last 64 KiB" \
    "large,cs64k,g64k,g1m,g2g,random-writes,boundary-write,disabled"

  create large-64t $((64 * TIB)) cluster_size=$((2 * MIB))
  add large-64t g2g -g $((2 * GIB))
  add large-64t g64k -g 65536
  qio_writes large-64t 6464 6 $((64 * TIB)) $((2 * MIB)) $((2 * MIB)) zero
  qio large-64t "write -z $((2 * GIB - 4096)) 8192" "write -z $((64 * TIB - 4096)) 4096"
  register large-64t 1 "64 TiB sparse, 2 MiB clusters; g2g (2 GiB granularity, 32768 bits) and g64k (2^30 bits = 128 MiB of bitmap, 64 table entries of 2 MiB clusters); 6 seeded writes, a write straddling the first 2 GiB granule boundary, the last 4 KiB" \
    "large,cs2m,g2g,g64k,random-writes,boundary-write"

  create cs2m-small $((16 * MIB)) cluster_size=$((2 * MIB))
  add cs2m-small g1m -g $MIB
  add cs2m-small g512 -g 512
  qio cs2m-small 'write -P 0x2a 0 4k' "write -P 0x2b $((5 * MIB - 100)) 200" "write -z $((15 * MIB)) 1M"
  register cs2m-small 1 "2 MiB clusters, 16 MiB virtual (small disk, but ~16 MiB of file because every cluster is 2 MiB: kept out of the committed set); bitmaps g1m and g512" \
    "large,cs2m,g1m,g512,boundary-write"
}

if [ "$SMALL" = 1 ]; then build_small; fi
if [ "$LARGE" = 1 ]; then build_large; fi
T1=$(date +%s)

# ----------------------------------------------------------------------------------------------
# Move into OUTDIR and record what the oracle says
# ----------------------------------------------------------------------------------------------
if [ "$IS_DEFAULT" = 1 ]; then
  find "$OUTDIR" -maxdepth 1 -type f \( -name '*.qcow2' -o -name '*.raw' \) -delete
fi
find "$B" -maxdepth 1 -type f \( -name '*.qcow2' -o -name '*.raw' \) -exec mv -f {} "$OUTDIR/" \;
python3 "$PY" assemble "$OUTDIR" "$JSONL" "$META" "$MANIFEST"
T2=$(date +%s)
echo "built in $((T1 - T0)) s, oracle queries in $((T2 - T1)) s; images in $OUTDIR"
