"""The demo's data: Prato's organisations, their worksites and the console's operators, and
the Florence plain's when the deployment's areas include it (`sitroom demo --areas`).

Demo worksites: the municipality and four utilities on real streets, with conflicts. One more
organisation, a neighbouring municipality, takes part only in the data exchange.

Coordinates are WGS84 read off a map to within a few tens of metres, on the same streets the
traffic simulators use (edge/simulators/places.py). Dates are relative to `now`, so that the
live and planned layers always have something to show. Planted on purpose:

- Via Pistoiese: Publiacqua's water main and Open Fiber's duct overlap in time → conflict;
- Viale Galilei: Publiacqua's sewer link and Toscana Energia's gas main 40 days apart → synergy;
- Via Roma: resurfaced by the Comune two months ago, Toscana Energia digs it again → redig.

And one on a bus line: the Comune rebuilds the Viale Piave stop (`comune-prato-piave-fermata`),
the stop the GTFS-Realtime simulator closes (edge/simulators/gtfs_rt.py, `Scenario`): LAM Blu's
trips skip it and drive around it, and the demo's transit readings show it. It is drawn west of
Open Fiber's crossing of the same avenue, more than the coordination buffer (25 m) away.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from cloud.console.auth import ConsoleRole
from cloud.console.store import ConsoleStore
from cloud.core.errors import ConflictError
from cloud.core.orgs import Caller, Organisation, Role
from cloud.worksites.models import Status, WorksiteCreate
from cloud.worksites.store import WorksiteStore

MUNICIPALITY = "comune-prato"
PRATO, PLAIN = "prato", "piana-fiorentina"  # the area ids of edge/contract/areas.yaml, deploy/areas/

# The utilities serve both areas (Prato first: their home area in the demo).
ORGANISATIONS = (
    Organisation(id=MUNICIPALITY, name="Comune di Prato", role=Role.MUNICIPALITY, areas=(PRATO,)),
    Organisation(id="publiacqua", name="Publiacqua S.p.A.", role=Role.UTILITY, areas=(PRATO, PLAIN)),
    Organisation(
        id="toscana-energia", name="Toscana Energia S.p.A.", role=Role.UTILITY, areas=(PRATO, PLAIN)
    ),
    Organisation(id="alia", name="Alia Servizi Ambientali S.p.A.", role=Role.UTILITY, areas=(PRATO, PLAIN)),
    Organisation(id="open-fiber", name="Open Fiber S.p.A.", role=Role.UTILITY, areas=(PRATO, PLAIN)),
    # A neighbouring municipality sharing its car parks over NGSI-LD (cloud/dev/partners.py). A
    # partner writes only its own data, as a utility does: the municipality role is for Prato's
    # own operators, who approve and edit every worksite of the registry. No area: it writes no
    # worksites, and its car parks are checked as any partner's places are.
    Organisation(id="comune-calenzano", name="Comune di Calenzano", role=Role.UTILITY),
)
PLAIN_ORGANISATIONS = (
    Organisation(id="comune-firenze", name="Comune di Firenze", role=Role.MUNICIPALITY, areas=(PLAIN,)),
)


def _line(*points: tuple[float, float]) -> dict[str, Any]:
    """A GeoJSON LineString from (lat, lon) pairs, as read off a map."""
    return {"type": "LineString", "coordinates": [[lon, lat] for lat, lon in points]}


def _point(lat: float, lon: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [lon, lat]}


def _polygon(*points: tuple[float, float]) -> dict[str, Any]:
    ring = [[lon, lat] for lat, lon in points]
    return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}


def demo_worksites(now: datetime) -> list[WorksiteCreate]:
    day = timedelta(days=1)
    today = now.replace(hour=7, minute=30, second=0, microsecond=0)

    def ws(owner: str, slug: str, start_days: float, end_days: float, **fields: Any) -> WorksiteCreate:
        return WorksiteCreate.model_validate(
            {
                "id": f"{owner}-{slug}",
                "owner": owner,
                "planned_start": today + start_days * day,
                "planned_end": today + end_days * day + timedelta(hours=10),
                **fields,
            }
        )

    return [
        ws(
            "publiacqua",
            "pistoiese-main",
            -10,
            20,
            title="Rifacimento condotta idrica DN200",
            description="Replacement of the cast-iron water main between Via Filzi and Via Colombo.",
            street="Via Pistoiese",
            work_type="water",
            permit_ref="PG-2026-04417",
            geometry=_line((43.8854, 11.0795), (43.8851, 11.0820), (43.8847, 11.0848)),
            status="active",
            actual_start=today - 10 * day,
            impact={
                "lanes_closed": 1,
                "parking_spaces_removed": 22,
                "restrictions": ["no-trucks", "no-parking"],
            },
        ),
        ws(
            "open-fiber",
            "pistoiese-ftth",
            5,
            25,
            title="Posa cavidotto fibra ottica FTTH",
            description="Fibre duct along the north side of Via Pistoiese.",
            street="Via Pistoiese",
            work_type="telecom",
            permit_ref="PG-2026-05102",
            geometry=_line((43.8852, 11.0812), (43.8849, 11.0835), (43.8845, 11.0862)),
            impact={"lanes_closed": 1, "parking_spaces_removed": 15},
        ),
        ws(
            "toscana-energia",
            "galilei-gas",
            60,
            80,
            title="Sostituzione rete gas media pressione",
            street="Viale Galileo Galilei",
            work_type="gas",
            permit_ref="PG-2026-05230",
            geometry=_line((43.8878, 11.1000), (43.8893, 11.1004), (43.8907, 11.1008)),
            impact={"lanes_closed": 1, "detour": "Via Bologna", "restrictions": ["reduced-width"]},
        ),
        ws(
            "publiacqua",
            "galilei-sewer",
            10,
            20,
            title="Allaccio fognatura nuovo comparto",
            street="Viale Galileo Galilei",
            work_type="sewer",
            geometry=_line((43.8884, 11.1002), (43.8899, 11.1006)),
            impact={"lanes_closed": 1},
        ),
        ws(
            MUNICIPALITY,
            "roma-asfalto",
            -90,
            -62,
            title="Rifacimento asfalto Via Roma",
            description="Milling and resurfacing from Piazza del Soccorso to Via Ciulli.",
            street="Via Roma",
            work_type="road",
            geometry=_line((43.8760, 11.0937), (43.8735, 11.0933), (43.8705, 11.0928)),
            status="completed",
            actual_start=today - 90 * day,
            actual_end=today - 61 * day,
            impact={"road_closed": True, "detour": "Via Ciulli, Viale Montegrappa", "bus_lines": ["LAM Blu"]},
        ),
        ws(
            "toscana-energia",
            "roma-fuga",
            14,
            16,
            title="Riparazione dispersione gas",
            street="Via Roma",
            work_type="gas",
            geometry=_point(43.8731, 11.0932),
            impact={"lanes_closed": 1},
        ),
        ws(
            "alia",
            "mercatale-isole",
            -3,
            12,
            title="Isole ecologiche interrate Piazza Mercatale",
            description="Four underground waste containers on the east side of the square.",
            street="Piazza Mercatale",
            work_type="waste",
            geometry=_polygon((43.8827, 11.1010), (43.8827, 11.1016), (43.8822, 11.1016), (43.8822, 11.1010)),
            status="active",
            actual_start=today - 3 * day,
            impact={"parking_spaces_removed": 30},
        ),
        ws(
            MUNICIPALITY,
            "repubblica-ciclabile",
            -20,
            40,
            title="Pista ciclabile Viale della Repubblica",
            street="Viale della Repubblica",
            work_type="road",
            geometry=_line((43.8690, 11.1040), (43.8680, 11.1060), (43.8668, 11.1085)),
            status="active",
            actual_start=today - 20 * day,
            impact={"lanes_closed": 1, "bus_stops": ["Repubblica Pecci"], "restrictions": ["reduced-width"]},
        ),
        ws(
            "open-fiber",
            "bologna-ftth",
            8,
            22,
            title="Posa fibra ottica Via Bologna",
            street="Via Bologna",
            work_type="telecom",
            geometry=_line((43.8885, 11.0958), (43.8910, 11.0962), (43.8935, 11.0965)),
            impact={"lanes_closed": 1},
        ),
        ws(
            "toscana-energia",
            "montegrappa-allacci",
            -15,
            10,
            title="Nuovi allacci gas Viale Montegrappa",
            street="Viale Montegrappa",
            work_type="gas",
            geometry=_line((43.8745, 11.1035), (43.8738, 11.1052)),
            status="suspended",
            actual_start=today - 15 * day,
            impact={"lanes_closed": 1},
        ),
        ws(
            MUNICIPALITY,
            "declassata-giunti",
            45,
            50,
            title="Manutenzione giunti viadotto Declassata",
            street="Viale Leonardo da Vinci",
            work_type="road",
            geometry=_line((43.8612, 11.0990), (43.8617, 11.1030)),
            impact={"lanes_closed": 1, "restrictions": ["no-passing"]},
        ),
        ws(
            "alia",
            "ferrucci-cassonetti",
            2,
            4,
            title="Spostamento cassonetti Via Ferrucci",
            street="Via Francesco Ferrucci",
            work_type="waste",
            geometry=_point(43.8728, 11.0895),
            status="cancelled",
        ),
        ws(
            "open-fiber",
            "piave-ftth",
            -2,
            6,
            title="Attraversamento fibra Viale Piave",
            street="Viale Piave",
            work_type="telecom",
            geometry=_line((43.8779, 11.1005), (43.8776, 11.1022)),
            status="active",
            actual_start=today - 2 * day,
            impact={"lanes_closed": 1, "bus_lines": ["LAM Blu", "LAM Rossa"], "detour": "Via Santa Trinita"},
        ),
        ws(
            MUNICIPALITY,
            "piave-fermata",
            -1,
            12,
            title="Rifacimento fermata bus Viale Piave",
            description="Raised accessible platform at the Viale Piave stop; the stop is closed meanwhile.",
            street="Viale Piave",
            work_type="road",
            geometry=_polygon((43.8781, 11.0994), (43.8781, 11.1001), (43.8775, 11.1001), (43.8775, 11.0994)),
            status="active",
            actual_start=today - 1 * day,
            impact={
                "lanes_closed": 1,
                "bus_lines": ["LAM Blu"],
                "bus_stops": ["Viale Piave"],
                "detour": "LAM Blu: fermata Viale Piave sospesa, deviazione a nord",
            },
        ),
        ws(
            "publiacqua",
            "vittorio-veneto-perdita",
            -400,
            -398,
            title="Riparazione perdita Viale Vittorio Veneto",
            street="Viale Vittorio Veneto",
            work_type="water",
            geometry=_point(43.8786, 11.1058),
            status="completed",
            actual_start=today - 400 * day,
            actual_end=today - 398 * day,
        ),
    ]


def plain_worksites(now: datetime) -> list[WorksiteCreate]:
    """The Florence plain's: the tramway to Sesto and a water main in Campi Bisenzio, planned
    a week apart on neighbouring streets (a synergy across the two areas' utilities)."""
    day = timedelta(days=1)
    today = now.replace(hour=7, minute=30, second=0, microsecond=0)
    return [
        WorksiteCreate.model_validate(item)
        for item in (
            {
                "id": "comune-firenze-tramvia-sesto",
                "owner": "comune-firenze",
                "title": "Tramvia linea 4: binari su Viale XI Agosto",
                "description": "Track laying for the tramway towards Sesto Fiorentino.",
                "street": "Viale XI Agosto",
                "work_type": "road",
                "planned_start": today - 5 * day,
                "planned_end": today + 40 * day,
                "geometry": _line((43.8040, 11.2150), (43.8062, 11.2208), (43.8085, 11.2262)),
                "status": "active",
                "actual_start": today - 5 * day,
            },
            {
                "id": "publiacqua-campi-barberinese",
                "owner": "publiacqua",
                "title": "Nuova condotta idrica Via Barberinese",
                "description": "A new water main along Via Barberinese in Campi Bisenzio.",
                "street": "Via Barberinese",
                "work_type": "water",
                "planned_start": today + 12 * day,
                "planned_end": today + 30 * day,
                "geometry": _line((43.8220, 11.1370), (43.8236, 11.1412)),
            },
        )
    ]


APPROVED = ("publiacqua-pistoiese-main", "alia-mercatale-isole", "comune-prato-repubblica-ciclabile")


def load_demo(store: WorksiteStore, now: datetime) -> int:
    """Organisations (into the registry beside `store`) and demo worksites of the areas the
    store serves (Prato; the Florence plain too when configured); returns how many were new."""
    configured = set(store.areas.ids) if store.areas is not None else {PRATO}
    orgs = [*ORGANISATIONS, *(PLAIN_ORGANISATIONS if PLAIN in configured else ())]
    for org in orgs:
        store.orgs.add(org.model_copy(update={"areas": tuple(a for a in org.areas if a in configured)}))
    plain = plain_worksites(now) if PLAIN in configured else []
    plain_ids = {w.id for w in plain}
    new = 0
    for item in [*demo_worksites(now), *plain]:
        owner = item.owner or MUNICIPALITY
        try:
            store.create(Caller(owner, Role.UTILITY), item, now=now)
        except ConflictError:
            continue
        new += 1
        if item.id in APPROVED or item.status in (Status.ACTIVE, Status.COMPLETED):
            # Approved by the municipality of the area it lies in.
            approver = "comune-firenze" if item.id in plain_ids else MUNICIPALITY
            store.decide(Caller(approver, Role.MUNICIPALITY), item.id or "", approve=True, now=now)
    return new


# Console log-ins (password `demo` for all — a demo on loopback, never a deployment).
DEMO_PASSWORD = "demo"  # noqa: S105  (documented demo credential, loopback only)
DEMO_OPERATORS: tuple[tuple[str, str, ConsoleRole, str], ...] = (
    ("anna", "comune-prato", ConsoleRole.MUNICIPALITY_OPERATOR, "Anna Bini (Comune di Prato)"),
    ("marco", "publiacqua", ConsoleRole.UTILITY_OPERATOR, "Marco Lenzi (Publiacqua)"),
    ("giulia", "toscana-energia", ConsoleRole.UTILITY_OPERATOR, "Giulia Fabbri (Toscana Energia)"),
    ("luca", "alia", ConsoleRole.TECHNICIAN, "Luca Mori (Alia)"),
    ("parete", "comune-prato", ConsoleRole.READ_ONLY, "Parete sala operativa"),
)


def add_demo_operators(store: ConsoleStore) -> None:
    for username, org, role, name in DEMO_OPERATORS:
        store.add_operator(username, DEMO_PASSWORD, org, role, name)


def demo_credentials() -> str:
    users = ", ".join(f"{u} ({org}, {role.value.replace('_', ' ')})" for u, org, role, _ in DEMO_OPERATORS)
    return f"log in as {users}; password {DEMO_PASSWORD!r}"
