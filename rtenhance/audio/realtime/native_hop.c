/* One hop of rtenhance's 16 kHz signal path in C: STFT analysis, the model on its own thread with a
 * deadline, strength mix, windowed overlap-add synthesis and the soft limiter.
 *
 * nh_process is what rtenhance/audio/native_hop.py calls once per hop; it computes exactly what the Python
 * path computes (StreamingStft, FrameGate around the native backend's stepper, StreamingIstft, SoftLimiter:
 * see those for the definitions), with the same gate semantics:
 * - the model runs on a pthread ("rtenhance-model", nice +NH_MODEL_NICE_OFFSET); the worker hands it a
 *   frame and waits at most the deadline, passing the frame through when the model is late or still busy
 *   with a frame it was too late for (the late result is discarded);
 * - frames that skipped the model make its state stale; it is reset before the model is used again;
 * - the output frame is (1 - dry) * enhanced + dry * noisy.
 * The model step is the native backend's gtcrn_step (rtenhance/backends/native/gtcrn_step.c), called
 * through a function pointer with two state sets used in turn and one scratch buffer, all owned here.
 *
 * The FFT is an in-place iterative radix-2 complex FFT of n_fft / 2 points (in double precision) with the
 * usual split into even and odd samples for the real transform; n_fft must be a power of two. Every buffer
 * is allocated by nh_new; nh_process allocates nothing, takes the lock only around the hand-over, and
 * never logs.
 *
 * Threads and memory. The model thread is started by nh_reset, which the engine calls when it opens the
 * devices, on its worker thread (so the model thread inherits that thread's CPU affinity and priority, then
 * lowers its own); never by nh_process: a model hop before nh_reset, or after nh_close stopped the thread,
 * passes through, counted as missed. The worker and the model thread share the job, result and state
 * buffers only across the hand-over under `lock` (request / done), so each buffer has one user at a time.
 * What other threads read without a lock (model_s, state_resets, knee) is a C11 atomic with relaxed order,
 * read and written through nh_model_s, nh_state_resets and nh_set_knee. nh_free joins the model thread
 * before it frees anything the thread uses; the caller keeps the plan and weights alive until it returns.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define NH_ALIGN_BYTES 64
#define NH_DRY_EPSILON 1e-6      /* DRY_EPSILON in gate.py: dry gains below this mean full strength */
#define NH_MODEL_NICE_OFFSET 5   /* MODEL_NICE_OFFSET in gate.py */
#define NH_MAX_NICE 19
#define NH_FOREVER_S 1e6         /* deadlines this long or longer wait without a time limit */
#define NH_THREAD_NAME "rtenhance-model"
#define NH_NS_PER_S 1000000000L

typedef void (*nh_step_fn)(const int32_t *plan, const float *blob, const float *spec, float *out,
                           const float *state_in, float *state_out, float *scratch);

/* A real FFT of n points (n a power of two) through a complex FFT of m = n / 2 points. */
typedef struct {
    int n, m;
    int *bitrev;      /* (m) bit-reversed index */
    double *cos_m;    /* (m / 2) cos(2 pi j / m) */
    double *sin_m;    /* (m / 2) sin(2 pi j / m) */
    double *cos_n;    /* (m + 1) cos(2 pi k / n) */
    double *sin_n;    /* (m + 1) sin(2 pi k / n) */
    double *re, *im;  /* (m) work */
} nh_fft;

typedef struct {
    _Atomic double model_s;         /* duration of the latest finished model step, s (NaN before the first) */
    _Atomic uint64_t state_resets;  /* model state resets because frames had skipped the model (worker) */
    _Atomic double knee;            /* limiter knee, linear (0, 1); read once per hop */

    int hop, n_fft, n_bins;
    nh_fft *fft;
    float *window;    /* (n_fft) periodic sqrt-Hann */
    float *previous;  /* (hop) the previous input hop */
    float *windowed;  /* (n_fft) analysis / synthesis frame */
    float *overlap;   /* (n_fft - hop) pending overlap-add tail */
    float *out;       /* (hop) output samples */
    float *frame;     /* (n_bins, 2) noisy spectrum */
    float *job;       /* (n_bins, 2) the model's input */
    float *result;    /* (n_bins, 2) the model's output */
    float *mixed;     /* (n_bins, 2) strength mix */

    nh_step_fn step;
    const int32_t *plan;
    const float *blob;
    float *state[2];  /* (state_floats) each: read one, write the other, then swap */
    size_t state_floats;
    float *scratch;
    int turn;         /* index of the state set the next step reads */

    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t request_cv, done_cv;
    int started, request, done, closing;  /* request, done, closing: under lock */
    double job_slow_s;                    /* under lock */
    int busy;   /* the model thread holds a frame (possibly one the worker stopped waiting for) */
    int stale;  /* frames skipped the model since its state was last valid */
} nh_hop;

static void *aligned_floats(size_t count) {
    void *p = NULL;
    size_t bytes = (count * sizeof(float) + NH_ALIGN_BYTES - 1) / NH_ALIGN_BYTES * NH_ALIGN_BYTES;
    if (posix_memalign(&p, NH_ALIGN_BYTES, bytes ? bytes : NH_ALIGN_BYTES) != 0)
        return NULL;
    memset(p, 0, bytes);
    return p;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / NH_NS_PER_S;
}

static struct timespec abs_time(double t) {
    struct timespec ts;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * NH_NS_PER_S);
    if (ts.tv_nsec >= NH_NS_PER_S) {
        ts.tv_sec += 1;
        ts.tv_nsec -= NH_NS_PER_S;
    }
    return ts;
}

/* ---- FFT ---- */

static int is_power_of_two(int n) { return n >= 4 && (n & (n - 1)) == 0; }

void nh_fft_free(nh_fft *f) {
    if (!f)
        return;
    free(f->bitrev);
    free(f->cos_m);
    free(f->sin_m);
    free(f->cos_n);
    free(f->sin_n);
    free(f->re);
    free(f->im);
    free(f);
}

nh_fft *nh_fft_new(int n) {
    if (!is_power_of_two(n))
        return NULL;
    nh_fft *f = calloc(1, sizeof(nh_fft));
    if (!f)
        return NULL;
    int m = n / 2, bits = 0;
    while ((1 << bits) < m)
        bits++;
    f->n = n;
    f->m = m;
    f->bitrev = malloc(sizeof(int) * (size_t)m);
    f->cos_m = malloc(sizeof(double) * (size_t)(m / 2 + 1));
    f->sin_m = malloc(sizeof(double) * (size_t)(m / 2 + 1));
    f->cos_n = malloc(sizeof(double) * (size_t)(m + 1));
    f->sin_n = malloc(sizeof(double) * (size_t)(m + 1));
    f->re = malloc(sizeof(double) * (size_t)m);
    f->im = malloc(sizeof(double) * (size_t)m);
    if (!f->bitrev || !f->cos_m || !f->sin_m || !f->cos_n || !f->sin_n || !f->re || !f->im) {
        nh_fft_free(f);
        return NULL;
    }
    for (int i = 0; i < m; i++) {
        int r = 0;
        for (int b = 0; b < bits; b++)
            r |= ((i >> b) & 1) << (bits - 1 - b);
        f->bitrev[i] = r;
    }
    for (int j = 0; j <= m / 2; j++) {
        f->cos_m[j] = cos(2.0 * M_PI * j / m);
        f->sin_m[j] = sin(2.0 * M_PI * j / m);
    }
    for (int k = 0; k <= m; k++) {
        f->cos_n[k] = cos(2.0 * M_PI * k / n);
        f->sin_n[k] = sin(2.0 * M_PI * k / n);
    }
    return f;
}

/* In place on f->re, f->im: forward (sign -1) or unscaled inverse (sign +1) complex FFT of m points. */
static void fft_complex(const nh_fft *f, double sign) {
    int m = f->m;
    double *re = f->re, *im = f->im;
    for (int i = 0; i < m; i++) {
        int j = f->bitrev[i];
        if (j > i) {
            double t = re[i];
            re[i] = re[j];
            re[j] = t;
            t = im[i];
            im[i] = im[j];
            im[j] = t;
        }
    }
    for (int size = 2; size <= m; size *= 2) {
        int half = size / 2, stride = m / size;
        for (int start = 0; start < m; start += size) {
            for (int k = 0; k < half; k++) {
                double wr = f->cos_m[k * stride], wi = sign * f->sin_m[k * stride];
                int a = start + k, b = a + half;
                double tr = re[b] * wr - im[b] * wi, ti = re[b] * wi + im[b] * wr;
                re[b] = re[a] - tr;
                im[b] = im[a] - ti;
                re[a] += tr;
                im[a] += ti;
            }
        }
    }
}

/* x: (n) samples -> spec: (n / 2 + 1, 2) spectrum (real, imaginary), unnormalised like numpy.fft.rfft. */
void nh_rfft(const nh_fft *f, const float *x, float *spec) {
    int m = f->m;
    for (int i = 0; i < m; i++) {
        f->re[i] = x[2 * i];
        f->im[i] = x[2 * i + 1];
    }
    fft_complex(f, -1.0);
    for (int k = 0; k <= m; k++) {
        int a = k % m, b = (m - k) % m;
        double zr = f->re[a], zi = f->im[a], cr = f->re[b], ci = -f->im[b];  /* Z[k], conj(Z[m - k]) */
        double er = 0.5 * (zr + cr), ei = 0.5 * (zi + ci);                   /* even samples' spectrum */
        double orr = 0.5 * (zi - ci), oi = -0.5 * (zr - cr);                 /* odd samples': (Z - conj) / 2i */
        double c = f->cos_n[k], s = f->sin_n[k];                             /* exp(-2 pi i k / n) = c - i s */
        spec[2 * k] = (float)(er + c * orr + s * oi);
        spec[2 * k + 1] = (float)(ei + c * oi - s * orr);
    }
}

/* spec: (n / 2 + 1, 2) -> x: (n) samples, like numpy.fft.irfft (the imaginary parts of the first and last
 * bins are ignored). */
void nh_irfft(const nh_fft *f, const float *spec, float *x) {
    int m = f->m;
    for (int k = 0; k < m; k++) {
        double xr = spec[2 * k], xi = k == 0 ? 0.0 : spec[2 * k + 1];
        double cr = spec[2 * (m - k)], ci = k == 0 ? 0.0 : -spec[2 * (m - k) + 1];  /* conj(X[m - k]) */
        double er = 0.5 * (xr + cr), ei = 0.5 * (xi + ci);
        double dr = 0.5 * (xr - cr), di = 0.5 * (xi - ci);
        double c = f->cos_n[k], s = f->sin_n[k];  /* odd = d * exp(+2 pi i k / n) */
        double orr = dr * c - di * s, oi = dr * s + di * c;
        f->re[k] = er - oi;  /* Z = even + i odd */
        f->im[k] = ei + orr;
    }
    fft_complex(f, 1.0);
    double scale = 1.0 / m;
    for (int i = 0; i < m; i++) {
        x[2 * i] = (float)(f->re[i] * scale);
        x[2 * i + 1] = (float)(f->im[i] * scale);
    }
}

/* ---- the model thread ---- */

static void lower_own_priority(void) {
    pid_t tid = (pid_t)syscall(SYS_gettid);
    errno = 0;
    int nice = getpriority(PRIO_PROCESS, (id_t)tid);
    if (errno == 0) {
        int lowered = nice + NH_MODEL_NICE_OFFSET;
        setpriority(PRIO_PROCESS, (id_t)tid, lowered < NH_MAX_NICE ? lowered : NH_MAX_NICE);
    }
}

static void *serve(void *arg) {
    nh_hop *h = arg;
    lower_own_priority();
    pthread_mutex_lock(&h->lock);
    for (;;) {
        while (!h->request && !h->closing)
            pthread_cond_wait(&h->request_cv, &h->lock);
        if (h->closing)
            break;
        h->request = 0;
        double slow_s = h->job_slow_s;
        pthread_mutex_unlock(&h->lock);
        double start = now_s();
        h->step(h->plan, h->blob, h->job, h->result, h->state[h->turn], h->state[1 - h->turn], h->scratch);
        h->turn ^= 1;
        pthread_mutex_lock(&h->lock);
        if (slow_s > 0.0) {  /* test-only overload simulation; close cuts it short */
            struct timespec until = abs_time(start + slow_s);
            while (!h->closing && now_s() < start + slow_s)
                pthread_cond_timedwait(&h->request_cv, &h->lock, &until);
        }
        atomic_store_explicit(&h->model_s, now_s() - start, memory_order_relaxed);
        h->done = 1;
        pthread_cond_broadcast(&h->done_cv);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

static int start_thread(nh_hop *h) {
    if (h->started)
        return 0;
    h->closing = 0;
    if (pthread_create(&h->thread, NULL, serve, h) != 0)
        return -1;
    pthread_setname_np(h->thread, NH_THREAD_NAME);  /* here, not in serve: named once this returns */
    h->started = 1;
    return 0;
}

/* Waits for a step in progress (the worker's side; no time limit). */
static void wait_idle(nh_hop *h) {
    if (!h->busy)
        return;
    pthread_mutex_lock(&h->lock);
    while (!h->done)
        pthread_cond_wait(&h->done_cv, &h->lock);
    pthread_mutex_unlock(&h->lock);
    h->busy = 0;
}

static void reset_model_state(nh_hop *h) {
    memset(h->state[0], 0, h->state_floats * sizeof(float));
    memset(h->state[1], 0, h->state_floats * sizeof(float));
    h->turn = 0;
}

/* FrameGate.step: the frame to synthesise (frame itself on passthrough); *missed as FrameGate.missed. */
static const float *gate_step(nh_hop *h, const float *frame, int run_model, double dry, double deadline_s,
                              double slow_s, int *missed) {
    int enhancing = run_model && dry < 1.0 - NH_DRY_EPSILON;
    *missed = 0;
    if (h->busy) {
        pthread_mutex_lock(&h->lock);
        int done = h->done;
        pthread_mutex_unlock(&h->lock);
        if (!done) {  /* still on a frame it was too late for */
            h->stale = 1;
            *missed = enhancing;
            return frame;
        }
        h->busy = 0;
    }
    if (!enhancing) {
        h->stale = 1;
        return frame;
    }
    if (!h->started) {  /* stopped (or failed to start): as if the model were late; never started here */
        h->stale = 1;
        *missed = 1;
        return frame;
    }
    if (h->stale) {
        reset_model_state(h);
        atomic_store_explicit(&h->state_resets, atomic_load_explicit(&h->state_resets, memory_order_relaxed) + 1,
                              memory_order_relaxed);  /* one writer: the worker */
        h->stale = 0;
    }
    memcpy(h->job, frame, sizeof(float) * 2 * (size_t)h->n_bins);
    double wait_s = deadline_s > 0.0 ? deadline_s : 0.0;  /* NaN -> 0, like max(0.0, nan) */
    pthread_mutex_lock(&h->lock);
    h->job_slow_s = slow_s;
    h->done = 0;
    h->request = 1;
    h->busy = 1;
    pthread_cond_signal(&h->request_cv);
    if (wait_s >= NH_FOREVER_S) {
        while (!h->done)
            pthread_cond_wait(&h->done_cv, &h->lock);
    } else {
        struct timespec until = abs_time(now_s() + wait_s);
        while (!h->done && pthread_cond_timedwait(&h->done_cv, &h->lock, &until) != ETIMEDOUT) {
        }
    }
    int done = h->done;
    pthread_mutex_unlock(&h->lock);
    if (!done) {
        h->stale = 1;
        *missed = 1;
        return frame;
    }
    h->busy = 0;
    if (dry <= NH_DRY_EPSILON)
        return h->result;
    float wet = (float)(1.0 - dry), dry_f = (float)dry;
    for (int i = 0; i < 2 * h->n_bins; i++)
        h->mixed[i] = h->result[i] * wet + dry_f * frame[i];
    return h->mixed;
}

/* ---- the hop ---- */

void nh_free(nh_hop *h);

nh_hop *nh_new(int hop, int n_fft, void *step, const int32_t *plan, const float *blob, int64_t state_floats,
               int64_t scratch_floats, double knee) {
    if (n_fft != 2 * hop || !is_power_of_two(n_fft) || !step || state_floats <= 0 || scratch_floats < 0)
        return NULL;
    nh_hop *h = calloc(1, sizeof(nh_hop));
    if (!h)
        return NULL;
    pthread_mutex_init(&h->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&h->request_cv, &attr);
    pthread_cond_init(&h->done_cv, &attr);
    pthread_condattr_destroy(&attr);
    atomic_init(&h->model_s, NAN);
    atomic_init(&h->knee, knee);
    h->hop = hop;
    h->n_fft = n_fft;
    h->n_bins = n_fft / 2 + 1;
    h->step = (nh_step_fn)step;
    h->plan = plan;
    h->blob = blob;
    h->state_floats = (size_t)state_floats;
    h->fft = nh_fft_new(n_fft);
    h->window = aligned_floats((size_t)n_fft);
    h->previous = aligned_floats((size_t)hop);
    h->windowed = aligned_floats((size_t)n_fft);
    h->overlap = aligned_floats((size_t)(n_fft - hop));
    h->out = aligned_floats((size_t)hop);
    h->frame = aligned_floats(2 * (size_t)h->n_bins);
    h->job = aligned_floats(2 * (size_t)h->n_bins);
    h->result = aligned_floats(2 * (size_t)h->n_bins);
    h->mixed = aligned_floats(2 * (size_t)h->n_bins);
    h->state[0] = aligned_floats(h->state_floats);
    h->state[1] = aligned_floats(h->state_floats);
    h->scratch = aligned_floats((size_t)scratch_floats);
    if (!h->fft || !h->window || !h->previous || !h->windowed || !h->overlap || !h->out || !h->frame || !h->job ||
        !h->result || !h->mixed || !h->state[0] || !h->state[1] || !h->scratch) {
        nh_free(h);
        return NULL;
    }
    for (int i = 0; i < n_fft; i++)  /* periodic Hann, square-rooted: sqrt_hann in dsp/stft.py */
        h->window[i] = (float)sqrt(0.5 - 0.5 * cos(2.0 * M_PI * i / n_fft));
    return h;
}

/* Stops the model thread (idempotent), after the step in progress; nh_reset starts it again. */
void nh_close(nh_hop *h) {
    if (!h->started)
        return;
    pthread_mutex_lock(&h->lock);
    h->closing = 1;
    pthread_cond_broadcast(&h->request_cv);
    pthread_mutex_unlock(&h->lock);
    pthread_join(h->thread, NULL);
    h->started = 0;
    pthread_mutex_lock(&h->lock);
    h->request = 0;
    h->done = 1;  /* a frame handed over but never taken is finished too */
    pthread_mutex_unlock(&h->lock);
}

void nh_free(nh_hop *h) {
    if (!h)
        return;
    nh_close(h);
    pthread_mutex_destroy(&h->lock);
    pthread_cond_destroy(&h->request_cv);
    pthread_cond_destroy(&h->done_cv);
    nh_fft_free(h->fft);
    free(h->window);
    free(h->previous);
    free(h->windowed);
    free(h->overlap);
    free(h->out);
    free(h->frame);
    free(h->job);
    free(h->result);
    free(h->mixed);
    free(h->state[0]);
    free(h->state[1]);
    free(h->scratch);
    free(h);
}

/* Back to the zero state; waits for a step in progress. */
static void clear(nh_hop *h) {
    wait_idle(h);
    reset_model_state(h);
    h->stale = 0;
    memset(h->previous, 0, sizeof(float) * (size_t)h->hop);
    memset(h->overlap, 0, sizeof(float) * (size_t)(h->n_fft - h->hop));
}

/* Back to the zero state (a fresh stream, not counted as a reset); waits for a step in progress, and starts
 * the model thread on the calling thread's affinity unless it runs. Returns 0, or -1 when the thread
 * cannot start (model hops then pass through). */
int nh_reset(nh_hop *h) {
    clear(h);
    return start_thread(h);
}

/* Runs the model on `frames` silent frames on the calling thread, then goes back to the zero state (and
 * leaves the model thread as it was). */
void nh_warm_up(nh_hop *h, int frames) {
    wait_idle(h);
    memset(h->job, 0, sizeof(float) * 2 * (size_t)h->n_bins);
    for (int i = 0; i < frames; i++) {
        h->step(h->plan, h->blob, h->job, h->result, h->state[h->turn], h->state[1 - h->turn], h->scratch);
        h->turn ^= 1;
    }
    clear(h);
}

/* One hop: in (hop) samples -> nh_output(h) (hop) samples, n_fft - hop samples behind. Returns whether the
 * model was wanted but the frame passed through (late or still busy). */
bool nh_process(nh_hop *h, const float *in, bool run_model, double dry, double deadline_s, double slow_s) {
    int hop = h->hop, n_fft = h->n_fft;
    for (int i = 0; i < hop; i++) {
        h->windowed[i] = h->previous[i] * h->window[i];
        h->windowed[hop + i] = in[i] * h->window[hop + i];
    }
    memcpy(h->previous, in, sizeof(float) * (size_t)hop);
    nh_rfft(h->fft, h->windowed, h->frame);
    int missed;
    const float *frame = gate_step(h, h->frame, run_model, dry, deadline_s, slow_s, &missed);
    nh_irfft(h->fft, frame, h->windowed);
    for (int i = 0; i < n_fft; i++)
        h->windowed[i] *= h->window[i];
    for (int i = 0; i < hop; i++) {
        h->out[i] = h->overlap[i] + h->windowed[i];
        h->overlap[i] = h->windowed[hop + i];
    }
    double knee = atomic_load_explicit(&h->knee, memory_order_relaxed), headroom = 1.0 - knee;
    for (int i = 0; i < hop; i++) {
        float x = h->out[i];
        float magnitude = fabsf(x);
        if (magnitude > (float)knee) {
            double limited = knee + headroom * tanh((magnitude - knee) / headroom);
            h->out[i] = (float)copysign(limited, x);
        }
    }
    return missed != 0;
}

/* The (hop) output samples of the latest nh_process (stable memory). */
float *nh_output(nh_hop *h) { return h->out; }

/* How long the latest finished model step took, s (NaN before the first); any thread. */
double nh_model_s(const nh_hop *h) { return atomic_load_explicit(&h->model_s, memory_order_relaxed); }

/* Model state resets because frames had skipped the model; any thread. */
uint64_t nh_state_resets(const nh_hop *h) { return atomic_load_explicit(&h->state_resets, memory_order_relaxed); }

/* The limiter knee (linear) for the next hop on; any thread. */
void nh_set_knee(nh_hop *h, double knee) { atomic_store_explicit(&h->knee, knee, memory_order_relaxed); }
