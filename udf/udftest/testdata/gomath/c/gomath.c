/* Exports the gomath.h functions one by one, for udf/udftest's
 * TestGoMath, which compares them with Go's math package bit for bit. */
#include "../../../../sdk/c/gomath.h"

#define EXPORT(name) __attribute__((export_name(name)))

EXPORT("sin") double x_sin(double x) { return go_sin(x); }
EXPORT("cos") double x_cos(double x) { return go_cos(x); }
EXPORT("sincos_sin") double x_sincos_sin(double x) { double s, c; go_sincos(x, &s, &c); return s; }
EXPORT("sincos_cos") double x_sincos_cos(double x) { double s, c; go_sincos(x, &s, &c); return c; }
EXPORT("asin") double x_asin(double x) { return go_asin(x); }
EXPORT("atan") double x_atan(double x) { return go_atan(x); }
EXPORT("sqrt") double x_sqrt(double x) { return go_sqrt(x); }
EXPORT("atan2") double x_atan2(double y, double x) { return go_atan2(y, x); }
EXPORT("min") double x_min(double x, double y) { return go_min(x, y); }
EXPORT("mod") double x_mod(double x, double y) { return go_mod(x, y); }
EXPORT("seconds") double x_seconds(int64_t d) { return go_duration_seconds(d); }
