//! Kubernetes protobuf encoding (application/vnd.kubernetes.protobuf) <-> JSON objects.
