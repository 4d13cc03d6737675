"""The admin gRPC API (``tftrt.sidecar.admin.v1.SidecarAdmin``) with health checking and
reflection, safe by default: localhost, optional TLS / mutual TLS and bearer token.

Import from the modules, so that a light one (``policy_wire``,
``validation``, ``errors``) never loads the server, the serving-base reader or
TensorFlow: ``server`` (:func:`start_admin_server`, :class:`AdminServer`),
``settings`` (:class:`AdminSettings`), ``backend`` (the :class:`AdminBackend` protocol,
:class:`ConversionRequest`, :data:`ConversionSubmitter`), ``sidecar_backend`` (the real
backend), ``controls`` (persisted pauses and policy overrides), ``published`` (the
serving-base reader), ``errors`` and ``status`` (the error-to-status table).
The command-line client is :mod:`sidecar.client`.
"""
