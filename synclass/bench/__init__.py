"""Benchmarks: measure the media plane the way the design claims it works.

``fanout``: one publisher, N subscribers through ``media.MediaPlane`` in its
own process on one core, against aiortc's ``MediaRelay`` (decode once,
encode per subscriber) as a baseline. See ``synclass.bench.fanout``.
"""
