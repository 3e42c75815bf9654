// PLACEHOLDER: replaced by the engine implementation (issue 2).
