"""Platform access and cyber-risk controls: users and roles, API tokens, sessions, the tamper-evident audit log.
See docs/security.md."""
