// Exports the gomath.ts functions one by one, for udf/udftest's
// TestGoMath, which compares them with Go's math package bit for bit.
import * as m from "../../../../sdk/assemblyscript/assembly/gomath";

export function sin(x: f64): f64 { return m.sin(x); }
export function cos(x: f64): f64 { return m.cos(x); }
export function sincos_sin(x: f64): f64 { m.sincos(x); return m.sinOut; }
export function sincos_cos(x: f64): f64 { m.sincos(x); return m.cosOut; }
export function asin(x: f64): f64 { return m.asin(x); }
export function atan(x: f64): f64 { return m.atan(x); }
export function sqrt(x: f64): f64 { return m.gosqrt(x); }
export function atan2(y: f64, x: f64): f64 { return m.atan2(y, x); }
export function min(x: f64, y: f64): f64 { return m.gomin(x, y); }
export function mod(x: f64, y: f64): f64 { return m.mod(x, y); }
export function seconds(d: i64): f64 { return m.durationSeconds(d); }
