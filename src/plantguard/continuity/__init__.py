"""Business continuity: the dependency graph to business services, impact, incidents, playbooks, drills (docs/continuity.md)."""
