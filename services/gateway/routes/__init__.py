"""Public routes of the gateway, one module per area; each route names the permission it needs."""
