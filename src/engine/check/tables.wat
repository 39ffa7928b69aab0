;; The check's per-entry work in WebAssembly (SIMD where it pays): the source of tables.bytes.ts,
;; which `npm run build:wasm` (scripts/build-wasm.mjs, wabt from npm) assembles from this file.
;; tables.ts lays out the memory and calls these; tables-js.ts is the same code in JavaScript,
;; and tables.test.ts proves the two give the same answers.
;;
;; The contract of every function here: it does the work of the entries it can do without a
;; finding, and stops at the first one it cannot (returning its position). JavaScript then does
;; that one entry exactly as before (check/references.ts, check/check.ts) and calls again after
;; it. So the kernels never decide anything a message depends on: they only skip the entries
;; whose outcome is "counted, nothing to report".
;;
;; Memory (tables.ts): [counts: one byte per cluster of the file][stored: the refcount blocks of
;; the file's clusters, back to back in refcount-table order, so the refcount of cluster c is
;; entry c of this region][buffer: the tables being walked]. Entries are big-endian; a load
;; reads them little-endian, so every 8-byte word is byte-swapped first (one shuffle).
;;
;; next(p, end) -> byte position
;;   The first 8-byte word at or after byte `p` and below `end` that is not all zeros, or `end`.
;;   `p` and `end` are multiples of 8. Word by word up to a 64-byte boundary, then 64 bytes per
;;   step (four vectors OR-ed, one any_true), then word by word inside the step that stopped.
;;
;; setup(clusterBits, fileSize, counts, stored, refcountOrder, limit)
;;   The image's constants: where the regions are, and the largest count a kernel may write
;;   (min(largest refcount, 254): 255 and more are kept by JavaScript, as are overflows).
;;
;; l2(start, end, flags, times) -> byte position
;;   The L2 entries in [start, end) (`start` on an entry boundary), in a table referenced
;;   `times` times, as check_refcounts_l2 counts them. flags: 1 extended L2 (16-byte entries),
;;   2 external data file, 4 QEMU's OFLAG_COPIED pass visits this table, 8 the stored refcounts
;;   are not all known (then every entry that pass looks at is left to JavaScript).
;;   An entry is done here when it is all zeros, a plain zero cluster, an unallocated cluster
;;   (extended: with no allocation bit), or a normal or preallocated zero cluster that is not
;;   compressed, has no reserved bit, a sound subcluster bitmap, an aligned offset inside the
;;   file (not checked with a data file), a COPIED flag that matches its stored refcount being
;;   1 (when the pass visits the table; with a data file QEMU takes that refcount as 1), and a
;;   count that stays <= limit after adding `times`. It adds `times` to its cluster's count
;;   (not with a data file), 1 to `allocated`, 1 to `fragmented` when it does not follow the
;;   previous data cluster, and sets `next_contig`. Returns the position of the first other
;;   entry, or `end`.
;;
;; compare(from, to) -> cluster
;;   compare_refcounts over clusters [from, to): the first cluster whose stored refcount differs
;;   from its count, or whose count is 255 (JavaScript keeps the larger ones), or `to`. Sets
;;   `highest` to the last cluster before that with a stored refcount or a count. 16-bit
;;   refcounts (the default) are compared 16 clusters per step.
(module
  (memory (export "mem") 1)
  (global $cbits (mut i32) (i32.const 16))
  (global $file (mut i64) (i64.const 0))
  (global $counts (mut i32) (i32.const 0))
  (global $stored (mut i32) (i32.const 0))
  (global $order (mut i32) (i32.const 4))
  (global $limit (mut i32) (i32.const 0))
  ;; the walk's state, shared with JavaScript
  (global $next_contig (export "next_contig") (mut f64) (f64.const 0))
  (global $allocated (export "allocated") (mut i32) (i32.const 0))
  (global $fragmented (export "fragmented") (mut i32) (i32.const 0))
  (global $highest (export "highest") (mut i32) (i32.const 0))

  (func (export "setup") (param $cbits i32) (param $file f64) (param $counts i32) (param $stored i32)
      (param $order i32) (param $limit i32)
    (global.set $cbits (local.get $cbits))
    (global.set $file (i64.trunc_f64_u (local.get $file)))
    (global.set $counts (local.get $counts))
    (global.set $stored (local.get $stored))
    (global.set $order (local.get $order))
    (global.set $limit (local.get $limit)))

  (func $next (export "next") (param $p i32) (param $end i32) (result i32)
    ;; up to a 64-byte boundary
    (block $aligned
      (loop $head
        (br_if $aligned (i32.ge_u (local.get $p) (local.get $end)))
        (br_if $aligned (i32.eqz (i32.and (local.get $p) (i32.const 63))))
        (if (i64.ne (i64.load (local.get $p)) (i64.const 0)) (then (return (local.get $p))))
        (local.set $p (i32.add (local.get $p) (i32.const 8)))
        (br $head)))
    ;; 64 bytes at a time while a whole step fits
    (block $found
      (loop $big
        (br_if $found (i32.gt_u (i32.add (local.get $p) (i32.const 64)) (local.get $end)))
        (br_if $found
          (v128.any_true
            (v128.or
              (v128.or (v128.load (local.get $p)) (v128.load offset=16 (local.get $p)))
              (v128.or (v128.load offset=32 (local.get $p)) (v128.load offset=48 (local.get $p))))))
        (local.set $p (i32.add (local.get $p) (i32.const 64)))
        (br $big)))
    ;; the word inside the step that stopped, or the tail
    (block $none
      (loop $word
        (br_if $none (i32.ge_u (local.get $p) (local.get $end)))
        (if (i64.ne (i64.load (local.get $p)) (i64.const 0)) (then (return (local.get $p))))
        (local.set $p (i32.add (local.get $p) (i32.const 8)))
        (br $word)))
    (local.get $end))

  ;; The stored refcount of cluster c (entry c of the stored region), for every width.
  (func $rc (param $c i32) (result i64)
    (block $o6 (block $o5 (block $o4 (block $o3 (block $o2 (block $o1 (block $o0
      (br_table $o0 $o1 $o2 $o3 $o4 $o5 $o6 (global.get $order)))
      ;; 1 bit: bit (c & 7) of byte c >> 3
      (return (i64.extend_i32_u (i32.and (i32.shr_u
        (i32.load8_u (i32.add (global.get $stored) (i32.shr_u (local.get $c) (i32.const 3))))
        (i32.and (local.get $c) (i32.const 7))) (i32.const 1)))))
      ;; 2 bits
      (return (i64.extend_i32_u (i32.and (i32.shr_u
        (i32.load8_u (i32.add (global.get $stored) (i32.shr_u (local.get $c) (i32.const 2))))
        (i32.shl (i32.and (local.get $c) (i32.const 3)) (i32.const 1))) (i32.const 3)))))
      ;; 4 bits
      (return (i64.extend_i32_u (i32.and (i32.shr_u
        (i32.load8_u (i32.add (global.get $stored) (i32.shr_u (local.get $c) (i32.const 1))))
        (i32.shl (i32.and (local.get $c) (i32.const 1)) (i32.const 2))) (i32.const 15)))))
      ;; 8 bits
      (return (i64.load8_u (i32.add (global.get $stored) (local.get $c)))))
    ;; 16 bits, big-endian
    (return (i64.extend_i32_u (i32.or
      (i32.shl (i32.load8_u (i32.add (global.get $stored) (i32.shl (local.get $c) (i32.const 1)))) (i32.const 8))
      (i32.load8_u offset=1 (i32.add (global.get $stored) (i32.shl (local.get $c) (i32.const 1))))))))
    ;; 32 bits, big-endian
    (return (i64.extend_i32_u (i32x4.extract_lane 0 (i8x16.swizzle
      (v128.load32_zero (i32.add (global.get $stored) (i32.shl (local.get $c) (i32.const 2))))
      (v128.const i8x16 3 2 1 0 4 5 6 7 8 9 10 11 12 13 14 15))))))
    ;; 64 bits, big-endian
    (i64x2.extract_lane 0 (i8x16.swizzle
      (v128.load64_zero (i32.add (global.get $stored) (i32.shl (local.get $c) (i32.const 3))))
      (v128.const i8x16 7 6 5 4 3 2 1 0 8 9 10 11 12 13 14 15))))

  (func (export "l2") (param $start i32) (param $end i32) (param $flags i32) (param $times i32) (result i32)
    (local $p i32)
    (local $e i32)
    (local $esize i32)
    (local $ext i32)
    (local $dataFile i32)
    (local $copied i32)
    (local $unknown i32)
    (local $v v128)
    (local $x i64)
    (local $bm i64)
    (local $off i64)
    (local $cs i64)
    (local $c i32)
    (local $n i32)
    (local $next i64)
    (local $alloc i32)
    (local $frag i32)
    (local $runs i32)    ;; the run test applies (see $run below)
    (local $want v128)   ;; a run: the next two entries expected
    (local $step v128)   ;; a run: 2 clusters
    (local $cnt v128)
    (local.set $ext (i32.and (local.get $flags) (i32.const 1)))
    (local.set $dataFile (i32.and (local.get $flags) (i32.const 2)))
    (local.set $copied (i32.and (local.get $flags) (i32.const 4)))
    (local.set $unknown (i32.and (local.get $flags) (i32.const 8)))
    (local.set $esize (select (i32.const 16) (i32.const 8) (local.get $ext)))
    (local.set $cs (i64.shl (i64.const 1) (i64.extend_i32_u (global.get $cbits))))
    (local.set $step (i64x2.splat (i64.shl (local.get $cs) (i64.const 1))))
    ;; runs of 8 contiguous clusters at once: standard entries, and the COPIED pass either off or
    ;; on 16-bit refcounts that are all known (else the entries go one by one)
    (local.set $runs (i32.and (i32.eqz (local.get $ext))
      (i32.or (i32.eqz (local.get $copied))
        (i32.or (i32.ne (local.get $dataFile) (i32.const 0))
          (i32.and (i32.eqz (local.get $unknown)) (i32.eq (global.get $order) (i32.const 4)))))))
    (local.set $next (i64.trunc_f64_u (global.get $next_contig)))
    (local.set $alloc (global.get $allocated))
    (local.set $frag (global.get $fragmented))
    (local.set $p (local.get $start))
    (block $stop
      (loop $entry
        (local.set $e (local.get $end))
        (br_if $stop (i32.ge_u (local.get $p) (local.get $end)))
        (if (i64.eqz (i64.load (local.get $p))) (then
          (local.set $p (call $next (local.get $p) (local.get $end)))
          (br_if $stop (i32.ge_u (local.get $p) (local.get $end)))))
        ;; the entry holding the non-zero word: returned if it is left to JavaScript
        (local.set $e (i32.sub (local.get $p)
          (i32.and (i32.sub (local.get $p) (local.get $start)) (i32.sub (local.get $esize) (i32.const 1)))))
        (local.set $p (i32.add (local.get $e) (local.get $esize)))
        ;; both words byte-swapped: lane 0 the entry, lane 1 the subcluster bitmap (extended)
        (local.set $v (i8x16.swizzle (v128.load (local.get $e))
          (v128.const i8x16 7 6 5 4 3 2 1 0 15 14 13 12 11 10 9 8)))
        (local.set $x (i64x2.extract_lane 0 (local.get $v)))
        (local.set $bm (select (i64x2.extract_lane 1 (local.get $v)) (i64.const 0) (local.get $ext)))
        ;; compressed (bit 62) or reserved bits (L2E_STD_RESERVED_MASK): left to JavaScript
        (br_if $stop (i64.ne (i64.and (local.get $x) (i64.const 0x7f000000000001fe)) (i64.const 0)))
        (local.set $off (i64.and (local.get $x) (i64.const 0x00fffffffffffe00)))
        (block $data
          (if (i32.and (i32.eqz (local.get $ext)) (i32.wrap_i64 (i64.and (local.get $x) (i64.const 1))))
            (then
              ;; zero flag: a plain zero cluster without an offset, else preallocated
              (br_if $entry (i64.eqz (local.get $off)))
              (br $data)))
          (br_if $data (i64.ne (local.get $off) (i64.const 0)))
          ;; with a data file, offset 0 with COPIED is cluster 0 of the data file
          (br_if $data (i32.and (i32.ne (local.get $dataFile) (i32.const 0)) (i64.lt_s (local.get $x) (i64.const 0))))
          ;; unallocated: an allocation bit set is a corruption
          (br_if $stop (i64.ne (i64.and (local.get $bm) (i64.const 0xffffffff)) (i64.const 0)))
          (br $entry))
        ;; a normal or preallocated zero cluster at $off
        (br_if $stop (i64.ne (i64.and (i64.shr_u (local.get $bm) (i64.const 32)) (local.get $bm)) (i64.const 0)))
        (br_if $stop (i64.ne (i64.and (local.get $off) (i64.sub (local.get $cs) (i64.const 1))) (i64.const 0)))
        (if (local.get $dataFile)
          (then
            ;; QEMU takes the refcount of a data file's cluster as 1: COPIED must be set
            (br_if $stop (i32.and (i32.ne (local.get $copied) (i32.const 0)) (i64.ge_s (local.get $x) (i64.const 0)))))
          (else
            (br_if $stop (i64.ge_u (local.get $off) (global.get $file)))
            (local.set $c (i32.wrap_i64 (i64.shr_u (local.get $off) (i64.extend_i32_u (global.get $cbits)))))
            (if (local.get $copied) (then
              (br_if $stop (local.get $unknown))
              (br_if $stop (i32.ne
                (if (result i32) (i32.eq (global.get $order) (i32.const 4))
                  (then (i32.eq (i32.load16_u (i32.add (global.get $stored) (i32.shl (local.get $c) (i32.const 1)))) (i32.const 0x100)))
                  (else (i64.eq (call $rc (local.get $c)) (i64.const 1))))
                (i64.lt_s (local.get $x) (i64.const 0))))))
            (local.set $n (i32.add (i32.load8_u (i32.add (global.get $counts) (local.get $c))) (local.get $times)))
            (br_if $stop (i32.gt_u (local.get $n) (global.get $limit)))
            (i32.store8 (i32.add (global.get $counts) (local.get $c)) (local.get $n))))
        (local.set $alloc (i32.add (local.get $alloc) (i32.const 1)))
        (if (i32.and (i64.ne (local.get $next) (i64.const 0)) (i64.ne (local.get $off) (local.get $next)))
          (then (local.set $frag (i32.add (local.get $frag) (i32.const 1)))))
        ;; $run: the next 8 entries are this one's flags with the next 8 clusters (a table of a
        ;; preallocated or sequentially written image): all that differs between them is the
        ;; cluster, so they are done together when every one would be done alone. Nothing here
        ;; is done unless the 8 all are; else they go one by one.
        (if (local.get $runs) (then
          (local.set $want (i64x2.add (i64x2.splat (local.get $x))
            (i64x2.replace_lane 1 (i64x2.splat (local.get $cs)) (i64.shl (local.get $cs) (i64.const 1)))))
          (block $no_run
            (loop $run
              (br_if $no_run (i32.gt_u (i32.add (local.get $p) (i32.const 64)) (local.get $end)))
              ;; the last entry's value may not carry into the bits above the offset (56-62)
              (br_if $no_run (i64.ne (i64.and (i64.add (local.get $x) (i64.shl (local.get $cs) (i64.const 3)))
                (i64.const 0x7f000000000001fe)) (i64.const 0)))
              (br_if $no_run (i32.eqz (i64x2.all_true (v128.and
                (v128.and
                  (i64x2.eq (i8x16.swizzle (v128.load (local.get $p)) (v128.const i8x16 7 6 5 4 3 2 1 0 15 14 13 12 11 10 9 8))
                    (local.get $want))
                  (i64x2.eq (i8x16.swizzle (v128.load offset=16 (local.get $p)) (v128.const i8x16 7 6 5 4 3 2 1 0 15 14 13 12 11 10 9 8))
                    (i64x2.add (local.get $want) (local.get $step))))
                (v128.and
                  (i64x2.eq (i8x16.swizzle (v128.load offset=32 (local.get $p)) (v128.const i8x16 7 6 5 4 3 2 1 0 15 14 13 12 11 10 9 8))
                    (i64x2.add (local.get $want) (i64x2.shl (local.get $step) (i32.const 1))))
                  (i64x2.eq (i8x16.swizzle (v128.load offset=48 (local.get $p)) (v128.const i8x16 7 6 5 4 3 2 1 0 15 14 13 12 11 10 9 8))
                    (i64x2.add (local.get $want) (i64x2.mul (local.get $step) (i64x2.splat (i64.const 3))))))))))
              (if (i32.eqz (local.get $dataFile)) (then
                ;; clusters c+1 .. c+8: inside the file, counts that stay <= limit, refcounts of 1
                ;; exactly when COPIED is set
                (br_if $no_run (i64.ge_u (i64.add (local.get $off) (i64.shl (local.get $cs) (i64.const 3))) (global.get $file)))
                (local.set $cnt (i8x16.add_sat_u
                  (v128.load64_zero (i32.add (global.get $counts) (i32.add (local.get $c) (i32.const 1))))
                  (i8x16.splat (local.get $times))))
                (br_if $no_run (i64.ne (i64x2.extract_lane 0
                  (i8x16.gt_u (local.get $cnt) (i8x16.splat (global.get $limit)))) (i64.const 0)))
                (if (local.get $copied) (then
                  (local.set $v (i16x8.eq
                    (v128.load (i32.add (global.get $stored) (i32.shl (i32.add (local.get $c) (i32.const 1)) (i32.const 1))))
                    (i16x8.splat (i32.const 0x100))))
                  (br_if $no_run (select
                    (i32.eqz (i16x8.all_true (local.get $v)))
                    (v128.any_true (local.get $v))
                    (i64.lt_s (local.get $x) (i64.const 0))))))
                (i64.store (i32.add (global.get $counts) (i32.add (local.get $c) (i32.const 1)))
                  (i64x2.extract_lane 0 (local.get $cnt)))
                (local.set $c (i32.add (local.get $c) (i32.const 8)))))
              (local.set $alloc (i32.add (local.get $alloc) (i32.const 8)))
              (local.set $x (i64.add (local.get $x) (i64.shl (local.get $cs) (i64.const 3))))
              (local.set $off (i64.add (local.get $off) (i64.shl (local.get $cs) (i64.const 3))))
              (local.set $want (i64x2.add (local.get $want) (i64x2.splat (i64.shl (local.get $cs) (i64.const 3)))))
              (local.set $p (i32.add (local.get $p) (i32.const 64)))
              (br $run)))))
        (local.set $next (i64.add (local.get $off) (local.get $cs)))
        (br $entry)))
    (global.set $next_contig (f64.convert_i64_u (local.get $next)))
    (global.set $allocated (local.get $alloc))
    (global.set $fragmented (local.get $frag))
    (local.get $e))

  (func (export "compare") (param $from i32) (param $to i32) (result i32)
    (local $i i32)
    (local $j i32)
    (local $n i32)
    (local $r i64)
    (local $pending i32) ;; 1 + the start of the last 16-cluster step with a refcount or count not yet looked at
    (local $cv v128)
    (local $s0 v128)
    (local $s1 v128)
    (local $hi v128)
    (local $lo v128)
    (local.set $i (local.get $from))
    (block $mismatch
      (loop $steps
        ;; 16-bit refcounts: 16 clusters per step (their 32 bytes split into high and low bytes)
        (if (i32.eq (global.get $order) (i32.const 4)) (then
          (block $scalar
            (loop $vector
              (br_if $scalar (i32.gt_u (i32.add (local.get $i) (i32.const 16)) (local.get $to)))
              (local.set $cv (v128.load (i32.add (global.get $counts) (local.get $i))))
              (local.set $s0 (v128.load (i32.add (global.get $stored) (i32.shl (local.get $i) (i32.const 1)))))
              (local.set $s1 (v128.load offset=16 (i32.add (global.get $stored) (i32.shl (local.get $i) (i32.const 1)))))
              (local.set $hi (i8x16.shuffle 0 2 4 6 8 10 12 14 16 18 20 22 24 26 28 30 (local.get $s0) (local.get $s1)))
              (local.set $lo (i8x16.shuffle 1 3 5 7 9 11 13 15 17 19 21 23 25 27 29 31 (local.get $s0) (local.get $s1)))
              ;; a difference, or a count of 255: look at this step cluster by cluster
              (br_if $scalar (v128.any_true (v128.or
                (v128.or (local.get $hi) (v128.xor (local.get $lo) (local.get $cv)))
                (i8x16.eq (local.get $cv) (v128.const i8x16 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1)))))
              (if (v128.any_true (v128.or (local.get $cv) (local.get $hi)))
                (then (local.set $pending (i32.add (local.get $i) (i32.const 1)))))
              (local.set $i (i32.add (local.get $i) (i32.const 16)))
              (br $vector)))))
        (call $settle (local.get $pending))
        (local.set $pending (i32.const 0))
        ;; cluster by cluster: one step (16-bit), or all the rest (other widths, the tail)
        (local.set $j (select (i32.add (local.get $i) (i32.const 16)) (local.get $to)
          (i32.and (i32.eq (global.get $order) (i32.const 4)) (i32.le_u (i32.add (local.get $i) (i32.const 16)) (local.get $to)))))
        (block $done
          (loop $clusters
            (br_if $done (i32.ge_u (local.get $i) (local.get $j)))
            (local.set $n (i32.load8_u (i32.add (global.get $counts) (local.get $i))))
            (local.set $r (call $rc (local.get $i)))
            (br_if $mismatch (i32.eq (local.get $n) (i32.const 255)))
            (br_if $mismatch (i64.ne (local.get $r) (i64.extend_i32_u (local.get $n))))
            (if (i32.ne (local.get $n) (i32.const 0)) (then (global.set $highest (local.get $i))))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $clusters)))
        (br_if $steps (i32.lt_u (local.get $i) (local.get $to)))))
    (local.get $i))

  ;; `highest` from a vector step with a refcount or a count (1 + its start; 0: none): its last such cluster.
  (func $settle (param $pending i32)
    (local $k i32)
    (if (i32.eqz (local.get $pending)) (then (return)))
    (local.set $k (i32.add (local.get $pending) (i32.const 15)))
    (loop $back
      (local.set $k (i32.sub (local.get $k) (i32.const 1)))
      (if (i32.or
            (i32.load8_u (i32.add (global.get $counts) (local.get $k)))
            (i64.ne (call $rc (local.get $k)) (i64.const 0)))
        (then (global.set $highest (local.get $k)) (return)))
      (br_if $back (i32.gt_u (local.get $k) (i32.sub (local.get $pending) (i32.const 1))))))
)
