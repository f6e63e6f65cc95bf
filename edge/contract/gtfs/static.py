"""A static GTFS feed read row by row and checked, every problem named by file, line and column.

`GtfsReader(source).read()` yields the tables in dependency order (agency, stops, routes,
calendar, calendar_dates, shapes, trips, stop_times, frequencies) as chunks of typed rows, in
the column order of `TABLES`. It checks, as it goes, what the GTFS reference
(gtfs.org/documentation/schedule/reference) requires and what a control room relies on:

- the required files (agency, stops, routes, trips, stop_times, and calendar or calendar_dates)
  and their required columns;
- UTF-8 (a byte-order mark is allowed, as the reference says; UTF-16 and Latin-1 are not);
- every value's form: ids, `H:MM:SS` times (past 24:00 allowed), `YYYYMMDD` dates, enums,
  colours, numbers;
- unique ids, and references to ids of earlier files (a trip's route and service, a stop time's
  trip and stop, ...);
- coordinates inside the service area, with a hint when latitude and longitude look swapped;
- within a trip, times that never go back, and a time at its first and last stop.

A problem does not stop the reading: up to `max_problems` are collected, so one run shows a
publisher most of what to fix. Once there is one, no more rows are yielded (the consumer is
going to throw them away). The consumer raises `FeedError(reader.problems)` when the read ends.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from edge.contract.gtfs.times import parse_date, parse_time
from edge.contract.kinds import STRING_PATTERN

MAX_ID_CHARS = 255  # the contract's string fields that carry GTFS ids hold at most this
DEFAULT_MAX_PROBLEMS = 50
CHUNK_ROWS = 20_000
REQUIRED_FILES = ("agency.txt", "stops.txt", "routes.txt", "trips.txt", "stop_times.txt")
CALENDAR_FILES = ("calendar.txt", "calendar_dates.txt")  # at least one of them
_PLAIN_TEXT = re.compile(STRING_PATTERN)
_MISS: Any = object()  # a value that could not be parsed (the problem is reported)
_MAX_CACHED = 200_000  # per column: bounded memory whatever the feed
_COLOR = re.compile(r"[0-9A-Fa-f]{6}")
# Python's int() and float() also take "1_000", " 7", other scripts' digits, "nan" and "inf".
_INTEGER = re.compile(r"-?[0-9]+")
_DECIMAL = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


@dataclass(frozen=True, slots=True)
class Area:
    """A WGS84 box, GeoJSON `bbox` order: stops and shapes outside it are refused as typos."""

    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float

    def contains(self, lon: float, lat: float) -> bool:
        return self.min_lon <= lon <= self.max_lon and self.min_lat <= lat <= self.max_lat

    def __str__(self) -> str:
        return f"{self.min_lon:g}..{self.max_lon:g} E, {self.min_lat:g}..{self.max_lat:g} N"


@dataclass(frozen=True, slots=True)
class FeedProblem:
    """What is wrong, where: `line` 0 means the file as a whole."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" if self.line else f"{self.file}: {self.message}"


class FeedError(ValueError):
    """A feed that cannot be used; `problems` says every reason found, with file and line."""

    def __init__(self, problems: list[FeedProblem], *, truncated: bool = False) -> None:
        self.problems = problems
        self.truncated = truncated
        more = f"\n... and more (stopped after {len(problems)})" if truncated else ""
        super().__init__("\n".join(str(p) for p in problems) + more)


class _BadValueError(ValueError):
    """A value's problem, phrased to follow `column 'value'`."""


# ---------------------------------------------------------------------------------------------
# Values. Each parser takes the stripped text (never empty: emptiness is handled by the caller).


def _id(text: str) -> str:
    if len(text) > MAX_ID_CHARS:
        raise _BadValueError(f"is longer than {MAX_ID_CHARS} characters")
    if _PLAIN_TEXT.match(text) is None:
        raise _BadValueError("contains control characters")
    return text


def _text(text: str) -> str:
    if _PLAIN_TEXT.match(text) is None:
        raise _BadValueError("contains control characters")
    return text


def _int_in(lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if _INTEGER.fullmatch(text) is None:
            raise _BadValueError("is not an integer")
        value = int(text)
        if not lo <= value <= hi:
            raise _BadValueError(f"is not in {lo}..{hi}")
        return value

    return parse


def _choice(*allowed: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text) if _INTEGER.fullmatch(text) else None
        if value not in allowed:
            raise _BadValueError(f"is not one of {', '.join(map(str, allowed))}")
        return value

    return parse


def _float_from(lo: float, hi: float, what: str = "a number") -> Callable[[str], float]:
    def parse(text: str) -> float:
        if _DECIMAL.fullmatch(text) is None:
            raise _BadValueError(f"is not {what}")
        value = float(text)
        if not lo <= value <= hi:
            raise _BadValueError(f"is not in {lo:g}..{hi:g}")
        return value

    return parse


def _time(text: str) -> int:
    try:
        return parse_time(text)
    except ValueError as exc:
        raise _BadValueError(str(exc)) from None


def _date(text: str) -> str:
    try:
        parse_date(text)
    except ValueError as exc:
        raise _BadValueError(str(exc)) from None
    return text


def _color(text: str) -> str:
    if _COLOR.fullmatch(text) is None:
        raise _BadValueError("is not a six-digit hex colour")
    return text.upper()


def _timezone(text: str) -> str:
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise _BadValueError("is not an IANA time zone (e.g. Europe/Rome)") from None
    return text


def _route_type(text: str) -> int:
    # Basic types 0-12 and the extended (Hierarchical Vehicle Type) codes 100-1799.
    value = _int_in(0, 1799)(text)
    if 12 < value < 100:
        raise _BadValueError("is neither a basic (0-12) nor an extended (100-1799) route type")
    return value


_DIST = _float_from(0.0, 1e9, "a distance")
_LAT = _float_from(-90.0, 90.0, "a latitude")
_LON = _float_from(-180.0, 180.0, "a longitude")
_FLAG = _choice(0, 1)
_UNCACHED = (_LAT, _LON, _DIST)

Parser = Callable[[str], Any]


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    parse: Parser
    required: bool = False  # the column must be in the header and every row must fill it
    # Ids, times and codes repeat from row to row: their parsed values are remembered by text.
    # Coordinates and distances rarely do.
    cached: bool = True


@dataclass(frozen=True, slots=True)
class Table:
    """One GTFS file: its columns, in the order of the rows `read()` yields."""

    name: str  # the file's name without `.txt`, also the importer's table
    columns: tuple[Column, ...]
    key: tuple[str, ...]  # unique within the feed

    @property
    def file(self) -> str:
        return f"{self.name}.txt"

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


def _cols(*spec: tuple[str, Parser] | tuple[str, Parser, bool]) -> tuple[Column, ...]:
    return tuple(
        Column(s[0], s[1], required=len(s) > 2 and bool(s[2]), cached=s[1] not in _UNCACHED) for s in spec
    )


_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "agency",
            _cols(
                ("agency_id", _id),
                ("agency_name", _text, True),
                ("agency_url", _text, True),
                ("agency_timezone", _timezone, True),
                ("agency_lang", _text),
                ("agency_phone", _text),
            ),
            ("agency_id",),
        ),
        Table(
            "stops",
            _cols(
                ("stop_id", _id, True),
                ("stop_code", _text),
                ("stop_name", _text),
                ("stop_lat", _LAT),
                ("stop_lon", _LON),
                ("location_type", _int_in(0, 4)),
                ("parent_station", _id),
                ("wheelchair_boarding", _int_in(0, 2)),
                ("platform_code", _text),
            ),
            ("stop_id",),
        ),
        Table(
            "routes",
            _cols(
                ("route_id", _id, True),
                ("agency_id", _id),
                ("route_short_name", _text),
                ("route_long_name", _text),
                ("route_type", _route_type, True),
                ("route_color", _color),
                ("route_text_color", _color),
            ),
            ("route_id",),
        ),
        Table(
            "calendar",
            _cols(
                ("service_id", _id, True),
                *((day, _FLAG, True) for day in _DAYS),
                ("start_date", _date, True),
                ("end_date", _date, True),
            ),
            ("service_id",),
        ),
        Table(
            "calendar_dates",
            _cols(("service_id", _id, True), ("date", _date, True), ("exception_type", _choice(1, 2), True)),
            ("service_id", "date"),
        ),
        Table(
            "shapes",
            _cols(
                ("shape_id", _id, True),
                ("shape_pt_sequence", _int_in(0, 2**31 - 1), True),
                ("shape_pt_lat", _LAT, True),
                ("shape_pt_lon", _LON, True),
                ("shape_dist_traveled", _DIST),
            ),
            ("shape_id", "shape_pt_sequence"),
        ),
        Table(
            "trips",
            _cols(
                ("trip_id", _id, True),
                ("route_id", _id, True),
                ("service_id", _id, True),
                ("trip_headsign", _text),
                ("trip_short_name", _text),
                ("direction_id", _FLAG),
                ("block_id", _id),
                ("shape_id", _id),
                ("wheelchair_accessible", _int_in(0, 2)),
            ),
            ("trip_id",),
        ),
        Table(
            "stop_times",
            _cols(
                ("trip_id", _id, True),
                ("stop_sequence", _int_in(0, 2**31 - 1), True),
                ("stop_id", _id, True),
                ("arrival_time", _time),
                ("departure_time", _time),
                ("stop_headsign", _text),
                ("pickup_type", _int_in(0, 3)),
                ("drop_off_type", _int_in(0, 3)),
                ("shape_dist_traveled", _DIST),
                ("timepoint", _FLAG),
            ),
            ("trip_id", "stop_sequence"),
        ),
        Table(
            "frequencies",
            _cols(
                ("trip_id", _id, True),
                ("start_time", _time, True),
                ("end_time", _time, True),
                ("headway_secs", _int_in(1, 86_400), True),
                ("exact_times", _FLAG),
            ),
            ("trip_id", "start_time"),
        ),
    )
}


# ---------------------------------------------------------------------------------------------
# Sources: a zip (path or bytes) or a folder of .txt files.


class _Source:
    def __init__(self, source: Path | bytes) -> None:
        self._zip: zipfile.ZipFile | None = None
        self._dir: Path | None = None
        if isinstance(source, bytes):
            self._zip = _open_zip(io.BytesIO(source), "the feed")
        elif source.is_dir():
            self._dir = source
        else:
            self._zip = _open_zip(source, source.name)

    def names(self) -> set[str]:
        if self._zip is not None:
            # Files in a subfolder of the zip are a common publishing mistake: GTFS wants them
            # at the root, and so do we (a folder could hold two feeds).
            return {n for n in self._zip.namelist() if "/" not in n}
        assert self._dir is not None
        return {p.name for p in self._dir.iterdir() if p.is_file()}

    def nested(self) -> list[str]:
        if self._zip is None:
            return []
        return sorted(n for n in self._zip.namelist() if "/" in n and n.endswith(".txt"))

    def open(self, name: str) -> IO[bytes]:
        if self._zip is not None:
            return self._zip.open(name)
        assert self._dir is not None
        return (self._dir / name).open("rb")

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


def _open_zip(file: IO[bytes] | Path, what: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError) as exc:
        raise FeedError([FeedProblem(str(what), 0, f"is not a zip archive ({exc})")]) from None


class _EncodingError(Exception):  # internal: caught below, where the file is known
    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.message = message


def _decoded(stream: IO[bytes]) -> io.TextIOWrapper:
    """The file as text: UTF-8, a byte-order mark dropped (the reference allows one).

    Decoding happens in large blocks (the C codec); when it fails, `_bad_utf8` finds the line
    and column by reading the bytes again, which only a broken feed pays for."""
    return io.TextIOWrapper(cast(BinaryIO, stream), encoding="utf-8-sig", newline="")


def _bad_utf8(stream: IO[bytes]) -> _EncodingError:
    """Where the first byte that is not UTF-8 is: line, column and the byte."""
    for number, raw in enumerate(stream, 1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            column = len(raw[: exc.start].decode("utf-8", errors="replace")) + 1
            return _EncodingError(
                number,
                f"byte 0x{raw[exc.start]:02x} at column {column} is not UTF-8 (GTFS files are UTF-8; "
                "was it saved as Latin-1 or Windows-1252?)",
            )
    return _EncodingError(0, "is not UTF-8")


# ---------------------------------------------------------------------------------------------
# The reader.


@dataclass(slots=True)
class _TripSpan:
    """A trip's first and last stop time seen so far, for the times-at-both-ends check."""

    line: int
    first_seq: int
    first_timed: bool
    last_seq: int
    last_timed: bool
    last_line: int
    last_time: int | None  # the departure (or arrival) of the last timed stop seen
    stops: int = 1


@dataclass(slots=True)
class GtfsReader:
    source: Path | bytes
    area: Area | None = None
    max_problems: int = DEFAULT_MAX_PROBLEMS
    chunk_rows: int = CHUNK_ROWS
    problems: list[FeedProblem] = field(default_factory=list)
    truncated: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    timezone: str | None = None
    # Ids seen, for the references of later files.
    _ids: dict[str, dict[Any, int]] = field(default_factory=dict)
    _trips: dict[str, _TripSpan] = field(default_factory=dict)
    _parents: list[tuple[int, str]] = field(default_factory=list)

    def problem(self, file: str, line: int, message: str) -> None:
        if len(self.problems) >= self.max_problems:
            self.truncated = True
            raise _EnoughError
        self.problems.append(FeedProblem(file, line, message))

    def error(self) -> FeedError:
        return FeedError(self.problems, truncated=self.truncated)

    def read(self) -> Iterator[tuple[Table, list[tuple[Any, ...]]]]:
        """The feed's tables as (table, rows) chunks; check `problems` when it ends."""
        src = _Source(self.source)
        try:
            names = src.names()
            headers = self._structure(src, names)
            if self.problems:
                return
            for table in TABLES.values():
                if table.file in headers:
                    yield from self._table(src, table, headers[table.file])
            self._finish()
        except _EnoughError:
            return
        finally:
            src.close()

    # -- structure: files and headers --------------------------------------------------------

    def _structure(self, src: _Source, names: set[str]) -> dict[str, list[str]]:
        for nested in src.nested():
            self.problem(nested, 0, "is in a folder of the zip; GTFS files belong at its root")
        for file in REQUIRED_FILES:
            if file not in names:
                self.problem(file, 0, "required file missing")
        if not any(f in names for f in CALENDAR_FILES):
            self.problem("calendar.txt", 0, "required file missing (or calendar_dates.txt)")
        headers: dict[str, list[str]] = {}
        for table in TABLES.values():
            if table.file in names:
                header = self._header(src, table)
                if header is not None:
                    headers[table.file] = header
        return headers

    def _header(self, src: _Source, table: Table) -> list[str] | None:
        with src.open(table.file) as stream:
            if stream.read(2) in (b"\xff\xfe", b"\xfe\xff"):
                self.problem(table.file, 1, "is UTF-16 (byte-order mark); GTFS files are UTF-8")
                return None
        with src.open(table.file) as stream, _decoded(stream) as decoded:
            try:
                header = next(csv.reader(decoded), None)
            except UnicodeDecodeError:
                with src.open(table.file) as again:
                    exc2 = _bad_utf8(again)
                self.problem(table.file, exc2.line, exc2.message)
                return None
            except csv.Error as exc:
                self.problem(table.file, 1, f"header is not CSV: {exc}")
                return None
        if header is None:
            self.problem(table.file, 1, "is empty; a header line is required")
            return None
        header = [h.strip() for h in header]
        seen: set[str] = set()
        for name in header:
            if name in seen:
                self.problem(table.file, 1, f"column {name} appears twice")
            seen.add(name)
        for column in table.columns:
            if column.required and column.name not in seen:
                self.problem(table.file, 1, f"required column {column.name} missing")
        return header

    # -- rows --------------------------------------------------------------------------------

    def _table(
        self, src: _Source, table: Table, header: list[str]
    ) -> Iterator[tuple[Table, list[tuple[Any, ...]]]]:
        file = table.file
        where = {name: i for i, name in enumerate(header)}
        plan: list[tuple[Column, int | None, dict[str, Any] | None]] = [
            (c, where.get(c.name), {} if c.cached else None) for c in table.columns
        ]
        width = len(header)
        check = getattr(self, f"_check_{table.name}")
        seen = self._ids.setdefault(table.name, {})
        key_width = len(table.key)
        chunk: list[tuple[Any, ...]] = []
        count = 0
        with src.open(file) as stream, _decoded(stream) as decoded:
            reader = csv.reader(decoded)
            try:
                next(reader)  # the header, checked already
                for raw in reader:
                    if len(raw) <= 1 and not "".join(raw).strip():
                        continue  # a blank line (often the last one)
                    line = reader.line_num
                    row = self._row(file, line, raw, plan, width)
                    if row is None:
                        continue
                    key = row[0] if key_width == 1 else row[:key_width]
                    if key in seen:
                        shown = key if isinstance(key, str) else ", ".join(map(str, key))
                        self.problem(file, line, f"{'/'.join(table.key)} '{shown}' repeats line {seen[key]}")
                        continue
                    seen[key] = line
                    if not check(line, row):
                        continue
                    count += 1
                    if not self.problems:
                        chunk.append(row)
                        if len(chunk) >= self.chunk_rows:
                            yield table, chunk
                            chunk = []
            except UnicodeDecodeError:
                with src.open(file) as again:
                    bad = _bad_utf8(again)
                self.problem(file, bad.line, bad.message)
            except csv.Error as exc:
                self.problem(file, reader.line_num, f"is not valid CSV: {exc}")
        self.counts[table.name] = count
        if chunk and not self.problems:
            yield table, chunk

    def _row(
        self,
        file: str,
        line: int,
        raw: list[str],
        plan: list[tuple[Column, int | None, dict[str, Any] | None]],
        width: int,
    ) -> tuple[Any, ...] | None:
        n = len(raw)
        if n > width:
            self.problem(file, line, f"{n} values, but the header names {width} columns")
            return None
        values: list[Any] = []
        add = values.append
        ok = True
        for column, i, cache in plan:
            text = raw[i] if i is not None and i < n else ""
            if cache is not None:
                value = cache.get(text, _MISS)
                if value is not _MISS:
                    add(value)
                    continue
            value = self._value(file, line, column, text)
            if value is _MISS:
                ok = False
                value = None
            elif cache is not None and len(cache) < _MAX_CACHED:
                cache[text] = value
            add(value)
        return tuple(values) if ok else None

    def _value(self, file: str, line: int, column: Column, text: str) -> Any:
        """The parsed value, None for an empty optional one, or _MISS after reporting why not."""
        stripped = text.strip()
        if not stripped:
            if column.required:
                self.problem(file, line, f"{column.name} is required")
                return _MISS
            return None
        try:
            return column.parse(stripped)
        except _BadValueError as bad:
            self.problem(file, line, f"{column.name} {stripped!r} {bad}")
            return _MISS

    def _known(self, table: str, key: Any) -> bool:
        return key in self._ids.get(table, ())

    # -- per-table checks: True keeps the row ---------------------------------------------------

    def _check_agency(self, line: int, row: tuple[Any, ...]) -> bool:
        tz = row[3]
        if self.timezone is None:
            self.timezone = tz
        elif tz != self.timezone:
            self.problem("agency.txt", line, f"agency_timezone {tz!r} differs from {self.timezone!r}")
            return False
        return True

    def _check_stops(self, line: int, row: tuple[Any, ...]) -> bool:
        _stop_id, _code, name, lat, lon, location_type, parent = row[:7]
        if (location_type or 0) <= 2:  # stops, stations and entrances are on the map
            for column, value in (("stop_name", name), ("stop_lat", lat), ("stop_lon", lon)):
                if value is None:
                    self.problem("stops.txt", line, f"{column} is required for location_type 0, 1 and 2")
                    return False
        if lat is not None and lon is not None and not self._in_area("stops.txt", line, lon, lat):
            return False
        if parent is not None:
            self._parents.append((line, parent))
        return True

    def _in_area(self, file: str, line: int, lon: float, lat: float) -> bool:
        if self.area is None or self.area.contains(lon, lat):
            return True
        hint = "; swapped, they would be inside: are latitude and longitude exchanged?"
        swapped = self.area.contains(lat, lon)
        self.problem(
            file,
            line,
            f"coordinates {lat:g}, {lon:g} (lat, lon) are outside the area ({self.area})"
            + (hint if swapped else ""),
        )
        return False

    def _check_routes(self, line: int, row: tuple[Any, ...]) -> bool:
        _route_id, agency_id, short_name, long_name = row[:4]
        agencies = self._ids.get("agency", {})
        if agency_id is not None and not self._known("agency", agency_id):
            self.problem("routes.txt", line, f"agency_id {agency_id!r} is not in agency.txt")
            return False
        if agency_id is None and len(agencies) > 1:
            self.problem("routes.txt", line, "agency_id is required when agency.txt has several agencies")
            return False
        if short_name is None and long_name is None:
            self.problem("routes.txt", line, "route_short_name or route_long_name is required")
            return False
        return True

    def _check_calendar(self, line: int, row: tuple[Any, ...]) -> bool:
        start, end = row[8], row[9]
        if end < start:
            self.problem("calendar.txt", line, f"end_date {end} is before start_date {start}")
            return False
        return True

    def _check_calendar_dates(self, line: int, row: tuple[Any, ...]) -> bool:
        del line, row
        return True

    def _check_shapes(self, line: int, row: tuple[Any, ...]) -> bool:
        return self._in_area("shapes.txt", line, row[3], row[2])

    def _check_trips(self, line: int, row: tuple[Any, ...]) -> bool:
        route_id, service_id, shape_id = row[1], row[2], row[7]
        if not self._known("routes", route_id):
            self.problem("trips.txt", line, f"route_id {route_id!r} is not in routes.txt")
            return False
        if not self._known("calendar", service_id) and not self._service_in_dates(service_id):
            self.problem(
                "trips.txt",
                line,
                f"service_id {service_id!r} is in neither calendar.txt nor calendar_dates.txt",
            )
            return False
        if shape_id is not None and not self._known_shape(shape_id):
            self.problem("trips.txt", line, f"shape_id {shape_id!r} is not in shapes.txt")
            return False
        return True

    def _service_in_dates(self, service_id: str) -> bool:
        services = self._ids.get("_date_services")
        if services is None:
            services = self._ids["_date_services"] = {
                key[0]: line for key, line in self._ids.get("calendar_dates", {}).items()
            }
        return service_id in services

    def _known_shape(self, shape_id: str) -> bool:
        shapes = self._ids.get("_shape_ids")
        if shapes is None:
            shapes = self._ids["_shape_ids"] = {
                key[0]: line for key, line in self._ids.get("shapes", {}).items()
            }
        return shape_id in shapes

    def _check_stop_times(self, line: int, row: tuple[Any, ...]) -> bool:
        trip_id, seq, stop_id, arrival, departure = row[:5]
        if trip_id not in self._ids["trips"]:
            self.problem("stop_times.txt", line, f"trip_id {trip_id!r} is not in trips.txt")
            return False
        if stop_id not in self._ids["stops"]:
            self.problem("stop_times.txt", line, f"stop_id {stop_id!r} is not in stops.txt")
            return False
        if arrival is not None and departure is not None and departure < arrival:
            self.problem("stop_times.txt", line, f"departure_time is before arrival_time {_hms(arrival)}")
            return False
        timed = arrival is not None or departure is not None
        leaves = departure if departure is not None else arrival
        span = self._trips.get(trip_id)
        if span is None:
            self._trips[trip_id] = _TripSpan(line, seq, timed, seq, timed, line, leaves)
            return True
        span.stops += 1
        if seq > span.last_seq:
            # Rows in sequence order (as almost every feed writes them): times never go back.
            comes = arrival if arrival is not None else departure
            if comes is not None and span.last_time is not None and comes < span.last_time:
                self.problem(
                    "stop_times.txt",
                    line,
                    f"arrival_time {_hms(comes)} is before the previous stop's {_hms(span.last_time)}",
                )
                return False
            span.last_seq, span.last_timed, span.last_line = seq, timed, line
            if leaves is not None:
                span.last_time = leaves
        if seq < span.first_seq:
            span.first_seq, span.first_timed, span.line = seq, timed, line
        return True

    def _check_frequencies(self, line: int, row: tuple[Any, ...]) -> bool:
        trip_id, start, end = row[:3]
        if not self._known("trips", trip_id):
            self.problem("frequencies.txt", line, f"trip_id {trip_id!r} is not in trips.txt")
            return False
        if end <= start:
            self.problem(
                "frequencies.txt", line, f"end_time {_hms(end)} is not after start_time {_hms(start)}"
            )
            return False
        return True

    def _finish(self) -> None:
        stops = self._ids.get("stops", {})
        for line, parent in self._parents:
            if parent not in stops:
                self.problem("stops.txt", line, f"parent_station {parent!r} is not in stops.txt")
        for trip_id, line in self._ids.get("trips", {}).items():
            span = self._trips.get(trip_id)
            if span is None or span.stops < 2:
                self.problem("trips.txt", line, f"trip_id {trip_id!r} has fewer than two stop_times")
            elif not span.first_timed:
                self.problem("stop_times.txt", span.line, f"the first stop of trip {trip_id!r} needs a time")
            elif not span.last_timed:
                self.problem(
                    "stop_times.txt", span.last_line, f"the last stop of trip {trip_id!r} needs a time"
                )


class _EnoughError(Exception):  # internal: max_problems reached, stop reading
    pass


def _hms(seconds: int) -> str:
    h, rest = divmod(seconds, 3600)
    return f"{h:02d}:{rest // 60:02d}:{rest % 60:02d}"
