"""How each resource reads outside kakin: the response shapes that the HTTP API, the
CLI's ``--json`` and the coming web console share, one module per feature.

A view is built from what a service hands its caller (a row, a draft, a status
view), never by a query of its own. Class names are the OpenAPI component names, and
field order is the JSON's key order: both are public, so neither changes lightly.
"""
