// Oracle harness for sim.fixed: the real ap_fixed.h / ap_int.h (from the installed
// hls4ml package) cast doubles and raw integers, and do full-precision arithmetic.
// The generated translation units instantiate the templates below once per type
// combination; main.cpp dispatches on the combination id read from the input.
//
// Input (text, one record per line):   <combo-id> <count>  followed by <count> lines
//   double cases:      <IEEE-754 bits as hex>
//   cast cases:        <source raw bits as hex>
//   arithmetic cases:  <a raw bits as hex> <b raw bits as hex>
// Output: one line per case, raw result bits as hex, wide values in 64-bit words,
// least significant word first; arithmetic results also give the C++ result type.
#ifndef FPGAFLOW_ORACLE_HARNESS_H
#define FPGAFLOW_ORACLE_HARNESS_H

#include <cstdint>
#include <cstdio>
#include <cstring>

#include "ap_fixed.h"
#include "ap_int.h"

typedef void (*case_runner)(FILE* in, FILE* out, long count);

struct combo_entry {
    int id;
    case_runner run;
};

/// Raw bits of x (any ap_fixed_base / ap_int_base of width W) as 64-bit hex words.
template <int W, typename T>
inline void emit_bits(FILE* out, const T& x) {
    for (int lo = 0; lo < W; lo += 64) {
        int hi = lo + 63 < W - 1 ? lo + 63 : W - 1;
        ap_uint<64> word = 0;
        word = x.range(hi, lo);
        fprintf(out, "%s%llx", lo ? ":" : "", (unsigned long long)word.to_uint64());
    }
}

inline uint64_t read_hex(FILE* in) {
    unsigned long long v = 0;
    if (fscanf(in, "%llx", &v) != 1) {
        fprintf(stderr, "oracle: malformed input\n");
        exit(2);
    }
    return v;
}

/// double -> T (T = ap_fixed<...>, ap_ufixed<...>, ap_int<W> or ap_uint<W>).
template <typename T>
void run_double(FILE* in, FILE* out, long count) {
    for (long k = 0; k < count; ++k) {
        uint64_t bits = read_hex(in);
        double d;
        memcpy(&d, &bits, sizeof d);
        T y = d;
        emit_bits<T::width>(out, y);
        fputc('\n', out);
    }
}

/// S (set from raw bits) -> T, the assignment `T y = x;`.
template <typename S, typename T>
void run_cast(FILE* in, FILE* out, long count) {
    for (long k = 0; k < count; ++k) {
        S x;
        x.setBits(read_hex(in));
        T y = x;
        emit_bits<T::width>(out, y);
        fputc('\n', out);
    }
}

template <int W, int I, bool S, ap_q_mode Q, ap_o_mode O, int N>
inline bool is_signed(const ap_fixed_base<W, I, S, Q, O, N>&) {
    return S;
}

/// The C++ result type as "W,I,S", its raw bits, and the result cast into T.
template <typename R, typename T>
inline void emit_full_and_cast(FILE* out, const R& r) {
    fprintf(out, " %d,%d,%d ", (int)R::width, (int)R::iwidth, (int)is_signed(r));
    emit_bits<R::width>(out, r);
    T y = r;
    fputc(' ', out);
    emit_bits<T::width>(out, y);
}

/// a*b, a+b, a-b and -a at full precision, each also cast into T.
template <typename A, typename B, typename T>
void run_arith(FILE* in, FILE* out, long count) {
    for (long k = 0; k < count; ++k) {
        A a;
        B b;
        a.setBits(read_hex(in));
        b.setBits(read_hex(in));
        emit_full_and_cast<decltype(a * b), T>(out, a * b);
        emit_full_and_cast<decltype(a + b), T>(out, a + b);
        emit_full_and_cast<decltype(a - b), T>(out, a - b);
        emit_full_and_cast<decltype(-a), T>(out, -a);
        fputc('\n', out);
    }
}

#endif
