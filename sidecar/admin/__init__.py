"""The admin gRPC API (``tftrt.sidecar.admin.v1.SidecarAdmin``) with health checking and
reflection, safe by default: localhost, optional TLS / mutual TLS and bearer token.

Import from the modules, so that a light one (``policy_wire``,
``validation``, ``errors``) never loads the server or
TensorFlow: ``server`` (:func:`start_admin_server`, :class:`AdminServer`),
``settings`` (:class:`AdminSettings`), ``backend`` (the :class:`AdminBackend` protocol,
:class:`ConversionRequest`, :data:`ConversionSubmitter`), ``sidecar_backend`` (the real
backend), ``views`` (its answers as plain values), ``wire`` and ``policy_wire`` (their
protobuf mapping), ``errors`` and ``status`` (the error-to-status table). What the API
reads and changes lives below it: the serving-base reader in
:mod:`sidecar.publish.published`, persisted pauses and overrides in
:mod:`sidecar.state.controls`, policy overrides in :mod:`sidecar.config.overrides`. The
command-line client is :mod:`sidecar.client`.
"""
