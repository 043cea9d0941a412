/* `weft orders`: a real-time order engine on Redis and PostgreSQL (SQLite embedded by default).
 * Each of its commands (`serve`, `payment-mock`, `logistics`, `audit`, ...) registers itself
 * with WEFT_ORDERS_COMMAND in the weft command's one registry (common/cli-int.h).
 * docs/orders.md describes the whole system.
 */
#ifndef WEFT_TOOLS_ORDERS_H
#define WEFT_TOOLS_ORDERS_H

#include "common/cli-int.h"

/* Registers `weft orders NAME`; `fn` gets argv[0] = NAME. */
#define WEFT_ORDERS_COMMAND(name, fn, summary) WEFT_SUBCOMMAND("orders", name, fn, summary)

#endif
