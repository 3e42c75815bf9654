// Placeholder: module OfferdSnapshot (see the module table in README.md).
