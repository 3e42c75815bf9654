#ifndef OFFERD_LOADGEN_NGHTTP2_SHIM_H
#define OFFERD_LOADGEN_NGHTTP2_SHIM_H
#include <nghttp2/nghttp2.h>
#endif
