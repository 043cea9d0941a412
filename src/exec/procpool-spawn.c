/* The process pool's workers as processes: starting one (shared memory, descriptors, posix_spawn
 * of /proc/self/exe, pidfd), killing one with its process group, freeing one.
 *
 * DESIGN
 * Only the supervisor thread spawns (PR_SET_PDEATHSIG is tied to the thread that created the
 * child; see procpool.c). A worker inherits exactly its four descriptors at fixed numbers
 * (procpool-int.h), stdin from /dev/null, stdout and stderr; every other descriptor is closed by
 * the spawn, and the parent's copies sit at >= 10 so that the dup2 file actions never overwrite a
 * source. Each worker leads its own process group (pgid = pid): killing the group also kills
 * what its functions forked. The group id is safe to signal until the worker is reaped (its pid
 * cannot be reused before), which procpool-supervisor.c's handle_exit guarantees by setting
 * `reaped` under mu before it reaps; kill_worker runs under mu.
 */
#include "exec/procpool-int.h"

#include "core/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define RING_BYTES (1u << 20) /* each direction, per worker */

/* Moves a new descriptor to number >= 10, keeping close-on-exec: the spawn file actions place
 * the inherited ones at 3..6 and must not overwrite a source. */
int weft__pp_move_high(int fd)
{
    if (fd < 0) return -errno;
    int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 10);
    int e = errno;
    close(fd);
    return nfd < 0 ? -e : nfd;
}

char **weft__pp_build_env(void)
{
    size_t n = 0;
    for (char **e = environ; e && *e; e++) n++;
    char **env = weft__calloc(n + 2, sizeof *env);
    if (!env) return NULL;
    size_t k = 0;
    size_t plen = strlen(WEFT__PP_ENV);
    for (size_t i = 0; i < n; i++) {
        if (strncmp(environ[i], WEFT__PP_ENV, plen) == 0 && environ[i][plen] == '=') continue;
        if (!(env[k++] = weft__strdup(environ[i]))) goto oom;
    }
    char buf[64];
    snprintf(buf, sizeof buf, "%s=%u:%d", WEFT__PP_ENV, WEFT__PP_VERSION, (int)getpid());
    if (!(env[k++] = weft__strdup(buf))) goto oom;
    return env;
oom:
    for (size_t i = 0; i < k; i++) weft__free(env[i]);
    weft__free(env);
    return NULL;
}

void weft__pp_free_worker(weft__pp_worker_t *w)
{
    if (w->ctrl) munmap(w->ctrl, w->ctrl_size);
    weft__shmring_unmap(w->tdata, w->tsize);
    weft__shmring_unmap(w->rdata, w->rsize);
    int fds[] = {w->pidfd, w->shm_fd, w->ovf_in, w->ovf_out};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        if (fds[i] >= 0) close(fds[i]);
    weft__free(w);
}

/* Supervisor, no lock held: creates the shared memory and starts one worker process. */
int weft__pp_spawn_worker(weft_procpool_t *pp, weft__pp_worker_t **out)
{
    *out = NULL;
    weft__pp_worker_t *w = weft__calloc(1, sizeof *w);
    if (!w) return -ENOMEM;
    w->pidfd = w->shm_fd = w->ovf_in = w->ovf_out = -1;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    w->ctrl_size = (sizeof(weft__pp_ctrl_t) + page - 1) / page * page;
    w->tsize = w->rsize = weft__shmring_data_size(RING_BYTES);
    size_t total = w->ctrl_size + w->tsize + w->rsize;
    int rc = 0;
    if ((w->shm_fd = weft__pp_move_high(memfd_create("weft-procpool", MFD_CLOEXEC))) < 0 ||
        (w->ovf_in = weft__pp_move_high(memfd_create("weft-procpool-in", MFD_CLOEXEC))) < 0 ||
        (w->ovf_out = weft__pp_move_high(memfd_create("weft-procpool-out", MFD_CLOEXEC))) < 0) {
        rc = w->shm_fd < 0 ? w->shm_fd : w->ovf_in < 0 ? w->ovf_in : w->ovf_out;
        goto fail;
    }
    if (ftruncate(w->shm_fd, (off_t)total) < 0) {
        rc = -errno;
        goto fail;
    }
    weft__pp_ctrl_t *c = mmap(NULL, w->ctrl_size, PROT_READ | PROT_WRITE, MAP_SHARED, w->shm_fd, 0);
    if (c == MAP_FAILED) {
        rc = -errno;
        goto fail;
    }
    w->ctrl = c;
    c->magic = WEFT__PP_MAGIC;
    c->version = WEFT__PP_VERSION;
    c->parent_pid = (int32_t)getpid();
    c->shm_size = total;
    c->task_off = w->ctrl_size;
    c->task_size = w->tsize;
    c->result_off = w->ctrl_size + w->tsize;
    c->result_size = w->rsize;
    c->max_message = pp->max_message;
    c->big_threshold = pp->big_threshold;
    c->max_tasks = (uint64_t)pp->max_tasks;
    weft__shmring_format(&c->task_ring, w->tsize);
    weft__shmring_format(&c->result_ring, w->rsize);
    atomic_init(&c->worker_pid, 0);
    atomic_init(&c->ready, 0);
    atomic_init(&c->running_id, 0);
    atomic_init(&c->start_ns, 0);
    for (unsigned i = 0; i < WEFT__PP_MAX_DEPTH; i++) atomic_init(&c->claim[i], 0);
    if ((rc = weft__shmring_map(w->shm_fd, (off_t)c->task_off, w->tsize, &w->tdata)) < 0 ||
        (rc = weft__shmring_map(w->shm_fd, (off_t)c->result_off, w->rsize, &w->rdata)) < 0)
        goto fail;
    if ((rc = weft__shmring_attach(&w->tq, &c->task_ring, w->tdata, w->tsize, true)) < 0 ||
        (rc = weft__shmring_attach(&w->rq, &c->result_ring, w->rdata, w->rsize, false)) < 0)
        goto fail;

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    /* dup2 clears close-on-exec on the copies; every other descriptor >= 7 is closed, so the
     * worker inherits nothing of the parent's but stdout and stderr. */
    posix_spawn_file_actions_adddup2(&fa, w->shm_fd, WEFT__PP_FD_SHM);
    posix_spawn_file_actions_adddup2(&fa, pp->wake_fd, WEFT__PP_FD_WAKE);
    posix_spawn_file_actions_adddup2(&fa, w->ovf_in, WEFT__PP_FD_OVF_IN);
    posix_spawn_file_actions_adddup2(&fa, w->ovf_out, WEFT__PP_FD_OVF_OUT);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addclosefrom_np(&fa, WEFT__PP_FD_FIRST_FREE);
    sigset_t def, none;
    sigfillset(&def);
    sigdelset(&def, SIGKILL);
    sigdelset(&def, SIGSTOP);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&attr, &def);
    posix_spawnattr_setsigmask(&attr, &none);
    /* Its own process group (pgid = its pid), so that killing the group also kills what its
     * functions forked (kill_worker, handle_exit). */
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK |
                                        POSIX_SPAWN_SETPGROUP);
    char *argv[] = {pp->argv0, NULL};
    pid_t pid;
    int src = posix_spawn(&pid, "/proc/self/exe", &fa, &attr, argv, pp->envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (src != 0) {
        rc = -src;
        goto fail;
    }
    w->pid = pid;
    w->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (w->pidfd < 0) {
        rc = -errno;
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        goto fail;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = w};
    if (epoll_ctl(pp->epfd, EPOLL_CTL_ADD, w->pidfd, &ev) < 0) {
        rc = -errno;
        syscall(SYS_pidfd_send_signal, w->pidfd, SIGKILL, NULL, 0);
        waitpid(pid, NULL, 0);
        goto fail;
    }
    *out = w;
    return 0;
fail:
    weft__pp_free_worker(w);
    return rc;
}

/* Under mu: SIGKILL through the pidfd, and to the worker's process group (processes its
 * functions forked); the exit is handled when the pidfd reports it. The group id is the worker's
 * pid, which cannot be reused before handle_exit reaps the worker, and handle_exit sets `reaped`
 * (under mu) before it does. */
void weft__pp_kill_worker(weft__pp_worker_t *w, int reason)
{
    if (w->dying) return;
    w->dying = true;
    w->kill_reason = reason;
    syscall(SYS_pidfd_send_signal, w->pidfd, SIGKILL, NULL, 0);
    if (!w->reaped) kill(-w->pid, SIGKILL);
}
