"""Tests of the sidecar as a whole: its demo, as a real process."""
