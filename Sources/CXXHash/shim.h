#ifndef OFFERD_CXXHASH_SHIM_H
#define OFFERD_CXXHASH_SHIM_H

// Debian's libxxhash-dev: XXH3_64bits and its streaming state, used for the
// snapshot checksum. Only the declarations are taken from the header; the code
// is linked from libxxhash.
#include <xxhash.h>

#endif
