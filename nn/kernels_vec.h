/* nn/kernels_vec.h - the vector kernels, written once in nn/simd.h's
   vocabulary and included once by each of nn/kernels_avx512.c,
   nn/kernels_avx2.c and nn/kernels_neon.c, with KN(name) giving each copy
   its suffix. Each kernel does whole vectors and hands the leftovers to its
   scalar twin (the _ref functions), so the two agree exactly on the tail
   and closely everywhere else. */

/* exp(x) for |x| < 88: x = n ln2 + r, |r| <= ln2/2; exp(r) by its degree-6
   Taylor polynomial (relative error < 2e-7 there), times 2^n built in the
   exponent bits. */
DC_TARGET static inline vf KN(vexp)(vf x)
{
    x = vmin(vmax(x, vset(-87.0f)), vset(88.0f));
    vi n = vround_i(vmul(x, vset(1.44269504088896341f)));
    vf nf = vi_to_f(n);
    vf r = vfma(nf, vset(-0.693145751953125f), x);      /* ln2 split in two */
    r = vfma(nf, vset(-1.428606765330187e-06f), r);     /* for exact n*ln2 */
    vf p = vset(1.0f / 720);
    p = vfma(p, r, vset(1.0f / 120));
    p = vfma(p, r, vset(1.0f / 24));
    p = vfma(p, r, vset(1.0f / 6));
    p = vfma(p, r, vset(0.5f));
    p = vfma(p, r, vset(1.0f));
    p = vfma(p, r, vset(1.0f));
    return vmul(p, vpow2_i(n));
}

DC_TARGET static inline vf KN(vsigmoid)(vf x)
{
    return vdiv(vset(1.0f), vadd(vset(1.0f), KN(vexp)(vsub(vset(0.0f), x))));
}

DC_TARGET static void KN(add)(float *y, const float *a, const float *b, size_t n)
{
    size_t i = 0;
    for (; i + VW <= n; i += VW) vst(y + i, vadd(vld(a + i), vld(b + i)));
    dc__add_ref(y + i, a + i, b + i, n - i); /* leftovers */
}

DC_TARGET static void KN(silu)(float *y, const float *x, size_t n)
{
    size_t i = 0;
    for (; i + VW <= n; i += VW) {
        vf v = vld(x + i);
        vst(y + i, vmul(v, KN(vsigmoid)(v)));
    }
    dc__silu_ref(y + i, x + i, n - i);
}

DC_TARGET static void KN(quick_gelu)(float *y, const float *x, size_t n)
{
    size_t i = 0;
    for (; i + VW <= n; i += VW) {
        vf v = vld(x + i);
        vst(y + i, vmul(v, KN(vsigmoid)(vmul(v, vset(1.702f)))));
    }
    dc__quick_gelu_ref(y + i, x + i, n - i);
}

/* GELU with erf: 0.5 x (1 + erf(u)), u = x/sqrt(2). With erfc(|u|) from
   Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): 1 + erf(u) is
   2 - erfc(|u|) for u >= 0 and erfc(|u|) for u < 0. */
DC_TARGET static void KN(gelu_erf)(float *y, const float *x, size_t n)
{
    size_t i = 0;
    for (; i + VW <= n; i += VW) {
        vf v = vld(x + i);
        vf u = vmul(v, vset(0.70710678118654752f));
        vf a = vmax(u, vsub(vset(0.0f), u));
        vf t = vdiv(vset(1.0f), vfma(a, vset(0.3275911f), vset(1.0f)));
        vf p = vset(1.061405429f);
        p = vfma(p, t, vset(-1.453152027f));
        p = vfma(p, t, vset(1.421413741f));
        p = vfma(p, t, vset(-0.284496736f));
        p = vfma(p, t, vset(0.254829592f));
        vf erfc_a = vmul(vmul(p, t), KN(vexp)(vsub(vset(0.0f), vmul(a, a))));
        vf one_plus_erf = vsel_ge0(u, vsub(vset(2.0f), erfc_a), erfc_a);
        vst(y + i, vmul(vmul(vset(0.5f), v), one_plus_erf));
    }
    dc__gelu_erf_ref(y + i, x + i, n - i);
}

/* GELU, tanh form: 0.5 x (1 + tanh(k (x + 0.044715 x^3))), and
   1 + tanh(z) = 2 sigmoid(2z), which needs only exp. */
DC_TARGET static void KN(gelu_tanh)(float *y, const float *x, size_t n)
{
    size_t i = 0;
    for (; i + VW <= n; i += VW) {
        vf v = vld(x + i);
        vf z = vmul(vset(0.79788456080286536f), vfma(vmul(vset(0.044715f), v), vmul(v, v), v));
        vst(y + i, vmul(v, KN(vsigmoid)(vmul(vset(2.0f), z))));
    }
    dc__gelu_tanh_ref(y + i, x + i, n - i);
}

DC_TARGET static double KN(sum)(const float *x, size_t n)
{
    /* f32 lanes, flushed to double every 256 vectors to bound rounding */
    double total = 0;
    size_t i = 0;
    while (i + VW <= n) {
        vf acc = vset(0.0f);
        for (int k = 0; k < 256 && i + VW <= n; k++, i += VW) acc = vadd(acc, vld(x + i));
        total += vhsum(acc);
    }
    return total + dc__sum_ref(x + i, n - i);
}

DC_TARGET static double KN(sumsq_dev)(const float *x, size_t n, float mean)
{
    double total = 0;
    size_t i = 0;
    vf m = vset(mean);
    while (i + VW <= n) {
        vf acc = vset(0.0f);
        for (int k = 0; k < 256 && i + VW <= n; k++, i += VW) {
            vf d = vsub(vld(x + i), m);
            acc = vfma(d, d, acc);
        }
        total += vhsum(acc);
    }
    return total + dc__sumsq_dev_ref(x + i, n - i, mean);
}

DC_TARGET static void KN(scale_shift)(float *y, const float *x, size_t n, float a, float b)
{
    size_t i = 0;
    vf va = vset(a), vb = vset(b);
    for (; i + VW <= n; i += VW) vst(y + i, vfma(vld(x + i), va, vb));
    dc__scale_shift_ref(y + i, x + i, n - i, a, b);
}

DC_TARGET static void KN(norm_affine)(float *y, const float *x, size_t n, float mean,
                                      float rstd, const float *g, const float *b)
{
    size_t i = 0;
    vf vm = vset(mean), vr = vset(rstd);
    if (g && b)
        for (; i + VW <= n; i += VW)
            vst(y + i, vfma(vmul(vsub(vld(x + i), vm), vr), vld(g + i), vld(b + i)));
    else if (!g && !b)
        for (; i + VW <= n; i += VW) vst(y + i, vmul(vsub(vld(x + i), vm), vr));
    dc__norm_affine_ref(y + i, x + i, n - i, mean, rstd, g ? g + i : NULL, b ? b + i : NULL);
}

DC_TARGET static void KN(softmax)(float *x, size_t n)
{
    if (n == 0) return;
    size_t i = 0;
    float mx = x[0];
    if (n >= VW) {
        vf m = vld(x);
        for (i = VW; i + VW <= n; i += VW) m = vmax(m, vld(x + i));
        mx = vhmax(m);
    }
    for (; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    vf vm = vset(mx), acc = vset(0.0f);
    for (i = 0; i + VW <= n; i += VW) {
        vf e = KN(vexp)(vsub(vld(x + i), vm));
        vst(x + i, e);
        acc = vadd(acc, e);
    }
    double s = vhsum(acc);
    for (; i < n; i++) {
        x[i] = expf(x[i] - mx);
        s += x[i];
    }
    float inv = (float)(1.0 / s);
    vf vi_ = vset(inv);
    for (i = 0; i + VW <= n; i += VW) vst(x + i, vmul(vld(x + i), vi_));
    for (; i < n; i++) x[i] *= inv;
}

DC_TARGET static void KN(f16_to_f32)(float *y, const uint16_t *x, size_t n)
{
    size_t i = 0;
    for (; i + VW <= n; i += VW) vst(y + i, vld_f16(x + i));
    dc__f16_to_f32_ref(y + i, x + i, n - i);
}

DC_TARGET static void KN(q8_to_f32)(float *y, const int8_t *x, size_t n, float scale)
{
    size_t i = 0;
    vf s = vset(scale);
    for (; i + VW <= n; i += VW) vst(y + i, vmul(vld_q8(x + i), s));
    dc__q8_to_f32_ref(y + i, x + i, n - i, scale);
}
