;; The scan's block kernel in WebAssembly SIMD: the source of kernel-wasm.bytes.ts, which
;; `npm run build:wasm` (scripts/build-wasm.mjs, wabt from npm) assembles from this file.
;;
;; blocks(src, nblocks, onesOut, runsOut, carry, onesBefore, runsBefore) -> last bit
;;   For each of `nblocks` 512-byte blocks of the bitmap at memory[src ..], count its set bits
;;   and its run starts (set bits whose predecessor is clear; `carry` is the bit before the first
;;   block, 0 or 1), and write the running totals as f64s: onesOut[i] = onesBefore + the set bits
;;   of blocks 0..i, runsOut[i] likewise (the reader's block index takes them as they are).
;;   Returns the last bit of the last block, the carry into the next call. Bits are little-endian in each byte
;;   and bytes in address order (spec §4.5), which is the order of the bits of a little-endian
;;   i64, so the predecessor of bit j of a 64-bit lane is bit j-1, and of bit 0 it is bit 63 of
;;   the lane before.
;;
;; Per 16 bytes v (two i64 lanes):
;;   hi     = v >> 63 per lane                        top bit of each lane, moved to bit 0
;;   cin    = (hi of the previous 16 bytes, hi of v) bytes 8..23: the top bit of the lane before
;;            each lane, at bit 0
;;   starts = v & ~(v << 1 | cin)
;;   ones  += popcnt8(v); runs += popcnt8(starts)     per-byte counts, <= 8 per vector
;; A block is two halves of 16 vectors, so a byte lane of `ones` holds at most 16 * 8 = 128
;; before it is widened (extadd_pairwise) into the 16-bit sums of the block.
;;
;; Sparse bitmaps (the usual case: a few writes over a large disk) are mostly zero bytes. After
;; a half with no set bit, the next half is first OR-ed together and skipped when it is all
;; zero (its top bits, the next carry, are then zero too). A half after a non-zero one is
;; counted directly, so dense data pays one any_true per half and nothing per vector.
;;
;; Memory: 17 pages = 1 MiB of data at offset 0 (kernel.ts: PIECE_BYTES), then the running
;; totals of its 2,048 blocks: 16 KiB of f64 set bits, 16 KiB of f64 run starts.
(module
  (memory (export "mem") 17)
  (func (export "blocks") (param $src i32) (param $nblocks i32) (param $onesOut i32) (param $runsOut i32) (param $carry i32)
      (param $onesAcc f64) (param $runsAcc f64) (result i32)
    (local $prev v128)   ;; hi of the previous 16 bytes
    (local $v v128)
    (local $hi v128)
    (local $cin v128)
    (local $starts v128)
    (local $ones8 v128)  ;; per-byte sums over one half
    (local $runs8 v128)
    (local $ones16 v128) ;; per-16-bit sums over one block
    (local $runs16 v128)
    (local $sum v128)
    (local $any v128)
    (local $b i32)       ;; block
    (local $h i32)       ;; half of the block
    (local $i i32)       ;; vector of the half
    (local $end i32)
    (local $zeroBefore i32) ;; the previous half had no set bit
    (local.set $prev (i64x2.splat (i64.extend_i32_u (local.get $carry))))
    (local.set $zeroBefore (i32.const 1))
    (block $done
      (loop $block
        (br_if $done (i32.ge_u (local.get $b) (local.get $nblocks)))
        (local.set $ones16 (v128.const i64x2 0 0))
        (local.set $runs16 (v128.const i64x2 0 0))
        (local.set $h (i32.const 0))
        (loop $half
          (block $counted
            ;; After a zero half: skip this one too when all of its 256 bytes are zero.
            (if (local.get $zeroBefore)
              (then
                (local.set $any (v128.const i64x2 0 0))
                (local.set $end (i32.add (local.get $src) (i32.const 256)))
                (local.set $i (local.get $src))
                (loop $or
                  (local.set $any (v128.or (local.get $any) (v128.load (local.get $i))))
                  (local.set $any (v128.or (local.get $any) (v128.load offset=16 (local.get $i))))
                  (local.set $i (i32.add (local.get $i) (i32.const 32)))
                  (br_if $or (i32.lt_u (local.get $i) (local.get $end))))
                (if (i32.eqz (v128.any_true (local.get $any)))
                  (then
                    (local.set $prev (v128.const i64x2 0 0))
                    (local.set $src (local.get $end))
                    (br $counted)))))
            (local.set $ones8 (v128.const i64x2 0 0))
            (local.set $runs8 (v128.const i64x2 0 0))
            (local.set $i (i32.const 0))
            (loop $vec
              (local.set $v (v128.load (local.get $src)))
              (local.set $hi (i64x2.shr_u (local.get $v) (i32.const 63)))
              (local.set $cin (i8x16.shuffle 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 (local.get $prev) (local.get $hi)))
              (local.set $starts
                (v128.andnot (local.get $v) (v128.or (i64x2.shl (local.get $v) (i32.const 1)) (local.get $cin))))
              (local.set $ones8 (i8x16.add (local.get $ones8) (i8x16.popcnt (local.get $v))))
              (local.set $runs8 (i8x16.add (local.get $runs8) (i8x16.popcnt (local.get $starts))))
              (local.set $prev (local.get $hi))
              (local.set $src (i32.add (local.get $src) (i32.const 16)))
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br_if $vec (i32.lt_u (local.get $i) (i32.const 16))))
            (local.set $ones16 (i16x8.add (local.get $ones16) (i16x8.extadd_pairwise_i8x16_u (local.get $ones8))))
            (local.set $runs16 (i16x8.add (local.get $runs16) (i16x8.extadd_pairwise_i8x16_u (local.get $runs8))))
            (local.set $zeroBefore (i32.eqz (v128.any_true (local.get $ones8)))))
          (local.set $h (i32.add (local.get $h) (i32.const 1)))
          (br_if $half (i32.lt_u (local.get $h) (i32.const 2))))
        ;; The block's sums (the four 32-bit lanes of the widened counts, added) onto the totals.
        (local.set $sum (i32x4.extadd_pairwise_i16x8_u (local.get $ones16)))
        (local.set $onesAcc (f64.add (local.get $onesAcc) (f64.convert_i32_u
          (i32.add
            (i32.add (i32x4.extract_lane 0 (local.get $sum)) (i32x4.extract_lane 1 (local.get $sum)))
            (i32.add (i32x4.extract_lane 2 (local.get $sum)) (i32x4.extract_lane 3 (local.get $sum)))))))
        (f64.store (local.get $onesOut) (local.get $onesAcc))
        (local.set $sum (i32x4.extadd_pairwise_i16x8_u (local.get $runs16)))
        (local.set $runsAcc (f64.add (local.get $runsAcc) (f64.convert_i32_u
          (i32.add
            (i32.add (i32x4.extract_lane 0 (local.get $sum)) (i32x4.extract_lane 1 (local.get $sum)))
            (i32.add (i32x4.extract_lane 2 (local.get $sum)) (i32x4.extract_lane 3 (local.get $sum)))))))
        (f64.store (local.get $runsOut) (local.get $runsAcc))
        (local.set $onesOut (i32.add (local.get $onesOut) (i32.const 8)))
        (local.set $runsOut (i32.add (local.get $runsOut) (i32.const 8)))
        (local.set $b (i32.add (local.get $b) (i32.const 1)))
        (br $block)))
    (i32.wrap_i64 (i64x2.extract_lane 1 (local.get $prev)))))
