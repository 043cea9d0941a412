/* libFuzzer target for the `weft run` job-file parser (tools/run/jobfile.c): untrusted YAML.
 *
 * Checks: no crash or leak (ASan); either the file parses, or the error is one line that starts
 * with "PATH:LINE: "; a parsed file has valid, unique job names and dependencies that exist. */
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
            for (size_t k = 0; k < i; k++)
                if (strcmp(jf.jobs[k].name, j->name) == 0) abort();
            for (size_t d = 0; d < j->ndeps; d++) {
                bool found = false;
                for (size_t k = 0; k < jf.n && !found; k++)
                    found = strcmp(jf.jobs[k].name, j->deps[d]) == 0;
                if (!found) abort();
            }
        }
        jobfile_free(&jf);
    } else {
        if (!err.data || strncmp(err.data, "f.yaml:", 7) != 0) abort();
        if (strchr(err.data, '\n')) abort();
    }
    weft_buf_free(&err);
    return 0;
}
