/* The streaming polyphase FIR of rtenhance/dsp/polyphase.py in C: one call per chunk, nothing allocated.
 *
 * pp_process computes what PolyphaseResampler's NumPy path computes: output sample j (counted from the
 * start of the stream) is the dot product of phase (j * down) % up of the filter with the taps input
 * samples ending at (j * down) / up. The caller keeps the state in memory it owns:
 * - params: int64 [up, down, taps, samples_in, samples_out] (the two counts are updated here);
 * - phases: (up, taps) float32, each phase's taps in reverse order;
 * - buffer: (taps - 1 + n) float32 whose first taps - 1 samples are the newest input so far (zeros at
 *   the start); the chunk is appended there and the newest taps - 1 samples are moved to the front again.
 */
#include <stdint.h>
#include <string.h>

#define LANES 8 /* independent accumulators (vectorisable without -ffast-math) */

enum { P_UP, P_DOWN, P_TAPS, P_SAMPLES_IN, P_SAMPLES_OUT };

static float dot(const float *a, const float *b, int n) {
    float acc[LANES] = {0};
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++)
            acc[l] += a[i + l] * b[i + l];
    float sum = 0.0f;
    for (int l = 0; l < LANES; l++)
        sum += acc[l];
    for (; i < n; i++)
        sum += a[i] * b[i];
    return sum;
}

/* Resample chunk (n samples) into out; returns the number of output samples written (every output whose
 * inputs have arrived: ceil(samples_in * up / down) - samples_out). */
int64_t pp_process(int64_t *params, const float *phases, float *buffer, float *out, const float *chunk, int64_t n) {
    int64_t up = params[P_UP], down = params[P_DOWN], taps = params[P_TAPS];
    int64_t start_in = params[P_SAMPLES_IN], end_in = start_in + n;
    int64_t first = params[P_SAMPLES_OUT], end_out = (end_in * up + down - 1) / down;
    memcpy(buffer + taps - 1, chunk, sizeof(float) * (size_t)n);
    for (int64_t j = first; j < end_out; j++) {
        int64_t high = j * down;
        int64_t newest = high / up;  /* the newest input sample output j needs */
        out[j - first] = dot(phases + (high % up) * taps, buffer + (newest - start_in), (int)taps);
    }
    memmove(buffer, buffer + n, sizeof(float) * (size_t)(taps - 1));
    params[P_SAMPLES_IN] = end_in;
    params[P_SAMPLES_OUT] = end_out;
    return end_out - first;
}
