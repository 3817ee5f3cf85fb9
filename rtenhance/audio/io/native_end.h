/* The end of a live audio stream for rtenhance's C sound-server clients (native_pulse.c, native_pipewire.c):
 * a lock-free ring of mono float32 samples between the server's thread and the worker, the end's counters
 * and latency readings, its error slot, and the worker's wait for input.
 *
 * Each client library includes this header in exactly one translation unit and so exports the same end API
 * (rtp_end_new, rtp_ring_*, rtp_end_stats, rtp_wait_input, ...), with the same layouts: the Python side
 * (rtenhance/audio/io/native_pulse_lib.py) drives either library through one set of bindings. The client
 * defines `struct rtp_conn` and the stream functions (rtp_conn_open, rtp_stream_open, ...).
 *
 * Threads and memory. Every field another thread reads without a lock is a C11 atomic: the ring indices
 * (release/acquire: they publish the samples), the counters and readings (relaxed: each has one writer at
 * a time, the server's thread or a caller holding the client's lock, and a reader only wants a recent
 * value), and `failed` (release/acquire: it publishes `error`).
 */
#ifndef RTENHANCE_NATIVE_END_H
#define RTENHANCE_NATIVE_END_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


#define RTP_TIMING_SLOTS 512    /* latest latency readings kept (a few seconds of fragments) */
#define RTP_ERROR_BYTES 256     /* an end's error message, NUL-terminated */
#define RTP_RECORD 0
#define RTP_PLAYBACK 1
#define BYTES_PER_SAMPLE 4      /* mono float32 */
#define USEC_PER_S 1000000.0
#define NSEC_PER_S 1000000000L

/* A single-producer single-consumer FIFO of float32 samples; each index is advanced by one side only. */
typedef struct {
    uint64_t capacity;          /* samples */
    _Atomic uint64_t written;   /* samples ever written (producer) */
    _Atomic uint64_t read;      /* samples ever read (consumer) */
    _Atomic uint64_t overflows; /* writes that did not fit completely (producer) */
    _Atomic uint64_t dropped_samples;
    _Atomic uint64_t underflows; /* reads that found fewer samples than asked for (consumer) */
    _Atomic uint64_t missing_samples;
    float *data;
} rtp_ring;

typedef struct rtp_conn rtp_conn;

/* A copy of an end's counters for another thread (rtp_end_stats); mirrored by _Stats in native_pulse.py,
 * checked at load through rtp_stats_layout. */
typedef struct {
    uint64_t capacity;          /* ring samples */
    uint64_t overflows;
    uint64_t dropped_samples;
    uint64_t underflows;
    uint64_t missing_samples;
    uint64_t fragments;
    uint64_t short_fragments;
    uint64_t server_underflows;
    double last_callback_s;
    uint64_t latency_count;
    uint64_t gaps;
    uint64_t gap_samples;
    int32_t failed;
} rtp_stats;

/* One direction's state; other threads read it through rtp_end_stats, rtp_end_latencies, rtp_end_error. */
typedef struct {
    rtp_ring ring;
    _Atomic uint64_t fragments;         /* fragments moved since start */
    _Atomic uint64_t short_fragments;   /* fragments the ring could not take (capture) or fill (playback) */
    _Atomic uint64_t server_underflows; /* playback: times the server ran out of audio */
    _Atomic double last_callback_s;     /* CLOCK_MONOTONIC time of the latest fragment, s */
    _Atomic uint64_t play_seq;          /* playback: odd while end_play updates the ring and the two below */
    _Atomic double played_at_s;         /* playback: CLOCK_MONOTONIC time the latest fragment left the ring, s */
    _Atomic uint64_t played_samples;    /* playback: that fragment's size */
    _Atomic uint64_t owed;              /* playback: samples the server asked for that the ring lacked (a client
                                           that may write late, libpulse, hands them over at the next write) */
    _Atomic uint64_t latency_count;     /* readings ever taken; the latest are in latency_s[count % SLOTS] */
    _Atomic uint64_t gaps;              /* graph cycles the server ran without the stream (PipeWire; */
    _Atomic uint64_t gap_samples;       /* capture wrote their span as silence) */
    _Atomic double latency_s[RTP_TIMING_SLOTS];
    _Atomic int32_t failed;             /* the stream or its connection broke: see error (set with release) */
    char error[RTP_ERROR_BYTES];        /* written only while failed is 0, under the main-loop lock */
    int direction;
    uint32_t rate;              /* Hz */
    uint32_t fragment_frames;
    _Atomic int running;        /* between rtp_stream_start and rtp_stream_close */
    _Atomic uint64_t wanted;    /* samples a worker in rtp_wait_input waits for; 0 when none waits */
    pthread_mutex_t wait_lock;
    pthread_cond_t wait_cond;
    void *stream;               /* the transport's stream (pa_stream, pw_stream), NULL when closed */
    rtp_conn *conn;             /* the transport's connection, NULL when closed */
} rtp_end;

static double monotonic_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / NSEC_PER_S;
}

static void set_error(char *buffer, size_t size, const char *what, const char *why)
{
    snprintf(buffer, size, "%s: %s", what, why);
}

/* Add n to a counter that has one writer at a time (relaxed: a reader only wants a recent value). */
static void bump(_Atomic uint64_t *counter, uint64_t n)
{
    atomic_store_explicit(counter, atomic_load_explicit(counter, memory_order_relaxed) + n, memory_order_relaxed);
}

static int has_failed(const rtp_end *end)
{
    return atomic_load_explicit(&end->failed, memory_order_acquire);
}

/* ---- rings ---- */

static uint64_t ring_available(const rtp_ring *r)
{
    return atomic_load(&r->written) - atomic_load(&r->read);
}

uint64_t rtp_ring_available(const rtp_ring *r) { return ring_available(r); }

uint64_t rtp_ring_free(const rtp_ring *r) { return r->capacity - ring_available(r); }

/* Producer: append up to n samples (NULL: silence); the rest is dropped and counted. Returns samples written. */
uint64_t rtp_ring_write(rtp_ring *r, const float *samples, uint64_t n)
{
    uint64_t written = atomic_load_explicit(&r->written, memory_order_relaxed);
    uint64_t room = r->capacity - (written - atomic_load_explicit(&r->read, memory_order_acquire));
    uint64_t take = n < room ? n : room;
    if (take < n) {
        bump(&r->overflows, 1);
        bump(&r->dropped_samples, n - take);
    }
    uint64_t start = written % r->capacity;
    uint64_t first = take < r->capacity - start ? take : r->capacity - start;
    if (samples) {
        memcpy(r->data + start, samples, first * sizeof(float));
        memcpy(r->data, samples + first, (take - first) * sizeof(float));
    } else {
        memset(r->data + start, 0, first * sizeof(float));
        memset(r->data, 0, (take - first) * sizeof(float));
    }
    atomic_store_explicit(&r->written, written + take, memory_order_release);
    return take;
}

/* Consumer: move up to n of the oldest samples to out; a shortfall is counted. Returns samples read. */
uint64_t rtp_ring_read(rtp_ring *r, float *out, uint64_t n)
{
    uint64_t read = atomic_load_explicit(&r->read, memory_order_relaxed);
    uint64_t have = atomic_load_explicit(&r->written, memory_order_acquire) - read;
    uint64_t take = n < have ? n : have;
    if (take < n) {
        bump(&r->underflows, 1);
        bump(&r->missing_samples, n - take);
    }
    uint64_t start = read % r->capacity;
    uint64_t first = take < r->capacity - start ? take : r->capacity - start;
    memcpy(out, r->data + start, first * sizeof(float));
    memcpy(out + first, r->data, (take - first) * sizeof(float));
    atomic_store_explicit(&r->read, read + take, memory_order_release);
    return take;
}

/* Empty the ring, keeping the counters; only while neither side runs. */
void rtp_ring_reset(rtp_ring *r)
{
    atomic_store(&r->written, 0);
    atomic_store(&r->read, 0);
}

/* ---- ends ---- */

/* A new end for `direction` (RTP_RECORD or RTP_PLAYBACK) with a ring of `capacity` samples; NULL when out of memory. */
rtp_end *rtp_end_new(int direction, uint64_t capacity, uint32_t rate, uint32_t fragment_frames)
{
    rtp_end *end = calloc(1, sizeof(rtp_end));
    if (!end)
        return NULL;
    end->ring.data = calloc(capacity, sizeof(float));
    if (!end->ring.data) {
        free(end);
        return NULL;
    }
    end->ring.capacity = capacity;
    end->direction = direction;
    end->rate = rate;
    end->fragment_frames = fragment_frames;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&end->wait_cond, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&end->wait_lock, NULL);
    return end;
}

/* Free an end whose stream is closed. */
void rtp_end_free(rtp_end *end)
{
    if (!end)
        return;
    pthread_cond_destroy(&end->wait_cond);
    pthread_mutex_destroy(&end->wait_lock);
    free(end->ring.data);
    free(end);
}

/* ---- what other threads read ---- */

/* Copy the end's counters into `out` (each a recent value; relaxed loads, never blocks). */
void rtp_end_stats(const rtp_end *end, rtp_stats *out)
{
    const rtp_ring *r = &end->ring;
    out->capacity = r->capacity;
    out->overflows = atomic_load_explicit(&r->overflows, memory_order_relaxed);
    out->dropped_samples = atomic_load_explicit(&r->dropped_samples, memory_order_relaxed);
    out->underflows = atomic_load_explicit(&r->underflows, memory_order_relaxed);
    out->missing_samples = atomic_load_explicit(&r->missing_samples, memory_order_relaxed);
    out->fragments = atomic_load_explicit(&end->fragments, memory_order_relaxed);
    out->short_fragments = atomic_load_explicit(&end->short_fragments, memory_order_relaxed);
    out->server_underflows = atomic_load_explicit(&end->server_underflows, memory_order_relaxed);
    out->last_callback_s = atomic_load_explicit(&end->last_callback_s, memory_order_relaxed);
    out->latency_count = atomic_load_explicit(&end->latency_count, memory_order_relaxed);
    out->gaps = atomic_load_explicit(&end->gaps, memory_order_relaxed);
    out->gap_samples = atomic_load_explicit(&end->gap_samples, memory_order_relaxed);
    out->failed = has_failed(end);
}

/* Playback: the samples in the ring less the part of the latest fragment that has played since it left the
 * ring (at the stream's rate, at most the whole fragment), less what the server is owed. A device takes the
 * ring's audio a fragment (a graph cycle, a server request) at a time, and that fragment plays over the next
 * cycle: the plain ring depth read just before a write is a sawtooth sampled at the write's phase against the
 * device's cycle, and when the two run in step (one PipeWire graph, or two drivers on one clock) that phase
 * sits still or slips slowly, so the reading jumps by a whole cycle whenever a cycle crosses the write. This
 * reading does not: it falls continuously as audio plays, and it is what will be left when the next fragment
 * is taken (0 exactly when the device would find the ring short). It goes below 0 while a server that asked
 * for more than the ring held waits for the rest (libpulse: see feed in native_pulse.c): by how much the
 * next write comes late. Never blocks: retries while end_play is mid-update, and after a few tries returns
 * the plain depth less what is owed. */
int64_t rtp_end_depth(const rtp_end *end)
{
    for (int attempt = 0; attempt < 8; attempt++) {
        uint64_t seq = atomic_load_explicit(&end->play_seq, memory_order_acquire);
        if (seq & 1)
            continue;
        uint64_t available = ring_available(&end->ring);
        double played_at = atomic_load_explicit(&end->played_at_s, memory_order_relaxed);
        uint64_t fragment = atomic_load_explicit(&end->played_samples, memory_order_relaxed);
        uint64_t owed = atomic_load_explicit(&end->owed, memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&end->play_seq, memory_order_relaxed) != seq)
            continue;
        double since = (monotonic_s() - played_at) * end->rate;
        uint64_t played = since <= 0.0 ? 0 : since >= (double)fragment ? fragment : (uint64_t)since;
        return (int64_t)(available > played ? available - played : 0) - (int64_t)owed;
    }
    return (int64_t)ring_available(&end->ring) - (int64_t)atomic_load_explicit(&end->owed, memory_order_relaxed);
}

/* Hand what the server is owed over now (the client's lock taken); only called while something is owed.
 * Defined by the client. */
static void end_top_up(rtp_end *end);

/* Playback, the worker: append up to n samples to the ring (rtp_ring_write), then hand the server what it is
 * owed, if anything. Returns the samples written.
 *
 * The check cannot miss a debt the client's thread is recording at the same moment: the worker stores
 * `written`, then loads `owed`; the client (feed in native_pulse.c) stores `owed`, then loads `written`,
 * each with a sequentially consistent fence between (Dekker's pattern, as in rtp_wait_input): either the
 * client sees the new samples and takes them, or the worker sees the debt and tops up. */
uint64_t rtp_end_write(rtp_end *end, const float *samples, uint64_t n)
{
    uint64_t wrote = rtp_ring_write(&end->ring, samples, n);
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&end->owed, memory_order_relaxed))
        end_top_up(end);
    return wrote;
}

/* Copy the latest latency readings (s, oldest slot first as stored, not in time order) into out (room
 * for `n`); returns how many were copied: min(readings taken, RTP_TIMING_SLOTS, n). */
uint64_t rtp_end_latencies(const rtp_end *end, double *out, uint64_t n)
{
    uint64_t count = atomic_load_explicit(&end->latency_count, memory_order_acquire);
    if (count > RTP_TIMING_SLOTS)
        count = RTP_TIMING_SLOTS;
    if (count > n)
        count = n;
    for (uint64_t i = 0; i < count; i++)
        out[i] = atomic_load_explicit(&end->latency_s[i], memory_order_relaxed);
    return count;
}

/* Copy why the stream broke into out (NUL-terminated, at most `size` bytes); returns whether it broke
 * (out is empty when not). The acquire load of `failed` makes the message written before it visible. */
int rtp_end_error(const rtp_end *end, char *out, size_t size)
{
    int failed = has_failed(end);
    if (size)
        snprintf(out, size, "%s", failed ? end->error : "");
    return failed;
}

#define RTP_FIELD(type, field) offsetof(type, field), sizeof(((type *)0)->field)

/* rtp_stats's layout for the Python mirror to check: sizeof, then offset and size of each field in
 * order. Writes at most n values to out and returns how many there are. */
uint64_t rtp_stats_layout(uint64_t *out, uint64_t n)
{
    const uint64_t layout[] = {
        sizeof(rtp_stats), RTP_FIELD(rtp_stats, capacity), RTP_FIELD(rtp_stats, overflows),
        RTP_FIELD(rtp_stats, dropped_samples), RTP_FIELD(rtp_stats, underflows),
        RTP_FIELD(rtp_stats, missing_samples), RTP_FIELD(rtp_stats, fragments),
        RTP_FIELD(rtp_stats, short_fragments), RTP_FIELD(rtp_stats, server_underflows),
        RTP_FIELD(rtp_stats, last_callback_s), RTP_FIELD(rtp_stats, latency_count), RTP_FIELD(rtp_stats, gaps),
        RTP_FIELD(rtp_stats, gap_samples), RTP_FIELD(rtp_stats, failed),
    };
    uint64_t count = sizeof layout / sizeof layout[0];
    for (uint64_t i = 0; i < count && i < n; i++)
        out[i] = layout[i];
    return count;
}

static void wake_waiter(rtp_end *end)
{
    pthread_mutex_lock(&end->wait_lock);
    pthread_cond_broadcast(&end->wait_cond);
    pthread_mutex_unlock(&end->wait_lock);
}

/* Record why the end's stream broke (first reason wins) and wake its waiter. Main-loop thread, or a caller
 * holding the main-loop lock: one writer at a time. The release store publishes `error` to whoever sees
 * `failed` set. */
static void fail_end(rtp_end *end, const char *what, const char *why)
{
    if (!has_failed(end)) {
        set_error(end->error, sizeof end->error, what, why);
        atomic_store_explicit(&end->failed, 1, memory_order_release);
    }
    wake_waiter(end);
}

static void add_latency(rtp_end *end, double seconds)
{
    uint64_t count = atomic_load_explicit(&end->latency_count, memory_order_relaxed);
    atomic_store_explicit(&end->latency_s[count % RTP_TIMING_SLOTS], seconds, memory_order_relaxed);
    atomic_store_explicit(&end->latency_count, count + 1, memory_order_release);
}

static void set_last_callback(rtp_end *end)
{
    atomic_store_explicit(&end->last_callback_s, monotonic_s(), memory_order_relaxed);
}

/* Block until the capture ring holds `samples` samples, the stream fails, or `timeout_us` passes.
 * Returns the samples available. Called by the worker (Python releases the GIL around it).
 *
 * The handshake with on_read cannot lose a wake-up. The waiter stores `wanted`, then loads the ring's
 * `written`; on_read stores `written`, then loads `wanted`: each side stores one variable and then loads
 * the other's (Dekker's pattern), which release/acquire alone lets both sides get wrong at once (each
 * load may be satisfied before the other side's store is visible: the waiter sleeps, on_read sees no
 * waiter, and the wake-up is lost until the next fragment or the timeout). A sequentially consistent
 * fence on each side, between its store and its load, rules that out (C11 7.17.4: the fences are totally
 * ordered; whichever comes second, its side's load sees the other side's store): either the waiter sees
 * the samples and does not sleep, or on_read sees `wanted` and signals. The signal takes `wait_lock`,
 * which the waiter holds from its check until pthread_cond_timedwait releases it, so it cannot fall
 * between the waiter's check and its sleep. `failed` is set before fail_end takes `wait_lock` to signal,
 * and read under it here: the ordinary condition-variable protocol. */
uint64_t rtp_wait_input(rtp_end *end, uint64_t samples, int64_t timeout_us)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_us / 1000000;
    deadline.tv_nsec += (timeout_us % 1000000) * 1000;
    if (deadline.tv_nsec >= NSEC_PER_S) {
        deadline.tv_sec++;
        deadline.tv_nsec -= NSEC_PER_S;
    }
    pthread_mutex_lock(&end->wait_lock);
    atomic_store_explicit(&end->wanted, samples, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst); /* pairs with the fence in on_read: see above */
    while (ring_available(&end->ring) < samples && !has_failed(end)) {
        if (pthread_cond_timedwait(&end->wait_cond, &end->wait_lock, &deadline) == ETIMEDOUT)
            break;
    }
    atomic_store_explicit(&end->wanted, 0, memory_order_relaxed);
    pthread_mutex_unlock(&end->wait_lock);
    return ring_available(&end->ring);
}

/* ---- what the clients' callbacks do with an end ---- */

/* Capture: append one fragment of `samples` (NULL: silence) to the ring; one the ring cannot take whole
 * is counted as a short fragment. Server thread. */
static void end_capture(rtp_end *end, const float *data, uint64_t samples)
{
    if (rtp_ring_write(&end->ring, data, samples) < samples)
        bump(&end->short_fragments, 1);
}

/* Capture: after a callback's fragments, record the latency reading (s), the time and the count, and wake
 * the worker once the ring holds what it waits for. Server thread. */
static void end_captured(rtp_end *end, double latency_s)
{
    add_latency(end, latency_s);
    set_last_callback(end);
    bump(&end->fragments, 1);
    atomic_thread_fence(memory_order_seq_cst); /* pairs with the fence in rtp_wait_input: see there */
    uint64_t wanted = atomic_load_explicit(&end->wanted, memory_order_relaxed);
    if (wanted && ring_available(&end->ring) >= wanted)
        wake_waiter(end);
}

/* Playback: fill `out` (n samples) from the ring, silence for what it lacks (a short fragment). Server
 * thread. The read, its time and its size are published together (a sequence lock: rtp_end_depth). */
static void end_play(rtp_end *end, float *out, uint64_t n)
{
    uint64_t seq = atomic_load_explicit(&end->play_seq, memory_order_relaxed);
    atomic_store_explicit(&end->play_seq, seq + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    uint64_t got = rtp_ring_read(&end->ring, out, n);
    atomic_store_explicit(&end->played_at_s, monotonic_s(), memory_order_relaxed);
    atomic_store_explicit(&end->played_samples, n, memory_order_relaxed);
    atomic_store_explicit(&end->play_seq, seq + 2, memory_order_release);
    if (got < n) {
        memset(out + got, 0, (n - got) * sizeof(float));
        bump(&end->short_fragments, 1);
    }
}

/* Playback: after a callback's fragments, record the latency reading (s), the time and the count. */
static void end_played(rtp_end *end, double latency_s)
{
    add_latency(end, latency_s);
    set_last_callback(end);
    bump(&end->fragments, 1);
}

#endif
