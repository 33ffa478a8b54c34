//! Server-side printing: meta.k8s.io/v1 Table columns and rows for each kind, as kubectl get shows them.
