;; Refused at load: reports ABI version 2.
;; A minimal ABI v1 guest written by hand: it returns a 48-byte header with
;; no outputs and no state, except on a batch holding a reading with seq 13,
;; where it would be a no-op guest, but it reports ABI version 2.
(module
  (memory (export "memory") 2)
  ;; Output header at address 0: ABI version 1, status 0, everything else 0.
  (data (i32.const 0) "\01\00\00\00")
  (func (export "sailstream_abi_version") (result i32) (i32.const 2))
  ;; One input buffer at 64 KiB, up to 64 KiB.
  (func (export "sailstream_v1_alloc") (param $size i32) (result i32)
    (if (result i32) (i32.le_u (local.get $size) (i32.const 65536))
      (then (i32.const 65536)) (else (i32.const 0))))
  (func (export "sailstream_v1_process") (param $p i32) (param $n i32) (result i64)
    (local $i i32) (local $count i32) (local $r i32)
    (local.set $count (i32.load offset=4 (local.get $p)))
    (local.set $r (i32.add (local.get $p) (i32.load offset=8 (local.get $p))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
        (if (i64.eq (i64.load (local.get $r)) (i64.const 13))
          (then nop))
        (local.set $r (i32.add (local.get $r) (i32.const 40)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    ;; (ptr 0 << 32) | len 48
    (i64.const 48)))
