// The ABI v1 exports. Re-export them from a UDF's entry file:
//
//   export * from "<sdk>/assembly/exports";
import { abiAlloc, abiInfo, abiProcess } from "./index";

/** Returns the ABI version, 1. */
export function sailstream_abi_version(): i32 { return 1; }

/** Returns a pointer to size writable bytes for the input (0 = cannot). */
export function sailstream_v1_alloc(size: u32): usize { return abiAlloc(size); }

/** Processes the input at ptr; returns (out_ptr << 32) | out_len. */
export function sailstream_v1_process(ptr: usize, len: u32): u64 { return abiProcess(ptr, len); }

/** Returns (ptr << 32) | len of {"name":…,"version":…}. */
export function sailstream_v1_info(): u64 { return abiInfo(); }
