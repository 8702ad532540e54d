/* uvtest.h - the uv loop of a unit test, and running it until something
 * happened.  Include once per test program; the test sets `loop`. */
#ifndef OIMAP_UVTEST_H
#define OIMAP_UVTEST_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

static uv_loop_t *loop;

static inline void uvtest_on_tick(uv_timer_t *t)
{
    (void)t;
}

/* Run the loop until *flag or max_ms; returns true if the flag was set.  A
 * ticking timer keeps the loop from blocking for good when nothing else is
 * active. */
static inline bool run_until(const bool *flag, unsigned max_ms)
{
    uv_timer_t tick;
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, uvtest_on_tick, 10, 10);
    uint64_t end = uv_now(loop) + max_ms;
    while (!*flag && uv_now(loop) < end)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return *flag;
}

static inline void run_for(unsigned ms)
{
    bool never = false;
    run_until(&never, ms);
}

#endif
