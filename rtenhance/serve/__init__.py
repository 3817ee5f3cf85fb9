"""``rtenhance serve``: many live streams over WebSocket, enhanced together by the batched native step.

``protocol`` is the wire format, ``session`` one client's queues and counters, ``stats`` the logged
figures, ``server`` the server itself. Needs the ``websockets`` package (``pip install rtenhance[serve]``).
"""
