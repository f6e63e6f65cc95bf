"""The GTFS-Realtime feed reader: poll an operator's feeds, turn them into contract readings.

`reader.TransitReader` ties the parts: `poller` (HTTP with conditional requests and back-off),
`entities` (FULL_DATASET and DIFFERENTIAL made one view), `timetable` (the static feed it checks
references against), `vehicles` and `delays` (readings), `alerts` (service alerts kept),
`outbox` (batches with a persistent seq, written before they are published) and `publisher`
(MQTT). docs/decisions/0010-transit-feeds.md says why it is shaped so.
"""
