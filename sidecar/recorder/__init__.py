"""The recorder: learning request shapes from traffic without standing in its way.

The tap is Envoy (`sidecar.envoy`): it forwards the calls clients may make
(`sidecar.tfserving.methods.FORWARDED_METHODS`: PredictionService and
ModelService/GetModelStatus, and TF Serving's REST grammar in `sidecar.tfserving.rest_api`)
to TF Serving and mirrors a sample of inference calls to the recorder here, which parses
them and records their shapes off the request path.

Import from the modules, so that a light one (``settings``, ``errors``, ``child_start``)
loads neither gRPC's server nor TensorFlow: ``recorder_server``
(`serve_recorder(settings, recorder, observer=None, clock=time.time) -> RecorderServer`),
``process`` (`RecorderProcess`: the recorder in a process of its own, as `tftrt-sidecar
run` starts it), ``settings`` (`RecorderSettings`), ``recording`` (the `Recorder` protocol
and the worker), ``stats`` (`TapObserver`, `TapStats`), ``request_shapes`` and ``errors``.
"""
