/* A small persistent thread pool. One job runs at a time (pd_parallel calls from
 * several threads queue up on run_lock). Between jobs a worker spins briefly on the
 * job counter, then sleeps on a condition variable: a training step issues dozens of
 * short parallel calls back to back, and a futex wake-up per call would cost more
 * than some of those calls take.
 *
 * The tasks of a job are claimed, not assigned: the caller and the workers take task
 * indices from one counter until none is left, and the caller then waits only for
 * tasks already taken. A worker whose core is busy with another process (a shared
 * machine) therefore never holds the caller up by not having started: the caller
 * runs its tasks. Every task computes the same thing whichever thread runs it. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "glibc_compat.h"
#include "internal.h"

#define PD_MAX_THREADS 64
/* Polls before a worker sleeps, and before a waiting caller starts yielding. */
#define PD_SPIN 20000

static pthread_mutex_t run_lock = PTHREAD_MUTEX_INITIALIZER; /* one job at a time */
/* `lock` guards the job description and generation writes, so a worker that sees a
 * new generation under it also sees that job's fields. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static int32_t n_workers;                  /* started workers, ids 1..n_workers */
static uint64_t start_gen[PD_MAX_THREADS]; /* generation when worker id started */
static _Atomic uint64_t generation;        /* bumped once per job */
static pd_task_fn job_fn;
static void *job_ctx;
static int32_t job_tasks;
/* (low 32 bits of the job's generation) << 32 | next unclaimed task: a worker that
 * read an older job's fields finds another generation here and claims nothing. */
static _Atomic uint64_t claim;
static _Atomic int32_t done; /* tasks of the current job finished */
static _Atomic int32_t num_threads = 1;

static inline void cpu_relax(void) {
#if PD_X86
    __asm__ volatile("pause");
#endif
}

/* Claim and run tasks of job `gen` until none is left. */
static void run_tasks(uint32_t gen, pd_task_fn fn, void *ctx, int32_t tasks) {
    for (;;) {
        uint64_t c = atomic_load_explicit(&claim, memory_order_relaxed);
        do {
            if ((uint32_t)(c >> 32) != gen || (int64_t)(uint32_t)c >= tasks) {
                return;
            }
        } while (!atomic_compare_exchange_weak_explicit(&claim, &c, c + 1, memory_order_relaxed,
                                                        memory_order_relaxed));
        fn(ctx, (int32_t)(uint32_t)c, tasks);
        /* release: the caller's acquire of `done` sees this task's writes */
        atomic_fetch_add_explicit(&done, 1, memory_order_release);
    }
}

static void *worker(void *arg) {
    int32_t id = (int32_t)(intptr_t)arg;
    pthread_mutex_lock(&lock);
    uint64_t seen = start_gen[id];
    pthread_mutex_unlock(&lock);
    for (;;) {
        for (int i = 0; i < PD_SPIN && atomic_load_explicit(&generation, memory_order_relaxed) == seen;
             i++) {
            cpu_relax();
        }
        pthread_mutex_lock(&lock);
        while (atomic_load_explicit(&generation, memory_order_relaxed) == seen) {
            pthread_cond_wait(&wake, &lock);
        }
        seen = atomic_load_explicit(&generation, memory_order_relaxed);
        pd_task_fn fn = job_fn;
        void *ctx = job_ctx;
        int32_t tasks = job_tasks;
        pthread_mutex_unlock(&lock);
        run_tasks((uint32_t)seen, fn, ctx, tasks);
    }
    return NULL;
}

/* After fork() only the forking thread exists: forget the workers. */
static void reset_after_fork(void) {
    pthread_mutex_init(&run_lock, NULL);
    pthread_mutex_init(&lock, NULL);
    pthread_cond_init(&wake, NULL);
    n_workers = 0;
    atomic_store(&claim, 0);
    atomic_store(&done, 0);
}

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void register_atfork(void) { pthread_atfork(NULL, NULL, reset_after_fork); }

/* Start workers up to `want` (lock held). Returns how many exist. */
static int32_t grow_pool(int32_t want) {
    while (n_workers < want) {
        pthread_t th;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        /* A worker must not act on a job that predates it, so it starts from the
         * current generation; the next job bumps it after the pool has grown. */
        start_gen[n_workers + 1] = atomic_load(&generation);
        int rc = pthread_create(&th, &attr, worker, (void *)(intptr_t)(n_workers + 1));
        pthread_attr_destroy(&attr);
        if (rc != 0) {
            break;
        }
        n_workers++;
    }
    return n_workers;
}

pd_status pd_parallel(int32_t n_tasks, pd_task_fn fn, void *ctx) {
    if (n_tasks > PD_MAX_THREADS) {
        n_tasks = PD_MAX_THREADS;
    }
    if (n_tasks <= 1) {
        fn(ctx, 0, 1);
        return PD_OK;
    }
    pthread_once(&atfork_once, register_atfork);
    pthread_mutex_lock(&run_lock);
    pthread_mutex_lock(&lock);
    if (grow_pool(n_tasks - 1) < n_tasks - 1) {
        pthread_mutex_unlock(&lock);
        pthread_mutex_unlock(&run_lock);
        return PD_ERR_THREAD;
    }
    job_fn = fn;
    job_ctx = ctx;
    job_tasks = n_tasks;
    uint64_t gen = atomic_load_explicit(&generation, memory_order_relaxed) + 1;
    atomic_store_explicit(&done, 0, memory_order_relaxed);
    atomic_store_explicit(&claim, (uint64_t)(uint32_t)gen << 32, memory_order_relaxed);
    atomic_store_explicit(&generation, gen, memory_order_relaxed);
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&lock);

    run_tasks((uint32_t)gen, fn, ctx, n_tasks);

    /* Every task is claimed now; wait for those the workers are running. Their
     * release increments make their results visible to this acquire. */
    for (int i = 0; atomic_load_explicit(&done, memory_order_acquire) < n_tasks; i++) {
        if (i < PD_SPIN) {
            cpu_relax();
        } else {
            sched_yield();
        }
    }
    pthread_mutex_unlock(&run_lock);
    return PD_OK;
}

pd_status pd_set_num_threads(int32_t n) {
    if (n < 1 || n > PD_MAX_THREADS) {
        return PD_ERR_ARG;
    }
    atomic_store(&num_threads, n);
    return PD_OK;
}

int32_t pd_get_num_threads(void) { return atomic_load(&num_threads); }
