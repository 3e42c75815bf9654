// Placeholder: module OfferdWire (see the module table in README.md).
