"""The backend service as the app reaches it: the API's contract and the client side.

- ``api``: endpoint paths and the team's seed request (the literals both sides share);
- ``client``: requests, bad inputs, load, curl (the http engine and the service checks use it);
- ``checks``: the service decisions over what the client measured (pure);
- ``breaker``: the team's circuit breaker (the reference server in npuperf/server runs it).
"""
