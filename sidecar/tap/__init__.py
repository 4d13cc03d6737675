"""The tap: a gRPC proxy in front of TF Serving that forwards the calls clients may make
(`FORWARDED_METHODS`: PredictionService and ModelService/GetModelStatus) unchanged, refuses
every other one with PERMISSION_DENIED, and records request shapes off the hot path.

Import from the modules, so that a light one (``settings``, ``errors``, ``methods``,
``child_start``) loads neither gRPC's server nor TensorFlow: ``server``
(`serve_tap(settings, recorder, observer=None, clock=time.time) -> TapServer`),
``process`` (`TapProcess`: the tap in a process of its own, as `tftrt-sidecar run`
starts it), ``settings`` (`TapSettings`), ``recording`` (the `Recorder` protocol),
``stats`` (`TapObserver`, `TapStats`), ``request_shapes`` and ``errors``.
"""
