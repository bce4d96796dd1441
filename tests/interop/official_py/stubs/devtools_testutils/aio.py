"""Async half of the ``devtools_testutils`` stand-in."""


def recorded_by_proxy_async(test_fn):
    """Return the async test unchanged: there is no recording proxy."""
    return test_fn
