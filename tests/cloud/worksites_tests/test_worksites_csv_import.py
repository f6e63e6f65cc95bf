"""CSV import of a utility's spreadsheet through a column mapping: all rows or none."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cloud.worksites.csv_import import ColumnMapping, MappingError, read_csv
from cloud.worksites.models import InvalidWorksiteError

MAPPING = ColumnMapping(
    columns={
        "title": "Descrizione",
        "street": "Via",
        "planned_start": "Inizio",
        "planned_end": "Fine",
        "lat": "Lat",
        "lon": "Lon",
        "permit_ref": "Protocollo",
        "lanes_closed": "Corsie chiuse",
        "road_closed": "Chiusura totale",
    },
    defaults={"work_type": "water", "owner": "publiacqua"},
    delimiter=";",
)

SHEET = """Descrizione;Via;Inizio;Fine;Lat;Lon;Protocollo;Corsie chiuse;Chiusura totale
Riparazione perdita;Via Bologna;01/12/2026 08:00;03/12/2026;43.8900;11.0960;PG-1;1;no
Nuovo allaccio;Via Roma;2026-12-10T07:30:00+01:00;2026-12-11T17:00:00+01:00;43.8731;11.0932;;0;sì
"""


def test_a_spreadsheet_with_italian_columns_and_dates_imports_through_the_mapping() -> None:
    first, second = read_csv(SHEET, MAPPING)
    assert first.title == "Riparazione perdita"
    assert first.owner == "publiacqua"
    assert first.work_type.value == "water"
    assert first.planned_start == datetime(2026, 12, 1, 7, 0, tzinfo=UTC)  # 08:00 in Rome (CET)
    assert first.geometry == {"type": "Point", "coordinates": [11.096, 43.89]}
    assert first.impact.lanes_closed == 1
    assert not first.impact.road_closed
    assert first.permit_ref == "PG-1"
    assert second.impact.road_closed
    assert second.permit_ref is None


def test_bad_rows_are_each_named_by_row_field_and_column_and_nothing_is_returned() -> None:
    sheet = SHEET + "Scavo;Via Pistoiese;31/12/2026;01/12/2026;43.885;11.082;;x;no\n"
    sheet += "Scavo;;01/12/2026;02/12/2026;11.082;43.885;;0;no\n"
    with pytest.raises(InvalidWorksiteError) as caught:
        read_csv(sheet, MAPPING)
    messages = [f"{p.field}: {p.message}" for p in caught.value.problems]
    assert any(m.startswith("row 4: lanes_closed") for m in messages), messages
    assert any(m.startswith("row 5: street (column 'Via')") for m in messages), messages
    with pytest.raises(InvalidWorksiteError) as caught:
        read_csv(SHEET + "Scavo;Via Pistoiese;31/12/2026;01/12/2026;43.885;11.082;;0;no\n", MAPPING)
    assert [p.field for p in caught.value.problems] == ["row 4: planned_end (column 'Fine')"]


def test_a_mapping_naming_columns_the_file_lacks_is_refused_with_the_header() -> None:
    with pytest.raises(InvalidWorksiteError, match="Protocollo") as caught:
        read_csv("Descrizione;Via;Inizio;Fine;Lat;Lon\n", MAPPING)
    assert caught.value.problems[0].field == "header"


def test_a_mapping_with_unknown_fields_or_no_geometry_is_refused() -> None:
    with pytest.raises(MappingError, match="colour"):
        ColumnMapping(columns={"colour": "Colore", "geometry": "Geo"})
    with pytest.raises(MappingError, match="geometry"):
        ColumnMapping(columns={"title": "Titolo"})


def test_geometry_columns_may_hold_wkt_or_geojson() -> None:
    mapping = ColumnMapping(
        columns={"title": "t", "street": "s", "planned_start": "a", "planned_end": "b", "geometry": "g"},
        defaults={"work_type": "gas"},
    )
    sheet = (
        't,s,a,b,g\nA,Via Roma,2026-12-01,2026-12-02,"LINESTRING (11.093 43.873, 11.0935 43.876)"\n'
        'B,Via Roma,2026-12-01,2026-12-02,"{""type"": ""Point"", ""coordinates"": [11.093, 43.873]}"\n'
    )
    a, b = read_csv(sheet, mapping)
    assert a.geometry["type"] == "LineString"
    assert b.geometry == {"type": "Point", "coordinates": [11.093, 43.873]}
