/* One streaming GTCRN step for one stream (batch 1), in float32, with no dependency beyond libm.
 *
 * The caller (rtenhance/backends/native/__init__.py) prepares, once per model:
 * - a float32 weight blob of folded weights (BatchNorm folded into the convolutions, grouped GRUs merged
 *   into block-diagonal GRUs in ONNX gate order z, r, h with linear_before_reset, matrices stored
 *   transposed as (inputs, outputs) so that every inner loop runs over contiguous outputs);
 * - an int32 plan: a header of sizes, then the blob offsets of every weight in a fixed order (see
 *   rtenhance/backends/native/plan.py, which writes it, for the order) and the offsets of every state
 *   tensor in the state buffers.
 * Each step reads the state set `state_in` and writes the whole next state into `state_out` (the caller
 * swaps the two); the state buffers hold StreamState.named_tensors() for batch 1, back to back.
 *
 * Feature maps are channel-major (C, bands) in the convolutions and band-major (bands, C) in the
 * dual-path RNNs, as in rtenhance/backends/onnx_graph.py, which computes the same step op by op.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PLAN_VERSION 1
#define BAND_KERNEL 5    /* strided (1, 5) encoder/decoder convolutions */
#define BAND_STRIDE 2
#define SFE_NEIGHBOURS 3 /* subband feature extraction: a band and its two neighbours */
#define GT_KERNEL_FRAMES 3
#define GT_KERNEL_BANDS 3
#define INPUT_FEATURES 3 /* magnitude, real, imaginary */
#define MASK_CHANNELS 2  /* complex mask: real, imaginary */
#define GATES 3          /* GRU gates z, r, h */
#define ALIGN_FLOATS 16  /* scratch pieces start on 64-byte boundaries */
#define LANES 8          /* independent accumulators in reductions (vectorisable without -ffast-math) */

enum {
    H_VERSION, H_N_BINS, H_BANDS0, H_BANDS1, H_BANDS2, H_CHANNELS, H_N_GT, H_N_DPGRNN,
    H_BAND_KERNEL, H_BAND_STRIDE, H_SFE, H_GT_FRAMES, H_GT_BANDS, H_EPS_OFFSET, HEADER_INTS
};

typedef struct {
    int n_bins, bands0, bands1, bands2, channels, n_gt, n_dpgrnn;
    float magnitude_eps, layer_norm_eps;
} Dims;

/* Reads the plan's entries in order. */
typedef struct {
    const int32_t *next;
    const float *blob;
} Cursor;

static int take_int(Cursor *c) { return *c->next++; }

static const float *take_weights(Cursor *c) { return c->blob + *c->next++; }

typedef struct {
    float *feat;      /* (3, n_bins): magnitude, real, imaginary */
    float *erb;       /* (3, bands0) */
    float *sfe;       /* (9, bands0) */
    float *skip0;     /* (C, bands1): first encoder convolution */
    float *skips;     /* (n_gt + 1, C, bands2): second encoder convolution, then each encoder GT block */
    float *x;         /* (C, bands1) current feature map */
    float *sum;       /* (C, bands1) feature map plus skip */
    float *mask;      /* (2, bands0) */
    float *mask_bins; /* (2, n_bins) */
    float *work;      /* per-stage temporaries */
} Scratch;

static size_t aligned(size_t n) { return (n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS; }

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

/* Floats of per-stage temporaries: the largest stage's need. */
static size_t work_floats(const Dims *d) {
    size_t c = (size_t)d->channels, f = (size_t)d->bands2, half = c / 2;
    size_t in_max = c > INPUT_FEATURES * SFE_NEIGHBOURS ? c : INPUT_FEATURES * SFE_NEIGHBOURS;
    size_t wide = (size_t)d->bands0 + BAND_KERNEL;
    size_t conv = 2 * aligned(in_max * wide) + 2 * aligned(c * wide); /* >= 2 (cin, wout + 2) + 2 wout */
    size_t gt = 3 * aligned(c * f) + 2 * aligned(GATES * c) + aligned(half) + 2 * aligned(f);
    size_t dpgrnn = 2 * aligned(f * GATES * c) + 2 * aligned(f * c) + aligned(GATES * c) + aligned(c);
    return max_size(conv, max_size(gt, dpgrnn));
}

/* Carves the scratch buffer (or only sizes it when base is NULL); returns its size in floats. */
static size_t carve(const Dims *d, float *base, Scratch *s) {
    size_t c = (size_t)d->channels;
    size_t sizes[] = {
        INPUT_FEATURES * (size_t)d->n_bins,
        INPUT_FEATURES * (size_t)d->bands0,
        INPUT_FEATURES * SFE_NEIGHBOURS * (size_t)d->bands0,
        c * (size_t)d->bands1,
        ((size_t)d->n_gt + 1) * c * (size_t)d->bands2,
        c * (size_t)d->bands1,
        c * (size_t)d->bands1,
        MASK_CHANNELS * (size_t)d->bands0,
        MASK_CHANNELS * (size_t)d->n_bins,
        work_floats(d),
    };
    float **slots[] = {&s->feat, &s->erb, &s->sfe, &s->skip0, &s->skips, &s->x, &s->sum,
                       &s->mask, &s->mask_bins, &s->work};
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        if (base) *slots[i] = base + total;
        total += aligned(sizes[i]);
    }
    return total;
}

/* expm1 in float, branch-free so that loops calling it vectorise: x = n ln2 + r with |r| <= ln2 / 2
 * (Cody-Waite: ln2 split so that n * LN2_HI is exact), expm1(r) by its Taylor series to r^8 (truncation
 * below 1e-9 relative), then expm1(x) = 2^n expm1(r) + (2^n - 1). Relative error a few ulp everywhere,
 * including near 0 (so tanh and sigmoid built on it keep their relative accuracy near 0). */
static inline float expm1_fast(float x) {
    const float lo = -87.0f, hi = 88.0f; /* 2^n stays a normal float, exp(x) finite */
    const float log2e = 1.44269504f, ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
    const float round_magic = 12582912.0f; /* 1.5 * 2^23: adding and subtracting it rounds to an integer */
    x = x < lo ? lo : (x > hi ? hi : x);
    float n = (x * log2e + round_magic) - round_magic;
    float r = (x - n * ln2_hi) - n * ln2_lo;
    float p = 1.0f / 40320.0f;
    p = p * r + 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = (p * r) * r + r;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return scale * p + (scale - 1.0f);
}

static inline float sigmoid(float x) { return 1.0f / (2.0f + expm1_fast(-x)); }

static inline float tanh_fast(float x) {
    float e = expm1_fast(-2.0f * fabsf(x)); /* tanh |x| = -e / (e + 2) */
    float t = -e / (e + 2.0f);
    return x < 0.0f ? -t : t;
}

static void prelu(float *x, int n, float slope) {
    for (int i = 0; i < n; i++) x[i] = x[i] > 0.0f ? x[i] : slope * x[i];
}

/* Tanh, or PReLU with the given slope (a convolution block's activation). */
static void activate(float *x, int n, int is_tanh, float slope) {
    if (is_tanh)
        for (int i = 0; i < n; i++) x[i] = tanh_fast(x[i]);
    else
        prelu(x, n, slope);
}

static void fill(float *x, int n, float value) {
    for (int i = 0; i < n; i++) x[i] = value;
}

/* y[0:n] += a * x[0:n] */
static void axpy(float *restrict y, const float *restrict x, float a, int n) {
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

/* y[0:n] += a * x[0:n], accumulated in double. */
static void axpy_double(double *restrict y, const float *restrict x, float a, int n) {
    for (int i = 0; i < n; i++) y[i] += (double)a * x[i];
}

static void add(float *restrict y, const float *restrict a, const float *restrict b, int n) {
    for (int i = 0; i < n; i++) y[i] = a[i] + b[i];
}

/* Sum of (x[i] - centre)^power over i < n, power 1 or 2, with LANES partial sums. */
static float moment(const float *x, int n, float centre, int power) {
    float acc[LANES] = {0};
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) {
            float v = x[i + k] - centre;
            acc[k] += power == 2 ? v * v : v;
        }
    float s = 0.0f;
    for (; i < n; i++) s += power == 2 ? (x[i] - centre) * (x[i] - centre) : x[i] - centre;
    for (int k = 0; k < LANES; k++) s += acc[k];
    return s;
}

/* y (rows, out) = x (rows, in) @ wt (in, out) + bias (out). */
static void linear(const float *restrict x, const float *restrict wt, const float *restrict bias,
                   float *restrict y, int rows, int in, int out) {
    for (int r = 0; r < rows; r++) {
        float *yr = y + (size_t)r * out;
        memcpy(yr, bias, sizeof(float) * (size_t)out);
        for (int i = 0; i < in; i++) axpy(yr, wt + (size_t)i * out, x[(size_t)r * in + i], out);
    }
}

/* One GRU cell (ONNX gates z, r, h; linear_before_reset) of H units.
 * gx (3H): input projection plus input bias; rt (H, 3H): recurrent weights transposed; rb (3H): recurrent
 * bias; h (H) the previous hidden state; h_new (H) the next one (may alias h); tmp (3H) scratch. */
static void gru_cell(const float *gx, const float *rt, const float *rb, const float *h, float *h_new,
                     float *tmp, int units) {
    int gates = GATES * units;
    memcpy(tmp, rb, sizeof(float) * (size_t)gates);
    for (int j = 0; j < units; j++) axpy(tmp, rt + (size_t)j * gates, h[j], gates);
    for (int k = 0; k < units; k++) {
        float z = sigmoid(gx[k] + tmp[k]);
        float r = sigmoid(gx[units + k] + tmp[units + k]);
        float n = tanh_fast(gx[2 * units + k] + r * tmp[2 * units + k]);
        h_new[k] = (1.0f - z) * n + z * h[k];
    }
}

/* Strided (1, 5) convolution, stride 2, padding 2, groups; then PReLU (slope per channel).
 * x (cin, win) -> y (cout, wout), wout = ceil(win / 2). Weights (cout, cin / groups, 5). The padded
 * input is split into even and odd positions so that every tap reads a contiguous row. */
static void conv_block(Cursor *cur, const float *x, float *y, int win, int wout, float *work) {
    int cin = take_int(cur), cout = take_int(cur), groups = take_int(cur), is_tanh = take_int(cur);
    const float *w = take_weights(cur), *bias = take_weights(cur), *slope = take_weights(cur);
    int phase = wout + 2; /* even row: padded positions 0, 2, .., 2 (wout + 1); odd row one fewer used */
    float *even = work, *odd = work + aligned((size_t)cin * phase);
    fill(work, (int)(2 * aligned((size_t)cin * phase)), 0.0f);
    for (int i = 0; i < cin; i++)
        for (int g = 0; g < win; g++) { /* padded position g + 2 */
            int p = g + BAND_KERNEL / 2;
            (p % 2 ? odd : even)[(size_t)i * phase + p / 2] = x[(size_t)i * win + g];
        }
    double *acc = (double *)(work + 2 * aligned((size_t)cin * phase)); /* (wout) */
    int in_per_group = cin / groups, out_per_group = cout / groups;
    for (int o = 0; o < cout; o++) {
        for (int p = 0; p < wout; p++) acc[p] = bias[o];
        int first = (o / out_per_group) * in_per_group;
        for (int il = 0; il < in_per_group; il++) {
            const float *wo = w + ((size_t)o * in_per_group + il) * BAND_KERNEL;
            const float *e = even + (size_t)(first + il) * phase, *od = odd + (size_t)(first + il) * phase;
            for (int t = 0; t < BAND_KERNEL; t++) axpy_double(acc, (t % 2 ? od : e) + t / 2, wo[t], wout);
        }
        float *yo = y + (size_t)o * wout;
        for (int p = 0; p < wout; p++) yo[p] = (float)acc[p];
        activate(yo, wout, is_tanh, slope[o]);
    }
}

/* Transposed strided (1, 5) convolution, stride 2, padding 2, output padding; then PReLU or Tanh.
 * x (cin, win) -> y (cout, wout), wout = 2 win - 1 + output padding. Weights (cin, cout / groups, 5).
 * Output 2m gathers taps 0, 2, 4 from inputs m + 1, m, m - 1; output 2m + 1 taps 1, 3 from m + 1, m. */
static void conv_transpose_block(Cursor *cur, const float *x, float *y, int win, int wout, float *work) {
    int cin = take_int(cur), cout = take_int(cur), groups = take_int(cur), is_tanh = take_int(cur);
    const float *w = take_weights(cur), *bias = take_weights(cur), *slope = take_weights(cur);
    int padded = win + 2, n_even = (wout + 1) / 2, n_odd = wout / 2;
    float *xp = work;                                               /* (cin, win + 2): x, one zero each side */
    double *even = (double *)(xp + aligned((size_t)cin * padded)); /* (n_even) */
    double *odd = even + n_even;                                     /* (n_odd) */
    for (int i = 0; i < cin; i++) {
        float *row = xp + (size_t)i * padded;
        row[0] = row[win + 1] = 0.0f;
        memcpy(row + 1, x + (size_t)i * win, sizeof(float) * (size_t)win);
    }
    int in_per_group = cin / groups, out_per_group = cout / groups;
    for (int o = 0; o < cout; o++) {
        for (int m = 0; m < n_even; m++) even[m] = bias[o];
        for (int m = 0; m < n_odd; m++) odd[m] = bias[o];
        int group = o / out_per_group, ol = o % out_per_group;
        for (int il = 0; il < in_per_group; il++) {
            int i = group * in_per_group + il;
            const float *wi = w + ((size_t)i * out_per_group + ol) * BAND_KERNEL;
            const float *row = xp + (size_t)i * padded; /* row[m + 1] = x[m] */
            axpy_double(even, row + 2, wi[0], n_even);
            axpy_double(even, row + 1, wi[2], n_even);
            axpy_double(even, row, wi[4], n_even);
            axpy_double(odd, row + 2, wi[1], n_odd);
            axpy_double(odd, row + 1, wi[3], n_odd);
        }
        float *yo = y + (size_t)o * wout;
        for (int m = 0; m < n_even; m++) yo[2 * m] = (float)even[m];
        for (int m = 0; m < n_odd; m++) yo[2 * m + 1] = (float)odd[m];
        activate(yo, wout, is_tanh, slope[o]);
    }
}

/* (1, 3) convolution over bands with padding 1, depthwise (one input row per output) or not:
 * y[f] += sum_k w[k] * row[f + k - 1] for one (output, input) pair; zero beyond the edges. */
static void band_taps(float *restrict y, const float *restrict row, const float *w, int n) {
    axpy(y + 1, row, w[0], n - 1);
    axpy(y, row, w[1], n);
    axpy(y, row + 1, w[2], n - 1);
}

/* GTConv block: x (C, F) -> out (C, F) (out must not alias x); reads its conv cache and TRA hidden from
 * state_in and writes the next ones to state_out. */
static void gt_block(Cursor *cur, const Dims *d, const float *x, float *out, const float *state_in,
                     float *state_out, float *work) {
    int c = d->channels, f = d->bands2, half = c / 2;
    int dilation = take_int(cur), cache_at = take_int(cur), tra_at = take_int(cur);
    const float *in_w = take_weights(cur), *in_b = take_weights(cur), *in_slope = take_weights(cur);
    const float *dw_w = take_weights(cur), *dw_b = take_weights(cur), *dw_slope = take_weights(cur);
    const float *out_w = take_weights(cur), *out_b = take_weights(cur);
    const float *tra_wt = take_weights(cur), *tra_rt = take_weights(cur), *tra_b = take_weights(cur);
    const float *fc_t = take_weights(cur), *fc_b = take_weights(cur);

    float *p = work;                               /* (C, F) pointwise-in output: the newest frame */
    float *dw = p + aligned((size_t)c * f);        /* (C, F) depthwise output */
    float *q = dw + aligned((size_t)c * f);        /* (C/2, F) pointwise-out output */
    float *gx = q + aligned((size_t)c * f);        /* (3C) TRA input projection */
    float *tmp = gx + aligned((size_t)GATES * c);  /* (3C) */
    float *gain = tmp + aligned((size_t)GATES * c); /* (C/2) */

    for (int o = 0; o < c; o++) {
        float *po = p + (size_t)o * f;
        fill(po, f, in_b[o]);
        for (int i = 0; i < half; i++) band_taps(po, x + (size_t)i * f, in_w + ((size_t)o * half + i) * SFE_NEIGHBOURS, f);
        prelu(po, f, in_slope[o]);
    }

    int frames = (GT_KERNEL_FRAMES - 1) * dilation;
    const float *cache_in = state_in + cache_at;
    float *cache_out = state_out + cache_at;
    for (int ch = 0; ch < c; ch++) {
        const float *past = cache_in + (size_t)ch * frames * f;
        const float *rows[GT_KERNEL_FRAMES] = {past, past + (size_t)dilation * f, p + (size_t)ch * f};
        float *y = dw + (size_t)ch * f;
        fill(y, f, dw_b[ch]);
        for (int kt = 0; kt < GT_KERNEL_FRAMES; kt++)
            band_taps(y, rows[kt], dw_w + ((size_t)ch * GT_KERNEL_FRAMES + kt) * GT_KERNEL_BANDS, f);
        prelu(y, f, dw_slope[ch]);
        float *next = cache_out + (size_t)ch * frames * f;
        memcpy(next, past + f, sizeof(float) * (size_t)(frames - 1) * f);
        memcpy(next + (size_t)(frames - 1) * f, p + (size_t)ch * f, sizeof(float) * (size_t)f);
    }

    double *acc = (double *)(gain + aligned((size_t)half)); /* (F) */
    for (int h = 0; h < half; h++) {
        float *qh = q + (size_t)h * f;
        for (int k = 0; k < f; k++) acc[k] = out_b[h];
        for (int ch = 0; ch < c; ch++) axpy_double(acc, dw + (size_t)ch * f, out_w[(size_t)h * c + ch], f);
        for (int k = 0; k < f; k++) qh[k] = (float)acc[k];
        gain[h] = moment(qh, f, 0.0f, 2); /* energy summed over bands (1 / F is folded into tra_wt) */
    }
    linear(gain, tra_wt, tra_b, gx, 1, half, GATES * c);
    float *hidden = state_out + tra_at;
    gru_cell(gx, tra_rt, tra_b + GATES * c, state_in + tra_at, hidden, tmp, c);
    linear(hidden, fc_t, fc_b, gain, 1, c, half);

    for (int h = 0; h < half; h++) {
        float g = sigmoid(gain[h]);
        const float *qh = q + (size_t)h * f;
        float *even = out + (size_t)(2 * h) * f;
        for (int k = 0; k < f; k++) even[k] = qh[k] * g;
        memcpy(out + (size_t)(2 * h + 1) * f, x + (size_t)(half + h) * f, sizeof(float) * (size_t)f);
    }
}

/* x (F, C) += LayerNorm over all of y (F, C), with elementwise weight and bias (F, C). */
static void add_layer_norm(float *x, const float *y, const float *w, const float *b, int n, float eps) {
    float mean = moment(y, n, 0.0f, 1) / (float)n;
    float inv = 1.0f / sqrtf(moment(y, n, mean, 2) / (float)n + eps);
    for (int j = 0; j < n; j++) x[j] += (y[j] - mean) * inv * w[j] + b[j];
}

/* DPGRNN on x (F, C) band-major, in place; reads its inter-path hidden (F, C) from state_in and writes
 * the next one to state_out. */
static void dpgrnn(Cursor *cur, const Dims *d, float *x, const float *state_in, float *state_out, float *work) {
    int c = d->channels, f = d->bands2, half = c / 2, n = c * f;
    int hidden_at = take_int(cur);
    const float *fw_wt = take_weights(cur), *fw_rt = take_weights(cur), *fw_b = take_weights(cur);
    const float *bw_wt = take_weights(cur), *bw_rt = take_weights(cur), *bw_b = take_weights(cur);
    const float *intra_fc = take_weights(cur), *intra_fc_b = take_weights(cur);
    const float *intra_ln_w = take_weights(cur), *intra_ln_b = take_weights(cur);
    const float *inter_wt = take_weights(cur), *inter_rt = take_weights(cur), *inter_b = take_weights(cur);
    const float *inter_fc = take_weights(cur), *inter_fc_b = take_weights(cur);
    const float *inter_ln_w = take_weights(cur), *inter_ln_b = take_weights(cur);

    int gates = GATES * c;
    float *gx_fw = work;                          /* (F, 3 C/2), then (F, 3C) for the inter path */
    float *gx_bw = gx_fw + aligned((size_t)f * gates);
    float *y = gx_bw + aligned((size_t)f * gates); /* (F, C): [forward, backward] hidden per band */
    float *z = y + aligned((size_t)n);            /* (F, C) */
    float *tmp = z + aligned((size_t)n);          /* (3C) */
    float *zeros = tmp + aligned((size_t)gates);  /* (C) */
    fill(zeros, c, 0.0f);

    int half_gates = GATES * half;
    linear(x, fw_wt, fw_b, gx_fw, f, c, half_gates);
    linear(x, bw_wt, bw_b, gx_bw, f, c, half_gates);
    for (int t = 0; t < f; t++) {
        const float *prev = t ? y + (size_t)(t - 1) * c : zeros;
        gru_cell(gx_fw + (size_t)t * half_gates, fw_rt, fw_b + half_gates, prev, y + (size_t)t * c, tmp, half);
    }
    for (int t = f - 1; t >= 0; t--) {
        const float *prev = t < f - 1 ? y + (size_t)(t + 1) * c + half : zeros;
        gru_cell(gx_bw + (size_t)t * half_gates, bw_rt, bw_b + half_gates, prev, y + (size_t)t * c + half, tmp, half);
    }
    linear(y, intra_fc, intra_fc_b, z, f, c, c);
    add_layer_norm(x, z, intra_ln_w, intra_ln_b, n, d->layer_norm_eps);

    linear(x, inter_wt, inter_b, gx_fw, f, c, gates);
    const float *h_in = state_in + hidden_at;
    float *h_out = state_out + hidden_at;
    for (int b = 0; b < f; b++)
        gru_cell(gx_fw + (size_t)b * gates, inter_rt, inter_b + gates, h_in + (size_t)b * c, h_out + (size_t)b * c, tmp, c);
    linear(h_out, inter_fc, inter_fc_b, z, f, c, c);
    add_layer_norm(x, z, inter_ln_w, inter_ln_b, n, d->layer_norm_eps);
}

/* y (cols, rows) = x (rows, cols) transposed. */
static void transpose(const float *restrict x, float *restrict y, int rows, int cols) {
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < cols; k++) y[(size_t)k * rows + r] = x[(size_t)r * cols + k];
}

/* Spectrum (n_bins, 2) -> ERB features (3, bands0) -> SFE (9, bands0). Each band's plan entry is
 * (first bin, bin count, weights offset). */
static void features(Cursor *cur, const Dims *d, const float *spec, Scratch *s) {
    int nb = d->n_bins, bands = d->bands0;
    float *mag = s->feat, *re = s->feat + nb, *im = s->feat + 2 * nb;
    for (int k = 0; k < nb; k++) {
        re[k] = spec[2 * k];
        im[k] = spec[2 * k + 1];
        mag[k] = sqrtf(re[k] * re[k] + im[k] * im[k] + d->magnitude_eps);
    }
    for (int b = 0; b < bands; b++) {
        int first = take_int(cur), count = take_int(cur);
        const float *w = take_weights(cur);
        for (int ch = 0; ch < INPUT_FEATURES; ch++) {
            const float *row = s->feat + (size_t)ch * nb + first;
            float acc = 0.0f;
            for (int k = 0; k < count; k++) acc += w[k] * row[k];
            s->erb[(size_t)ch * bands + b] = acc;
        }
    }
    for (int ch = 0; ch < INPUT_FEATURES; ch++) {
        const float *row = s->erb + (size_t)ch * bands;
        for (int k = 0; k < SFE_NEIGHBOURS; k++) {
            float *out = s->sfe + ((size_t)ch * SFE_NEIGHBOURS + k) * bands;
            int shift = k - SFE_NEIGHBOURS / 2; /* out[b] = row[b + shift] */
            fill(out, bands, 0.0f);
            int lo = shift < 0 ? -shift : 0, hi = shift > 0 ? bands - shift : bands;
            memcpy(out + lo, row + lo + shift, sizeof(float) * (size_t)(hi - lo));
        }
    }
}

/* Mask (2, bands0) -> per-bin mask (2, n_bins) -> enhanced spectrum (n_bins, 2). Each band's plan entry is
 * (first bin, bin count, weights offset) of its row of the expansion matrix. */
static void apply_mask(Cursor *expand, const Dims *d, const float *spec, float *out, Scratch *s) {
    int nb = d->n_bins, bands = d->bands0;
    float *m_re = s->mask_bins, *m_im = s->mask_bins + nb;
    fill(s->mask_bins, MASK_CHANNELS * nb, 0.0f);
    for (int b = 0; b < bands; b++) {
        int first = take_int(expand), count = take_int(expand);
        const float *w = take_weights(expand);
        axpy(m_re + first, w, s->mask[b], count);
        axpy(m_im + first, w, s->mask[bands + b], count);
    }
    for (int k = 0; k < nb; k++) {
        float re = spec[2 * k], im = spec[2 * k + 1];
        out[2 * k] = re * m_re[k] - im * m_im[k];
        out[2 * k + 1] = im * m_re[k] + re * m_im[k];
    }
}

/* Floats of scratch memory gtcrn_step needs for this plan, or -1 if the plan does not match this code. */
int64_t gtcrn_scratch_floats(const int32_t *plan) {
    if (plan[H_VERSION] != PLAN_VERSION || plan[H_BAND_KERNEL] != BAND_KERNEL || plan[H_BAND_STRIDE] != BAND_STRIDE ||
        plan[H_SFE] != SFE_NEIGHBOURS || plan[H_GT_FRAMES] != GT_KERNEL_FRAMES || plan[H_GT_BANDS] != GT_KERNEL_BANDS)
        return -1;
    Dims d;
    Scratch s;
    read_dims(plan, NULL, &d);
    return (int64_t)carve(&d, NULL, &s);
}

/* One GTCRN step for one stream.
 * plan, blob: from gtcrn_scratch_floats-checked plan and its weights; spec (n_bins, 2) noisy frame;
 * out (n_bins, 2) enhanced frame; state_in / state_out: the current and the next state (must not
 * overlap); scratch: gtcrn_scratch_floats(plan) floats, 64-byte aligned. */
void gtcrn_step(const int32_t *plan, const float *blob, const float *spec, float *out, const float *state_in,
                float *state_out, float *scratch) {
    Dims d;
    Scratch s;
    read_dims(plan, blob, &d);
    carve(&d, scratch, &s);
    int c = d.channels, f = d.bands2, map = c * f;
    Cursor cur = {plan + HEADER_INTS, blob};
    features(&cur, &d, spec, &s);
    Cursor expand = cur;
    cur.next += 3 * d.bands0;

    conv_block(&cur, s.sfe, s.skip0, d.bands0, d.bands1, s.work);
    conv_block(&cur, s.skip0, s.skips, d.bands1, d.bands2, s.work);
    for (int i = 0; i < d.n_gt; i++)
        gt_block(&cur, &d, s.skips + (size_t)i * map, s.skips + (size_t)(i + 1) * map, state_in, state_out, s.work);

    const float *encoded = s.skips + (size_t)d.n_gt * map;
    if (d.n_dpgrnn) {
        transpose(encoded, s.sum, c, f);
        for (int i = 0; i < d.n_dpgrnn; i++) dpgrnn(&cur, &d, s.sum, state_in, state_out, s.work);
        transpose(s.sum, s.x, f, c);
    } else {
        memcpy(s.x, encoded, sizeof(float) * (size_t)map);
    }

    for (int i = 0; i < d.n_gt; i++) {
        add(s.sum, s.x, s.skips + (size_t)(d.n_gt - i) * map, map);
        gt_block(&cur, &d, s.sum, s.x, state_in, state_out, s.work);
    }
    add(s.sum, s.x, s.skips, map);
    conv_transpose_block(&cur, s.sum, s.x, d.bands2, d.bands1, s.work);
    add(s.sum, s.x, s.skip0, c * d.bands1);
    conv_transpose_block(&cur, s.sum, s.mask, d.bands1, d.bands0, s.work);
    apply_mask(&expand, &d, spec, out, &s);
}
