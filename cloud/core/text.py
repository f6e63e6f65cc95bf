"""Text from outside, as every feature accepts it: Unicode scalar values only.

JSON may spell a lone UTF-16 surrogate (`"\\ud800"`), and Python's `json` hands it over as a
`str` that no UTF-8 encoder will write: the database, the history's JSON and the response all
fail on it later, far from the field that carried it. Refused at the door, it is a 422 that names
the field (issue 18 point 12).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

_SURROGATE = re.compile("[\ud800-\udfff]")


def refuse_lone_surrogates(value: str) -> str:
    found = _SURROGATE.search(value)
    if found is not None:
        raise ValueError(
            f"contains a lone UTF-16 surrogate (U+{ord(found.group()):04X}) at character {found.start()}, "
            "which is not Unicode text"
        )
    return value


UnicodeStr = Annotated[str, AfterValidator(refuse_lone_surrogates)]
