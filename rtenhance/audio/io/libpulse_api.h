/* The part of libpulse's API that rtenhance's C clients use (native_pulse.c, native_watch.c), declared here so
 * that building them needs no libpulse headers (pulse/def.h, sample.h, context.h, stream.h, introspect.h,
 * subscribe.h, rtclock.h): the types, constants and prototypes below follow libpulse's ABI, stable since 0.9,
 * and the libraries link libpulse.so.0. */
#ifndef RTENHANCE_LIBPULSE_API_H
#define RTENHANCE_LIBPULSE_API_H

#include <stddef.h>
#include <stdint.h>

typedef struct pa_threaded_mainloop pa_threaded_mainloop;
typedef struct pa_mainloop_api pa_mainloop_api;
typedef struct pa_context pa_context;
typedef struct pa_stream pa_stream;
typedef struct pa_operation pa_operation;
typedef struct pa_time_event pa_time_event;
typedef uint64_t pa_usec_t;

typedef struct {
    int format;
    uint32_t rate;
    uint8_t channels;
} pa_sample_spec;

typedef struct {
    uint32_t maxlength;
    uint32_t tlength;
    uint32_t prebuf;
    uint32_t minreq;
    uint32_t fragsize;
} pa_buffer_attr;

enum { PA_SAMPLE_FLOAT32LE = 5 };
enum { PA_CONTEXT_UNCONNECTED = 0, PA_CONTEXT_READY = 4, PA_CONTEXT_FAILED = 5, PA_CONTEXT_TERMINATED = 6 };
enum { PA_CONTEXT_NOAUTOSPAWN = 1 };
enum { PA_STREAM_READY = 2, PA_STREAM_FAILED = 3, PA_STREAM_TERMINATED = 4 };
enum { PA_OPERATION_RUNNING = 0 };
enum { PA_SEEK_RELATIVE = 0 };
enum {
    PA_STREAM_START_CORKED = 0x0001,
    PA_STREAM_INTERPOLATE_TIMING = 0x0002,
    PA_STREAM_AUTO_TIMING_UPDATE = 0x0008,
    PA_STREAM_DONT_MOVE = 0x0200,
    PA_STREAM_ADJUST_LATENCY = 0x2000,
};
enum { PA_SUBSCRIPTION_MASK_SINK = 0x1, PA_SUBSCRIPTION_MASK_SOURCE = 0x2 };
enum {
    PA_SUBSCRIPTION_EVENT_SINK = 0x0,
    PA_SUBSCRIPTION_EVENT_SOURCE = 0x1,
    PA_SUBSCRIPTION_EVENT_FACILITY_MASK = 0xF,
    PA_SUBSCRIPTION_EVENT_CHANGE = 0x10,
    PA_SUBSCRIPTION_EVENT_TYPE_MASK = 0x30,
};
#define PA_ATTR_DEFAULT ((uint32_t)-1)
#define PA_USEC_INVALID ((pa_usec_t)-1)

typedef void (*pa_context_notify_cb_t)(pa_context *c, void *userdata);
typedef void (*pa_context_success_cb_t)(pa_context *c, int success, void *userdata);
typedef void (*pa_context_subscribe_cb_t)(pa_context *c, int type, uint32_t index, void *userdata);
typedef void (*pa_info_cb_t)(pa_context *c, const void *info, int eol, void *userdata);
typedef void (*pa_time_event_cb_t)(pa_mainloop_api *a, pa_time_event *e, const void *tv, void *userdata);
typedef void (*pa_stream_notify_cb_t)(pa_stream *s, void *userdata);
typedef void (*pa_stream_request_cb_t)(pa_stream *s, size_t nbytes, void *userdata);
typedef void (*pa_stream_success_cb_t)(pa_stream *s, int success, void *userdata);
typedef void (*pa_free_cb_t)(void *p);

pa_threaded_mainloop *pa_threaded_mainloop_new(void);
void pa_threaded_mainloop_free(pa_threaded_mainloop *m);
int pa_threaded_mainloop_start(pa_threaded_mainloop *m);
void pa_threaded_mainloop_stop(pa_threaded_mainloop *m);
void pa_threaded_mainloop_lock(pa_threaded_mainloop *m);
void pa_threaded_mainloop_unlock(pa_threaded_mainloop *m);
void pa_threaded_mainloop_wait(pa_threaded_mainloop *m);
void pa_threaded_mainloop_signal(pa_threaded_mainloop *m, int wait_for_accept);
pa_mainloop_api *pa_threaded_mainloop_get_api(pa_threaded_mainloop *m);
void pa_threaded_mainloop_set_name(pa_threaded_mainloop *m, const char *name);

pa_context *pa_context_new(pa_mainloop_api *api, const char *name);
void pa_context_set_state_callback(pa_context *c, pa_context_notify_cb_t cb, void *userdata);
void pa_context_set_subscribe_callback(pa_context *c, pa_context_subscribe_cb_t cb, void *userdata);
int pa_context_connect(pa_context *c, const char *server, int flags, const void *api);
int pa_context_get_state(const pa_context *c);
int pa_context_errno(const pa_context *c);
void pa_context_disconnect(pa_context *c);
void pa_context_unref(pa_context *c);
pa_operation *pa_context_subscribe(pa_context *c, int mask, pa_context_success_cb_t cb, void *userdata);
pa_operation *pa_context_get_sink_info_by_name(pa_context *c, const char *name, pa_info_cb_t cb, void *userdata);
pa_operation *pa_context_get_source_info_by_name(pa_context *c, const char *name, pa_info_cb_t cb, void *userdata);
pa_time_event *pa_context_rttime_new(const pa_context *c, pa_usec_t usec, pa_time_event_cb_t cb, void *userdata);
void pa_context_rttime_restart(const pa_context *c, pa_time_event *e, pa_usec_t usec);

pa_stream *pa_stream_new(pa_context *c, const char *name, const pa_sample_spec *ss, const void *map);
void pa_stream_set_state_callback(pa_stream *s, pa_stream_notify_cb_t cb, void *userdata);
void pa_stream_set_read_callback(pa_stream *s, pa_stream_request_cb_t cb, void *userdata);
void pa_stream_set_underflow_callback(pa_stream *s, pa_stream_notify_cb_t cb, void *userdata);
void pa_stream_set_write_callback(pa_stream *s, pa_stream_request_cb_t cb, void *userdata);
int pa_stream_connect_record(pa_stream *s, const char *dev, const pa_buffer_attr *attr, int flags);
int pa_stream_connect_playback(pa_stream *s, const char *dev, const pa_buffer_attr *attr, int flags,
                               const void *volume, pa_stream *sync_stream);
int pa_stream_get_state(const pa_stream *s);
int pa_stream_peek(pa_stream *s, const void **data, size_t *nbytes);
int pa_stream_drop(pa_stream *s);
size_t pa_stream_writable_size(const pa_stream *s);
int pa_stream_begin_write(pa_stream *s, void **data, size_t *nbytes);
int pa_stream_write(pa_stream *s, const void *data, size_t nbytes, pa_free_cb_t free_cb, int64_t offset, int seek);
int pa_stream_get_latency(pa_stream *s, pa_usec_t *usec, int *negative);
pa_operation *pa_stream_cork(pa_stream *s, int b, pa_stream_success_cb_t cb, void *userdata);
pa_operation *pa_stream_flush(pa_stream *s, pa_stream_success_cb_t cb, void *userdata);
pa_operation *pa_stream_drain(pa_stream *s, pa_stream_success_cb_t cb, void *userdata);
int pa_stream_disconnect(pa_stream *s);
void pa_stream_unref(pa_stream *s);

int pa_operation_get_state(const pa_operation *o);
void pa_operation_unref(pa_operation *o);
const char *pa_strerror(int error);
pa_usec_t pa_rtclock_now(void);

#endif
