/* PipeWire capture and playback for rtenhance through libpipewire-0.3 (pw_stream), behind lock-free rings.
 *
 * The same C API as native_pulse.c (rtp_conn_open, rtp_stream_open, rtp_stream_start, ...; the end, its
 * ring and counters come from native_end.h), so that the Python side drives either library through one
 * set of bindings. Talking to PipeWire natively instead of through pipewire-pulse removes that layer's
 * buffering and its habit of taking several milliseconds of a stream's audio at once every few seconds and
 * giving them back later, which the output ring's controller otherwise has to ride out with extra delay.
 *
 * A connection (rtp_conn) is one pw_thread_loop, one pw_context and one pw_core; it serves at most one
 * capture and one playback stream. Each stream is a pw_stream that asks for mono float32 at the end's rate
 * (the stream's adapter converts to the graph's rate and channels) and a node latency of one fragment.
 * Its process callback runs in PipeWire's real-time data thread (PW_STREAM_FLAG_RT_PROCESS): capture copies
 * each graph cycle's samples into the end's ring and wakes the worker once the ring holds what it waits
 * for; playback fills exactly what the graph asks for this cycle (pw_buffer.requested) from the ring,
 * silence for what the ring lacks (counted). The graph's clock thus paces both streams. A graph cycle that
 * ran without the capture stream (its thread woke too late; see pipewire_cycles.h) keeps its place in time:
 * it is written as silence (counted as gaps). Nothing on the data thread allocates, logs or blocks beyond
 * the end's brief wake-up lock.
 *
 * Device names are the PulseAudio names rtenhance uses everywhere (a node's node.name): "NAME.monitor"
 * captures what the sink NAME plays (stream.capture.sink). A named device is a fixed target
 * (node.dont-reconnect): when it goes away the stream fails instead of being moved to another device, and
 * the daemon reopens it when it is back.
 *
 * Threads and memory: state changes and errors arrive on the loop thread, which holds the loop's lock
 * while it runs them; callers take that lock around every call into libpipewire. An end is used by the
 * data thread only while its stream exists; rtp_stream_close destroys the stream under the lock (which
 * also takes it off the data thread) before the end is let go.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdbool.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <pipewire/pipewire.h>
#include <spa/param/audio/format-utils.h>
#include <spa/pod/builder.h>
#include <spa/utils/result.h>

#include "native_end.h"
#include "pipewire_cycles.h"

#define RTPW_CONNECT_TIMEOUT_S 5     /* how long rtp_stream_open waits for the server to create the stream */
#define RTPW_POD_BYTES 1024          /* room for the format parameter */
#define RTPW_LATENCY_BYTES 64        /* "FRAMES/RATE" */
#define MONITOR_SUFFIX ".monitor"

/* The PipeWire side of one open stream; the end's `stream` points here. */
typedef struct {
    struct pw_stream *stream;
    struct spa_hook listener;
    rtp_end *end;
    enum pw_stream_state state;
    _Atomic(struct spa_io_position *) position; /* the graph's clock (io_changed), NULL until given */
    rtpw_clock clock;                           /* where the stream stands against that clock */
} rtpw_stream;

struct rtp_conn {
    struct pw_thread_loop *loop;
    struct pw_context *context;
    struct pw_core *core;
    struct spa_hook core_listener;
    rtp_end *ends[2];           /* by direction; NULL when that stream is closed */
    _Atomic long thread_id;     /* the data thread's kernel id, 0 until its first cycle */
    rtpw_stall stall;           /* when the playback stream last missed graph cycles */
    int lost;                   /* the server closed the connection */
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init_pipewire(void)
{
    pw_init(NULL, NULL);
}

/* Seconds of one tick of `t`'s rate times `ticks` (0 when the rate is unknown). */
static double ticks_s(const struct pw_time *t, int64_t ticks)
{
    return t->rate.denom ? (double)ticks * t->rate.num / t->rate.denom : 0.0;
}

/* ---- the data thread ---- */

static void capture_cycle(rtpw_stream *ps, struct spa_data *d)
{
    rtp_end *end = ps->end;
    uint32_t offset = d->chunk->offset < d->maxsize ? d->chunk->offset : d->maxsize;
    uint32_t size = d->chunk->size < d->maxsize - offset ? d->chunk->size : d->maxsize - offset;
    uint64_t samples = size / BYTES_PER_SAMPLE;
    if (samples == 0)
        return;
    int64_t missed = keep_place(&ps->clock, atomic_load_explicit(&ps->position, memory_order_acquire), end, samples,
                                &end->conn->stall);
    /* a cycle later than the silence that stood in for it: its place is taken, and what follows is on time */
    uint64_t late = missed < 0 ? (uint64_t)-missed : 0;
    if (late < samples)
        end_capture(end, d->data ? (const float *)((const uint8_t *)d->data + offset) + late : NULL, samples - late);
    struct pw_time t = {0};
    pw_stream_get_time_n(ps->stream, &t, sizeof t);
    /* age of the cycle's middle sample when it enters the ring */
    end_captured(end, ticks_s(&t, t.delay) + 0.5 * (double)samples / end->rate);
}

/* A graph cycle takes what the ring holds and plays silence for the rest (end_play): it never waits for a
 * later write, so nothing is ever owed. */
static void end_top_up(rtp_end *end)
{
    (void)end;
}

static void playback_cycle(rtpw_stream *ps, struct pw_buffer *b, struct spa_data *d)
{
    rtp_end *end = ps->end;
    uint64_t samples = d->maxsize / BYTES_PER_SAMPLE;
    if (b->requested && b->requested < samples)
        samples = b->requested;
    keep_place(&ps->clock, atomic_load_explicit(&ps->position, memory_order_acquire), end, samples, &end->conn->stall);
    end_play(end, d->data, samples);
    d->chunk->offset = 0;
    d->chunk->stride = BYTES_PER_SAMPLE;
    d->chunk->size = (uint32_t)(samples * BYTES_PER_SAMPLE);
    struct pw_time t = {0};
    pw_stream_get_time_n(ps->stream, &t, sizeof t);
    /* time from leaving the ring to the speaker, for the last sample of this cycle */
    end_played(end, ticks_s(&t, t.delay) + (double)(t.queued + t.buffered + samples) / end->rate);
}

static void on_process(void *data)
{
    rtpw_stream *ps = data;
    rtp_end *end = ps->end;
    struct pw_buffer *b = pw_stream_dequeue_buffer(ps->stream);
    if (!b)
        return;
    if (end->conn && !atomic_load_explicit(&end->conn->thread_id, memory_order_relaxed))
        atomic_store(&end->conn->thread_id, (long)syscall(SYS_gettid));
    struct spa_data *d = &b->buffer->datas[0];
    int running = atomic_load(&end->running);
    if (!running)
        ps->clock.tracking = 0;
    if (end->direction == RTP_RECORD) {
        if (running)
            capture_cycle(ps, d);
    } else if (d->data) {
        if (running) {
            playback_cycle(ps, b, d);
        } else {
            memset(d->data, 0, d->maxsize);
            d->chunk->offset = 0;
            d->chunk->stride = BYTES_PER_SAMPLE;
            d->chunk->size = d->maxsize;
        }
    }
    pw_stream_queue_buffer(ps->stream, b);
}

/* ---- the loop thread ---- */

static void on_state_changed(void *data, enum pw_stream_state old, enum pw_stream_state state, const char *error)
{
    rtpw_stream *ps = data;
    rtp_end *end = ps->end;
    const char *what = end->direction == RTP_RECORD ? "record stream" : "playback stream";
    ps->state = state;
    if (state == PW_STREAM_STATE_ERROR)
        fail_end(end, what, error ? error : "failed");
    else if (state == PW_STREAM_STATE_UNCONNECTED && old != PW_STREAM_STATE_UNCONNECTED)
        fail_end(end, what, "disconnected by the server");
    if (end->conn)
        pw_thread_loop_signal(end->conn->loop, false);
}

/* The graph's clock for this stream's cycles (its driver's spa_io_position), or NULL when taken away. */
static void on_io_changed(void *data, uint32_t id, void *area, uint32_t size)
{
    rtpw_stream *ps = data;
    if (id == SPA_IO_Position)
        atomic_store_explicit(&ps->position, area && size >= sizeof(struct spa_io_position) ? area : NULL,
                              memory_order_release);
}

static const struct pw_stream_events stream_events = {
    PW_VERSION_STREAM_EVENTS,
    .state_changed = on_state_changed,
    .io_changed = on_io_changed,
    .process = on_process,
};

static void on_core_error(void *data, uint32_t id, int seq, int res, const char *message)
{
    rtp_conn *conn = data;
    (void)seq;
    if (id != PW_ID_CORE)
        return;
    conn->lost = 1;
    for (int i = 0; i < 2; i++)
        if (conn->ends[i])
            fail_end(conn->ends[i], "connection to the sound server lost", message ? message : spa_strerror(res));
    pw_thread_loop_signal(conn->loop, false);
}

static const struct pw_core_events core_events = {
    PW_VERSION_CORE_EVENTS,
    .error = on_core_error,
};

/* ---- connection ---- */

static void close_connection(rtp_conn *conn)
{
    if (conn->loop)
        pw_thread_loop_stop(conn->loop);
    if (conn->core) {
        spa_hook_remove(&conn->core_listener);
        pw_core_disconnect(conn->core);
    }
    if (conn->context)
        pw_context_destroy(conn->context);
    if (conn->loop)
        pw_thread_loop_destroy(conn->loop);
    free(conn);
}

/* The kernel id of the data thread, which moves all audio (libpipewire gives it real-time scheduling where
 * allowed); 0 until the first graph cycle. */
long rtp_conn_thread_id(rtp_conn *conn)
{
    return atomic_load(&conn->thread_id);
}

/* Connect to the PipeWire server (PIPEWIRE_REMOTE, PIPEWIRE_RUNTIME_DIR or XDG_RUNTIME_DIR as libpipewire
 * reads them) and start the loop thread. Returns NULL with a message in `error` when there is no server. */
rtp_conn *rtp_conn_open(const char *app_name, const char *thread_name, char *error, size_t error_size)
{
    pthread_once(&init_once, init_pipewire);
    rtp_conn *conn = calloc(1, sizeof(rtp_conn));
    if (!conn) {
        set_error(error, error_size, "cannot connect", "out of memory");
        return NULL;
    }
    conn->loop = pw_thread_loop_new(thread_name, NULL);
    if (conn->loop)
        conn->context = pw_context_new(pw_thread_loop_get_loop(conn->loop),
                                       pw_properties_new(PW_KEY_APP_NAME, app_name, NULL), 0);
    if (!conn->loop || !conn->context || pw_thread_loop_start(conn->loop) < 0) {
        set_error(error, error_size, "cannot connect", "no PipeWire main loop");
        close_connection(conn);
        return NULL;
    }
    pw_thread_loop_lock(conn->loop);
    conn->core = pw_context_connect(conn->context, NULL, 0);
    int err = errno;
    if (conn->core)
        pw_core_add_listener(conn->core, &conn->core_listener, &core_events, conn);
    pw_thread_loop_unlock(conn->loop);
    if (!conn->core) {
        set_error(error, error_size, "cannot connect to PipeWire", strerror(err));
        close_connection(conn);
        return NULL;
    }
    return conn;
}

/* Disconnect and stop the loop thread; every stream must be closed. */
void rtp_conn_close(rtp_conn *conn)
{
    if (conn)
        close_connection(conn);
}

/* ---- streams ---- */

static void destroy_stream(rtp_conn *conn, rtp_end *end)
{
    atomic_store(&end->running, 0);
    rtpw_stream *ps = end->stream;
    if (ps) {
        spa_hook_remove(&ps->listener);
        pw_stream_destroy(ps->stream);
        free(ps);
        end->stream = NULL;
    }
    conn->ends[end->direction] = NULL;
    end->conn = NULL;
}

static struct pw_properties *stream_properties(rtp_end *end, const char *device)
{
    char latency[RTPW_LATENCY_BYTES];
    snprintf(latency, sizeof latency, "%u/%u", end->fragment_frames, end->rate);
    int record = end->direction == RTP_RECORD;
    struct pw_properties *props = pw_properties_new(
        PW_KEY_MEDIA_TYPE, "Audio", PW_KEY_MEDIA_CATEGORY, record ? "Capture" : "Playback",
        PW_KEY_MEDIA_ROLE, "Communication", PW_KEY_NODE_LATENCY, latency, NULL);
    if (!props || !device)
        return props;
    size_t length = strlen(device), suffix = strlen(MONITOR_SUFFIX);
    if (record && length > suffix && strcmp(device + length - suffix, MONITOR_SUFFIX) == 0) {
        pw_properties_setf(props, PW_KEY_TARGET_OBJECT, "%.*s", (int)(length - suffix), device);
        pw_properties_set(props, PW_KEY_STREAM_CAPTURE_SINK, "true");
    } else {
        pw_properties_set(props, PW_KEY_TARGET_OBJECT, device);
    }
    pw_properties_set(props, PW_KEY_NODE_DONT_RECONNECT, "true");
    return props;
}

/* Open `end`'s stream on `device` (NULL: the default device): mono float32 at the end's rate, inactive until
 * rtp_stream_start. Returns 0 once the server has made the stream, or -1 with a message in the end's error
 * slot (and `failed` set). */
int rtp_stream_open(rtp_conn *conn, rtp_end *end, const char *device, const char *stream_name)
{
    const char *what = end->direction == RTP_RECORD ? "record stream" : "playback stream";
    pw_thread_loop_lock(conn->loop);
    atomic_store_explicit(&end->failed, 0, memory_order_relaxed); /* error is read only once failed is set */
    atomic_store(&end->running, 0);
    if (conn->lost) {
        fail_end(end, what, "connection to the sound server lost");
        pw_thread_loop_unlock(conn->loop);
        return -1;
    }
    rtpw_stream *ps = calloc(1, sizeof(rtpw_stream));
    struct pw_properties *props = ps ? stream_properties(end, device) : NULL;
    if (!ps || !props) {
        free(ps);
        fail_end(end, what, "out of memory");
        pw_thread_loop_unlock(conn->loop);
        return -1;
    }
    ps->end = end;
    ps->state = PW_STREAM_STATE_UNCONNECTED;
    ps->stream = pw_stream_new(conn->core, stream_name, props); /* takes props */
    if (!ps->stream) {
        free(ps);
        fail_end(end, what, strerror(errno));
        pw_thread_loop_unlock(conn->loop);
        return -1;
    }
    end->stream = ps;
    end->conn = conn;
    conn->ends[end->direction] = end;
    pw_stream_add_listener(ps->stream, &ps->listener, &stream_events, ps);

    uint8_t pod[RTPW_POD_BYTES];
    struct spa_pod_builder builder = SPA_POD_BUILDER_INIT(pod, sizeof pod);
    struct spa_audio_info_raw info = {.format = SPA_AUDIO_FORMAT_F32, .rate = end->rate, .channels = 1};
    info.position[0] = SPA_AUDIO_CHANNEL_MONO;
    const struct spa_pod *params[1] = {spa_format_audio_raw_build(&builder, SPA_PARAM_EnumFormat, &info)};
    enum pw_stream_flags flags = PW_STREAM_FLAG_AUTOCONNECT | PW_STREAM_FLAG_MAP_BUFFERS |
                                 PW_STREAM_FLAG_RT_PROCESS | PW_STREAM_FLAG_INACTIVE;
    int status = pw_stream_connect(ps->stream, end->direction == RTP_RECORD ? PW_DIRECTION_INPUT : PW_DIRECTION_OUTPUT,
                                   PW_ID_ANY, flags, params, 1);
    if (status < 0)
        fail_end(end, what, spa_strerror(status));
    struct timespec deadline;
    pw_thread_loop_get_time(conn->loop, &deadline, (int64_t)RTPW_CONNECT_TIMEOUT_S * SPA_NSEC_PER_SEC);
    while (!has_failed(end) && ps->state != PW_STREAM_STATE_PAUSED && ps->state != PW_STREAM_STATE_STREAMING) {
        if (pw_thread_loop_timed_wait_full(conn->loop, &deadline) != 0) {
            fail_end(end, what, "the server did not make the stream in time");
            break;
        }
    }
    if (has_failed(end)) {
        destroy_stream(conn, end);
        pw_thread_loop_unlock(conn->loop);
        return -1;
    }
    pw_thread_loop_unlock(conn->loop);
    return 0;
}

/* Start moving audio (the ring has been primed). */
void rtp_stream_start(rtp_end *end)
{
    rtp_conn *conn = end->conn;
    if (!conn || !end->stream)
        return;
    pw_thread_loop_lock(conn->loop);
    atomic_store_explicit(&end->fragments, 0, memory_order_relaxed);
    atomic_store_explicit(&end->latency_count, 0, memory_order_relaxed);
    set_last_callback(end);
    atomic_store(&end->running, 1);
    if (!has_failed(end))
        pw_stream_set_active(((rtpw_stream *)end->stream)->stream, true);
    pw_thread_loop_unlock(conn->loop);
}

/* Stop and destroy `end`'s stream (idempotent); the end and its counters stay. */
void rtp_stream_close(rtp_end *end)
{
    rtp_conn *conn = end->conn;
    if (!conn)
        return;
    pw_thread_loop_lock(conn->loop);
    destroy_stream(conn, end);
    pw_thread_loop_unlock(conn->loop);
    wake_waiter(end);
}
