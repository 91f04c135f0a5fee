;; Hostile: its start function never returns.
;; Otherwise a valid minimal ABI v1 guest. The host runs the start function
;; (moved to an export by the host's instrumentation) under the call
;; deadline, so Load fails instead of hanging.
(module
  (memory (export "memory") 2)
  (data (i32.const 0) "\01\00\00\00")
  (func $start (loop $forever (br $forever)))
  (start $start)
  (func (export "sailstream_abi_version") (result i32) (i32.const 1))
  (func (export "sailstream_v1_alloc") (param $size i32) (result i32)
    (i32.const 65536))
  (func (export "sailstream_v1_process") (param $p i32) (param $n i32) (result i64)
    (i64.const 48)))
