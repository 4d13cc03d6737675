"""TF Serving's file and wire contracts, in one place: the serving base's version layout
(``layout``) and numbering (``numbering``), the model names it may hold (``model_names``),
the model config file (``model_config``), warmup records (``warmup``), and the calls
clients may make over gRPC (``methods``) and REST (``rest_api``). Of the sidecar it
imports only :mod:`sidecar.base`, so Envoy's routes, the recorder, the jobs and the
publisher all read one definition."""
