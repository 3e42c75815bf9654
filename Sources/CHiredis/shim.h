#ifndef OFFERD_CHIREDIS_SHIM_H
#define OFFERD_CHIREDIS_SHIM_H
// hiredis, the official Redis C client: its blocking context, command formatter and reply reader. Debian 12
// ships 0.14.1, which has no TLS (hiredis_ssl came with 1.0), so `rediss://` is refused by OfferdEventLog.
#include <hiredis/hiredis.h>
#endif
