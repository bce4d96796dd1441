"""Minimal local stand-in for the Azure SDK monorepo's ``devtools_testutils``.

The official ``azure-messaging-webpubsubclient`` test suite imports this package, which is not
published on PyPI. Nothing is recorded or replayed here: the live tests talk to the emulator
whose connection string is in ``WEBPUBSUBCLIENT_CONNECTION_STRING``.
"""

import inspect
import os

import pytest


def recorded_by_proxy(test_fn):
    """Return the test unchanged: there is no recording proxy."""
    return test_fn


@pytest.fixture(scope="session")
def test_proxy():
    """No-op fixture; session scope matches the suite's autouse ``add_sanitizers`` fixture."""
    yield


def add_general_regex_sanitizer(regex=None, value=None, **_kwargs):
    """No-op: nothing is recorded, so nothing needs sanitising."""
    return None


class AzureRecordedTestCase:
    """Empty base class for the suite's test classes."""


def PowerShellPreparer(service_prefix, **defaults):  # noqa: N802 (name fixed by the suite)
    """Return a decorator that passes each default keyword, overridden by its upper-cased
    environment variable, to the test if the test's signature accepts it.

    The wrapper hides the keyword from pytest (no ``__wrapped__``), so pytest does not look for
    a fixture of that name.
    """
    del service_prefix

    def values():
        return {key: os.environ.get(key.upper(), default) for key, default in defaults.items()}

    def decorator(test_fn):
        accepted = set(inspect.signature(test_fn).parameters)

        def pick():
            return {k: v for k, v in values().items() if k in accepted}

        if inspect.iscoroutinefunction(test_fn):

            async def async_wrapper(*args, **kwargs):
                return await test_fn(*args, **{**pick(), **kwargs})

            wrapper = async_wrapper
        else:

            def sync_wrapper(*args, **kwargs):
                return test_fn(*args, **{**pick(), **kwargs})

            wrapper = sync_wrapper
        wrapper.__name__ = test_fn.__name__
        wrapper.__qualname__ = test_fn.__qualname__
        wrapper.__doc__ = test_fn.__doc__
        wrapper.__module__ = test_fn.__module__
        return wrapper

    return decorator
