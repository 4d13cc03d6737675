"""The tap: learning request shapes from traffic without standing in its way.

Envoy (`sidecar.envoy`) forwards the calls clients may make (`methods.FORWARDED_METHODS`:
PredictionService and ModelService/GetModelStatus) to TF Serving and mirrors a sample of
inference calls to the recorder here, which parses them and records their shapes off the
request path.

Import from the modules, so that a light one (``settings``, ``errors``, ``methods``,
``child_start``) loads neither gRPC's server nor TensorFlow: ``recorder_server``
(`serve_recorder(settings, recorder, observer=None, clock=time.time) -> RecorderServer`),
``process`` (`RecorderProcess`: the recorder in a process of its own, as `tftrt-sidecar
run` starts it), ``settings`` (`RecorderSettings`), ``recording`` (the `Recorder` protocol
and the worker), ``stats`` (`TapObserver`, `TapStats`), ``request_shapes`` and ``errors``.
"""
