"""Tests of the sidecar service."""
