//! Server-side apply: managedFields bookkeeping, field sets (fieldsV1), apply merges and conflicts.
