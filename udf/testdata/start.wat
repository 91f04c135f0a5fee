;; Not hostile: a guest that needs its start function. The output header's
;; ABI version (1 at address 0) is written by the start function, not by a
;; data segment, so a batch succeeds only if the host ran it. It also reads
;; and writes a global of its own and an imported one is absent: the
;; instrumentation must append its global after the module's.
(module
  (memory (export "memory") 2)
  (global $version (mut i32) (i32.const 0))
  (func $start
    (local $i i32)
    ;; A loop, so the start function runs instrumented code.
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 10))))
    (global.set $version (i32.const 1))
    (i32.store (i32.const 0) (global.get $version)))
  (start $start)
  (func (export "sailstream_abi_version") (result i32) (global.get $version))
  (func (export "sailstream_v1_alloc") (param $size i32) (result i32)
    (i32.const 65536))
  (func (export "sailstream_v1_process") (param $p i32) (param $n i32) (result i64)
    (i64.const 48)))
