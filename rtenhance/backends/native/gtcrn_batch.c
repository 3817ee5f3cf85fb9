/* Streaming GTCRN steps for many independent streams in one call, in float32, with no dependency beyond libm.
 *
 * It reads the same int32 plan and float32 weight blob as the single-stream step (written by
 * rtenhance/backends/native/plan.py; see that module for the order of the entries). Streams are grouped in
 * blocks of LANES; inside a block every tensor is stored with the stream index innermost, so element e of
 * stream l sits at [e * LANES + l] and every operation is a loop over LANES independent lanes (one or two
 * SIMD registers). Weights are scalars broadcast over the lanes.
 *
 * States: block b owns one state set of state_floats * LANES floats, updated in place: the tensors of
 * StreamState.named_tensors() (batch 1) with each element widened to LANES lanes, except that each GTConv
 * cache (C, 2 d, F) is a ring over its 2 d frames: logical frame j (0 the oldest) of a block that has made
 * n steps sits in slot (n + j) mod 2 d, so a step reads two frames and writes one instead of shifting the
 * whole cache. Lanes that are not active in a step keep their state (masked writes, and their ring
 * rotated by one slot to follow the block's count) and get no output; a block with no active lane is
 * skipped. The zero state is the same in every slot order, so a lane joins by being zeroed.
 *
 * Spectra are exchanged per stream slot (slot = block * LANES + lane) as rows of n_bins * 2 floats
 * (real, imaginary), the layout of a complex64 rfft row.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PLAN_VERSION 1
#define BAND_KERNEL 5    /* strided (1, 5) encoder/decoder convolutions */
#define BAND_STRIDE 2
#define SFE_NEIGHBOURS 3 /* a band and its two neighbours */
#define GT_KERNEL_FRAMES 3
#define GT_KERNEL_BANDS 3
#define INPUT_FEATURES 3 /* magnitude, real, imaginary */
#define MASK_CHANNELS 2  /* complex mask: real, imaginary */
#define GATES 3          /* GRU gates z, r, h */
#ifndef LANES
#define LANES 8          /* streams per block */
#endif
#define OUT_BLOCK 8      /* outputs accumulated together in a matrix product */

#define V(n) ((size_t)(n) * LANES) /* floats in n lane vectors */
#define POSITIONS 8      /* output vectors accumulated together in a row combination */
#define MAX_TERMS 128    /* (weight, input row) terms of one output row */

/* One lane vector (GCC/Clang vector extensions: one or two SIMD registers, or several narrower ones). Every
 * vector in the buffers starts on a multiple of LANES floats from a 64-byte aligned base. */
typedef float vf __attribute__((vector_size(LANES * sizeof(float)), may_alias));
typedef int32_t vi __attribute__((vector_size(LANES * sizeof(float)), may_alias));

enum {
    H_VERSION, H_N_BINS, H_BANDS0, H_BANDS1, H_BANDS2, H_CHANNELS, H_N_GT, H_N_DPGRNN,
    H_BAND_KERNEL, H_BAND_STRIDE, H_SFE, H_GT_FRAMES, H_GT_BANDS, H_EPS_OFFSET, HEADER_INTS
};

typedef struct {
    int n_bins, bands0, bands1, bands2, channels, n_gt, n_dpgrnn;
    float magnitude_eps, layer_norm_eps;
} Dims;

/* The block being stepped: its step count and which lanes step (live 1.0) or keep their state (0.0). */
typedef struct {
    int64_t steps;
    int all_live;
    float live[LANES];
} Block;

typedef struct {
    const int32_t *next;
    const float *blob;
} Cursor;

static int take_int(Cursor *c) { return *c->next++; }

static const float *take_weights(Cursor *c) { return c->blob + *c->next++; }

/* Per-block buffers, each in lane vectors. */
typedef struct {
    float *spec;      /* (n_bins * 2) noisy spectrum */
    float *enhanced;  /* (n_bins * 2) */
    float *feat;      /* (3, n_bins) */
    float *erb;       /* (3, bands0) */
    float *sfe;       /* (9, bands0) */
    float *skip0;     /* (C, bands1) */
    float *skips;     /* (n_gt + 1, C, bands2) */
    float *x;         /* (C, bands1) */
    float *sum;       /* (C, bands1) */
    float *mask;      /* (2, bands0) */
    float *mask_bins; /* (2, n_bins) */
    float *work;      /* per-stage temporaries */
} Scratch;

static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

static void read_dims(const int32_t *plan, const float *blob, Dims *d) {
    d->n_bins = plan[H_N_BINS];
    d->bands0 = plan[H_BANDS0];
    d->bands1 = plan[H_BANDS1];
    d->bands2 = plan[H_BANDS2];
    d->channels = plan[H_CHANNELS];
    d->n_gt = plan[H_N_GT];
    d->n_dpgrnn = plan[H_N_DPGRNN];
    d->magnitude_eps = blob ? blob[plan[H_EPS_OFFSET]] : 0.0f;
    d->layer_norm_eps = blob ? blob[plan[H_EPS_OFFSET] + 1] : 0.0f;
}

/* Lane vectors of per-stage temporaries: the largest stage's need. */
static size_t work_vectors(const Dims *d) {
    size_t c = (size_t)d->channels, f = (size_t)d->bands2;
    size_t in_max = max_size(c, INPUT_FEATURES * SFE_NEIGHBOURS), wide = (size_t)d->bands0 + BAND_KERNEL;
    size_t conv = 2 * in_max * wide + 2 * wide;
    size_t gt = (c / 2 + c + 2) * (f + 2) + c * f + c / 2 * f + 2 * GATES * c + 2 * c;
    size_t dpgrnn = 2 * f * GATES * c + 2 * f * c + GATES * c + c;
    return max_size(conv, max_size(gt, dpgrnn));
}

/* Carves the scratch buffer (or only sizes it when base is NULL); returns its size in floats. */
static size_t carve(const Dims *d, float *base, Scratch *s) {
    size_t c = (size_t)d->channels, nb = (size_t)d->n_bins;
    size_t sizes[] = {
        2 * nb, 2 * nb, INPUT_FEATURES * nb, INPUT_FEATURES * (size_t)d->bands0,
        INPUT_FEATURES * SFE_NEIGHBOURS * (size_t)d->bands0, c * (size_t)d->bands1,
        ((size_t)d->n_gt + 1) * c * (size_t)d->bands2, c * (size_t)d->bands1, c * (size_t)d->bands1,
        MASK_CHANNELS * (size_t)d->bands0, MASK_CHANNELS * nb, work_vectors(d),
    };
    float **slots[] = {&s->spec, &s->enhanced, &s->feat, &s->erb, &s->sfe, &s->skip0, &s->skips, &s->x,
                       &s->sum, &s->mask, &s->mask_bins, &s->work};
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        if (base) *slots[i] = base + total;
        total += V(sizes[i]);
    }
    return total;
}

static inline vf splat(float a) { return (vf){0} + a; }

static inline vf select_v(vi mask, vf a, vf b) { return (vf)((mask & (vi)a) | (~mask & (vi)b)); }

/* exp(x) per lane: x = n ln2 + r, |r| <= ln2 / 2, with ln2 split in a part exact under multiplication by
 * n and a remainder; exp(r) by its Taylor series to r^7 (relative truncation error below 3e-8); 2^n built
 * in the exponent bits. x is clamped to [-87, 88] so that 2^n stays a normal float. */
static inline vf exp_v(vf x) {
    const float log2e = 1.44269504f, ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
    const float round_magic = 12582912.0f; /* 1.5 * 2^23: adding and subtracting it rounds to an integer */
    x = select_v(x < -87.0f, splat(-87.0f), x);
    x = select_v(x > 88.0f, splat(88.0f), x);
    vf n = (x * log2e + round_magic) - round_magic;
    vf r = (x - n * ln2_hi) - n * ln2_lo;
    vf p = splat(1.0f / 5040.0f);
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    vi bits = (__builtin_convertvector(n, vi) + 127) << 23;
    return (vf)bits * p;
}

static inline vf sigmoid_v(vf x) { return 1.0f / (1.0f + exp_v(-x)); }

static inline vf tanh_v(vf x) { return 1.0f - 2.0f / (exp_v(2.0f * x) + 1.0f); }

static inline vf prelu_v(vf x, float slope) { return select_v(x > 0.0f, x, x * slope); }

/* y[0:n] = bias + sum over j < terms of w[j] * src[j][0:n], in vectors (src rows must not overlap y),
 * POSITIONS outputs at a time so that the sums stay in registers, then the rest one at a time. */
static void combine(float *y, int n, float bias, int terms, const float *w, const float *const *src) {
    vf *out = (vf *)y;
    int k = 0;
    for (; k + POSITIONS <= n; k += POSITIONS) {
        vf acc[POSITIONS];
        for (int i = 0; i < POSITIONS; i++) acc[i] = splat(bias);
        for (int j = 0; j < terms; j++) {
            const vf *x = (const vf *)src[j] + k;
            for (int i = 0; i < POSITIONS; i++) acc[i] += w[j] * x[i];
        }
        for (int i = 0; i < POSITIONS; i++) out[k + i] = acc[i];
    }
    for (; k < n; k++) {
        vf a = splat(bias);
        for (int j = 0; j < terms; j++) a += w[j] * ((const vf *)src[j])[k];
        out[k] = a;
    }
}

static void fill(float *x, size_t n, float value) {
    for (size_t i = 0; i < n; i++) x[i] = value;
}

/* y[0:n] += a * x[0:n] (n floats). */
static void axpy(float *restrict y, const float *restrict x, float a, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += a * x[i];
}

static void add(float *restrict y, const float *restrict a, const float *restrict b, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

/* dst[0:n vectors] = src on the block's live lanes; the other lanes of dst are left as they are. */
static void store_live(float *restrict dst, const float *restrict src, size_t n, const Block *blk) {
    if (blk->all_live) {
        memcpy(dst, src, V(n) * sizeof(float));
        return;
    }
    for (size_t v = 0; v < n; v++)
        for (int l = 0; l < LANES; l++) dst[V(v) + l] = blk->live[l] != 0.0f ? src[V(v) + l] : dst[V(v) + l];
}

/* Each ring (frames, f) of the C rings at cache moves every frame one slot on, on the lanes that are not
 * live: their logical frames then stay in place while the block's step count advances. */
static void rotate_held(float *cache, int c, int frames, int f, const Block *blk) {
    if (blk->all_live) return;
    for (int l = 0; l < LANES; l++) {
        if (blk->live[l] != 0.0f) continue;
        for (int ch = 0; ch < c; ch++) {
            float *ring = cache + V((size_t)ch * frames * f);
            for (int k = 0; k < f; k++) {
                float last = ring[V((size_t)(frames - 1) * f + k) + l];
                for (int slot = frames - 1; slot > 0; slot--)
                    ring[V((size_t)slot * f + k) + l] = ring[V((size_t)(slot - 1) * f + k) + l];
                ring[V(k) + l] = last;
            }
        }
    }
}

static void prelu(float *x, size_t n, float slope) {
    vf *v = (vf *)x;
    for (size_t i = 0; i < n / LANES; i++) v[i] = prelu_v(v[i], slope);
}

static void activate(float *x, size_t n, int is_tanh, float slope) {
    vf *v = (vf *)x;
    if (is_tanh)
        for (size_t i = 0; i < n / LANES; i++) v[i] = tanh_v(v[i]);
    else
        prelu(x, n, slope);
}

/* y (rows, out) = x (rows, in) @ wt (in, out) + bias (out), every element a lane vector; OUT_BLOCK outputs
 * at a time so that the sums stay in registers. */
static void linear(const float *x, const float *restrict wt, const float *restrict bias, float *y, int rows, int in,
                   int out) {
    for (int r = 0; r < rows; r++) {
        const vf *xr = (const vf *)(x + V((size_t)r * in));
        vf *yr = (vf *)(y + V((size_t)r * out));
        int o = 0;
        for (; o + OUT_BLOCK <= out; o += OUT_BLOCK) {
            vf acc[OUT_BLOCK];
            for (int b = 0; b < OUT_BLOCK; b++) acc[b] = splat(bias[o + b]);
            for (int i = 0; i < in; i++) {
                const float *wi = wt + (size_t)i * out + o;
                vf xi = xr[i];
                for (int b = 0; b < OUT_BLOCK; b++) acc[b] += wi[b] * xi;
            }
            for (int b = 0; b < OUT_BLOCK; b++) yr[o + b] = acc[b];
        }
        for (; o < out; o++) {
            vf a = splat(bias[o]);
            for (int i = 0; i < in; i++) a += wt[(size_t)i * out + o] * xr[i];
            yr[o] = a;
        }
    }
}

/* One GRU cell (ONNX gates z, r, h; linear_before_reset) of H units per lane. gx (3H): input projection
 * plus input bias; rt (H, 3H) recurrent weights transposed; rb (3H); h (H) previous hidden; h_new (H) the
 * next (must not alias h); tmp (3H) scratch. */
static void gru_cell(const float *gx, const float *rt, const float *rb, const float *h, float *h_new,
                     float *tmp, int units) {
    linear(h, rt, rb, tmp, 1, units, GATES * units);
    const vf *g = (const vf *)gx, *t = (const vf *)tmp, *hv = (const vf *)h;
    vf *out = (vf *)h_new;
    for (int i = 0; i < units; i++) {
        vf z = sigmoid_v(g[i] + t[i]);
        vf r = sigmoid_v(g[units + i] + t[units + i]);
        vf c = tanh_v(g[2 * units + i] + r * t[2 * units + i]);
        out[i] = (1.0f - z) * c + z * hv[i];
    }
}

/* Strided (1, 5) convolution, stride 2, padding 2, groups, then the block's activation:
 * x (cin, win) -> y (cout, wout), wout = ceil(win / 2); weights (cout, cin / groups, 5). The padded input
 * is split into even and odd positions so that every tap reads contiguous vectors. */
static void conv_block(Cursor *cur, const float *x, float *y, int win, int wout, float *work) {
    int cin = take_int(cur), cout = take_int(cur), groups = take_int(cur), is_tanh = take_int(cur);
    const float *w = take_weights(cur), *bias = take_weights(cur), *slope = take_weights(cur);
    int phase = wout + 2;
    float *even = work, *odd = work + V((size_t)cin * phase);
    fill(work, 2 * V((size_t)cin * phase), 0.0f);
    for (int i = 0; i < cin; i++)
        for (int g = 0; g < win; g++) {
            int p = g + BAND_KERNEL / 2;
            ((vf *)(p % 2 ? odd : even))[(size_t)i * phase + p / 2] = ((const vf *)x)[(size_t)i * win + g];
        }
    int in_per_group = cin / groups, out_per_group = cout / groups;
    float wt[MAX_TERMS];
    const float *src[MAX_TERMS];
    for (int o = 0; o < cout; o++) {
        int first = (o / out_per_group) * in_per_group, terms = 0;
        for (int il = 0; il < in_per_group; il++) {
            const float *wo = w + ((size_t)o * in_per_group + il) * BAND_KERNEL;
            const float *e = even + V((size_t)(first + il) * phase), *od = odd + V((size_t)(first + il) * phase);
            for (int t = 0; t < BAND_KERNEL; t++) {
                wt[terms] = wo[t];
                src[terms++] = (t % 2 ? od : e) + V(t / 2);
            }
        }
        float *yo = y + V((size_t)o * wout);
        combine(yo, wout, bias[o], terms, wt, src);
        activate(yo, V(wout), is_tanh, slope[o]);
    }
}

/* Transposed strided (1, 5) convolution, stride 2, padding 2, output padding, then the activation:
 * x (cin, win) -> y (cout, wout), wout = 2 win - 1 + output padding; weights (cin, cout / groups, 5).
 * Output 2m gathers taps 0, 2, 4 from inputs m + 1, m, m - 1; output 2m + 1 taps 1, 3 from m + 1, m. */
static void conv_transpose_block(Cursor *cur, const float *x, float *y, int win, int wout, float *work) {
    int cin = take_int(cur), cout = take_int(cur), groups = take_int(cur), is_tanh = take_int(cur);
    const float *w = take_weights(cur), *bias = take_weights(cur), *slope = take_weights(cur);
    int padded = win + 2, n_even = (wout + 1) / 2, n_odd = wout / 2;
    float *xp = work;                              /* (cin, win + 2): x with one zero vector each side */
    vf *even = (vf *)(xp + V((size_t)cin * padded)); /* (n_even) */
    vf *odd = even + n_even;                       /* (n_odd) */
    for (int i = 0; i < cin; i++) {
        float *row = xp + V((size_t)i * padded);
        fill(row, V(1), 0.0f);
        fill(row + V(win + 1), V(1), 0.0f);
        memcpy(row + V(1), x + V((size_t)i * win), V(win) * sizeof(float));
    }
    int in_per_group = cin / groups, out_per_group = cout / groups;
    float w_even[MAX_TERMS], w_odd[MAX_TERMS];
    const float *src_even[MAX_TERMS], *src_odd[MAX_TERMS];
    for (int o = 0; o < cout; o++) {
        int group = o / out_per_group, ol = o % out_per_group, terms = 0;
        for (int il = 0; il < in_per_group; il++) {
            int i = group * in_per_group + il;
            const float *wi = w + ((size_t)i * out_per_group + ol) * BAND_KERNEL;
            const float *row = xp + V((size_t)i * padded); /* row[m + 1] = x[m] */
            for (int t = 0; t < 3; t++) {
                w_even[3 * terms + t] = wi[2 * t];
                src_even[3 * terms + t] = row + V(2 - t);
            }
            for (int t = 0; t < 2; t++) {
                w_odd[2 * terms + t] = wi[2 * t + 1];
                src_odd[2 * terms + t] = row + V(2 - t);
            }
            terms++;
        }
        combine((float *)even, n_even, bias[o], 3 * terms, w_even, src_even);
        combine((float *)odd, n_odd, bias[o], 2 * terms, w_odd, src_odd);
        vf *yo = (vf *)(y + V((size_t)o * wout));
        for (int m = 0; m < n_even; m++) yo[2 * m] = even[m];
        for (int m = 0; m < n_odd; m++) yo[2 * m + 1] = odd[m];
        activate((float *)yo, V(wout), is_tanh, slope[o]);
    }
}

/* Copies row (n vectors) to padded (n + 2 vectors) between two zero vectors. */
static void pad_row(float *padded, const float *row, int n) {
    fill(padded, V(1), 0.0f);
    memcpy(padded + V(1), row, V(n) * sizeof(float));
    fill(padded + V(n + 1), V(1), 0.0f);
}

/* GTConv block: x (C, F) -> out (C, F); updates its conv cache ring and TRA hidden in state. The (1, 3)
 * band convolutions read rows padded with a zero vector on each side. */
static void gt_block(Cursor *cur, const Dims *d, const Block *blk, const float *x, float *out, float *state,
                     float *work) {
    int c = d->channels, f = d->bands2, half = c / 2, fp = f + 2;
    int dilation = take_int(cur), cache_at = take_int(cur), tra_at = take_int(cur);
    const float *in_w = take_weights(cur), *in_b = take_weights(cur), *in_slope = take_weights(cur);
    const float *dw_w = take_weights(cur), *dw_b = take_weights(cur), *dw_slope = take_weights(cur);
    const float *out_w = take_weights(cur), *out_b = take_weights(cur);
    const float *tra_wt = take_weights(cur), *tra_rt = take_weights(cur), *tra_b = take_weights(cur);
    const float *fc_t = take_weights(cur), *fc_b = take_weights(cur);

    float *xp = work;                        /* (C/2, F + 2) first half of x, padded */
    float *p = xp + V((size_t)half * fp);    /* (C, F + 2) pointwise-in output (the newest frame), padded */
    float *past = p + V((size_t)c * fp);     /* (2, F + 2) one channel's two past frames, padded */
    float *dw = past + V(2 * (size_t)fp);    /* (C, F) depthwise output */
    float *q = dw + V((size_t)c * f);        /* (C/2, F) pointwise-out output */
    float *gx = q + V((size_t)half * f);     /* (3C) */
    float *tmp = gx + V(GATES * c);          /* (3C) */
    float *gain = tmp + V(GATES * c);        /* (C) energies, then gains */
    float *hidden = gain + V(c);             /* (C) next TRA hidden */
    float wt[MAX_TERMS];
    const float *src[MAX_TERMS];

    for (int i = 0; i < half; i++) pad_row(xp + V((size_t)i * fp), x + V((size_t)i * f), f);
    for (int o = 0; o < c; o++) {
        int terms = 0;
        for (int i = 0; i < half; i++)
            for (int t = 0; t < SFE_NEIGHBOURS; t++) {
                wt[terms] = in_w[((size_t)o * half + i) * SFE_NEIGHBOURS + t];
                src[terms++] = xp + V((size_t)i * fp + t);
            }
        float *po = p + V((size_t)o * fp);
        fill(po, V(1), 0.0f);
        combine(po + V(1), f, in_b[o], terms, wt, src);
        prelu(po + V(1), V(f), in_slope[o]);
        fill(po + V(f + 1), V(1), 0.0f);
    }

    int frames = (GT_KERNEL_FRAMES - 1) * dilation;
    int oldest = (int)(blk->steps % frames), middle = (oldest + dilation) % frames;
    float *cache = state + V(cache_at);
    for (int ch = 0; ch < c; ch++) {
        float *ring = cache + V((size_t)ch * frames * f);
        pad_row(past, ring + V((size_t)oldest * f), f);
        pad_row(past + V(fp), ring + V((size_t)middle * f), f);
        const float *rows[GT_KERNEL_FRAMES] = {past, past + V(fp), p + V((size_t)ch * fp)};
        int terms = 0;
        for (int kt = 0; kt < GT_KERNEL_FRAMES; kt++)
            for (int t = 0; t < GT_KERNEL_BANDS; t++) {
                wt[terms] = dw_w[((size_t)ch * GT_KERNEL_FRAMES + kt) * GT_KERNEL_BANDS + t];
                src[terms++] = rows[kt] + V(t);
            }
        float *y = dw + V((size_t)ch * f);
        combine(y, f, dw_b[ch], terms, wt, src);
        prelu(y, V(f), dw_slope[ch]);
        store_live(ring + V((size_t)oldest * f), p + V((size_t)ch * fp + 1), (size_t)f, blk);
    }
    rotate_held(cache, c, frames, f, blk);

    for (int ch = 0; ch < c; ch++) src[ch] = dw + V((size_t)ch * f);
    for (int h = 0; h < half; h++) {
        vf *qh = (vf *)(q + V((size_t)h * f)), energy = splat(0.0f);
        combine((float *)qh, f, out_b[h], c, out_w + (size_t)h * c, src);
        for (int k = 0; k < f; k++) energy += qh[k] * qh[k];
        ((vf *)gain)[h] = energy;
    }
    linear(gain, tra_wt, tra_b, gx, 1, half, GATES * c);
    gru_cell(gx, tra_rt, tra_b + GATES * c, state + V(tra_at), hidden, tmp, c);
    store_live(state + V(tra_at), hidden, (size_t)c, blk);
    linear(hidden, fc_t, fc_b, gain, 1, c, half);

    for (int h = 0; h < half; h++) {
        vf g = sigmoid_v(((vf *)gain)[h]);
        const vf *qh = (const vf *)(q + V((size_t)h * f));
        vf *even = (vf *)(out + V((size_t)(2 * h) * f));
        for (int k = 0; k < f; k++) even[k] = qh[k] * g;
        memcpy(out + V((size_t)(2 * h + 1) * f), x + V((size_t)(half + h) * f), V(f) * sizeof(float));
    }
}

/* x (n) += LayerNorm over all n elements of y (per lane), with elementwise weight and bias (n). */
static void add_layer_norm(float *x, const float *y, const float *w, const float *b, int n, float eps) {
    float mean[LANES] = {0}, var[LANES] = {0}, inv[LANES];
    for (int j = 0; j < n; j++)
        for (int l = 0; l < LANES; l++) mean[l] += y[V(j) + l];
    for (int l = 0; l < LANES; l++) mean[l] /= (float)n;
    for (int j = 0; j < n; j++)
        for (int l = 0; l < LANES; l++) {
            float v = y[V(j) + l] - mean[l];
            var[l] += v * v;
        }
    for (int l = 0; l < LANES; l++) inv[l] = 1.0f / sqrtf(var[l] / (float)n + eps);
    for (int j = 0; j < n; j++)
        for (int l = 0; l < LANES; l++) x[V(j) + l] += (y[V(j) + l] - mean[l]) * inv[l] * w[j] + b[j];
}

/* DPGRNN on x (F, C) band-major, in place; updates its inter-path hidden (F, C) in state. */
static void dpgrnn(Cursor *cur, const Dims *d, const Block *blk, float *x, float *state, float *work) {
    int c = d->channels, f = d->bands2, half = c / 2, n = c * f;
    int hidden_at = take_int(cur);
    const float *fw_wt = take_weights(cur), *fw_rt = take_weights(cur), *fw_b = take_weights(cur);
    const float *bw_wt = take_weights(cur), *bw_rt = take_weights(cur), *bw_b = take_weights(cur);
    const float *intra_fc = take_weights(cur), *intra_fc_b = take_weights(cur);
    const float *intra_ln_w = take_weights(cur), *intra_ln_b = take_weights(cur);
    const float *inter_wt = take_weights(cur), *inter_rt = take_weights(cur), *inter_b = take_weights(cur);
    const float *inter_fc = take_weights(cur), *inter_fc_b = take_weights(cur);
    const float *inter_ln_w = take_weights(cur), *inter_ln_b = take_weights(cur);

    int gates = GATES * c, half_gates = GATES * half;
    float *gx_fw = work;                        /* (F, 3C/2), then (F, 3C) for the inter path */
    float *gx_bw = gx_fw + V((size_t)f * gates);
    float *y = gx_bw + V((size_t)f * gates);    /* (F, C): [forward, backward] hidden per band */
    float *z = y + V(n);                        /* (F, C) */
    float *tmp = z + V(n);                      /* (3C) */
    float *zeros = tmp + V(gates);              /* (C) */
    fill(zeros, V(c), 0.0f);

    linear(x, fw_wt, fw_b, gx_fw, f, c, half_gates);
    linear(x, bw_wt, bw_b, gx_bw, f, c, half_gates);
    for (int t = 0; t < f; t++) {
        const float *prev = t ? y + V((size_t)(t - 1) * c) : zeros;
        gru_cell(gx_fw + V((size_t)t * half_gates), fw_rt, fw_b + half_gates, prev, y + V((size_t)t * c), tmp, half);
    }
    for (int t = f - 1; t >= 0; t--) {
        const float *prev = t < f - 1 ? y + V((size_t)(t + 1) * c + half) : zeros;
        gru_cell(gx_bw + V((size_t)t * half_gates), bw_rt, bw_b + half_gates, prev, y + V((size_t)t * c + half), tmp,
                 half);
    }
    linear(y, intra_fc, intra_fc_b, z, f, c, c);
    add_layer_norm(x, z, intra_ln_w, intra_ln_b, n, d->layer_norm_eps);

    linear(x, inter_wt, inter_b, gx_fw, f, c, gates);
    float *h = state + V(hidden_at), *h_next = y; /* y is free again */
    for (int b = 0; b < f; b++)
        gru_cell(gx_fw + V((size_t)b * gates), inter_rt, inter_b + gates, h + V((size_t)b * c),
                 h_next + V((size_t)b * c), tmp, c);
    store_live(h, h_next, (size_t)n, blk);
    linear(h_next, inter_fc, inter_fc_b, z, f, c, c);
    add_layer_norm(x, z, inter_ln_w, inter_ln_b, n, d->layer_norm_eps);
}

/* y (cols, rows) = x (rows, cols) transposed, elements being lane vectors. */
static void transpose(const float *restrict x, float *restrict y, int rows, int cols) {
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < cols; k++) memcpy(y + V((size_t)k * rows + r), x + V((size_t)r * cols + k), V(1) * sizeof(float));
}

/* Spectrum (n_bins, 2) -> ERB features (3, bands0) -> SFE (9, bands0). */
static void features(Cursor *cur, const Dims *d, Scratch *s) {
    int nb = d->n_bins, bands = d->bands0;
    float *mag = s->feat, *re = s->feat + V(nb), *im = s->feat + V(2 * nb);
    for (int k = 0; k < nb; k++)
        for (int l = 0; l < LANES; l++) {
            float a = s->spec[V(2 * k) + l], b = s->spec[V(2 * k + 1) + l];
            re[V(k) + l] = a;
            im[V(k) + l] = b;
            mag[V(k) + l] = sqrtf(a * a + b * b + d->magnitude_eps);
        }
    for (int b = 0; b < bands; b++) {
        int first = take_int(cur), count = take_int(cur);
        const float *w = take_weights(cur);
        for (int ch = 0; ch < INPUT_FEATURES; ch++) {
            float *acc = s->erb + V((size_t)ch * bands + b);
            fill(acc, V(1), 0.0f);
            for (int k = 0; k < count; k++) axpy(acc, s->feat + V((size_t)ch * nb + first + k), w[k], V(1));
        }
    }
    for (int ch = 0; ch < INPUT_FEATURES; ch++) {
        const float *row = s->erb + V((size_t)ch * bands);
        for (int k = 0; k < SFE_NEIGHBOURS; k++) {
            float *out = s->sfe + V(((size_t)ch * SFE_NEIGHBOURS + k) * bands);
            int shift = k - SFE_NEIGHBOURS / 2; /* out[b] = row[b + shift] */
            fill(out, V(bands), 0.0f);
            int lo = shift < 0 ? -shift : 0, hi = shift > 0 ? bands - shift : bands;
            memcpy(out + V(lo), row + V(lo + shift), V(hi - lo) * sizeof(float));
        }
    }
}

/* Mask (2, bands0) -> per-bin mask (2, n_bins) -> enhanced spectrum (n_bins, 2). */
static void apply_mask(Cursor *expand, const Dims *d, Scratch *s) {
    int nb = d->n_bins, bands = d->bands0;
    float *m_re = s->mask_bins, *m_im = s->mask_bins + V(nb);
    fill(s->mask_bins, V(MASK_CHANNELS * nb), 0.0f);
    for (int b = 0; b < bands; b++) {
        int first = take_int(expand), count = take_int(expand);
        const float *w = take_weights(expand);
        const float *g_re = s->mask + V(b), *g_im = s->mask + V(bands + b);
        for (int k = 0; k < count; k++)
            for (int l = 0; l < LANES; l++) {
                m_re[V(first + k) + l] += w[k] * g_re[l];
                m_im[V(first + k) + l] += w[k] * g_im[l];
            }
    }
    for (int k = 0; k < nb; k++)
        for (int l = 0; l < LANES; l++) {
            float re = s->spec[V(2 * k) + l], im = s->spec[V(2 * k + 1) + l];
            float a = m_re[V(k) + l], b = m_im[V(k) + l];
            s->enhanced[V(2 * k) + l] = re * a - im * b;
            s->enhanced[V(2 * k + 1) + l] = im * a + re * b;
        }
}

/* The network on the block's spectrum s->spec, writing s->enhanced and the next state. */
static void step_block(const int32_t *plan, const float *blob, const Dims *d, const Block *blk, Scratch *s,
                       float *state) {
    int c = d->channels, f = d->bands2, map = c * f;
    Cursor cur = {plan + HEADER_INTS, blob};
    features(&cur, d, s);
    Cursor expand = cur;
    cur.next += 3 * d->bands0;

    conv_block(&cur, s->sfe, s->skip0, d->bands0, d->bands1, s->work);
    conv_block(&cur, s->skip0, s->skips, d->bands1, d->bands2, s->work);
    for (int i = 0; i < d->n_gt; i++)
        gt_block(&cur, d, blk, s->skips + V((size_t)i * map), s->skips + V((size_t)(i + 1) * map), state, s->work);

    const float *encoded = s->skips + V((size_t)d->n_gt * map);
    if (d->n_dpgrnn) {
        transpose(encoded, s->sum, c, f);
        for (int i = 0; i < d->n_dpgrnn; i++) dpgrnn(&cur, d, blk, s->sum, state, s->work);
        transpose(s->sum, s->x, f, c);
    } else {
        memcpy(s->x, encoded, V(map) * sizeof(float));
    }
    for (int i = 0; i < d->n_gt; i++) {
        add(s->sum, s->x, s->skips + V((size_t)(d->n_gt - i) * map), V(map));
        gt_block(&cur, d, blk, s->sum, s->x, state, s->work);
    }
    add(s->sum, s->x, s->skips, V(map));
    conv_transpose_block(&cur, s->sum, s->x, d->bands2, d->bands1, s->work);
    add(s->sum, s->x, s->skip0, V((size_t)c * d->bands1));
    conv_transpose_block(&cur, s->sum, s->mask, d->bands1, d->bands0, s->work);
    apply_mask(&expand, d, s);
}

/* Streams per block. */
int32_t gtcrn_batch_lanes(void) { return LANES; }

/* Floats of scratch gtcrn_batch_step needs for this plan; -1 if the plan does not match this code, -2 if
 * its channels are too many for MAX_TERMS. */
int64_t gtcrn_batch_scratch_floats(const int32_t *plan) {
    if (plan[H_VERSION] != PLAN_VERSION || plan[H_BAND_KERNEL] != BAND_KERNEL || plan[H_BAND_STRIDE] != BAND_STRIDE ||
        plan[H_SFE] != SFE_NEIGHBOURS || plan[H_GT_FRAMES] != GT_KERNEL_FRAMES || plan[H_GT_BANDS] != GT_KERNEL_BANDS)
        return -1;
    Dims d;
    Scratch s;
    read_dims(plan, NULL, &d);
    if ((d.channels > INPUT_FEATURES * SFE_NEIGHBOURS ? d.channels : INPUT_FEATURES * SFE_NEIGHBOURS) * BAND_KERNEL >
        MAX_TERMS)
        return -2;
    return (int64_t)carve(&d, NULL, &s);
}

/* One step of every active stream in n_blocks blocks.
 * plan, blob: a checked plan and its weights; state_floats: floats in one batch-1 state set;
 * spec (n_blocks * LANES, n_bins * 2): noisy spectrum per slot (read for active slots);
 * out (n_blocks * LANES, n_bins * 2): enhanced spectrum per slot (written for active slots only);
 * states (n_blocks, state_floats * LANES); steps (n_blocks): steps each block has made (incremented for
 * every block that steps); active (n_blocks * LANES): nonzero for slots to step;
 * scratch: gtcrn_batch_scratch_floats(plan) floats, 64-byte aligned. */
void gtcrn_batch_step(const int32_t *plan, const float *blob, int64_t state_floats, int64_t n_blocks, const float *spec,
                      float *out, float *states, int64_t *steps, const uint8_t *active, float *scratch) {
    Dims d;
    Scratch s;
    read_dims(plan, blob, &d);
    carve(&d, scratch, &s);
    size_t row = 2 * (size_t)d.n_bins;
    for (int64_t b = 0; b < n_blocks; b++) {
        const uint8_t *on = active + b * LANES;
        Block blk = {steps[b], 1, {0}};
        int any = 0;
        for (int l = 0; l < LANES; l++) {
            blk.live[l] = on[l] ? 1.0f : 0.0f;
            any |= on[l] != 0;
            blk.all_live &= on[l] != 0;
        }
        if (!any) continue;
        for (int l = 0; l < LANES; l++) {
            const float *src = spec + ((size_t)b * LANES + l) * row;
            for (size_t j = 0; j < row; j++) s.spec[V(j) + l] = on[l] ? src[j] : 0.0f;
        }
        step_block(plan, blob, &d, &blk, &s, states + (size_t)b * V(state_floats));
        for (int l = 0; l < LANES; l++) {
            if (!on[l]) continue;
            float *dst = out + ((size_t)b * LANES + l) * row;
            for (size_t j = 0; j < row; j++) dst[j] = s.enhanced[V(j) + l];
        }
        steps[b]++;
    }
}
