;; The check's zero skipper in WebAssembly SIMD: the source of nonzero.bytes.ts, which
;; `npm run build:wasm` (scripts/build-wasm.mjs, wabt from npm) assembles from this file.
;;
;; next(p, end) -> byte position
;;   The first 8-byte word at or after byte `p` and below `end` that is not all zeros, or `end`
;;   when there is none. `p` and `end` are multiples of 8. The walk over L1 and L2 tables
;;   (check/references.ts) reads each table into this memory and asks for its non-zero entries
;;   one after another: on a sparse image almost every entry is zero, and finding the few that
;;   are not is the whole cost of the walk beyond reading the tables.
;;
;; Word by word up to a 64-byte boundary, then 64 bytes per step (four vectors OR-ed, one
;; any_true), then word by word again inside the 64 bytes that hold a non-zero word and in the
;; tail. Zero is zero in either byte order, so nothing is swapped.
;;
;; Memory: exported, one page to start; nonzero.ts grows it to the largest table it reads.
(module
  (memory (export "mem") 1)
  (func (export "next") (param $p i32) (param $end i32) (result i32)
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
)
