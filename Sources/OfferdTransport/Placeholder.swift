// Placeholder: module OfferdTransport (see the module table in README.md).
