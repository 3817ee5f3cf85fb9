/* The graph cycles a PipeWire stream missed, for native_pipewire.c (included there once).
 *
 * PipeWire runs a graph of nodes once per cycle of its driver (a sound card, or a null sink's timer). When
 * a stream's data thread wakes after the next cycle has begun, the stream gets one call for the two
 * cycles. A capture node comes last in its cycle and nothing waits for it: unless the graph waited for us
 * too (see keep_place), the earlier cycle's audio is gone. missed_samples tells such a cycle from one that
 * was only late by counting the driver's clock against the samples the stream moved, so that the capture
 * can write the missed span as silence and what follows keeps its place in time. Data thread only.
 */
#ifndef RTENHANCE_PIPEWIRE_CYCLES_H
#define RTENHANCE_PIPEWIRE_CYCLES_H
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>

#include <spa/node/io.h>

#include "native_end.h"

#define RTPW_GAP_CONFIRM_CYCLES 2    /* a shortfall still there a cycle later is a missed cycle, not a late one */
#define RTPW_MAX_GAP_CYCLES 64       /* a larger jump of the graph's clock is a restart: tracking starts over */
#define RTPW_LATE_CYCLES 16          /* a cycle written as silence may still come this many cycles later */
#define RTPW_STALL_S 0.012            /* capture and playback misses found this close in time are one stall of ours */

/* Where a stream stands against the graph's clock (data thread only): see missed_samples. */
typedef struct {
    uint32_t clock_id;          /* the driver whose clock `position` counts */
    uint64_t position;          /* the graph's position (clock ticks) at the stream's previous cycle */
    double owed;                /* samples the graph's clock ran for the stream beyond what the stream moved */
    uint32_t short_cycles;      /* consecutive cycles with at least half a cycle owed */
    uint64_t unpaid;            /* samples written as silence whose audio may still come late */
    uint32_t since_gap;         /* cycles since the latest silence was written */
    double jumped_s;            /* CLOCK_MONOTONIC time of the latest call that found the clock a cycle ahead, s */
    int tracking;               /* position and clock_id are those of a previous cycle */
} rtpw_clock;

/* When the playback stream of a connection last missed graph cycles: CLOCK_MONOTONIC time, s (0: never;
 * written by the data thread for the playback stream, read by it for the capture stream). */
typedef _Atomic double rtpw_stall;

/* Samples (at `rate`) of graph cycles the stream missed, once sure (> 0), given the graph's clock `pos` at
 * this call (NULL: none yet) and the samples the call moved; 0 in the usual cycle; for `capture`, < 0 when
 * this call brought that much more than the clock ran (a cycle that came after the silence that stood in
 * for it, within RTPW_LATE_CYCLES: its audio is let go, so that what follows stays in place; a playback
 * stream asked for more has only queued a cycle ahead).
 *
 * The clock (the driver's position, in ticks of its rate) advances by a cycle's duration every cycle the
 * graph runs. `owed` adds what it ran, at the stream's rate, less what the stream moved. A cycle that was
 * only late comes as a second call within the same cycle and pays its debt back; a missed one is still owed
 * at the next cycle (RTPW_GAP_CONFIRM_CYCLES) and is returned in whole samples (the fraction stays owed):
 * the gap lands a cycle after the loss, a shift of that much for one cycle instead of a whole cycle for the
 * rest of the stream. */
static int64_t missed_samples(rtpw_clock *c, const struct spa_io_position *pos, uint32_t rate, uint64_t moved,
                              int capture)
{
    if (!pos || !pos->clock.rate.denom || !pos->clock.duration) {
        c->tracking = 0;
        return 0;
    }
    uint64_t now = pos->clock.position, duration = pos->clock.duration;
    if (!c->tracking || c->clock_id != pos->clock.id || now < c->position ||
        now - c->position > RTPW_MAX_GAP_CYCLES * duration) {
        *c = (rtpw_clock){.clock_id = pos->clock.id, .position = now, .tracking = 1};
        return 0;
    }
    double per_tick = (double)rate * pos->clock.rate.num / pos->clock.rate.denom;
    double cycle = (double)duration * per_tick;
    if (now - c->position > duration)
        c->jumped_s = monotonic_s();
    c->owed += (double)(now - c->position) * per_tick - (double)moved;
    c->position = now;
    if (c->unpaid && ++c->since_gap > RTPW_LATE_CYCLES)
        c->unpaid = 0;
    if (capture && c->owed <= -0.5 * cycle && c->unpaid) {
        uint64_t excess = (uint64_t)(-c->owed) < moved ? (uint64_t)(-c->owed) : moved;
        excess = excess < c->unpaid ? excess : c->unpaid;
        c->owed += (double)excess;
        c->unpaid -= excess;
        c->short_cycles = 0;
        return -(int64_t)excess;
    }
    if (c->owed < -cycle)
        c->owed = -cycle; /* more than the clock ran with no silence to take back: a cycle counted twice */
    if (c->owed < 0.5 * cycle) {
        c->short_cycles = 0;
        return 0;
    }
    if (++c->short_cycles < RTPW_GAP_CONFIRM_CYCLES)
        return 0;
    c->short_cycles = 0;
    uint64_t gap = (uint64_t)c->owed;
    c->owed -= (double)gap;
    return (int64_t)gap;
}

/* Keep the stream's place in time after graph cycles it missed; returns missed_samples' answer for a call
 * that moved `samples` with the graph's clock at `pos`. Capture writes a missed span as silence (counted),
 * unless the connection's playback stream missed cycles at the same moment (`stall`): then our data thread
 * stalled, and everything downstream of our playback waited for it (the sink, and whatever records it), so
 * the output is late by as much as the capture lost and writing silence would make it later still (in a
 * loopback through one sink those cycles were never captured at all; with separate clocks the ring grew a
 * cycle each time, and the jitter buffer dropped it). Playback marks every jump of its clock in `stall` and
 * only counts its missed cycles: whether the sink waited (a null sink's graph does) or played silence is not known
 * here, and the jitter buffer takes up the delay either way. */
static int64_t keep_place(rtpw_clock *c, const struct spa_io_position *pos, rtp_end *end, uint64_t samples,
                          rtpw_stall *stall)
{
    int record = end->direction == RTP_RECORD;
    int64_t missed = missed_samples(c, pos, end->rate, samples, record);
    if (!record && c->jumped_s > atomic_load_explicit(stall, memory_order_relaxed))
        atomic_store_explicit(stall, c->jumped_s, memory_order_relaxed); /* at once: capture may confirm first */
    if (missed <= 0)
        return missed;
    if (record) {
        double played = atomic_load_explicit(stall, memory_order_relaxed);
        if (played > 0.0 && fabs(played - c->jumped_s) <= RTPW_STALL_S) {
            c->unpaid = 0;
            return 0;
        }
        end_capture(end, NULL, (uint64_t)missed);
        c->unpaid += (uint64_t)missed;
        c->since_gap = 0;
    }
    bump(&end->gaps, 1);
    bump(&end->gap_samples, (uint64_t)missed);
    return missed;
}

#endif
