/* Two pieces of independent work run at once: one on the calling thread, the
 * other on a helper thread started for the call and joined before returning.
 *
 * Used for the optimizer's update of large networks, a pass over the whole
 * parameter buffer that is bound by memory bandwidth, which a second core adds
 * to. A thread started per call costs tens of microseconds, so callers use this
 * only when the work takes milliseconds. The helper waits for nothing (no spin,
 * no condition variable), so it cannot compete with BLAS's own threads between
 * calls. If the helper cannot be started, the caller does both pieces itself.
 */
#ifndef CBP_THREAD_PAIR_H
#define CBP_THREAD_PAIR_H

#include <stddef.h>

typedef void (*cbp_work_fn)(void* arg);

#if defined(_WIN32)

/* TODO: start the helper with CreateThread; until then Windows runs both pieces
 * on the calling thread. */
static int cbp_run_pair(cbp_work_fn work, void* first, void* second)
{
    work(first);
    work(second);
    return 0;
}

#else

#include <pthread.h>

typedef struct {
    cbp_work_fn work;
    void* arg;
} cbp_pair_job;

static void* cbp_pair_entry(void* job)
{
    cbp_pair_job* j = (cbp_pair_job*) job;
    j->work(j->arg);
    return NULL;
}

/* Returns 1 if the second piece ran on a helper thread, 0 if on the caller. */
static int cbp_run_pair(cbp_work_fn work, void* first, void* second)
{
    pthread_t helper;
    cbp_pair_job job;
    job.work = work;
    job.arg = second;
    if (pthread_create(&helper, NULL, cbp_pair_entry, &job) != 0) {
        work(first);
        work(second);
        return 0;
    }
    work(first);
    pthread_join(helper, NULL);
    return 1;
}

#endif

#endif
