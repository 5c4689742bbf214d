/*
 * clockshift: moves the wall clock of a process tree by CLOCKSHIFT_SECONDS, and nothing else.
 *
 * Used by `make test` to run suites as if on a day a year or more ahead (issue: no test may depend
 * on the day it runs). Loaded with LD_PRELOAD, it adds the offset to CLOCK_REALTIME (and its coarse
 * and alarm variants), gettimeofday and time; monotonic clocks, sleeps, timed waits and timers are
 * untouched, so every wait lasts what it says. Children inherit LD_PRELOAD and the offset, so
 * Azurite, the emulator and the hosts a test starts all agree on the shifted day.
 *
 * Why not Debian's faketime (libfaketime 0.9.10), measured on this project's machine with Python
 * 3.11: with the monotonic clock faked, threading.Event.wait(0.2) never returns (glibc's
 * sem_clockwait is not intercepted and waits a year); with FAKETIME_DONT_FAKE_MONOTONIC=1,
 * time.sleep(0.1) fails with EINVAL (its clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME) wrapper
 * shifts the monotonic deadline anyway).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static long shift_seconds(void) {
    static long cached;
    static int known;
    if (!known) {
        const char *text = getenv("CLOCKSHIFT_SECONDS");
        cached = text ? strtol(text, NULL, 10) : 0;
        known = 1;
    }
    return cached;
}

static int is_wall(clockid_t id) {
    return id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE || id == CLOCK_REALTIME_ALARM
           || id == CLOCK_TAI;
}

int clock_gettime(clockid_t id, struct timespec *tp) {
    static int (*real)(clockid_t, struct timespec *);
    if (!real) real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    int rc = real(id, tp);
    if (rc == 0 && is_wall(id)) tp->tv_sec += shift_seconds();
    return rc;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz) {
    static int (*real)(struct timeval *restrict, void *restrict);
    if (!real) real = (int (*)(struct timeval *restrict, void *restrict))dlsym(RTLD_NEXT, "gettimeofday");
    int rc = real(tv, tz);
    if (rc == 0) tv->tv_sec += shift_seconds();
    return rc;
}

time_t time(time_t *out) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (out) *out = now.tv_sec;
    return now.tv_sec;
}
