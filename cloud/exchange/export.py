"""The catalogue as NGSI-LD entities, in either form: what `sitroom exchange export` writes."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from cloud.exchange.catalogue import Catalogue
from cloud.exchange.entities import NotExportableError, city_work, entities_of
from cloud.exchange.forms import Entity


class Form(StrEnum):
    KEY_VALUES = "keyvalues"
    NORMALIZED = "normalized"


@dataclass(slots=True)
class Export:
    entities: list[Entity] = field(default_factory=list)
    skipped: list[NotExportableError] = field(default_factory=list)

    def documents(self, form: Form) -> list[dict[str, Any]]:
        return [e.key_values() if form is Form.KEY_VALUES else e.normalized() for e in self.entities]

    def to_json(self, form: Form) -> bytes:
        return orjson.dumps(self.documents(form), option=orjson.OPT_INDENT_2) + b"\n"


def export(catalogue: Catalogue) -> Export:
    out = Export()
    for thing in catalogue.things:
        try:
            out.entities += entities_of(thing)
        except NotExportableError as exc:
            out.skipped.append(exc)
    out.entities += [city_work(ws) for ws in catalogue.worksites]
    return out


__all__ = ["Export", "Form", "export"]
