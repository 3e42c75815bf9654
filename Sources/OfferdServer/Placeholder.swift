// Placeholder: module OfferdServer (see the module table in README.md).
