"""tftrt.sidecar.admin.v1: the admin API (admin.proto) and its generated code."""
