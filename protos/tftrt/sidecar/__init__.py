"""Protocol buffer package namespace (generated code lives in the leaf packages)."""
