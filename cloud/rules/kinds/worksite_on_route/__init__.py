"""The `worksite_on_route` rule kind (README.md beside this file); importing it registers it."""

from cloud.rules.kinds.worksite_on_route.rule import WorksiteOnRoute, WorksiteOnRouteConfig

__all__ = ["WorksiteOnRoute", "WorksiteOnRouteConfig"]
