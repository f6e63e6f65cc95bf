"""GTFS and GTFS-Realtime: the public-transport formats that both sides speak.

The feed simulator (`edge`) and the importer and feed reader (`cloud`) share these codecs, and
`cloud` may import nothing of `edge` but `edge.contract` (tests/test_architecture.py), so they
live here. `edge.contract`'s own `__init__` does not import this package: a gateway never loads
protobuf (docs/decisions/0010-transit-feeds.md).

- `static.py`: a GTFS zip read row by row, checked, with every problem named by file, line
  and column (`stop_times.txt:1042: arrival_time '25:61:00' is not HH:MM:SS`).
- `times.py`: GTFS times past midnight and service days ("noon minus 12 h").
- `ids.py`: GTFS ids (any text) to contract ids and tag values, deterministically.
- `realtime.py`: GTFS-Realtime protobuf (`gtfs-realtime-bindings`) parsed, and its enums named.
"""
