"""The public API matches ``azure-messaging-webpubsubclient`` 1.1.0 (checked against the installed
official package when it is present)."""

import inspect

import pytest

import webpubsub_client
import webpubsub_client.aio
import webpubsub_client.models

official = pytest.importorskip("azure.messaging.webpubsubclient")
official_models = pytest.importorskip("azure.messaging.webpubsubclient.models")
official_aio = pytest.importorskip("azure.messaging.webpubsubclient.aio")

EXTRA_ERRORS = ["ReconnectError", "RecoverError"]


def test_model_names():
    for name in list(official_models.__all__) + EXTRA_ERRORS:
        assert hasattr(webpubsub_client.models, name), name
        assert hasattr(webpubsub_client, name), name


@pytest.mark.parametrize("enum_name", ["WebPubSubDataType", "WebPubSubProtocolType", "CallbackType"])
def test_enum_values(enum_name):
    theirs = getattr(official_models, enum_name)
    ours = getattr(webpubsub_client.models, enum_name)
    assert {m.name: m.value for m in theirs}.items() <= {m.name: m.value for m in ours}.items()
    for m in theirs:
        assert ours(m.value) == m.value


def test_retry_mode_accepts_azure_core_values():
    from azure.core.pipeline.policies import RetryMode as CoreRetryMode

    for m in CoreRetryMode:
        assert webpubsub_client.RetryMode(m).value == m.value


def _keywords(fn):
    return {
        name: p.default
        for name, p in inspect.signature(fn).parameters.items()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and name != "self"
    }


@pytest.mark.parametrize(
    "ours,theirs",
    [
        (webpubsub_client.WebPubSubClient, official.WebPubSubClient),
        (webpubsub_client.aio.WebPubSubClient, official_aio.WebPubSubClient),
    ],
)
def test_constructor_keywords_and_defaults(ours, theirs):
    mine = _keywords(ours.__init__)
    for name, default in _keywords(theirs.__init__).items():
        assert name in mine, name
        assert mine[name] == default, (name, mine[name], default)


@pytest.mark.parametrize(
    "ours,theirs",
    [
        (webpubsub_client.WebPubSubClient, official.WebPubSubClient),
        (webpubsub_client.aio.WebPubSubClient, official_aio.WebPubSubClient),
    ],
)
def test_methods(ours, theirs):
    for name, member in inspect.getmembers(theirs):
        if name.startswith("_") and name not in ("__enter__", "__exit__", "__aenter__", "__aexit__"):
            continue
        if not callable(member):
            continue
        mine = getattr(ours, name, None)
        assert mine is not None, name
        assert inspect.iscoroutinefunction(mine) == inspect.iscoroutinefunction(member), name
        their_params = [p for p in inspect.signature(member).parameters if p not in ("self", "kwargs")]
        my_params = list(inspect.signature(mine).parameters)
        for p in their_params:
            assert p in my_params, (name, p)


def test_error_attributes():
    detail = webpubsub_client.AckMessageError(name="Forbidden", message="no")
    err = webpubsub_client.SendMessageError("failed", ack_id=7, error_detail=detail)
    assert (err.ack_id, err.error_detail.name, err.error_detail.message, err.name) == (
        7,
        "Forbidden",
        "no",
        "SendMessageError",
    )
    from azure.core.exceptions import AzureError

    assert isinstance(err, AzureError)
    assert isinstance(webpubsub_client.OpenClientError("x"), AzureError)


def test_event_args_constructors():
    for name in (
        "OnConnectedArgs",
        "OnDisconnectedArgs",
        "OnServerDataMessageArgs",
        "OnGroupDataMessageArgs",
        "OnRejoinGroupFailedArgs",
    ):
        theirs = inspect.signature(getattr(official_models, name).__init__).parameters
        mine = inspect.signature(getattr(webpubsub_client.models, name).__init__).parameters
        assert list(theirs) == list(mine), name
