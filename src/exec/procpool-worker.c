/* The process pool's worker side, and the registry of functions workers can run.
 *
 * DESIGN
 * A worker is a fresh execution of the parent's program (/proc/self/exe) with WEFT_PROCPOOL_WORKER
 * in its environment and its shared memory at fixed descriptors (procpool-int.h). It never runs
 * main(): a constructor recognises worker mode, runs the worker loop and leaves with _exit(). The
 * registry is therefore built by the same constructors in parent and worker; messages name a
 * function by the hash of its name (weft_hash_str: XXH3, the same in every process, never 0), which
 * the worker looks up in its own registry, so no table order has to agree and a function missing
 * in the worker is reported, not mistaken for another one. Parent and worker run the same binary,
 * so they always hash alike.
 *
 * Which constructor enters worker mode. It must run after every WEFT_PROCPOOL_FN registration
 * (priority 101). Two candidates, both at the lowest priority (65535):
 *   - libweft's own (weft__pp_worker_entry, below). With libweft.a linked into the program, all
 *     constructors sit in one table sorted by priority, so it runs after every registration.
 *     With a shared libweft.so it runs before any constructor of the program, as the loader
 *     initialises a library before the objects that depend on it: too early.
 *   - the late constructor each WEFT_PROCPOOL_FN also defines in the registering module, which
 *     calls weft__procpool_enter_worker(). It runs after that module's registrations.
 *   The macro also defines the weak marker weft__procpool_late_entry in the registering module;
 *   libweft refers to it weakly, which makes the linker export the program's definition. The
 *   module that holds the marker as the dynamic loader resolves it (the program, searched first;
 *   else the first loaded library that defines it) is the one that enters worker mode. If that is
 *   libweft's own module (static linking, or registrations only inside libweft.so) or nobody
 *   defines the marker (no registrations outside libweft), libweft's constructor enters; otherwise
 *   that module's late constructor does, after its registrations and those of every library it
 *   depends on. The program's constructors run last of all, so a program that registers
 *   functions sees every registration in its workers. Not covered: registrations split between
 *   several shared libraries other than libweft while the program registers none (only the first
 *   library's late constructor is chosen). Worker mode is entered at most once (`entered`).
 *
 * Threads: the worker is single-threaded (the functions it runs may start threads of their own).
 * It is the consumer of the task ring and the producer of the result ring; its only shared state
 * with the parent is the control block and the rings (see procpool.c for the protocol).
 *
 * Per task: store start time and running_id (seq_cst: the supervisor finds deadlines by reading
 * running_id after announcing that it sleeps), wake the parent if the task has a timeout and the
 * parent sleeps, run the function in place on the ring bytes, write the result record, release
 * the task record, publish the result, clear running_id. A busy worker makes no system call.
 * Death of the parent: PR_SET_PDEATHSIG(SIGKILL) (set before checking getppid(), so a parent that
 * died before the prctl is noticed too) and a getppid() check whenever a wait times out.
 */
#include "exec/procpool-int.h"

#include "core/alloc.h"
#include "core/cpu.h"

#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <fcntl.h>
#include <weft/err.h>
#include <weft/hash.h>
#include <weft/sys.h>

/* ---- registry ------------------------------------------------------------------------------ */

#define MAX_FNS 1024

static struct reg_entry {
    uint64_t hash;
    weft_proc_fn fn;
    char name[64];
} reg[MAX_FNS];
/* Entries [0, nreg) are complete: written before the release store of nreg, which pairs with
 * the acquire loads in the lookups. Entries are never changed or removed. */
static _Atomic size_t nreg;
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;

/* Which loaded object holds `addr`. dl_iterate_phdr reports the main program first; it works in
 * static programs too. */
struct find_module {
    uintptr_t addr;
    int index, found;
};

static int find_module_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    struct find_module *fm = arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && fm->addr >= lo && fm->addr - lo < ph->p_memsz) {
            fm->found = fm->index;
            return 1;
        }
    }
    fm->index++;
    return 0;
}

/* Returns the module index of `addr` (0: the main program) or -1. */
static int module_of(uintptr_t addr)
{
    struct find_module fm = {addr, 0, -1};
    dl_iterate_phdr(find_module_cb, &fm);
    return fm.found;
}

int weft_procpool_register(const char *name, weft_proc_fn fn)
{
    if (!name || !fn) return -EINVAL;
    size_t len = strlen(name);
    if (len == 0 || len > 63) return -EINVAL;
    uint64_t h = weft_hash_str(name);
    pthread_mutex_lock(&reg_mu);
    size_t n = atomic_load_explicit(&nreg, memory_order_relaxed); /* writers hold reg_mu */
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        if (reg[i].hash == h) rc = -EEXIST; /* the same name (or, unheard of, the same hash) */
    if (rc == 0 && n == MAX_FNS) rc = -ENOMEM;
    if (rc == 0) {
        reg[n].hash = h;
        reg[n].fn = fn;
        memcpy(reg[n].name, name, len + 1);
        /* Release: pairs with the acquire loads in the lookups. */
        atomic_store_explicit(&nreg, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&reg_mu);
    return rc;
}

weft_proc_fn weft__pp_lookup(const char *name, uint64_t *hash)
{
    uint64_t h = weft_hash_str(name);
    *hash = h;
    size_t n = atomic_load_explicit(&nreg, memory_order_acquire); /* pairs with register */
    for (size_t i = 0; i < n; i++)
        if (reg[i].hash == h && strcmp(reg[i].name, name) == 0) return reg[i].fn;
    return NULL;
}

weft_proc_fn weft__pp_lookup_hash(uint64_t hash, const char **name)
{
    size_t n = atomic_load_explicit(&nreg, memory_order_acquire); /* pairs with register */
    for (size_t i = 0; i < n; i++)
        if (reg[i].hash == hash) {
            if (name) *name = reg[i].name;
            return reg[i].fn;
        }
    return NULL;
}

/* ---- the worker ---------------------------------------------------------------------------- */

/* How long an idle worker polls its task ring at most before it sleeps on the futex (adaptive
 * below that: weft__spin_t). Short: on a small machine a spinning worker takes the CPU the parent
 * needs to produce work. */
#define SPIN_NS 20000
/* Sleeps are bounded so that a worker re-checks that its parent is alive. */
#define IDLE_CHECK_NS 1000000000

typedef struct wk {
    weft__pp_ctrl_t *ctrl;
    weft_shmring_t tq; /* consumer */
    weft_shmring_t rq; /* producer */
    pid_t ppid;
    uint64_t big_out_end; /* result ring position after the last big result (0: none yet) */
    uint64_t done;
    weft__spin_t spin; /* how long wait_for_task polls (core/cpu.h) */
} wk_t;

static int worker_pid;

int weft_procpool_in_worker(void)
{
    return worker_pid;
}

static _Noreturn void die(const char *what)
{
    fprintf(stderr, "weft procpool worker %d: %s\n", (int)getpid(), what);
    _exit(125);
}

static _Noreturn void finish(void)
{
    fflush(NULL);
    _exit(0);
}

static void check_parent(const wk_t *w)
{
    if (getppid() != w->ppid) _exit(0);
}

static void wake_parent(void)
{
    uint64_t one = 1;
    ssize_t n;
    do n = write(WEFT__PP_FD_WAKE, &one, sizeof one);
    while (n < 0 && errno == EINTR);
}

/* Maps the control block and both rings from the inherited memfd. Returns 0 or -1 (with a
 * reason) if the descriptors are not what a parent pool set up. */
static int attach(wk_t *w, pid_t ppid, const char **why)
{
    struct stat st;
    if (fstat(WEFT__PP_FD_SHM, &st) < 0 || (size_t)st.st_size < sizeof(weft__pp_ctrl_t)) {
        *why = "no shared memory at descriptor 3";
        return -1;
    }
    size_t size = (size_t)st.st_size;
    weft__pp_ctrl_t *c = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, WEFT__PP_FD_SHM, 0);
    if (c == MAP_FAILED) {
        *why = "cannot map the shared memory";
        return -1;
    }
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (c->magic != WEFT__PP_MAGIC || c->version != WEFT__PP_VERSION || c->parent_pid != ppid ||
        c->shm_size != size || c->task_off % page || c->result_off % page ||
        c->task_off < sizeof *c || c->task_size > size || c->result_size > size ||
        c->task_off > size - c->task_size || c->result_off > size - c->result_size) {
        munmap(c, size);
        *why = "the shared memory does not hold a process pool control block";
        return -1;
    }
    void *td, *rd;
    if (weft__shmring_map(WEFT__PP_FD_SHM, (off_t)c->task_off, c->task_size, &td) < 0) {
        *why = "cannot map the task ring";
        return -1;
    }
    if (weft__shmring_map(WEFT__PP_FD_SHM, (off_t)c->result_off, c->result_size, &rd) < 0) {
        *why = "cannot map the result ring";
        return -1;
    }
    if (weft__shmring_attach(&w->tq, &c->task_ring, td, c->task_size, false) < 0 ||
        weft__shmring_attach(&w->rq, &c->result_ring, rd, c->result_size, true) < 0) {
        *why = "corrupt ring headers";
        return -1;
    }
    w->ctrl = c;
    w->ppid = ppid;
    return 0;
}

static void wait_for_task(wk_t *w)
{
    uint64_t spin = weft__spin_budget(&w->spin, SPIN_NS);
    if (spin) {
        uint64_t t0 = weft_now_ns();
        while (weft_now_ns() - t0 < spin) {
            if (!weft__shmring_empty(&w->tq)) {
                weft__spin_result(&w->spin, 1);
                return;
            }
            weft__cpu_relax();
        }
        weft__spin_result(&w->spin, 0);
    }
    uint32_t seq;
    if (!weft__shmring_consumer_prepare(&w->tq, &seq)) return;
    int rc = weft__shmring_consumer_sleep(&w->tq, seq, IDLE_CHECK_NS);
    weft__shmring_consumer_unprepare(&w->tq);
    if (rc == -ETIMEDOUT) check_parent(w);
}

/* Waits until the parent has released the result ring up to `want_tail`. */
static void wait_result_tail(wk_t *w, uint64_t want_tail)
{
    uint32_t seq;
    while (weft__shmring_producer_prepare(&w->rq, want_tail, &seq)) {
        if (weft__shmring_producer_sleep(&w->rq, seq, IDLE_CHECK_NS) == -ETIMEDOUT) check_parent(w);
    }
}

int weft__pp_pread_all(int fd, void *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return n < 0 ? -errno : -EIO;
        done += (size_t)n;
    }
    return 0;
}

int weft__pp_pwrite_all(int fd, const void *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(fd, (const char *)buf + done, len - done, (off_t)done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return n < 0 ? -errno : -EIO;
        done += (size_t)n;
    }
    return 0;
}

/* Writes the result record (waiting for room if the parent is behind). Not yet published. */
static void put_result(wk_t *w, uint64_t id, int status, uint64_t run_ns, const void *data,
                       size_t len)
{
    weft__pp_result_msg_t m = {WEFT__PP_RESULT, status, id, run_ns, len};
    weft_buf_t err;
    weft_buf_init(&err, 256);
    if (len > w->ctrl->big_threshold) {
        /* The overflow memfd holds one result at a time: wait until the parent has consumed
         * the previous one (it truncates the file before it releases that record). */
        if (w->big_out_end) wait_result_tail(w, w->big_out_end);
        int rc = weft__pp_pwrite_all(WEFT__PP_FD_OVF_OUT, data, len);
        if (rc < 0) {
            weft_buf_printf(&err, "cannot pass a %zu-byte result: %s", len, strerror(-rc));
            m.status = rc;
            m.len = err.len;
            data = err.data;
            len = err.len;
        } else {
            m.kind = WEFT__PP_RESULT_BIG;
            len = 0;
        }
    }
    size_t plen = sizeof m + len;
    unsigned char *p;
    while (!(p = weft__shmring_reserve(&w->rq, plen)))
        wait_result_tail(w, weft__shmring_tail_for(&w->rq, plen));
    memcpy(p, &m, sizeof m);
    if (len) memcpy(p + sizeof m, data, len);
    if (m.kind == WEFT__PP_RESULT_BIG) w->big_out_end = weft__shmring_wpos(&w->rq);
    weft_buf_free(&err);
}

/* Answers a task without running it and gives its record back. */
static void finish_task(wk_t *w, uint64_t id, int status, uint64_t run_ns, const weft_buf_t *out)
{
    put_result(w, id, status, run_ns, out->data, out->len);
    weft__shmring_next(&w->tq);
    weft__shmring_release(&w->tq); /* the parent never sleeps waiting for task space */
    if (weft__shmring_publish(&w->rq)) wake_parent();
}

static void run_task(wk_t *w, const weft__pp_task_msg_t *m, const unsigned char *payload,
                     size_t avail, weft_buf_t *out)
{
    weft__pp_ctrl_t *c = w->ctrl;
    weft_buf_reset(out);
    if (m->slot >= WEFT__PP_MAX_DEPTH) die("corrupt task message");
    /* seq_cst: the read-modify-write that decides against the parent's cancel (a CAS on the
     * same word; see claim in procpool-int.h). */
    uint64_t old = atomic_exchange_explicit(&c->claim[m->slot], m->id, memory_order_seq_cst);
    if (old == (m->id | WEFT__PP_CANCELLED)) {
        if (m->kind == WEFT__PP_TASK_BIG && ftruncate(WEFT__PP_FD_OVF_IN, 0) < 0)
            die("cannot truncate the argument memfd");
        finish_task(w, m->id, -ECANCELED, 0, out);
        return;
    }
    /* Release: start_ns is never seen newer than the running_id read before it (the
     * supervisor reads id, start, id; see procpool.c). */
    atomic_store_explicit(&c->start_ns, weft_now_ns(), memory_order_release);
    /* seq_cst: the first half of the Dekker pair against the supervisor, which stores its
     * "waiting" flag and then reads running_id to find the next deadline. */
    atomic_store_explicit(&c->running_id, m->id, memory_order_seq_cst);
    if (m->timeout_ns && weft__shmring_claim_consumer_wake(&w->rq)) wake_parent();

    const void *arg = payload;
    size_t len = (size_t)m->len;
    void *big = NULL;
    int status = 0;
    if (m->kind == WEFT__PP_TASK_BIG) {
        if (m->len > c->max_message) die("oversized argument");
        big = weft__malloc(len ? len : 1);
        if (!big) {
            status = -ENOMEM;
            weft_buf_printf(out, "out of memory for a %zu-byte argument", len);
        } else if ((status = weft__pp_pread_all(WEFT__PP_FD_OVF_IN, big, len)) < 0) {
            weft_buf_printf(out, "cannot read the argument: %s", strerror(-status));
        }
        /* Free the memfd's pages; the parent writes the next big argument only after this
         * task's record is released. */
        if (ftruncate(WEFT__PP_FD_OVF_IN, 0) < 0) die("cannot truncate the argument memfd");
        arg = big;
    } else if (m->len > avail) {
        die("corrupt task message");
    }

    uint64_t run_ns = 0;
    if (status == 0) {
        const char *name = NULL;
        weft_proc_fn fn = weft__pp_lookup_hash(m->fn_hash, &name);
        if (!fn) {
            status = WEFT_ENOFUNC;
            weft_buf_printf(out,
                            "function %016llx is not registered in the worker (registrations "
                            "must run in constructors; see docs/procpool.md)",
                            (unsigned long long)m->fn_hash);
        } else {
            uint64_t t0 = weft_now_ns();
            status = fn(arg, len, out);
            run_ns = weft_now_ns() - t0;
            if (status > 0) status = 0;
        }
    }
    weft__free(big);
    if (status >= 0 && out->len > c->max_message) {
        /* `out` has no limit of its own (see worker_loop), so N is the size the function
         * really produced. */
        size_t n = out->len;
        weft_buf_reset(out);
        weft_buf_printf(out, "result of %zu bytes exceeds max_message %llu", n,
                        (unsigned long long)c->max_message);
        status = -EMSGSIZE;
    } else if (status < 0 && out->len > WEFT__PP_MAX_TEXT) {
        out->len = WEFT__PP_MAX_TEXT; /* the parent keeps no more of a message */
        out->data[out->len] = '\0';
    }

    finish_task(w, m->id, status, run_ns, out);
    /* Release: pairs with the supervisor's loads (nothing depends on it but the deadline). */
    atomic_store_explicit(&c->running_id, 0, memory_order_release);
    if (out->cap > (1u << 20)) { /* do not keep a huge buffer for the next small result */
        size_t max = out->max;
        weft_buf_free(out);
        weft_buf_init(out, max);
    }
}

static _Noreturn void worker_loop(wk_t *w)
{
    weft__pp_ctrl_t *c = w->ctrl;
    worker_pid = (int)getpid();
    atomic_store_explicit(&c->worker_pid, worker_pid, memory_order_relaxed);
    /* Release: pairs with the supervisor's acquire load of ready. */
    atomic_store_explicit(&c->ready, 1, memory_order_release);
    wake_parent();

    /* No limit on the result buffer: a function that produces more than max_message bytes fails
     * with a message that says how many it produced (run_task), which a buffer limited to
     * max_message could not tell. The memory is the worker's own. */
    weft_buf_t out;
    weft_buf_init(&out, 0);
    for (;;) {
        void *p;
        size_t n;
        int rc = weft__shmring_peek(&w->tq, &p, &n);
        if (rc < 0) die("corrupt task ring");
        if (rc == 0) {
            wait_for_task(w);
            continue;
        }
        weft__pp_task_msg_t m;
        if (n < sizeof m) die("short task message");
        memcpy(&m, p, sizeof m);
        if (m.kind == WEFT__PP_QUIT) finish();
        if (m.kind != WEFT__PP_TASK && m.kind != WEFT__PP_TASK_BIG) die("unknown message");
        run_task(w, &m, (const unsigned char *)p + sizeof m, n - sizeof m, &out);
        if (c->max_tasks && ++w->done >= c->max_tasks) finish();
    }
}

/* Set by the one constructor that enters worker mode. Relaxed: constructors run on one thread. */
static atomic_bool entered;

static void enter_worker(void)
{
    if (atomic_exchange_explicit(&entered, true, memory_order_relaxed)) return;
    const char *env = getenv(WEFT__PP_ENV);
    unsigned ver = 0;
    int ppid = 0;
    char extra;
    int fields = sscanf(env, "%u:%d%c", &ver, &ppid, &extra);
    unsetenv(WEFT__PP_ENV); /* programs our functions start are not workers */
    if (fields != 2 || ver != WEFT__PP_VERSION || ppid <= 0) {
        fprintf(stderr, "weft: ignoring malformed %s\n", WEFT__PP_ENV);
        return;
    }
    static wk_t w;
    const char *why = NULL;
    if (attach(&w, (pid_t)ppid, &why) < 0) {
        fprintf(stderr, "weft: ignoring %s: %s\n", WEFT__PP_ENV, why);
        return;
    }
    /* Die with the parent (the supervisor thread that spawned us). Check getppid() after the
     * prctl: a parent that died before it would not trigger the signal. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    check_parent(&w);
    for (int fd = WEFT__PP_FD_SHM; fd < WEFT__PP_FD_FIRST_FREE; fd++)
        fcntl(fd, F_SETFD, FD_CLOEXEC); /* programs our functions start inherit none */
    worker_loop(&w);
}

/* Defined by WEFT_PROCPOOL_FN in each module that registers functions (see DESIGN). */
extern int weft__procpool_late_entry __attribute__((weak));

/* The module whose late constructor enters worker mode, or -1 if libweft's own does. */
static int late_entry_module(void)
{
    if (!&weft__procpool_late_entry) return -1;
    int m = module_of((uintptr_t)&weft__procpool_late_entry);
    return m == module_of((uintptr_t)&nreg) ? -1 : m;
}

void weft__procpool_enter_worker(void (*self)(void))
{
    if (!getenv(WEFT__PP_ENV)) return; /* the parent (or worker mode was refused) */
    int m = late_entry_module();
    if (m >= 0 && m == module_of((uintptr_t)self)) enter_worker();
}

/* The lowest priority: after every WEFT_PROCPOOL_FN registration (101) linked into the same
 * table. */
__attribute__((constructor(65535))) static void weft__pp_worker_entry(void)
{
    if (getenv(WEFT__PP_ENV) && late_entry_module() < 0) enter_worker();
}
