"""Data exchange with partners in their standards: NGSI-LD entities in the FIWARE Smart Data Models.

Out: every entity the Situation Room knows (car parks, bays, counters, vehicles, worksites) as
`OffStreetParking`, `ParkingSpot`, `TrafficFlowObserved`, `Vehicle` / `FleetVehicleStatus` and
`CityWork`, exported (`sitroom exchange export`) or upserted to a context broker (`publisher.py`).
In: NGSI-LD notifications of the same types and `EVChargingStation`, mapped into readings that
go through ingest's own admission (`receiver.py`, through `core.intake.Intake`). A feature: it
imports `core` and `io` only; `cloud/apps/` hands it its sources and ingest. docs/exchange.md
has the mapping per type.
"""
