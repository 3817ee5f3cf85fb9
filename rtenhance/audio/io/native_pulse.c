/* PulseAudio capture and playback for rtenhance on one libpulse main-loop thread, behind lock-free rings.
 *
 * A connection (rtp_conn) is one pa_threaded_mainloop and one pa_context; it serves at most one record and
 * one playback stream. Each stream belongs to an end (rtp_end): a single-producer single-consumer float32
 * ring, counters, the latest latency readings and an error slot. Ends outlive their streams, so the
 * statistics stay readable while a stream is closed and reopened.
 *
 * Threads and memory. Every field another thread reads without a lock is a C11 atomic: the ring indices
 * (release/acquire: they publish the samples), the counters and readings (relaxed: each has one writer at
 * a time, the main-loop thread or a caller holding the main-loop lock, and a reader only wants a recent
 * value), and `failed` (release/acquire: it publishes `error`). The Python side
 * (rtenhance/audio/native_pulse.py) reads them only through rtp_end_stats, rtp_end_latencies and
 * rtp_end_error, never as struct fields; rtp_stats_layout lets it check its mirror of rtp_stats.
 * Ownership: an end is used by the main-loop thread only while its stream is open (conn->ends, the stream
 * callbacks); rtp_stream_close detaches it under the main-loop lock, after which only the caller's threads
 * touch it, and rtp_end_free may run once none of them can call in any more. A connection's thread is
 * stopped (joined) by rtp_conn_close before its memory is freed.
 *
 * Capture: the read callback copies each fragment from the server straight into the end's ring and wakes
 * a worker blocked in rtp_wait_input once the ring holds what it waits for. Playback is driven by the
 * server: its write callback asks for what its buffer (tlength, RTP_BUFFER_FRAGMENTS fragments) lacks,
 * in multiples of one fragment (minreq), and gets what the ring holds of it; the rest is owed and goes over
 * as soon as the worker writes (rtp_end_write takes the main-loop lock, held by this thread only while it
 * dispatches), so the server's own buffer, not silence, covers a worker a few ms late. The server's clock
 * thus paces playback on PulseAudio and PipeWire alike; the stream's reported latency is only measured,
 * never used to decide when to write (pipewire-pulse reports the graph's delay on top of the stream's
 * buffer, so a writer paced by it fell behind and the server played silence, about 1 % of the time, that
 * the ring never saw). Silence plays only when the server's buffer runs dry: an underflow, the ring's when
 * the server was owed audio. Nothing on the audio path allocates, locks a lock another audio thread holds
 * for long, or logs.
 *
 * libpulse's headers are not needed to build this: the few types, constants and prototypes used are
 * declared in libpulse_api.h (its ABI has been stable since 0.9), and the library is linked as libpulse.so.0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "libpulse_api.h"

/* ---- rtenhance's side: the end (ring, counters, wait) is shared with native_pipewire.c ---- */

#include "native_end.h"

/* Playback: the server's buffer (tlength), in fragments. Audio in rtenhance's ring is no help when the path
 * that hands it over (the server's main thread, which takes each request and each write, and this thread)
 * wakes late: only what the server already holds plays on. At 2 fragments (10 ms, 5 ms of which are left
 * when it asks) PulseAudio on a 2-core machine ran dry 4-6 times in 30 s while the ring held 20 ms; at 3
 * and at 4, at most once in the same cells. Each fragment more is 5 ms more delay end to end (3: 46 ms
 * over a plain loopback, 4: 49 ms, when the ring was held above empty; with the last fragment counted as
 * the ring's cushion, PULSE_CUSHION_FRAGMENTS in native_pulse_lib.py, 3 give 40-42 ms). */
#define RTP_BUFFER_FRAGMENTS 3

struct rtp_conn {
    pa_threaded_mainloop *loop;
    pa_context *context;
    rtp_end *ends[2];           /* by direction; NULL when that stream is closed */
    _Atomic long thread_id;     /* the main-loop thread's kernel id (for its scheduling), 0 until known */
    int context_state;
};

/* The stream's latency in microseconds: record: age of the next sample to read; playback: time until the
 * last written sample plays. 0 before timing data arrives, and when it is negative (a monitor source
 * captures a sink's samples before they play; a playback stream that ran dry), as libpulse-simple reports. */
static double stream_latency_us(pa_stream *s)
{
    pa_usec_t usec = 0;
    int negative = 0;
    if (pa_stream_get_latency(s, &usec, &negative) < 0 || negative)
        return 0.0;
    return (double)usec;
}

/* ---- capture ---- */

static void on_read(pa_stream *s, size_t nbytes, void *userdata)
{
    rtp_end *end = userdata;
    int running = atomic_load(&end->running);
    size_t delivered = 0;
    (void)nbytes;
    for (;;) {
        const void *data = NULL;
        size_t size = 0;
        if (pa_stream_peek(s, &data, &size) < 0 || size == 0)
            break;
        uint64_t samples = size / BYTES_PER_SAMPLE;
        if (running)  /* data is NULL for a hole in the server's buffer: silence in its place */
            end_capture(end, data, samples);
        delivered += samples;
        pa_stream_drop(s);
    }
    if (!running || delivered == 0)
        return;
    /* age of the delivered block's middle sample when it enters the ring */
    end_captured(end, stream_latency_us(s) / USEC_PER_S + 0.5 * (double)delivered / end->rate);
}

/* ---- playback ---- */

/* Move what the server asks for (`nbytes`, whole samples) from the ring, as much as the ring holds; what it
 * lacks stays owed (`owed`, libpulse's writable size) and goes over with the worker's next write
 * (rtp_end_write, end_top_up), not as silence now. The server still holds RTP_BUFFER_FRAGMENTS - 1 fragments
 * when it asks, so a worker a few ms late costs nothing audible; silence written in its place would have
 * played and delayed everything after it. Only a server that runs dry while owed is the ring's underflow
 * (on_underflow). Main-loop thread, or the worker holding the main-loop lock. */
static void feed(rtp_end *end, size_t nbytes)
{
    uint64_t frames = nbytes == (size_t)-1 ? 0 : nbytes / BYTES_PER_SAMPLE;
    int wrote = 0;
    while (frames > 0) {
        uint64_t have = ring_available(&end->ring);
        if (have == 0) {
            atomic_store_explicit(&end->owed, frames, memory_order_relaxed);
            atomic_thread_fence(memory_order_seq_cst); /* pairs with rtp_end_write's: see there */
            if (ring_available(&end->ring) == 0)
                break;
            continue;
        }
        void *buffer = NULL;
        size_t size = (frames < have ? frames : have) * BYTES_PER_SAMPLE;
        if (pa_stream_begin_write(end->stream, &buffer, &size) < 0 || size < BYTES_PER_SAMPLE) {
            fail_end(end, "playback write failed", pa_strerror(pa_context_errno(end->conn->context)));
            return;
        }
        uint64_t n = size / BYTES_PER_SAMPLE;
        float *out = buffer;
        end_play(end, out, n);
        if (pa_stream_write(end->stream, out, n * BYTES_PER_SAMPLE, NULL, 0, PA_SEEK_RELATIVE) < 0) {
            fail_end(end, "playback write failed", pa_strerror(pa_context_errno(end->conn->context)));
            return;
        }
        frames -= n;
        wrote = 1;
    }
    if (frames == 0)
        atomic_store_explicit(&end->owed, 0, memory_order_relaxed);
    if (!wrote)
        return;
    /* time from leaving the ring to the speaker, for the last written sample */
    end_played(end, stream_latency_us(end->stream) / USEC_PER_S);
}

/* The server asks for `nbytes` more (its buffer is below tlength by at least minreq), with what it is still
 * owed. Main-loop thread. */
static void on_write(pa_stream *s, size_t nbytes, void *userdata)
{
    rtp_end *end = userdata;
    (void)s;
    if (atomic_load(&end->running) && !has_failed(end))
        feed(end, nbytes);
}

/* The worker wrote into the ring while the server was owed audio: hand it over now. The worker's thread;
 * the main-loop lock keeps the stream from closing under it (closing is the same thread's job anyway). */
static void end_top_up(rtp_end *end)
{
    rtp_conn *conn = end->conn;
    if (!conn)
        return;
    pa_threaded_mainloop_lock(conn->loop);
    if (end->stream && atomic_load(&end->running) && !has_failed(end))
        feed(end, pa_stream_writable_size(end->stream));
    pa_threaded_mainloop_unlock(conn->loop);
}

/* The server ran out of this stream's audio (it plays silence until a fragment arrives). While it was owed
 * audio the ring lacked, the ring ran dry (rtenhance late): counted as the ring's underflow; otherwise the
 * audio was there and the server (or this thread) woke too late: a server underflow. */
static void on_underflow(pa_stream *s, void *userdata)
{
    rtp_end *end = userdata;
    (void)s;
    if (!atomic_load(&end->running))
        return;
    uint64_t owed = atomic_load_explicit(&end->owed, memory_order_relaxed);
    if (owed) {
        bump(&end->ring.underflows, 1);
        bump(&end->ring.missing_samples, owed);
    } else {
        bump(&end->server_underflows, 1);
    }
}

/* ---- connection ---- */

static void on_context_state(pa_context *c, void *userdata)
{
    rtp_conn *conn = userdata;
    conn->context_state = pa_context_get_state(c);
    if (conn->context_state == PA_CONTEXT_READY) /* reached on the main-loop thread, never in pa_context_connect */
        atomic_store(&conn->thread_id, (long)syscall(SYS_gettid));
    if (conn->context_state == PA_CONTEXT_FAILED || conn->context_state == PA_CONTEXT_TERMINATED) {
        for (int i = 0; i < 2; i++)
            if (conn->ends[i])
                fail_end(conn->ends[i], "connection to the sound server lost", pa_strerror(pa_context_errno(c)));
    }
    pa_threaded_mainloop_signal(conn->loop, 0);
}

static void on_stream_state(pa_stream *s, void *userdata)
{
    rtp_end *end = userdata;
    int state = pa_stream_get_state(s);
    if (state == PA_STREAM_FAILED || state == PA_STREAM_TERMINATED)
        fail_end(end, state == PA_STREAM_FAILED ? "stream failed" : "stream ended by the server",
                 pa_strerror(pa_context_errno(end->conn->context)));
    pa_threaded_mainloop_signal(end->conn->loop, 0);
}

static void on_operation_done(pa_stream *s, int success, void *userdata)
{
    (void)s;
    (void)success;
    pa_threaded_mainloop_signal(userdata, 0);
}

/* Wait (main loop locked) until `op` finishes or the end fails; consumes `op`. */
static void wait_operation(rtp_conn *conn, rtp_end *end, pa_operation *op)
{
    if (!op)
        return;
    while (pa_operation_get_state(op) == PA_OPERATION_RUNNING && !has_failed(end))
        pa_threaded_mainloop_wait(conn->loop);
    pa_operation_unref(op);
}

static void close_connection(rtp_conn *conn)
{
    if (conn->loop)
        pa_threaded_mainloop_stop(conn->loop);
    if (conn->context) {
        pa_context_disconnect(conn->context);
        pa_context_unref(conn->context);
    }
    if (conn->loop)
        pa_threaded_mainloop_free(conn->loop);
    free(conn);
}

/* The kernel id of the connection's main-loop thread, which moves all audio (so that the caller can give it
 * real-time scheduling); 0 if unknown. */
long rtp_conn_thread_id(rtp_conn *conn)
{
    return atomic_load(&conn->thread_id);
}

/* Connect to the default server (PULSE_SERVER etc. as libpulse reads them) and start the main-loop thread.
 * Returns NULL with a message in `error` when there is no server. */
rtp_conn *rtp_conn_open(const char *app_name, const char *thread_name, char *error, size_t error_size)
{
    rtp_conn *conn = calloc(1, sizeof(rtp_conn));
    if (!conn) {
        set_error(error, error_size, "cannot connect", "out of memory");
        return NULL;
    }
    conn->loop = pa_threaded_mainloop_new();
    if (!conn->loop) {
        set_error(error, error_size, "cannot connect", "no main loop");
        close_connection(conn);
        return NULL;
    }
    pa_threaded_mainloop_set_name(conn->loop, thread_name);
    conn->context = pa_context_new(pa_threaded_mainloop_get_api(conn->loop), app_name);
    if (!conn->context) {
        set_error(error, error_size, "cannot connect", "no context");
        close_connection(conn);
        return NULL;
    }
    pa_context_set_state_callback(conn->context, on_context_state, conn);
    pa_threaded_mainloop_lock(conn->loop);
    int status = pa_context_connect(conn->context, NULL, 0, NULL);
    if (status >= 0 && pa_threaded_mainloop_start(conn->loop) < 0)
        status = -1;
    while (status >= 0) {
        int state = pa_context_get_state(conn->context);
        if (state == PA_CONTEXT_READY)
            break;
        if (state == PA_CONTEXT_FAILED || state == PA_CONTEXT_TERMINATED)
            status = -1;
        else
            pa_threaded_mainloop_wait(conn->loop);
    }
    if (status < 0) {
        set_error(error, error_size, "cannot connect", pa_strerror(pa_context_errno(conn->context)));
        pa_threaded_mainloop_unlock(conn->loop);
        close_connection(conn);
        return NULL;
    }
    pa_threaded_mainloop_unlock(conn->loop);
    return conn;
}

/* Disconnect and stop the main-loop thread; every stream must be closed. */
void rtp_conn_close(rtp_conn *conn)
{
    if (conn)
        close_connection(conn);
}

/* ---- streams ---- */

static void disconnect_stream(rtp_conn *conn, rtp_end *end)
{
    atomic_store(&end->running, 0);
    if (end->stream) {
        pa_stream_set_state_callback(end->stream, NULL, NULL);
        pa_stream_set_read_callback(end->stream, NULL, NULL);
        pa_stream_set_underflow_callback(end->stream, NULL, NULL);
        pa_stream_set_write_callback(end->stream, NULL, NULL);
        pa_stream_disconnect(end->stream);
        pa_stream_unref(end->stream);
        end->stream = NULL;
    }
    conn->ends[end->direction] = NULL;
    end->conn = NULL;
    atomic_store(&end->owed, 0);
}

/* Open `end`'s stream on `device` (NULL: the server's default): mono float32 at the end's rate. Capture
 * starts corked; playback plays one fragment of silence to the end first, so that a sink that was idle (a
 * null sink renders its first block of up to 2 s before it follows its streams' latency) is running when
 * this returns. Returns 0, or -1 with a message in the end's error slot (and `failed` set). */
int rtp_stream_open(rtp_conn *conn, rtp_end *end, const char *device, const char *stream_name)
{
    uint32_t fragment_bytes = end->fragment_frames * BYTES_PER_SAMPLE;
    pa_sample_spec spec = {PA_SAMPLE_FLOAT32LE, end->rate, 1};
    int flags = PA_STREAM_INTERPOLATE_TIMING | PA_STREAM_AUTO_TIMING_UPDATE | PA_STREAM_ADJUST_LATENCY;
    flags |= device ? PA_STREAM_DONT_MOVE : 0; /* a named device that goes away fails the stream */
    const char *what = end->direction == RTP_RECORD ? "record stream" : "playback stream";
    int status;

    pa_threaded_mainloop_lock(conn->loop);
    atomic_store_explicit(&end->failed, 0, memory_order_relaxed); /* error is read only once failed is set */
    atomic_store(&end->running, 0);
    end->conn = conn;
    conn->ends[end->direction] = end;
    end->stream = pa_stream_new(conn->context, stream_name, &spec, NULL);
    if (!end->stream) {
        fail_end(end, what, pa_strerror(pa_context_errno(conn->context)));
        disconnect_stream(conn, end);
        pa_threaded_mainloop_unlock(conn->loop);
        return -1;
    }
    pa_stream_set_state_callback(end->stream, on_stream_state, end);
    if (end->direction == RTP_RECORD) {
        pa_buffer_attr attr = {PA_ATTR_DEFAULT, PA_ATTR_DEFAULT, PA_ATTR_DEFAULT, PA_ATTR_DEFAULT, fragment_bytes};
        pa_stream_set_read_callback(end->stream, on_read, end);
        status = pa_stream_connect_record(end->stream, device, &attr, flags | PA_STREAM_START_CORKED);
    } else {
        pa_buffer_attr attr = {PA_ATTR_DEFAULT, RTP_BUFFER_FRAGMENTS * fragment_bytes, fragment_bytes,
                               fragment_bytes, PA_ATTR_DEFAULT};
        pa_stream_set_underflow_callback(end->stream, on_underflow, end);
        pa_stream_set_write_callback(end->stream, on_write, end);
        status = pa_stream_connect_playback(end->stream, device, &attr, flags, NULL, NULL);
    }
    while (status >= 0 && !has_failed(end) && pa_stream_get_state(end->stream) != PA_STREAM_READY)
        pa_threaded_mainloop_wait(conn->loop);
    if (status < 0)
        fail_end(end, what, pa_strerror(pa_context_errno(conn->context)));
    if (!has_failed(end) && end->direction == RTP_PLAYBACK) {
        void *buffer = NULL;
        size_t size = fragment_bytes;
        if (pa_stream_begin_write(end->stream, &buffer, &size) < 0 || size < fragment_bytes ||
            (memset(buffer, 0, fragment_bytes),
             pa_stream_write(end->stream, buffer, fragment_bytes, NULL, 0, PA_SEEK_RELATIVE) < 0))
            fail_end(end, what, pa_strerror(pa_context_errno(conn->context)));
        else
            wait_operation(conn, end, pa_stream_drain(end->stream, on_operation_done, conn->loop));
    }
    if (has_failed(end)) {
        disconnect_stream(conn, end);
        pa_threaded_mainloop_unlock(conn->loop);
        return -1;
    }
    pa_threaded_mainloop_unlock(conn->loop);
    return 0;
}

/* Start moving audio (the ring has been primed): capture drops what the server buffered and uncorks;
 * playback writes its first fragments now (what the ring lacks of the server's buffer goes over with the
 * worker's first write: the server starts playing once it holds prebuf). */
void rtp_stream_start(rtp_end *end)
{
    rtp_conn *conn = end->conn;
    if (!conn || !end->stream)
        return;
    pa_threaded_mainloop_lock(conn->loop);
    atomic_store_explicit(&end->fragments, 0, memory_order_relaxed);
    atomic_store_explicit(&end->latency_count, 0, memory_order_relaxed);
    atomic_store_explicit(&end->owed, 0, memory_order_relaxed);
    set_last_callback(end);
    atomic_store(&end->running, 1);
    if (!has_failed(end)) {
        if (end->direction == RTP_RECORD) {
            pa_operation *op = pa_stream_flush(end->stream, NULL, NULL);
            if (op)
                pa_operation_unref(op);
            op = pa_stream_cork(end->stream, 0, NULL, NULL);
            if (op)
                pa_operation_unref(op);
        } else {
            feed(end, pa_stream_writable_size(end->stream));
        }
    }
    pa_threaded_mainloop_unlock(conn->loop);
}

/* Stop and disconnect `end`'s stream (idempotent); the end and its counters stay. */
void rtp_stream_close(rtp_end *end)
{
    rtp_conn *conn = end->conn;
    if (!conn)
        return;
    pa_threaded_mainloop_lock(conn->loop);
    disconnect_stream(conn, end);
    pa_threaded_mainloop_unlock(conn->loop);
    wake_waiter(end);
}
