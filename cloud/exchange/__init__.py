"""Data exchange with partners in their standards: NGSI-LD entities in the FIWARE Smart Data Models.

Out: every entity the Situation Room knows (car parks, bays, counters, vehicles, worksites) as
`OffStreetParking`, `ParkingSpot`, `TrafficFlowObserved`, `Vehicle` / `FleetVehicleStatus` and
`CityWork`, exported (`sitroom exchange export`) or upserted to a context broker (`publisher.py`).
In: NGSI-LD notifications of the same types and `EVChargingStation`, mapped into readings that
go through ingest's own verdict (`receiver.py`). docs/exchange.md has the mapping per type.
"""
