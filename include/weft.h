/* weft.h - the whole public API of libweft. See docs/ for one page per module. */
#ifndef WEFT_H
#define WEFT_H

#include <weft/err.h>
#include <weft/sys.h>
#include <weft/buf.h>
#include <weft/hist.h>
#include <weft/hash.h>
#include <weft/htab.h>
#include <weft/utf8.h>
#include <weft/future.h>
#include <weft/pool.h>
#include <weft/procpool.h>
#include <weft/loop.h>
#include <weft/http.h>
#include <weft/sched.h>
#include <weft/broker.h>

#endif /* WEFT_H */
