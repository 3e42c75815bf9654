#ifndef OFFERD_FUZZ_DRIVER_H
#define OFFERD_FUZZ_DRIVER_H
#include <stddef.h>
#include <stdint.h>

/// Runs libFuzzer on `callback` with the process's arguments. SwiftPM links executables with `main` aliased
/// to `<Target>_main`, so each target's `<Target>_main` calls this instead of relying on libFuzzer's `main`.
int offerd_fuzz_run(int argc, char **argv, int (*callback)(const uint8_t *data, size_t size));
#endif
