"""What every part of the sidecar stands on: the error hierarchy and fault areas, child
supervision, fan-out to observers, SQLite writes and scratch space. Imports nothing of the
sidecar above it."""
