"""Identifier and tag-value rules shared by topics, readings and line protocol.

Ids appear in MQTT topics and InfluxDB tags, so they are kept to a charset that needs no
escaping anywhere (`[a-z0-9-]`). Tag values may carry a little more, but never the
characters that structure line protocol or topics (space, comma, `=`, quotes, newline, `/+#`).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import StringConstraints

ID_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,62})$"
# ASCII spelled out: `\w` means Unicode to Python and pydantic but ASCII to JSON Schema tools.
TAG_VALUE_PATTERN = r"^[A-Za-z0-9_.:@-]{1,64}$"
TAG_KEY_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"

ID_RE = re.compile(ID_PATTERN)

# Words that would make `sr/v1/{org}/...` ambiguous with the non-gateway topic trees.
RESERVED_ORGS = frozenset({"alerts", "deadletter", "services"})

Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
TagKey = Annotated[str, StringConstraints(pattern=TAG_KEY_PATTERN)]
TagValue = Annotated[str, StringConstraints(pattern=TAG_VALUE_PATTERN)]


def is_id(value: str) -> bool:
    return ID_RE.fullmatch(value) is not None
