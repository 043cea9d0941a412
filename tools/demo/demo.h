/* `weft demo`: the tutorial as a program. Each demo registers itself with WEFT_DEMO; `weft demo`
 * with no argument runs them all in registration order of their `order` key. */
#ifndef WEFT_TOOLS_DEMO_H
#define WEFT_TOOLS_DEMO_H

typedef int (*weft_demo_fn)(int argc, char **argv);

/* `order` sorts the demos for `weft demo` (lower first); `summary` is one line for --help. */
void weft_demo_register(const char *name, int order, weft_demo_fn fn, const char *summary);
#define WEFT_DEMO(name, order, fn, summary)                                                        \
    __attribute__((constructor)) static void weft__demo_reg_##fn(void)                             \
    {                                                                                              \
        weft_demo_register(name, order, fn, summary);                                              \
    }

/* Prints a section heading for a demo. */
void weft_demo_heading(const char *title);

/* The path of the running weft binary (for demos that start `weft fixture` and the like). */
const char *weft_demo_self(void);

#endif
