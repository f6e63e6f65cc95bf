"""The wire contract: the only surface of `edge` that `gateway` and `cloud` import."""

from edge.contract import topics
from edge.contract.batch import SCHEMA_VERSION, Batch, Envelope
from edge.contract.broker import BrokerAddress
from edge.contract.codec import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    DecodedBatch,
    RejectedReading,
    decode,
    decode_strict,
    encode,
    format_ts,
    loads,
    schema_error,
)
from edge.contract.errors import (
    ContractError,
    DecodeError,
    PayloadTooLargeError,
    SchemaError,
    TopicError,
    short_repr,
)
from edge.contract.ids import ID_PATTERN, TAG_VALUE_PATTERN, Id, is_id
from edge.contract.kinds import KINDS, FieldSpec, KindSpec, SensorKind
from edge.contract.meta import (
    UNLISTED_DEVICE_PATTERN,
    GatewayMeta,
    SensorMeta,
    decode_meta,
    encode_meta,
)
from edge.contract.reading import Reading, SeriesKey, to_utc_ms

__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "ID_PATTERN",
    "KINDS",
    "SCHEMA_VERSION",
    "TAG_VALUE_PATTERN",
    "UNLISTED_DEVICE_PATTERN",
    "Batch",
    "BrokerAddress",
    "ContractError",
    "DecodeError",
    "DecodedBatch",
    "Envelope",
    "FieldSpec",
    "GatewayMeta",
    "Id",
    "KindSpec",
    "PayloadTooLargeError",
    "Reading",
    "RejectedReading",
    "SchemaError",
    "SensorKind",
    "SensorMeta",
    "SeriesKey",
    "TopicError",
    "decode",
    "decode_meta",
    "decode_strict",
    "encode",
    "encode_meta",
    "format_ts",
    "is_id",
    "loads",
    "schema_error",
    "short_repr",
    "to_utc_ms",
    "topics",
]
