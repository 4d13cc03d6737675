"""Envoy in front of TF Serving: the proxy clients call, which forwards what they may call
and mirrors a sample of inference calls to the sidecar's shape recorder
(:mod:`sidecar.tap.recorder_server`).

Import from the modules: ``settings`` (:class:`EnvoySettings`), ``binary`` (the pinned
Envoy build and its version check), ``bootstrap`` (Envoy's configuration, generated from
the settings and validated by Envoy itself), ``process`` (Envoy run and supervised as a
child process), ``runtime`` (its admin API: the mirrored share, live) and ``errors``.
TF Serving's REST API: ``rest_api`` (the paths Envoy admits), ``rest_recorder`` (the HTTP
server REST calls are mirrored to), ``rest_shapes`` (their JSON read as TF Serving reads
it) and ``signature_dtypes`` (the served signatures' dtypes, which type that JSON).
"""
