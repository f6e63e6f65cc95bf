"""Real places of Prato the simulators use: parking facilities, traffic counter sites and fleet routes."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

# Coordinates are WGS84 (lat, lon), read off a map to within a few tens of metres: good
# enough for a dashboard map, not for surveying.
LatLon = tuple[float, float]

# Everything simulated lies inside this box around the city (Prato and the Gonfienti
# interporto); a test holds every place to it so a typo in a digit cannot wander off to sea.
CITY_BOX = (43.84, 11.04, 43.92, 11.16)  # south, west, north, east

# The historic centre inside the hexagon of the 14th-century walls, approximated by a
# circle around Piazza del Duomo: vehicles crawl there (ZTL, narrow streets, pedestrians).
CENTRO_STORICO: LatLon = (43.8808, 11.0970)
CENTRO_STORICO_RADIUS_M = 650.0

EARTH_RADIUS_M = 6_371_008.8  # IUGG mean radius


def distance_m(a: LatLon, b: LatLon) -> float:
    """Great-circle (haversine) distance."""
    phi1, phi2 = math.radians(a[0]), math.radians(b[0])
    dphi = phi2 - phi1
    dlam = math.radians(b[1] - a[1])
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlam / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h))


def bearing_deg(a: LatLon, b: LatLon) -> float:
    """Initial great-circle bearing from a to b, degrees clockwise from true north, in [0, 360)."""
    phi1, phi2 = math.radians(a[0]), math.radians(b[0])
    dlam = math.radians(b[1] - a[1])
    y = math.sin(dlam) * math.cos(phi2)
    x = math.cos(phi1) * math.sin(phi2) - math.sin(phi1) * math.cos(phi2) * math.cos(dlam)
    return math.degrees(math.atan2(y, x)) % 360.0


def in_city_box(point: LatLon) -> bool:
    south, west, north, east = CITY_BOX
    return south <= point[0] <= north and west <= point[1] <= east


def in_centro_storico(point: LatLon) -> bool:
    return distance_m(point, CENTRO_STORICO) <= CENTRO_STORICO_RADIUS_M


@dataclass(frozen=True, slots=True)
class Zone:
    """A district; its `profile` names the daily parking curve in `profiles.PARKING_PROFILES`."""

    slug: str
    name: str
    profile: str


@dataclass(frozen=True, slots=True)
class ParkingFacility:
    slug: str
    name: str
    lat: float
    lon: float
    capacity: int
    zone: str
    profile: str  # which daily curve fills it: commuters, shoppers, visitors, workers...

    @property
    def point(self) -> LatLon:
        return (self.lat, self.lon)


@dataclass(frozen=True, slots=True)
class TrafficSite:
    """A counter site: loops under one road section, one lane and direction per sensor."""

    slug: str
    name: str
    lat: float
    lon: float
    road: str
    speed_limit_kmh: float
    heavy_share: float  # fraction of heavy vehicles (> 3.5 t) on a weekday

    @property
    def point(self) -> LatLon:
        return (self.lat, self.lon)


@dataclass(frozen=True, slots=True)
class Route:
    """A polyline a fleet vehicle drives, with how long it stops at each vertex.

    A loop joins the last point back to the first; otherwise the vehicle goes back and forth.
    """

    slug: str
    name: str
    vehicle_type: str  # the default `vehicle_type` tag of vehicles on this route
    points: tuple[LatLon, ...]
    dwell_s: tuple[float, ...]  # seconds stopped at each point: bus stop, bins, worksite
    is_loop: bool

    def __post_init__(self) -> None:
        if len(self.points) < 2:
            raise ValueError(f"route {self.slug}: needs at least two points")
        if len(self.dwell_s) != len(self.points):
            raise ValueError(
                f"route {self.slug}: {len(self.dwell_s)} dwell times for {len(self.points)} points"
            )
        legs = list(itertools.pairwise(self.points))
        if self.is_loop:
            legs.append((self.points[-1], self.points[0]))
        for a, b in legs:
            # A zero-length leg has no bearing, so heading would be undefined.
            if distance_m(a, b) < 1.0:
                raise ValueError(f"route {self.slug}: repeated point {a}")


ZONES: dict[str, Zone] = {
    z.slug: z
    for z in (
        Zone("centro", "Centro storico", "centre"),
        Zone("stazione", "Stazione Centrale", "station"),
        Zone("serraglio", "Porta al Serraglio", "station"),
        Zone("ospedale", "Ospedale Santo Stefano", "hospital"),
        Zone("gonfienti", "Interporto di Gonfienti", "workplace"),
        Zone("pecci", "Centro Pecci", "culture"),
        Zone("chinatown", "Via Pistoiese (Macrolotto zero)", "centre"),
    )
}

FACILITIES: dict[str, ParkingFacility] = {
    f.slug: f
    for f in (
        ParkingFacility("mercatale", "Piazza Mercatale", 43.8825, 11.1003, 520, "centro", "centre"),
        ParkingFacility(
            "stazione-centrale", "Parcheggio Stazione Centrale", 43.8782, 11.1079, 380, "stazione", "station"
        ),
        ParkingFacility(
            "serraglio", "Stazione Porta al Serraglio", 43.8868, 11.0952, 150, "serraglio", "station"
        ),
        ParkingFacility("castello", "Castello dell'Imperatore", 43.8787, 11.0989, 120, "centro", "centre"),
        ParkingFacility("ospedale", "Ospedale Santo Stefano", 43.8640, 11.0690, 1100, "ospedale", "hospital"),
        ParkingFacility(
            "interporto", "Interporto Gonfienti", 43.8520, 11.1370, 600, "gonfienti", "workplace"
        ),
        ParkingFacility(
            "buonamici", "Parcheggio Giardino Buonamici", 43.8845, 11.0935, 200, "centro", "centre"
        ),
        ParkingFacility("macelli", "Piazza Macelli", 43.8790, 11.0905, 250, "centro", "centre"),
        ParkingFacility("pecci", "Parcheggio Centro Pecci", 43.8658, 11.1085, 300, "pecci", "culture"),
        ParkingFacility("ciardi", "Piazza Ciardi", 43.8822, 11.0885, 180, "chinatown", "centre"),
    )
}

SITES: dict[str, TrafficSite] = {
    s.slug: s
    for s in (
        TrafficSite(
            "repubblica",
            "Viale della Repubblica at Centro Pecci",
            43.8680,
            11.1060,
            "Viale della Repubblica",
            50,
            0.06,
        ),
        TrafficSite(
            "declassata", "Declassata at Via Roma", 43.8615, 11.1010, "Viale Leonardo da Vinci", 70, 0.12
        ),
        TrafficSite("roma", "Via Roma at Soccorso", 43.8710, 11.0930, "Via Roma", 50, 0.05),
        TrafficSite(
            "galilei", "Viale Galilei at the stadium", 43.8888, 11.1003, "Viale Galileo Galilei", 50, 0.05
        ),
        TrafficSite("montegrappa", "Viale Montegrappa", 43.8740, 11.1045, "Viale Montegrappa", 50, 0.06),
        TrafficSite(
            "vittorio-veneto",
            "Viale Vittorio Veneto at the station",
            43.8786,
            11.1058,
            "Viale Vittorio Veneto",
            50,
            0.04,
        ),
        TrafficSite("piave", "Viale Piave at Piazza San Marco", 43.8778, 11.1015, "Viale Piave", 50, 0.04),
        TrafficSite("pistoiese", "Via Pistoiese", 43.8850, 11.0820, "Via Pistoiese", 50, 0.08),
    )
}

ROUTES: dict[str, Route] = {
    r.slug: r
    for r in (
        Route(
            "lam-blu",
            "LAM Blu Stazione Centrale - Ospedale Santo Stefano",
            "bus",
            (
                (43.8782, 11.1079),  # Stazione Centrale, terminus
                (43.8786, 11.1058),  # Viale Vittorio Veneto
                (43.8786, 11.1030),  # Piazza San Marco
                (43.8778, 11.1000),  # Viale Piave
                (43.8772, 11.0932),  # Porta Santa Trinita
                (43.8710, 11.0930),  # Via Roma
                (43.8660, 11.0860),  # Soccorso
                (43.8648, 11.0770),  # Via Suor Niccolina Infermiera
                (43.8640, 11.0695),  # Ospedale Santo Stefano, terminus
            ),
            (240, 25, 30, 25, 30, 25, 30, 25, 300),
            is_loop=False,
        ),
        Route(
            "raccolta-centro",
            "Waste collection round, centro storico",
            "waste",
            (
                (43.8825, 11.1003),  # Piazza Mercatale
                (43.8813, 11.0985),  # Via Garibaldi
                (43.8804, 11.0962),  # Piazza del Comune
                (43.8795, 11.0975),  # Piazza San Francesco
                (43.8788, 11.0984),  # Piazza delle Carceri
                (43.8780, 11.0950),  # Via Santa Trinita
                (43.8795, 11.0925),  # Via Santa Chiara
                (43.8812, 11.0970),  # Piazza del Duomo
                (43.8836, 11.0965),  # Via Magnolfi
                (43.8838, 11.0990),  # Via Verdi
            ),
            (120, 45, 45, 45, 45, 45, 45, 45, 45, 45),
            is_loop=True,
        ),
        Route(
            "acqua-squadra-1",
            "Water crew: Via Paronese depot - worksite in Via Pistoiese",
            "water",
            (
                (43.8600, 11.1170),  # depot, Via Paronese
                (43.8665, 11.1075),  # Viale della Repubblica
                (43.8786, 11.1030),  # Piazza San Marco
                (43.8778, 11.1000),  # Viale Piave
                (43.8772, 11.0932),  # Porta Santa Trinita
                (43.8822, 11.0885),  # Porta Pistoiese
                (43.8852, 11.0815),  # worksite, Via Pistoiese
            ),
            (600, 0, 0, 0, 0, 0, 2700),
            is_loop=False,
        ),
        Route(
            "gas-squadra-1",
            "Gas crew: Via Galcianese depot - worksite in Viale Galilei",
            "gas",
            (
                (43.8920, 11.0820),  # depot, Via Galcianese
                (43.8885, 11.0880),  # Via Galcianese
                (43.8868, 11.0952),  # Porta al Serraglio
                (43.8888, 11.1003),  # Viale Galilei
                (43.8920, 11.1015),  # worksite, Viale Galilei north
            ),
            (600, 0, 0, 0, 1800),
            is_loop=False,
        ),
    )
}


def all_points() -> list[tuple[str, LatLon]]:
    """Every coordinate declared here, labelled, for checks and maps."""
    out: list[tuple[str, LatLon]] = [(f"facility {f.slug}", f.point) for f in FACILITIES.values()]
    out += [(f"site {s.slug}", s.point) for s in SITES.values()]
    out += [(f"route {r.slug}[{i}]", p) for r in ROUTES.values() for i, p in enumerate(r.points)]
    out += [("centro storico", CENTRO_STORICO)]
    return out
