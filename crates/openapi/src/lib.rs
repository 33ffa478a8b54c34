//! OpenAPI v2/v3 documents of the served types, and the structure (list keys, patch strategies) merge and apply need.
