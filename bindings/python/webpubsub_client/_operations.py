"""Argument preparation shared by the sync and asyncio clients.

Both clients accept the same arguments for every operation (the official keywords plus the seed
README's options objects); this module turns them into the values the native calls take, so
the two front ends only differ in how they call the library and wait for the result.
"""

import json
from typing import Any, Dict, NamedTuple, Optional, Tuple, Union

from . import _native as n
from . import _payload
from ._options import ClientSettings, settings_from
from .models._enums import WebPubSubDataType

SETTING_NAMES = (
    "message_retry_backoff_factor",
    "message_retry_backoff_max",
    "message_retry_mode",
    "message_retry_total",
    "protocol_type",
    "reconnect_retry_backoff_factor",
    "reconnect_retry_backoff_max",
    "reconnect_retry_mode",
    "reconnect_retry_total",
    "auto_rejoin_groups",
    "logging_enable",
    "ack_timeout",
    "start_timeout",
    "user_agent",
)


def client_settings(options: Any, arguments: Dict[str, Any], extra: Dict[str, Any]) -> ClientSettings:
    """Settings from a constructor call: ``arguments`` are the constructor's named parameters
    (``locals()``), ``extra`` its ``**kwargs``. A keyword left at its default does not override
    the same option given in an options object."""
    defaults = ClientSettings()
    changed = {k: arguments[k] for k in SETTING_NAMES if arguments[k] != getattr(defaults, k)}
    return settings_from(options, {**changed, **extra})


class GroupOp(NamedTuple):
    """Native arguments of a join or leave."""

    group: bytes
    ack_id: int


# Native arguments of a send to group or send event, in call order after the client handle:
# (target, data, len(data), data_type, flags, ack_id). A plain tuple, passed on as it is.
SendOp = Tuple[bytes, bytes, int, int, int, int]


def _merge(options: Any, keywords: Dict[str, Any]) -> Dict[str, Any]:
    merged: Dict[str, Any] = {}
    if options is not None:
        as_kwargs = getattr(options, "as_kwargs", None)
        if as_kwargs is None:
            raise TypeError("options must be a JoinGroupOptions/LeaveGroupOptions/SendToGroupOptions/SendEventOptions")
        merged.update(as_kwargs())
    merged.update({k: v for k, v in keywords.items() if v is not None})
    return merged


def _ack_id(value: Optional[int]) -> int:
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0 or value >= 2**64:
        raise ValueError("ack_id must be a positive integer below 2**64")
    # Above 2**63 - 1 only ids the library allocated are accepted (it refuses others).
    return value


def state_json(state: Any) -> bytes:
    """A group state (a ``dict`` of ``str`` to ``str``) as the JSON the library takes."""
    if not isinstance(state, dict):
        raise TypeError("state must be a dict of str to str")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError("state must be a dict of str to str")
    raw = json.dumps(state, separators=(",", ":")).encode("utf-8")
    if b"\0" in raw:
        raise ValueError("state must not contain NUL characters")
    return raw


def group_op(group_name: str, options: Any, ack_id: Optional[int]) -> GroupOp:
    """Arguments of ``join_group``/``leave_group``."""
    opts = _merge(options, {"ack_id": ack_id})
    return GroupOp(n.encode_identifier(group_name, "group_name"), _ack_id(opts.get("ack_id")))


def send_op(
    target_name: str,
    what: str,
    content: Any,
    data_type: Union[WebPubSubDataType, str],
    options: Any,
    *,
    ack: bool,
    no_echo: bool,
    ack_id: Optional[int],
    fire_and_forget: Optional[bool],
) -> SendOp:
    """Arguments of ``send_to_group`` (``what="group_name"``) or ``send_event`` (``"event_name"``).

    ``ack=False`` and ``fire_and_forget=True`` both send without an ack id.
    """
    if options is None:
        # the common case, same outcome as the merge below without building dictionaries
        forget = bool(fire_and_forget) or not ack
        echo_flag = n.WPS_SEND_NO_ECHO if no_echo else 0
    else:
        opts = _merge(options, {"ack_id": ack_id, "no_echo": no_echo or None, "fire_and_forget": fire_and_forget})
        forget = bool(opts.get("fire_and_forget")) or not ack
        echo_flag = n.WPS_SEND_NO_ECHO if opts.get("no_echo") else 0
        ack_id = opts.get("ack_id")
    data, native_type = _payload.encode(content, data_type)
    flags = echo_flag | (n.WPS_SEND_FIRE_AND_FORGET if forget else 0)
    return (n.encode_identifier(target_name, what), data, len(data), native_type, flags, _ack_id(ack_id))
