#ifndef OFFERD_LOADGEN_SYSTEM_SHIM_H
#define OFFERD_LOADGEN_SYSTEM_SHIM_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sched.h>
#include <sys/prctl.h>

/* Pins the calling thread to one CPU; threads it creates later inherit the mask. 0 or -1 (errno set). */
static inline int loadgen_pin_to_cpu(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set);
}

/* How many CPUs the calling thread may run on, or -1. */
static inline int loadgen_allowed_cpu_count(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) {
        return -1;
    }
    return CPU_COUNT(&set);
}

/* Timer slack of the calling thread (Linux groups timer expiries up to 50 us apart by default). 0 or -1. */
static inline int loadgen_set_timer_slack_nanoseconds(unsigned long nanoseconds) {
    return prctl(PR_SET_TIMERSLACK, nanoseconds, 0, 0, 0);
}
#endif
