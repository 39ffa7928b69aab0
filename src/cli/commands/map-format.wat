;; The records of `qbm map`, formatted in WebAssembly: the source of map-format.bytes.ts, which
;; `npm run build:wasm` (scripts/build-wasm.mjs, wabt from npm) assembles from this file.
;;
;; Why WebAssembly: a million extents make ~20 MB of text, formatted once per process. JavaScript
;; pays its JIT warm-up on exactly that loop (~50 ms cold against ~25 ms warm, bench/README.md);
;; WebAssembly is compiled before it runs.
;;
;; Memory (37 pages):
;;   0     digit pairs "00" .. "99" (200 bytes)
;;   256   the fixed strings of a record, each at a 16-byte slot, padded
;;   4096  IN: a batch of runs, [start0, end0, start1, end1, ...] in bits as f64 (<= 16,384
;;         runs; BitmapReader.runBatches), turned into bytes here: offset = start * granularity,
;;         end = min(end * granularity, disk length) (the last granule may be short)
;;   OUT0, OUT1: two output buffers of FLUSH (1 MiB) + 4 KiB of slack; a record never passes
;;   the slack, so `records` stops at the first record that ends at or past FLUSH.
;;
;; The output is nbdinfo's: JSON `{"offset":N,"length":N}` records (with `,"dirty":true|false`
;; when the clean gaps are listed too), or aligned columns "%W" "  %W" "    1  dirty".
(module
  (memory (export "mem") 37)
  (data (i32.const 0)
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899")
  (data (i32.const 256) "\0a{\22offset\22:")       ;; 11 bytes
  (data (i32.const 272) ",\22length\22:")          ;; 10
  (data (i32.const 288) ",\22dirty\22:true}")      ;; 14
  (data (i32.const 304) ",\22dirty\22:false}")     ;; 15
  (data (i32.const 320) "    1  dirty\0a")         ;; 13
  (data (i32.const 336) "    0  clean\0a")         ;; 13
  (data (i32.const 352) "\0a]\0a")                 ;; 3

  (global $json (mut i32) (i32.const 1))
  (global $all (mut i32) (i32.const 0))
  (global $width (mut i32) (i32.const 0))
  (global $first (mut i32) (i32.const 1))  ;; no record written yet (JSON: no comma before it)
  (global $prev (mut f64) (f64.const 0))   ;; end of the previous dirty extent
  (global $granularity (mut f64) (f64.const 1))
  (global $diskLength (mut f64) (f64.const 0))
  (global $out (mut i32) (i32.const 0))    ;; the output buffer being filled
  (global $pos (mut i32) (i32.const 0))    ;; bytes in it

  (func (export "inAt") (result i32) (i32.const 4096))
  (func (export "outAt") (param $k i32) (result i32)
    (i32.add (i32.const 266240) (i32.mul (local.get $k) (i32.const 1052672))))
  (func (export "pos") (result i32) (global.get $pos))

  ;; Start: the format, the bitmap's granularity and disk length, and the first output buffer.
  (func (export "reset") (param $json i32) (param $all i32) (param $width i32) (param $granularity f64) (param $diskLength f64) (param $out i32)
    (global.set $granularity (local.get $granularity))
    (global.set $diskLength (local.get $diskLength))
    (global.set $json (local.get $json))
    (global.set $all (local.get $all))
    (global.set $width (local.get $width))
    (global.set $first (i32.const 1))
    (global.set $prev (f64.const 0))
    (global.set $out (local.get $out))
    (global.set $pos (i32.const 0)))

  ;; Go on in output buffer $out (the other one is being written).
  (func (export "switchTo") (param $out i32)
    (global.set $out (local.get $out))
    (global.set $pos (i32.const 0)))

  ;; Copy a fixed string of at most 16 bytes from slot $src; returns the position after it
  ;; (bytes past it up to 16 are overwritten by what comes next, or lie past the output).
  (func $put (param $p i32) (param $src i32) (param $len i32) (result i32)
    (i64.store (local.get $p) (i64.load (local.get $src)))
    (i64.store offset=8 (local.get $p) (i64.load offset=8 (local.get $src)))
    (i32.add (local.get $p) (local.get $len)))

  ;; Decimal digits of 0 <= m < 10^8.
  (func $digits8 (param $m i32) (result i32)
    (if (result i32) (i32.lt_u (local.get $m) (i32.const 10000))
      (then (if (result i32) (i32.lt_u (local.get $m) (i32.const 100))
        (then (select (i32.const 1) (i32.const 2) (i32.lt_u (local.get $m) (i32.const 10))))
        (else (select (i32.const 3) (i32.const 4) (i32.lt_u (local.get $m) (i32.const 1000))))))
      (else (if (result i32) (i32.lt_u (local.get $m) (i32.const 1000000))
        (then (select (i32.const 5) (i32.const 6) (i32.lt_u (local.get $m) (i32.const 100000))))
        (else (select (i32.const 7) (i32.const 8) (i32.lt_u (local.get $m) (i32.const 10000000))))))))

  ;; The last $nd digits of 0 <= m < 10^8 (zero-padded), ending before $end, two at a time:
  ;; m / 100 = (m * 1374389535) >> 37 for every 32-bit m.
  (func $putDigits (param $end i32) (param $m i32) (param $nd i32)
    (local $q i32)
    (block $done
      (loop $pairs
        (br_if $done (i32.lt_u (local.get $nd) (i32.const 2)))
        (local.set $q (i32.wrap_i64 (i64.shr_u (i64.mul (i64.extend_i32_u (local.get $m)) (i64.const 1374389535)) (i64.const 37))))
        (local.set $end (i32.sub (local.get $end) (i32.const 2)))
        (i32.store16 (local.get $end)
          (i32.load16_u (i32.shl (i32.sub (local.get $m) (i32.mul (local.get $q) (i32.const 100))) (i32.const 1))))
        (local.set $m (local.get $q))
        (local.set $nd (i32.sub (local.get $nd) (i32.const 2)))
        (br $pairs)))
    (if (local.get $nd)
      (then (i32.store8 (i32.sub (local.get $end) (i32.const 1)) (i32.add (i32.const 48) (local.get $m))))))

  ;; A safe integer $n in decimal at $p, right-aligned in $width columns; returns the position
  ;; after it. $n is split into two parts below 10^8 (the quotient corrected by one either way).
  (func $num (param $p i32) (param $n f64) (param $width i32) (result i32)
    (local $q f64) (local $r f64) (local $hi i32) (local $lo i32) (local $nd i32) (local $end i32)
    (local.set $r (local.get $n))
    (if (f64.ge (local.get $n) (f64.const 100000000))
      (then
        (local.set $q (f64.floor (f64.div (local.get $n) (f64.const 100000000))))
        (local.set $r (f64.sub (local.get $n) (f64.mul (local.get $q) (f64.const 100000000))))
        (if (f64.lt (local.get $r) (f64.const 0))
          (then (local.set $q (f64.sub (local.get $q) (f64.const 1)))
                (local.set $r (f64.add (local.get $r) (f64.const 100000000)))))
        (if (f64.ge (local.get $r) (f64.const 100000000))
          (then (local.set $q (f64.add (local.get $q) (f64.const 1)))
                (local.set $r (f64.sub (local.get $r) (f64.const 100000000)))))
        (local.set $hi (i32.trunc_f64_u (local.get $q)))))
    (local.set $lo (i32.trunc_f64_u (local.get $r)))
    (local.set $nd (if (result i32) (local.get $hi)
      (then (i32.add (i32.const 8) (call $digits8 (local.get $hi))))
      (else (call $digits8 (local.get $lo)))))
    (block $padded
      (loop $pad
        (br_if $padded (i32.le_s (local.get $width) (local.get $nd)))
        (i32.store8 (local.get $p) (i32.const 32))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (local.set $width (i32.sub (local.get $width) (i32.const 1)))
        (br $pad)))
    (local.set $end (i32.add (local.get $p) (local.get $nd)))
    (if (local.get $hi)
      (then
        (call $putDigits (local.get $end) (local.get $lo) (i32.const 8))
        (call $putDigits (i32.sub (local.get $end) (i32.const 8)) (local.get $hi) (i32.sub (local.get $nd) (i32.const 8))))
      (else (call $putDigits (local.get $end) (local.get $lo) (local.get $nd))))
    (local.get $end))

  ;; One record at $p; $kind 0 = dirty (no field: dirty extents only), 1 = dirty, 2 = clean.
  (func $record (param $p i32) (param $offset f64) (param $length f64) (param $kind i32) (result i32)
    (if (result i32) (global.get $json)
      (then
        (if (i32.eqz (global.get $first))
          (then (i32.store8 (local.get $p) (i32.const 44)) ;; ,
                (local.set $p (i32.add (local.get $p) (i32.const 1)))))
        (global.set $first (i32.const 0))
        (local.set $p (call $put (local.get $p) (i32.const 256) (i32.const 11)))
        (local.set $p (call $num (local.get $p) (local.get $offset) (i32.const 0)))
        (local.set $p (call $put (local.get $p) (i32.const 272) (i32.const 10)))
        (local.set $p (call $num (local.get $p) (local.get $length) (i32.const 0)))
        (if (result i32) (i32.eq (local.get $kind) (i32.const 1))
          (then (call $put (local.get $p) (i32.const 288) (i32.const 14)))
          (else (if (result i32) (i32.eq (local.get $kind) (i32.const 2))
            (then (call $put (local.get $p) (i32.const 304) (i32.const 15)))
            (else (i32.store8 (local.get $p) (i32.const 125)) ;; }
                  (i32.add (local.get $p) (i32.const 1)))))))
      (else
        (local.set $p (call $num (local.get $p) (local.get $offset) (global.get $width)))
        (i32.store16 (local.get $p) (i32.const 0x2020)) ;; two spaces
        (local.set $p (call $num (i32.add (local.get $p) (i32.const 2)) (local.get $length) (global.get $width)))
        (call $put (local.get $p) (select (i32.const 336) (i32.const 320) (i32.eq (local.get $kind) (i32.const 2))) (i32.const 13)))))

  ;; "[" before the first JSON record.
  (func (export "start")
    (if (global.get $json)
      (then (i32.store8 (global.get $out) (i32.const 91))
            (global.set $pos (i32.add (global.get $pos) (i32.const 1))))))

  ;; The records of runs [$i, $n) of IN, until the output buffer passes FLUSH; returns the next run.
  (func (export "records") (param $i i32) (param $n i32) (result i32)
    (local $p i32) (local $limit i32) (local $at i32) (local $offset f64) (local $length f64) (local $end f64)
    (local.set $p (i32.add (global.get $out) (global.get $pos)))
    (local.set $limit (i32.add (global.get $out) (i32.const 1048576)))
    (block $done
      (loop $each
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (br_if $done (i32.ge_u (local.get $p) (local.get $limit)))
        (local.set $at (i32.add (i32.const 4096) (i32.shl (local.get $i) (i32.const 4))))
        (local.set $offset (f64.mul (f64.load (local.get $at)) (global.get $granularity)))
        (local.set $end (f64.min (f64.mul (f64.load offset=8 (local.get $at)) (global.get $granularity)) (global.get $diskLength)))
        (local.set $length (f64.sub (local.get $end) (local.get $offset)))
        (if (global.get $all)
          (then
            (if (f64.gt (local.get $offset) (global.get $prev))
              (then (local.set $p (call $record (local.get $p) (global.get $prev) (f64.sub (local.get $offset) (global.get $prev)) (i32.const 2)))))
            (local.set $p (call $record (local.get $p) (local.get $offset) (local.get $length) (i32.const 1))))
          (else (local.set $p (call $record (local.get $p) (local.get $offset) (local.get $length) (i32.const 0)))))
        (global.set $prev (f64.add (local.get $offset) (local.get $length)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $each)))
    (global.set $pos (i32.sub (local.get $p) (global.get $out)))
    (local.get $i))

  ;; The end: with the clean gaps, the one after the last dirty extent; then "]" for JSON.
  (func (export "finish")
    (local $p i32)
    (local.set $p (i32.add (global.get $out) (global.get $pos)))
    (if (i32.and (global.get $all) (f64.lt (global.get $prev) (global.get $diskLength)))
      (then (local.set $p (call $record (local.get $p) (global.get $prev) (f64.sub (global.get $diskLength) (global.get $prev)) (i32.const 2)))))
    (if (global.get $json)
      (then (local.set $p
        (if (result i32) (global.get $first)
          (then (call $put (local.get $p) (i32.const 353) (i32.const 2)))   ;; "]\n"
          (else (call $put (local.get $p) (i32.const 352) (i32.const 3))))))) ;; "\n]\n"
    (global.set $pos (i32.sub (local.get $p) (global.get $out)))))
