"""Tenants (shops): their settings, encrypted channel/backend credentials, and resolution."""

from tenants.models import Tenant, TenantRow
from tenants.resolver import TenantResolver, UnknownTenant

__all__ = ["Tenant", "TenantRow", "TenantResolver", "UnknownTenant"]
