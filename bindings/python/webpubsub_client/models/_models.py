"""Event argument types and option objects of the public API."""

from typing import Any, Dict, List, Optional, Union

from ._enums import WebPubSubDataType, WebPubSubProtocolType


class OnConnectedArgs:
    """Arguments of the ``connected`` event (once per new connection id, not after recovery).

    :ivar connection_id: The connection id assigned by the service.
    :ivar user_id: The user id of the connection, if any.
    """

    def __init__(self, connection_id: str, user_id: Optional[str] = None) -> None:
        self.connection_id = connection_id
        self.user_id = user_id

    def __repr__(self) -> str:
        return f"OnConnectedArgs(connection_id={self.connection_id!r}, user_id={self.user_id!r})"


class OnDisconnectedArgs:
    """Arguments of the ``disconnected`` event (the connection was lost and not recovered).

    :ivar connection_id: The id of the lost connection, if known.
    :ivar message: The reason, if known.
    """

    def __init__(self, connection_id: Optional[str] = None, message: Optional[str] = None) -> None:
        self.connection_id = connection_id
        self.message = message

    def __repr__(self) -> str:
        return f"OnDisconnectedArgs(connection_id={self.connection_id!r}, message={self.message!r})"


class OnRecoveringArgs:
    """Arguments of the ``recovering`` event: a reliable connection dropped and recovery starts
    (once per recovery episode; not for ``stop``, close 1008 or non-reliable protocols).

    :ivar connection_id: The id of the connection being recovered.
    """

    def __init__(self, connection_id: str) -> None:
        self.connection_id = connection_id

    def __repr__(self) -> str:
        return f"OnRecoveringArgs(connection_id={self.connection_id!r})"


class OnRecoveredArgs:
    """Arguments of the ``recovered`` event: the service accepted the session on a new socket.
    No second ``connected`` event follows.

    :ivar connection_id: The recovered connection's id (unchanged).
    """

    def __init__(self, connection_id: str) -> None:
        self.connection_id = connection_id

    def __repr__(self) -> str:
        return f"OnRecoveredArgs(connection_id={self.connection_id!r})"


class OnSessionLostArgs:
    """Arguments of the ``session-lost`` event: a reliable session ended without recovery
    (recovery refused or timed out, close 1008, the service's buffer overflow). Messages sent to
    this client after ``last_sequence_id`` and before the next ``connected`` may be lost.
    Raised before the ``disconnected`` event of that connection.

    :ivar connection_id: The lost connection's id.
    :ivar last_sequence_id: The last sequence id received on the session (0 when none).
    :ivar message: Why the session could not be recovered.
    """

    def __init__(self, connection_id: str, last_sequence_id: int, message: Optional[str] = None) -> None:
        self.connection_id = connection_id
        self.last_sequence_id = last_sequence_id
        self.message = message

    def __repr__(self) -> str:
        return (
            f"OnSessionLostArgs(connection_id={self.connection_id!r}, "
            f"last_sequence_id={self.last_sequence_id!r}, message={self.message!r})"
        )


class OnStoppedArgs:
    """Arguments of the ``stopped`` event (the last event of a start; carries nothing).

    Listeners of ``stopped`` are called without arguments, as in the official SDK; this class
    exists for type annotations and for listeners that want one.
    """

    def __repr__(self) -> str:
        return "OnStoppedArgs()"


class OnServerDataMessageArgs:
    """Arguments of the ``server-message`` event.

    :ivar data_type: The payload's data type.
    :ivar data: ``str`` for text, the parsed value for json, ``memoryview`` for binary/protobuf.
    :ivar sequence_id: Sequence id on reliable protocols, else ``None``.
    """

    def __init__(self, data_type: WebPubSubDataType, data: Any, sequence_id: Optional[int] = None) -> None:
        self.data_type = data_type
        self.data = data
        self.sequence_id = sequence_id

    def __repr__(self) -> str:
        return (
            f"OnServerDataMessageArgs(data_type={self.data_type!r}, data={self.data!r}, "
            f"sequence_id={self.sequence_id!r})"
        )


class OnGroupDataMessageArgs:
    """Arguments of the ``group-message`` event.

    :ivar data_type: The payload's data type.
    :ivar data: ``str`` for text, the parsed value for json, ``memoryview`` for binary/protobuf.
    :ivar group: The group the message was sent to.
    :ivar from_user_id: The sender's user id, if any.
    :ivar sequence_id: Sequence id on reliable protocols, else ``None``.
    """

    def __init__(
        self,
        *,
        data_type: WebPubSubDataType,
        data: Any,
        group: str,
        from_user_id: Optional[str] = None,
        sequence_id: Optional[int] = None,
    ) -> None:
        self.data_type = data_type
        self.data = data
        self.group = group
        self.from_user_id = from_user_id
        self.sequence_id = sequence_id

    def __repr__(self) -> str:
        return (
            f"OnGroupDataMessageArgs(group={self.group!r}, data_type={self.data_type!r}, data={self.data!r}, "
            f"from_user_id={self.from_user_id!r}, sequence_id={self.sequence_id!r})"
        )


class OnRejoinGroupFailedArgs:
    """Arguments of the ``rejoin-group-failed`` event.

    :ivar group: The group that could not be rejoined after a reconnect.
    :ivar error: Why (a :class:`SendMessageError`).
    """

    def __init__(self, group: str, error: Exception) -> None:
        self.group = group
        self.error = error

    def __repr__(self) -> str:
        return f"OnRejoinGroupFailedArgs(group={self.group!r}, error={self.error!r})"


class StreamFragment:
    """One fragment of a received group stream.

    :ivar data_type: The fragment's data type.
    :ivar data: ``str`` for text, the parsed value for json, ``memoryview`` for binary.
    :ivar stream_sequence_id: Its position in the stream (1, 2, ...).
    """

    __slots__ = ("data_type", "data", "stream_sequence_id")

    def __init__(self, data_type: WebPubSubDataType, data: Any, stream_sequence_id: int) -> None:
        self.data_type = data_type
        self.data = data
        self.stream_sequence_id = stream_sequence_id

    def __repr__(self) -> str:
        return (
            f"StreamFragment(stream_sequence_id={self.stream_sequence_id!r}, "
            f"data_type={self.data_type!r}, data={self.data!r})"
        )


class GroupStateRecord:
    """One connection's state in a group (a copy; changing it changes nothing else).

    :ivar connection_id: The connection the state belongs to.
    :ivar user_id: Its user id, if any.
    :ivar state: The state (``str`` keys and values); ``None`` when it was cleared.
    :ivar updated_at: When the service recorded it (Unix epoch milliseconds).
    """

    __slots__ = ("connection_id", "user_id", "state", "updated_at")

    def __init__(
        self, connection_id: str, user_id: Optional[str], state: Optional[Dict[str, str]], updated_at: int
    ) -> None:
        self.connection_id = connection_id
        self.user_id = user_id
        self.state = state
        self.updated_at = updated_at

    def copy(self) -> "GroupStateRecord":
        return GroupStateRecord(
            self.connection_id, self.user_id, None if self.state is None else dict(self.state), self.updated_at
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GroupStateRecord):
            return NotImplemented
        return (self.connection_id, self.user_id, self.state, self.updated_at) == (
            other.connection_id,
            other.user_id,
            other.state,
            other.updated_at,
        )

    def __repr__(self) -> str:
        return (
            f"GroupStateRecord(connection_id={self.connection_id!r}, user_id={self.user_id!r}, "
            f"state={self.state!r}, updated_at={self.updated_at!r})"
        )


class OnGroupStateArgs:
    """Arguments of the ``group-state`` event: a snapshot (after a subscribe, also the one that
    follows the automatic renewal on a new connection) or an update of a group's state.

    :ivar group: The group.
    :ivar is_snapshot: ``True`` for a snapshot, ``False`` for an update.
    :ivar records: The records as the service sent them (``state`` ``None`` = cleared).
    :ivar changed: Whether the client's cached view (``list_group_states``) changed.
    """

    def __init__(self, group: str, is_snapshot: bool, records: List[GroupStateRecord], changed: bool) -> None:
        self.group = group
        self.is_snapshot = is_snapshot
        self.records = records
        self.changed = changed

    def __repr__(self) -> str:
        return (
            f"OnGroupStateArgs(group={self.group!r}, is_snapshot={self.is_snapshot!r}, "
            f"records={self.records!r}, changed={self.changed!r})"
        )


class SendMessageErrorOptions:
    """Ack id and error detail of a failed operation (the state behind a :class:`SendMessageError`)."""

    def __init__(self, ack_id: Optional[int] = None, error_detail: Optional[Any] = None) -> None:
        self.ack_id = ack_id
        self.error_detail = error_detail


# --- spellings of the seed README -------------------------------------------------------


class WebPubSubJsonProtocol:
    """The ``json.webpubsub.azure.v1`` subprotocol (no recovery)."""

    protocol_type = WebPubSubProtocolType.JSON
    name = WebPubSubProtocolType.JSON.value
    is_reliable_sub_protocol = False


class WebPubSubJsonReliableProtocol:
    """The ``json.reliable.webpubsub.azure.v1`` subprotocol (the default; supports recovery)."""

    protocol_type = WebPubSubProtocolType.JSON_RELIABLE
    name = WebPubSubProtocolType.JSON_RELIABLE.value
    is_reliable_sub_protocol = True


ProtocolLike = Union[WebPubSubProtocolType, str, WebPubSubJsonProtocol, WebPubSubJsonReliableProtocol]


class WebPubSubClientOptions:
    """Client options as one object (the seed README's spelling).

    ``WebPubSubClient(url, WebPubSubClientOptions(WebPubSubJsonProtocol()))`` is the same as
    ``WebPubSubClient(url, protocol_type=WebPubSubProtocolType.JSON)``. Every keyword the client
    constructor accepts is accepted here too; ``auto_restore_groups`` is an alias of
    ``auto_rejoin_groups``.
    """

    def __init__(self, protocol: Optional[ProtocolLike] = None, **options: Any) -> None:
        if "auto_restore_groups" in options:
            options.setdefault("auto_rejoin_groups", options.pop("auto_restore_groups"))
        if protocol is not None:
            options.setdefault("protocol_type", protocol)
        self.options = options

    def as_kwargs(self) -> dict:
        """The options as constructor keywords."""
        return dict(self.options)


class _AckOptions:
    def __init__(self, *, ack_id: Optional[int] = None) -> None:
        self.ack_id = ack_id

    def as_kwargs(self) -> dict:
        return {k: v for k, v in vars(self).items() if v is not None}


class JoinGroupOptions(_AckOptions):
    """Options of ``join_group`` (the seed README's spelling): ``ack_id`` to retry with."""


class LeaveGroupOptions(_AckOptions):
    """Options of ``leave_group``: ``ack_id`` to retry with."""


class SendToGroupOptions(_AckOptions):
    """Options of ``send_to_group``: ``ack_id``, ``no_echo``, ``fire_and_forget``."""

    def __init__(
        self, *, ack_id: Optional[int] = None, no_echo: Optional[bool] = None, fire_and_forget: Optional[bool] = None
    ) -> None:
        super().__init__(ack_id=ack_id)
        self.no_echo = no_echo
        self.fire_and_forget = fire_and_forget


class SendEventOptions(_AckOptions):
    """Options of ``send_event``: ``ack_id``, ``fire_and_forget``."""

    def __init__(self, *, ack_id: Optional[int] = None, fire_and_forget: Optional[bool] = None) -> None:
        super().__init__(ack_id=ack_id)
        self.fire_and_forget = fire_and_forget


__all__ = [
    "OnConnectedArgs",
    "OnDisconnectedArgs",
    "OnStoppedArgs",
    "OnServerDataMessageArgs",
    "OnGroupDataMessageArgs",
    "OnRejoinGroupFailedArgs",
    "SendMessageErrorOptions",
    "StreamFragment",
    "GroupStateRecord",
    "OnGroupStateArgs",
    "WebPubSubJsonProtocol",
    "WebPubSubJsonReliableProtocol",
    "WebPubSubClientOptions",
    "JoinGroupOptions",
    "LeaveGroupOptions",
    "SendToGroupOptions",
    "SendEventOptions",
]
