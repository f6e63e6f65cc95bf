"""GTFS-Realtime messages: parsing with its checks, and the enums as the contract names them.

The protobuf classes are MobilityData's `gtfs-realtime-bindings` (generated from the reference
`gtfs-realtime.proto`). upb parses an empty or truncated body into a message that lacks its
required header without a word, so `parse` checks what the specification requires before anyone
reads the entities: a header with `gtfs_realtime_version`, and every required field set
(`IsInitialized`).
"""

from __future__ import annotations

from google.protobuf.message import DecodeError as ProtobufDecodeError
from google.transit import gtfs_realtime_pb2 as rt

from edge.contract.errors import ContractError

FeedMessage = rt.FeedMessage
FULL_DATASET = rt.FeedHeader.FULL_DATASET
DIFFERENTIAL = rt.FeedHeader.DIFFERENTIAL
MAX_BODY_BYTES = 64 * 1_048_576  # a regional feed is a few MB; more is a mistake or an attack

# Field values of the transit kinds (edge.contract.kinds), by protobuf enum number.
OCCUPANCY_STATUS = {v: name.lower() for name, v in rt.VehiclePosition.OccupancyStatus.items()}
VEHICLE_STOP_STATUS = {v: name.lower() for name, v in rt.VehiclePosition.VehicleStopStatus.items()}
TRIP_SCHEDULED = rt.TripDescriptor.SCHEDULED
TRIP_CANCELED = rt.TripDescriptor.CANCELED
TRIP_DELETED = rt.TripDescriptor.DELETED
STOP_SKIPPED = rt.TripUpdate.StopTimeUpdate.SKIPPED
STOP_NO_DATA = rt.TripUpdate.StopTimeUpdate.NO_DATA
CAUSE = {v: name.lower() for name, v in rt.Alert.Cause.items()}
EFFECT = {v: name.lower() for name, v in rt.Alert.Effect.items()}
SEVERITY = {v: name.lower() for name, v in rt.Alert.SeverityLevel.items()}


class RealtimeDecodeError(ContractError):
    """A body that is not a usable GTFS-Realtime FeedMessage."""

    reason = "bad_feed"


def parse(body: bytes) -> rt.FeedMessage:
    """The FeedMessage in `body`, or RealtimeDecodeError saying why not."""
    if len(body) > MAX_BODY_BYTES:
        raise RealtimeDecodeError(
            f"{len(body)} bytes exceeds {MAX_BODY_BYTES}", field="body", value=len(body)
        )
    try:
        message = rt.FeedMessage.FromString(body)
    except ProtobufDecodeError as exc:
        raise RealtimeDecodeError(
            f"not a GTFS-Realtime FeedMessage: {exc}", field="body", value=body[:32]
        ) from None
    if not message.HasField("header") or not message.header.gtfs_realtime_version:
        raise RealtimeDecodeError(
            "no header with gtfs_realtime_version (an empty or truncated body?)",
            field="header",
            value=body[:32],
        )
    if not message.IsInitialized():
        # FindInitializationErrors is protobuf's runtime API, missing from types-protobuf's stubs.
        missing = ", ".join(message.FindInitializationErrors()[:5])  # type: ignore[attr-defined]
        raise RealtimeDecodeError(f"required fields missing: {missing}", field="entity", value=body[:32])
    return message


def translation(text: rt.TranslatedString, language: str = "it") -> str:
    """The `language` translation of a TranslatedString, else the untagged one, else the first."""
    chosen = ""
    for t in text.translation:
        if t.language == language:
            return t.text
        if not t.language or not chosen:
            chosen = t.text
    return chosen
