/* The state file of `weft run` as a journal: one record per finished job, appended as the job
 * finishes, so that a run killed at any moment (kill -9, power loss) can be resumed with what it
 * had finished. See docs/run.md, "Resuming".
 *
 * DESIGN
 * Format (text, one record per line):
 *     weft-run-journal 1
 *     STATE<TAB>STATUS<TAB>ATTEMPTS<TAB>FINGERPRINT<TAB>NAME<TAB>CHECK
 * STATE is ok, failed, skipped or cancelled; FINGERPRINT is weft_hash of the job's definition
 * (job_fingerprints) in hex; CHECK is weft_hash of the line up to the tab before it, in hex. A
 * line without its newline (torn by a crash mid-write) or whose CHECK does not match is
 * ignored; a later record for a name replaces an earlier one.
 *
 * Durability: the file is created whole (temporary file, fsync, rename, fsync of the directory)
 * with the records carried over from the run being resumed, then records are appended with
 * O_APPEND, one write() per batch of records followed by fdatasync() before the batch counts
 * as written ("group commit": the records of jobs that finished within one look of the main
 * thread share a sync). A crash loses at most the records not yet synced: those jobs run again.
 *
 * Threads: used by the main thread only.
 */
#include "run/run.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <weft/err.h>
#include <weft/hash.h>

#define MAGIC "weft-run-journal 1"
#define OLD_MAGIC "weft-sched-state 1" /* the state files of earlier versions */

static int put_str(weft_buf_t *b, const char *s)
{
    /* Length-prefixed, so that no two definitions serialise alike. */
    if (!s) return weft_buf_append(b, "-;", 2);
    int rc = weft_buf_printf(b, "%zu:", strlen(s));
    return rc | weft_buf_append(b, s, strlen(s));
}

int job_fingerprints(const struct jobfile *jf, const int *order, uint64_t *fp)
{
    weft_buf_t b;
    weft_buf_init(&b, 0);
    static const char *const kinds[] = {"shell", "sleep", "cpu-burn", "http-get"};
    int rc = 0;
    for (size_t k = 0; k < jf->n && rc == 0; k++) {
        int i = order[k];
        const struct job *j = &jf->jobs[i];
        weft_buf_reset(&b);
        /* What the job does; not how it is scheduled (type, priority, retries, timeout). */
        rc |= put_str(&b, kinds[j->kind]);
        rc |= put_str(&b, j->run);
        rc |= put_str(&b, j->url);
        rc |= put_str(&b, j->cwd);
        rc |= weft_buf_printf(&b, "d%" PRIu64 "e%zu", j->duration_ns, j->nenv);
        for (size_t e = 0; e < j->nenv; e++) rc |= put_str(&b, j->env[e]);
        /* A job whose dependency changed runs again too: its inputs may have changed. The
         * order puts dependencies first, so their fingerprints are known. */
        for (size_t d = 0; d < j->ndeps; d++) {
            int di = jobfile_find(jf, j->deps[d]);
            rc |= weft_buf_printf(&b, "<%016" PRIx64, di >= 0 ? fp[di] : 0);
        }
        fp[i] = weft_hash(b.data, b.len);
    }
    weft_buf_free(&b);
    return rc ? -ENOMEM : 0;
}

static uint64_t line_check(const char *s, size_t n)
{
    return weft_hash(s, n);
}

int journal_load(const char *path, const struct jobfile *jf, const uint64_t *fp, bool *ok,
                 size_t *changed, weft_buf_t *why)
{
    *changed = 0;
    for (size_t i = 0; i < jf->n; i++) ok[i] = false;
    FILE *f = fopen(path, "re");
    if (!f) {
        int e = -errno;
        weft_buf_printf(why, "%s: %s", path, strerror(-e));
        return e;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        weft_buf_printf(why, "%s: is a directory", path);
        return -EISDIR;
    }
    bool *seen_changed = calloc(jf->n + 1, sizeof *seen_changed);
    if (!seen_changed) {
        fclose(f);
        return -ENOMEM;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0, rc = 0;
    bool old = false;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (len == 0 || line[len - 1] != '\n') break; /* torn: the run died writing it */
        line[--len] = '\0';
        if (lineno == 1) {
            old = strcmp(line, OLD_MAGIC) == 0;
            if (!old && strcmp(line, MAGIC) != 0) {
                weft_buf_printf(why, "%s:1: not a weft run state file", path);
                rc = WEFT_EPARSE;
                break;
            }
            continue;
        }
        /* Fields: state, status, attempts, [fingerprint,] name[, check]. The check covers the
         * line up to the tab before it. */
        if (!old) {
            char *tab = strrchr(line, '\t'), *end;
            if (!tab) continue;
            errno = 0;
            uint64_t check = strtoull(tab + 1, &end, 16);
            if (errno || *end || end == tab + 1 || check != line_check(line, (size_t)(tab - line)))
                continue; /* damaged: ignore it */
            *tab = '\0';
        }
        char *field[5];
        size_t nf = 0;
        for (char *p = line; nf < 5;) {
            field[nf++] = p;
            char *tab = strchr(p, '\t');
            if (!tab) break;
            *tab = '\0';
            p = tab + 1;
        }
        if (nf != (old ? 4u : 5u)) continue;
        const char *name = field[nf - 1];
        uint64_t want_fp = old ? 0 : strtoull(field[3], NULL, 16);
        int i = jobfile_find(jf, name);
        if (i < 0) continue; /* a job no longer in the file */
        ok[i] = strcmp(field[0], "ok") == 0;
        seen_changed[i] = false;
        if (ok[i] && !old && want_fp != fp[i]) {
            ok[i] = false; /* its definition changed since it succeeded: run it again */
            seen_changed[i] = true;
        }
    }
    for (size_t i = 0; i < jf->n; i++) *changed += seen_changed[i];
    free(seen_changed);
    free(line);
    fclose(f);
    return rc;
}

static int fsync_dir_of(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -errno;
    int rc = fsync(fd) < 0 && errno != EINVAL ? -errno : 0;
    close(fd);
    return rc;
}

static int record(weft_buf_t *b, const char *state, int status, int attempts, uint64_t fp,
                  const char *name)
{
    size_t from = b->len;
    if (weft_buf_printf(b, "%s\t%d\t%d\t%016" PRIx64 "\t%s", state, status, attempts, fp, name) < 0)
        return -ENOMEM;
    uint64_t check = line_check(b->data + from, b->len - from);
    if (weft_buf_printf(b, "\t%016" PRIx64 "\n", check) < 0) {
        b->len = from; /* no half record */
        b->data[from] = '\0';
        return -ENOMEM;
    }
    return 0;
}

int journal_create(struct journal *jr, const char *path, const struct jobfile *jf,
                   const uint64_t *fp, const bool *carried)
{
    memset(jr, 0, sizeof *jr);
    jr->fd = -1;
    weft_buf_init(&jr->pending, 0);
    size_t plen = strlen(path) + 32;
    char *tmp = malloc(plen);
    jr->path = strdup(path);
    if (!tmp || !jr->path) {
        free(tmp);
        free(jr->path);
        return -ENOMEM;
    }
    snprintf(tmp, plen, "%s.tmp.%d", path, (int)getpid());
    int rc = 0;
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) rc = -EISDIR;
    int fd = rc ? -1 : open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (!rc && fd < 0) rc = -errno;
    if (fd >= 0) {
        weft_buf_t b;
        weft_buf_init(&b, 0);
        rc = weft_buf_printf(&b, "%s\n", MAGIC);
        for (size_t i = 0; carried && i < jf->n && !rc; i++)
            if (carried[i]) rc = record(&b, "ok", 0, 0, fp[i], jf->jobs[i].name);
        for (size_t off = 0; !rc && off < b.len;) {
            ssize_t w = write(fd, b.data + off, b.len - off);
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) rc = -errno;
            off += w > 0 ? (size_t)w : 0;
        }
        weft_buf_free(&b);
        if (!rc && fsync(fd) < 0) rc = -errno;
        if (!rc && rename(tmp, path) < 0) rc = -errno;
        if (!rc) rc = fsync_dir_of(path);
        if (rc) {
            close(fd);
            unlink(tmp);
            fd = -1;
        }
    }
    free(tmp);
    if (rc) {
        free(jr->path);
        jr->path = NULL;
        return rc;
    }
    jr->fd = fd;
    return 0;
}

void journal_add(struct journal *jr, const char *state, int status, int attempts, uint64_t fp,
                 const char *name)
{
    if (jr->fd >= 0 && record(&jr->pending, state, status, attempts, fp, name) < 0 && !jr->err)
        jr->err = -ENOMEM;
}

int journal_sync(struct journal *jr)
{
    if (jr->fd < 0 || jr->pending.len == 0) return jr->err;
    int rc = 0;
    for (size_t off = 0; !rc && off < jr->pending.len;) {
        ssize_t w = write(jr->fd, jr->pending.data + off, jr->pending.len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) rc = -errno;
        off += w > 0 ? (size_t)w : 0;
    }
    if (!rc && fdatasync(jr->fd) < 0) rc = -errno;
    weft_buf_reset(&jr->pending);
    if (rc && !jr->err) jr->err = rc;
    return jr->err;
}

void journal_close(struct journal *jr)
{
    if (jr->fd >= 0) close(jr->fd);
    jr->fd = -1;
    weft_buf_free(&jr->pending);
    free(jr->path);
    jr->path = NULL;
}
