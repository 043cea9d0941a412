/* libFuzzer target for the `weft run` job-file parser (tools/run/jobfile.c): untrusted YAML.
 *
 * Checks: no crash or leak (ASan); either the file parses, or the error is one line that starts
 * with "PATH:LINE: "; a parsed file has valid, unique job names (found by jobfile_find),
 * dependencies that exist, and an order that puts every job after its dependencies. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "run/run.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct jobfile jf;
    weft_buf_t err;
    weft_buf_init(&err, 0);
    int rc = jobfile_parse("f.yaml", (const char *)data, size, &jf, &err);
    if (rc == 0) {
        if (jf.n == 0) abort();
        for (size_t i = 0; i < jf.n; i++) {
            const struct job *j = &jf.jobs[i];
            if (!j->name || !*j->name || j->line < 1) abort();
            if (j->kind == JOB_SHELL && !j->run) abort();
            if (jobfile_find(&jf, j->name) != (int)i) abort(); /* unique and found */
            for (size_t d = 0; d < j->ndeps; d++)
                if (jobfile_find(&jf, j->deps[d]) < 0) abort();
        }
        /* The order is a permutation with dependencies first. */
        size_t *pos = calloc(jf.n, sizeof *pos);
        if (!pos || !jf.order) abort();
        for (size_t k = 0; k < jf.n; k++) {
            if (jf.order[k] < 0 || (size_t)jf.order[k] >= jf.n || pos[jf.order[k]]) abort();
            pos[jf.order[k]] = k + 1;
        }
        for (size_t i = 0; i < jf.n; i++)
            for (size_t d = 0; d < jf.jobs[i].ndeps; d++)
                if (pos[jobfile_find(&jf, jf.jobs[i].deps[d])] >= pos[i]) abort();
        free(pos);
        jobfile_free(&jf);
    } else {
        if (!err.data || strncmp(err.data, "f.yaml:", 7) != 0) abort();
        if (strchr(err.data, '\n')) abort();
    }
    weft_buf_free(&err);
    return 0;
}
