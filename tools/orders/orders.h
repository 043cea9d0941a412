/* `weft orders`: a real-time order engine on Redis and PostgreSQL (SQLite embedded by default).
 * This header is the subcommand registry shared by the files of tools/orders/: each of `serve`,
 * `payment-mock`, `logistics`, `audit`, ... registers itself with WEFT_ORDERS_COMMAND, as the
 * top-level subcommands do with WEFT_COMMAND. docs/orders.md describes the whole system.
 */
#ifndef WEFT_TOOLS_ORDERS_H
#define WEFT_TOOLS_ORDERS_H

#include "weft/cli.h"

/* Registers `weft orders NAME`; call from a constructor (WEFT_ORDERS_COMMAND does). `fn` gets
 * argv[0] = NAME. */
void orders_cmd_register(const char *name, weft_cmd_fn fn, const char *summary);
#define WEFT_ORDERS_COMMAND(name, fn, summary)                                                     \
    __attribute__((constructor)) static void orders__cmd_reg_##fn(void)                            \
    {                                                                                              \
        orders_cmd_register(name, fn, summary);                                                    \
    }

#endif
