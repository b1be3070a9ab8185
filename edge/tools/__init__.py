"""Offline tools behind CLI subcommands: ``edge replay`` and ``edge evaluate``.

Unlike the stages, tools may read the config: they turn a camera's configured lines and zones into the
analytics' pixel specs (:mod:`edge.tools.specs`) and run the real tracker and analytics offline.
"""
