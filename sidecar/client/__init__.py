"""``tftrt-sidecar admin``: the command-line client of the admin gRPC API.

It needs only gRPC and the API's messages: nothing here loads TensorFlow, the admin
server or the serving base, so each call starts in a fraction of a second.
"""
