/* Presence of named PulseAudio sinks and sources for rtenhance, from libpulse subscribe events.
 *
 * A watch (rtw_watch) is one pa_threaded_mainloop and one pa_context of its own, subscribed to sink and
 * source events. Whenever a sink or source appears or disappears (and after each connection), it asks
 * the server for every watched name and records whether it exists. When the server goes away (killed,
 * restarted, crashed) the watch says so at once and reconnects every RTW_RETRY_US, so it outlives any
 * number of server restarts. No process is started: the connection dies with the process.
 *
 * The public head of rtw_watch (rtw_head: connected, connects, events, present[], error) is memory that
 * the Python side (rtenhance/audio/io/native_watch.py) reads without locking; the main-loop thread writes
 * it. rtw_head_layout lets the Python side check its mirror when the library loads.
 * rtw_refresh asks again and waits for the answers (connecting first if the server is down), so that a
 * caller sees the state after a change it made itself.
 *
 * libpulse's headers are not needed to build this: the few types, constants and prototypes used are
 * declared in libpulse_api.h (its ABI has been stable since 0.9), and the library is linked as libpulse.so.0.
 */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libpulse_api.h"

/* ---- rtenhance's side ---- */

#define RTW_MAX_NAMES 8        /* watched sinks and sources */
#define RTW_NAME_BYTES 256     /* a device name, NUL-terminated */
#define RTW_ERROR_BYTES 256    /* why the server is unreachable, NUL-terminated */
#define RTW_RETRY_US 250000    /* a lost server is reconnected this often, in microseconds */
#define RTW_SINK 0
#define RTW_SOURCE 1

typedef struct rtw_watch rtw_watch;

typedef struct {
    rtw_watch *watch;
    int kind;                  /* RTW_SINK or RTW_SOURCE */
    int seen;                  /* the current answer named the device */
    char name[RTW_NAME_BYTES];
} rtw_slot;

/* The public head of a watch: read by the Python side through its mirror in native_watch.py, which
 * rtw_head_layout lets it check. */
typedef struct {
    _Atomic int32_t connected;         /* 1 while the connection is ready and subscribed */
    _Atomic int32_t count;             /* watched names */
    _Atomic uint64_t connects;         /* connections made so far (a server restart adds one) */
    _Atomic uint64_t events;           /* sink and source additions and removals seen */
    _Atomic uint64_t answered;         /* query rounds fully answered */
    _Atomic int32_t present[RTW_MAX_NAMES];
    char error[RTW_ERROR_BYTES];
} rtw_head;

struct rtw_watch {
    rtw_head head;                     /* first: the handle's address is the head's */
    /* private: used with the main loop locked */
    pa_threaded_mainloop *loop;
    pa_context *context;
    pa_time_event *retry;              /* reconnects a lost server */
    pa_time_event *deadline;           /* ends a wait in rtw_refresh */
    int timed_out;
    int stopping;
    uint64_t asked;                    /* query rounds started */
    int pending;                       /* answers still to come */
    rtw_slot slots[RTW_MAX_NAMES];
    char app_name[RTW_NAME_BYTES];
};

static void set_error(rtw_watch *w, const char *what)
{
    snprintf(w->head.error, sizeof w->head.error, "%s", what);
}

static void on_info(pa_context *c, const void *info, int eol, void *userdata)
{
    rtw_slot *slot = userdata;
    rtw_watch *w = slot->watch;
    (void)c;
    if (info) {
        slot->seen = 1;
        return;
    }
    if (!eol)
        return;
    atomic_store(&w->head.present[slot - w->slots], slot->seen);  /* eol < 0: no such device */
    slot->seen = 0;
    if (--w->pending == 0) {
        atomic_store(&w->head.answered, w->asked);
        pa_threaded_mainloop_signal(w->loop, 0);
    }
}

/* Ask the server for every watched name; the answers arrive in order, the last round's win. */
static void query(rtw_watch *w)
{
    int count = atomic_load(&w->head.count);
    w->asked++;
    for (int i = 0; i < count; i++) {
        rtw_slot *slot = &w->slots[i];
        pa_operation *op = slot->kind == RTW_SINK
                               ? pa_context_get_sink_info_by_name(w->context, slot->name, on_info, slot)
                               : pa_context_get_source_info_by_name(w->context, slot->name, on_info, slot);
        if (op) {
            w->pending++;
            pa_operation_unref(op);
        }
    }
    if (w->pending == 0)
        atomic_store(&w->head.answered, w->asked);
}

static void on_event(pa_context *c, int type, uint32_t index, void *userdata)
{
    rtw_watch *w = userdata;
    int facility = type & PA_SUBSCRIPTION_EVENT_FACILITY_MASK;
    (void)c;
    (void)index;
    if ((facility != PA_SUBSCRIPTION_EVENT_SINK && facility != PA_SUBSCRIPTION_EVENT_SOURCE) ||
        (type & PA_SUBSCRIPTION_EVENT_TYPE_MASK) == PA_SUBSCRIPTION_EVENT_CHANGE)
        return;
    atomic_fetch_add(&w->head.events, 1);
    query(w);
}

static void on_subscribed(pa_context *c, int success, void *userdata)
{
    rtw_watch *w = userdata;
    if (!success) {
        set_error(w, pa_strerror(pa_context_errno(c)));
        pa_context_disconnect(c);  /* reported as FAILED/TERMINATED: the retry timer takes over */
        return;
    }
    atomic_fetch_add(&w->head.connects, 1);
    atomic_store(&w->head.connected, 1);
    pa_threaded_mainloop_signal(w->loop, 0);
}

static void on_state(pa_context *c, void *userdata)
{
    rtw_watch *w = userdata;
    int state = pa_context_get_state(c);
    if (state == PA_CONTEXT_READY) {
        pa_operation *op = pa_context_subscribe(c, PA_SUBSCRIPTION_MASK_SINK | PA_SUBSCRIPTION_MASK_SOURCE,
                                                on_subscribed, w);
        if (op)
            pa_operation_unref(op);
        query(w);
    } else if (state == PA_CONTEXT_FAILED || state == PA_CONTEXT_TERMINATED) {
        set_error(w, pa_strerror(pa_context_errno(c)));
        atomic_store(&w->head.connected, 0);
        w->pending = 0;
        if (!w->stopping)
            pa_context_rttime_restart(c, w->retry, pa_rtclock_now() + RTW_RETRY_US);
    }
    pa_threaded_mainloop_signal(w->loop, 0);
}

static void drop_context(rtw_watch *w)
{
    if (!w->context)
        return;
    pa_context_set_state_callback(w->context, NULL, NULL);
    pa_context_set_subscribe_callback(w->context, NULL, NULL);
    pa_context_disconnect(w->context);
    pa_context_unref(w->context);
    w->context = NULL;
}

/* Replace the context with a new one and start connecting (main loop locked). Returns 0, or -1 when
 * the connection failed at once (the retry timer is then armed). */
static int connect_now(rtw_watch *w)
{
    pa_context *old = w->context;
    pa_context *c = pa_context_new(pa_threaded_mainloop_get_api(w->loop), w->app_name);
    if (!c) {
        set_error(w, "no memory for a context");
        return -1;
    }
    if (old) {
        pa_context_rttime_restart(c, w->retry, PA_USEC_INVALID);
        drop_context(w);
    }
    w->context = c;
    w->pending = 0;
    for (int i = 0; i < RTW_MAX_NAMES; i++)
        w->slots[i].seen = 0;  /* a round the old connection left unanswered */
    pa_context_set_state_callback(c, on_state, w);
    pa_context_set_subscribe_callback(c, on_event, w);
    if (pa_context_connect(c, NULL, PA_CONTEXT_NOAUTOSPAWN, NULL) < 0) {
        set_error(w, pa_strerror(pa_context_errno(c)));
        if (!w->stopping)
            pa_context_rttime_restart(c, w->retry, pa_rtclock_now() + RTW_RETRY_US);
        return -1;
    }
    return 0;
}

static void on_retry(pa_mainloop_api *a, pa_time_event *e, const void *tv, void *userdata)
{
    rtw_watch *w = userdata;
    (void)a;
    (void)e;
    (void)tv;
    if (!w->stopping && !atomic_load(&w->head.connected))
        connect_now(w);
}

static void on_deadline(pa_mainloop_api *a, pa_time_event *e, const void *tv, void *userdata)
{
    rtw_watch *w = userdata;
    (void)a;
    (void)e;
    (void)tv;
    w->timed_out = 1;
    pa_threaded_mainloop_signal(w->loop, 0);
}

static void free_watch(rtw_watch *w)
{
    if (w->loop) {
        pa_threaded_mainloop_stop(w->loop);
        drop_context(w);
        pa_threaded_mainloop_free(w->loop);  /* frees the time events too */
    }
    free(w);
}

#define RTW_FIELD(type, field) offsetof(type, field), sizeof(((type *)0)->field)

/* rtw_head's layout for the Python mirror to check: sizeof, then offset and size of each field in order.
 * Writes at most n values to out and returns how many there are. */
uint64_t rtw_head_layout(uint64_t *out, uint64_t n)
{
    const uint64_t layout[] = {
        sizeof(rtw_head), RTW_FIELD(rtw_head, connected), RTW_FIELD(rtw_head, count),
        RTW_FIELD(rtw_head, connects), RTW_FIELD(rtw_head, events), RTW_FIELD(rtw_head, answered),
        RTW_FIELD(rtw_head, present), RTW_FIELD(rtw_head, error),
    };
    uint64_t count = sizeof layout / sizeof layout[0];
    for (uint64_t i = 0; i < count && i < n; i++)
        out[i] = layout[i];
    return count;
}

/* Start watching `count` names (kinds[i] RTW_SINK or RTW_SOURCE) on a main-loop thread named
 * `thread_name`; connects in the background. NULL when out of memory or too many names. */
rtw_watch *rtw_open(const char *app_name, const char *thread_name, const char *const *names, const int *kinds,
                    int count)
{
    if (count < 0 || count > RTW_MAX_NAMES)
        return NULL;
    rtw_watch *w = calloc(1, sizeof(rtw_watch));
    if (!w)
        return NULL;
    snprintf(w->app_name, sizeof w->app_name, "%s", app_name);
    set_error(w, "not connected yet");
    for (int i = 0; i < count; i++) {
        w->slots[i].watch = w;
        w->slots[i].kind = kinds[i];
        snprintf(w->slots[i].name, sizeof w->slots[i].name, "%s", names[i]);
    }
    atomic_store(&w->head.count, count);
    w->loop = pa_threaded_mainloop_new();
    if (!w->loop) {
        free_watch(w);
        return NULL;
    }
    pa_threaded_mainloop_set_name(w->loop, thread_name);
    pa_threaded_mainloop_lock(w->loop);
    int status = connect_now(w);
    if (w->context) {
        w->retry = pa_context_rttime_new(w->context, PA_USEC_INVALID, on_retry, w);
        w->deadline = pa_context_rttime_new(w->context, PA_USEC_INVALID, on_deadline, w);
        if (status < 0)
            pa_context_rttime_restart(w->context, w->retry, pa_rtclock_now() + RTW_RETRY_US);
    }
    pa_threaded_mainloop_unlock(w->loop);
    if (!w->retry || !w->deadline || pa_threaded_mainloop_start(w->loop) < 0) {
        free_watch(w);
        return NULL;
    }
    return w;
}

/* Ask for every watched name again and wait for the answers, at most `timeout_us`; a watch that is not
 * connected tries to connect first. Returns 0 when the answers arrived, -1 otherwise (not connected). */
int rtw_refresh(rtw_watch *w, int64_t timeout_us)
{
    pa_threaded_mainloop_lock(w->loop);
    w->timed_out = 0;
    pa_context_rttime_restart(w->context, w->deadline, pa_rtclock_now() + (pa_usec_t)timeout_us);
    int state = pa_context_get_state(w->context);
    if (state == PA_CONTEXT_FAILED || state == PA_CONTEXT_TERMINATED || state == PA_CONTEXT_UNCONNECTED)
        connect_now(w);
    while (!w->timed_out && !atomic_load(&w->head.connected)) {
        state = pa_context_get_state(w->context);
        if (state == PA_CONTEXT_FAILED || state == PA_CONTEXT_TERMINATED)
            break;
        pa_threaded_mainloop_wait(w->loop);
    }
    int status = -1;
    if (atomic_load(&w->head.connected)) {
        query(w);
        uint64_t round = w->asked;
        while (!w->timed_out && atomic_load(&w->head.connected) && atomic_load(&w->head.answered) < round)
            pa_threaded_mainloop_wait(w->loop);
        status = atomic_load(&w->head.answered) >= round ? 0 : -1;
    }
    pa_context_rttime_restart(w->context, w->deadline, PA_USEC_INVALID);
    pa_threaded_mainloop_unlock(w->loop);
    return status;
}

/* Stop the main-loop thread, disconnect and free the watch. */
void rtw_close(rtw_watch *w)
{
    if (!w)
        return;
    pa_threaded_mainloop_lock(w->loop);
    w->stopping = 1;
    pa_threaded_mainloop_unlock(w->loop);
    free_watch(w);
}
