"""Envoy in front of TF Serving: the proxy clients call, which forwards what they may call
(gRPC, and TF Serving's REST API when ``rest_listen`` is set) and mirrors a sample of
inference calls to the sidecar's shape recorder (:mod:`sidecar.recorder`).

Import from the modules: ``settings`` (:class:`EnvoySettings`), ``from_settings`` (them,
from the sidecar's settings), ``binary`` (the pinned Envoy build and its version check),
``bootstrap`` (Envoy's configuration, generated from the settings and validated by Envoy
itself), ``process`` (Envoy run and supervised as a child process), ``runtime`` (its
admin API: the mirrored share, live) and ``errors``.
"""
